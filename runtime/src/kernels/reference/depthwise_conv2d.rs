//! Reference depthwise 2-D convolution (channel multiplier 1): output channel `c` is input
//! channel `c` convolved with its own `kernel_h × kernel_w` filter. Weights
//! `[kernel_h][kernel_w][channels]`.

use super::activate_f32;
use super::conv2d::tap;
use crate::kernels::params::{ConvGeometry, DepthwiseF, DepthwiseS8, FloatWeight};
use crate::quant;

/// Index of the weight of tap `(ky, kx)` of channel `c`.
#[inline(always)]
fn weight_index(g: &ConvGeometry, ky: usize, kx: usize, c: usize) -> usize {
    (ky * g.kernel_w + kx) * g.input.c + c
}

/// Float depthwise convolution (f32 or f16 weights, computed in f32) with fused activation:
/// `out[oy][ox][c] = act(bias[c] + Σ_(ky,kx) x[iy][ix][c] · W[ky][kx][c])`, padded taps adding
/// nothing. Scratch: none.
pub fn depthwise_conv2d_f<W: FloatWeight>(op: &DepthwiseF<'_, W>, input: &[f32], output: &mut [f32]) {
    // `None` only for slices too short for the geometry, which a validated op never has.
    let _ = depthwise_f_checked(op, input, output);
}

fn depthwise_f_checked<W: FloatWeight>(op: &DepthwiseF<'_, W>, input: &[f32], output: &mut [f32]) -> Option<()> {
    let g = &op.geometry;
    for oy in 0..g.output.h {
        for ox in 0..g.output.w {
            for c in 0..g.output.c {
                let mut acc = *op.bias.get(c)?;
                for ky in 0..g.kernel_h {
                    for kx in 0..g.kernel_w {
                        if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                            let x = *input.get(g.input.index(iy, ix, c))?;
                            acc += x * op.weights.get(weight_index(g, ky, kx, c))?.to_f32();
                        }
                    }
                }
                *output.get_mut(g.output.index(oy, ox, c))? = activate_f32(acc, op.activation);
            }
        }
    }
    Some(())
}

/// int8 depthwise convolution with fused activation range:
/// `clamp(requant(bias[c] + Σ_(ky,kx) (x[iy][ix][c] − in_zp) · W[ky][kx][c]) + out_zp)`.
/// Padding stands for real zero (`x = input_zero_point`), so padded taps add nothing.
/// Scratch: none.
pub fn depthwise_conv2d_s8(op: &DepthwiseS8<'_>, input: &[i8], output: &mut [i8]) {
    // `None` only for slices too short for the geometry, which a validated op never has.
    let _ = depthwise_s8_checked(op, input, output);
}

