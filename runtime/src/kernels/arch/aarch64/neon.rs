//! NEON `sdot` (by element): 16 weight bytes (4 channels × 4 taps) times the 4 input bytes of
//! one tap group, selected from a 16-byte patch vector by lane, added by fours into 4 i32 lanes.
//! Blocks of 16 channels for 4 pixels keep 16 accumulators in registers. The `vdotq_laneq_s32`
//! intrinsic is unstable, so `sdot` is a one-instruction `asm!` wrapper.

use core::arch::aarch64::*;

use crate::format::TAP_GROUP;
use crate::kernels::driver::{self, MAX_BLOCK, Micro};
use crate::kernels::params::{AddS8, AvgRequant, ConvS8, DenseS8, DepthwiseS8, ParamError, PoolGeometry, Requantizer};

/// Whether this CPU has the dot-product extension (detected at run time with `std`, else the
/// compile-time target).
pub fn is_available() -> bool {
    #[cfg(any(feature = "std", test))]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(any(feature = "std", test)))]
    {
        cfg!(target_feature = "dotprod")
    }
}

pub(crate) struct NeonDot;

/// Channels per block.
const BLOCK: usize = 16;

/// `acc + sdot(w, x[LANE])`: lane i of the result adds `Σ_{j<4} w[4i + j] · x[4·LANE + j]`.
///
/// # Safety
/// NEON with the dot-product extension; only inlined into functions that enable `dotprod`.
#[inline(always)]
unsafe fn sdot_lane<const LANE: u32>(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a pure register operation; the caller has `dotprod`. The directive lets the
    // assembler take `sdot` even where this function is compiled on its own (an incremental
    // dev build emits a standalone copy, outside the callers' `dotprod` functions).
    unsafe {
        core::arch::asm!(
            ".arch_extension dotprod",
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{lane}]",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg_low16) x,
            lane = const LANE,
            options(pure, nomem, nostack)
        );
    }
    acc
}

/// [`Micro::accumulate`] with `NV` vectors of 4 channels (`n == 4·NV`).
///
/// # Safety
/// NEON + dotprod; the [`Micro::accumulate`] contract with `n == 4·NV`; patches hold a multiple
/// of 16 bytes covering every group.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn accumulate_nv<const NV: usize, const P: usize>(
    patches: [&[u8]; P],
    groups: usize,
    weights: &[i8],
    out: usize,
    oc0: usize,
    bias: &[i32],
    acc: &mut [[i32; MAX_BLOCK]; P],
) {
    // SAFETY: loads read bias[oc0..oc0 + 4·NV], 16 weight bytes of channels oc0 + 4v.. per
    // group (in bounds: oc0 + 4·NV <= out) and 16 patch bytes at 4·g4 < the padded length.
    unsafe {
        let mut a = [[vdupq_n_s32(0); NV]; P];
        for v in 0..NV {
            let b = vld1q_s32(bias.as_ptr().add(oc0 + 4 * v));
            for row in a.iter_mut() {
                row[v] = b;
            }
        }
        let mut g4 = 0;
        while g4 < groups {
            let mut x = [vdupq_n_s8(0); P];
            for (xp, patch) in x.iter_mut().zip(&patches) {
                *xp = vld1q_s8(patch.as_ptr().add(g4 * TAP_GROUP).cast());
            }
            macro_rules! lane {
                ($l:literal) => {
                    if g4 + $l < groups {
                        let w = weights.as_ptr().add(((g4 + $l) * out + oc0) * TAP_GROUP);
                        for v in 0..NV {
                            let wv = vld1q_s8(w.add(16 * v));
                            for p in 0..P {
                                a[p][v] = sdot_lane::<$l>(a[p][v], wv, x[p]);
                            }
                        }
                    }
                };
            }
            lane!(0);
            lane!(1);
            lane!(2);
            lane!(3);
            g4 += 4;
        }
        for (row, regs) in acc.iter_mut().zip(&a) {
            for (v, &reg) in regs.iter().enumerate() {
                vst1q_s32(row.as_mut_ptr().add(4 * v), reg);
            }
        }
    }
}

