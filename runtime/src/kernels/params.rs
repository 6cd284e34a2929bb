//! Kernel parameters: what [`crate::Model::from_bytes`] builds from each plan record, and their
//! validation.
//!
//! A model checks every value once at load (shapes chain, products do not overflow, slices have
//! exactly the lengths the geometry implies, accumulators cannot overflow i32). The kernels of
//! [`crate::kernels`] are safe functions that anyone can call with any values, so each one checks
//! its arguments again with the `check` methods here (constant work, or one pass over the output
//! channels) and returns a [`ParamError`] instead of reading or writing out of bounds. Once a
//! check has passed, every index a kernel (reference or SIMD) computes is in bounds and no
//! integer arithmetic overflows.

use core::fmt;

pub use crate::format::Activation;
use crate::format::{TAP_GROUP, packed_len};

/// Why a kernel rejected its arguments (see the `check` methods of each parameter type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ParamError {
    /// A dimension, window, kernel size, stride or length is zero.
    Empty,
    /// Shape or size arithmetic overflows `usize`.
    Overflow,
    /// Shapes that must agree do not: a pool window reaching past its input, a pool that changes
    /// the channel count, a fused pool whose input is not the convolution's output.
    Geometry,
    /// The weights do not have the length the geometry implies.
    Weights,
    /// The bias does not have one value per output channel.
    Bias,
    /// The per-channel requantization does not have one multiplier per output channel.
    Requant,
    /// A zero point or activation bound outside int8, or `act_min > act_max`.
    QuantRange,
    /// The worst-case accumulator (`|bias| + k·255·128`, or a pool window's `n·255`) does not fit
    /// in i32.
    Accumulator,
    /// The input does not have the length the geometry implies.
    Input,
    /// The output does not have the length the geometry implies.
    Output,
    /// The scratch buffer is smaller than the kernel's `*_scratch_size`.
    Scratch,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamError::Empty => "a dimension, window, stride or length is zero",
            ParamError::Overflow => "shape arithmetic overflows",
            ParamError::Geometry => "shapes that must agree do not",
            ParamError::Weights => "weights do not have the length the geometry implies",
            ParamError::Bias => "bias does not have one value per output channel",
            ParamError::Requant => "per-channel requantization does not have one multiplier per output channel",
            ParamError::QuantRange => "zero point or activation bound outside int8",
            ParamError::Accumulator => "worst-case accumulator overflows i32",
            ParamError::Input => "input does not have the length the geometry implies",
            ParamError::Output => "output does not have the length the geometry implies",
            ParamError::Scratch => "scratch buffer too small",
        })
    }
}

impl core::error::Error for ParamError {}

/// `a · b`, or [`ParamError::Overflow`].
const fn mul(a: usize, b: usize) -> Result<usize, ParamError> {
    match a.checked_mul(b) {
        Some(v) => Ok(v),
        None => Err(ParamError::Overflow),
    }
}

/// `a + b`, or [`ParamError::Overflow`].
const fn add(a: usize, b: usize) -> Result<usize, ParamError> {
    match a.checked_add(b) {
        Some(v) => Ok(v),
        None => Err(ParamError::Overflow),
    }
}

/// Fails with [`ParamError::Empty`] if any of `values` is zero.
fn nonzero(values: &[usize]) -> Result<(), ParamError> {
    if values.contains(&0) { Err(ParamError::Empty) } else { Ok(()) }
}

/// Fails with `err` unless `got == expected`.
fn same(got: usize, expected: usize, err: ParamError) -> Result<(), ParamError> {
    if got == expected { Ok(()) } else { Err(err) }
}

/// The int8 value range (zero points, activation bounds).
const I8_RANGE: core::ops::RangeInclusive<i32> = -128..=127;

/// Zero points in int8 and `min <= max` in int8.
fn quant_range(zero_points: &[i32], min: i32, max: i32) -> Result<(), ParamError> {
    let ok = zero_points.iter().all(|z| I8_RANGE.contains(z)) && I8_RANGE.contains(&min) && I8_RANGE.contains(&max);
    if ok && min <= max { Ok(()) } else { Err(ParamError::QuantRange) }
}

