//! Lowering: a trained float model ([`TrainedModel`]) to the runtime's ops, then to bytes.
//!
//! The stage's steps, in order (quantization, [`crate::quantize`], comes between 1 and 2 for
//! int8 models):
//!
//! 1. this module: the float [`Plan`] ([`plan`]) of a trained model ([`float_plan`]), or of the
//!    architecture alone ([`skeleton_unfused`]); an `[ensemble]`'s members' plans become one
//!    ([`ensemble`](mod@ensemble));
//! 2. [`fuse`](mod@fuse): conv → pool fusion;
//! 3. [`arena`]: the static arena plan, with each kernel's scratch size;
//! 4. [`emit`]: the blob, written once and validated by the runtime;
//! 5. [`budget`]: flash, arena and MACs, from the architecture alone, before training.
//!
//! The float lowering:
//! - Dropout disappears; flatten is a no-op in NHWC; a batchnorm is folded into the conv2d or
//!   dense layer before it ([`fold_batchnorm`](mod@fold_batchnorm)); a global average pool is an average pool over
//!   the whole feature map.
//! - Convolution weights go from burn's `[out, in, kh, kw]` to OHWI; `same` padding becomes
//!   explicit TF-style pads (the extra row/column at the bottom/right, as burn pads).
//! - A dense layer's weights go from burn's `[in, out]` (inputs in C,H,W flatten order) to
//!   `[out][in]` with inputs in H,W,C order, the order of the runtime's NHWC activations.
//! - [`fuse::fuse_pools`] then merges each pool that directly follows a convolution into it (in any
//!   precision, without changing a number), so the full convolution output never sits in RAM.

pub mod arena;
pub mod budget;
pub mod emit;
pub mod ensemble;
pub mod fold_batchnorm;
pub mod fuse;
pub mod plan;

pub use fold_batchnorm::fold_batchnorm;
pub use fuse::{fuse, fuse_pools, fuse_residual_adds, fuse_traced};
pub use mnistc_runtime::kernels::params::same_pads;

use crate::spec::{self, Layer, ModelSpec, Padding};
use crate::train::TrainedModel;
use plan::{Activation, Bias, OpKind, Plan, PlanOp, Precision, Shape, Weights};

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
    /// The members of an `[ensemble]` cannot be averaged in one plan.
    #[error("ensemble: {0}")]
    Ensemble(String),
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
    let plan = plan_of(spec, ops, [0; 32]);
    match &spec.ensemble {
        None => Ok(plan),
        Some(e) => ensemble::ensemble(vec![plan; e.members.len()]),
    }
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
        let (folded_weight, bias) = match spec.layers.get(index + 1).map(|l| l.layer) {
            Some(Layer::BatchNorm { epsilon, .. }) => {
                let norm = model.layer(index + 1).ok_or_else(|| err("no trained batchnorm after it".into()))?;
                let (w, b) = fold_batchnorm(trained, norm, epsilon).map_err(err)?;
                (Some(w), b)
            }
            _ => (None, trained.bias.clone()),
        };
        let trained_weight = folded_weight.as_deref().unwrap_or(&trained.weight);
        let weights = match *layer {
            // burn [channels, 1, kh, kw] is already [channel][kh][kw].
            Layer::DepthwiseConv2d { .. } => trained_weight.to_vec(),
            // burn [out, in, kh, kw] -> OHWI.
            Layer::Conv2d { kernel: [kh, kw], .. } => {
                let cin = input.c;
                let mut w = vec![0.0; out * per_out];
                for o in 0..out {
                    for c in 0..cin {
                        for y in 0..kh {
                            for x in 0..kw {
                                w[((o * kh + y) * kw + x) * cin + c] =
                                    trained_weight[((o * cin + c) * kh + y) * kw + x];
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
                                v[o * per_out + (y * w + x) * c + ch] = trained_weight[burn_in * out + o];
                            }
                        }
                    }
                }
                v
            }
        };
        Ok((weights, bias))
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
        input_quant: None,
        source_hash,
        ops,
    }
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

