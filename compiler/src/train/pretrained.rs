//! `[init] from`: the weights of a pretrained model, mapped onto the spec's layers.
//!
//! The file is an mnistc checkpoint (its layers as trained), or a `.tflite` / `.onnx` read by
//! the importers ([`crate::import`]); an int8 model's weights and biases are dequantized
//! (`q · s_w[c]`, `b · s_in · s_w[c]`). Its layers with parameters, in order, are mapped by
//! position onto the spec's layers with parameters (conv2d, depthwise_conv2d, dense, batchnorm),
//! the first `[init] layers` of them (default: as many as the file has); each pair must have the
//! same kind and weight shape, else the error names both layers. The importers' layouts (OHWI,
//! `[c][kh][kw]`, `[out][in]` with `in` in HWC order) become burn's ([`TrainedLayer`]).

use std::path::Path;

use super::error::TrainError;
use super::{Checkpoint, LayerKind, TrainedLayer};
use crate::import::{self, ImportOptions};
use crate::lower::plan::{Bias, OpKind, PlanOp, Weights};
use crate::spec::{InitSpec, Layer, ModelSpec, TensorShape};

/// The layers of the file, with a name for messages, in order.
struct Source {
    layers: Vec<(TrainedLayer, String)>,
}

/// The pretrained weights of the spec's first `[init] layers` layers with parameters (each
/// [`TrainedLayer::spec_index`] set to the spec layer it initializes), or `None` without `[init]`.
///
/// # Errors
/// [`TrainError::Pretrained`] when the file cannot be read or imported, or a layer does not match.
pub(crate) fn load(spec: &ModelSpec) -> Result<Option<Vec<TrainedLayer>>, TrainError> {
    let Some(init) = &spec.init else { return Ok(None) };
    let source = read(&init.from).map_err(|detail| err(init, spec, detail))?;
    map(spec, init, source).map(Some)
}

fn err(init: &InitSpec, spec: &ModelSpec, detail: String) -> TrainError {
    TrainError::Pretrained { origin: spec.origin.clone(), line: init.line, from: init.from.clone(), detail }
}

/// Reads the file: a checkpoint by its magic, else a model the importers read.
fn read(path: &Path) -> Result<Source, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.starts_with(super::checkpoint::MAGIC) {
        let ckpt = Checkpoint::from_bytes(&bytes, path).map_err(|e| e.to_string())?;
        let layers = ckpt
            .model
            .layers
            .into_iter()
            .map(|l| {
                let name = format!("checkpoint layer {} ({})", l.spec_index, kind_name(l.kind));
                (l, name)
            })
            .collect();
        return Ok(Source { layers });
    }
    let plan = import::import(path, ImportOptions::default()).map_err(|e| e.to_string())?;
    let mut layers = Vec::new();
    for (index, op) in plan.ops.iter().enumerate() {
        if let Some(layer) = burn_layer(op).map_err(|what| format!("op {index} ({}): {what}", op.kind.name()))? {
            layers.push((layer, format!("op {index} ({}, {})", op.kind.name(), shape_text(&layer_shape(op)))));
        }
    }
    Ok(Source { layers })
}

/// An imported op's weights in burn's layout (`None` for ops without weights).
fn burn_layer(op: &PlanOp) -> Result<Option<TrainedLayer>, String> {
    let (kind, out) = match op.kind {
        OpKind::Conv2d => (LayerKind::Conv2d, op.output.c),
        OpKind::DepthwiseConv2d => (LayerKind::DepthwiseConv2d, op.output.c),
        OpKind::Dense => (LayerKind::Dense, op.output.len()),
        _ => return Ok(None),
    };
    // Real-valued weights and biases, in the plan's layout.
    let (w, b): (Vec<f32>, Vec<f32>) = match (&op.weights, &op.bias, &op.quant) {
        (Weights::F32(w), Bias::F32(b), _) => (w.clone(), b.clone()),
        (Weights::F16(w), Bias::F32(b), _) => (w.iter().map(|v| v.to_f32()).collect(), b.clone()),
        (Weights::I8(w), Bias::I32(b), Some(q)) if q.weight_scales.len() == out && b.len() == out => {
            let per = w.len() / out.max(1);
            let w = w.iter().enumerate().map(|(i, &v)| f32::from(v) * q.weight_scales[i / per.max(1)]).collect();
            let b = b.iter().zip(&q.weight_scales).map(|(&v, &s)| v as f32 * q.input.scale * s).collect();
            (w, b)
        }
        _ => return Err("weights in a form mnistc cannot read back".into()),
    };
    let per = w.len() / out.max(1);
    if w.len() != out * per || b.len() != out {
        return Err(format!("{} weights and {} biases for {out} outputs", w.len(), b.len()));
    }
    let (kh, kw) = (op.kernel[0], op.kernel[1]);
    let (weight, weight_shape) = match kind {
        // OHWI -> OIHW.
        LayerKind::Conv2d => {
            let cin = op.input.c;
            let mut t = vec![0.0; w.len()];
            for o in 0..out {
                for y in 0..kh {
                    for x in 0..kw {
                        for i in 0..cin {
                            t[((o * cin + i) * kh + y) * kw + x] = w[((o * kh + y) * kw + x) * cin + i];
                        }
                    }
                }
            }
            (t, vec![out, cin, kh, kw])
        }
        // [c][kh][kw] is burn's [c, 1, kh, kw].
        LayerKind::DepthwiseConv2d => (w, vec![out, 1, kh, kw]),
        // [out][in, HWC order] -> [in, CHW order][out].
        _ => {
            let s = op.input;
            let mut t = vec![0.0; w.len()];
            for o in 0..out {
                for c in 0..s.c {
                    for y in 0..s.h {
                        for x in 0..s.w {
                            let chw = (c * s.h + y) * s.w + x;
                            let hwc = (y * s.w + x) * s.c + c;
                            t[chw * out + o] = w[o * per + hwc];
                        }
                    }
                }
            }
            (t, vec![s.len(), out])
        }
    };
    Ok(Some(TrainedLayer { spec_index: 0, kind, weight, weight_shape, bias: b }))
}

