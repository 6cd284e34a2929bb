//! One plan record to one [`Op`]: the steps every op shares, then one function per op kind with
//! that kind's rules. The order of the checks is part of the format's contract (a blob with
//! several faults reports the first), so the steps run exactly in the order written here.
//!
//! The plan is a graph in execution order: an op reads the output of an earlier op (the latest
//! one whose `output_offset` is the op's input offset) or, when none wrote there, the model input
//! (at op 0's `input_offset`). [`Ctx::tensor_at`] finds that source by scanning the records
//! before the op, so validation keeps no table of tensors (firmware stack); `arena_regions` then
//! checks that no op since the source wrote over it.

use half::f16;

use super::checks::{
    Codes, I8_RANGE, OpErr, Reads, arena_regions, avg_requant, check_output_shape, conv_geometry, decode, float_params,
    fused_pool_fields, int8_accumulation, io_shapes, pad_fields, pool_geometry, precision_fields, quant_fields,
    uniform_fields, weight_fields, weights_and_bias, window_fields,
};
use super::{Kernel, Op};
use crate::error::{LoadError, Problem};
use crate::format::{Activation, FusedPool, OpKind, OpRecord, Precision, Requant};
use crate::kernels;
use crate::kernels::params::{ConvF, ConvGeometry, ConvS8, DenseF, DenseS8, PoolGeometry, PoolKind, Shape};

/// A tensor an op reads: the model input or an earlier op's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tensor {
    /// Arena offset.
    pub(super) offset: usize,
    /// Shape.
    pub(super) shape: Shape,
    /// Zero point (int8; 0 for a float op's output).
    pub(super) zero_point: i32,
    /// Index of the op that wrote it; `None` for the model input.
    pub(super) producer: Option<usize>,
}

/// What every op is checked against: the blob's precision, its weights section, the arena size,
/// the plan, and the model input.
#[derive(Debug, Clone)]
pub(super) struct Ctx<'a> {
    /// Precision of the blob.
    pub(super) precision: Precision,
    /// The weights section.
    pub(super) weights: &'a [u8],
    /// Bytes of arena.
    pub(super) arena: usize,
    /// Every plan record (an op's sources are among the ones before it).
    pub(super) records: &'a [OpRecord],
    /// Shape of the model input (at op 0's `input_offset`).
    pub(super) input: Shape,
    /// Zero point of the model input.
    pub(super) input_zero_point: i32,
}

impl Ctx<'_> {
    /// The tensor op `index` finds at arena offset `offset`: the output of the latest op before it
    /// whose `output_offset` is `offset`, else the model input if `offset` is op 0's
    /// `input_offset`, else none. A scan of at most `index` records.
    pub(super) fn tensor_at(&self, index: usize, offset: u32) -> Option<Tensor> {
        let earlier = self.records.get(..index).unwrap_or(self.records);
        match earlier.iter().rposition(|r| r.output_offset == offset) {
            Some(j) => self.output_of(j),
            None => self.records.first().filter(|first| first.input_offset == offset).map(|_| self.model_input()),
        }
    }

    /// The tensor the op before op `index` wrote (the model input for op 0): what a chain reads.
    pub(super) fn previous(&self, index: usize) -> Tensor {
        index.checked_sub(1).and_then(|j| self.output_of(j)).unwrap_or(self.model_input())
    }

    /// The output of op `j` (a validated record: its `out_*` are its output shape).
    fn output_of(&self, j: usize) -> Option<Tensor> {
        let r = self.records.get(j)?;
        Some(Tensor {
            offset: r.output_offset as usize,
            shape: Shape::new(r.out_h as usize, r.out_w as usize, r.out_c as usize),
            zero_point: if self.precision == Precision::Int8 { r.output_zero_point } else { 0 },
            producer: Some(j),
        })
    }

    /// The model input, at op 0's `input_offset`.
    fn model_input(&self) -> Tensor {
        Tensor {
            offset: self.records.first().map_or(0, |r| r.input_offset as usize),
            shape: self.input,
            zero_point: self.input_zero_point,
            producer: None,
        }
    }
}

