//! Validated kernel parameters: what [`crate::Model::from_bytes`] builds from each plan record.
//!
//! Every value here has been checked once at load (shapes chain, products do not overflow, slices
//! have exactly the lengths the geometry implies, accumulators cannot overflow i32), so kernels
//! index without further checks.

pub use crate::format::Activation;

/// An activation tensor's shape, NHWC without the batch (`h × w × c`, channels fastest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    /// Number of elements.
    pub const fn len(&self) -> usize {
        self.h * self.w * self.c
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
    /// Weights per output channel (`kernel_h · kernel_w · input.c`).
    pub const fn filter_len(&self) -> usize {
        self.kernel_h * self.kernel_w * self.input.c
    }
    /// Multiply-accumulates of the whole convolution.
    pub const fn macs(&self) -> usize {
        self.output.len() * self.filter_len()
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
    /// Elements per window.
    pub const fn window_len(&self) -> usize {
        self.size_h * self.size_w
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
}

impl Requantizer<'_> {
    /// Scales `acc` of output channel `channel`.
    #[inline(always)]
    pub fn apply(&self, acc: i32, channel: usize) -> i32 {
        match *self {
            Requantizer::Uniform { multiplier, shift } => crate::quant::requantize_uniform(acc, multiplier, shift),
            // A validated op has one multiplier per channel: the 0 is never returned.
            Requantizer::PerChannel(m) => {
                m.get(channel).map_or(0, |&bits| crate::quant::requantize_per_channel(acc, bits))
            }
        }
    }
}

/// Requantization of an int8 average pool: `Σ (x − input_zero_point)` over the window, scaled
/// by a uniform multiplier (≈ `s_in / (n · s_out)`), plus `output_zero_point`, clamped to int8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgRequant {
    /// Zero point of the pooled values.
    pub input_zero_point: i32,
    /// Q0.31 multiplier.
    pub multiplier: i32,
    /// Shift.
    pub shift: i32,
    /// Zero point of the pool output.
    pub output_zero_point: i32,
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
    /// Weights, packed (`[ceil(K/4)][out][4]`, zero past `K`).
    pub weights: &'a [i8],
    /// One bias per output channel (scale `s_in · s_w[c]`).
    pub bias: &'a [i32],
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
