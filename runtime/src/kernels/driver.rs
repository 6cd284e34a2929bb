//! The shared driver of the int8 fast paths: everything but the inner loops.
//!
//! Every ISA module supplies a [`Micro`] kernel and calls these generic functions from its
//! `#[target_feature]` entry points, so the driver is compiled with that ISA's features. The
//! micro-kernel vectorizes over *output channels*: for each group of 4 taps it broadcasts the 4
//! input bytes of a pixel and multiplies them with the packed weights of a block of channels
//! (`[ceil(K/4)][out][4]`, one 32-bit word per channel and group), accumulating one i32 per
//! channel — no horizontal sums. The driver:
//!
//! - copies each convolution output's receptive field into a contiguous *patch* (im2col) in the
//!   scratch buffer, adding the micro-kernel's input offset (128 for `u8 × i8` instructions such
//!   as `vpdpbusd`: padding becomes `zero_point + offset`, i.e. real zero) and zero-filling the
//!   taps past `K`;
//! - folds the offset into an effective bias once per call,
//!   `bias − (offset + zp_in)·Σ w`, so that `acc = bias_eff + Σ (x + offset)·w = bias + Σ (x − zp_in)·w`
//!   in wrapping i32 arithmetic (exact because the true accumulator fits in i32, which
//!   [`crate::Model::from_bytes`] checks);
//! - walks output pixels in groups of 4 (a fused pool's window, or 4 consecutive pixels) and
//!   channels in the micro-kernel's blocks, requantizes, and max- or average-pools (a max pool
//!   takes the max of the accumulators and requantizes once per window: requantization is
//!   non-decreasing, so that is the max of the requantized values).
//!
//! The results equal [`crate::kernels::reference`] bit for bit; the property suite in
//! `kernels/tests.rs` checks that for every ISA.

use super::patch_len;
use crate::format::TAP_GROUP;
use crate::kernels::params::{
    AddS8, AvgRequant, ConvGeometry, ConvS8, DenseS8, DepthwiseS8, ParamError, PoolGeometry, PoolKind, Requantizer,
};
use crate::quant;

/// Output pixels per micro-kernel call (convolutions).
#[cfg_attr(mnistc_arm_dsp, allow(dead_code))] // the DSP targets have their own convolution
pub(crate) const PIXELS: usize = super::GROUP_PIXELS;
/// Most output channels of one micro-kernel call. The convolution keeps `PIXELS` blocks of i32
/// accumulators on the stack: 16 channels on 32-bit Arm (1 KB less stack on a microcontroller;
/// the DSP micro-kernel works on 2 channels at a time, so the block only sets the bookkeeping),
/// 64 elsewhere (an AVX-512 block is 4 × 16 channels).
pub(crate) const MAX_BLOCK: usize = if cfg!(target_arch = "arm") { 16 } else { 64 };

/// An ISA's int8 micro-kernel.
///
/// # Safety
/// Implementations use instructions of their ISA: call them only where the ISA is available
/// (from a `#[target_feature]` function that checked it, or where it is enabled at compile time).
pub(crate) trait Micro {
    /// What the patches hold: `x + OFFSET` for each int8 input `x` (0: the bits of `x`, read as
    /// `i8`; 128: `x ^ 0x80`, i.e. `x + 128` read as `u8`).
    const OFFSET: i32;
    /// Output channels per call (at most [`MAX_BLOCK`]).
    const BLOCK: usize;

