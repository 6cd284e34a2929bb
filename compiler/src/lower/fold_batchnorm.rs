//! Batch normalization folded into the conv2d or dense layer before it, exactly, in float,
//! before quantization: the blob never sees a batchnorm.
//!
//! At inference a batchnorm computes, per channel `o`,
//! `γ_o · (x_o − μ_o) / √(σ²_o + ε) + β_o` with its running mean `μ` and variance `σ²`. On the
//! output `x_o = Σ w_oi · a_i + b_o` of the layer before it, that is the same layer with
//! `w'_oi = s_o · w_oi` and `b'_o = s_o · (b_o − μ_o) + β_o`, where `s_o = γ_o / √(σ²_o + ε)`
//! (computed in f64, rounded once to f32).

use crate::train::{LayerKind, TrainedLayer};

/// The weights and bias of `layer` (conv2d `[out, in, kh, kw]`, depthwise `[channels, 1, kh,
/// kw]` or dense `[in, out]`, burn's layouts) with the batchnorm `norm` (`[4, out]`: γ, β, mean, variance) folded in.
///
/// # Errors
/// A message when the shapes do not match or a variance is negative or not finite.
pub fn fold_batchnorm(layer: &TrainedLayer, norm: &TrainedLayer, epsilon: f64) -> Result<(Vec<f32>, Vec<f32>), String> {
    let out = layer.bias.len();
    if norm.kind != LayerKind::BatchNorm || norm.weight.len() != 4 * out {
        return Err(format!(
            "a batchnorm of {} values follows a layer of {out} outputs; expected 4 × {out} (γ, β, mean, variance)",
            norm.weight.len()
        ));
    }
    let row = |r: usize| &norm.weight[r * out..(r + 1) * out];
    let (gamma, beta, mean, var) = (row(0), row(1), row(2), row(3));
    if let Some(v) = var.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(format!("the batchnorm's running variance holds {v}"));
    }
    let scale: Vec<f64> =
        gamma.iter().zip(var).map(|(&g, &v)| f64::from(g) / (f64::from(v) + epsilon).sqrt()).collect();
    let bias = (0..out)
        .map(|o| (scale[o] * (f64::from(layer.bias[o]) - f64::from(mean[o])) + f64::from(beta[o])) as f32)
        .collect();
    let weight = match layer.kind {
        // [out, in, kh, kw] (depthwise: [channels, 1, kh, kw]): a contiguous block per output
        // channel.
        LayerKind::Conv2d | LayerKind::DepthwiseConv2d => {
            let per_out = layer.weight.len() / out.max(1);
            layer.weight.iter().enumerate().map(|(i, &w)| (f64::from(w) * scale[i / per_out]) as f32).collect()
        }
        // [in, out]: the output is the fastest index.
        LayerKind::Dense => {
            layer.weight.iter().enumerate().map(|(i, &w)| (f64::from(w) * scale[i % out]) as f32).collect()
        }
        LayerKind::BatchNorm => return Err("a batchnorm cannot follow a batchnorm".into()),
    };
    Ok((weight, bias))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_equals_normalizing_the_outputs() {
        // Dense 2 -> 3 on the input a = (1, -2).
        let layer = TrainedLayer {
            spec_index: 0,
            kind: LayerKind::Dense,
            weight: vec![0.5, -1.0, 2.0, 0.25, 0.75, -0.5],
            weight_shape: vec![2, 3],
            bias: vec![0.1, 0.2, -0.3],
        };
        let norm = TrainedLayer {
            spec_index: 1,
            kind: LayerKind::BatchNorm,
            weight: vec![1.5, 0.5, 2.0, 0.1, -0.2, 0.3, 0.05, -0.4, 1.0, 0.8, 2.5, 0.01],
            weight_shape: vec![4, 3],
            bias: Vec::new(),
        };
        let eps = 1e-3;
        let a = [1.0f64, -2.0];
        let (w, b) = fold_batchnorm(&layer, &norm, eps).unwrap();
        for o in 0..3 {
            let x: f64 =
                (0..2).map(|i| a[i] * f64::from(layer.weight[i * 3 + o])).sum::<f64>() + f64::from(layer.bias[o]);
            let n = |r: usize| f64::from(norm.weight[r * 3 + o]);
            let expected = n(0) * (x - n(2)) / (n(3) + eps).sqrt() + n(1);
            let folded: f64 = (0..2).map(|i| a[i] * f64::from(w[i * 3 + o])).sum::<f64>() + f64::from(b[o]);
            assert!((folded - expected).abs() < 1e-5, "output {o}: {folded} vs {expected}");
        }
        let bad = TrainedLayer { weight: vec![0.0; 8], ..norm.clone() };
        assert!(fold_batchnorm(&layer, &bad, eps).unwrap_err().contains("expected 4 × 3"));
        let mut negative = norm;
        negative.weight[9] = -1.0;
        assert!(fold_batchnorm(&layer, &negative, eps).unwrap_err().contains("variance"));
    }
}
