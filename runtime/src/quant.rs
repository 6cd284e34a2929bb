//! int8 requantization, bit-exact with tract-onnx 0.23.9 or with TFLite, in integer arithmetic
//! only.
//!
//! tract turns a conv/matmul's i32 accumulator into int8 in one of two ways
//! (`tract-core/src/ops/quant.rs`, `tract-linalg/src/generic/rounding.rs`):
//!
//! * **Uniform** (one f32 scale `m` for the whole op): `Scaler` converts `m` exactly into a Q0.31
//!   `multiplier` in `[2^30, 2^31)` and a `shift`, multiplies in i64 and rounds the product
//!   half to even on its magnitude: [`requantize_uniform`].
//! * **Per channel** (scales differ between output channels): `scale_by` computes
//!   `round_half_even(f32(f32(|acc|)·m_c))·sign(acc)` in f32. [`requantize_per_channel`] reproduces
//!   that product's rounding to 24 significant bits with integers, so cores without an FPU get the
//!   same bits.
//!
//! Both are followed by `+ zero_point` and a clamp to the int8 activation range. The scale itself
//! is `m = f32(f32(s_w·s_x)/s_y)`, computed by the compiler; the exported ONNX carries `m` itself so
//! that tract and onnxruntime scale by exactly the same `m`.
//!
//! Imported TFLite models keep TFLite's own arithmetic ([`requantize_tflite`]: a Q31 multiplier
//! and a power-of-two shift per output channel, `SaturatingRoundingDoublingHighMul` then
//! `RoundingDivideByPOT`, as TFLite Micro's reference kernels and CMSIS-NN compute it), and
//! TFLite's average pool ([`tflite_average`]). The two roundings differ (tract rounds ties to
//! even, TFLite away from zero, twice), so a blob records which one each op uses.

/// tract's `Scaler::convert_scale_to_mult_shift`, normalised so that powers of two also get a
/// multiplier (`2^30`, one more shift): both forms give identical results.
///
/// Returns `None` unless `scale` is a positive, normal, finite f32 whose total right shift
/// `31 + shift` falls in `1..=62` (that is, `2^-32 <= scale < 2^30`).
pub fn multiplier_from_scale(scale: f32) -> Option<(i32, i32)> {
    let bits = scale.to_bits();
    let exponent = ((bits >> 23) & 0xFF) as i32;
    if bits >> 31 != 0 || exponent == 0 || exponent == 0xFF {
        return None;
    }
    let frac = (bits & 0x7F_FFFF) | 0x80_0000;
    let multiplier = (frac << 7) as i32;
    let shift = 127 - exponent - 1;
    uniform_shift_is_valid(shift).then_some((multiplier, shift))
}

/// Whether a Q0.31 multiplier is normalised as [`multiplier_from_scale`] makes it.
pub const fn uniform_multiplier_is_valid(multiplier: i32) -> bool {
    multiplier >= 1 << 30
}

/// Whether `31 + shift` is a right shift [`requantize_uniform`] supports (`1..=62`).
pub const fn uniform_shift_is_valid(shift: i32) -> bool {
    shift >= -30 && shift <= 31
}

/// Whether `bits` is an f32 per-channel multiplier [`requantize_per_channel`] supports: positive,
/// normal and finite.
pub const fn per_channel_multiplier_is_valid(bits: u32) -> bool {
    let exponent = (bits >> 23) & 0xFF;
    bits >> 31 == 0 && exponent != 0 && exponent != 0xFF
}

/// The f32 value a uniform `(multiplier, shift)` pair stands for.
pub fn uniform_scale(multiplier: i32, shift: i32) -> f32 {
    (multiplier as f64 * libm::exp2(-(31 + shift) as f64)) as f32
}

/// tract's uniform requantization: `round_half_even(acc · multiplier / 2^(31 + shift))`,
/// computed exactly in i64 and truncated to i32 as tract does.
///
/// `shift` must satisfy [`uniform_shift_is_valid`] (checked when a blob is loaded).
#[inline]
pub fn requantize_uniform(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let total = (31 + shift).clamp(1, 62) as u32;
    let val = multiplier as i64 * acc as i64;
    let half = 1i64 << (total - 1);
    let nudge = ((val.abs() >> total) & 1) - 1;
    (val.signum() * ((val.abs() + half + nudge) >> total)) as i32
}

