//! The DSP convolution: patches widened to halfwords once per pair of output pixels, and an
//! assembly micro-kernel for 2 pixels × 2 channels.
//!
//! The shared driver's micro-kernel unpacks both operands of every `SMLAD` inside its loop
//! (`SXTB16` on the patch words and on the weight words) and, with 4 accumulators, 4 pointers
//! and 8 unpacked words live at once, LLVM spills on the Cortex-M4's 13 registers: about 2.2
//! instructions per MAC. Here the two patches of a pixel pair are written once, already
//! unpacked and interleaved, `[group][x0 even, x0 odd, x1 even, x1 odd]` (one `LDM` loads a
//! group for both pixels), and are then reused by every channel pair; only the weights are
//! unpacked in the loop. A group of 4 taps for 2 pixels × 2 channels (16 MACs) is 17
//! instructions (1 `LDM`, 2 `LDR`, 4 `SXTB16`, 8 `SMLAD`, the weight step and half the loop
//! test), written in `asm!` so that the register allocation, not the compiler's mood, decides
//! the count: it needs 14 registers, 4 of which (`r6`, `r7`, `r9`, `r11`, reserved by LLVM)
//! the block saves and restores itself.
//!
//! The widened pair needs `16·groups` bytes: no more than the 4 byte patches the scratch holds
//! for every ISA ([`crate::kernels::conv2d_s8_scratch_size`]), so the arena is unchanged. A fused
//! max pool keeps one running max per channel of a block of [`CHANNEL_BLOCK`] on the stack (the
//! window is walked in pixel pairs, the channels inside), instead of the driver's per-pixel
//! accumulator rows. The results equal [`crate::kernels::reference::conv2d_s8`] bit for bit (the
//! effective bias is the driver's, `bias − zp·Σw`; padding taps hold the zero point).

use super::dsp::{ArmDsp, requantize_one, sxtb16, sxtb16_ror8};
use crate::format::TAP_GROUP;
use crate::kernels::driver::{self, Micro};
use crate::kernels::params::{ConvGeometry, ConvS8, ParamError, PoolKind};

/// Output channels whose pooled values live on the stack at once (256 B).
const CHANNEL_BLOCK: usize = 64;

/// One group of 4 taps for 2 pixels × 2 channels: `r0` walks the widened pair (post-increment),
/// `r2` the weights of channel `c` (channel `c + 1` is the next word), `r3` is the step between
/// groups of weights; accumulators `r4` (pixel 0, channel c), `r5` (0, c + 1), `r8` (1, c),
/// `r10` (1, c + 1).
macro_rules! group_2x2 {
    () => {
        concat!(
            "ldm r0!, {{r6, r7, r9, r11}}\n",
            "ldr r12, [r2]\n",
            "sxtb16 lr, r12\n",
            "smlad r4, r6, lr, r4\n",
            "smlad r8, r9, lr, r8\n",
            "sxtb16 lr, r12, ror #8\n",
            "smlad r4, r7, lr, r4\n",
            "smlad r8, r11, lr, r8\n",
            "ldr r12, [r2, #4]\n",
            "add r2, r2, r3\n",
            "sxtb16 lr, r12\n",
            "smlad r5, r6, lr, r5\n",
            "smlad r10, r9, lr, r10\n",
            "sxtb16 lr, r12, ror #8\n",
            "smlad r5, r7, lr, r5\n",
            "smlad r10, r11, lr, r10\n",
        )
    };
}

/// `acc[2p + j] += Σ_t x_p[t] · W[t][c + j]` for the 2 pixels `p` of a widened pair and the
/// channels `c`, `c + 1`, in wrapping i32 arithmetic.
///
/// # Safety
/// `pair` holds at least `4·groups` words, `groups >= 1`; `weights.len() == groups·4·out` and
/// `c + 1 < out` (so both channels' words of every group are in bounds).
#[inline(always)]
unsafe fn mac_2x2(pair: &[u32], groups: usize, weights: &[i8], out: usize, c: usize, acc: [i32; 4]) -> [i32; 4] {
    debug_assert!(groups >= 1 && pair.len() >= 4 * groups);
    debug_assert!(weights.len() == groups * TAP_GROUP * out && c + 1 < out);
    let [mut a00, mut a01, mut a10, mut a11] = acc;
    let x = pair.as_ptr();
    let end = x.wrapping_add(4 * groups);
    let w = weights.as_ptr().wrapping_add(c * TAP_GROUP);
    // SAFETY: by the contract, the `LDM` reads words `0..4·groups` of `pair` and the `LDR`s words
    // `c` and `c + 1` of each of the `groups` groups of `out` weight words; `r6`, `r7`, `r9` and
    // `r11` are pushed first and popped last (the stack stays 8-byte aligned), every other
    // register it writes is an operand. `LDM` needs a word-aligned address: `pair` is a `u32`
    // slice. An odd group count runs one group before the loop of two.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7, r9, r11}}",
            "sub r12, r1, r0",
            "tst r12, #16",
            "beq 2f",
            group_2x2!(),
            "2:",
            "cmp r0, r1",
            "beq 4f",
            "3:",
            group_2x2!(),
            group_2x2!(),
            "cmp r0, r1",
            "bne 3b",
            "4:",
            "pop {{r6, r7, r9, r11}}",
            inout("r0") x => _,
            in("r1") end,
            inout("r2") w => _,
            in("r3") out * TAP_GROUP,
            inout("r4") a00,
            inout("r5") a01,
            inout("r8") a10,
            inout("r10") a11,
            out("r12") _,
            out("lr") _,
        );
    }
    [a00, a01, a10, a11]
}

