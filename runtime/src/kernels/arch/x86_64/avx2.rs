//! AVX2: the 4 input bytes of a pixel, widened to i16 and broadcast, times the packed weights of
//! 4 channels widened to i16, summed pairwise into i32 (`vpmaddwd`): 8 channels per block for 4
//! pixels. `_mm256_maddubs_epi16` is not used for products: it saturates its i16 pair sums, so
//! it is not exact for `u8 × i8`.

use core::arch::x86_64::*;

use crate::format::TAP_GROUP;
use crate::kernels::driver::{self, MAX_BLOCK, Micro};
use crate::kernels::params::{AddS8, AvgRequant, ConvS8, DenseS8, DepthwiseS8, ParamError, PoolGeometry, Requantizer};

/// Whether this CPU has AVX2 (detected at run time with `std`, else the compile-time target).
pub fn is_available() -> bool {
    #[cfg(any(feature = "std", test))]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(any(feature = "std", test)))]
    {
        cfg!(target_feature = "avx2")
    }
}

pub(crate) struct Avx2;

/// Channels per block.
const BLOCK: usize = 8;

impl Micro for Avx2 {
    const OFFSET: i32 = 128;
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
        if n != BLOCK {
            return driver::accumulate_portable::<P>(Self::OFFSET, patches, groups, weights, out, oc0, n, bias, acc);
        }
        // SAFETY: AVX2 is available; each group reads the 32 bytes of channels oc0..oc0 + 8
        // (in bounds: oc0 + 8 <= out) and the 4 patch bytes at 4g (in bounds: every patch holds
        // at least 4·groups bytes, the `accumulate` contract).
        unsafe {
            // Lane 2j of lo (hi) holds taps 0-1 of channel j (j + 4), lane 2j + 1 taps 2-3.
            let mut lo = [_mm256_setzero_si256(); P];
            let mut hi = [_mm256_setzero_si256(); P];
            for g in 0..groups {
                let w = weights.as_ptr().add((g * out + oc0) * TAP_GROUP);
                let w_lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.cast()));
                let w_hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(16).cast()));
                for p in 0..P {
                    let quad = _mm_cvtsi32_si128(core::ptr::read_unaligned(
                        patches[p].as_ptr().add(g * TAP_GROUP).cast::<i32>(),
                    ));
                    let x = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(quad));
                    lo[p] = _mm256_add_epi32(lo[p], _mm256_madd_epi16(x, w_lo));
                    hi[p] = _mm256_add_epi32(hi[p], _mm256_madd_epi16(x, w_hi));
                }
            }
            let b = _mm256_loadu_si256(bias.as_ptr().add(oc0).cast());
            for p in 0..P {
                // hadd: [c0 c1 c4 c5 | c2 c3 c6 c7]; the permute restores channel order.
                let sums = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(lo[p], hi[p]));
                _mm256_storeu_si256(acc[p].as_mut_ptr().cast(), _mm256_add_epi32(sums, b));
            }
        }
    }

    #[inline(always)]
    unsafe fn weight_sums(weights: &[i8], out: usize, sums: &mut [i32]) {
        let groups = weights.len() / (TAP_GROUP * out).max(1);
        // SAFETY: AVX2 is available; masked loads and stores of the channels c0..min(c0 + 8,
        // out): inside each group's `4·out` bytes and `sums` (`out` values, the contract).
        unsafe {
            let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
            for c0 in (0..out).step_by(BLOCK) {
                let m = _mm256_cmpgt_epi32(
                    _mm256_set1_epi32((out - c0).min(BLOCK) as i32),
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                );
                // 4 independent chains, as in the AVX-512 module.
                let mut s = [_mm256_setzero_si256(); 4];
                for g in 0..groups {
                    let w = _mm256_maskload_epi32(weights.as_ptr().add((g * out + c0) * TAP_GROUP).cast(), m);
                    // 1·w + 1·w' fits i16, so maddubs cannot saturate here.
                    s[g % 4] = _mm256_add_epi32(s[g % 4], _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, w), ones16));
                }
                let total = _mm256_add_epi32(_mm256_add_epi32(s[0], s[1]), _mm256_add_epi32(s[2], s[3]));
                _mm256_maskstore_epi32(sums.as_mut_ptr().add(c0), m, total);
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
            let full = n / BLOCK * BLOCK;
            // SAFETY: AVX2 is available; `pairs` holds `n` pairs (just sliced), `acc` and `out`
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
        let full = n / BLOCK * BLOCK;
        // SAFETY: AVX2 is available; 8-lane loads at j + 8 <= n of `acc` (n <= acc.len()) and of
        // `m[oc0..]` (oc0 + n <= m.len(), the `requantize` contract), and stores of 8 bytes into
        // out[j..j + 8] (n <= out.len()). Rounding: see the AVX-512 module.
        unsafe {
            let (zpv, lo, hi) = (_mm256_set1_epi32(zp), _mm256_set1_epi32(min), _mm256_set1_epi32(max));
            for j in (0..full).step_by(BLOCK) {
                let a = _mm256_cvtepi32_ps(_mm256_loadu_si256(acc.as_ptr().add(j).cast()));
                let mv = _mm256_castsi256_ps(_mm256_loadu_si256(m.as_ptr().add(oc0 + j).cast()));
                let r = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(a, mv)), zpv);
                let r = _mm256_min_epi32(_mm256_max_epi32(r, lo), hi);
                // Values are in [-128, 127]: pack 32 -> 16 -> 8 bits without saturating anything.
                let r16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256::<1>(r));
                let r8 = _mm_packs_epi16(r16, r16);
                _mm_storel_epi64(out.as_mut_ptr().add(j).cast(), r8);
            }
        }
        driver::requantize_portable(&acc[full..], n - full, oc0 + full, requant, zp, min, max, &mut out[full..]);
    }
}