/// Validates plan record `index` (`r`), whose operands are the model input or outputs of the
/// records before it in `ctx`.
pub(super) fn validate_op<'a>(ctx: &Ctx<'a>, index: u16, r: &'a OpRecord) -> Result<Op<'a>, LoadError> {
    let e = OpErr(index);
    let at = index as usize;
    let codes = decode(&e, r)?;
    // An input offset where no tensor is is reported at `input_offset` in the arena step, where a
    // chain always reported it; until then the op is checked against the previous op's output, as
    // a chain's was.
    let source = ctx.tensor_at(at, r.input_offset);
    let first = source.unwrap_or_else(|| ctx.previous(at));
    let (input, output) = io_shapes(&e, r, first.shape)?;
    let int8 = ctx.precision == Precision::Int8;
    precision_fields(&e, r, int8, codes.requant, first.zero_point)?;

    // A residual conv2d's residual, read in place at its output.
    let residual = if codes.residual { ctx.tensor_at(at, r.input2_offset) } else { None };
    let reads = Reads { index: at, first: source, second: residual, in_place: codes.residual };
    let io = (input, output);
    // Each kind's function returns the whole op, written where this function's caller wants it:
    // the kernel (a few hundred bytes) is not copied through one frame per level (firmware stack).
    match codes.kind {
        OpKind::Conv2d => op_of(ctx, &e, r, io, reads, |ctx, e, r| conv2d(ctx, e, r, codes, io, residual)),
        #[cfg(feature = "depthwise")]
        OpKind::DepthwiseConv2d => {
            op_of(ctx, &e, r, io, reads, |ctx, e, r| depthwise_conv2d(ctx, e, r, codes, input, output))
        }
        #[cfg(not(feature = "depthwise"))]
        OpKind::DepthwiseConv2d => Err(e.at("kind", Problem::NotCompiledIn)),
        OpKind::Dense => op_of(ctx, &e, r, io, reads, |ctx, e, r| dense(ctx, e, r, codes, input, output)),
        OpKind::MaxPool2d | OpKind::AvgPool2d => {
            op_of(ctx, &e, r, io, reads, |ctx, e, r| pool(ctx, e, r, codes, input, output))
        }
        #[cfg(feature = "residual")]
        OpKind::Add => add_op(ctx, &e, r, codes, io, reads),
        #[cfg(not(feature = "residual"))]
        OpKind::Add => Err(e.at("kind", Problem::NotCompiledIn)),
    }
}

/// The op whose kernel `kernel` validates and builds, with its arena regions. Inlined into
/// `validate_op` (and so into `Ops::try_next`): as a function of its own it held the kernel twice
/// and copied the op once more into its caller's slot (484 B of frame on the Cortex-M4; the digits
/// firmware's stack is 2,220 B with it inlined, 2,500 B without).
#[inline(always)]
fn op_of<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &'a OpRecord,
    (input, output): (Shape, Shape),
    reads: Reads,
    kernel: impl FnOnce(&Ctx<'a>, &OpErr, &'a OpRecord) -> Result<Kernel<'a>, LoadError>,
) -> Result<Op<'a>, LoadError> {
    let kernel = kernel(ctx, e, r)?;
    let regions = arena_regions(ctx, e, r, (input.len(), output.len()), reads, scratch_needed(&kernel))?;
    Ok(Op {
        kernel,
        input: regions.input,
        input2: regions.input2,
        output: regions.output,
        scratch: regions.scratch,
        record: r,
    })
}

/// An add op: its kernel and second operand ([`add`]), then its arena regions.
#[cfg(feature = "residual")]
#[inline(never)]
fn add_op<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &'a OpRecord,
    codes: Codes,
    (input, output): (Shape, Shape),
    reads: Reads,
) -> Result<Op<'a>, LoadError> {
    let (kernel, second) = add(ctx, e, r, codes, input, output)?;
    let reads = Reads { second: Some(second), ..reads };
    let regions = arena_regions(ctx, e, r, (input.len(), output.len()), reads, scratch_needed(&kernel))?;
    Ok(Op {
        kernel,
        input: regions.input,
        input2: regions.input2,
        output: regions.output,
        scratch: regions.scratch,
        record: r,
    })
}

