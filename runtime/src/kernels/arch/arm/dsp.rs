//! DSP extension: `SXTB16` splits a word of 4 int8 into two pairs of i16 (bytes 0,2 and,
//! rotated, 1,3) and `SMLAD` multiplies both pairs and adds them to an accumulator, so one
//! group of 4 taps (one word of the packed weights, one word of the patch) takes 2 `SMLAD`
//! after the unpacking. Patches and weights are unpacked the same way, so the pairing does not
//! change the sum. 2 pixels × 2 channels share each unpacked word. The intrinsics (`__smlad`,
//! `__sxtb16`) are unstable, hence one-instruction `asm!` wrappers.

use crate::format::TAP_GROUP;
use crate::kernels::driver::{self, MAX_BLOCK, Micro};
use crate::kernels::params::{AddS8, AvgRequant, ConvS8, DenseS8, DepthwiseS8, ParamError, PoolGeometry, Requantizer};
use crate::quant;

/// Always available where this module is compiled (the DSP targets).
pub fn is_available() -> bool {
    true
}

pub(crate) struct ArmDsp;

/// `SXTB16 x`: bytes 0 and 2 sign-extended into the two halfwords.
#[inline(always)]
pub(super) fn sxtb16(x: u32) -> u32 {
    let r: u32;
    // SAFETY: a pure register operation of the DSP extension, which this target has.
    unsafe { core::arch::asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack)) };
    r
}

/// `SXTB16 x, ROR #8`: bytes 1 and 3 sign-extended into the two halfwords.
#[inline(always)]
pub(super) fn sxtb16_ror8(x: u32) -> u32 {
    let r: u32;
    // SAFETY: as above.
    unsafe {
        core::arch::asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack))
    };
    r
}

/// `SXTAB16 acc, x`: `acc`'s halfwords plus bytes 0 and 2 of `x`, sign-extended (each halfword
/// wraps on its own).
#[inline(always)]
fn sxtab16(acc: u32, x: u32) -> u32 {
    let r: u32;
    // SAFETY: as above.
    unsafe {
        core::arch::asm!(
            "sxtab16 {r}, {acc}, {x}",
            r = lateout(reg) r,
            acc = in(reg) acc,
            x = in(reg) x,
            options(pure, nomem, nostack)
        )
    };
    r
}

/// `SXTAB16 acc, x, ROR #8`: `acc`'s halfwords plus bytes 1 and 3 of `x`, sign-extended.
#[inline(always)]
fn sxtab16_ror8(acc: u32, x: u32) -> u32 {
    let r: u32;
    // SAFETY: as above.
    unsafe {
        core::arch::asm!(
            "sxtab16 {r}, {acc}, {x}, ror #8",
            r = lateout(reg) r,
            acc = in(reg) acc,
            x = in(reg) x,
            options(pure, nomem, nostack)
        )
    };
    r
}

/// `SMLAD`: `acc + a.lo·b.lo + a.hi·b.hi` (signed halfwords, wrapping).
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: as above. (The Q flag it may set is not read by anything.)
    unsafe {
        core::arch::asm!(
            "smlad {r}, {a}, {b}, {acc}",
            r = lateout(reg) r,
            a = in(reg) a,
            b = in(reg) b,
            acc = in(reg) acc,
            options(pure, nomem, nostack)
        )
    };
    r
}

/// The little-endian word at `p` (one unaligned `LDR`; Armv7-M and Armv7-A allow it).
///
/// # Safety
/// `p..p + 4` must be readable.
#[inline(always)]
pub(super) unsafe fn word(p: *const u8) -> u32 {
    // SAFETY: the caller's contract.
    u32::from_le(unsafe { core::ptr::read_unaligned(p.cast::<u32>()) })
}

/// `clamp(requant(acc, c) + zp, min, max)`: with per-channel multipliers and a hardware FPU,
/// the f32 form, as [`ArmDsp`]'s `requantize` does for a block (one value: no call).
#[inline(always)]
pub(super) fn requantize_one(requant: &Requantizer<'_>, acc: i32, c: usize, zp: i32, min: i32, max: i32) -> i8 {
    #[cfg(target_abi = "eabihf")]
    if let Requantizer::PerChannel(m) = *requant {
        // A validated op has one multiplier per channel: `get` never fails.
        return m.get(c).map_or(0, |&bits| quant::finish(quant::requantize_per_channel_f32(acc, bits), zp, min, max));
    }
    quant::finish(requant.apply(acc, c), zp, min, max)
}

