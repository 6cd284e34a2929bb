//! Reference element-wise adds (residual connections).
//!
//! Operands and output are zipped: the shortest slice sets how many elements are written, so no
//! length can cause a panic (the dispatch point checks that the three lengths agree).

use super::activate_f32;
use crate::format::Activation;
use crate::kernels::params::AddS8;
use crate::quant;

/// int8 add, as tract-onnx runs `DequantizeLinear` → `Add` → `QuantizeLinear`: per element, in
/// f32 and in exactly this order (no fused multiply-add),
/// `y = f32(a − a_zp)·a_scale + f32(b − b_zp)·b_scale`, then
/// `clamp(round_half_even(y · inv_output_scale) + out_zp, act_min, act_max)` (the f32 → i32
/// conversion saturates, NaN gives 0, as Rust's `as` does). Scratch: none.
pub fn add_s8(p: &AddS8, a: &[i8], b: &[i8], output: &mut [i8]) {
    for ((o, &x), &y) in output.iter_mut().zip(a).zip(b) {
        *o = add_one_s8(p, x, y);
    }
}

/// One element of [`add_s8`]: `a + b` as the add's parameters say.
#[inline(always)]
pub fn add_one_s8(p: &AddS8, a: i8, b: i8) -> i8 {
    let sum = dequantize(a, p.a_zero_point, p.a_scale) + dequantize(b, p.b_zero_point, p.b_scale);
    let scaled = libm::rintf(sum * p.inv_output_scale) as i32;
    quant::finish(scaled, p.output_zero_point, p.act_min, p.act_max)
}

/// `f32(q − zero_point) · scale` (the difference taken in i64: exact for any zero point, the
/// int8 one's value for a valid zero point).
#[inline(always)]
fn dequantize(q: i8, zero_point: i32, scale: f32) -> f32 {
    (q as i64 - zero_point as i64) as f32 * scale
}