/// Scratch bytes the op's kernel needs.
fn scratch_needed(kernel: &Kernel<'_>) -> usize {
    match kernel {
        Kernel::ConvS8(op) => {
            kernels::conv2d_s8_scratch_size(&op.geometry, op.pool.map_or(1, |(_, p, _)| p.window_len()))
        }
        Kernel::DenseS8(op) => kernels::dense_s8_scratch_size(op.input_len, op.output_len),
        _ => 0,
    }
}

// ---------- conv2d ----------

/// A convolution with an optional fused pool: `kernel_*`, `stride_*` and `pad_*` give the conv
/// output, the fused pool (`pool_*`, or all zero without one) the op's output; `out_c` filters of
/// `kernel_h · kernel_w · in_c` weights and one bias each. With [`crate::format::FLAG_RESIDUAL`]
/// (int8 only, no pool), `residual` is the tensor at `input2_offset` (resolved by the caller),
/// which must be there, at the output, in the output's shape.
#[inline(never)] // one op kind's frame at a time under `validate_op` (firmware stack)
fn conv2d<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    codes: Codes,
    (input, output): (Shape, Shape),
    residual: Option<Tensor>,
) -> Result<Kernel<'a>, LoadError> {
    let geometry = conv_geometry(e, r, input)?;
    let conv_out = geometry.output;
    let fused = fused_pool(e, r, codes.pool, conv_out)?;
    check_output_shape(e, output, fused.map_or(conv_out, |(_, g)| g.output))?;
    let (w_bytes, b_bytes) = weights_and_bias(ctx, e, r, conv_out.c, geometry.filter_len())?;
    let activation = codes.activation;
    if codes.residual && (ctx.precision != Precision::Int8 || fused.is_some()) {
        return Err(e.at("flags", Problem::Unknown));
    }
    #[cfg(not(feature = "residual"))]
    if codes.residual {
        return Err(e.at("flags", Problem::NotCompiledIn));
    }
    if codes.residual {
        let mismatch = e.at("input2_offset", Problem::Mismatch);
        let tensor = residual.ok_or(mismatch)?;
        if tensor.shape != output || r.input2_offset != r.output_offset {
            return Err(mismatch);
        }
    }
    // Each arm's result is the return value itself (no copy of the kernel through this frame).
    match ctx.precision {
        Precision::Int8 => conv2d_s8(ctx, e, r, codes, geometry, fused, (w_bytes, b_bytes), residual),
        Precision::F16 => {
            let (weights, bias) = float_params::<f16>(e, w_bytes, b_bytes)?;
            Ok(Kernel::ConvF16(ConvF { geometry, activation, pool: fused, weights, bias }))
        }
        Precision::F32 => {
            let (weights, bias) = float_params::<f32>(e, w_bytes, b_bytes)?;
            Ok(Kernel::ConvF32(ConvF { geometry, activation, pool: fused, weights, bias }))
        }
    }
}

/// The pool fused onto a conv output of shape `conv_out`, if `pool` names one; its fields are
/// all zero otherwise.
fn fused_pool(
    e: &OpErr,
    r: &OpRecord,
    pool: FusedPool,
    conv_out: Shape,
) -> Result<Option<(PoolKind, PoolGeometry)>, LoadError> {
    let kind = match pool {
        FusedPool::None => {
            e.unused(&fused_pool_fields(r))?;
            return Ok(None);
        }
        FusedPool::Max => PoolKind::Max,
        FusedPool::Avg => PoolKind::Avg,
    };
    let g = pool_geometry(
        e,
        conv_out,
        [("pool_h", r.pool_h), ("pool_w", r.pool_w)],
        [("pool_stride_h", r.pool_stride_h), ("pool_stride_w", r.pool_stride_w)],
    )?;
    Ok(Some((kind, g)))
}

