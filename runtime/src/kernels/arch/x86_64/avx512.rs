//! AVX-512 VNNI: `vpdpbusd` multiplies the 4 broadcast input bytes of a pixel with 16 output
//! channels' 4 packed weights and adds them into 16 i32 lanes. Blocks of up to 64 channels
//! (4 vectors) for 4 pixels keep 16 accumulators in registers; partial vectors use masks, so
//! there is no scalar tail.

use core::arch::x86_64::*;

use super::{Out, word};
use crate::format::TAP_GROUP;
use crate::kernels::driver::{self, MAX_BLOCK, Micro};
use crate::kernels::params::{AddS8, AvgRequant, ConvS8, DenseS8, DepthwiseS8, ParamError, PoolGeometry, Requantizer};

/// Whether this CPU has AVX-512 F, BW and VNNI (detected at run time with `std`, else the
/// compile-time target).
pub fn is_available() -> bool {
    #[cfg(any(feature = "std", test))]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(any(feature = "std", test)))]
    {
        cfg!(all(target_feature = "avx512f", target_feature = "avx512bw", target_feature = "avx512vnni"))
    }
}

pub(crate) struct Avx512Vnni;

/// The lane mask of vector `v` of a block of `n` channels.
#[inline(always)]
fn lanes(n: usize, v: usize) -> u16 {
    let m = n.saturating_sub(16 * v).min(16);
    if m == 16 { u16::MAX } else { (1u16 << m) - 1 }
}

/// [`Micro::accumulate`] with `NV` vectors of 16 channels.
///
/// # Safety
/// AVX-512 F/BW/VNNI; the [`Micro::accumulate`] contract, with `n <= 16·NV`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn accumulate_nv<const NV: usize, const P: usize>(
    patches: [&[u8]; P],
    groups: usize,
    weights: &[i8],
    out: usize,
    oc0: usize,
    n: usize,
    bias: &[i32],
    out_to: Out<'_, P>,
) {
    let mut mask = [0u16; NV];
    for (v, m) in mask.iter_mut().enumerate() {
        *m = lanes(n, v);
    }
    // SAFETY: masked-in lanes read `bias[oc0 .. oc0 + n]` and, per group, the `4n` bytes of
    // channels `oc0 .. oc0 + n` in `weights`; masked-out lanes are not accessed.
    unsafe {
        let mut a = [[_mm512_setzero_si512(); NV]; P];
        for v in 0..NV {
            let b = _mm512_maskz_loadu_epi32(mask[v], bias.as_ptr().add(oc0 + 16 * v));
            for row in a.iter_mut() {
                row[v] = b;
            }
        }
        // One pixel over many groups (a dense layer): 4 independent chains of `vpdpbusd`,
        // summed at the end, so that the loop is not bound by the instruction's latency
        // (wrapping sums: the same i32 result).
        // A macro, not a closure: a closure would not inherit the entry point's target features.
        macro_rules! load {
            ($g:expr, $v:expr) => {{
                let (g, v) = ($g, $v);
                _mm512_maskz_loadu_epi32(mask[v], weights.as_ptr().add((g * out + oc0) * TAP_GROUP + 64 * v).cast())
            }};
        }
        if P == 1 && groups >= 8 {
            let mut c = [[_mm512_setzero_si512(); NV]; 4];
            // Groups 4 at a time, one chain each (constant indices: the chains stay in
            // registers), then the rest into the first chain.
            let mut g = 0;
            while g + 4 <= groups {
                for (k, ck) in c.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32(word(patches[0], (g + k) * TAP_GROUP));
                    for (v, cv) in ck.iter_mut().enumerate() {
                        *cv = _mm512_dpbusd_epi32(*cv, x, load!(g + k, v));
                    }
                }
                g += 4;
            }
            for g in g..groups {
                let x = _mm512_set1_epi32(word(patches[0], g * TAP_GROUP));
                for (v, cv) in c[0].iter_mut().enumerate() {
                    *cv = _mm512_dpbusd_epi32(*cv, x, load!(g, v));
                }
            }
            for v in 0..NV {
                let sum = _mm512_add_epi32(_mm512_add_epi32(c[0][v], c[1][v]), _mm512_add_epi32(c[2][v], c[3][v]));
                a[0][v] = _mm512_add_epi32(a[0][v], sum);
            }
        } else {
            for g in 0..groups {
                let mut wv = [_mm512_setzero_si512(); NV];
                for (v, w) in wv.iter_mut().enumerate() {
                    *w = load!(g, v);
                }
                for p in 0..P {
                    let x = _mm512_set1_epi32(word(patches[p], g * TAP_GROUP));
                    for v in 0..NV {
                        a[p][v] = _mm512_dpbusd_epi32(a[p][v], x, wv[v]);
                    }
                }
            }
        }
        match out_to {
            Out::Rows(acc) => {
                for p in 0..P {
                    for v in 0..NV {
                        _mm512_mask_storeu_epi32(acc[p].as_mut_ptr().add(16 * v), mask[v], a[p][v]);
                    }
                }
            }
            Out::Max(best) => {
                for v in 0..NV {
                    let dst = best.as_mut_ptr().add(16 * v);
                    let mut m = _mm512_maskz_loadu_epi32(mask[v], dst);
                    for row in &a {
                        m = _mm512_max_epi32(m, row[v]);
                    }
                    _mm512_mask_storeu_epi32(dst, mask[v], m);
                }
            }
        }
    }
}