/// The weight shape of an imported op as burn holds it, for messages.
fn layer_shape(op: &PlanOp) -> Vec<usize> {
    match op.kind {
        OpKind::Conv2d => vec![op.output.c, op.input.c, op.kernel[0], op.kernel[1]],
        OpKind::DepthwiseConv2d => vec![op.output.c, 1, op.kernel[0], op.kernel[1]],
        _ => vec![op.input.len(), op.output.len()],
    }
}

fn shape_text(s: &[usize]) -> String {
    s.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

fn kind_name(k: LayerKind) -> &'static str {
    match k {
        LayerKind::Conv2d => "conv2d",
        LayerKind::DepthwiseConv2d => "depthwise_conv2d",
        LayerKind::Dense => "dense",
        LayerKind::BatchNorm => "batchnorm",
    }
}

/// The kind and burn weight shape of a spec layer with parameters on `input`.
fn expected(layer: &Layer, input: &TensorShape) -> Option<(LayerKind, Vec<usize>)> {
    let (_, _, c) = input.hwc();
    match *layer {
        Layer::Conv2d { filters, kernel, .. } => Some((LayerKind::Conv2d, vec![filters, c, kernel[0], kernel[1]])),
        Layer::DepthwiseConv2d { kernel, .. } => Some((LayerKind::DepthwiseConv2d, vec![c, 1, kernel[0], kernel[1]])),
        Layer::Dense { units, .. } => Some((LayerKind::Dense, vec![input.len(), units])),
        Layer::BatchNorm { .. } => Some((LayerKind::BatchNorm, vec![4, c])),
        _ => None,
    }
}

/// Pairs the file's layers with the spec's, in order.
fn map(spec: &ModelSpec, init: &InitSpec, source: Source) -> Result<Vec<TrainedLayer>, TrainError> {
    let shapes = spec.shapes()?;
    let targets: Vec<(usize, LayerKind, Vec<usize>)> = spec
        .layers
        .iter()
        .zip(&shapes)
        .enumerate()
        .filter_map(|(i, (l, s))| expected(&l.layer, &s.input).map(|(k, w)| (i, k, w)))
        .collect();
    let count = init.layers.unwrap_or(source.layers.len());
    if count > source.layers.len() {
        return Err(err(
            init,
            spec,
            format!("[init] layers = {count}, but the file has {} layers with weights", source.layers.len()),
        ));
    }
    if count > targets.len() {
        return Err(err(
            init,
            spec,
            format!(
                "the file has {count} layers with weights, the model only {} (set [init] layers to map fewer)",
                targets.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(count);
    for (k, ((mut layer, name), (index, kind, shape))) in source.layers.into_iter().zip(targets).take(count).enumerate()
    {
        if layer.kind != kind || layer.weight_shape != shape {
            let l = &spec.layers[index];
            return Err(err(
                init,
                spec,
                format!(
                    "layer {k} with parameters: the model's layers[{index}] (line {}) is a {} with weights {}, \
                     the file's {name} is a {} with weights {}",
                    l.line,
                    kind_name(kind),
                    shape_text(&shape),
                    kind_name(layer.kind),
                    shape_text(&layer.weight_shape)
                ),
            ));
        }
        layer.spec_index = index;
        out.push(layer);
    }
    Ok(out)
}