/// `|bias[c]| + k·255·128 <= i32::MAX` for every channel (|x − zp| ≤ 255, |w| ≤ 128): the
/// int8 accumulator of a `k`-tap dot product cannot overflow.
fn accumulator_fits(k: usize, bias: &[i32]) -> Result<(), ParamError> {
    let products = (k as u64).checked_mul(255 * 128).ok_or(ParamError::Accumulator)?;
    for b in bias {
        if products.saturating_add(b.unsigned_abs() as u64) > i32::MAX as u64 {
            return Err(ParamError::Accumulator);
        }
    }
    Ok(())
}

/// The per-channel multipliers (if any) hold one value per output channel.
fn requant_len(requant: &Requantizer<'_>, out: usize) -> Result<(), ParamError> {
    match requant {
        Requantizer::Uniform { .. } => Ok(()),
        Requantizer::PerChannel(m) => same(m.len(), out, ParamError::Requant),
        #[cfg(feature = "tflite")]
        Requantizer::Tflite(m) => same(m.len(), out, ParamError::Requant),
    }
}

/// An activation tensor's shape, NHWC without the batch (`h × w × c`, channels fastest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Shape {
    /// A shape from its three dimensions.
    pub const fn new(h: usize, w: usize, c: usize) -> Self {
        Self { h, w, c }
    }
    /// Number of elements (saturating at `usize::MAX`; [`Shape::checked_len`] tells overflow).
    pub const fn len(&self) -> usize {
        self.h.saturating_mul(self.w).saturating_mul(self.c)
    }
    /// Number of elements, or [`ParamError::Empty`] if a dimension is zero, or
    /// [`ParamError::Overflow`] if the product overflows `usize`.
    pub const fn checked_len(&self) -> Result<usize, ParamError> {
        if self.h == 0 || self.w == 0 || self.c == 0 {
            return Err(ParamError::Empty);
        }
        match mul(self.h, self.w) {
            Ok(hw) => mul(hw, self.c),
            Err(e) => Err(e),
        }
    }
    /// Whether the shape holds no element.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Index of `(y, x, ch)` in an NHWC buffer.
    #[inline(always)]
    pub const fn index(&self, y: usize, x: usize, ch: usize) -> usize {
        (y * self.w + x) * self.c + ch
    }
}

/// Geometry of a 2-D convolution (cross-correlation), weights OHWI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConvGeometry {
    /// Input shape.
    pub input: Shape,
    /// Convolution output shape (before any fused pool); `output.c` is the filter count.
    pub output: Shape,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Zero rows above the input.
    pub pad_top: usize,
    /// Zero columns left of the input.
    pub pad_left: usize,
}

impl ConvGeometry {
    /// Weights per output channel (`kernel_h · kernel_w · input.c`, saturating).
    pub const fn filter_len(&self) -> usize {
        self.kernel_h.saturating_mul(self.kernel_w).saturating_mul(self.input.c)
    }
    /// Multiply-accumulates of the whole convolution (saturating).
    pub const fn macs(&self) -> usize {
        self.output.len().saturating_mul(self.filter_len())
    }

    /// Checks the geometry on its own: no zero dimension, kernel size or stride; the input,
    /// output and filter sizes, and the input row `(out − 1)·stride + kernel` the last output
    /// reaches, do not overflow. (Padding may be anything: taps outside the input are zero.)
    ///
    /// # Errors
    /// [`ParamError::Empty`] or [`ParamError::Overflow`].
    pub fn check(&self) -> Result<(), ParamError> {
        self.input.checked_len()?;
        self.output.checked_len()?;
        nonzero(&[self.kernel_h, self.kernel_w, self.stride_h, self.stride_w])?;
        mul(mul(self.kernel_h, self.kernel_w)?, self.input.c)?;
        add(mul(self.output.h - 1, self.stride_h)?, self.kernel_h)?;
        add(mul(self.output.w - 1, self.stride_w)?, self.kernel_w)?;
        // The fast paths test `y0 + kernel_h <= input.h` for an in-bounds `y0`.
        add(self.input.h, self.kernel_h)?;
        add(self.input.w, self.kernel_w)?;
        Ok(())
    }
}

/// Geometry of a pool (no padding, output size floored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolGeometry {
    /// Input shape.
    pub input: Shape,
    /// Output shape (same channels).
    pub output: Shape,
    /// Window height.
    pub size_h: usize,
    /// Window width.
    pub size_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
}