/// [`accumulate_nv`] with the fewest vectors that hold `n` channels.
///
/// # Safety
/// As [`accumulate_nv`], with `n <= 64`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn accumulate_any<const P: usize>(
    patches: [&[u8]; P],
    groups: usize,
    weights: &[i8],
    out: usize,
    oc0: usize,
    n: usize,
    bias: &[i32],
    out_to: Out<'_, P>,
) {
    // SAFETY: the caller's contract, with n <= 16·NV for the chosen NV.
    unsafe {
        match n.div_ceil(16) {
            0 | 1 => accumulate_nv::<1, P>(patches, groups, weights, out, oc0, n, bias, out_to),
            2 => accumulate_nv::<2, P>(patches, groups, weights, out, oc0, n, bias, out_to),
            3 => accumulate_nv::<3, P>(patches, groups, weights, out, oc0, n, bias, out_to),
            _ => accumulate_nv::<4, P>(patches, groups, weights, out, oc0, n, bias, out_to),
        }
    }
}

impl super::first_layer::Dot for Avx512Vnni {
    type V = __m512i;
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn load(p: *const i32, n: usize) -> __m512i {
        // SAFETY: the lanes below `n` are readable (the caller's contract); the others masked.
        unsafe { _mm512_maskz_loadu_epi32(lanes(n, 0), p) }
    }

    #[inline(always)]
    unsafe fn splat(x: i32) -> __m512i {
        // SAFETY: AVX-512 F (the caller's contract).
        unsafe { _mm512_set1_epi32(x) }
    }

    #[inline(always)]
    unsafe fn dot(acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
        // SAFETY: AVX-512 VNNI (the caller's contract).
        unsafe { _mm512_dpbusd_epi32(acc, x, w) }
    }

    #[inline(always)]
    unsafe fn max(a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: AVX-512 F (the caller's contract).
        unsafe { _mm512_max_epi32(a, b) }
    }

    #[inline(always)]
    unsafe fn store(p: *mut i32, v: __m512i) {
        // SAFETY: 16 writable lanes at `p` (the caller's contract).
        unsafe { _mm512_storeu_si512(p.cast(), v) }
    }
}

impl Micro for Avx512Vnni {
    const OFFSET: i32 = 128;
    const BLOCK: usize = 64;

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
        // SAFETY: the caller's contract, with n <= 16·NV for the chosen NV.
        unsafe { accumulate_any::<P>(patches, groups, weights, out, oc0, n, bias, Out::Rows(acc)) }
    }