/// The int8 rules of a convolution: requantization, output range, accumulator bounds, then the
/// fused pool's requantization; without a fused average pool the output keeps the conv's zero
/// point. With a `residual` (its tensor), the convolution is requantized over the whole int8
/// range to `conv_zero_point` and `conv_scale`, and the output is the add's: the add's rules
/// ([`add_params`]) with the convolution's output as the first operand.
#[allow(clippy::too_many_arguments)]
// Inlined: built in `conv2d`'s return slot (as a frame of its own it copied the kernel; the
// digits firmware's stack is 1,980 B inlined, 2,220 B not).
#[inline(always)]
fn conv2d_s8<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    codes: Codes,
    geometry: ConvGeometry,
    fused: Option<(PoolKind, PoolGeometry)>,
    (w_bytes, b_bytes): (&'a [u8], &'a [u8]),
    residual: Option<Tensor>,
) -> Result<Kernel<'a>, LoadError> {
    let weights: &[i8] = bytemuck::cast_slice(w_bytes);
    // TFLite's arithmetic has no fused residual add.
    if residual.is_some() && codes.requant == Requant::Tflite {
        return Err(e.at("requant", Problem::Unknown));
    }
    // A fused average pool under TFLite's arithmetic divides: no pool multiplier.
    let has_avg_pool = codes.pool == FusedPool::Avg && codes.requant != Requant::Tflite;
    let (bias, requant) = int8_accumulation(ctx, e, r, codes.requant, b_bytes, geometry.filter_len(), has_avg_pool)?;
    let pool = match fused {
        None => None,
        Some((kind, g)) => {
            let avg = avg_requant(e, r, r.conv_zero_point, (kind == PoolKind::Avg, codes.requant), g.window_len())?;
            Some((kind, g, avg))
        }
    };
    #[cfg(feature = "residual")]
    let residual = match residual {
        Some(tensor) => Some(add_params(e, r, ("conv_scale", r.conv_zero_point, r.conv_scale), tensor)?),
        None => None,
    };
    // Refused in `conv2d` without the feature.
    #[cfg(not(feature = "residual"))]
    let residual = residual.and(None);
    if residual.is_none() && pool.is_none_or(|(k, _, _)| k == PoolKind::Max) && r.output_zero_point != r.conv_zero_point
    {
        return Err(e.at("output_zero_point", Problem::Mismatch));
    }
    // With a residual the record's clamp is the add's; the convolution's own is all of int8.
    let (act_min, act_max) = if residual.is_some() { (-128, 127) } else { (r.act_min, r.act_max) };
    Ok(Kernel::ConvS8(ConvS8 {
        geometry,
        input_zero_point: r.input_zero_point,
        requant,
        conv_zero_point: r.conv_zero_point,
        act_min,
        act_max,
        pool,
        residual,
        weights,
        bias,
    }))
}

// ---------- depthwise conv2d ----------

