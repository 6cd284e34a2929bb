//! Reference 2-D convolution (f32 / f16 weights in f32, and int8), with its optional fused pool.

use super::activate_f32;
use crate::format::packed_index;
use crate::kernels::params::{ConvF, ConvGeometry, ConvS8, FloatWeight, PoolGeometry, PoolKind};
use crate::quant;

/// The input pixel under kernel tap `(ky, kx)` of output `(oy, ox)`, or `None` in the padding.
#[inline(always)]
pub(super) fn tap(g: &ConvGeometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
    let iy = (oy * g.stride_h + ky).checked_sub(g.pad_top)?;
    let ix = (ox * g.stride_w + kx).checked_sub(g.pad_left)?;
    (iy < g.input.h && ix < g.input.w).then_some((iy, ix))
}

/// Index of weight `(oc, ky, kx, ic)` in OHWI order (with `oc = 0`: the tap number `k`).
#[inline(always)]
fn weight_index(g: &ConvGeometry, oc: usize, ky: usize, kx: usize, ic: usize) -> usize {
    ((oc * g.kernel_h + ky) * g.kernel_w + kx) * g.input.c + ic
}

/// The `input.c` values of input pixel `(iy, ix)` (empty if `input` is too short, which a
/// validated op's never is).
#[inline(always)]
fn pixel<'i, T>(g: &ConvGeometry, input: &'i [T], (iy, ix): (usize, usize)) -> &'i [T] {
    let at = g.input.index(iy, ix, 0);
    input.get(at..at + g.input.c).unwrap_or_default()
}

/// Convolution output `(oy, ox, oc)` after the activation.
///
/// Slices are read with `get`: a validated op's lengths fit its geometry, so the fallbacks (0 for
/// a missing weight or bias, an empty pixel) are never taken and no panic path is compiled.
fn conv_at_f<W: FloatWeight>(op: &ConvF<'_, W>, input: &[f32], oy: usize, ox: usize, oc: usize) -> f32 {
    let g = &op.geometry;
    let mut acc = op.bias.get(oc).copied().unwrap_or(0.0);
    for ky in 0..g.kernel_h {
        for kx in 0..g.kernel_w {
            if let Some(at) = tap(g, oy, ox, ky, kx) {
                let row = weight_index(g, oc, ky, kx, 0);
                let weights = op.weights.get(row..row + g.input.c).unwrap_or_default();
                for (&x, w) in pixel(g, input, at).iter().zip(weights) {
                    acc += x * w.to_f32();
                }
            }
        }
    }
    activate_f32(acc, op.activation)
}

/// Float convolution (f32 or f16 weights, computed in f32) with fused activation and pool.
///
/// `input` has `geometry.input.len()` elements; `output` has the op's output length (the pool's
/// output when a pool is fused). Scratch: none.
pub fn conv2d_f<W: FloatWeight>(op: &ConvF<'_, W>, input: &[f32], output: &mut [f32]) {
    let g = &op.geometry;
    // Outputs in NHWC order, one after the other: `g.output.index(oy, ox, oc)` is the count so far.
    let mut out = output.iter_mut();
    match op.pool {
        None => {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    for (oc, o) in out.by_ref().take(g.output.c).enumerate() {
                        *o = conv_at_f(op, input, oy, ox, oc);
                    }
                }
            }
        }
        Some((kind, p)) => {
            for py in 0..p.output.h {
                for px in 0..p.output.w {
                    for (oc, o) in out.by_ref().take(p.output.c).enumerate() {
                        let window = window(&p, py, px).map(|(y, x)| conv_at_f(op, input, y, x, oc));
                        *o = pool_f32(kind, &p, window);
                    }
                }
            }
        }
    }
}

/// The positions `(y, x)` of pool window `(py, px)`.
pub(crate) fn window(p: &PoolGeometry, py: usize, px: usize) -> impl Iterator<Item = (usize, usize)> {
    let (y0, x0) = (py * p.stride_h, px * p.stride_w);
    let (size_h, size_w) = (p.size_h, p.size_w);
    (0..size_h).flat_map(move |dy| (0..size_w).map(move |dx| (y0 + dy, x0 + dx)))
}

