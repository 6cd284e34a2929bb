//! Reference 2-D convolution (f32 / f16 weights in f32, and int8), with its optional fused pool.

use super::activate_f32;
use crate::format::packed_index;
use crate::kernels::params::{ConvF, ConvGeometry, ConvS8, FloatWeight, PoolGeometry, PoolKind};
use crate::quant;

/// The input pixel under kernel tap `(ky, kx)` of output `(oy, ox)`, or `None` in the padding.
#[inline(always)]
fn tap(g: &ConvGeometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
    let iy = (oy * g.stride_h + ky).checked_sub(g.pad_top)?;
    let ix = (ox * g.stride_w + kx).checked_sub(g.pad_left)?;
    (iy < g.input.h && ix < g.input.w).then_some((iy, ix))
}

/// Index of weight `(oc, ky, kx, ic)` in OHWI order (with `oc = 0`: the tap number `k`).
#[inline(always)]
fn weight_index(g: &ConvGeometry, oc: usize, ky: usize, kx: usize, ic: usize) -> usize {
    ((oc * g.kernel_h + ky) * g.kernel_w + kx) * g.input.c + ic
}

/// Convolution output `(oy, ox, oc)` after the activation.
fn conv_at_f<W: FloatWeight>(op: &ConvF<'_, W>, input: &[f32], oy: usize, ox: usize, oc: usize) -> f32 {
    let g = &op.geometry;
    let mut acc = op.bias[oc];
    for ky in 0..g.kernel_h {
        for kx in 0..g.kernel_w {
            if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                for ic in 0..g.input.c {
                    acc += input[g.input.index(iy, ix, ic)] * op.weights[weight_index(g, oc, ky, kx, ic)].to_f32();
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
    match op.pool {
        None => {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    for oc in 0..g.output.c {
                        output[g.output.index(oy, ox, oc)] = conv_at_f(op, input, oy, ox, oc);
                    }
                }
            }
        }
        Some((kind, p)) => {
            for py in 0..p.output.h {
                for px in 0..p.output.w {
                    for oc in 0..p.output.c {
                        let window = window(&p, py, px).map(|(y, x)| conv_at_f(op, input, y, x, oc));
                        output[p.output.index(py, px, oc)] = pool_f32(kind, &p, window);
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
fn conv_at_s8(op: &ConvS8<'_>, input: &[i8], oy: usize, ox: usize, oc: usize) -> i8 {
    let g = &op.geometry;
    let mut acc = op.bias[oc];
    for ky in 0..g.kernel_h {
        for kx in 0..g.kernel_w {
            if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                for ic in 0..g.input.c {
                    let x = input[g.input.index(iy, ix, ic)] as i32 - op.input_zero_point;
                    let k = weight_index(g, 0, ky, kx, ic);
                    acc += x * op.weights[packed_index(k, oc, g.output.c)] as i32;
                }
            }
        }
    }
    quant::finish(op.requant.apply(acc, oc), op.conv_zero_point, op.act_min, op.act_max)
}

/// int8 convolution with fused activation range and optional fused max/average pool.
///
/// Padding stands for real zero (`x = input_zero_point`), so padded taps add nothing. A fused
/// average pool sums `v − conv_zero_point` over the window of requantized conv outputs and
/// requantizes that sum with its own multiplier. Scratch: none.
pub fn conv2d_s8(op: &ConvS8<'_>, input: &[i8], output: &mut [i8]) {
    let g = &op.geometry;
    match op.pool {
        None => {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    for oc in 0..g.output.c {
                        output[g.output.index(oy, ox, oc)] = conv_at_s8(op, input, oy, ox, oc);
                    }
                }
            }
        }
        Some((kind, p, avg)) => {
            for py in 0..p.output.h {
                for px in 0..p.output.w {
                    for oc in 0..p.output.c {
                        let mut values = window(&p, py, px).map(|(y, x)| conv_at_s8(op, input, y, x, oc));
                        output[p.output.index(py, px, oc)] = match kind {
                            PoolKind::Max => values.fold(i8::MIN, i8::max),
                            PoolKind::Avg => {
                                let sum = values.by_ref().map(|v| v as i32 - avg.input_zero_point).sum::<i32>();
                                let scaled = quant::requantize_uniform(sum, avg.multiplier, avg.shift);
                                quant::finish(scaled, avg.output_zero_point, i8::MIN as i32, i8::MAX as i32)
                            }
                        };
                    }
                }
            }
        }
    }
}