/// TFLite's requantization ([`crate::quant::requantize_tflite`]) of the first `full` (a
/// multiple of 8) accumulators with their `[multiplier, shift]` pairs, as the AVX-512 module
/// does it: the left shift, `(a·b + 2^30) >> 31` on 64-bit lanes (whose low 32 bits a logical
/// shift gives as well as an arithmetic one), then `RoundingDivideByPOT`.
///
/// # Safety
/// AVX2; `full <= acc.len()`, `full <= pairs.len()`, `full <= out.len()`, `full % 8 == 0`, and
/// validated shifts (`-31..=30`).
#[cfg(feature = "tflite")]
#[inline(always)]
unsafe fn requantize_tflite(acc: &[i32], full: usize, pairs: &[[i32; 2]], zp: i32, min: i32, max: i32, out: &mut [i8]) {
    // SAFETY: 8-lane loads of `acc[j..j + 8]` and 16-lane (two 8-lane) loads of the pairs
    // `pairs[j..j + 8]`, stores of 8 bytes at `out[j..]`, all for j + 8 <= full (the caller's
    // bounds); the rest is register arithmetic.
    unsafe {
        let (zpv, lo, hi) = (_mm256_set1_epi32(zp), _mm256_set1_epi32(min), _mm256_set1_epi32(max));
        let zero = _mm256_setzero_si256();
        let one = _mm256_set1_epi32(1);
        let nudge = _mm256_set1_epi64x(1 << 30);
        // [m0 s0 m1 s1 m2 s2 m3 s3] -> [m0 m1 m2 m3 s0 s1 s2 s3].
        let split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        let words = pairs.as_ptr().cast::<i32>();
        for j in (0..full).step_by(BLOCK) {
            let a = _mm256_loadu_si256(acc.as_ptr().add(j).cast());
            let w0 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(words.add(2 * j).cast()), split);
            let w1 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(words.add(2 * j + 8).cast()), split);
            let m = _mm256_permute2x128_si256::<0x20>(w0, w1);
            let shift = _mm256_permute2x128_si256::<0x31>(w0, w1);
            let left = _mm256_max_epi32(shift, zero);
            let right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
            let x = _mm256_sllv_epi32(a, left);
            let pe = _mm256_srli_epi64::<31>(_mm256_add_epi64(_mm256_mul_epi32(x, m), nudge));
            let xo = _mm256_srli_epi64::<32>(x);
            let mo = _mm256_srli_epi64::<32>(m);
            let po = _mm256_srli_epi64::<31>(_mm256_add_epi64(_mm256_mul_epi32(xo, mo), nudge));
            let high = _mm256_blend_epi32::<0b1010_1010>(pe, _mm256_slli_epi64::<32>(po));
            // RoundingDivideByPOT(high, right).
            let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
            let remainder = _mm256_and_si256(high, mask);
            let negative = _mm256_srli_epi32::<31>(high);
            let threshold = _mm256_add_epi32(_mm256_srli_epi32::<1>(mask), negative);
            let q = _mm256_srav_epi32(high, right);
            // cmpgt gives -1 where the remainder is above the threshold: subtract it.
            let q = _mm256_sub_epi32(q, _mm256_cmpgt_epi32(remainder, threshold));
            let r = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(q, zpv), lo), hi);
            let r16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256::<1>(r));
            let r8 = _mm_packs_epi16(r16, r16);
            _mm_storel_epi64(out.as_mut_ptr().add(j).cast(), r8);
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
/// The CPU must have AVX2 ([`is_available`]).
#[target_feature(enable = "avx2")]
pub unsafe fn conv2d_s8(
    op: &ConvS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    // SAFETY: AVX2 is enabled for this function.
    unsafe { driver::conv2d_s8::<Avx2>(op, input, output, scratch) }
}

/// int8 dense layer (see [`crate::kernels::reference::dense_s8`]).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::dense_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX2 ([`is_available`]).
#[target_feature(enable = "avx2")]
pub unsafe fn dense_s8(
    op: &DenseS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    // SAFETY: AVX2 is enabled for this function.
    unsafe { driver::dense_s8::<Avx2>(op, input, output, scratch) }
}

/// int8 depthwise convolution (see [`crate::kernels::reference::depthwise_conv2d_s8`]), vectorized
/// by the compiler over channels.
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::depthwise_conv2d_s8`], and returns its
/// [`ParamError`] without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX2 ([`is_available`]).
#[target_feature(enable = "avx2")]
pub unsafe fn depthwise_conv2d_s8(op: &DepthwiseS8<'_>, input: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    // SAFETY: the ISA is available (this function's own contract).
    unsafe { driver::depthwise_conv2d_s8::<Avx2>(op, input, output) }
}

/// int8 element-wise add (see [`crate::kernels::reference::add_s8`]): the driver's loop, equal to
/// the reference bit for bit, without its software rounding call.
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::add_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX2 ([`is_available`]).
#[target_feature(enable = "avx2")]
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
/// The CPU must have AVX2 ([`is_available`]).
#[target_feature(enable = "avx2")]
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
/// The CPU must have AVX2 ([`is_available`]).
#[target_feature(enable = "avx2")]
pub unsafe fn avgpool2d_s8(
    p: &PoolGeometry,
    q: &AvgRequant,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), ParamError> {
    driver::avgpool2d_s8(p, q, input, output)
}
