//! The field checks that several op kinds share: the record's codes and reserved fields, its
//! shapes against its source, fields an op kind leaves at zero, geometry, weight regions, int8
//! requantization and accumulator bounds, and arena regions (where the sources must still be
//! intact).
//!
//! Each check returns the first failing field as a [`LoadError::Op`]; the callers fix the order.

use bytemuck::Pod;

use super::Region;
use super::validate::{Ctx, Tensor};
use crate::error::{LoadError, Problem};
use crate::format::{Activation, FLAG_RESIDUAL, FusedPool, OpKind, OpRecord, Precision, Requant, TAP_GROUP};
use crate::kernels::params::{AvgRequant, ConvGeometry, PoolGeometry, Requantizer, Shape};
use crate::quant;

/// The int8 value range (zero points, activation bounds).
pub(super) const I8_RANGE: core::ops::RangeInclusive<i32> = -128..=127;
/// Largest |requantized accumulator| allowed: keeps `+ zero_point` and the f32 path exact.
const SCALED_LIMIT_LOG2: u32 = 30;

/// Builds the errors of op `index`.
pub(super) struct OpErr(pub(super) u16);

impl OpErr {
    /// The error for `field` of this op.
    pub(super) fn at(&self, field: &'static str, problem: Problem) -> LoadError {
        LoadError::Op { index: self.0, field, problem }
    }
    /// [`Problem::Unknown`] for the first of `fields` that is not zero (fields an op kind does not
    /// use).
    pub(super) fn unused(&self, fields: &[(&'static str, u32)]) -> Result<(), LoadError> {
        match fields.iter().find(|(_, v)| *v != 0) {
            Some((field, _)) => Err(self.at(field, Problem::Unknown)),
            None => Ok(()),
        }
    }
}

// ---------- field groups, in check order ----------

/// Record fields by name, as `u32`, for [`OpErr::unused`].
pub(super) type Fields<const N: usize> = [(&'static str, u32); N];

/// The fused pool's window and stride (conv only).
pub(super) fn fused_pool_fields(r: &OpRecord) -> Fields<4> {
    [
        ("pool_h", r.pool_h as u32),
        ("pool_w", r.pool_w as u32),
        ("pool_stride_h", r.pool_stride_h as u32),
        ("pool_stride_w", r.pool_stride_w as u32),
    ]
}

/// The zero padding (conv only).
pub(super) fn pad_fields(r: &OpRecord) -> Fields<4> {
    [
        ("pad_top", r.pad_top as u32),
        ("pad_left", r.pad_left as u32),
        ("pad_bottom", r.pad_bottom as u32),
        ("pad_right", r.pad_right as u32),
    ]
}

/// Kernel or window size and stride (conv and pools).
pub(super) fn window_fields(r: &OpRecord) -> Fields<4> {
    [
        ("kernel_h", r.kernel_h as u32),
        ("kernel_w", r.kernel_w as u32),
        ("stride_h", r.stride_h as u32),
        ("stride_w", r.stride_w as u32),
    ]
}

/// Weight and bias regions (conv and dense).
pub(super) fn weight_fields(r: &OpRecord) -> Fields<4> {
    [
        ("weights_offset", r.weights_offset),
        ("weights_len", r.weights_len),
        ("bias_offset", r.bias_offset),
        ("bias_len", r.bias_len),
    ]
}

/// The per-channel multipliers' region ([`Requant::PerChannel`] only).
pub(super) fn quant_fields(r: &OpRecord) -> Fields<2> {
    [("quant_offset", r.quant_offset), ("quant_len", r.quant_len)]
}

/// The uniform multiplier ([`Requant::Uniform`] only).
pub(super) fn uniform_fields(r: &OpRecord) -> Fields<2> {
    [("multiplier", r.multiplier as u32), ("shift", r.shift as u32)]
}

/// The average pool's multiplier (int8 ops with an average pool only).
pub(super) fn pool_requant_fields(r: &OpRecord) -> Fields<2> {
    [("pool_multiplier", r.pool_multiplier as u32), ("pool_shift", r.pool_shift as u32)]
}

/// Every int8-only scalar (float ops leave them zero).
pub(super) fn int8_fields(r: &OpRecord) -> Fields<9> {
    let [multiplier, shift] = uniform_fields(r);
    let [pool_multiplier, pool_shift] = pool_requant_fields(r);
    [
        ("input_zero_point", r.input_zero_point as u32),
        ("conv_zero_point", r.conv_zero_point as u32),
        ("output_zero_point", r.output_zero_point as u32),
        multiplier,
        shift,
        ("act_min", r.act_min as u32),
        ("act_max", r.act_max as u32),
        pool_multiplier,
        pool_shift,
    ]
}

// ---------- the steps every op starts with ----------

/// A record's enum codes, decoded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Codes {
    /// What the op computes.
    pub(super) kind: OpKind,
    /// Fused activation.
    pub(super) activation: Activation,
    /// Fused pool.
    pub(super) pool: FusedPool,
    /// int8 requantization.
    pub(super) requant: Requant,
    /// [`crate::format::FLAG_RESIDUAL`]: a conv2d that adds a residual tensor in place.
    pub(super) residual: bool,
}

/// The second operand's fields (`add` only).
pub(super) fn input2_fields(r: &OpRecord) -> Fields<3> {
    [
        ("input2_offset", r.input2_offset),
        ("input2_zero_point", r.input2_zero_point as u32),
        ("input2_scale", r.input2_scale.to_bits()),
    ]
}

/// Decodes `kind`, `activation`, `pool` and `requant`, and checks that `flags` is zero (or
/// [`FLAG_RESIDUAL`] on a conv2d), `reserved` too, the second operand's fields unless the op is an
/// `add` or a residual conv2d, and `conv_scale` unless it is the latter.
pub(super) fn decode(e: &OpErr, r: &OpRecord) -> Result<Codes, LoadError> {
    let kind = OpKind::from_u8(r.kind).ok_or(e.at("kind", Problem::Unknown))?;
    let activation = Activation::from_u8(r.activation).ok_or(e.at("activation", Problem::Unknown))?;
    let pool = FusedPool::from_u8(r.pool).ok_or(e.at("pool", Problem::Unknown))?;
    let requant = Requant::from_u8(r.requant).ok_or(e.at("requant", Problem::Unknown))?;
    let residual = r.flags == FLAG_RESIDUAL && kind == OpKind::Conv2d;
    if r.flags != 0 && !residual {
        return Err(e.at("flags", Problem::Unknown));
    }
    if r.reserved != [0; 4] {
        return Err(e.at("reserved", Problem::Unknown));
    }
    if kind != OpKind::Add && !residual {
        e.unused(&input2_fields(r))?;
    }
    if !residual {
        e.unused(&[("conv_scale", r.conv_scale.to_bits())])?;
    }
    Ok(Codes { kind, activation, pool, requant, residual })
}

/// The op's input shape, which must be the shape `chained` of the tensor it reads (`in_*`), and
/// its declared output shape (`out_*`, no dimension zero).
pub(super) fn io_shapes(e: &OpErr, r: &OpRecord, chained: Shape) -> Result<(Shape, Shape), LoadError> {
    for (field, got, want) in [("in_h", r.in_h, chained.h), ("in_w", r.in_w, chained.w), ("in_c", r.in_c, chained.c)] {
        if got as usize != want {
            return Err(e.at(field, Problem::Mismatch));
        }
    }
    for (field, v) in [("out_h", r.out_h), ("out_w", r.out_w), ("out_c", r.out_c)] {
        if v == 0 {
            return Err(e.at(field, Problem::OutOfRange));
        }
    }
    Ok((chained, Shape::new(r.out_h as usize, r.out_w as usize, r.out_c as usize)))
}

/// Float ops leave every int8 field zero and have no requantization; an int8 op's input zero
/// point is the zero point `chained` of the tensor it reads.
pub(super) fn precision_fields(
    e: &OpErr,
    r: &OpRecord,
    int8: bool,
    requant: Requant,
    chained: i32,
) -> Result<(), LoadError> {
    if !int8 {
        e.unused(&int8_fields(r))?;
        e.unused(&quant_fields(r))?;
        if requant != Requant::None {
            return Err(e.at("requant", Problem::Unknown));
        }
    } else if r.input_zero_point != chained {
        return Err(e.at("input_zero_point", Problem::Mismatch));
    }
    Ok(())
}

// ---------- geometry ----------

/// `out_*` must equal the shape the geometry implies.
pub(super) fn check_output_shape(e: &OpErr, got: Shape, want: Shape) -> Result<(), LoadError> {
    for (field, g, w) in [("out_h", got.h, want.h), ("out_w", got.w, want.w), ("out_c", got.c, want.c)] {
        if g != w {
            return Err(e.at(field, Problem::Mismatch));
        }
    }
    Ok(())
}

/// The convolution geometry of `kernel_*`, `stride_*` and `pad_*` over `input` (each padding
/// smaller than the kernel, the kernel no larger than the padded input), `out_c` filters.
pub(super) fn conv_geometry(e: &OpErr, r: &OpRecord, input: Shape) -> Result<ConvGeometry, LoadError> {
    let dims = [
        ("kernel_h", r.kernel_h, "stride_h", r.stride_h, "pad_top", r.pad_top, "pad_bottom", r.pad_bottom, input.h),
        ("kernel_w", r.kernel_w, "stride_w", r.stride_w, "pad_left", r.pad_left, "pad_right", r.pad_right, input.w),
    ];
    let mut out = [0usize; 2];
    for (i, (kf, k, sf, s, paf, pa, pbf, pb, n)) in dims.into_iter().enumerate() {
        if k == 0 {
            return Err(e.at(kf, Problem::OutOfRange));
        }
        if s == 0 {
            return Err(e.at(sf, Problem::OutOfRange));
        }
        if pa >= k {
            return Err(e.at(paf, Problem::OutOfRange));
        }
        if pb >= k {
            return Err(e.at(pbf, Problem::OutOfRange));
        }
        let padded = n + pa as usize + pb as usize;
        if padded < k as usize {
            return Err(e.at(kf, Problem::OutOfRange));
        }
        out[i] = (padded - k as usize) / s as usize + 1;
    }
    if r.out_c == 0 {
        return Err(e.at("out_c", Problem::OutOfRange));
    }
    Ok(ConvGeometry {
        input,
        output: Shape::new(out[0], out[1], r.out_c as usize),
        kernel_h: r.kernel_h as usize,
        kernel_w: r.kernel_w as usize,
        stride_h: r.stride_h as usize,
        stride_w: r.stride_w as usize,
        pad_top: r.pad_top as usize,
        pad_left: r.pad_left as usize,
    })
}

/// The geometry of a pool over `input` with window `size` and `stride` (named fields, height
/// then width): the window fits the input, the stride is not zero.
pub(super) fn pool_geometry(
    e: &OpErr,
    input: Shape,
    size: [(&'static str, u16); 2],
    stride: [(&'static str, u16); 2],
) -> Result<PoolGeometry, LoadError> {
    let mut out = [0usize; 2];
    for (i, n) in [input.h, input.w].into_iter().enumerate() {
        let (sf, k) = size[i];
        let (tf, s) = stride[i];
        if k == 0 || k as usize > n {
            return Err(e.at(sf, Problem::OutOfRange));
        }
        if s == 0 {
            return Err(e.at(tf, Problem::OutOfRange));
        }
        out[i] = (n - k as usize) / s as usize + 1;
    }
    Ok(PoolGeometry {
        input,
        output: Shape::new(out[0], out[1], input.c),
        size_h: size[0].1 as usize,
        size_w: size[1].1 as usize,
        stride_h: stride[0].1 as usize,
        stride_w: stride[1].1 as usize,
    })
}

// ---------- weights section ----------

/// The weight and bias bytes of an op with `out` outputs of `per_out` weights each.
pub(super) fn weights_and_bias<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    out: usize,
    per_out: usize,
) -> Result<(&'a [u8], &'a [u8]), LoadError> {
    weights_and_bias_packed(ctx, e, r, out, per_out, ctx.precision == Precision::Int8)
}

#[cfg(feature = "depthwise")]
/// [`weights_and_bias`] of an op whose int8 weights are not packed (depthwise: `out · per_out`
/// weights, in the op's own order).
pub(super) fn weights_and_bias_unpacked<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    out: usize,
    per_out: usize,
) -> Result<(&'a [u8], &'a [u8]), LoadError> {
    weights_and_bias_packed(ctx, e, r, out, per_out, false)
}

fn weights_and_bias_packed<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    out: usize,
    per_out: usize,
    packed: bool,
) -> Result<(&'a [u8], &'a [u8]), LoadError> {
    let wsize = ctx.precision.weight_size();
    // int8 conv and dense weights are packed in groups of 4 taps (padded with zeros); float ones
    // are [out][k].
    let taps = if packed { per_out.div_ceil(TAP_GROUP) * TAP_GROUP } else { per_out };
    let w_len =
        out.checked_mul(taps).and_then(|n| n.checked_mul(wsize)).ok_or(e.at("weights_len", Problem::Overflow))?;
    let w = section_slice(ctx, e, ("weights_offset", r.weights_offset), ("weights_len", r.weights_len), w_len, wsize)?;
    if taps > per_out {
        // The padding taps of the last group must be zero (fast kernels read whole groups).
        let last_group = w.get((taps / TAP_GROUP - 1) * TAP_GROUP * out..).unwrap_or_default();
        let padding_is_zero =
            last_group.chunks_exact(TAP_GROUP).all(|word| word[per_out % TAP_GROUP..].iter().all(|&b| b == 0));
        if !padding_is_zero {
            return Err(e.at("weights_offset", Problem::Mismatch));
        }
    }
    let b_len = out * ctx.precision.bias_size();
    let b = section_slice(ctx, e, ("bias_offset", r.bias_offset), ("bias_len", r.bias_len), b_len, 4)?;
    Ok((w, b))
}

/// The `expected_len` bytes of the weights section at `offset`, aligned to `align`; `len` must
/// say `expected_len`.
fn section_slice<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    (offset_field, offset): (&'static str, u32),
    (len_field, len): (&'static str, u32),
    expected_len: usize,
    align: usize,
) -> Result<&'a [u8], LoadError> {
    if len as usize != expected_len {
        return Err(e.at(len_field, Problem::Mismatch));
    }
    let start = offset as usize;
    if !start.is_multiple_of(align) {
        return Err(e.at(offset_field, Problem::Misaligned));
    }
    let end = start.checked_add(expected_len).ok_or(e.at(offset_field, Problem::Overflow))?;
    ctx.weights.get(start..end).ok_or(e.at(offset_field, Problem::OutOfBounds))
}

/// `bytes` as a slice of `T` (`field` is misaligned otherwise).
pub(super) fn cast<'a, T: Pod>(e: &OpErr, field: &'static str, bytes: &'a [u8]) -> Result<&'a [T], LoadError> {
    bytemuck::try_cast_slice(bytes).map_err(|_| e.at(field, Problem::Misaligned))
}

/// A float op's weights (`W`) and f32 bias.
pub(super) fn float_params<'a, W: Pod>(
    e: &OpErr,
    w_bytes: &'a [u8],
    b_bytes: &'a [u8],
) -> Result<(&'a [W], &'a [f32]), LoadError> {
    let bias = cast(e, "bias_offset", b_bytes)?;
    Ok((cast(e, "weights_offset", w_bytes)?, bias))
}

// ---------- int8 requantization ----------

/// An int8 conv or dense op's bias (`b_bytes`, one per output channel) and requantizer, after
/// checking its output fields and that no accumulator over `k` taps can overflow. `has_avg_pool`:
/// whether an average pool follows (it alone uses `pool_multiplier` and `pool_shift`).
pub(super) fn int8_accumulation<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    requant: Requant,
    b_bytes: &'a [u8],
    k: usize,
    has_avg_pool: bool,
) -> Result<(&'a [i32], Requantizer<'a>), LoadError> {
    let bias: &[i32] = cast(e, "bias_offset", b_bytes)?;
    let requantizer = requantizer(ctx, e, r, requant, bias.len())?;
    check_int8_output(e, r, has_avg_pool)?;
    check_accumulator(e, bias, k, &requantizer)?;
    Ok((bias, requantizer))
}

/// The requantizer `requant` names, for `channels` output channels: the uniform multiplier, or
/// the per-channel multipliers at `quant_offset`; the other's fields must be zero.
fn requantizer<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    requant: Requant,
    channels: usize,
) -> Result<Requantizer<'a>, LoadError> {
    match requant {
        Requant::None => Err(e.at("requant", Problem::Unknown)),
        Requant::Uniform => {
            e.unused(&quant_fields(r))?;
            uniform(e, ("multiplier", r.multiplier), ("shift", r.shift))?;
            Ok(Requantizer::Uniform { multiplier: r.multiplier, shift: r.shift })
        }
        Requant::PerChannel => {
            e.unused(&uniform_fields(r))?;
            let bytes =
                section_slice(ctx, e, ("quant_offset", r.quant_offset), ("quant_len", r.quant_len), channels * 4, 4)?;
            let m: &[u32] = cast(e, "quant_offset", bytes)?;
            if !m.iter().all(|&b| quant::per_channel_multiplier_is_valid(b)) {
                return Err(e.at("quant_offset", Problem::OutOfRange));
            }
            Ok(Requantizer::PerChannel(m))
        }
        #[cfg(not(feature = "tflite"))]
        Requant::Tflite => Err(e.at("requant", Problem::NotCompiledIn)),
        #[cfg(feature = "tflite")]
        Requant::Tflite => {
            e.unused(&uniform_fields(r))?;
            let bytes =
                section_slice(ctx, e, ("quant_offset", r.quant_offset), ("quant_len", r.quant_len), channels * 8, 4)?;
            let m: &[[i32; 2]] = cast(e, "quant_offset", bytes)?;
            if !m.iter().all(|&[multiplier, shift]| quant::tflite_pair_is_valid(multiplier, shift)) {
                return Err(e.at("quant_offset", Problem::OutOfRange));
            }
            Ok(Requantizer::Tflite(m))
        }
    }
}