/// Packs the taps of two pixels, one pair at a time, into widened groups: each pixel's 4 bytes
/// are shifted into a word in registers, and every fourth tap writes the group.
struct Packer<'a> {
    groups: core::slice::IterMut<'a, [u32; 4]>,
    a: u32,
    b: u32,
    taps: usize,
}

impl<'a> Packer<'a> {
    fn new(pair: &'a mut [u32]) -> Self {
        Packer { groups: pair.as_chunks_mut::<4>().0.iter_mut(), a: 0, b: 0, taps: 0 }
    }

    /// The next tap of each pixel.
    #[inline(always)]
    fn push(&mut self, a: i8, b: i8) {
        self.a = (self.a >> 8) | ((a as u8 as u32) << 24);
        self.b = (self.b >> 8) | ((b as u8 as u32) << 24);
        self.taps += 1;
        if self.taps == TAP_GROUP {
            self.write(self.a, self.b);
            self.taps = 0;
        }
    }

    #[inline(always)]
    fn write(&mut self, a: u32, b: u32) {
        if let Some(d) = self.groups.next() {
            *d = widen(a, b);
        }
    }

    /// Writes a last partial group, its missing taps zero.
    fn finish(mut self) {
        if self.taps > 0 {
            let shift = 8 * (TAP_GROUP - self.taps) as u32;
            self.write(self.a >> shift, self.b >> shift);
        }
    }
}

/// Writes the widened patches of conv outputs `a` and `b` into `pair` (`4·groups` words):
/// group `i` is `[sxtb16(x_a), sxtb16_ror8(x_a), sxtb16(x_b), sxtb16_ror8(x_b)]` where `x_p` is
/// the word of taps `4i..4i + 4` of pixel `p` (OHWI order, padding `zp`, taps past `K` zero).
fn widen_pair(g: &ConvGeometry, input: &[i8], a: (usize, usize), b: (usize, usize), zp: i32, pair: &mut [u32]) {
    let row_len = g.kernel_w * g.input.c;
    let stride = g.input.w * g.input.c;
    let inside = |(oy, ox): (usize, usize)| {
        let (y0, x0) = ((oy * g.stride_h).wrapping_sub(g.pad_top), (ox * g.stride_w).wrapping_sub(g.pad_left));
        let fits = y0 < g.input.h && y0 + g.kernel_h <= g.input.h && x0 < g.input.w && x0 + g.kernel_w <= g.input.w;
        fits.then(|| g.input.index(y0, x0, 0))
            .and_then(|start| input.get(start..start + (g.kernel_h - 1) * stride + row_len))
    };
    if let (Some(fa), Some(fb)) = (inside(a), inside(b)) {
        // Both fields inside the input: `kernel_h` runs of `row_len` bytes each.
        let mut rows = (0..g.kernel_h)
            .filter_map(|ky| Some((fa.get(ky * stride..)?.get(..row_len)?, fb.get(ky * stride..)?.get(..row_len)?)));
        if row_len.is_multiple_of(TAP_GROUP) {
            // Whole words: one (unaligned) load per pixel and group.
            let mut dst = pair.as_chunks_mut::<4>().0.iter_mut();
            for (ra, rb) in rows {
                for (wa, wb) in ra.as_chunks::<TAP_GROUP>().0.iter().zip(rb.as_chunks::<TAP_GROUP>().0) {
                    let Some(d) = dst.next() else { return };
                    *d = widen(le_word(*wa), le_word(*wb));
                }
            }
        } else {
            let mut packer = Packer::new(pair);
            for (ra, rb) in rows.by_ref() {
                for (&xa, &xb) in ra.iter().zip(rb) {
                    packer.push(xa, xb);
                }
            }
            packer.finish();
        }
        return;
    }
    // A field crosses the padding: tap by tap.
    let cell = |(oy, ox): (usize, usize), ky: usize, kx: usize| {
        let (iy, ix) =
            ((oy * g.stride_h + ky).wrapping_sub(g.pad_top), (ox * g.stride_w + kx).wrapping_sub(g.pad_left));
        (iy < g.input.h && ix < g.input.w)
            .then(|| g.input.index(iy, ix, 0))
            .and_then(|at| input.get(at..at + g.input.c))
    };
    let mut packer = Packer::new(pair);
    for ky in 0..g.kernel_h {
        for kx in 0..g.kernel_w {
            let (ca, cb) = (cell(a, ky, kx), cell(b, ky, kx));
            for ci in 0..g.input.c {
                let tap = |c: Option<&[i8]>| c.map_or(zp as i8, |c| c.get(ci).copied().unwrap_or(0));
                packer.push(tap(ca), tap(cb));
            }
        }
    }
    packer.finish();
}