/// tract's per-channel requantization `round_half_even(f32(f32(|acc|)·m))·sign(acc)` (saturated to
/// i32 like an f32 → i32 `as` cast), in integer arithmetic.
///
/// `m_bits` is the multiplier's f32 bit pattern and must satisfy
/// [`per_channel_multiplier_is_valid`] (checked when a blob is loaded).
#[inline]
pub fn requantize_per_channel(acc: i32, m_bits: u32) -> i32 {
    let magnitude = acc.unsigned_abs() as u64;
    if magnitude == 0 {
        return 0;
    }
    // f32(|acc|) = a · 2^ea with a < 2^25 (rounded to 24 significant bits, ties to even).
    let (a, ea) = round_to_24_bits(magnitude, 0);
    // m = mant · 2^em exactly.
    let mant = ((m_bits & 0x7F_FFFF) | 0x80_0000) as u64;
    let em = ((m_bits >> 23) & 0xFF) as i32 - 150;
    // The f32 product: exact 48-bit product rounded to 24 significant bits.
    let (p, e) = round_to_24_bits(a * mant, ea + em);
    // Round half to even to an integer, saturating like `f32 as i32`.
    let r: u64 = if e >= 0 { if e > 32 { u64::MAX } else { p << e } } else { round_shift_right_even(p, (-e) as u32) };
    if acc > 0 {
        r.min(i32::MAX as u64) as i32
    } else if r >= 1 << 31 {
        i32::MIN
    } else {
        -(r as i32)
    }
}

/// tract's per-channel requantization in f32 arithmetic, for cores with a hardware FPU: the
/// same value as [`requantize_per_channel`] (property-tested), from an f32 multiply and tract's
/// own half-to-even rounding (`x ± 2^23 ∓ 2^23`, exact for |x| < 2^23; larger values are
/// integers already).
#[inline]
pub fn requantize_per_channel_f32(acc: i32, m_bits: u32) -> i32 {
    const TOINT: f32 = 8_388_608.0; // 2^23
    let x = acc as f32 * f32::from_bits(m_bits);
    let r = if x.abs() >= TOINT {
        x
    } else if x >= 0.0 {
        (x + TOINT) - TOINT
    } else {
        (x - TOINT) + TOINT
    };
    r as i32
}

/// Rounds `v · 2^e` to 24 significant bits (ties to even); returns the new `(v, e)`.
#[inline]
fn round_to_24_bits(v: u64, e: i32) -> (u64, i32) {
    let bits = 64 - v.leading_zeros();
    if bits <= 24 {
        (v, e)
    } else {
        let drop = bits - 24;
        (round_shift_right_even(v, drop), e + drop as i32)
    }
}

/// `v / 2^s` rounded half to even (`s >= 1`; any `s >= 64` gives 0 for the `v < 2^63` used here).
#[inline]
fn round_shift_right_even(v: u64, s: u32) -> u64 {
    if s >= 64 {
        return 0;
    }
    let q = v >> s;
    let rem = v & ((1u64 << s) - 1);
    let half = 1u64 << (s - 1);
    if rem > half || (rem == half && q & 1 == 1) { q + 1 } else { q }
}

/// Whether `(multiplier, shift)` is a TFLite Q31 pair [`requantize_tflite`] supports: the
/// multiplier in `[0, 2^31)` (TFLite's `QuantizeMultiplier` gives `[2^30, 2^31)`, or 0 for a zero
/// scale) and the shift (positive: left) in `-31..=30`.
pub const fn tflite_pair_is_valid(multiplier: i32, shift: i32) -> bool {
    multiplier >= 0 && shift >= -31 && shift <= 30
}

/// TFLite's `SaturatingRoundingDoublingHighMul(a, b)`: the high 32 bits of `2·a·b`, rounded
/// half away from zero (saturating the one overflowing case, `a = b = i32::MIN`).
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 { 1i64 << 30 } else { 1 - (1i64 << 30) };
    // Truncating division, as C's `/`: |ab + nudge| / 2^31 < 2^31.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// TFLite's `RoundingDivideByPOT(x, exponent)`: `x / 2^exponent` rounded half away from zero