fn depthwise_s8_checked(op: &DepthwiseS8<'_>, input: &[i8], output: &mut [i8]) -> Option<()> {
    let g = &op.geometry;
    for oy in 0..g.output.h {
        for ox in 0..g.output.w {
            for c in 0..g.output.c {
                let mut acc = *op.bias.get(c)?;
                for ky in 0..g.kernel_h {
                    for kx in 0..g.kernel_w {
                        if let Some((iy, ix)) = tap(g, oy, ox, ky, kx) {
                            let x = *input.get(g.input.index(iy, ix, c))? as i32 - op.input_zero_point;
                            acc += x * *op.weights.get(weight_index(g, ky, kx, c))? as i32;
                        }
                    }
                }
                let value = quant::finish(op.requant.apply(acc, c), op.output_zero_point, op.act_min, op.act_max);
                *output.get_mut(g.output.index(oy, ox, c))? = value;
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;
    use crate::format::{Activation, pack_weights, packed_len};
    use crate::kernels::params::{ConvF, ConvS8, ParamError, Requantizer, Shape};
    use crate::kernels::{self, reference};

    /// A depthwise geometry and the same-shaped full convolution.
    fn geometry(h: usize, w: usize, c: usize, k: (usize, usize), s: (usize, usize), same: bool) -> ConvGeometry {
        let pads =
            |n: usize, k: usize, s: usize| if same { crate::kernels::params::same_pads(n, k, s) } else { (0, 0) };
        let (pt, pb) = pads(h, k.0, s.0);
        let (pl, pr) = pads(w, k.1, s.1);
        let oh = (h + pt + pb - k.0) / s.0 + 1;
        let ow = (w + pl + pr - k.1) / s.1 + 1;
        ConvGeometry {
            input: Shape::new(h, w, c),
            output: Shape::new(oh, ow, c),
            kernel_h: k.0,
            kernel_w: k.1,
            stride_h: s.0,
            stride_w: s.1,
            pad_top: pt,
            pad_left: pl,
        }
    }

    /// The depthwise weights `[kh][kw][c]` as a full convolution's OHWI weights that are zero
    /// outside the diagonal (output channel `o` reads input channel `o` only).
    fn block_diagonal<T: Copy + Default>(g: &ConvGeometry, dw: &[T]) -> Vec<T> {
        let c = g.input.c;
        let taps = g.kernel_h * g.kernel_w;
        let mut ohwi = vec![T::default(); c * taps * c];
        for o in 0..c {
            for t in 0..taps {
                ohwi[(o * taps + t) * c + o] = dw[t * c + o];
            }
        }
        ohwi
    }

    fn case() -> impl Strategy<Value = (ConvGeometry, u64)> {
        (
            1..=7usize,
            1..=7usize,
            1..=9usize,
            1..=4usize,
            1..=4usize,
            1..=3usize,
            1..=3usize,
            any::<bool>(),
            any::<u64>(),
        )
            .prop_filter_map("the kernel does not fit", |(h, w, c, kh, kw, sh, sw, same, seed)| {
                (same || (kh <= h && kw <= w)).then(|| (geometry(h, w, c, (kh, kw), (sh, sw), same), seed))
            })
    }

    /// A small deterministic generator (no `std` RNG in a `no_std` crate's tests).
    fn values(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    proptest! {
        // Miri runs a few cases (each is slow there); natively the default 256.
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

        /// int8: a depthwise convolution is the full convolution whose weights are zero off the
        /// diagonal, with extreme values (zero points, weights and inputs at the int8 ends).
        #[test]
        fn int8_depthwise_is_the_block_diagonal_convolution((g, seed) in case(), extreme in any::<bool>()) {
            let c = g.input.c;
            let taps = g.kernel_h * g.kernel_w;
            let bytes = values(seed, taps * c + g.input.len() + 2 * c);
            let weights: Vec<i8> = bytes[..taps * c]
                .iter()
                .map(|&b| if extreme { if b % 2 == 0 { -127 } else { 127 } } else { b as i8 / 2 })
                .collect();
            let input: Vec<i8> = bytes[taps * c..taps * c + g.input.len()]
                .iter()
                .map(|&b| if extreme { if b % 3 == 0 { -128 } else { 127 } } else { b as i8 })
                .collect();
            let bias: Vec<i32> = (0..c).map(|i| (bytes[taps * c + g.input.len() + i] as i32 - 128) * 37).collect();
            let multipliers: Vec<u32> = (0..c).map(|i| (0.0005 + 0.0003 * i as f32).to_bits()).collect();
            let (input_zero_point, output_zero_point) = if extreme { (127, -128) } else { (-7, 5) };
            let dw = DepthwiseS8 {
                geometry: g,
                input_zero_point,
                requant: Requantizer::PerChannel(&multipliers),
                output_zero_point,
                act_min: -128,
                act_max: 100,
                weights: &weights,
                bias: &bias,
            };
            let mut got = vec![0i8; g.output.len()];
            kernels::depthwise_conv2d_s8(&dw, &input, &mut got).unwrap();

            let full = block_diagonal(&g, &weights);
            let mut packed = vec![0i8; packed_len(taps * c, c)];
            pack_weights(&full, taps * c, c, &mut packed).unwrap();
            let conv = ConvS8 {
                geometry: g,
                input_zero_point,
                requant: Requantizer::PerChannel(&multipliers),
                conv_zero_point: output_zero_point,
                act_min: -128,
                act_max: 100,
                pool: None,
                residual: None,
                weights: &packed,
                bias: &bias,
            };
            let mut want = vec![0i8; g.output.len()];
            reference::conv2d_s8(&conv, &input, &mut want);
            prop_assert_eq!(got, want);
        }

        /// f32: the same identity, up to the summation order (none: the zero taps add exactly 0).
        #[test]
        fn f32_depthwise_is_the_block_diagonal_convolution((g, seed) in case()) {
            let c = g.input.c;
            let taps = g.kernel_h * g.kernel_w;
            let bytes = values(seed, taps * c + g.input.len() + c);
            let weights: Vec<f32> = bytes[..taps * c].iter().map(|&b| (b as f32 - 128.0) / 64.0).collect();
            let input: Vec<f32> = bytes[taps * c..taps * c + g.input.len()].iter().map(|&b| b as f32 / 255.0).collect();
            let bias: Vec<f32> = bytes[taps * c + g.input.len()..].iter().map(|&b| b as f32 / 100.0 - 1.0).collect();
            let dw = DepthwiseF { geometry: g, activation: Activation::Relu6, weights: &weights, bias: &bias };
            let mut got = vec![0f32; g.output.len()];
            kernels::depthwise_conv2d_f(&dw, &input, &mut got).unwrap();
            let full = block_diagonal(&g, &weights);
            let conv = ConvF { geometry: g, activation: Activation::Relu6, pool: None, weights: &full, bias: &bias };
            let mut want = vec![0f32; g.output.len()];
            reference::conv2d_f(&conv, &input, &mut want);
            prop_assert_eq!(got, want);
        }
    }

    /// The safe API refuses arguments that do not fit, without touching the output.
    #[test]
    fn depthwise_kernels_reject_what_does_not_fit() {
        let g = geometry(5, 4, 3, (3, 3), (1, 1), true);
        let weights = vec![1i8; 27];
        let bias = vec![0i32; 3];
        let multipliers = vec![0.001f32.to_bits(); 3];
        let input = vec![0i8; g.input.len()];
        let op = DepthwiseS8 {
            geometry: g,
            input_zero_point: 0,
            requant: Requantizer::PerChannel(&multipliers),
            output_zero_point: 0,
            act_min: -128,
            act_max: 127,
            weights: &weights,
            bias: &bias,
        };
        let run = |op: &DepthwiseS8<'_>, input: &[i8], out_len: usize| {
            let mut out = vec![9i8; out_len];
            let r = kernels::depthwise_conv2d_s8(op, input, &mut out);
            if r.is_err() {
                assert!(out.iter().all(|&v| v == 9), "the output was written");
            }
            r
        };
        assert_eq!(run(&op, &input, g.output.len()), Ok(()));
        assert_eq!(run(&DepthwiseS8 { weights: &weights[..26], ..op }, &input, 60), Err(ParamError::Weights));
        assert_eq!(run(&DepthwiseS8 { bias: &bias[..2], ..op }, &input, 60), Err(ParamError::Bias));
        let short = Requantizer::PerChannel(&multipliers[..2]);
        assert_eq!(run(&DepthwiseS8 { requant: short, ..op }, &input, 60), Err(ParamError::Requant));
        let wider = ConvGeometry { output: Shape::new(5, 4, 4), ..g };
        assert_eq!(run(&DepthwiseS8 { geometry: wider, ..op }, &input, 80), Err(ParamError::Geometry));
        assert_eq!(run(&op, &input[1..], 60), Err(ParamError::Input));
        assert_eq!(run(&op, &input, 59), Err(ParamError::Output));
        assert_eq!(run(&DepthwiseS8 { output_zero_point: 200, ..op }, &input, 60), Err(ParamError::QuantRange));
        let fw = [0.5f32; 27];
        let fb = [0f32; 3];
        let f = DepthwiseF { geometry: g, activation: Activation::None, weights: &fw[..20], bias: &fb };
        let mut out = vec![0f32; 60];
        assert_eq!(kernels::depthwise_conv2d_f(&f, &vec![0f32; 60], &mut out), Err(ParamError::Weights));
    }
}