/// A valid uniform multiplier `m` and shift `s` (named fields).
fn uniform(e: &OpErr, (mf, m): (&'static str, i32), (sf, s): (&'static str, i32)) -> Result<(), LoadError> {
    if !quant::uniform_multiplier_is_valid(m) {
        return Err(e.at(mf, Problem::OutOfRange));
    }
    if !quant::uniform_shift_is_valid(s) {
        return Err(e.at(sf, Problem::OutOfRange));
    }
    Ok(())
}

/// Zero points and activation range in int8, `act_min <= act_max`; the pool multiplier zero
/// unless an average pool follows.
fn check_int8_output(e: &OpErr, r: &OpRecord, has_avg_pool: bool) -> Result<(), LoadError> {
    for (field, v) in [("conv_zero_point", r.conv_zero_point), ("output_zero_point", r.output_zero_point)] {
        if !I8_RANGE.contains(&v) {
            return Err(e.at(field, Problem::OutOfRange));
        }
    }
    if !I8_RANGE.contains(&r.act_min) {
        return Err(e.at("act_min", Problem::OutOfRange));
    }
    if !I8_RANGE.contains(&r.act_max) || r.act_max < r.act_min {
        return Err(e.at("act_max", Problem::OutOfRange));
    }
    if !has_avg_pool {
        e.unused(&pool_requant_fields(r))?;
    }
    Ok(())
}

