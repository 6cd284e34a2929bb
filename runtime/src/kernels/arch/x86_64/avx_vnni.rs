//! AVX-VNNI: `vpdpbusd` on 256-bit vectors (the VEX form of AVX-512 VNNI's instruction; Intel
//! since Alder Lake and Sapphire Rapids, AMD since Zen 4, also on CPUs without AVX-512) multiplies
//! the 4 broadcast input bytes of a pixel with 8 output channels' 4 packed weights and adds them
//! into 8 i32 lanes: 32 MACs an instruction, where AVX2's `vpmaddwd` on widened bytes does 16
//! after two widenings. Blocks of up to 16 channels (2 vectors) for 4 pixels keep 8 accumulators
//! in registers; a partial vector reads its weights and biases with AVX2's masked loads. The
//! weight sums are `vpdpbusd` too; requantization, depthwise convolution, add and pools are the
//! AVX2 module's code, compiled here with AVX-VNNI enabled as well.

use core::arch::x86_64::*;

use super::avx2::Avx2;
use super::{Out, word};
use crate::format::TAP_GROUP;
use crate::kernels::driver::{self, MAX_BLOCK, Micro};
use crate::kernels::params::{AddS8, AvgRequant, ConvS8, DenseS8, DepthwiseS8, ParamError, PoolGeometry, Requantizer};

/// Whether this CPU has AVX2 and AVX-VNNI (detected at run time with `std`, else the
/// compile-time target).
pub fn is_available() -> bool {
    #[cfg(any(feature = "std", test))]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(any(feature = "std", test)))]
    {
        cfg!(all(target_feature = "avx2", target_feature = "avxvnni"))
    }
}

pub(crate) struct AvxVnni;

/// Channels per block: 2 vectors of 8.
const BLOCK: usize = 16;

/// The lane mask (all ones where loaded) of vector `v` of a block of `n` channels.
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn lanes(n: usize, v: usize) -> __m256i {
    let m = n.saturating_sub(8 * v).min(8) as i32;
    // SAFETY: register arithmetic (AVX2: the caller's contract).
    unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
}

/// [`Micro::accumulate`] (or `accumulate_max`) with `NV` vectors of 8 channels.
///
/// # Safety
/// AVX2 and AVX-VNNI; the [`Micro::accumulate`] contract, with `n <= 8·NV`.
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
    // SAFETY: masked-in lanes read `bias[oc0 .. oc0 + n]` and, per group, the `4n` bytes of
    // channels `oc0 .. oc0 + n` in `weights`; masked-out lanes are not accessed (a masked load
    // does not fault on them). The rows and `best` hold MAX_BLOCK >= 8·NV values.
    unsafe {
        let mut mask = [_mm256_setzero_si256(); NV];
        for (v, m) in mask.iter_mut().enumerate() {
            *m = lanes(n, v);
        }
        let mut a = [[_mm256_setzero_si256(); NV]; P];
        for v in 0..NV {
            let b = _mm256_maskload_epi32(bias.as_ptr().add(oc0 + 8 * v), mask[v]);
            for row in a.iter_mut() {
                row[v] = b;
            }
        }
        // One pixel over many groups (a dense layer): 4 independent chains, as in the AVX-512
        // module.
        // A macro, not a closure: a closure would not inherit the entry point's target features.
        macro_rules! load {
            ($g:expr, $v:expr) => {{
                let (g, v) = ($g, $v);
                _mm256_maskload_epi32(weights.as_ptr().add((g * out + oc0) * TAP_GROUP + 32 * v).cast(), mask[v])
            }};
        }
        if P == 1 && groups >= 8 {
            let mut c = [[_mm256_setzero_si256(); NV]; 4];
            // Groups 4 at a time, one chain each (constant indices: the chains stay in
            // registers), then the rest into the first chain.
            let mut g = 0;
            while g + 4 <= groups {
                for (k, ck) in c.iter_mut().enumerate() {
                    let x = _mm256_set1_epi32(word(patches[0], (g + k) * TAP_GROUP));
                    for (v, cv) in ck.iter_mut().enumerate() {
                        *cv = _mm256_dpbusd_avx_epi32(*cv, x, load!(g + k, v));
                    }
                }
                g += 4;
            }
            for g in g..groups {
                let x = _mm256_set1_epi32(word(patches[0], g * TAP_GROUP));
                for (v, cv) in c[0].iter_mut().enumerate() {
                    *cv = _mm256_dpbusd_avx_epi32(*cv, x, load!(g, v));
                }
            }
            for v in 0..NV {
                let sum = _mm256_add_epi32(_mm256_add_epi32(c[0][v], c[1][v]), _mm256_add_epi32(c[2][v], c[3][v]));
                a[0][v] = _mm256_add_epi32(a[0][v], sum);
            }
        } else {
            for g in 0..groups {
                let mut wv = [_mm256_setzero_si256(); NV];
                for (v, w) in wv.iter_mut().enumerate() {
                    *w = load!(g, v);
                }
                for p in 0..P {
                    let x = _mm256_set1_epi32(word(patches[p], g * TAP_GROUP));
                    for v in 0..NV {
                        a[p][v] = _mm256_dpbusd_avx_epi32(a[p][v], x, wv[v]);
                    }
                }
            }
        }
        match out_to {
            Out::Rows(acc) => {
                for (row, av) in acc.iter_mut().zip(&a) {
                    for (v, &x) in av.iter().enumerate() {
                        _mm256_storeu_si256(row.as_mut_ptr().add(8 * v).cast(), x);
                    }
                }
            }
            Out::Max(best) => {
                for v in 0..NV {
                    let dst = best.as_mut_ptr().add(8 * v).cast::<__m256i>();
                    let mut m = _mm256_loadu_si256(dst);
                    for row in &a {
                        m = _mm256_max_epi32(m, row[v]);
                    }
                    _mm256_storeu_si256(dst, m);
                }
            }
        }
    }
}