    /// `acc[p][j] = bias[oc0 + j] + Σ_{t < 4·groups} patches[p][t] · W[t][oc0 + j]` for `j < n`,
    /// in wrapping i32 arithmetic. `weights` are packed (`[groups][out][4]`); every patch holds at
    /// least `4·groups` bytes, padded with zeros to a multiple of [`super::PATCH_ALIGN`].
    ///
    /// # Safety
    /// The ISA must be available; `oc0 + n <= out <= bias.len()`, `n <= BLOCK`,
    /// `weights.len() == groups·4·out`.
    #[allow(clippy::too_many_arguments)]
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
        accumulate_portable::<P>(Self::OFFSET, patches, groups, weights, out, oc0, n, bias, acc)
    }

    /// `best[j] = max(best[j], max_p acc[p][j])` for `j < n`, with `acc` as [`Micro::accumulate`]
    /// computes it: the accumulators of a fused max pool's window, reduced without leaving
    /// registers where the ISA can (`acc` is then left alone; otherwise it is scratch).
    ///
    /// # Safety
    /// As [`Micro::accumulate`].
    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(mnistc_arm_dsp, allow(dead_code))] // the DSP targets have their own convolution
    unsafe fn accumulate_max<const P: usize>(
        patches: [&[u8]; P],
        groups: usize,
        weights: &[i8],
        out: usize,
        oc0: usize,
        n: usize,
        bias: &[i32],
        acc: &mut [[i32; MAX_BLOCK]; P],
        best: &mut [i32; MAX_BLOCK],
    ) {
        // SAFETY: the caller's contract.
        unsafe { Self::accumulate::<P>(patches, groups, weights, out, oc0, n, bias, acc) };
        for row in acc.iter() {
            for (b, &v) in best[..n].iter_mut().zip(&row[..n]) {
                *b = (*b).max(v);
            }
        }
    }

    /// `sums[c] = Σ_t W[t][c]` for every output channel (padding taps are zero).
    ///
    /// # Safety
    /// The ISA must be available; `sums.len() == out`, `weights.len() == groups·4·out`.
    unsafe fn weight_sums(weights: &[i8], out: usize, sums: &mut [i32]) {
        weight_sums_portable(weights, out, sums)
    }

    /// `out[j] = clamp(requant(acc[j], oc0 + j) + zp, min, max)` for `j < n`.
    ///
    /// # Safety
    /// The ISA must be available; `n <= acc.len(), out.len()`; with per-channel multipliers
    /// `m`, `oc0 + n <= m.len()` (SIMD implementations load `m[oc0..oc0 + n]` unchecked).
    #[allow(clippy::too_many_arguments)]
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
        requantize_portable(acc, n, oc0, requant, zp, min, max, out)
    }
}

/// The portable form of [`Micro::accumulate`] (reads `x + offset` as `u8` or `i8`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn accumulate_portable<const P: usize>(
    offset: i32,
    patches: [&[u8]; P],
    groups: usize,
    weights: &[i8],
    out: usize,
    oc0: usize,
    n: usize,
    bias: &[i32],
    acc: &mut [[i32; MAX_BLOCK]; P],
) {
    for (p, row) in acc.iter_mut().enumerate() {
        for (j, slot) in row.iter_mut().enumerate().take(n) {
            let c = oc0 + j;
            let mut a = bias[c];
            for g in 0..groups {
                for b in 0..TAP_GROUP {
                    let t = g * TAP_GROUP + b;
                    let x = if offset == 0 { patches[p][t] as i8 as i32 } else { patches[p][t] as i32 };
                    a = a.wrapping_add(x * weights[(g * out + c) * TAP_GROUP + b] as i32);
                }
            }
            *slot = a;
        }
    }
}

/// The portable form of [`Micro::weight_sums`].
#[inline(always)]
pub(crate) fn weight_sums_portable(weights: &[i8], out: usize, sums: &mut [i32]) {
    sums.fill(0);
    let group_len = TAP_GROUP * out;
    if group_len == 0 {
        return;
    }
    for group in weights.chunks_exact(group_len) {
        for (s, word) in sums.iter_mut().zip(group.chunks_exact(TAP_GROUP)) {
            *s += word.iter().map(|&w| w as i32).sum::<i32>();
        }
    }
}

/// The portable form of [`Micro::requantize`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn requantize_portable(
    acc: &[i32],
    n: usize,
    oc0: usize,
    requant: &Requantizer<'_>,
    zp: i32,
    min: i32,
    max: i32,
    out: &mut [i8],
) {
    for (j, (o, &a)) in out.iter_mut().zip(acc).enumerate().take(n) {
        *o = quant::finish(requant.apply(a, oc0 + j), zp, min, max);
    }
}

/// Splits scratch into `n` aligned i32 and the bytes after them (`None` if too small).
pub(crate) fn carve(scratch: &mut [u8], n: usize) -> Option<(&mut [i32], &mut [u8])> {
    // Bytes up to the next multiple of 4 (at most 3, which the scratch sizes include).
    let skip = scratch.as_ptr().addr().wrapping_neg() % core::mem::align_of::<i32>();
    let rest = scratch.get_mut(skip..)?;
    if rest.len() < 4 * n {
        return None;
    }
    let (ints, bytes) = rest.split_at_mut(4 * n);
    let ints: &mut [i32] = bytemuck::try_cast_slice_mut(ints).ok()?;
    Some((ints, bytes))
}