impl Micro for NeonDot {
    const OFFSET: i32 = 0;
    const BLOCK: usize = BLOCK;

    #[inline(always)]
    unsafe fn accumulate<const P: usize>(
        patches: [&[u8]; P],
        groups: usize,
        weights: &[i8],
        out: usize,
        oc0: usize,
        n: usize,
        bias: &[i32],
        acc: &mut [[i32; MAX_BLOCK]; P],
    ) {
        // SAFETY: the caller's contract; n == 4·NV in each arm.
        unsafe {
            match n {
                4 => accumulate_nv::<1, P>(patches, groups, weights, out, oc0, bias, acc),
                8 => accumulate_nv::<2, P>(patches, groups, weights, out, oc0, bias, acc),
                12 => accumulate_nv::<3, P>(patches, groups, weights, out, oc0, bias, acc),
                16 => accumulate_nv::<4, P>(patches, groups, weights, out, oc0, bias, acc),
                _ => driver::accumulate_portable::<P>(Self::OFFSET, patches, groups, weights, out, oc0, n, bias, acc),
            }
        }
    }

    #[inline(always)]
    unsafe fn requantize(
        acc: &[i32],
        n: usize,
        oc0: usize,
        requant: &Requantizer<'_>,
        zp: i32,
        min: i32,
        max: i32,
        out: &mut [i8],
    ) {
        #[cfg(feature = "tflite")]
        if let Requantizer::Tflite(pairs) = *requant
            && let Some(pairs) = pairs.get(oc0..oc0 + n)
        {
            let full = n / 4 * 4;
            // SAFETY: NEON is available; `pairs` holds `n` pairs (just sliced), `acc` and `out`
            // at least `n` values (the `requantize` contract).
            unsafe { requantize_tflite(acc, full, pairs, zp, min, max, out) };
            return driver::requantize_portable(
                &acc[full..],
                n - full,
                oc0 + full,
                requant,
                zp,
                min,
                max,
                &mut out[full..],
            );
        }
        let Requantizer::PerChannel(m) = *requant else {
            return driver::requantize_portable(acc, n, oc0, requant, zp, min, max, out);
        };
        let full = n / 4 * 4;
        // SAFETY: NEON is available; 4-lane loads of `acc[j..j + 4]` and `m[oc0 + j..][..4]` with
        // j + 4 <= n <= acc.len() and oc0 + n <= m.len() (the `requantize` contract). `scvtf`/`fmul` round to
        // nearest even (the default FPCR) like tract's f32 arithmetic and `fcvtns` rounds half
        // to even; accumulators are bounded below 2^30 at load (no saturation).
        unsafe {
            for j in (0..full).step_by(4) {
                let a = vcvtq_f32_s32(vld1q_s32(acc.as_ptr().add(j)));
                let mv = vreinterpretq_f32_u32(vld1q_u32(m.as_ptr().add(oc0 + j)));
                let r = vaddq_s32(vcvtnq_s32_f32(vmulq_f32(a, mv)), vdupq_n_s32(zp));
                let r = vminq_s32(vmaxq_s32(r, vdupq_n_s32(min)), vdupq_n_s32(max));
                let mut lanes = [0i32; 4];
                vst1q_s32(lanes.as_mut_ptr(), r);
                for (o, &l) in out[j..j + 4].iter_mut().zip(&lanes) {
                    *o = l as i8;
                }
            }
        }
        driver::requantize_portable(&acc[full..], n - full, oc0 + full, requant, zp, min, max, &mut out[full..]);
    }
}