impl PoolGeometry {
    /// Elements per window (saturating).
    pub const fn window_len(&self) -> usize {
        self.size_h.saturating_mul(self.size_w)
    }

    /// Checks the geometry on its own: no zero dimension, window or stride; the same channels in
    /// and out; every window inside the input (`(out − 1)·stride + size <= in`, computed without
    /// overflow).
    ///
    /// # Errors
    /// [`ParamError::Empty`], [`ParamError::Overflow`] or [`ParamError::Geometry`].
    pub fn check(&self) -> Result<(), ParamError> {
        self.input.checked_len()?;
        self.output.checked_len()?;
        nonzero(&[self.size_h, self.size_w, self.stride_h, self.stride_w])?;
        same(self.output.c, self.input.c, ParamError::Geometry)?;
        let reach_h = add(mul(self.output.h - 1, self.stride_h)?, self.size_h)?;
        let reach_w = add(mul(self.output.w - 1, self.stride_w)?, self.size_w)?;
        if reach_h > self.input.h || reach_w > self.input.w {
            return Err(ParamError::Geometry);
        }
        mul(self.size_h, self.size_w)?;
        Ok(())
    }

    /// Checks the geometry ([`PoolGeometry::check`]) and the lengths of a standalone pool's
    /// input and output.
    ///
    /// # Errors
    /// As [`PoolGeometry::check`], or [`ParamError::Input`] / [`ParamError::Output`].
    pub fn check_io(&self, input_len: usize, output_len: usize) -> Result<(), ParamError> {
        self.check()?;
        same(input_len, self.input.len(), ParamError::Input)?;
        same(output_len, self.output.len(), ParamError::Output)
    }
}

/// Kind of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Maximum of the window.
    Max,
    /// Mean of the window.
    Avg,
}

/// A float weight element: `f32`, or `half::f16` widened to f32.
pub trait FloatWeight: Copy + bytemuck::Pod {
    /// The weight as f32.
    fn to_f32(self) -> f32;
}

impl FloatWeight for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl FloatWeight for half::f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}

/// Checks a pool fused into a convolution of geometry `conv`: valid, and fed by the whole
/// convolution output.
fn check_fused_pool(conv: &ConvGeometry, pool: &PoolGeometry) -> Result<(), ParamError> {
    pool.check()?;
    same(pool.input.h, conv.output.h, ParamError::Geometry)?;
    same(pool.input.w, conv.output.w, ParamError::Geometry)?;
    same(pool.input.c, conv.output.c, ParamError::Geometry)
}

/// A float convolution with an optional fused activation and pool.
#[derive(Debug, Clone, Copy)]
pub struct ConvF<'a, W> {
    /// Geometry of the convolution.
    pub geometry: ConvGeometry,
    /// Activation applied to each convolution output (before the pool).
    pub activation: Activation,
    /// Pool applied to the activated convolution output.
    pub pool: Option<(PoolKind, PoolGeometry)>,
    /// Weights, OHWI.
    pub weights: &'a [W],
    /// One bias per output channel.
    pub bias: &'a [f32],
}

impl<W> ConvF<'_, W> {
    /// Output elements: the fused pool's output, or the convolution's.
    pub const fn output_len(&self) -> usize {
        match &self.pool {
            Some((_, p)) => p.output.len(),
            None => self.geometry.output.len(),
        }
    }

    /// Checks the op against `input_len` input and `output_len` output elements: the geometry
    /// ([`ConvGeometry::check`]) and fused pool, `geometry.output.c · filter_len` weights, one
    /// bias per output channel, and exactly the input and output lengths the geometry implies.
    ///
    /// # Errors
    /// The first [`ParamError`] found.
    pub fn check(&self, input_len: usize, output_len: usize) -> Result<(), ParamError> {
        let g = &self.geometry;
        g.check()?;
        if let Some((_, p)) = &self.pool {
            check_fused_pool(g, p)?;
        }
        same(self.weights.len(), mul(g.output.c, g.filter_len())?, ParamError::Weights)?;
        same(self.bias.len(), g.output.c, ParamError::Bias)?;
        same(input_len, g.input.len(), ParamError::Input)?;
        same(output_len, self.output_len(), ParamError::Output)
    }
}

