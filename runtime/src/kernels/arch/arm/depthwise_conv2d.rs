//! The DSP depthwise convolution: 4 channels per step, in registers.
//!
//! A depthwise tap multiplies each channel by its own weight, so `SMLAD`'s pairwise sum does not
//! apply. Instead one word of the input (4 adjacent channels of a pixel) and one of the weights
//! (the same 4 channels of a tap) are split by `SXTB16` into channels (0, 2) and (1, 3), the
//! input zero point is subtracted from both halfwords at once (`SSUB16`; `x − zp` fits in 16
//! bits), and `SMLABB` / `SMLATT` multiply-accumulate the bottom and top halfwords: 15
//! instructions for 4 MACs with the loop, one `asm!` block per kernel row (in Rust, LLVM spilled
//! 3 registers a tap: 20), the 4 accumulators in registers over the whole window. The
//! window is clipped to the input once per output pixel, so no tap is tested for padding (a
//! padded tap adds `(zp − zp)·w = 0` and is skipped). Channels past the last multiple of 4 take
//! the portable loop. Equal to [`crate::kernels::reference::depthwise_conv2d_s8`] bit for bit.

use super::dsp::requantize_one;
use crate::kernels::params::{DepthwiseS8, ParamError};

/// `acc[j] += Σ_t (x[t·c + j] − zp) · w[t·c + j]` for the 4 channels `j` at `x` and `w`, over
/// `cols` taps `c` bytes apart (`zp2`: the zero point in both halfwords). Per tap: one offset
/// for both loads, 2 `SXTB16` + `SSUB16` for the input, 2 `SXTB16` for the weights, 2 `SMLABB`
/// and 2 `SMLATT`, and the loop: 15 instructions. `r6`, `r7`, `r9` and `r11` (reserved by LLVM)
/// are saved and restored by the block itself.
///
/// # Safety
/// For every `t < cols`, the 4 bytes at `x + t·c` and at `w + t·c` are readable; `cols >= 1`.
#[inline(always)]
unsafe fn mac_row(x: *const i8, w: *const i8, c: usize, cols: usize, zp2: u32, acc: [i32; 4]) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    // SAFETY: the loads are those of the contract (unaligned `LDR`, allowed on Armv7-M and
    // Armv7-A); the pushed registers are popped before the block ends (8-byte aligned stack).
    unsafe {
        core::arch::asm!(
            "push {{r6, r7, r9, r11}}",
            "movs lr, #0",
            "2:",
            "ldr r6, [r0, lr]",
            "ldr r7, [r1, lr]",
            "add lr, lr, r2",
            "sxtb16 r9, r6",
            "ssub16 r9, r9, r12",
            "sxtb16 r11, r7",
            "smlabb r4, r9, r11, r4",
            "smlatt r8, r9, r11, r8",
            "sxtb16 r6, r6, ror #8",
            "ssub16 r6, r6, r12",
            "sxtb16 r7, r7, ror #8",
            "smlabb r5, r6, r7, r5",
            "smlatt r10, r6, r7, r10",
            "subs r3, r3, #1",
            "bne 2b",
            "pop {{r6, r7, r9, r11}}",
            in("r0") x,
            in("r1") w,
            in("r2") c,
            inout("r3") cols => _,
            inout("r4") a0,
            inout("r5") a1,
            inout("r8") a2,
            inout("r10") a3,
            in("r12") zp2,
            out("lr") _,
        );
    }
    [a0, a1, a2, a3]
}

/// The taps `lo..hi` of a kernel of `k` taps, stride `s` and leading padding `pad` that fall
/// inside an input of `n` for output `o` (empty when none does), with the input index of tap 0
/// (`o·s − pad`, wrapping).
#[inline(always)]
fn inside(o: usize, s: usize, pad: usize, k: usize, n: usize) -> (usize, usize, usize) {
    let start = (o * s).wrapping_sub(pad);
    // Taps before the input: `pad − o·s` when positive.
    let lo = pad.saturating_sub(o * s).min(k);
    // Taps up to the end of the input: `n − start` when `start` is inside.
    let hi = if lo > 0 { k.min(n + lo) } else { k.min(n.saturating_sub(start)) };
    (start, lo, hi.max(lo))
}