/// The requantization of an average pool over `n` values with zero point `zp`, or zeros if `avg`
/// is false (the fields must then be zero). With TFLite's arithmetic (`requant`) the pool divides
/// (no multiplier) and keeps its input's zero point.
pub(super) fn avg_requant(
    e: &OpErr,
    r: &OpRecord,
    zp: i32,
    (avg, requant): (bool, Requant),
    n: usize,
) -> Result<AvgRequant, LoadError> {
    let tflite = requant == Requant::Tflite;
    if tflite && !cfg!(feature = "tflite") {
        return Err(e.at("requant", Problem::NotCompiledIn));
    }
    if !avg || tflite {
        e.unused(&pool_requant_fields(r))?;
        if avg && r.output_zero_point != zp {
            return Err(e.at("output_zero_point", Problem::Mismatch));
        }
        return Ok(AvgRequant {
            input_zero_point: zp,
            multiplier: 0,
            shift: 0,
            output_zero_point: r.output_zero_point,
        });
    }
    uniform(e, ("pool_multiplier", r.pool_multiplier), ("pool_shift", r.pool_shift))?;
    let bound = (n as u64) * 255;
    if bound > i32::MAX as u64 || !uniform_scaled_below(bound, r.pool_multiplier, r.pool_shift) {
        return Err(e.at("pool_multiplier", Problem::AccumulatorOverflow));
    }
    Ok(AvgRequant {
        input_zero_point: zp,
        multiplier: r.pool_multiplier,
        shift: r.pool_shift,
        output_zero_point: r.output_zero_point,
    })
}