/// A float depthwise convolution (channel multiplier 1) with a fused activation.
#[derive(Debug, Clone, Copy)]
pub struct DepthwiseF<'a, W> {
    /// Geometry of the convolution (`output.c == input.c`).
    pub geometry: ConvGeometry,
    /// Activation applied to each output.
    pub activation: Activation,
    /// Weights, `[kernel_h][kernel_w][channels]`.
    pub weights: &'a [W],
    /// One bias per channel.
    pub bias: &'a [f32],
}

impl<W> DepthwiseF<'_, W> {
    /// Checks the op against `input_len` input and `output_len` output elements: the geometry
    /// ([`ConvGeometry::check`]) with as many output channels as input channels,
    /// `kernel_h · kernel_w · channels` weights, one bias per channel, and exactly the input and
    /// output lengths the geometry implies.
    ///
    /// # Errors
    /// The first [`ParamError`] found.
    pub fn check(&self, input_len: usize, output_len: usize) -> Result<(), ParamError> {
        let g = &self.geometry;
        g.check()?;
        same(g.output.c, g.input.c, ParamError::Geometry)?;
        same(self.weights.len(), g.filter_len(), ParamError::Weights)?;
        same(self.bias.len(), g.output.c, ParamError::Bias)?;
        same(input_len, g.input.len(), ParamError::Input)?;
        same(output_len, g.output.len(), ParamError::Output)
    }
}

/// An int8 depthwise convolution (channel multiplier 1):
/// `clamp(requant(bias + Σ (x − in_zp)·w) + out_zp, act_min, act_max)` per channel over its
/// `kernel_h · kernel_w` taps. Weights `[kernel_h][kernel_w][channels]`, not packed.
#[derive(Debug, Clone, Copy)]
pub struct DepthwiseS8<'a> {
    /// Geometry of the convolution (`output.c == input.c`).
    pub geometry: ConvGeometry,
    /// Zero point of the input (padding contributes `x = input_zero_point`, i.e. real zero).
    pub input_zero_point: i32,
    /// Accumulator scaling.
    pub requant: Requantizer<'a>,
    /// Zero point of the output.
    pub output_zero_point: i32,
    /// Lowest output (activation folded into the range).
    pub act_min: i32,
    /// Highest output.
    pub act_max: i32,
    /// Weights, `[kernel_h][kernel_w][channels]`.
    pub weights: &'a [i8],
    /// One bias per channel (scale `s_in · s_w[c]`).
    pub bias: &'a [i32],
}

impl DepthwiseS8<'_> {
    /// Checks the op against `input_len` input and `output_len` output elements: the geometry
    /// ([`ConvGeometry::check`]) with as many output channels as input channels,
    /// `kernel_h · kernel_w · channels` weights, one bias and (per-channel) one multiplier per
    /// channel, zero points and activation range in int8, an accumulator of `kernel_h · kernel_w`
    /// taps that cannot overflow i32, and exactly the input and output lengths the geometry
    /// implies.
    ///
    /// # Errors
    /// The first [`ParamError`] found.
    pub fn check(&self, input_len: usize, output_len: usize) -> Result<(), ParamError> {
        let g = &self.geometry;
        g.check()?;
        same(g.output.c, g.input.c, ParamError::Geometry)?;
        same(self.weights.len(), g.filter_len(), ParamError::Weights)?;
        same(self.bias.len(), g.output.c, ParamError::Bias)?;
        requant_len(&self.requant, g.output.c)?;
        quant_range(&[self.input_zero_point, self.output_zero_point], self.act_min, self.act_max)?;
        accumulator_fits(mul(g.kernel_h, g.kernel_w)?, self.bias)?;
        same(input_len, g.input.len(), ParamError::Input)?;
        same(output_len, g.output.len(), ParamError::Output)
    }
}

/// A float fully connected layer.
#[derive(Debug, Clone, Copy)]
pub struct DenseF<'a, W> {
    /// Input length (flattened NHWC).
    pub input_len: usize,
    /// Output length.
    pub output_len: usize,
    /// Activation.
    pub activation: Activation,
    /// Weights, `[out][in]`.
    pub weights: &'a [W],
    /// One bias per output.
    pub bias: &'a [f32],
}