/// int8 depthwise convolution: see the module docs. Checks its arguments first
/// ([`DepthwiseS8::check`]).
///
/// # Safety
/// Sound wherever this module is compiled (the DSP targets).
#[inline(always)]
pub(super) unsafe fn depthwise_conv2d_s8(
    op: &DepthwiseS8<'_>,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), ParamError> {
    op.check(input.len(), output.len())?;
    let g = &op.geometry;
    let c = g.input.c;
    let zp = op.input_zero_point;
    // `zp` in both halfwords (an int8 value: checked).
    let zp2 = (zp as u32 & 0xFFFF) * 0x0001_0001;
    let (zp_out, min, max) = (op.output_zero_point, op.act_min, op.act_max);
    let (x_stride, w_stride) = (g.input.w * c, g.kernel_w * c);
    for oy in 0..g.output.h {
        let (y0, ky_lo, ky_hi) = inside(oy, g.stride_h, g.pad_top, g.kernel_h, g.input.h);
        for ox in 0..g.output.w {
            let (x0, kx_lo, kx_hi) = inside(ox, g.stride_w, g.pad_left, g.kernel_w, g.input.w);
            let out_at = g.output.index(oy, ox, 0);
            let Some(out) = output.get_mut(out_at..out_at + c) else { return Err(ParamError::Output) };
            let (rows, cols) = (ky_hi - ky_lo, kx_hi - kx_lo);
            // The clipped window: `rows` runs of `cols` pixels of the input from tap
            // (ky_lo, kx_lo), one input row apart, and the same taps of the weights.
            let (x, w) = if rows > 0 && cols > 0 {
                let x_at = g.input.index(y0.wrapping_add(ky_lo), x0.wrapping_add(kx_lo), 0);
                let w_at = (ky_lo * g.kernel_w + kx_lo) * c;
                let (x_len, w_len) = ((rows - 1) * x_stride + cols * c, (rows - 1) * w_stride + cols * c);
                let (Some(x), Some(w)) = (input.get(x_at..x_at + x_len), op.weights.get(w_at..w_at + w_len)) else {
                    return Err(ParamError::Input);
                };
                (x, w)
            } else {
                (&[][..], &[][..])
            };
            let quads = if x.is_empty() { 0 } else { c / 4 };
            for (q, dst) in out.chunks_exact_mut(4).take(quads).enumerate() {
                let c0 = 4 * q;
                let Some(&[b0, b1, b2, b3]) = op.bias.get(c0..c0 + 4) else { return Err(ParamError::Bias) };
                let mut acc = [b0, b1, b2, b3];
                for r in 0..rows {
                    // SAFETY: row `r < rows` of `x` starts at `r·x_stride` and holds `cols·c`
                    // bytes (of `w`: `r·w_stride`), inside the slices taken above, and
                    // `c0 + 4 <= c`: the words at `c0 + t·c` for `t < cols` are inside.
                    unsafe {
                        acc = mac_row(
                            x.as_ptr().wrapping_add(r * x_stride + c0),
                            w.as_ptr().wrapping_add(r * w_stride + c0),
                            c,
                            cols,
                            zp2,
                            acc,
                        )
                    };
                }
                let [a0, a1, a2, a3] = acc;
                for (j, (d, a)) in dst.iter_mut().zip([a0, a1, a2, a3]).enumerate() {
                    *d = requantize_one(&op.requant, a, c0 + j, zp_out, min, max);
                }
            }
            // The channels past the last group of 4 (and every channel of a window that lies
            // wholly in the padding: its accumulator is the bias).
            for (ch, d) in out.iter_mut().enumerate().skip(4 * quads) {
                let Some(&bias) = op.bias.get(ch) else { return Err(ParamError::Bias) };
                let mut acc = bias;
                for r in 0..rows {
                    let (Some(xr), Some(wr)) = (x.get(r * x_stride..), w.get(r * w_stride..)) else { break };
                    for (&xv, &wv) in
                        xr.iter().skip(ch).step_by(c.max(1)).zip(wr.iter().skip(ch).step_by(c.max(1))).take(cols)
                    {
                        acc = acc.wrapping_add((xv as i32 - zp) * wv as i32);
                    }
                }
                *d = requantize_one(&op.requant, acc, ch, zp_out, min, max);
            }
        }
    }
    Ok(())
}