/// Checks that `|bias| + k·255·128` (|x − zp| ≤ 255, |w| ≤ 128) fits in i32 and that its
/// requantized value stays below 2^30, so accumulation never overflows and requantization is
/// exact (no saturation).
fn check_accumulator(e: &OpErr, bias: &[i32], k: usize, requant: &Requantizer<'_>) -> Result<(), LoadError> {
    let products = (k as u64).checked_mul(255 * 128).ok_or(e.at("in_c", Problem::AccumulatorOverflow))?;
    for (c, b) in bias.iter().enumerate() {
        let bound = products.saturating_add(b.unsigned_abs() as u64);
        if bound > i32::MAX as u64 {
            return Err(e.at("bias_offset", Problem::AccumulatorOverflow));
        }
        let ok = match *requant {
            Requantizer::Uniform { multiplier, shift } => uniform_scaled_below(bound, multiplier, shift),
            // One multiplier per bias (`requantizer` took `bias.len()` of them).
            Requantizer::PerChannel(m) => m.get(c).is_some_and(|&bits| {
                let mant = ((bits & 0x7F_FFFF) | 0x80_0000) as u64;
                let exp = ((bits >> 23) & 0xFF) as i32 - 150;
                scaled_below(bound, mant, exp)
            }),
            // The left shift must not overflow before the multiply (the result is then at most
            // `bound · m · 2^(shift − 31)` rounded, below 2^30 by the same rule).
            #[cfg(feature = "tflite")]
            Requantizer::Tflite(m) => m.get(c).is_some_and(|&[multiplier, shift]| {
                let left = shift.max(0) as u32;
                (bound << left) <= i32::MAX as u64 && scaled_below(bound, multiplier as u64, shift - 31)
            }),
        };
        if !ok {
            let field = if matches!(requant, Requantizer::Uniform { .. }) { "multiplier" } else { "quant_offset" };
            return Err(e.at(field, Problem::AccumulatorOverflow));
        }
    }
    Ok(())
}