impl<W> DenseF<'_, W> {
    /// Checks the op against `input_len` input and `output_len` output elements: non-zero
    /// lengths, `input_len · output_len` weights, one bias per output, and exactly those lengths.
    ///
    /// # Errors
    /// The first [`ParamError`] found.
    pub fn check(&self, input_len: usize, output_len: usize) -> Result<(), ParamError> {
        nonzero(&[self.input_len, self.output_len])?;
        same(self.weights.len(), mul(self.input_len, self.output_len)?, ParamError::Weights)?;
        same(self.bias.len(), self.output_len, ParamError::Bias)?;
        same(input_len, self.input_len, ParamError::Input)?;
        same(output_len, self.output_len, ParamError::Output)
    }
}

/// How an int8 conv/dense scales its accumulator (see [`crate::quant`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requantizer<'a> {
    /// tract's uniform path: Q0.31 multiplier and shift.
    Uniform {
        /// Q0.31 multiplier in `[2^30, 2^31)`.
        multiplier: i32,
        /// Shift (total right shift `31 + shift`).
        shift: i32,
    },
    /// tract's per-channel path: the f32 bits of each output channel's multiplier.
    PerChannel(&'a [u32]),
    /// TFLite's arithmetic: each output channel's Q31 `[multiplier, shift]`
    /// ([`crate::quant::requantize_tflite`]; feature `tflite`).
    #[cfg(feature = "tflite")]
    Tflite(&'a [[i32; 2]]),
}

impl Requantizer<'_> {
    /// Scales `acc` of output channel `channel`.
    ///
    /// # Panics
    /// With per-channel multipliers, if `channel` is not below their count (the kernels check
    /// that every channel has one before they start).
    #[inline(always)]
    pub fn apply(&self, acc: i32, channel: usize) -> i32 {
        match *self {
            Requantizer::Uniform { multiplier, shift } => crate::quant::requantize_uniform(acc, multiplier, shift),
            // A validated op has one multiplier per channel: the 0 is never returned.
            Requantizer::PerChannel(m) => {
                m.get(channel).map_or(0, |&bits| crate::quant::requantize_per_channel(acc, bits))
            }
            #[cfg(feature = "tflite")]
            Requantizer::Tflite(m) => {
                m.get(channel).map_or(0, |&[multiplier, shift]| crate::quant::requantize_tflite(acc, multiplier, shift))
            }
        }
    }
}

/// How an int8 average pool turns its window sum into an output value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvgRounding {
    /// tract's: `Σ (x − input_zero_point)` scaled by the uniform `multiplier` and `shift`
    /// (≈ `s_in / (n · s_out)`), rounded half to even, plus `output_zero_point`.
    Multiplier,
    /// TFLite's: the sum of the raw values divided by the window size, rounded half away from
    /// zero ([`crate::quant::tflite_average`]); input and output share their zero point and the
    /// multiplier and shift are unused (zero).
    TfliteDivide,
}

/// Requantization of an int8 average pool: `Σ (x − input_zero_point)` over the window, then
/// its [`AvgRounding`] (a multiplier of 0 stands for TFLite's division: the struct stays 16
/// bytes, which the firmware's stack feels), clamped to int8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgRequant {
    /// Zero point of the pooled values.
    pub input_zero_point: i32,
    /// Q0.31 multiplier ([`AvgRounding::Multiplier`]), or 0 for [`AvgRounding::TfliteDivide`].
    pub multiplier: i32,
    /// Shift (0 with TFLite's division).
    pub shift: i32,
    /// Zero point of the pool output.
    pub output_zero_point: i32,
}

impl AvgRequant {
    /// tract's multiplier, or TFLite's division when the multiplier is 0 (feature `tflite`;
    /// without it, always the multiplier: a blob never gets here with 0).
    #[inline(always)]
    pub fn rounding(&self) -> AvgRounding {
        if cfg!(feature = "tflite") && self.multiplier == 0 {
            AvgRounding::TfliteDivide
        } else {
            AvgRounding::Multiplier
        }
    }

    /// The output value of a window of `count` values whose `Σ (x − input_zero_point)` is `sum`.
    #[inline(always)]
    pub fn finish(&self, sum: i32, count: usize) -> i8 {
        match self.rounding() {
            AvgRounding::Multiplier => crate::quant::finish(
                crate::quant::requantize_uniform(sum, self.multiplier, self.shift),
                self.output_zero_point,
                -128,
                127,
            ),
            AvgRounding::TfliteDivide => {
                // Σ x = sum + count·zp, within i32 for a checked window (count·255 does).
                let count = count as i32;
                let raw = sum.wrapping_add(count.wrapping_mul(self.input_zero_point));
                crate::quant::finish(crate::quant::tflite_average(raw, count), 0, -128, 127)
            }
        }
    }

