//! Lowering: a trained float model ([`TrainedModel`]) to a float [`Plan`] of runtime ops.
//!
//! - Dropout disappears; flatten is a no-op in NHWC.
//! - Convolution weights go from burn's `[out, in, kh, kw]` to OHWI; `same` padding becomes
//!   explicit TF-style pads (the extra row/column at the bottom/right, as burn pads).
//! - A dense layer's weights go from burn's `[in, out]` (inputs in C,H,W flatten order) to
//!   `[out][in]` with inputs in H,W,C order, the order of the runtime's NHWC activations.
//! - [`fuse_pools`] then merges each pool that directly follows a convolution into it (in any
//!   precision, without changing a number), so the full convolution output never sits in RAM.

use mnistc_runtime::kernels::params::PoolKind;

use crate::plan::{Activation, Bias, OpKind, Plan, PlanOp, Pool, Precision, Shape, Weights};
use crate::spec::{self, Layer, ModelSpec, Padding};
use crate::train::TrainedModel;

/// Why a trained model cannot be lowered.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// The spec is inconsistent (cannot happen for a parsed spec).
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    /// A weighted layer has no trained weights, or weights of the wrong size.
    #[error("layer {index} ({kind}): {what}")]
    Weights {
        /// Spec layer index.
        index: usize,
        /// Layer type.
        kind: &'static str,
        /// What is wrong.
        what: String,
    },
}