/// [`accumulate_nv`] with the fewest vectors that hold `n` channels.
///
/// # Safety
/// As [`accumulate_nv`], with `n <= 16`.
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
    // SAFETY: the caller's contract, with n <= 8·NV for the chosen NV.
    unsafe {
        if n <= 8 {
            accumulate_nv::<1, P>(patches, groups, weights, out, oc0, n, bias, out_to)
        } else {
            accumulate_nv::<2, P>(patches, groups, weights, out, oc0, n, bias, out_to)
        }
    }
}

impl super::first_layer::Dot for AvxVnni {
    type V = __m256i;
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn load(p: *const i32, n: usize) -> __m256i {
        // SAFETY: the lanes below `n` are readable (the caller's contract); a masked load does not
        // touch the others.
        unsafe { _mm256_maskload_epi32(p, lanes(n, 0)) }
    }

    #[inline(always)]
    unsafe fn splat(x: i32) -> __m256i {
        // SAFETY: AVX (the caller's contract).
        unsafe { _mm256_set1_epi32(x) }
    }

    #[inline(always)]
    unsafe fn dot(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        // SAFETY: AVX-VNNI (the caller's contract).
        unsafe { _mm256_dpbusd_avx_epi32(acc, x, w) }
    }

    #[inline(always)]
    unsafe fn max(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 (the caller's contract).
        unsafe { _mm256_max_epi32(a, b) }
    }

    #[inline(always)]
    unsafe fn store(p: *mut i32, v: __m256i) {
        // SAFETY: 8 writable lanes at `p` (the caller's contract).
        unsafe { _mm256_storeu_si256(p.cast(), v) }
    }
}

impl Micro for AvxVnni {
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
        // SAFETY: the caller's contract (n <= BLOCK = 16).
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

    /// `vpdpbusd` with all-ones inputs, 8 channels a vector (masked for the last), 4 chains.
    #[inline(always)]
    unsafe fn weight_sums(weights: &[i8], out: usize, sums: &mut [i32]) {
        let groups = weights.len() / (TAP_GROUP * out).max(1);
        // SAFETY: masked loads and stores stay inside each group's `4·out` bytes and `sums`
        // (`out` values, the contract).
        unsafe {
            let ones = _mm256_set1_epi8(1);
            for c0 in (0..out).step_by(8) {
                let m = lanes(out - c0, 0);
                let mut s = [_mm256_setzero_si256(); 4];
                for g in 0..groups {
                    let w = _mm256_maskload_epi32(weights.as_ptr().add((g * out + c0) * TAP_GROUP).cast(), m);
                    s[g % 4] = _mm256_dpbusd_avx_epi32(s[g % 4], ones, w);
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
        // SAFETY: AVX2 is available (part of this ISA); the same contract.
        unsafe { Avx2::requantize(acc, n, oc0, requant, zp, min, max, out) }
    }
}

/// int8 convolution (see [`crate::kernels::reference::conv2d_s8`]).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::conv2d_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX2 and AVX-VNNI ([`is_available`]).
#[target_feature(enable = "avx2,avxvnni")]
pub unsafe fn conv2d_s8(
    op: &ConvS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    // SAFETY: AVX2 and AVX-VNNI are enabled for this function.
    unsafe {
        if let Some(done) = super::first_layer::conv2d_s8::<AvxVnni, AvxVnni>(op, input, output, scratch) {
            return done;
        }
        driver::conv2d_s8::<AvxVnni>(op, input, output, scratch)
    }
}

/// int8 dense layer (see [`crate::kernels::reference::dense_s8`]).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::dense_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX2 and AVX-VNNI ([`is_available`]).
#[target_feature(enable = "avx2,avxvnni")]
pub unsafe fn dense_s8(
    op: &DenseS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    // SAFETY: AVX2 and AVX-VNNI are enabled for this function.
    unsafe { driver::dense_s8::<AvxVnni>(op, input, output, scratch) }
}

/// int8 depthwise convolution (see [`crate::kernels::reference::depthwise_conv2d_s8`]): the
/// AVX2 module's.
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::depthwise_conv2d_s8`], and returns its
/// [`ParamError`] without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX2 and AVX-VNNI ([`is_available`]).
#[target_feature(enable = "avx2,avxvnni")]
pub unsafe fn depthwise_conv2d_s8(op: &DepthwiseS8<'_>, input: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    // SAFETY: AVX2 is enabled for this function.
    unsafe { driver::depthwise_conv2d_s8::<AvxVnni>(op, input, output) }
}

/// int8 element-wise add (see [`crate::kernels::reference::add_s8`]): the driver's loop.
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::add_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX2 and AVX-VNNI ([`is_available`]).
#[target_feature(enable = "avx2,avxvnni")]
pub unsafe fn add_s8(p: &AddS8, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    driver::add_s8(p, a, b, output)
}

/// int8 max pool (see [`crate::kernels::reference::maxpool2d_s8`]).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::maxpool2d_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// The CPU must have AVX2 and AVX-VNNI ([`is_available`]).
#[target_feature(enable = "avx2,avxvnni")]
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
/// The CPU must have AVX2 and AVX-VNNI ([`is_available`]).
#[target_feature(enable = "avx2,avxvnni")]
pub unsafe fn avgpool2d_s8(
    p: &PoolGeometry,
    q: &AvgRequant,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), ParamError> {
    driver::avgpool2d_s8(p, q, input, output)
}