/// The little-endian word of 4 taps (an unaligned `LDR`).
#[inline(always)]
fn le_word(taps: [i8; 4]) -> u32 {
    u32::from_le_bytes(taps.map(|x| x as u8))
}

/// One widened group of a pixel pair: each pixel's word split into its even and odd bytes.
#[inline(always)]
fn widen(a: u32, b: u32) -> [u32; 4] {
    [sxtb16(a), sxtb16_ror8(a), sxtb16(b), sxtb16_ror8(b)]
}

/// The channel pair of the micro-kernel for channel `j` (`out >= 2`): `(j, j + 1)`, or
/// `(out − 2, out − 1)` for an odd last channel, whose first value is then someone else's.
#[inline(always)]
fn channel_pair(j: usize, out: usize) -> usize {
    j.min(out - 2)
}

/// int8 convolution with fused activation range and pool: see the module docs. Checks its
/// arguments first ([`crate::kernels::check_conv2d_s8`]); a convolution with a single output
/// channel takes the reference kernel.
///
/// # Safety
/// Sound wherever this module is compiled (the DSP targets).
#[inline(always)]
pub(super) unsafe fn conv2d_s8(
    op: &ConvS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    crate::kernels::check_conv2d_s8(op, input, output, scratch)?;
    let g = &op.geometry;
    let (k, out) = (g.filter_len(), g.output.c);
    if out < 2 {
        // One filter: no channel pair (rare; the reference kernel, already linked, not a
        // second copy of the shared driver's).
        crate::kernels::reference::conv2d_s8(op, input, output);
        return Ok(());
    }
    let groups = k.div_ceil(TAP_GROUP);
    let Some((eff, area)) = driver::carve(scratch, out) else { return Err(ParamError::Scratch) };
    // The check sized the scratch for 4 byte patches of `patch_len(k) >= 4·groups` bytes after
    // the `out` biases: room for the widened pair, word-aligned after them. Kept as cheap
    // defence in depth, like the weight length the micro-kernel relies on.
    let Some(pair) = area.get_mut(..16 * groups).and_then(|a| bytemuck::try_cast_slice_mut::<u8, u32>(a).ok()) else {
        return Err(ParamError::Scratch);
    };
    if groups == 0 || op.weights.len() != groups * TAP_GROUP * out {
        return Err(ParamError::Scratch);
    }
    // SAFETY: `eff` holds `out` values (`carve`), the weights `groups·4·out` bytes (checked).
    unsafe { driver::effective_bias::<ArmDsp>(op.weights, out, op.bias, op.input_zero_point, eff) };
    let eff: &[i32] = eff;
    let (zp, min, max) = (op.conv_zero_point, op.act_min, op.act_max);
    // The micro-kernel's contract: `pair` has 4·groups words, the weights groups·4·out bytes,
    // and every channel pair below is `(c, c + 1)` with `c + 1 < out` (`channel_pair`).
    let mac = |pair: &[u32], c: usize| -> [i32; 4] {
        let (b0, b1) = (eff.get(c).copied().unwrap_or(0), eff.get(c + 1).copied().unwrap_or(0));
        // SAFETY: see above; `c = channel_pair(..) <= out − 2`.
        unsafe { mac_2x2(pair, groups, op.weights, out, c, [b0, b1, b0, b1]) }
    };

    match op.pool {
        None => {
            let total = g.output.h * g.output.w;
            let next = |(y, x): (usize, usize)| if x + 1 == g.output.w { (y + 1, 0) } else { (y, x + 1) };
            let mut at = (0, 0);
            for first in (0..total).step_by(2) {
                // A last single pixel is widened twice and written once.
                let pixels = (total - first).min(2);
                let second = if pixels == 2 { next(at) } else { at };
                widen_pair(g, input, at, second, op.input_zero_point, pair);
                for j in (0..out).step_by(2) {
                    let c = channel_pair(j, out);
                    let acc = mac(pair, c);
                    for (i, &a) in acc.iter().enumerate() {
                        let (p, ch) = (i / 2, c + i % 2);
                        if ch < j || p >= pixels {
                            continue;
                        }
                        let Some(dst) = output.get_mut((first + p) * out + ch) else { return Err(ParamError::Output) };
                        let q = requantize_one(&op.requant, a, ch, zp, min, max);
                        *dst = match &op.residual {
                            None => q,
                            #[cfg(not(feature = "residual"))]
                            Some(_) => return Err(ParamError::Geometry),
                            // The convolution's value is the add's first operand; `dst` holds the
                            // residual on entry.
                            #[cfg(feature = "residual")]
                            Some(add) => driver::add_one_s8(add, q, *dst),
                        };
                    }
                }
                at = next(second);
            }
            Ok(())
        }
        Some((kind, pg, avg)) => {
            let window = pg.window_len();
            let mut pooled = [0i32; CHANNEL_BLOCK];
            for py in 0..pg.output.h {
                for px in 0..pg.output.w {
                    // Window pixel `w` (`size_w` is never 0: checked at load).
                    let pixel = |w: usize| match (w.checked_div(pg.size_w), w.checked_rem(pg.size_w)) {
                        (Some(dy), Some(dx)) => Some((py * pg.stride_h + dy, px * pg.stride_w + dx)),
                        _ => None,
                    };
                    for cb in (0..out).step_by(CHANNEL_BLOCK) {
                        let n = (out - cb).min(CHANNEL_BLOCK);
                        let block = &mut pooled[..n];
                        block.fill(if matches!(kind, PoolKind::Max) { i32::MIN } else { 0 });
                        for w in (0..window).step_by(2) {
                            // An odd window's last pixel is widened twice and counted once.
                            let pixels = (window - w).min(2);
                            let (Some(pa), Some(pb)) = (pixel(w), pixel(w + pixels - 1)) else {
                                return Err(ParamError::Empty);
                            };
                            widen_pair(g, input, pa, pb, op.input_zero_point, pair);
                            match kind {
                                // Requantization is non-decreasing in the accumulator (multipliers
                                // are positive, checked at load): the max accumulator gives the
                                // max value.
                                PoolKind::Max => {
                                    let mut slots = block.chunks_exact_mut(2);
                                    for (c, s) in (cb..).step_by(2).zip(slots.by_ref()) {
                                        let [a00, a01, a10, a11] = mac(pair, c);
                                        if let [s0, s1] = s {
                                            *s0 = (*s0).max(a00).max(a10);
                                            *s1 = (*s1).max(a01).max(a11);
                                        }
                                    }
                                    if let [s] = slots.into_remainder() {
                                        // The last channel `cb + n − 1`, second of its pair.
                                        let [_, a01, _, a11] = mac(pair, (cb + n).saturating_sub(2));
                                        *s = (*s).max(a01).max(a11);
                                    }
                                }
                                PoolKind::Avg => {
                                    let izp = avg.input_zero_point;
                                    for j in (cb..cb + n).step_by(2) {
                                        let c = channel_pair(j, out);
                                        let [a00, a01, a10, a11] = mac(pair, c);
                                        for (ch, v0, v1) in [(c, a00, a10), (c + 1, a01, a11)] {
                                            if ch < j || ch >= cb + n {
                                                continue;
                                            }
                                            let Some(slot) = block.get_mut(ch - cb) else {
                                                return Err(ParamError::Output);
                                            };
                                            *slot += requantize_one(&op.requant, v0, ch, zp, min, max) as i32 - izp;
                                            if pixels == 2 {
                                                *slot += requantize_one(&op.requant, v1, ch, zp, min, max) as i32 - izp;
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        let Some(dst) = output.get_mut(pg.output.index(py, px, cb)..).and_then(|o| o.get_mut(..n))
                        else {
                            return Err(ParamError::Output);
                        };
                        match kind {
                            // SAFETY: `block` and `dst` hold n values; the per-channel
                            // multipliers cover `out >= cb + n` channels (checked on entry).
                            PoolKind::Max => unsafe {
                                ArmDsp::requantize(block, n, cb, &op.requant, zp, min, max, dst)
                            },
                            PoolKind::Avg => {
                                for (d, &s) in dst.iter_mut().zip(block.iter()) {
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