    /// Checks an average pool of `window` values: zero points in int8, and the window sum
    /// `window · 255` within i32.
    ///
    /// # Errors
    /// [`ParamError::QuantRange`] or [`ParamError::Accumulator`].
    pub fn check(&self, window: usize) -> Result<(), ParamError> {
        quant_range(&[self.input_zero_point, self.output_zero_point], -128, 127)?;
        if self.rounding() == AvgRounding::TfliteDivide && self.input_zero_point != self.output_zero_point {
            return Err(ParamError::QuantRange);
        }
        if (window as u64).checked_mul(255).is_none_or(|bound| bound > i32::MAX as u64) {
            return Err(ParamError::Accumulator);
        }
        Ok(())
    }
}

/// An int8 convolution: `clamp(requant(bias + Σ (x − in_zp)·w) + conv_zp, act_min, act_max)`,
/// optionally followed by a fused max or average pool. Weights are packed
/// (`[ceil(K/4)][out][4]`, see [`crate::format::packed_index`]).
#[derive(Debug, Clone, Copy)]
pub struct ConvS8<'a> {
    /// Geometry of the convolution.
    pub geometry: ConvGeometry,
    /// Zero point of the input (padding contributes `x = input_zero_point`, i.e. real zero).
    pub input_zero_point: i32,
    /// Accumulator scaling.
    pub requant: Requantizer<'a>,
    /// Zero point of the convolution output.
    pub conv_zero_point: i32,
    /// Lowest convolution output (activation folded into the range).
    pub act_min: i32,
    /// Highest convolution output.
    pub act_max: i32,
    /// Fused pool; an average pool carries its requantization.
    pub pool: Option<(PoolKind, PoolGeometry, AvgRequant)>,
    /// A residual add fused after the requantization (no pool then): the output buffer holds
    /// the residual tensor on entry, and each element becomes `add(conv, residual)` with these
    /// parameters (the convolution's output is the add's first operand).
    pub residual: Option<AddS8>,
    /// Weights, packed (`[ceil(K/4)][out][4]`, zero past `K`).
    pub weights: &'a [i8],
    /// One bias per output channel (scale `s_in · s_w[c]`).
    pub bias: &'a [i32],
}

impl ConvS8<'_> {
    /// Output elements: the fused pool's output, or the convolution's.
    pub const fn output_len(&self) -> usize {
        match &self.pool {
            Some((_, p, _)) => p.output.len(),
            None => self.geometry.output.len(),
        }
    }

    /// Scratch bytes the op needs ([`crate::kernels::conv2d_s8_scratch_size`]).
    pub const fn scratch_size(&self) -> usize {
        let window = match &self.pool {
            Some((_, p, _)) => p.window_len(),
            None => 1,
        };
        crate::kernels::conv2d_s8_scratch_size(&self.geometry, window)
    }

    /// Checks the op against `input_len` input and `output_len` output elements: the geometry
    /// ([`ConvGeometry::check`]) and fused pool (with [`AvgRequant::check`] for an average);
    /// packed weights of [`packed_len`]`(filter_len, out)` bytes; one bias and (per-channel)
    /// one multiplier per output channel; zero points and activation range in int8; an
    /// accumulator that cannot overflow i32; exactly the input and output lengths the geometry
    /// implies.
    ///
    /// # Errors
    /// The first [`ParamError`] found.
    pub fn check(&self, input_len: usize, output_len: usize) -> Result<(), ParamError> {
        let g = &self.geometry;
        g.check()?;
        if let Some((kind, p, avg)) = &self.pool {
            check_fused_pool(g, p)?;
            if *kind == PoolKind::Avg {
                avg.check(p.window_len())?;
            }
        }
        if let Some(add) = &self.residual {
            // The residual is added to the convolution's own output: no pool between them.
            if self.pool.is_some() {
                return Err(ParamError::Geometry);
            }
            let n = g.output.len();
            add.check(n, n, n)?;
        }
        let (k, out) = (g.filter_len(), g.output.c);
        same(self.weights.len(), packed_weights_len(k, out)?, ParamError::Weights)?;
        same(self.bias.len(), out, ParamError::Bias)?;
        requant_len(&self.requant, out)?;
        quant_range(&[self.input_zero_point, self.conv_zero_point], self.act_min, self.act_max)?;
        accumulator_fits(k, self.bias)?;
        same(input_len, g.input.len(), ParamError::Input)?;
        same(output_len, self.output_len(), ParamError::Output)
    }
}