/// `bias − (offset + zp)·Σ w` per output channel, in wrapping arithmetic.
///
/// # Safety
/// `M`'s ISA must be available; `eff.len() == out` and `weights.len() == groups·4·out` (the
/// [`Micro::weight_sums`] contract).
#[inline(always)]
pub(crate) unsafe fn effective_bias<M: Micro>(weights: &[i8], out: usize, bias: &[i32], zp: i32, eff: &mut [i32]) {
    // SAFETY: the caller runs with M's ISA available and passes `eff.len() == out` (from
    // `carve`) and `weights.len() == groups·4·out` (checked on entry to the kernel).
    unsafe { M::weight_sums(weights, out, eff) };
    let correction = M::OFFSET + zp;
    for (e, &b) in eff.iter_mut().zip(bias) {
        *e = b.wrapping_sub(correction.wrapping_mul(*e));
    }
}

/// Writes the patch of conv output `(oy, ox)`: the receptive field in OHWI tap order, each input
/// `x` stored as `x + offset`, padding as `zero_point + offset`. The bytes after the last tap are
/// left alone: the caller zeroes them once per call.
#[cfg_attr(mnistc_arm_dsp, allow(dead_code))] // the DSP targets have their own convolution
#[inline(always)]
fn im2col(g: &ConvGeometry, input: &[i8], (oy, ox): (usize, usize), offset: i32, zp: i32, patch: &mut [u8]) {
    let pad = (zp + offset) as u8;
    let flip = offset as u8; // 0 or 0x80: x + 128 as u8 is x ^ 0x80
    let row_len = g.kernel_w * g.input.c;
    // Slices below are taken with `get`: for a validated op they are all in bounds, and an
    // early return would only leave the patch stale (nothing reads past it), so no panic path.
    if row_len == 0 {
        return;
    }
    let (y0, x0) = ((oy * g.stride_h).wrapping_sub(g.pad_top), (ox * g.stride_w).wrapping_sub(g.pad_left));
    if y0 < g.input.h && y0 + g.kernel_h <= g.input.h && x0 < g.input.w && x0 + g.kernel_w <= g.input.w {
        // The whole receptive field is inside the input: `kernel_h` runs of `row_len` bytes, one
        // input row apart. On the 64-bit targets short runs (a first layer's 1-5 wide kernel over
        // one channel) get fixed-size copies: 25 % off the digits CNN's first layer on x86-64. On
        // Cortex-M they would save 2 % of the instructions for 1.1 KB of code and 1.4 KB of stack.
        let start = g.input.index(y0, x0, 0);
        let Some(src) = input.get(start..start + (g.kernel_h - 1) * g.input.w * g.input.c + row_len) else {
            return;
        };
        let (stride, rows) = (g.input.w * g.input.c, g.kernel_h);
        // A square kernel of 2 to 4 taps over one channel (a grey first layer): one 4-byte load
        // a row, the rows packed into one 16-byte value in registers (constant shifts) and
        // stored at once, taps past K zero as the patch needs.
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if let Some(bits) = match (rows, row_len) {
            (2, 2) => pack_rows::<2, 2>(input, start, stride),
            (3, 3) => pack_rows::<3, 3>(input, start, stride),
            (4, 4) => pack_rows::<4, 4>(input, start, stride),
            _ => None,
        } && let Some(dst) = patch.first_chunk_mut::<16>()
        {
            let taps = u128::MAX >> (128 - 8 * rows * row_len);
            *dst = (bits ^ (taps & u128::from_le_bytes([flip; 16]))).to_le_bytes();
            return;
        }
        match row_len {
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            1 => copy_runs::<1>(src, stride, rows, flip, patch),
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            2 => copy_runs::<2>(src, stride, rows, flip, patch),
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            3 => copy_runs::<3>(src, stride, rows, flip, patch),
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            4 => copy_runs::<4>(src, stride, rows, flip, patch),
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            5 => copy_runs::<5>(src, stride, rows, flip, patch),
            _ => {
                for (ky, dst) in patch.chunks_exact_mut(row_len).take(rows).enumerate() {
                    let Some(run) = src.get(ky * stride..ky * stride + row_len) else { return };
                    for (d, &x) in dst.iter_mut().zip(run) {
                        *d = x as u8 ^ flip;
                    }
                }
            }
        }
        return;
    }
    for (ky, dst) in patch.chunks_exact_mut(row_len).take(g.kernel_h).enumerate() {
        let iy = (oy * g.stride_h + ky).wrapping_sub(g.pad_top);
        if iy >= g.input.h {
            dst.fill(pad);
            continue;
        }
        let x0 = (ox * g.stride_w).wrapping_sub(g.pad_left);
        if x0 < g.input.w && x0 + g.kernel_w <= g.input.w {
            // The whole kernel row is inside the input: one contiguous run.
            let start = g.input.index(iy, x0, 0);
            let Some(run) = input.get(start..start + row_len) else { return };
            for (d, &x) in dst.iter_mut().zip(run) {
                *d = x as u8 ^ flip;
            }
        } else {
            for kx in 0..g.kernel_w {
                let ix = (ox * g.stride_w + kx).wrapping_sub(g.pad_left);
                let Some(cell) = dst.get_mut(kx * g.input.c..(kx + 1) * g.input.c) else { return };
                if ix >= g.input.w {
                    cell.fill(pad);
                } else {
                    let start = g.input.index(iy, ix, 0);
                    let Some(run) = input.get(start..start + g.input.c) else { return };
                    for (d, &x) in cell.iter_mut().zip(run) {
                        *d = x as u8 ^ flip;
                    }
                }
            }
        }
    }
}