/// A depthwise convolution, channel multiplier 1: `kernel_*`, `stride_*` and `pad_*` as for a
/// convolution, `out_c == in_c`, no fused pool; `kernel_h · kernel_w · in_c` weights
/// (`[kh][kw][c]`, not packed) and one bias per channel. int8: the output keeps the
/// accumulation's zero point.
#[cfg(feature = "depthwise")]
#[inline(never)] // one op kind's frame at a time under `validate_op` (firmware stack)
fn depthwise_conv2d<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    codes: Codes,
    input: Shape,
    output: Shape,
) -> Result<Kernel<'a>, LoadError> {
    use super::checks::weights_and_bias_unpacked;
    use crate::kernels::params::{DepthwiseF, DepthwiseS8};

    if codes.pool != FusedPool::None {
        return Err(e.at("pool", Problem::Unknown));
    }
    e.unused(&fused_pool_fields(r))?;
    if r.out_c != r.in_c {
        return Err(e.at("out_c", Problem::Mismatch));
    }
    let geometry = conv_geometry(e, r, input)?;
    check_output_shape(e, output, geometry.output)?;
    let channels = geometry.output.c;
    let (w_bytes, b_bytes) = weights_and_bias_unpacked(ctx, e, r, channels, geometry.kernel_h * geometry.kernel_w)?;
    let activation = codes.activation;
    Ok(match ctx.precision {
        Precision::Int8 => {
            let taps = geometry.kernel_h * geometry.kernel_w;
            let (bias, requant) = int8_accumulation(ctx, e, r, codes.requant, b_bytes, taps, false)?;
            if r.output_zero_point != r.conv_zero_point {
                return Err(e.at("output_zero_point", Problem::Mismatch));
            }
            Kernel::DepthwiseS8(DepthwiseS8 {
                geometry,
                input_zero_point: r.input_zero_point,
                requant,
                output_zero_point: r.output_zero_point,
                act_min: r.act_min,
                act_max: r.act_max,
                weights: bytemuck::cast_slice(w_bytes),
                bias,
            })
        }
        Precision::F16 => {
            let (weights, bias) = float_params::<f16>(e, w_bytes, b_bytes)?;
            Kernel::DepthwiseF16(DepthwiseF { geometry, activation, weights, bias })
        }
        Precision::F32 => {
            let (weights, bias) = float_params::<f32>(e, w_bytes, b_bytes)?;
            Kernel::DepthwiseF32(DepthwiseF { geometry, activation, weights, bias })
        }
    })
}

// ---------- dense ----------

/// A fully connected layer over the flattened input: no fused pool, padding, kernel or stride;
/// output `1 × 1 × out_c`; `out_c` rows of `in_h · in_w · in_c` weights and one bias each.
#[inline(never)] // one op kind's frame at a time under `validate_op` (firmware stack)
fn dense<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    codes: Codes,
    input: Shape,
    output: Shape,
) -> Result<Kernel<'a>, LoadError> {
    if codes.pool != FusedPool::None {
        return Err(e.at("pool", Problem::Unknown));
    }
    e.unused(&fused_pool_fields(r))?;
    e.unused(&pad_fields(r))?;
    e.unused(&window_fields(r))?;
    if output.h != 1 || output.w != 1 {
        return Err(e.at(if output.h != 1 { "out_h" } else { "out_w" }, Problem::Mismatch));
    }
    let input_len = input.len();
    let output_len = output.c;
    let (w_bytes, b_bytes) = weights_and_bias(ctx, e, r, output_len, input_len)?;
    let activation = codes.activation;
    Ok(match ctx.precision {
        Precision::Int8 => {
            // int8 dense: the output keeps the accumulation's zero point (there is no pool).
            let (bias, requant) = int8_accumulation(ctx, e, r, codes.requant, b_bytes, input_len, false)?;
            if r.output_zero_point != r.conv_zero_point {
                return Err(e.at("output_zero_point", Problem::Mismatch));
            }
            Kernel::DenseS8(DenseS8 {
                input_len,
                output_len,
                input_zero_point: r.input_zero_point,
                requant,
                output_zero_point: r.output_zero_point,
                act_min: r.act_min,
                act_max: r.act_max,
                weights: bytemuck::cast_slice(w_bytes),
                bias,
            })
        }
        Precision::F16 => {
            let (weights, bias) = float_params::<f16>(e, w_bytes, b_bytes)?;
            Kernel::DenseF16(DenseF { input_len, output_len, activation, weights, bias })
        }
        Precision::F32 => {
            let (weights, bias) = float_params::<f32>(e, w_bytes, b_bytes)?;
            Kernel::DenseF32(DenseF { input_len, output_len, activation, weights, bias })
        }
    })
}

// ---------- max / average pool ----------