/// [`packed_len`]`(k, out)` computed without overflow.
fn packed_weights_len(k: usize, out: usize) -> Result<usize, ParamError> {
    let groups = k.div_ceil(TAP_GROUP);
    let len = mul(mul(groups, TAP_GROUP)?, out)?;
    debug_assert_eq!(len, packed_len(k, out));
    Ok(len)
}

/// An int8 fully connected layer: `clamp(requant(bias + Σ (x − in_zp)·w) + out_zp, min, max)`.
/// Weights are packed like a convolution's (`[ceil(K/4)][out][4]`).
#[derive(Debug, Clone, Copy)]
pub struct DenseS8<'a> {
    /// Input length.
    pub input_len: usize,
    /// Output length.
    pub output_len: usize,
    /// Zero point of the input.
    pub input_zero_point: i32,
    /// Accumulator scaling.
    pub requant: Requantizer<'a>,
    /// Zero point of the output.
    pub output_zero_point: i32,
    /// Lowest output.
    pub act_min: i32,
    /// Highest output.
    pub act_max: i32,
    /// Weights, packed (`[ceil(in/4)][out][4]`, zero past `in`).
    pub weights: &'a [i8],
    /// One bias per output.
    pub bias: &'a [i32],
}

impl DenseS8<'_> {
    /// Scratch bytes the op needs ([`crate::kernels::dense_s8_scratch_size`]).
    pub const fn scratch_size(&self) -> usize {
        crate::kernels::dense_s8_scratch_size(self.input_len, self.output_len)
    }

    /// Checks the op against `input_len` input and `output_len` output elements: non-zero
    /// lengths; packed weights of [`packed_len`]`(input_len, output_len)` bytes; one bias and
    /// (per-channel) one multiplier per output; zero points and activation range in int8; an
    /// accumulator that cannot overflow i32; exactly the op's input and output lengths.
    ///
    /// # Errors
    /// The first [`ParamError`] found.
    pub fn check(&self, input_len: usize, output_len: usize) -> Result<(), ParamError> {
        let (k, out) = (self.input_len, self.output_len);
        nonzero(&[k, out])?;
        same(self.weights.len(), packed_weights_len(k, out)?, ParamError::Weights)?;
        same(self.bias.len(), out, ParamError::Bias)?;
        requant_len(&self.requant, out)?;
        quant_range(&[self.input_zero_point, self.output_zero_point], self.act_min, self.act_max)?;
        accumulator_fits(k, self.bias)?;
        same(input_len, k, ParamError::Input)?;
        same(output_len, out, ParamError::Output)
    }
}

/// An int8 element-wise add of two tensors of one shape (a residual connection), as tract-onnx
/// runs ONNX `DequantizeLinear` → `Add` → `QuantizeLinear`: per element, in f32,
/// `y = f32(a − a_zero_point)·a_scale + f32(b − b_zero_point)·b_scale`, then
/// `clamp(round_half_even(y · inv_output_scale) + output_zero_point, act_min, act_max)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AddS8 {
    /// Zero point of the first operand.
    pub a_zero_point: i32,
    /// Scale of the first operand.
    pub a_scale: f32,
    /// Zero point of the second operand.
    pub b_zero_point: i32,
    /// Scale of the second operand.
    pub b_scale: f32,
    /// `1.0 / output_scale`, one f32 division (tract's `f32::recip` of the output scale).
    pub inv_output_scale: f32,
    /// Zero point of the output.
    pub output_zero_point: i32,
    /// Lowest output (activation folded into the range).
    pub act_min: i32,
    /// Highest output.
    pub act_max: i32,
}