    #[inline(always)]
    unsafe fn accumulate_max<const P: usize>(
        patches: [&[u8]; P],
        groups: usize,
        weights: &[i8],
        out: usize,
        oc0: usize,
        n: usize,
        bias: &[i32],
        _acc: &mut [[i32; MAX_BLOCK]; P],
        best: &mut [i32; MAX_BLOCK],
    ) {
        // SAFETY: as in `accumulate`.
        unsafe { accumulate_any::<P>(patches, groups, weights, out, oc0, n, bias, Out::Max(best)) }
    }

    #[inline(always)]
    unsafe fn weight_sums(weights: &[i8], out: usize, sums: &mut [i32]) {
        let groups = weights.len() / (TAP_GROUP * out).max(1);
        // SAFETY: masked loads stay inside each group's `4·out` bytes and `sums`.
        unsafe {
            let ones = _mm512_set1_epi8(1);
            for c0 in (0..out).step_by(16) {
                let m = lanes(out - c0, 0);
                // 4 independent chains (a dense layer has hundreds of groups): not bound by
                // `vpdpbusd`'s latency.
                let mut s = [_mm512_setzero_si512(); 4];
                for g in 0..groups {
                    let w = _mm512_maskz_loadu_epi32(m, weights.as_ptr().add((g * out + c0) * TAP_GROUP).cast());
                    s[g % 4] = _mm512_dpbusd_epi32(s[g % 4], ones, w);
                }
                let total = _mm512_add_epi32(_mm512_add_epi32(s[0], s[1]), _mm512_add_epi32(s[2], s[3]));
                _mm512_mask_storeu_epi32(sums.as_mut_ptr().add(c0), m, total);
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
            // SAFETY: `pairs` holds `n` pairs (just sliced); `acc` and `out` at least `n` values
            // (the `requantize` contract, as below).
            return unsafe { requantize_tflite(acc, n, pairs, zp, min, max, out) };
        }
        let Requantizer::PerChannel(m) = *requant else {
            return driver::requantize_portable(acc, n, oc0, requant, zp, min, max, out);
        };
        // SAFETY: masked lanes stay inside `acc[..n]`, `m[oc0..oc0 + n]` and `out[..n]`, all in
        // bounds by the `requantize` contract (oc0 + n <= m.len(), checked by the driver).
        // `cvtdq2ps`/`mulps` round to nearest even like tract's f32 arithmetic and `cvtps2dq`
        // rounds half to even; accumulators are bounded below 2^30 at load (no saturation).
        unsafe {
            let (zp, lo, hi) = (_mm512_set1_epi32(zp), _mm512_set1_epi32(min), _mm512_set1_epi32(max));
            for j in (0..n).step_by(16) {
                let k = lanes(n - j, 0);
                let a = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, acc.as_ptr().add(j)));
                let mv = _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(k, m.as_ptr().add(oc0 + j).cast()));
                let r = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(a, mv)), zp);
                let r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
                _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(j).cast(), k, r);
            }
        }
    }
}

