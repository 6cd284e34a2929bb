//! Reference fully connected layers.

use super::activate_f32;
use crate::format::packed_index;
use crate::kernels::params::{DenseF, DenseS8, FloatWeight};
use crate::quant;

/// Float dense layer: `out[o] = act(bias[o] + Σ_i x[i]·W[o][i])`. Scratch: none.
pub fn dense_f<W: FloatWeight>(op: &DenseF<'_, W>, input: &[f32], output: &mut [f32]) {
    // Slices are read with `get` and zipped: a validated op's lengths fit, so nothing is cut
    // short and no panic path is compiled.
    for (o, (out, &bias)) in output.iter_mut().zip(op.bias).enumerate().take(op.output_len) {
        let row = op.weights.get(o * op.input_len..).unwrap_or_default().get(..op.input_len).unwrap_or_default();
        let mut acc = bias;
        for (x, w) in input.iter().zip(row) {
            acc += x * w.to_f32();
        }
        *out = activate_f32(acc, op.activation);
    }
}

/// int8 dense layer: `clamp(requant(bias[o] + Σ_i (x[i] − in_zp)·W[o][i]) + out_zp)`, weights
/// packed (see [`crate::format::packed_index`]). Scratch: none.
pub fn dense_s8(op: &DenseS8<'_>, input: &[i8], output: &mut [i8]) {
    // `None` only for slices too short for the op, which a validated op never has.
    let _ = dense_s8_checked(op, input, output);
}

/// [`dense_s8`], reading the weights with `get` and `?` (no panic path).
fn dense_s8_checked(op: &DenseS8<'_>, input: &[i8], output: &mut [i8]) -> Option<()> {
    for (o, (out, &bias)) in output.iter_mut().zip(op.bias).enumerate().take(op.output_len) {
        let mut acc = bias;
        for (i, &x) in input.iter().enumerate().take(op.input_len) {
            let w = *op.weights.get(packed_index(i, o, op.output_len))?;
            acc += (x as i32 - op.input_zero_point) * w as i32;
        }
        *out = quant::finish(op.requant.apply(acc, o), op.output_zero_point, op.act_min, op.act_max);
    }
    Some(())
}