impl AddS8 {
    /// Checks the op against operands of `a_len` and `b_len` elements and an output of
    /// `output_len`: zero points and activation range in int8, and three equal lengths. (Any
    /// scales are sound; [`crate::Model::from_bytes`] checks that they are meaningful.)
    ///
    /// # Errors
    /// [`ParamError::QuantRange`], [`ParamError::Input`] or [`ParamError::Output`].
    pub fn check(&self, a_len: usize, b_len: usize, output_len: usize) -> Result<(), ParamError> {
        quant_range(&[self.a_zero_point, self.b_zero_point, self.output_zero_point], self.act_min, self.act_max)?;
        check_add_lengths(a_len, b_len, output_len)
    }
}

/// A float element-wise add of two tensors of one shape, then the activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddF {
    /// Activation applied to each sum.
    pub activation: Activation,
}

impl AddF {
    /// Checks the op against operands of `a_len` and `b_len` elements and an output of
    /// `output_len`: the three lengths are equal.
    ///
    /// # Errors
    /// [`ParamError::Input`] or [`ParamError::Output`].
    pub fn check(&self, a_len: usize, b_len: usize, output_len: usize) -> Result<(), ParamError> {
        check_add_lengths(a_len, b_len, output_len)
    }
}

/// Both operands of an add have the same length, and the output that length too.
fn check_add_lengths(a_len: usize, b_len: usize, output_len: usize) -> Result<(), ParamError> {
    same(b_len, a_len, ParamError::Input)?;
    same(output_len, a_len, ParamError::Output)
}

/// TensorFlow's (and burn's) `same` padding of one dimension: the zero rows (or columns)
/// `(before, after)` around `n` input pixels that give a convolution or pool with a `k`-pixel
/// window and stride `stride` exactly `ceil(n / stride)` outputs. An odd total puts the extra
/// pixel after (bottom or right).
///
/// This is `total = ((max(ceil(n / stride), 1) − 1) · stride + k).saturating_sub(n)` split as
/// `(total / 2, total − total / 2)`, computed so that it never overflows or panics: a `stride`
/// of 0 (no valid convolution has one) gives `(0, 0)`.
///
/// ```
/// use mnistc_runtime::kernels::params::same_pads;
/// assert_eq!(same_pads(28, 3, 1), (1, 1));
/// assert_eq!(same_pads(28, 4, 1), (1, 2)); // even kernel: the extra pixel goes after
/// assert_eq!(same_pads(5, 4, 2), (1, 2));
/// ```
pub const fn same_pads(n: usize, k: usize, stride: usize) -> (usize, usize) {
    if stride == 0 {
        return (0, 0);
    }
    let out = n.div_ceil(stride);
    // The last window starts at `(out − 1) · stride`, which is at most `n`: no overflow, and the
    // window reaches `k − (n − start)` pixels past the input.
    let last_start = out.saturating_sub(1) * stride;
    let total = k.saturating_sub(n - last_start);
    (total / 2, total - total / 2)
}

#[cfg(test)]
mod tests {
    use super::same_pads;

    #[test]
    fn same_pads_puts_the_extra_pixel_after() {
        assert_eq!(same_pads(28, 3, 1), (1, 1));
        assert_eq!(same_pads(28, 4, 1), (1, 2));
        assert_eq!(same_pads(5, 4, 2), (1, 2));
        assert_eq!(same_pads(7, 1, 3), (0, 0));
    }

    #[test]
    fn same_pads_equals_the_plain_formula_and_never_panics() {
        let plain = |n: usize, k: usize, stride: usize| {
            let out = n.div_ceil(stride);
            let total = ((out.max(1) - 1) * stride + k).saturating_sub(n);
            (total / 2, total - total / 2)
        };
        for n in 0..40 {
            for k in 0..12 {
                for stride in 1..8 {
                    assert_eq!(same_pads(n, k, stride), plain(n, k, stride), "n {n}, k {k}, stride {stride}");
                }
            }
        }
        assert_eq!(same_pads(28, 3, 0), (0, 0));
        let big = usize::MAX;
        assert_eq!(same_pads(5, big, 2), ((big - 1) / 2, big - 1 - (big - 1) / 2));
        for (n, k, stride) in [(big, big, 1), (big, big, big), (0, big, 1), (big, 0, 3), (1, big, big)] {
            let (before, after) = same_pads(n, k, stride);
            assert!(before <= after && after - before <= 1);
        }
    }
}