/// `(outputs, weights per output)` of a conv2d, depthwise_conv2d or dense `layer` on `input`: the
/// weight matrix [`layer_op`] expects (OHWI for conv2d, `[channel][kh][kw]` for depthwise_conv2d,
/// `[out][in]` with `in` in NHWC order for dense);
/// `None` for layers without weights.
pub fn weight_shape(layer: &Layer, input: Shape) -> Option<(usize, usize)> {
    match *layer {
        Layer::Conv2d { filters, kernel, .. } => Some((filters, kernel[0] * kernel[1] * input.c)),
        Layer::DepthwiseConv2d { kernel, .. } => Some((input.c, kernel[0] * kernel[1])),
        Layer::Dense { units, .. } => Some((units, input.len())),
        _ => None,
    }
}

/// The float op that `layer` becomes on an NHWC `input`: conv2d (with TF-style `same` pads),
/// max/avg pool (no padding, floor) or dense (on any input: flattening is free in NHWC), with
/// `weights` and `bias` shaped as [`weight_shape`] says (ignored by pools).
///
/// A global average pool is an average pool whose window is the whole input.
///
/// Returns `Ok(None)` for dropout, flatten and batchnorm (no op on the device: a batchnorm is
/// folded into the layer before it, see [`fold_batchnorm`](mod@fold_batchnorm)), and an error message when the layer
/// does not fit its input or the weights do not match.
pub fn layer_op(layer: &Layer, input: Shape, weights: Vec<f32>, bias: Vec<f32>) -> Result<Option<PlanOp>, String> {
    if let Some((out, per_out)) = weight_shape(layer, input)
        && (weights.len() != out * per_out || bias.len() != out)
    {
        return Err(format!(
            "{} weights and {} biases, expected {} and {out}",
            weights.len(),
            bias.len(),
            out * per_out
        ));
    }
    let too_small = |what: &str, k: [usize; 2], h: usize, w: usize| {
        format!("{what} {}x{} does not fit its {h}x{w} input", k[0], k[1])
    };
    let op = |kind, output, kernel, stride, pads, activation, weights, bias| PlanOp {
        kind,
        inputs: Vec::new(),
        input,
        output,
        kernel,
        stride,
        pads,
        activation,
        fused_pool: None,
        residual: false,
        weights,
        bias,
        quant: None,
    };
    let conv_geometry = |kernel: [usize; 2], stride: [usize; 2], padding: Padding, channels: usize| {
        let pads = match padding {
            Padding::Valid => [0; 4],
            Padding::Same => {
                let (t, b) = same_pads(input.h, kernel[0], stride[0]);
                let (l, r) = same_pads(input.w, kernel[1], stride[1]);
                [t, l, b, r]
            }
        };
        let (h, w) = (input.h + pads[0] + pads[2], input.w + pads[1] + pads[3]);
        if h < kernel[0] || w < kernel[1] || stride.contains(&0) {
            return Err(too_small("kernel", kernel, input.h, input.w));
        }
        Ok((Shape::new((h - kernel[0]) / stride[0] + 1, (w - kernel[1]) / stride[1] + 1, channels), pads))
    };
    Ok(Some(match *layer {
        Layer::Conv2d { filters, kernel, stride, padding, activation: act } => {
            let (output, pads) = conv_geometry(kernel, stride, padding, filters)?;
            let (weights, bias) = (Weights::F32(weights), Bias::F32(bias));
            op(OpKind::Conv2d, output, kernel, stride, pads, activation(act), weights, bias)
        }
        Layer::DepthwiseConv2d { kernel, stride, padding, activation: act } => {
            let (output, pads) = conv_geometry(kernel, stride, padding, input.c)?;
            let (weights, bias) = (Weights::F32(weights), Bias::F32(bias));
            op(OpKind::DepthwiseConv2d, output, kernel, stride, pads, activation(act), weights, bias)
        }
        Layer::GlobalAvgPool => {
            let size = [input.h, input.w];
            op(
                OpKind::AvgPool2d,
                Shape::new(1, 1, input.c),
                size,
                size,
                [0; 4],
                Activation::None,
                Weights::None,
                Bias::None,
            )
        }
        Layer::MaxPool2d { size, stride } | Layer::AvgPool2d { size, stride } => {
            if input.h < size[0] || input.w < size[1] || stride.contains(&0) {
                return Err(too_small("pool", size, input.h, input.w));
            }
            let output = Shape::new((input.h - size[0]) / stride[0] + 1, (input.w - size[1]) / stride[1] + 1, input.c);
            let kind = if matches!(layer, Layer::MaxPool2d { .. }) { OpKind::MaxPool2d } else { OpKind::AvgPool2d };
            op(kind, output, size, stride, [0; 4], Activation::None, Weights::None, Bias::None)
        }
        Layer::Dense { units, activation: act } => {
            let (weights, bias) = (Weights::F32(weights), Bias::F32(bias));
            op(OpKind::Dense, Shape::new(1, 1, units), [0; 2], [0; 2], [0; 4], activation(act), weights, bias)
        }
        Layer::Add { activation: act } => {
            op(OpKind::Add, input, [0; 2], [0; 2], [0; 4], activation(act), Weights::None, Bias::None)
        }
        Layer::Dropout { .. } | Layer::Flatten | Layer::BatchNorm { .. } => return Ok(None),
    }))
}