/// Whether `bound` scaled by a uniform multiplier stays below `2^SCALED_LIMIT_LOG2`.
fn uniform_scaled_below(bound: u64, multiplier: i32, shift: i32) -> bool {
    scaled_below(bound, multiplier as u64, -(31 + shift))
}

/// Whether `bound · mant · 2^exp < 2^SCALED_LIMIT_LOG2` (`bound < 2^32`, `mant < 2^31`).
fn scaled_below(bound: u64, mant: u64, exp: i32) -> bool {
    let product = bound * mant;
    let limit = SCALED_LIMIT_LOG2 as i32 - exp;
    if limit >= 64 {
        true
    } else if limit <= 0 {
        product == 0
    } else {
        product < 1u64 << limit
    }
}

// ---------- arena ----------

/// What an op reads, for [`arena_regions`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Reads {
    /// Index of the op.
    pub(super) index: usize,
    /// The tensor at `input_offset` ([`Ctx::tensor_at`]; `None`: no tensor is there).
    pub(super) first: Option<Tensor>,
    /// An add's second operand, or a residual conv2d's residual (resolved already).
    pub(super) second: Option<Tensor>,
    /// Whether the second operand is read in place: the op writes its output over it (a
    /// residual conv2d), so the two regions must be one.
    pub(super) in_place: bool,
}