/// Max or mean of float window values.
pub(crate) fn pool_f32(kind: PoolKind, p: &PoolGeometry, values: impl Iterator<Item = f32>) -> f32 {
    match kind {
        PoolKind::Max => values.fold(f32::NEG_INFINITY, f32::max),
        PoolKind::Avg => values.sum::<f32>() / p.window_len() as f32,
    }
}

/// int8 convolution output `(oy, ox, oc)`: requantized, zero point added, clamped.
///
/// Slices are read with `get` and `?`: a validated op's lengths fit its geometry, so this never
/// returns `None`, and a failed check costs the same compare and branch as a bounds check but
/// leaves no panic path.
fn conv_at_s8(op: &ConvS8<'_>, input: &[i8], oy: usize, ox: usize, oc: usize) -> Option<i8> {
    let g = &op.geometry;
    let mut acc = *op.bias.get(oc)?;
    for ky in 0..g.kernel_h {
        for kx in 0..g.kernel_w {
            if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                for ic in 0..g.input.c {
                    let x = *input.get(g.input.index(iy, ix, ic))? as i32 - op.input_zero_point;
                    let k = weight_index(g, 0, ky, kx, ic);
                    acc += x * *op.weights.get(packed_index(k, oc, g.output.c))? as i32;
                }
            }
        }
    }
    Some(quant::finish(op.requant.apply(acc, oc), op.conv_zero_point, op.act_min, op.act_max))
}

/// int8 convolution with fused activation range and optional fused max/average pool.
///
/// Padding stands for real zero (`x = input_zero_point`), so padded taps add nothing. A fused
/// average pool sums `v − conv_zero_point` over the window of requantized conv outputs and
/// requantizes that sum with its own multiplier. Scratch: none.
pub fn conv2d_s8(op: &ConvS8<'_>, input: &[i8], output: &mut [i8]) {
    // `None` only for slices too short for the geometry, which a validated op never has.
    let _ = conv2d_s8_checked(op, input, output);
}

fn conv2d_s8_checked(op: &ConvS8<'_>, input: &[i8], output: &mut [i8]) -> Option<()> {
    let g = &op.geometry;
    match op.pool {
        None => {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    for oc in 0..g.output.c {
                        let conv = conv_at_s8(op, input, oy, ox, oc)?;
                        let out = output.get_mut(g.output.index(oy, ox, oc))?;
                        // A fused residual add: the output buffer holds the residual on entry.
                        *out = match &op.residual {
                            #[cfg(feature = "residual")]
                            Some(add) => super::add::add_one_s8(add, conv, *out),
                            // Without `residual`, `Model::from_bytes` refuses residual convs.
                            #[cfg(not(feature = "residual"))]
                            Some(_) => return None,
                            None => conv,
                        };
                    }
                }
            }
        }
        Some((kind, p, avg)) => {
            for py in 0..p.output.h {
                for px in 0..p.output.w {
                    for oc in 0..p.output.c {
                        // The window's conv outputs, in `window` order (`?`: see `conv_at_s8`).
                        let (y0, x0) = (py * p.stride_h, px * p.stride_w);
                        let value = match kind {
                            PoolKind::Max => {
                                let mut max = i8::MIN;
                                for dy in 0..p.size_h {
                                    for dx in 0..p.size_w {
                                        max = max.max(conv_at_s8(op, input, y0 + dy, x0 + dx, oc)?);
                                    }
                                }
                                max
                            }
                            PoolKind::Avg => {
                                let mut sum = 0i32;
                                for dy in 0..p.size_h {
                                    for dx in 0..p.size_w {
                                        let v = conv_at_s8(op, input, y0 + dy, x0 + dx, oc)?;
                                        sum += v as i32 - avg.input_zero_point;
                                    }
                                }
                                avg.finish(sum, p.window_len())
                            }
                        };
                        *output.get_mut(p.output.index(py, px, oc))? = value;
                    }
                }
            }
        }
    }
    Some(())
}