/// The ops of `spec`; `source(layer_index, input, out, per_out)` gives the weights (OHWI or
/// `[out][in]`) and bias of each weighted layer. Each op reads the tensors its layer's `inputs`
/// name (see [`PlanOp::inputs`]).
fn build_ops(
    spec: &ModelSpec,
    mut source: impl FnMut(usize, Shape, usize, usize) -> Result<(Vec<f32>, Vec<f32>), LowerError>,
) -> Result<Vec<PlanOp>, LowerError> {
    let shapes = spec.shapes()?;
    let mut ops: Vec<PlanOp> = Vec::new();
    // The tensor each spec layer's output is on the device: its own op's output, or, for layers
    // that are no op (dropout, flatten, a batchnorm folded into the op before it), the tensor it
    // reads. A flatten (explicit or implicit) is a no-op on NHWC activations, so a dense layer
    // after it reads the spatial tensor itself; only the weight order remembers the flatten.
    let mut layer_tensor: Vec<usize> = Vec::with_capacity(shapes.len());
    let model_input = Shape::new(spec.input.height, spec.input.width, spec.input.channels);
    let tensor_shape = |ops: &[PlanOp], t: usize| t.checked_sub(1).map_or(model_input, |k| ops[k].output);
    for s in &shapes {
        let inputs: Vec<usize> = spec
            .inputs_of(s.index)
            .iter()
            .map(|r| match *r {
                spec::InputRef::Input => 0,
                spec::InputRef::Layer(j) => layer_tensor[j],
            })
            .collect();
        let current = tensor_shape(&ops, inputs[0]);
        let (weights, bias) = match weight_shape(&s.layer, current) {
            Some((out, per_out)) => source(s.index, current, out, per_out)?,
            None => (Vec::new(), Vec::new()),
        };
        let op = layer_op(&s.layer, current, weights, bias).map_err(|what| LowerError::Weights {
            index: s.index,
            kind: s.layer.type_name(),
            what,
        })?;
        if let Layer::BatchNorm { activation: act, .. } = s.layer {
            // Folded into the op before it (validation puts a conv2d or dense there, without an
            // activation of its own, read by nothing else): only the activation moves. The
            // trained weights arrive folded already (`fold_batchnorm`); other sources (shapes,
            // seeded weights) need no more.
            if let Some(last) = ops.last_mut() {
                last.activation = activation(act);
            }
            layer_tensor.push(inputs[0]);
            continue;
        }
        match op {
            Some(mut op) => {
                let (h, w, c) = s.output.hwc();
                debug_assert_eq!(
                    op.output,
                    Shape::new(h, w, c),
                    "layer {}: lowering and shape inference differ",
                    s.index
                );
                op.inputs = inputs;
                ops.push(op);
                layer_tensor.push(ops.len());
            }
            None => layer_tensor.push(inputs[0]),
        }
    }
    Ok(ops)
}