impl Micro for ArmDsp {
    const OFFSET: i32 = 0;
    const BLOCK: usize = MAX_BLOCK;

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
        // The driver's contract: every patch holds >= 4·groups bytes, `weights` holds
        // groups·4·out bytes and oc0 + n <= out, so every word read below is in bounds.
        debug_assert!(patches.iter().all(|p| p.len() >= groups * TAP_GROUP));
        debug_assert!(weights.len() == groups * TAP_GROUP * out && oc0 + n <= out);
        let stride = out * TAP_GROUP;
        // `n <= BLOCK` and `bias` has `oc0 + n` values: neither changes anything, but with them
        // the compiler sees every index below in bounds (no panic path).
        let n = n.min(MAX_BLOCK);
        let Some(bias) = bias.get(oc0..oc0 + n) else { return };
        // Pixel pairs × channel pairs; an odd last pixel or channel repeats its neighbour.
        for p0 in (0..P).step_by(2) {
            let p1 = (p0 + 1).min(P - 1);
            for j0 in (0..n).step_by(2) {
                let j1 = (j0 + 1).min(n - 1).min(MAX_BLOCK - 1);
                let (c0, c1) = (oc0 + j0, oc0 + j1);
                let (Some(&b0), Some(&b1)) = (bias.get(j0), bias.get(j1)) else { return };
                let mut a = [[b0, b1]; 2];
                let (Some(x0), Some(x1)) = (patches.get(p0), patches.get(p1)) else { return };
                let (mut x0p, mut x1p) = (x0.as_ptr(), x1.as_ptr());
                let mut w0p = weights.as_ptr().wrapping_add(c0 * TAP_GROUP).cast::<u8>();
                let mut w1p = weights.as_ptr().wrapping_add(c1 * TAP_GROUP).cast::<u8>();
                for _ in 0..groups {
                    // SAFETY: in bounds by the contract above; the pointers advance by one group.
                    let (x0, x1, w0, w1) = unsafe { (word(x0p), word(x1p), word(w0p), word(w1p)) };
                    let (x0e, x0o, x1e, x1o) = (sxtb16(x0), sxtb16_ror8(x0), sxtb16(x1), sxtb16_ror8(x1));
                    let (w0e, w0o, w1e, w1o) = (sxtb16(w0), sxtb16_ror8(w0), sxtb16(w1), sxtb16_ror8(w1));
                    a[0][0] = smlad(x0o, w0o, smlad(x0e, w0e, a[0][0]));
                    a[0][1] = smlad(x0o, w1o, smlad(x0e, w1e, a[0][1]));
                    a[1][0] = smlad(x1o, w0o, smlad(x1e, w0e, a[1][0]));
                    a[1][1] = smlad(x1o, w1o, smlad(x1e, w1e, a[1][1]));
                    x0p = x0p.wrapping_add(TAP_GROUP);
                    x1p = x1p.wrapping_add(TAP_GROUP);
                    w0p = w0p.wrapping_add(stride);
                    w1p = w1p.wrapping_add(stride);
                }
                acc[p0][j0] = a[0][0];
                acc[p0][j1] = a[0][1];
                acc[p1][j0] = a[1][0];
                acc[p1][j1] = a[1][1];
            }
        }
    }

    /// Each channel's words one group apart, added bytewise into the two halfwords of a register
    /// by `SXTAB16` (2 instructions a word instead of the portable loop's 7 or so), folded into
    /// an i32 by one `SMLAD` with (1, 1) every 64 groups: a halfword gains at most 2 · 128 a
    /// group, so 64 groups stay within ±16,384. 119 K instructions to 10 K for the digits CNN's
    /// dense layer.
    #[inline(never)]
    unsafe fn weight_sums(weights: &[i8], out: usize, sums: &mut [i32]) {
        const ONES: u32 = 0x0001_0001;
        const FOLD: usize = 64;
        let stride = out * TAP_GROUP;
        let groups = weights.len().checked_div(stride).unwrap_or(0);
        for (c, sum) in sums.iter_mut().enumerate().take(out) {
            let mut p = weights.as_ptr().wrapping_add(c * TAP_GROUP).cast::<u8>();
            let (mut total, mut left) = (0i32, groups);
            while left > 0 {
                let n = left.min(FOLD);
                let mut halves = 0u32;
                for _ in 0..n {
                    // SAFETY: the contract (`weights.len() == groups·4·out`, c < out): word
                    // `c` of each of the `groups` groups of `out` words is in bounds.
                    let w = unsafe { word(p) };
                    halves = sxtab16_ror8(sxtab16(halves, w), w);
                    p = p.wrapping_add(stride);
                }
                total = smlad(halves, ONES, total);
                left -= n;
            }
            *sum = total;
        }
    }

    /// With a hardware FPU (`eabihf` targets: Cortex-M4F/M7, Armv7-A), per-channel
    /// requantization is one f32 multiply and tract's rounding trick instead of the 64-bit
    /// integer emulation; the result is the same ([`quant::requantize_per_channel_f32`]).
    #[cfg(target_abi = "eabihf")]
    #[inline(never)]
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
        let Requantizer::PerChannel(m) = *requant else {
            return driver::requantize_portable(acc, n, oc0, requant, zp, min, max, out);
        };
        // `get`, not indexing: never `None` under the contract, and no panic path.
        let (Some(out), Some(acc), Some(m)) = (out.get_mut(..n), acc.get(..n), m.get(oc0..oc0 + n)) else {
            return;
        };
        for ((o, &a), &bits) in out.iter_mut().zip(acc).zip(m) {
            *o = quant::finish(quant::requantize_per_channel_f32(a, bits), zp, min, max);
        }
    }
}

