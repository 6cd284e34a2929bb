//! One plan record to one [`Op`]: the steps every op shares, then one function per op kind with
//! that kind's rules. The order of the checks is part of the format's contract (a blob with
//! several faults reports the first), so the steps run exactly in the order written here.

use half::f16;

use super::checks::{
    Codes, I8_RANGE, OpErr, arena_regions, avg_requant, check_output_shape, conv_geometry, decode, float_params,
    fused_pool_fields, int8_accumulation, io_shapes, pad_fields, pool_geometry, precision_fields, quant_fields,
    uniform_fields, weight_fields, weights_and_bias, window_fields,
};
use super::{Kernel, Op};
use crate::error::{LoadError, Problem};
use crate::format::{Activation, FusedPool, OpKind, OpRecord, Precision, Requant};
use crate::kernels;
use crate::kernels::params::{ConvF, ConvGeometry, ConvS8, DenseF, DenseS8, PoolGeometry, PoolKind, Shape};

/// What the previous op left for the next: its output shape, arena offset and zero point.
#[derive(Debug, Clone)]
pub(super) struct Chain {
    /// Output shape.
    pub(super) shape: Shape,
    /// Arena offset of the output (`None` before the first op, whose input may be anywhere).
    pub(super) offset: Option<usize>,
    /// Zero point of the output (int8).
    pub(super) zero_point: i32,
}

/// What every op is checked against: the blob's precision, its weights section, the arena size.
#[derive(Debug, Clone)]
pub(super) struct Ctx<'a> {
    /// Precision of the blob.
    pub(super) precision: Precision,
    /// The weights section.
    pub(super) weights: &'a [u8],
    /// Bytes of arena.
    pub(super) arena: usize,
}

/// Validates plan record `index` against the previous op's output `chain`, which it then
/// advances to this op's output.
pub(super) fn validate_op<'a>(
    ctx: &Ctx<'a>,
    index: u16,
    r: &'a OpRecord,
    chain: &mut Chain,
) -> Result<Op<'a>, LoadError> {
    let e = OpErr(index);
    let codes = decode(&e, r)?;
    let (input, output) = io_shapes(&e, r, chain.shape)?;
    let int8 = ctx.precision == Precision::Int8;
    precision_fields(&e, r, int8, codes.requant, chain.zero_point)?;

    let kernel = match codes.kind {
        OpKind::Conv2d => conv2d(ctx, &e, r, codes, input, output)?,
        #[cfg(feature = "depthwise")]
        OpKind::DepthwiseConv2d => depthwise_conv2d(ctx, &e, r, codes, input, output)?,
        #[cfg(not(feature = "depthwise"))]
        OpKind::DepthwiseConv2d => return Err(e.at("kind", Problem::NotCompiledIn)),
        OpKind::Dense => dense(ctx, &e, r, codes, input, output)?,
        OpKind::MaxPool2d | OpKind::AvgPool2d => pool(ctx, &e, r, codes, input, output)?,
    };

    let (input_region, output_region, scratch) = arena_regions(
        &e,
        r,
        (ctx.arena, ctx.precision.activation_size()),
        (input.len(), output.len()),
        chain.offset,
        scratch_needed(&kernel),
    )?;
    *chain = Chain {
        shape: output,
        offset: Some(output_region.offset),
        zero_point: if int8 { r.output_zero_point } else { 0 },
    };
    Ok(Op { kernel, input: input_region, output: output_region, scratch, record: r })
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
/// `kernel_h · kernel_w · in_c` weights and one bias each.
#[inline(never)] // one op kind's frame at a time under `validate_op` (firmware stack)
fn conv2d<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    codes: Codes,
    input: Shape,
    output: Shape,
) -> Result<Kernel<'a>, LoadError> {
    let geometry = conv_geometry(e, r, input)?;
    let conv_out = geometry.output;
    let fused = fused_pool(e, r, codes.pool, conv_out)?;
    check_output_shape(e, output, fused.map_or(conv_out, |(_, g)| g.output))?;
    let (w_bytes, b_bytes) = weights_and_bias(ctx, e, r, conv_out.c, geometry.filter_len())?;
    let activation = codes.activation;
    Ok(match ctx.precision {
        Precision::Int8 => conv2d_s8(ctx, e, r, codes, geometry, fused, (w_bytes, b_bytes))?,
        Precision::F16 => {
            let (weights, bias) = float_params::<f16>(e, w_bytes, b_bytes)?;
            Kernel::ConvF16(ConvF { geometry, activation, pool: fused, weights, bias })
        }
        Precision::F32 => {
            let (weights, bias) = float_params::<f32>(e, w_bytes, b_bytes)?;
            Kernel::ConvF32(ConvF { geometry, activation, pool: fused, weights, bias })
        }
    })
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
/// point.
fn conv2d_s8<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    codes: Codes,
    geometry: ConvGeometry,
    fused: Option<(PoolKind, PoolGeometry)>,
    (w_bytes, b_bytes): (&'a [u8], &'a [u8]),
) -> Result<Kernel<'a>, LoadError> {
    let weights: &[i8] = bytemuck::cast_slice(w_bytes);
    let has_avg_pool = codes.pool == FusedPool::Avg;
    let (bias, requant) = int8_accumulation(ctx, e, r, codes.requant, b_bytes, geometry.filter_len(), has_avg_pool)?;
    let pool = match fused {
        None => None,
        Some((kind, g)) => {
            let avg = avg_requant(e, r, r.conv_zero_point, kind == PoolKind::Avg, g.window_len())?;
            Some((kind, g, avg))
        }
    };
    if pool.is_none_or(|(k, _, _)| k == PoolKind::Max) && r.output_zero_point != r.conv_zero_point {
        return Err(e.at("output_zero_point", Problem::Mismatch));
    }
    Ok(Kernel::ConvS8(ConvS8 {
        geometry,
        input_zero_point: r.input_zero_point,
        requant,
        conv_zero_point: r.conv_zero_point,
        act_min: r.act_min,
        act_max: r.act_max,
        pool,
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
    if codes.requant != Requant::None {
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
        (Precision::Int8, _) => pool_s8(e, r, g, avg)?,
        (_, true) => Kernel::AvgPoolF32(g),
        (_, false) => Kernel::MaxPoolF32(g),
    })
}

/// The int8 rules of a pool: no uniform multiplier, the full int8 range, the input's zero point
/// throughout (a max pool keeps it on its output); an average pool's own requantization.
fn pool_s8<'a>(e: &OpErr, r: &OpRecord, g: PoolGeometry, avg: bool) -> Result<Kernel<'a>, LoadError> {
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
    let q = avg_requant(e, r, r.input_zero_point, avg, g.window_len())?;
    if avg {
        return Ok(Kernel::AvgPoolS8(g, q));
    }
    if r.output_zero_point != r.input_zero_point {
        return Err(e.at("output_zero_point", Problem::Mismatch));
    }
    Ok(Kernel::MaxPoolS8(g))
}
