//! Scale arithmetic shared by the quantizer, the ONNX export and the tests.
//!
//! Scales are combined as ONNX defines it (`f32(f32(s_w · s_x) / s_y)`, see [`combined_scale`]),
//! and turned into the
//! runtime's requantization parameters: uniform when every output channel ends up with the same
//! f32 multiplier (tract then takes its uniform path), per channel otherwise.

use mnistc_runtime::quant::{multiplier_from_scale, per_channel_multiplier_is_valid};

use crate::lower::plan::RequantSpec;

/// Why scales cannot be turned into requantization parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScaleError {
    /// A combined multiplier is zero, negative, not finite, or outside the supported range.
    #[error("requantization multiplier {0} is outside the supported range (2^-32 .. 2^30)")]
    Multiplier(f32),
}

/// The requantization multiplier of a conv/dense: `f32(f32(s_w · s_x) / s_y)`, as ONNX and
/// onnxruntime compute it.
///
/// Runtimes round this product differently: tract builds the same expression, but its
/// decluttering turns the division into a multiplication by the f32 reciprocal and folds the
/// constants in an order that depends on the code path, one ulp apart for some scales — which
/// flips near-ties (26 of 54 million conv outputs of the reference CNN over the MNIST test set).
/// So the ONNX export does not ask runtimes to combine scales: it carries this multiplier itself
/// as the weight scale, with input and output scales 1 ([`crate::export::onnx`]).
pub fn combined_scale(s_w: f32, s_x: f32, s_y: f32) -> f32 {
    (s_w * s_x) / s_y
}

/// Requantization of a conv/dense with input scale `s_x`, per-channel weight scales `s_w` and
/// output scale `s_y`.
///
/// # Errors
/// [`ScaleError::Multiplier`] when a multiplier is unusable.
pub fn requant_spec(s_x: f32, s_w: &[f32], s_y: f32) -> Result<RequantSpec, ScaleError> {
    let m: Vec<f32> = s_w.iter().map(|&w| combined_scale(w, s_x, s_y)).collect();
    for &v in &m {
        if !per_channel_multiplier_is_valid(v.to_bits()) || multiplier_from_scale(v).is_none() {
            return Err(ScaleError::Multiplier(v));
        }
    }
    match m.first() {
        Some(&first) if m.iter().all(|v| v.to_bits() == first.to_bits()) => {
            let (multiplier, shift) = multiplier_from_scale(first).ok_or(ScaleError::Multiplier(first))?;
            Ok(RequantSpec::Uniform { multiplier, shift })
        }
        _ => Ok(RequantSpec::PerChannel(m)),
    }
}

/// The weight scale of an average pool exported as a depthwise `QLinearConv` with all-ones int8
/// weights: `f32(1 / n)`.
pub fn avg_pool_weight_scale(window: usize) -> f32 {
    1.0 / window as f32
}

/// Uniform requantization `(multiplier, shift)` of an average pool over `window` values from
/// scale `s_x` to scale `s_y`.
///
/// # Errors
/// [`ScaleError::Multiplier`] when the multiplier is unusable.
pub fn avg_pool_requant(window: usize, s_x: f32, s_y: f32) -> Result<(i32, i32), ScaleError> {
    let m = combined_scale(avg_pool_weight_scale(window), s_x, s_y);
    multiplier_from_scale(m).ok_or(ScaleError::Multiplier(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_channel_multipliers_take_the_uniform_path() {
        let spec = requant_spec(0.02, &[0.01, 0.01, 0.01], 0.05).unwrap();
        let m = combined_scale(0.01, 0.02, 0.05);
        let (multiplier, shift) = multiplier_from_scale(m).unwrap();
        assert_eq!(spec, RequantSpec::Uniform { multiplier, shift });
    }

    #[test]
    fn differing_channel_multipliers_take_the_per_channel_path() {
        let spec = requant_spec(0.02, &[0.01, 0.03], 0.05).unwrap();
        assert_eq!(
            spec,
            RequantSpec::PerChannel(vec![combined_scale(0.01, 0.02, 0.05), combined_scale(0.03, 0.02, 0.05)])
        );
    }

    #[test]
    fn unusable_multipliers_are_errors() {
        assert!(requant_spec(0.02, &[0.0], 0.05).is_err());
        assert!(requant_spec(0.02, &[1.0], 1e-12).is_err());
        assert!(avg_pool_requant(4, 0.1, 0.1).is_ok());
    }
}