/// A standalone pool: window `kernel_*`, stride `stride_*`, no padding; no activation, fused
/// pool, requantization, weights or per-channel data.
#[inline(never)] // one op kind's frame at a time under `validate_op` (firmware stack)
fn pool<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    codes: Codes,
    input: Shape,
    output: Shape,
) -> Result<Kernel<'a>, LoadError> {
    if codes.activation != Activation::None {
        return Err(e.at("activation", Problem::Unknown));
    }
    if codes.pool != FusedPool::None {
        return Err(e.at("pool", Problem::Unknown));
    }
    // Only an int8 average pool may name an arithmetic (TFLite's rounded division).
    let tflite_avg =
        codes.requant == Requant::Tflite && codes.kind == OpKind::AvgPool2d && ctx.precision == Precision::Int8;
    if codes.requant != Requant::None && !tflite_avg {
        return Err(e.at("requant", Problem::Unknown));
    }
    e.unused(&fused_pool_fields(r))?;
    e.unused(&pad_fields(r))?;
    e.unused(&weight_fields(r))?;
    e.unused(&quant_fields(r))?;
    let g = pool_geometry(
        e,
        input,
        [("kernel_h", r.kernel_h), ("kernel_w", r.kernel_w)],
        [("stride_h", r.stride_h), ("stride_w", r.stride_w)],
    )?;
    check_output_shape(e, output, g.output)?;
    let avg = codes.kind == OpKind::AvgPool2d;
    Ok(match (ctx.precision, avg) {
        (Precision::Int8, _) => pool_s8(e, r, g, avg, codes.requant)?,
        (_, true) => Kernel::AvgPoolF32(g),
        (_, false) => Kernel::MaxPoolF32(g),
    })
}

/// The int8 rules of a pool: no uniform multiplier, the full int8 range, the input's zero point
/// throughout (a max pool keeps it on its output); an average pool's own requantization.
fn pool_s8<'a>(e: &OpErr, r: &OpRecord, g: PoolGeometry, avg: bool, requant: Requant) -> Result<Kernel<'a>, LoadError> {
    e.unused(&uniform_fields(r))?;
    if r.act_min != -128 || r.act_max != 127 {
        return Err(e.at(if r.act_min != -128 { "act_min" } else { "act_max" }, Problem::OutOfRange));
    }
    if r.conv_zero_point != r.input_zero_point {
        return Err(e.at("conv_zero_point", Problem::Mismatch));
    }
    if !I8_RANGE.contains(&r.output_zero_point) {
        return Err(e.at("output_zero_point", Problem::OutOfRange));
    }
    let q = avg_requant(e, r, r.input_zero_point, (avg, requant), g.window_len())?;
    if avg {
        return Ok(Kernel::AvgPoolS8(g, q));
    }
    if r.output_zero_point != r.input_zero_point {
        return Err(e.at("output_zero_point", Problem::Mismatch));
    }
    Ok(Kernel::MaxPoolS8(g))
}

// ---------- add ----------

#[cfg(feature = "residual")]
use super::checks::pool_requant_fields;
#[cfg(feature = "residual")]
use crate::format::MAX_ADD_SCALE_RATIO;
#[cfg(feature = "residual")]
use crate::kernels::params::{AddF, AddS8};

#[cfg(feature = "residual")]
/// An element-wise add: the first operand at `input_offset` (checked like every op's input), the
/// second at `input2_offset`, which must resolve ([`Ctx::tensor_at`]) to a tensor of the same
/// shape; the output has that shape too. No fused pool, requantization, geometry, weights or
/// per-channel data; any activation. int8: each operand's zero point is its source's, the scales
/// are normal positive f32s whose operand-to-output ratios are at most `2^16`
/// ([`MAX_ADD_SCALE_RATIO`]), and the output zero point and activation range are int8. Float: the
/// int8 fields of an add (second zero point, scales) are zero.
#[inline(never)] // one op kind's frame at a time under `validate_op` (firmware stack)
fn add<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    codes: Codes,
    input: Shape,
    output: Shape,
) -> Result<(Kernel<'a>, Tensor), LoadError> {
    if codes.pool != FusedPool::None {
        return Err(e.at("pool", Problem::Unknown));
    }
    if codes.requant != Requant::None {
        return Err(e.at("requant", Problem::Unknown));
    }
    e.unused(&fused_pool_fields(r))?;
    e.unused(&pad_fields(r))?;
    e.unused(&window_fields(r))?;
    e.unused(&weight_fields(r))?;
    e.unused(&quant_fields(r))?;
    check_output_shape(e, output, input)?;
    let mismatch = e.at("input2_offset", Problem::Mismatch);
    let index = e.0 as usize; // this op's
    let second = ctx.tensor_at(index, r.input2_offset).ok_or(mismatch)?;
    if second.shape != input {
        return Err(mismatch);
    }
    let kernel = match ctx.precision {
        Precision::Int8 => Kernel::AddS8(add_s8(e, r, second)?),
        Precision::F32 | Precision::F16 => {
            e.unused(&[
                ("input2_zero_point", r.input2_zero_point as u32),
                ("input_scale", r.input_scale.to_bits()),
                ("input2_scale", r.input2_scale.to_bits()),
                ("output_scale", r.output_scale.to_bits()),
            ])?;
            Kernel::AddF32(AddF { activation: codes.activation })
        }
    };
    Ok((kernel, second))
}

