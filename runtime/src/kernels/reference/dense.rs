//! Reference fully connected layers.

use super::activate_f32;
use crate::format::packed_index;
use crate::kernels::params::{DenseF, DenseS8, FloatWeight};
use crate::quant;

/// Float dense layer: `out[o] = act(bias[o] + Σ_i x[i]·W[o][i])`. Scratch: none.
pub fn dense_f<W: FloatWeight>(op: &DenseF<'_, W>, input: &[f32], output: &mut [f32]) {
    for (o, out) in output.iter_mut().enumerate().take(op.output_len) {
        let row = &op.weights[o * op.input_len..(o + 1) * op.input_len];
        let mut acc = op.bias[o];
        for (x, w) in input.iter().zip(row) {
            acc += x * w.to_f32();
        }
        *out = activate_f32(acc, op.activation);
    }
}

/// int8 dense layer: `clamp(requant(bias[o] + Σ_i (x[i] − in_zp)·W[o][i]) + out_zp)`, weights
/// packed (see [`crate::format::packed_index`]). Scratch: none.
pub fn dense_s8(op: &DenseS8<'_>, input: &[i8], output: &mut [i8]) {
    for (o, out) in output.iter_mut().enumerate().take(op.output_len) {
        let mut acc = op.bias[o];
        for (i, &x) in input.iter().enumerate().take(op.input_len) {
            acc += (x as i32 - op.input_zero_point) * op.weights[packed_index(i, o, op.output_len)] as i32;
        }
        *out = quant::finish(op.requant.apply(acc, o), op.output_zero_point, op.act_min, op.act_max);
    }
}