/// TFLite's requantization ([`crate::quant::requantize_tflite`]) of the first `full` (a
/// multiple of 4) accumulators with their `[multiplier, shift]` pairs, as gemmlowp writes it for
/// NEON: `SQRDMULH` is `SaturatingRoundingDoublingHighMul` exactly, and `RoundingDivideByPOT` is a
/// rounding shift (`SRSHL`, ties up) after subtracting 1 from negative values (ties away from
/// zero).
///
/// # Safety
/// NEON; `full <= acc.len()`, `full <= pairs.len()`, `full <= out.len()`, `full % 4 == 0`, and
/// validated shifts (`-31..=30`).
#[cfg(feature = "tflite")]
#[inline(always)]
unsafe fn requantize_tflite(acc: &[i32], full: usize, pairs: &[[i32; 2]], zp: i32, min: i32, max: i32, out: &mut [i8]) {
    // SAFETY: 4-lane loads of `acc[j..j + 4]` and of the pairs `pairs[j..j + 4]` (`vld2q`
    // de-interleaves 8 i32), for j + 4 <= full (the caller's bounds); stores go through a local
    // array and `out[j..j + 4]`, bounds-checked.
    unsafe {
        let zero = vdupq_n_s32(0);
        let words = pairs.as_ptr().cast::<i32>();
        for j in (0..full).step_by(4) {
            let a = vld1q_s32(acc.as_ptr().add(j));
            let pair = vld2q_s32(words.add(2 * j));
            let (m, shift) = (pair.0, pair.1);
            let x = vshlq_s32(a, vmaxq_s32(shift, zero));
            let high = vqrdmulhq_s32(x, m);
            // -right (0 or negative): a negative shift count is a shift right.
            let right = vminq_s32(shift, zero);
            let fixup = vshrq_n_s32::<31>(vandq_s32(high, right));
            let q = vrshlq_s32(vqaddq_s32(high, fixup), right);
            let r = vaddq_s32(q, vdupq_n_s32(zp));
            let r = vminq_s32(vmaxq_s32(r, vdupq_n_s32(min)), vdupq_n_s32(max));
            let mut lanes = [0i32; 4];
            vst1q_s32(lanes.as_mut_ptr(), r);
            for (o, &l) in out[j..j + 4].iter_mut().zip(&lanes) {
                *o = l as i8;
            }
        }
    }
}

/// int8 convolution (see [`crate::kernels::reference::conv2d_s8`]).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::conv2d_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have the dot-product extension ([`is_available`]).
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn conv2d_s8(
    op: &ConvS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    // SAFETY: the features are enabled for this function.
    unsafe { driver::conv2d_s8::<NeonDot>(op, input, output, scratch) }
}

/// int8 dense layer (see [`crate::kernels::reference::dense_s8`]).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::dense_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have the dot-product extension ([`is_available`]).
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dense_s8(
    op: &DenseS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    // SAFETY: the features are enabled for this function.
    unsafe { driver::dense_s8::<NeonDot>(op, input, output, scratch) }
}

/// int8 depthwise convolution (see [`crate::kernels::reference::depthwise_conv2d_s8`]), vectorized
/// by the compiler over channels.
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::depthwise_conv2d_s8`], and returns its
/// [`ParamError`] without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have the dot-product extension ([`is_available`]).
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn depthwise_conv2d_s8(op: &DepthwiseS8<'_>, input: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    // SAFETY: the ISA is available (this function's own contract).
    unsafe { driver::depthwise_conv2d_s8::<NeonDot>(op, input, output) }
}

/// int8 element-wise add (see [`crate::kernels::reference::add_s8`]): the driver's loop, equal to
/// the reference bit for bit, without its software rounding call.
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::add_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have the dot-product extension ([`is_available`]).
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn add_s8(p: &AddS8, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    driver::add_s8(p, a, b, output)
}

/// int8 max pool (see [`crate::kernels::reference::maxpool2d_s8`]), vectorized by the compiler.
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::maxpool2d_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have the dot-product extension ([`is_available`]).
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn maxpool2d_s8(p: &PoolGeometry, input: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    driver::maxpool2d_s8(p, input, output)
}

/// int8 average pool (see [`crate::kernels::reference::avgpool2d_s8`]).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::avgpool2d_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have the dot-product extension ([`is_available`]).
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn avgpool2d_s8(
    p: &PoolGeometry,
    q: &AvgRequant,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), ParamError> {
    driver::avgpool2d_s8(p, q, input, output)
}