#[cfg(feature = "residual")]
/// The int8 rules of an add (`second`: the second operand's source; the first operand's zero
/// point was checked with every op's).
fn add_s8(e: &OpErr, r: &OpRecord, second: Tensor) -> Result<AddS8, LoadError> {
    e.unused(&uniform_fields(r))?;
    e.unused(&pool_requant_fields(r))?;
    if !I8_RANGE.contains(&r.output_zero_point) {
        return Err(e.at("output_zero_point", Problem::OutOfRange));
    }
    // The sum has no zero point of its own: the output's (as a dense layer's accumulation).
    if r.conv_zero_point != r.output_zero_point {
        return Err(e.at("conv_zero_point", Problem::Mismatch));
    }
    if !I8_RANGE.contains(&r.act_min) {
        return Err(e.at("act_min", Problem::OutOfRange));
    }
    if !I8_RANGE.contains(&r.act_max) || r.act_max < r.act_min {
        return Err(e.at("act_max", Problem::OutOfRange));
    }
    add_params(e, r, ("input_scale", r.input_zero_point, r.input_scale), second)
}

#[cfg(feature = "residual")]
/// The add of a first operand (`(scale field, zero point, scale)`: an add's first input, or a
/// residual conv2d's own output) and the tensor `second` (`input2_*`) to the output's scale: the
/// second zero point is its source's; the scales are normal positive f32s whose operand-to-output
/// ratios are at most [`MAX_ADD_SCALE_RATIO`]. (The output zero point and clamp are checked by
/// the caller.)
#[inline(never)] // its own frame, not in its callers' (firmware stack)
fn add_params(
    e: &OpErr,
    r: &OpRecord,
    (first_field, first_zero_point, first_scale): (&'static str, i32, f32),
    second: Tensor,
) -> Result<AddS8, LoadError> {
    if r.input2_zero_point != second.zero_point {
        return Err(e.at("input2_zero_point", Problem::Mismatch));
    }
    // Normal: not zero, subnormal, infinite or NaN, so `1 / output_scale` is finite too.
    let scales = [(first_field, first_scale), ("input2_scale", r.input2_scale), ("output_scale", r.output_scale)];
    for (field, scale) in scales {
        if !scale.is_normal() || scale.is_sign_negative() {
            return Err(e.at(field, Problem::OutOfRange));
        }
    }
    for (field, scale) in [(first_field, first_scale), ("input2_scale", r.input2_scale)] {
        // Both normal and positive: the ratio is a number (or +inf, which fails too).
        if scale / r.output_scale > MAX_ADD_SCALE_RATIO {
            return Err(e.at(field, Problem::AccumulatorOverflow));
        }
    }
    Ok(AddS8 {
        a_zero_point: first_zero_point,
        a_scale: first_scale,
        b_zero_point: r.input2_zero_point,
        b_scale: r.input2_scale,
        inv_output_scale: 1.0 / r.output_scale,
        output_zero_point: r.output_zero_point,
        act_min: r.act_min,
        act_max: r.act_max,
    })
}