/// Float add: `out = act(a + b)` per element. Scratch: none.
pub fn add_f32(activation: Activation, a: &[f32], b: &[f32], output: &mut [f32]) {
    for ((o, &x), &y) in output.iter_mut().zip(a).zip(b) {
        *o = activate_f32(x + y, activation);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;

    /// Unit scales, zero points 0, the full int8 range.
    const UNIT: AddS8 = AddS8 {
        a_zero_point: 0,
        a_scale: 1.0,
        b_zero_point: 0,
        b_scale: 1.0,
        inv_output_scale: 1.0,
        output_zero_point: 0,
        act_min: -128,
        act_max: 127,
    };

    fn add(p: &AddS8, a: &[i8], b: &[i8]) -> Vec<i8> {
        let mut out = vec![99i8; a.len()];
        add_s8(p, a, b, &mut out);
        out
    }

    /// tract's `DequantizeLinear` → `Add` → `QuantizeLinear` written down with `std`:
    /// `(x − zp) as f32 * scale`, an f32 add, `round_ties_even(y · recip(out_scale)) as i32 + zp`
    /// clamped.
    fn tract(p: &AddS8, a: i8, b: i8) -> i8 {
        let y = (a as i32 - p.a_zero_point) as f32 * p.a_scale + (b as i32 - p.b_zero_point) as f32 * p.b_scale;
        let q = (y * p.inv_output_scale).round_ties_even() as i32 + p.output_zero_point;
        q.clamp(p.act_min, p.act_max) as i8
    }

    #[test]
    fn add_s8_rounds_half_to_even() {
        let p = AddS8 { a_scale: 0.5, b_scale: 0.5, ..UNIT };
        // y = 2.5, 3.5, −2.5, −3.5, 0.5, 1.5, −0.5
        let a = [3, 4, -3, -4, 1, 3, -1];
        let b = [2, 3, -2, -3, 0, 0, 0];
        assert_eq!(add(&p, &a, &b), [2, 4, -2, -4, 0, 2, 0]);
        // Not a tie: 2.5 + a quarter rounds up.
        let p = AddS8 { b_scale: 0.25, ..p };
        assert_eq!(add(&p, &[5], &[1]), [3]);
    }

    #[test]
    fn add_s8_applies_zero_points_and_scales() {
        // a: zp −128, scale 1/255 (the model input); b: zp 10, scale 0.02; out: scale 0.05, zp −3.
        let p = AddS8 {
            a_zero_point: -128,
            a_scale: 1.0 / 255.0,
            b_zero_point: 10,
            b_scale: 0.02,
            inv_output_scale: 1.0 / 0.05,
            output_zero_point: -3,
            act_min: -128,
            act_max: 127,
        };
        // (127 + 128)/255 + (60 − 10)·0.02 = 1 + 1 = 2 → 40 − 3 = 37;
        // (−128 + 128)/255 + (10 − 10)·0.02 = 0 → −3;
        // 0 + (−40 − 10)·0.02 = −1 → −20 − 3 = −23.
        assert_eq!(add(&p, &[127, -128, -128], &[60, 10, -40]), [37, -3, -23]);
    }

    #[test]
    fn add_s8_saturates_at_the_int8_ends() {
        let wide = AddS8 { a_zero_point: -128, b_zero_point: -128, ..UNIT };
        // (127 + 128) + (127 + 128) = 510 → 127; 0 + 0 → 0 − 0 = 0.
        assert_eq!(add(&wide, &[127, -128], &[127, -128]), [127, 0]);
        let low = AddS8 { a_zero_point: 127, b_zero_point: 127, ..UNIT };
        // (−128 − 127)·2 = −510 → −128.
        assert_eq!(add(&low, &[-128], &[-128]), [-128]);
        // Exactly at the ends: 100 + 27 = 127, −100 − 28 = −128, one past each end.
        assert_eq!(add(&UNIT, &[100, -100, 100, -100], &[27, -28, 28, -29]), [127, -128, 127, -128]);
    }

    #[test]
    fn add_s8_clamps_to_the_fused_relu() {
        // A fused relu with output zero point −10: act_min = −10, act_max = 127.
        let p = AddS8 { output_zero_point: -10, act_min: -10, ..UNIT };
        assert_eq!(add(&p, &[-5, 0, 3, 100], &[-5, 0, 4, 100]), [-10, -10, -3, 127]);
        // relu6 at scale 0.1: 6 / 0.1 = 60 above the zero point.
        let p = AddS8 { a_scale: 0.1, b_scale: 0.1, inv_output_scale: 10.0, act_min: 0, act_max: 60, ..UNIT };
        assert_eq!(add(&p, &[-20, 20, 50], &[0, 10, 50]), [0, 30, 60]);
    }

    #[test]
    fn add_s8_extreme_scales_saturate_without_panicking() {
        // Scale ratio 2^16 (the most a blob may have): 255 · 2^16 is far past int8.
        let p = AddS8 { inv_output_scale: 65536.0, a_zero_point: -128, output_zero_point: 5, ..UNIT };
        assert_eq!(add(&p, &[127, -128, -127], &[0, 0, -2]), [127, 5, -128]);
        assert_eq!(add(&AddS8 { a_zero_point: 0, ..p }, &[-1], &[0]), [-128]);
        // Past i32 and past f32: the conversion saturates (inf → i32::MAX, −inf → i32::MIN).
        let huge = AddS8 { a_scale: 1e30, inv_output_scale: 1e30, output_zero_point: 5, ..UNIT };
        assert_eq!(add(&huge, &[1, -1, 0], &[0, 0, 0]), [127, -128, 5]);
        // NaN (0 · inf) converts to 0: the zero point.
        let nan = AddS8 { a_scale: f32::INFINITY, output_zero_point: -7, ..UNIT };
        assert_eq!(add(&nan, &[0], &[0]), [-7]);
        // Tiny scales vanish: the zero point.
        let tiny = AddS8 { a_scale: f32::MIN_POSITIVE, b_scale: f32::MIN_POSITIVE, output_zero_point: 3, ..UNIT };
        assert_eq!(add(&tiny, &[127], &[-128]), [3]);
        // Zero points no valid op has, and act_min > act_max: no overflow, no panic.
        let odd = AddS8 { a_zero_point: i32::MIN, b_zero_point: i32::MAX, act_min: 100, act_max: -100, ..UNIT };
        let _ = add(&odd, &[-128, 127], &[127, -128]);
    }

    #[test]
    fn add_s8_equals_tracts_formula_on_every_pair() {
        let cases = [
            UNIT,
            AddS8 {
                a_zero_point: -128,
                a_scale: 1.0 / 255.0,
                b_zero_point: 3,
                b_scale: 0.0173,
                inv_output_scale: 1.0 / 0.0291,
                output_zero_point: -17,
                act_min: -17,
                act_max: 127,
            },
            AddS8 {
                a_zero_point: 127,
                a_scale: 0.37,
                b_zero_point: -128,
                b_scale: 3.1e-3,
                inv_output_scale: 1.0 / 0.125,
                output_zero_point: 40,
                act_min: -128,
                act_max: 90,
            },
        ];
        // Every pair natively; a strided sample under Miri (interpreted, ~1000x slower).
        let step = if cfg!(miri) { 37 } else { 1 };
        for p in &cases {
            for a in (-128i32..=127).step_by(step) {
                let b: Vec<i8> = (-128i32..=127).step_by(step).map(|v| v as i8).collect();
                let got = add(p, &vec![a as i8; b.len()], &b);
                for (&g, &y) in got.iter().zip(&b) {
                    assert_eq!(g, tract(p, a as i8, y), "{p:?}: {a} + {y}");
                }
            }
        }
    }

    #[test]
    fn add_s8_writes_only_as_many_elements_as_the_shortest_slice() {
        let mut out = [9i8; 4];
        add_s8(&UNIT, &[1, 2, 3], &[1, 1], &mut out);
        assert_eq!(out, [2, 3, 9, 9]);
        add_s8(&UNIT, &[], &[1], &mut out);
        assert_eq!(out, [2, 3, 9, 9]);
    }

    #[test]
    fn add_f32_adds_and_applies_the_activation() {
        let a = [1.5f32, -2.0, 4.0, 0.25, -0.5];
        let b = [1.0f32, 1.0, 3.0, 0.5, 0.5];
        let mut out = [0f32; 5];
        add_f32(Activation::None, &a, &b, &mut out);
        assert_eq!(out, [2.5, -1.0, 7.0, 0.75, 0.0]);
        add_f32(Activation::Relu, &a, &b, &mut out);
        assert_eq!(out, [2.5, 0.0, 7.0, 0.75, 0.0]);
        add_f32(Activation::Relu6, &a, &b, &mut out);
        assert_eq!(out, [2.5, 0.0, 6.0, 0.75, 0.0]);
        let mut short = [7f32; 2];
        add_f32(Activation::Relu6, &a[..1], &b, &mut short);
        assert_eq!(short, [2.5, 7.0]);
    }
}