/// int8 convolution (see [`crate::kernels::reference::conv2d_s8`]): pixel pairs widened once,
/// an assembly 2 × 2 micro-kernel (`conv2d.rs`).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::conv2d_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// Always sound where compiled; `unsafe` for the same signature as the other ISAs.
// Never inlined: the hot loop is compiled once, on its own, so a change elsewhere in the runtime
// (or in the firmware) cannot make LTO compile it differently (+6.5 % instructions once).
#[inline(never)]
pub unsafe fn conv2d_s8(
    op: &ConvS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    // SAFETY: the DSP extension is part of every target this module is compiled for.
    unsafe { super::conv2d::conv2d_s8(op, input, output, scratch) }
}

/// int8 dense layer (see [`crate::kernels::reference::dense_s8`]).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::dense_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// Always sound where compiled.
pub unsafe fn dense_s8(
    op: &DenseS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    // SAFETY: as above.
    unsafe { driver::dense_s8::<ArmDsp>(op, input, output, scratch) }
}

/// int8 depthwise convolution (see [`crate::kernels::reference::depthwise_conv2d_s8`]): 4
/// channels at a time with `SMLABB` / `SMLATT` on `SXTB16`-split words (`depthwise_conv2d.rs`).
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::depthwise_conv2d_s8`], and returns its
/// [`ParamError`] without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// Always sound where compiled.
pub unsafe fn depthwise_conv2d_s8(op: &DepthwiseS8<'_>, input: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    // SAFETY: the DSP extension is part of every target this module is compiled for.
    unsafe { super::depthwise_conv2d::depthwise_conv2d_s8(op, input, output) }
}

/// int8 element-wise add (see [`crate::kernels::reference::add_s8`]): the driver's loop, equal to
/// the reference bit for bit, without its software rounding call.
///
/// # Errors
/// Checks every argument first, like [`crate::kernels::add_s8`], and returns its [`ParamError`]
/// without touching anything: the ISA is the only precondition left to the caller.
///
/// # Safety
/// Always sound where compiled.
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
/// Always sound where compiled.
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
/// Always sound where compiled.
pub unsafe fn avgpool2d_s8(
    p: &PoolGeometry,
    q: &AvgRequant,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), ParamError> {
    driver::avgpool2d_s8(p, q, input, output)
}