/// (`exponent` in `0..=31`; larger exponents are taken as 31).
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    let e = exponent.min(31);
    let mask = ((1i64 << e) - 1) as i32 as i64;
    let x = x as i64;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i64::from(x < 0);
    ((x >> e) + i64::from(remainder > threshold)) as i32
}

/// TFLite's `MultiplyByQuantizedMultiplier(acc, multiplier, shift)` (TFLite Micro's reference
/// kernels and CMSIS-NN's `arm_nn_requantize`, both with double rounding):
/// `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc · 2^left, multiplier), right)`
/// with `left = max(shift, 0)`, `right = max(−shift, 0)`.
///
/// `(multiplier, shift)` must satisfy [`tflite_pair_is_valid`]; a loaded blob also guarantees
/// that `acc · 2^left` fits in i32 (the shift wraps otherwise, as the C code's does in practice).
#[inline]
pub fn requantize_tflite(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.clamp(0, 30) as u32;
    let right = (-shift).clamp(0, 31) as u32;
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(acc.wrapping_shl(left), multiplier), right)
}

/// TFLite's `QuantizeMultiplier`: `scale = q · 2^shift` with `q` a Q0.31 value in `[2^30, 2^31)`
/// rounded half away from zero (`(0, 0)` for a zero scale, and for scales below `2^-32`, which
/// TFLite flushes to zero; shifts above 30 saturate as in TFLite).
pub fn tflite_multiplier(scale: f64) -> (i32, i32) {
    if scale.is_nan() || scale <= 0.0 || scale.is_infinite() {
        return (0, 0);
    }
    let (fraction, mut shift) = frexp(scale);
    let mut q = libm::round(fraction * (1u64 << 31) as f64) as i64;
    if q == 1i64 << 31 {
        q /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    if shift > 30 {
        return (i32::MAX, 30);
    }
    (q as i32, shift)
}

/// `x = fraction · 2^exponent` with `fraction` in `[0.5, 1)` (C's `frexp`, for positive normal or
/// subnormal `x`).
fn frexp(x: f64) -> (f64, i32) {
    let (x, bias) = if x < f64::MIN_POSITIVE { (x * (1u64 << 54) as f64, -54) } else { (x, 0) };
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7FF) as i32 - 1022;
    let fraction = f64::from_bits((bits & !(0x7FFu64 << 52)) | (1022u64 << 52));
    (fraction, exponent + bias)
}

/// TFLite's int8 average: the window's sum of raw int8 values divided by its `count` values,
/// rounded half away from zero (`(sum ± count/2) / count`, truncating).
#[inline]
pub fn tflite_average(sum: i32, count: i32) -> i32 {
    if count <= 0 {
        return 0;
    }
    if sum > 0 { (sum + count / 2) / count } else { (sum - count / 2) / count }
}