/// The `R` runs of `L <= 4` bytes from `start`, `stride` apart, packed into the low `R·L` bytes
/// (`None` if a run leaves `input`): one 4-byte load a run where the input has 4 bytes there,
/// else the run's bytes one by one.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(crate) fn pack_rows<const R: usize, const L: usize>(input: &[i8], start: usize, stride: usize) -> Option<u128> {
    let keep = u64::MAX >> (64 - 8 * L);
    let mut bits = 0u128;
    for ky in 0..R {
        let at = start + ky * stride;
        let run = match input.get(at..).and_then(|s| s.first_chunk::<4>()) {
            Some(w) => u32::from_le_bytes(w.map(|b| b as u8)) as u64 & keep,
            None => input.get(at..at + L)?.iter().rev().fold(0, |acc, &b| (acc << 8) | b as u8 as u64),
        };
        bits |= (run as u128) << (8 * L * ky);
    }
    Some(bits)
}

/// Copies `rows` runs of `N` bytes, `stride` apart in `src`, to the start of `patch`, each byte
/// `x` as `x ^ flip`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn copy_runs<const N: usize>(src: &[i8], stride: usize, rows: usize, flip: u8, patch: &mut [u8]) {
    for (ky, dst) in patch.chunks_exact_mut(N).take(rows).enumerate() {
        let run = &src[ky * stride..ky * stride + N];
        for i in 0..N {
            dst[i] = run[i] as u8 ^ flip;
        }
    }
}