/// TF/burn `same` padding of one dimension: `(before, after)`.
pub fn same_pads(n: usize, k: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// The runtime's activation for a spec activation.
pub fn activation(a: spec::Activation) -> Activation {
    match a {
        spec::Activation::None => Activation::None,
        spec::Activation::Relu => Activation::Relu,
        spec::Activation::Relu6 => Activation::Relu6,
    }
}

/// The plan precision of a spec precision.
pub fn precision(p: spec::Precision) -> Precision {
    match p {
        spec::Precision::Int8 => Precision::Int8,
        spec::Precision::F16 => Precision::F16,
        spec::Precision::F32 => Precision::F32,
    }
}

/// The unfused f32 plan of `spec` with zero weights, for what depends only on the
/// architecture: shapes, MACs, arena and blob size.
///
/// # Errors
/// [`LowerError::Spec`] if the spec's shapes are inconsistent.
pub fn skeleton_unfused(spec: &ModelSpec) -> Result<Plan, LowerError> {
    let ops = build_ops(spec, |_, _, out, per_out| Ok((vec![0.0; out * per_out], vec![0.0; out])))?;
    Ok(plan_of(spec, ops, [0; 32]))
}

/// Lowers a trained model to an unfused f32 plan, one op per conv/pool/dense layer (use
/// [`to_f16`] for f16, [`crate::quantize`] for int8, then [`fuse_pools`]).
///
/// # Errors
/// [`LowerError`] if the weights do not match the spec.
pub fn float_plan(model: &TrainedModel, source_hash: [u8; 32]) -> Result<Plan, LowerError> {
    let spec = &model.spec;
    let ops = build_ops(spec, |index, input, out, per_out| {
        let layer = &spec.layers[index].layer;
        let kind = layer.type_name();
        let err = |what: String| LowerError::Weights { index, kind, what };
        let trained = model.layer(index).ok_or_else(|| err("no trained weights".into()))?;
        if trained.weight.len() != out * per_out || trained.bias.len() != out {
            return Err(err(format!(
                "{} weights and {} biases, expected {} and {out}",
                trained.weight.len(),
                trained.bias.len(),
                out * per_out
            )));
        }
        let weights = match *layer {
            // burn [out, in, kh, kw] -> OHWI.
            Layer::Conv2d { kernel: [kh, kw], .. } => {
                let cin = input.c;
                let mut w = vec![0.0; out * per_out];
                for o in 0..out {
                    for c in 0..cin {
                        for y in 0..kh {
                            for x in 0..kw {
                                w[((o * kh + y) * kw + x) * cin + c] =
                                    trained.weight[((o * cin + c) * kh + y) * kw + x];
                            }
                        }
                    }
                }
                w
            }
            // burn [in (C,H,W order), out] -> [out][in (H,W,C order)].
            _ => {
                let (h, w, c) = (input.h, input.w, input.c);
                let mut v = vec![0.0; out * per_out];
                for o in 0..out {
                    for y in 0..h {
                        for x in 0..w {
                            for ch in 0..c {
                                let burn_in = (ch * h + y) * w + x;
                                v[o * per_out + (y * w + x) * c + ch] = trained.weight[burn_in * out + o];
                            }
                        }
                    }
                }
                v
            }
        };
        Ok((weights, trained.bias.clone()))
    })?;
    Ok(plan_of(spec, ops, source_hash))
}

fn plan_of(spec: &ModelSpec, ops: Vec<PlanOp>, source_hash: [u8; 32]) -> Plan {
    Plan {
        name: spec.name.clone(),
        dataset: spec.data.dataset.name().to_string(),
        class_names: spec.data.dataset.class_names(),
        input: Shape::new(spec.input.height, spec.input.width, spec.input.channels),
        precision: Precision::F32,
        output_quant: None,
        source_hash,
        ops,
    }
}

/// Merges every pool op that directly follows a convolution into that convolution.
///
/// Exact in every precision: the fused kernel computes the convolution's (requantized)
/// outputs and pools them as the two ops would. For int8 the merged op keeps the
/// convolution's output quantization as `conv` and takes the pool's output and average-pool
/// requantization.
pub fn fuse_pools(mut plan: Plan) -> Plan {
    let mut ops: Vec<PlanOp> = Vec::with_capacity(plan.ops.len());
    for op in plan.ops.drain(..) {
        let pool_kind = match op.kind {
            OpKind::MaxPool2d => Some(PoolKind::Max),
            OpKind::AvgPool2d => Some(PoolKind::Avg),
            _ => None,
        };
        match (pool_kind, ops.last_mut()) {
            (Some(kind), Some(conv)) if conv.kind == OpKind::Conv2d && conv.fused_pool.is_none() => {
                conv.fused_pool = Some(Pool { kind, size: op.kernel, stride: op.stride });
                conv.output = op.output;
                if let (Some(cq), Some(pq)) = (conv.quant.as_mut(), op.quant) {
                    cq.output = pq.output;
                    cq.pool_requant = pq.pool_requant;
                }
            }
            _ => ops.push(op),
        }
    }
    plan.ops = ops;
    plan
}

/// Rounds an f32 plan's weights to f16 (bias and activations stay f32).
pub fn to_f16(mut plan: Plan) -> Plan {
    for op in &mut plan.ops {
        if let Weights::F32(w) = &op.weights {
            op.weights = Weights::F16(w.iter().map(|&v| half::f16::from_f32(v)).collect());
        }
    }
    plan.precision = Precision::F16;
    plan
}

/// The ops of `spec`; `source(layer_index, input, out, per_out)` gives the weights (OHWI or
/// `[out][in]`) and bias of each weighted layer.
fn build_ops(
    spec: &ModelSpec,
    mut source: impl FnMut(usize, Shape, usize, usize) -> Result<(Vec<f32>, Vec<f32>), LowerError>,
) -> Result<Vec<PlanOp>, LowerError> {
    let shapes = spec.shapes()?;
    let mut ops: Vec<PlanOp> = Vec::new();
    for s in &shapes {
        let (h, w, c) = s.input.hwc();
        let input = Shape::new(h, w, c);
        let (oh, ow, oc) = s.output.hwc();
        let output = Shape::new(oh, ow, oc);
        match s.layer {
            Layer::Conv2d { filters, kernel, stride, padding, activation: act } => {
                let pads = match padding {
                    Padding::Valid => [0; 4],
                    Padding::Same => {
                        let (t, b) = same_pads(h, kernel[0], stride[0]);
                        let (l, r) = same_pads(w, kernel[1], stride[1]);
                        [t, l, b, r]
                    }
                };
                let (wv, bv) = source(s.index, input, filters, kernel[0] * kernel[1] * c)?;
                ops.push(PlanOp {
                    kind: OpKind::Conv2d,
                    input,
                    output,
                    kernel,
                    stride,
                    pads,
                    activation: activation(act),
                    fused_pool: None,
                    weights: Weights::F32(wv),
                    bias: Bias::F32(bv),
                    quant: None,
                });
            }
            Layer::MaxPool2d { size, stride } | Layer::AvgPool2d { size, stride } => {
                let kind = if matches!(s.layer, Layer::MaxPool2d { .. }) { PoolKind::Max } else { PoolKind::Avg };
                ops.push(PlanOp {
                    kind: if kind == PoolKind::Max { OpKind::MaxPool2d } else { OpKind::AvgPool2d },
                    input,
                    output,
                    kernel: size,
                    stride,
                    pads: [0; 4],
                    activation: Activation::None,
                    fused_pool: None,
                    weights: Weights::None,
                    bias: Bias::None,
                    quant: None,
                });
            }
            Layer::Dense { units, activation: act } => {
                let (wv, bv) = source(s.index, input, units, input.len())?;
                ops.push(PlanOp {
                    kind: OpKind::Dense,
                    input,
                    output: Shape::new(1, 1, units),
                    kernel: [0; 2],
                    stride: [0; 2],
                    pads: [0; 4],
                    activation: activation(act),
                    fused_pool: None,
                    weights: Weights::F32(wv),
                    bias: Bias::F32(bv),
                    quant: None,
                });
            }
            Layer::Dropout { .. } | Layer::Flatten => {}
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_burn() {
        assert_eq!(same_pads(28, 3, 1), (1, 1));
        assert_eq!(same_pads(28, 4, 1), (1, 2));
        assert_eq!(same_pads(5, 4, 2), (1, 2));
        assert_eq!(same_pads(7, 1, 3), (0, 0));
    }
}