/// An op's arena regions.
#[derive(Debug, Clone, Copy)]
pub(super) struct Regions {
    /// The input (an add's first operand).
    pub(super) input: Region,
    /// An add's second operand (empty for other ops).
    pub(super) input2: Region,
    /// The output.
    pub(super) output: Region,
    /// The scratch buffer.
    pub(super) scratch: Region,
}

/// The op's arena regions, elements of the precision's activation size inside the arena: the
/// input (`input` elements, a tensor that `reads.first` found there and that no op since its
/// producer overwrote), an add's second operand (likewise), the output (`output` elements,
/// disjoint from both operands) and the scratch (disjoint from all of them, at least `needed`
/// bytes).
pub(super) fn arena_regions(
    ctx: &Ctx<'_>,
    e: &OpErr,
    r: &OpRecord,
    (input, output): (usize, usize),
    reads: Reads,
    needed: usize,
) -> Result<Regions, LoadError> {
    let (arena, elem) = (ctx.arena, ctx.precision.activation_size());
    let region = |field: &'static str, offset: u32, len: usize| -> Result<Region, LoadError> {
        let bytes = len.checked_mul(elem).ok_or(e.at(field, Problem::Overflow))?;
        let region = Region { offset: offset as usize, len: bytes };
        let end = region.offset.checked_add(bytes).ok_or(e.at(field, Problem::Overflow))?;
        if end > arena {
            return Err(e.at(field, Problem::OutOfBounds));
        }
        if !region.offset.is_multiple_of(elem) {
            return Err(e.at(field, Problem::Misaligned));
        }
        Ok(region)
    };
    let input = region("input_offset", r.input_offset, input)?;
    let first = reads.first.ok_or(e.at("input_offset", Problem::Mismatch))?;
    if !intact(ctx, input, first.producer, reads.index) {
        return Err(e.at("input_offset", Problem::Overlap));
    }
    let output = region("output_offset", r.output_offset, output)?;
    if input.overlaps(&output) {
        return Err(e.at("output_offset", Problem::Overlap));
    }
    let mut input2 = Region::default();
    if let Some(second) = reads.second {
        input2 = region("input2_offset", r.input2_offset, second.shape.len())?;
        if !intact(ctx, input2, second.producer, reads.index) {
            return Err(e.at("input2_offset", Problem::Overlap));
        }
        if reads.in_place {
            if input2 != output {
                return Err(e.at("input2_offset", Problem::Mismatch));
            }
        } else if input2.overlaps(&output) {
            return Err(e.at("output_offset", Problem::Overlap));
        }
    }
    let scratch = Region { offset: r.scratch_offset as usize, len: r.scratch_len as usize };
    if scratch.offset.checked_add(scratch.len).is_none_or(|end| end > arena) {
        return Err(e.at("scratch_len", Problem::OutOfBounds));
    }
    if scratch.overlaps(&input) || scratch.overlaps(&input2) || scratch.overlaps(&output) {
        return Err(e.at("scratch_offset", Problem::Overlap));
    }
    if scratch.len < needed {
        return Err(e.at("scratch_len", Problem::OutOfRange));
    }
    Ok(Regions { input, input2, output, scratch })
}

/// Whether the tensor in `region`, written by op `producer` (`None`: the model input, there
/// before op 0), is still intact when op `index` runs: no op after the producer and before
/// `index` has its output or scratch overlapping it. (Each of those ops was validated, so its
/// regions lie in the arena and their lengths do not overflow.)
fn intact(ctx: &Ctx<'_>, region: Region, producer: Option<usize>, index: usize) -> bool {
    let from = producer.map_or(0, |j| j.saturating_add(1));
    let between = ctx.records.get(from..index).unwrap_or_default();
    let elem = ctx.precision.activation_size();
    between.iter().all(|k| {
        let out = Shape::new(k.out_h as usize, k.out_w as usize, k.out_c as usize);
        let output = Region { offset: k.output_offset as usize, len: out.len().saturating_mul(elem) };
        let scratch = Region { offset: k.scratch_offset as usize, len: k.scratch_len as usize };
        !region.overlaps(&output) && !region.overlaps(&scratch)
    })
}