/// int8 convolution with fused activation range and pool (see the module docs).
///
/// Checks its arguments first ([`super::check_conv2d_s8`]): after that, every slice the
/// micro-kernel reads without bounds checks has the length its contract requires (the weights
/// `groups·4·out` bytes, the effective bias and per-channel multipliers `out` values, each patch
/// `patch_len(k) >= 4·groups` bytes).
///
/// # Safety
/// `M`'s ISA must be available.
#[cfg_attr(mnistc_arm_dsp, allow(dead_code))] // the DSP targets have their own convolution
#[inline(always)]
pub(crate) unsafe fn conv2d_s8<M: Micro>(
    op: &ConvS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    super::check_conv2d_s8(op, input, output, scratch)?;
    let g = &op.geometry;
    let k = g.filter_len();
    let out = g.output.c;
    let groups = k.div_ceil(TAP_GROUP);
    let plen = patch_len(k);
    let window = op.pool.map_or(1, |(_, p, _)| p.window_len());
    let slots = if window > PIXELS { window.div_ceil(PIXELS) * PIXELS } else { PIXELS };
    let Some((eff, patches)) = carve(scratch, out) else {
        return Err(ParamError::Scratch);
    };
    // Implied by the check (scratch_size covers these), kept as cheap defence in depth.
    if patches.len() < slots * plen || k == 0 || plen == 0 || out == 0 || op.weights.len() != groups * TAP_GROUP * out {
        return Err(ParamError::Scratch);
    }
    // SAFETY: the caller runs with M's ISA available; `eff` holds `out` values (`carve`) and the
    // weights `groups·4·out` bytes (checked on entry).
    unsafe { effective_bias::<M>(op.weights, out, op.bias, op.input_zero_point, eff) };
    let eff: &[i32] = eff;
    // The taps past K stay zero for the whole call (im2col writes only the first K bytes).
    for patch in patches.chunks_exact_mut(plen).take(slots) {
        patch.get_mut(k..).unwrap_or_default().fill(0);
    }
    let mut acc = [[0i32; MAX_BLOCK]; PIXELS];
    // A pooled block: the running max accumulator, or the running sum of an average.
    let mut pooled = [0i32; MAX_BLOCK];
    let mut q = [0i8; MAX_BLOCK];
    let (min, max) = (op.act_min, op.act_max);

    match op.pool {
        None => {
            let total = g.output.h * g.output.w;
            let mut first = 0;
            // The next pixel to copy, walked in row-major order (no divisions per pixel).
            let mut at = (0, 0);
            let next = |(y, x): (usize, usize)| if x + 1 == g.output.w { (y + 1, 0) } else { (y, x + 1) };
            while first < total {
                let n_px = (total - first).min(PIXELS);
                for (p, patch) in patches.chunks_exact_mut(plen).take(PIXELS).enumerate() {
                    im2col(g, input, at, M::OFFSET, op.input_zero_point, patch);
                    // A last group of fewer than 4 repeats its last pixel.
                    if p + 1 < n_px {
                        at = next(at);
                    }
                }
                at = next(at);
                // Never `None`: the patches hold `slots` (>= PIXELS) patches; checked above.
                let Some(pp) = patch_refs(patches, plen, 0) else { return Err(ParamError::Scratch) };
                for oc0 in (0..out).step_by(M::BLOCK) {
                    let n = (out - oc0).min(M::BLOCK);
                    // SAFETY: M's ISA is available; oc0 + n <= out = eff.len(), n <= M::BLOCK; the weights and
                    // patches have the lengths the contract requires (checked on entry, see above).
                    unsafe { M::accumulate::<PIXELS>(pp, groups, op.weights, out, oc0, n, eff, &mut acc) };
                    match &op.residual {
                        None => {
                            for (p, a) in acc.iter().enumerate().take(n_px) {
                                let base = (first + p) * out + oc0;
                                let Some(dst) = output.get_mut(base..base + n) else {
                                    return Err(ParamError::Output);
                                };
                                // SAFETY: M's ISA is available; n <= MAX_BLOCK (the row), `dst` has n
                                // elements, the per-channel multipliers hold out >= oc0 + n.
                                unsafe { M::requantize(a, n, oc0, &op.requant, op.conv_zero_point, min, max, dst) };
                            }
                        }
                        // Without `residual`, `Model::from_bytes` refuses residual convs.
                        #[cfg(not(feature = "residual"))]
                        Some(_) => return Err(ParamError::Geometry),
                        #[cfg(feature = "residual")]
                        Some(add) => {
                            for (p, a) in acc.iter().enumerate().take(n_px) {
                                let base = (first + p) * out + oc0;
                                let Some(dst) = output.get_mut(base..base + n) else {
                                    return Err(ParamError::Output);
                                };
                                // The convolution's values first, then the add with the residual
                                // that `dst` holds, in place.
                                let conv = &mut q[..n];
                                // SAFETY: as above; `conv` has n elements.
                                unsafe { M::requantize(a, n, oc0, &op.requant, op.conv_zero_point, min, max, conv) };
                                add_in_place(add, conv, dst);
                            }
                        }
                    }
                }
                first += n_px;
            }
            Ok(())
        }
        Some((kind, pg, avg)) => {
            for py in 0..pg.output.h {
                for px in 0..pg.output.w {
                    // The window's conv pixels; the last group of 4 repeats the last pixel.
                    // Walked row by row, not divided out of the slot (an integer division per
                    // patch: 2 % of the digits CNN's first layer on x86-64).
                    let (mut dy, mut dx) = (0, 0);
                    for (slot, patch) in patches.chunks_exact_mut(plen).take(slots).enumerate() {
                        let at = (py * pg.stride_h + dy, px * pg.stride_w + dx);
                        im2col(g, input, at, M::OFFSET, op.input_zero_point, patch);
                        if slot + 1 < window {
                            dx += 1;
                            if dx == pg.size_w {
                                (dy, dx) = (dy + 1, 0);
                            }
                        }
                    }
                    for oc0 in (0..out).step_by(M::BLOCK) {
                        let n = (out - oc0).min(M::BLOCK);
                        let Some(dst) = output.get_mut(pg.output.index(py, px, oc0)..).and_then(|o| o.get_mut(..n))
                        else {
                            return Err(ParamError::Output);
                        };
                        match kind {
                            // Requantization and the activation clamp are non-decreasing in the
                            // accumulator (multipliers are positive, checked at load), so the max
                            // of the requantized values is the requantized max accumulator: one
                            // requantization per window instead of one per pixel.
                            PoolKind::Max => {
                                pooled.fill(i32::MIN);
                                // A last group of fewer than 4 repeats the window's last
                                // pixel, which leaves the max unchanged.
                                for first in (0..window).step_by(PIXELS) {
                                    let Some(pp) = patch_refs(patches, plen, first) else {
                                        return Err(ParamError::Scratch);
                                    };
                                    // SAFETY: as for the unpooled `accumulate` above.
                                    unsafe {
                                        M::accumulate_max::<PIXELS>(
                                            pp,
                                            groups,
                                            op.weights,
                                            out,
                                            oc0,
                                            n,
                                            eff,
                                            &mut acc,
                                            &mut pooled,
                                        )
                                    };
                                }
                                // SAFETY: as for the unpooled `requantize` above.
                                unsafe {
                                    M::requantize(&pooled, n, oc0, &op.requant, op.conv_zero_point, min, max, dst)
                                };
                            }
                            PoolKind::Avg => {
                                pooled.fill(0);
                                for first in (0..window).step_by(PIXELS) {
                                    let Some(pp) = patch_refs(patches, plen, first) else {
                                        return Err(ParamError::Scratch);
                                    };
                                    // SAFETY: as for the unpooled `accumulate` above.
                                    unsafe {
                                        M::accumulate::<PIXELS>(pp, groups, op.weights, out, oc0, n, eff, &mut acc)
                                    };
                                    for a in acc.iter().take((window - first).min(PIXELS)) {
                                        // SAFETY: as for the unpooled `requantize` above.
                                        unsafe {
                                            M::requantize(a, n, oc0, &op.requant, op.conv_zero_point, min, max, &mut q)
                                        };
                                        for (s, &v) in pooled[..n].iter_mut().zip(&q[..n]) {
                                            *s += v as i32 - avg.input_zero_point;
                                        }
                                    }
                                }
                                for (d, &s) in dst.iter_mut().zip(&pooled[..n]) {
                                    *d = avg.finish(s, window);
                                }
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// Patches `first..first + PIXELS` of `patches` (`plen` bytes each); `None` if there are not
/// that many (the micro-kernels read whole patches, so they must never get a short one).
#[cfg_attr(mnistc_arm_dsp, allow(dead_code))] // the DSP targets have their own convolution
#[inline(always)]
fn patch_refs(patches: &[u8], plen: usize, first: usize) -> Option<[&[u8]; PIXELS]> {
    let mut chunks = patches.get(first * plen..)?.chunks_exact(plen);
    Some([chunks.next()?, chunks.next()?, chunks.next()?, chunks.next()?])
}

/// int8 dense layer (see the module docs). Checks its arguments first
/// ([`super::check_dense_s8`]), as [`conv2d_s8`] does.
///
/// # Safety
/// `M`'s ISA must be available.
#[inline(always)]
pub(crate) unsafe fn dense_s8<M: Micro>(
    op: &DenseS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    super::check_dense_s8(op, input, output, scratch)?;
    let (k, out) = (op.input_len, op.output_len);
    let groups = k.div_ceil(TAP_GROUP);
    let plen = patch_len(k);
    let Some((eff, patch)) = carve(scratch, out) else {
        return Err(ParamError::Scratch);
    };
    // Implied by the check, kept as cheap defence in depth.
    let (Some(patch), Some(input)) = (patch.get_mut(..plen), input.get(..k)) else {
        return Err(ParamError::Scratch);
    };
    let Some((taps, padding)) = patch.split_at_mut_checked(k) else {
        return Err(ParamError::Scratch);
    };
    if k == 0 || out == 0 || op.weights.len() != groups * TAP_GROUP * out {
        return Err(ParamError::Scratch);
    }
    let flip = M::OFFSET as u8;
    for (d, &x) in taps.iter_mut().zip(input) {
        *d = x as u8 ^ flip;
    }
    padding.fill(0);
    // SAFETY: the caller runs with M's ISA available; `eff` holds `out` values (`carve`) and the
    // weights `groups·4·out` bytes (checked on entry).
    unsafe { effective_bias::<M>(op.weights, out, op.bias, op.input_zero_point, eff) };
    let eff: &[i32] = eff;
    let mut acc = [[0i32; MAX_BLOCK]; 1];
    for oc0 in (0..out).step_by(M::BLOCK) {
        let n = (out - oc0).min(M::BLOCK);
        let Some(dst) = output.get_mut(oc0..oc0 + n) else { return Err(ParamError::Output) };
        // SAFETY: M's ISA is available; oc0 + n <= out = eff.len(), n <= M::BLOCK; the weights and
        // patches have the lengths the contract requires (checked on entry, see above).
        unsafe {
            M::accumulate::<1>([&*patch], groups, op.weights, out, oc0, n, eff, &mut acc);
            M::requantize(&acc[0], n, oc0, &op.requant, op.output_zero_point, op.act_min, op.act_max, dst);
        }
    }
    Ok(())
}

/// Channels of one block of the depthwise kernel's accumulators (on the stack): as
/// [`MAX_BLOCK`], fewer on 32-bit Arm for the microcontroller's stack.
#[cfg_attr(mnistc_arm_dsp, allow(dead_code))] // the DSP targets have their own kernel
const DEPTHWISE_BLOCK: usize = MAX_BLOCK;

/// int8 depthwise convolution, vectorizable over channels: per output pixel and block of
/// channels, i32 accumulators start at the bias and take each in-bounds tap's `(x − zp)·w` in one
/// loop over contiguous channels (input pixel, weights `[kh][kw][c]` and accumulators alike), then
/// the block is requantized by the ISA's [`Micro::requantize`]. Padded taps are skipped (they add
/// nothing). Checks its arguments first ([`DepthwiseS8::check`]).
///
/// # Safety
/// The ISA of `M` must be available.
#[cfg_attr(mnistc_arm_dsp, allow(dead_code))] // the DSP targets have their own kernel
#[inline(always)]
pub(crate) unsafe fn depthwise_conv2d_s8<M: Micro>(
    op: &DepthwiseS8<'_>,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), ParamError> {
    op.check(input.len(), output.len())?;
    let g = &op.geometry;
    let c = g.input.c;
    let zp = op.input_zero_point;
    let mut block = [0i32; DEPTHWISE_BLOCK];
    for oy in 0..g.output.h {
        for ox in 0..g.output.w {
            let out_at = g.output.index(oy, ox, 0);
            let mut c0 = 0;
            while c0 < c {
                let n = DEPTHWISE_BLOCK.min(c - c0);
                let acc = &mut block[..n];
                let Some(bias) = op.bias.get(c0..c0 + n) else { return Err(ParamError::Bias) };
                acc.copy_from_slice(bias);
                for ky in 0..g.kernel_h {
                    // `check` bounds `(out − 1)·stride + kernel`: no overflow here.
                    let Some(iy) = (oy * g.stride_h + ky).checked_sub(g.pad_top).filter(|&y| y < g.input.h) else {
                        continue;
                    };
                    for kx in 0..g.kernel_w {
                        let Some(ix) = (ox * g.stride_w + kx).checked_sub(g.pad_left).filter(|&x| x < g.input.w) else {
                            continue;
                        };
                        let at = g.input.index(iy, ix, c0);
                        let Some(x) = input.get(at..at + n) else { return Err(ParamError::Input) };
                        let w_at = (ky * g.kernel_w + kx) * c + c0;
                        let Some(w) = op.weights.get(w_at..w_at + n) else { return Err(ParamError::Weights) };
                        for ((a, &xv), &wv) in acc.iter_mut().zip(x).zip(w) {
                            // Exact: `check` bounds the accumulator inside i32.
                            *a = a.wrapping_add((xv as i32 - zp) * wv as i32);
                        }
                    }
                }
                let Some(out) = output.get_mut(out_at + c0..out_at + c0 + n) else { return Err(ParamError::Output) };
                let (zp_out, min, max) = (op.output_zero_point, op.act_min, op.act_max);
                // SAFETY: the ISA is available (the caller's contract); `acc` and `out` hold `n`
                // values and `check` gave every channel a multiplier, so `c0 + n <= m.len()`.
                unsafe { M::requantize(acc, n, c0, &op.requant, zp_out, min, max, out) };
                c0 += n;
            }
        }
    }
    Ok(())
}

/// `1.5 · 2^23`: adding and subtracting it rounds an f32 of magnitude below `2^22` to the nearest
/// integer, ties to even (the FPU's default rounding), in two additions.
const ROUNDING_MAGIC: f32 = 12_582_912.0;

/// `round_half_even(v) as i32` for what an add can produce, without `libm::rintf` (a software
/// routine on the Cortex-M): exact below `2^22` in magnitude; at or above it, where the result
/// saturates the int8 output whatever its last bits, `v` is converted as it is (NaN gives 0 and
/// infinities saturate, as they do after `rintf`).
#[inline(always)]
fn round_to_i32(v: f32) -> i32 {
    let r = if v.abs() < 4_194_304.0 { (v + ROUNDING_MAGIC) - ROUNDING_MAGIC } else { v };
    r as i32
}

/// One element of [`add_s8`]: `a + b` as the add's parameters say (zero points in int8, as
/// [`AddS8::check`] ensures).
#[inline(always)]
pub(crate) fn add_one_s8(p: &AddS8, a: i8, b: i8) -> i8 {
    let sum = (a as i32 - p.a_zero_point) as f32 * p.a_scale + (b as i32 - p.b_zero_point) as f32 * p.b_scale;
    let q = round_to_i32(sum * p.inv_output_scale).saturating_add(p.output_zero_point);
    q.max(p.act_min).min(p.act_max) as i8
}

/// `dst[j] = add(conv[j], dst[j])`: a fused residual add over one block of channels. Inlined
/// where the ISA has float lanes (compiled with its features, vectorized: on AVX-512 the fused
/// 3x3 conv + add on 32x32x16 takes 70 µs inlined, 90 µs not); on 32-bit Arm it stays a call,
/// which keeps the Cortex-M4's convolution loop as it is (6.86 M instructions for ResNet-8's first
/// fused op against 7.30 M inlined).
#[cfg(feature = "residual")]
#[cfg_attr(target_arch = "arm", inline(never))]
#[cfg_attr(not(target_arch = "arm"), inline(always))]
fn add_in_place(p: &AddS8, conv: &[i8], dst: &mut [i8]) {
    for (d, &c) in dst.iter_mut().zip(conv) {
        *d = add_one_s8(p, c, *d);
    }
}

/// int8 add: the reference's f32 operations in the reference's order, with the zero points
/// subtracted in i32 (exact: [`AddS8::check`] keeps them in int8) and [`round_to_i32`] for
/// `rintf`, so every element equals the reference's; the loop has no call left, so the compiler
/// vectorizes it where the ISA allows. Checks its arguments first ([`AddS8::check`]).
#[inline(always)]
pub(crate) fn add_s8(p: &AddS8, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    p.check(a.len(), b.len(), output.len())?;
    for ((o, &x), &y) in output.iter_mut().zip(a).zip(b) {
        *o = add_one_s8(p, x, y);
    }
    Ok(())
}

/// int8 max pool, vectorizable over channels. Checks its arguments first
/// ([`PoolGeometry::check_io`]).
#[inline(always)]
pub(crate) fn maxpool2d_s8(p: &PoolGeometry, input: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    p.check_io(input.len(), output.len())?;
    let c = p.input.c;
    for py in 0..p.output.h {
        for px in 0..p.output.w {
            // In bounds for a validated op (`get` leaves no panic path).
            let Some(out) = output.get_mut(p.output.index(py, px, 0)..).and_then(|o| o.get_mut(..c)) else {
                return Err(ParamError::Output);
            };
            out.fill(i8::MIN);
            for dy in 0..p.size_h {
                for dx in 0..p.size_w {
                    let at = p.input.index(py * p.stride_h + dy, px * p.stride_w + dx, 0);
                    let Some(src) = input.get(at..at + c) else { return Err(ParamError::Input) };
                    for (o, &x) in out.iter_mut().zip(src) {
                        *o = (*o).max(x);
                    }
                }
            }
        }
    }
    Ok(())
}

/// int8 average pool: window sums vectorizable over channels (64 at a time), then the pool's
/// rounding ([`AvgRequant::finish`]). Checks its arguments first ([`super::check_avgpool2d_s8`]).
#[inline(always)]
pub(crate) fn avgpool2d_s8(
    p: &PoolGeometry,
    q: &AvgRequant,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), ParamError> {
    super::check_avgpool2d_s8(p, q, input, output)?;
    const BLOCK: usize = 64;
    let n = p.window_len();
    let c = p.input.c;
    for py in 0..p.output.h {
        for px in 0..p.output.w {
            for c0 in (0..c).step_by(BLOCK) {
                let m = (c - c0).min(BLOCK);
                let mut acc = [0i32; BLOCK];
                for dy in 0..p.size_h {
                    for dx in 0..p.size_w {
                        let at = p.input.index(py * p.stride_h + dy, px * p.stride_w + dx, c0);
                        // In bounds for a validated op (`get` leaves no panic path).
                        let Some(src) = input.get(at..at + m) else { return Err(ParamError::Input) };
                        for (a, &x) in acc[..m].iter_mut().zip(src) {
                            *a += x as i32 - q.input_zero_point;
                        }
                    }
                }
                let Some(out) = output.get_mut(p.output.index(py, px, c0)..).and_then(|o| o.get_mut(..m)) else {
                    return Err(ParamError::Output);
                };
                for (o, &a) in out.iter_mut().zip(&acc[..m]) {
                    *o = q.finish(a, n);
                }
            }
        }
    }
    Ok(())
}