/// TFLite's requantization ([`crate::quant::requantize_tflite`]) of `acc[..n]` with the
/// `[multiplier, shift]` pairs `pairs[..n]`, 16 channels at a time: the left shift, the doubling
/// high multiply as `(a·b + 2^30) >> 31` on 64-bit lanes (the C code's nudge and truncating
/// division, which is that floor), then `RoundingDivideByPOT` with its remainder test.
///
/// # Safety
/// AVX-512 F; `n <= acc.len()`, `n <= pairs.len()`, `n <= out.len()` (the driver's contract),
/// and validated shifts (`-31..=30`).
#[cfg(feature = "tflite")]
#[inline(always)]
unsafe fn requantize_tflite(acc: &[i32], n: usize, pairs: &[[i32; 2]], zp: i32, min: i32, max: i32, out: &mut [i8]) {
    // SAFETY: masked loads and stores touch only the first `n` lanes of `acc` and `out` and the
    // first `2n` i32 of `pairs` (the caller's bounds); the rest is register arithmetic.
    unsafe {
        let (zp, lo, hi) = (_mm512_set1_epi32(zp), _mm512_set1_epi32(min), _mm512_set1_epi32(max));
        let zero = _mm512_setzero_si512();
        let one = _mm512_set1_epi32(1);
        let nudge = _mm512_set1_epi64(1 << 30);
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let words = pairs.as_ptr().cast::<i32>();
        for j in (0..n).step_by(16) {
            let k = lanes(n - j, 0);
            let a = _mm512_maskz_loadu_epi32(k, acc.as_ptr().add(j));
            let w0 = _mm512_maskz_loadu_epi32(lanes(2 * (n - j), 0), words.add(2 * j));
            let w1 = _mm512_maskz_loadu_epi32(lanes(2 * (n - j), 1), words.add(2 * j + 16));
            let m = _mm512_permutex2var_epi32(w0, even, w1);
            let shift = _mm512_permutex2var_epi32(w0, odd, w1);
            let left = _mm512_max_epi32(shift, zero);
            let right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
            let x = _mm512_sllv_epi32(a, left);
            // Even lanes' products, then the odd lanes' (moved down); (ab + 2^30) >> 31 each.
            let pe = _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, m), nudge), 31);
            let xo = _mm512_srli_epi64(x, 32);
            let mo = _mm512_srli_epi64(m, 32);
            let po = _mm512_srai_epi64(_mm512_add_epi64(_mm512_mul_epi32(xo, mo), nudge), 31);
            let high = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
            // RoundingDivideByPOT(high, right).
            let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
            let remainder = _mm512_and_si512(high, mask);
            let negative = _mm512_cmplt_epi32_mask(high, zero);
            let threshold =
                _mm512_mask_add_epi32(_mm512_srli_epi32(mask, 1), negative, _mm512_srli_epi32(mask, 1), one);
            let q = _mm512_srav_epi32(high, right);
            let q = _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(remainder, threshold), q, one);
            let r = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, zp), lo), hi);
            _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(j).cast(), k, r);
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
/// The CPU must have AVX-512 F, BW and VNNI ([`is_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
pub unsafe fn conv2d_s8(
    op: &ConvS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    // SAFETY: the features are enabled for this function.
    unsafe {
        if let Some(done) = super::first_layer::conv2d_s8::<Avx512Vnni, Avx512Vnni>(op, input, output, scratch) {
            return done;
        }
        driver::conv2d_s8::<Avx512Vnni>(op, input, output, scratch)
    }
}

/// int8 dense layer (see [`crate::kernels::reference::dense_s8`]).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::dense_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI ([`is_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
pub unsafe fn dense_s8(
    op: &DenseS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    // SAFETY: the features are enabled for this function.
    unsafe { driver::dense_s8::<Avx512Vnni>(op, input, output, scratch) }
}

/// int8 depthwise convolution (see [`crate::kernels::reference::depthwise_conv2d_s8`]), vectorized
/// by the compiler over channels.
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::depthwise_conv2d_s8`], and returns its
/// [`ParamError`] without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI ([`is_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
pub unsafe fn depthwise_conv2d_s8(op: &DepthwiseS8<'_>, input: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    // SAFETY: the ISA is available (this function's own contract).
    unsafe { driver::depthwise_conv2d_s8::<Avx512Vnni>(op, input, output) }
}

/// int8 element-wise add (see [`crate::kernels::reference::add_s8`]): the driver's loop, equal to
/// the reference bit for bit, without its software rounding call.
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::add_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI ([`is_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
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
/// The CPU must have AVX-512 F, BW and VNNI ([`is_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
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
/// The CPU must have AVX-512 F, BW and VNNI ([`is_available`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
pub unsafe fn avgpool2d_s8(
    p: &PoolGeometry,
    q: &AvgRequant,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), ParamError> {
    driver::avgpool2d_s8(p, q, input, output)
}