/// Adds the zero point and clamps to `[min, max]` (an int8 range; `min <= max`).
#[inline]
pub fn finish(scaled: i32, zero_point: i32, min: i32, max: i32) -> i8 {
    scaled.saturating_add(zero_point).max(min).min(max) as i8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The straightforward f32 formulation of tract's `scale_by`.
    fn per_channel_f32(acc: i32, m: f32) -> i32 {
        let b = acc as f32;
        ((b.abs() * m).round_ties_even() * b.signum()) as i32
    }

    /// The straightforward f64 formulation of the uniform path (exact for |acc| < 2^29).
    fn uniform_f64(acc: i32, m: f32) -> i32 {
        (acc as f64 * m as f64).round_ties_even() as i32
    }

    fn any_multiplier() -> impl Strategy<Value = f32> {
        prop_oneof![
            (1e-6f32..1.0f32),
            (1e-3f32..4.0f32),
            (0u32..24, 1u32..64).prop_map(|(e, k)| k as f32 / (1u32 << e) as f32),
            (1u32..2048).prop_map(|n| 1.0 / n as f32),
        ]
    }

    #[test]
    fn multiplier_matches_tracts_conversion() {
        // tract: frac << 7 and shift = 127 - exponent - 1: 0.75 = 0x6000_0000 / 2^31.
        assert_eq!(multiplier_from_scale(0.75), Some((0x6000_0000, 0)));
        assert_eq!(multiplier_from_scale(0.1), Some((0x6666_6680, 3)));
        // Powers of two get 2^30 and one more shift.
        assert_eq!(multiplier_from_scale(0.5), Some((1 << 30, 0)));
        assert_eq!(multiplier_from_scale(0.0), None);
        assert_eq!(multiplier_from_scale(-0.5), None);
        assert_eq!(multiplier_from_scale(f32::NAN), None);
        assert_eq!(multiplier_from_scale(f32::INFINITY), None);
        assert_eq!(multiplier_from_scale(f32::MIN_POSITIVE / 2.0), None);
        // Exact powers of two (not `powi`, which Miri deliberately computes imprecisely).
        assert_eq!(multiplier_from_scale((1u64 << 30) as f32), None);
        assert!(multiplier_from_scale(1.0 / (1u64 << 32) as f32).is_some());
        assert_eq!(multiplier_from_scale(1.0 / (1u64 << 33) as f32), None);
    }

    #[test]
    fn uniform_rounds_ties_to_even() {
        let (m, s) = multiplier_from_scale(0.5).unwrap();
        let got: Vec<i32> = [-5, -3, -1, 1, 3, 5].iter().map(|&a| requantize_uniform(a, m, s)).collect();
        assert_eq!(got, [-2, -2, 0, 0, 2, 2]);
    }

    #[test]
    fn per_channel_rounds_ties_to_even() {
        let m = 0.5f32.to_bits();
        let got: Vec<i32> = [-5, -3, -1, 1, 3, 5].iter().map(|&a| requantize_per_channel(a, m)).collect();
        assert_eq!(got, [-2, -2, 0, 0, 2, 2]);
    }

    #[test]
    fn per_channel_matches_f32_on_every_accumulator_for_some_scales() {
        // Exhaustive over |acc| < 2^17 for scales with awkward mantissas and powers of two
        // (|acc| < 2^6 under Miri, which interprets ~1000x slower).
        let limit: i32 = if cfg!(miri) { 1 << 6 } else { 1 << 17 };
        for m in [0.003_921_569f32, 1.0 / 3.0, 0.1, 0.5, 0.999_999_9, 1.0 / 1024.0, 0.007_812_5] {
            for acc in -limit..limit {
                assert_eq!(requantize_per_channel(acc, m.to_bits()), per_channel_f32(acc, m), "acc {acc} m {m}");
            }
        }
    }

    #[test]
    fn per_channel_saturates_like_an_f32_cast() {
        let m = 1.5f32.to_bits();
        assert_eq!(requantize_per_channel(i32::MAX, m), per_channel_f32(i32::MAX, 1.5));
        assert_eq!(requantize_per_channel(i32::MIN, m), per_channel_f32(i32::MIN, 1.5));
        assert_eq!(requantize_per_channel(i32::MIN, 1e-30f32.to_bits()), 0);
    }

    /// TFLite's requantization written out over i128: `floor((x·m + 2^30) / 2^31)` (the doubling
    /// high multiply), then a division by `2^right` rounded half away from zero.
    fn tflite_exact(acc: i32, m: i32, shift: i32) -> i32 {
        let left = shift.max(0) as u32;
        let right = (-shift).max(0) as u32;
        let x = ((acc as i64) << left) as i32 as i128;
        let high = (x * m as i128 + (1i128 << 30)).div_euclid(1i128 << 31);
        if right == 0 {
            return high as i32;
        }
        let half = 1i128 << (right - 1);
        let q = if high >= 0 { (high + half) >> right } else { -((-high + half) >> right) };
        q as i32
    }

    #[test]
    fn tflite_multiplier_matches_quantize_multiplier() {
        assert_eq!(tflite_multiplier(0.5), (1 << 30, 0));
        assert_eq!(tflite_multiplier(0.25), (1 << 30, -1));
        assert_eq!(tflite_multiplier(1.0), (1 << 30, 1));
        assert_eq!(tflite_multiplier(0.75), (0x6000_0000, 0));
        // 2/3 · 2^31 = 1431655765.33 rounds down.
        assert_eq!(tflite_multiplier(1.0 / 3.0), (1_431_655_765, -1));
        // A fraction that rounds up to 2^31 becomes 2^30 with one more shift.
        assert_eq!(tflite_multiplier(1.0 - 1e-12), (1 << 30, 1));
        assert_eq!(tflite_multiplier(0.0), (0, 0));
        assert_eq!(tflite_multiplier(-1.0), (0, 0));
        assert_eq!(tflite_multiplier(1e-12), (0, 0));
        assert_eq!(tflite_multiplier(f64::MIN_POSITIVE / 4.0), (0, 0));
        assert_eq!(tflite_multiplier(1e12), (i32::MAX, 30));
    }

    #[test]
    fn tflite_roundings_go_half_away_from_zero() {
        // x · 0.5 through a right shift of 1 (multiplier 2^30 is 0.5, shift 0 keeps it).
        let got: Vec<i32> = [-5, -3, -1, 1, 3, 5].iter().map(|&a| requantize_tflite(a, 1 << 30, 0)).collect();
        assert_eq!(got, [-2, -1, 0, 1, 2, 3]);
        let got: Vec<i32> = [-6, -2, 2, 6].iter().map(|&a| requantize_tflite(a, 1 << 30, -1)).collect();
        assert_eq!(got, [-2, -1, 1, 2]);
        assert_eq!(rounding_divide_by_pot(-3, 1), -2);
        assert_eq!(rounding_divide_by_pot(3, 1), 2);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(tflite_average(7, 2), 4);
        assert_eq!(tflite_average(-7, 2), -4);
        assert_eq!(tflite_average(-5, 3), -2);
        assert_eq!(tflite_average(5, 0), 0);
    }

    proptest! {
        // Under Miri (interpreted, ~1000x slower) a few cases check the arithmetic for UB.
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 16 } else { 20_000 }))]

        #[test]
        fn per_channel_equals_f32_formulation(acc in any::<i32>(), m in any_multiplier()) {
            prop_assert_eq!(requantize_per_channel(acc, m.to_bits()), per_channel_f32(acc, m));
        }

        #[test]
        fn per_channel_float_path_equals_integer_path(acc in any::<i32>(), m in any_multiplier()) {
            prop_assert_eq!(requantize_per_channel_f32(acc, m.to_bits()), requantize_per_channel(acc, m.to_bits()));
        }

        #[test]
        fn per_channel_equals_f32_near_ties(k in -4_000_000i32..4_000_000, e in 1u32..12, m in any_multiplier()) {
            // acc·m lands on or next to a half for m = odd/2^e.
            let m2 = ((m * (1u32 << e) as f32).round() as u32 | 1) as f32 / (1u32 << e) as f32;
            for acc in [k, k + 1, k - 1] {
                prop_assert_eq!(requantize_per_channel(acc, m2.to_bits()), per_channel_f32(acc, m2));
            }
        }

        #[test]
        fn tflite_equals_exact_formulation(acc in any::<i32>(), m in any_multiplier(), shift in -8i32..=0) {
            let (mult, s) = tflite_multiplier(m as f64);
            prop_assert_eq!(requantize_tflite(acc, mult, s + shift), tflite_exact(acc, mult, s + shift));
        }

        #[test]
        fn tflite_average_equals_rounded_quotient(sum in -1_000_000i32..1_000_000, count in 1i32..1000) {
            let q = sum as f64 / count as f64;
            let rounded = if q >= 0.0 { (q + 0.5).floor() } else { (q - 0.5).ceil() };
            prop_assert_eq!(tflite_average(sum, count) as f64, rounded);
        }

        #[test]
        fn uniform_equals_f64_formulation(acc in -(1i32 << 29)..(1i32 << 29), m in any_multiplier()) {
            prop_assume!((acc as f64 * m as f64).abs() < (1u64 << 31) as f64);
            let (mult, shift) = multiplier_from_scale(m).unwrap();
            prop_assert_eq!(requantize_uniform(acc, mult, shift), uniform_f64(acc, m));
        }

        #[test]
        fn uniform_equals_exact_rational_for_any_accumulator(acc in any::<i32>(), m in any_multiplier()) {
            // acc · m rounded half to even, computed on i128 from m's exact mantissa and exponent.
            let (mult, shift) = multiplier_from_scale(m).unwrap();
            let num = acc as i128 * mult as i128;
            let den = 1i128 << (31 + shift);
            let q = num.div_euclid(den);
            let r = num.rem_euclid(den);
            let rounded = if 2 * r > den || (2 * r == den && q & 1 == 1) { q + 1 } else { q };
            prop_assert_eq!(requantize_uniform(acc, mult, shift), rounded as i32);
        }
    }
}
