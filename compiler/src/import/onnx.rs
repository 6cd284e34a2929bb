//! ONNX models (tf2onnx, PyTorch's exporter, onnxruntime's quantizer) to a [`Plan`].
//!
//! The file is read with tract-onnx's protobuf types. Two kinds of graph:
//!
//! - **QDQ** (onnxruntime's `quantize_static`, the format it recommends): float ops between
//!   `QuantizeLinear` / `DequantizeLinear` pairs, weights stored as int8 behind a
//!   `DequantizeLinear`. Each conv / dense becomes an int8 op with the graph's own scales, zero
//!   points and int8 weights, requantized in mnistc's (tract's) arithmetic. onnxruntime runs the
//!   same graph as `QLinearConv` (the same rounding per channel) but rounds a `MatMul`'s output to
//!   int8 before adding the bias in a separate `Add`; mnistc folds the bias into the int32
//!   accumulator and rounds once, so a dense layer's outputs can differ by a step (the agreement
//!   is measured on the MNIST test set: `tests/import_onnx.rs`).
//! - **Float**: a float plan, which `mnistc import` quantizes itself ([`crate::quantize`]) with
//!   calibration images from `--dataset`, exactly as it quantizes its own models.
//!
//! Supported nodes: `Conv` (group 1, or depthwise with group = channels), `MaxPool`,
//! `AveragePool` (no padding), `GlobalAveragePool`, `MatMul` / `Gemm` (+ `Add` of a constant
//! bias), `Relu`, `Clip` to `[0, 6]`, `Flatten`, `Reshape` (a flatten, or NHWC ↔ NCHW where the
//! bytes stay in place), `Transpose` (NHWC ↔ NCHW), `Dropout` and `Identity`, a final `Softmax`
//! (dropped: the logits are its input), and the `Shape` / `Gather` / `Cast` / `Slice` /
//! `Concat` / `Unsqueeze` / `Constant` nodes that compute a flatten's target shape. Activations
//! are NHWC in the blob whatever the graph's layout: the importer tracks each tensor's ONNX
//! layout and reorders a dense layer's weights when the graph flattens in NCHW order.

use std::collections::HashMap;
use std::path::Path;

use tract_onnx::pb::{self, NodeProto, TensorProto};
use tract_onnx::prelude::{DatumType, Framework, Tensor};

use super::{ImportError, ImportOptions};
use crate::lower::plan::{Activation, Bias, OpKind, OpQuant, Plan, PlanOp, Precision, QParams, Shape, Weights};
use crate::lower::same_pads;
use crate::quantize::{INPUT_QPARAMS, avg_pool_requant, requant_spec};

/// Whether `bytes` look like an ONNX model: a protobuf whose first field is `ir_version`
/// (field 1, varint: byte `0x08`).
pub fn is_onnx(path: &Path, bytes: &[u8]) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) && bytes.first() == Some(&0x08)
}

/// The layout of an activation in the ONNX graph (the blob's is always NHWC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[N, C, H, W]`.
    Nchw,
    /// `[N, H, W, C]`.
    Nhwc,
    /// `[N, K]`, flattened from NHWC (the blob's order).
    FlatHwc,
    /// `[N, K]`, flattened from NCHW: a dense layer's weights must be reordered.
    FlatChw,
}

/// A value of the graph.
#[derive(Debug, Clone)]
enum Value {
    /// An activation: plan tensor `tensor` (0: the input), its NHWC shape and ONNX layout, and its
    /// int8 quantization once a `QuantizeLinear` / `DequantizeLinear` names it.
    Act { tensor: usize, shape: Shape, layout: Layout, q: Option<QParams> },
    /// A constant (an initializer or a `Constant` node).
    Const(Tensor),
    /// A dequantized constant: int values, per-axis scales and zero points, the axis.
    QConst { values: Tensor, scales: Vec<f32>, zero_points: Vec<i64>, axis: usize },
    /// A shape computation (`Shape` of an activation and what is computed from it).
    ShapeLike,
}

/// What an op still needs once the graph is read: its int8 scales, its bias and the
/// quantization of its output (the `QuantizeLinear` that follows it).
#[derive(Debug, Clone, Default)]
struct Pending {
    /// The input's quantization (int8 graphs).
    input_q: Option<QParams>,
    /// Per-output-channel weight scales (int8 graphs).
    weight_scales: Vec<f32>,
    /// The bias as real numbers, one per output channel (zeros without one).
    bias: Vec<f32>,
    /// The output's quantization.
    output_q: Option<QParams>,
}

/// Imports the ONNX model `bytes` (read from `path`): an int8 plan for a QDQ graph, an
/// unfused f32 plan for a float one (which the caller quantizes).
///
/// # Errors
/// [`ImportError`]: a corrupt file, a model-wide property or a node mnistc cannot run.
pub fn import(path: &Path, bytes: &[u8], options: ImportOptions) -> Result<Plan, ImportError> {
    let model = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| ImportError::Corrupt { path: path.to_path_buf(), what: format!("{e:#}") })?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ImportError::Corrupt { path: path.to_path_buf(), what: "no graph".into() })?;
    let mut cx = Cx { path, values: HashMap::new(), ops: Vec::new(), pending: Vec::new() };
    cx.walk(graph, bytes, options)
}

struct Cx<'p> {
    path: &'p Path,
    values: HashMap<String, Value>,
    ops: Vec<PlanOp>,
    pending: Vec<Pending>,
}

/// The error of node `index`.
fn node_err(path: &Path, index: usize, node: &NodeProto, what: impl Into<String>) -> ImportError {
    let op = if node.name.is_empty() { node.op_type.clone() } else { format!("{} {:?}", node.op_type, node.name) };
    ImportError::Operator { path: path.to_path_buf(), index, op, what: what.into() }
}

impl Cx<'_> {
    fn model_err(&self, what: impl Into<String>) -> ImportError {
        ImportError::Model { path: self.path.to_path_buf(), what: what.into() }
    }

    fn walk(&mut self, graph: &pb::GraphProto, bytes: &[u8], options: ImportOptions) -> Result<Plan, ImportError> {
        for init in &graph.initializer {
            let t = load(init).map_err(|what| self.model_err(format!("initializer {:?}: {what}", init.name)))?;
            self.values.insert(init.name.clone(), Value::Const(t));
        }
        let inputs: Vec<&pb::ValueInfoProto> =
            graph.input.iter().filter(|i| !self.values.contains_key(&i.name)).collect();
        let [input] = inputs.as_slice() else {
            return Err(self.model_err(format!("{} inputs; mnistc imports models with one", inputs.len())));
        };
        let (shape, layout) = input_shape(input).map_err(|what| self.model_err(format!("input: {what}")))?;
        self.values.insert(input.name.clone(), Value::Act { tensor: 0, shape, layout, q: None });
        let quantized = graph.node.iter().any(|n| n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear");
        let mut input_q: Option<QParams> = None;
        let mut logits: Option<String> = None;
        for (index, node) in graph.node.iter().enumerate() {
            if logits.is_some() {
                // Only the softmax output's own quantization may follow it.
                if matches!(node.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear") {
                    continue;
                }
                return Err(node_err(self.path, index, node, "a node after the final Softmax"));
            }
            if node.op_type == "Softmax" {
                logits = Some(node.input.first().cloned().unwrap_or_default());
                continue;
            }
            if let Some(q) = self.node(index, node, quantized)? {
                input_q = input_q.or(Some(q));
            }
        }
        let out_name = match logits {
            Some(name) => name,
            None => graph.output.first().map(|o| o.name.clone()).ok_or_else(|| self.model_err("no output"))?,
        };
        let Some(Value::Act { tensor, shape: out_shape, .. }) = self.values.get(&out_name).cloned() else {
            return Err(self.model_err(format!("the output {out_name:?} is not an activation")));
        };
        if tensor != self.ops.len() || self.ops.is_empty() {
            return Err(self.model_err("the logits are not the last operator's output"));
        }
        let classes = out_shape.len();
        let class_names = super::class_names(self.path, options.dataset, shape, classes)?;
        let name = super::model_name(self.path);
        let mut plan = Plan {
            name,
            dataset: options.dataset.map_or(String::new(), |d| d.name().to_string()),
            class_names,
            input: shape,
            precision: Precision::F32,
            output_quant: None,
            input_quant: None,
            source_hash: super::sha256(bytes),
            ops: std::mem::take(&mut self.ops),
        };
        if quantized {
            let input_q = input_q.ok_or_else(|| self.model_err("a QDQ graph whose input is not quantized"))?;
            if input_q.scale.to_bits() != INPUT_QPARAMS.scale.to_bits()
                || input_q.zero_point != INPUT_QPARAMS.zero_point
            {
                plan.input_quant = Some(input_q);
            }
            self.finish_int8(&mut plan)?;
        } else {
            for (op, p) in plan.ops.iter_mut().zip(&self.pending) {
                if matches!(op.kind, OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::Dense) {
                    op.bias = Bias::F32(p.bias.clone());
                }
            }
        }
        Ok(plan)
    }

    /// Gives every op of an int8 graph its quantization: weights and scales from the graph,
    /// the bias in accumulator units (`s_in · s_w[c]`), tract's requantization, the clamp of its
    /// activation.
    fn finish_int8(&self, plan: &mut Plan) -> Result<(), ImportError> {
        for (i, (op, p)) in plan.ops.iter_mut().zip(&self.pending).enumerate() {
            let err = |what: &str| self.model_err(format!("operator {i} ({}): {what}", op.kind.name()));
            let x = p.input_q.ok_or_else(|| err("its input is not quantized"))?;
            let y = p.output_q.ok_or_else(|| err("no QuantizeLinear on its output"))?;
            op.quant = Some(match op.kind {
                OpKind::MaxPool2d => {
                    if y != x {
                        return Err(err("a max pool whose output quantization differs from its input's"));
                    }
                    OpQuant::max_pool(x)
                }
                OpKind::AvgPool2d => {
                    let requant = avg_pool_requant(op.kernel[0] * op.kernel[1], x.scale, y.scale)
                        .map_err(|e| err(&e.to_string()))?;
                    OpQuant::avg_pool(x, y, requant)
                }
                OpKind::Add => return Err(err("not supported")),
                OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::Dense => {
                    let bias: Vec<i32> = p
                        .bias
                        .iter()
                        .zip(&p.weight_scales)
                        .map(|(&b, &s)| (b as f64 / (x.scale as f64 * s as f64)).round() as i32)
                        .collect();
                    op.bias = Bias::I32(bias);
                    let (act_min, act_max) = act_range(op.activation, y);
                    OpQuant {
                        input: x,
                        input2: None,
                        conv: y,
                        output: y,
                        requant: Some(
                            requant_spec(x.scale, &p.weight_scales, y.scale).map_err(|e| err(&e.to_string()))?,
                        ),
                        weight_scales: p.weight_scales.clone(),
                        act_min,
                        act_max,
                        pool_requant: None,
                    }
                }
            });
        }
        plan.precision = Precision::Int8;
        plan.output_quant = plan.ops.last().and_then(|o| o.quant.as_ref()).map(|q| q.output);
        Ok(())
    }

    fn value(&self, node: &NodeProto, k: usize) -> Result<Value, String> {
        let name = node.input.get(k).filter(|n| !n.is_empty()).ok_or_else(|| format!("input {k} is missing"))?;
        self.values.get(name).cloned().ok_or_else(|| format!("input {k} ({name:?}) is not computed before it"))
    }

    /// An activation input (`k`).
    fn act(&self, node: &NodeProto, k: usize) -> Result<(usize, Shape, Layout, Option<QParams>), String> {
        match self.value(node, k)? {
            Value::Act { tensor, shape, layout, q } => Ok((tensor, shape, layout, q)),
            _ => Err(format!("input {k} is not an activation")),
        }
    }

    /// Handles one node; returns the quantization of the model input when this node quantizes it.
    fn node(&mut self, index: usize, node: &NodeProto, quantized: bool) -> Result<Option<QParams>, ImportError> {
        let path = self.path;
        let err = |what: String| node_err(path, index, node, what);
        let op = node.op_type.as_str();
        let mut input_q = None;
        let value = match op {
            "Constant" => {
                let t = node
                    .attribute
                    .iter()
                    .find(|a| a.name == "value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| err("a Constant without a tensor value".into()))?;
                Value::Const(load(t).map_err(err)?)
            }
            "Shape" | "Gather" | "Cast" | "Slice" | "Concat" | "Unsqueeze" | "Squeeze" => {
                let shape_only = (0..node.input.len()).all(|k| match self.value(node, k) {
                    Ok(Value::ShapeLike | Value::Const(_)) => true,
                    Ok(Value::Act { .. }) => op == "Shape",
                    _ => false,
                });
                if !shape_only {
                    return Err(err(format!(
                        "{op} is supported only in shape computations (a flatten's target shape)"
                    )));
                }
                Value::ShapeLike
            }
            "Identity" | "Dropout" => self.value(node, 0).map_err(err)?,
            "QuantizeLinear" | "DequantizeLinear" => {
                let (scales, zero_points, axis) = self.quant_params(node).map_err(&err)?;
                match self.value(node, 0).map_err(&err)? {
                    Value::Act { tensor, shape, layout, q: old } => {
                        let q = match (scales.as_slice(), zero_points.as_slice()) {
                            ([s], [z]) if *s > 0.0 && s.is_finite() && (-128..=127).contains(z) => {
                                QParams { scale: *s, zero_point: *z as i32 }
                            }
                            _ => return Err(err("an activation needs one scale and an int8 zero point".into())),
                        };
                        if old.is_some_and(|o| o != q) {
                            return Err(err("requantizes a tensor to other parameters (not supported)".into()));
                        }
                        if op == "QuantizeLinear" {
                            if tensor == 0 {
                                input_q = Some(q);
                            } else if let Some(p) = self.pending.get_mut(tensor - 1) {
                                p.output_q = p.output_q.or(Some(q));
                            }
                        }
                        Value::Act { tensor, shape, layout, q: Some(q) }
                    }
                    Value::Const(values) if op == "DequantizeLinear" => {
                        Value::QConst { values, scales, zero_points, axis }
                    }
                    _ => return Err(err(format!("{op} of something that is not an activation or a constant"))),
                }
            }
            "Relu" | "Clip" => {
                let (tensor, shape, layout, q) = self.act(node, 0).map_err(&err)?;
                let act = if op == "Relu" { Activation::Relu } else { self.clip(node).map_err(&err)? };
                let follows = tensor == self.ops.len() && tensor > 0;
                let last = self.ops.last_mut().filter(|_| follows);
                let Some(last) = last.filter(|o| {
                    o.activation == Activation::None
                        && matches!(o.kind, OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::Dense)
                }) else {
                    return Err(err("an activation that does not follow a conv or dense layer directly".into()));
                };
                last.activation = act;
                Value::Act { tensor, shape, layout, q }
            }
            "Transpose" => {
                let (tensor, shape, layout, q) = self.act(node, 0).map_err(&err)?;
                let perm = attr_ints(node, "perm").unwrap_or_default();
                let layout = match (layout, perm.as_slice()) {
                    (Layout::Nchw, [0, 2, 3, 1]) => Layout::Nhwc,
                    (Layout::Nhwc, [0, 3, 1, 2]) => Layout::Nchw,
                    _ => {
                        return Err(err(format!(
                            "perm {perm:?} on a {layout:?} tensor; only NCHW <-> NHWC is supported"
                        )));
                    }
                };
                Value::Act { tensor, shape, layout, q }
            }
            "Flatten" | "Reshape" => {
                let (tensor, shape, layout, q) = self.act(node, 0).map_err(&err)?;
                let target = match (op, node.input.get(1).and_then(|n| self.values.get(n))) {
                    ("Reshape", Some(Value::Const(t))) => Some(ints(t).map_err(&err)?),
                    ("Reshape", Some(Value::ShapeLike)) | ("Flatten", _) => None,
                    _ => {
                        return Err(
                            err("a Reshape whose target shape is not a constant or a shape computation".into()),
                        );
                    }
                };
                if op == "Flatten" && attr_int(node, "axis").unwrap_or(1) != 1 {
                    return Err(err("Flatten with an axis other than 1".into()));
                }
                let layout = reshape(layout, shape, target.as_deref()).map_err(&err)?;
                Value::Act { tensor, shape, layout, q }
            }
            "Conv" => {
                let (plan_op, pending) = self.conv(node, quantized).map_err(&err)?;
                self.push(plan_op, pending, Layout::Nchw)
            }
            "MaxPool" | "AveragePool" | "GlobalAveragePool" => {
                let (plan_op, pending) = self.pool(node, op).map_err(&err)?;
                self.push(plan_op, pending, Layout::Nchw)
            }
            "MatMul" | "Gemm" => {
                let (plan_op, pending) = self.dense(node, op == "Gemm", quantized).map_err(&err)?;
                let value = self.push(plan_op, pending, Layout::FlatHwc);
                if op == "Gemm" && node.input.len() > 2 && !node.input[2].is_empty() {
                    let bias = self.value(node, 2).map_err(&err)?;
                    self.add_bias(bias).map_err(&err)?;
                }
                value
            }
            "Add" => {
                let (a, b) = (self.value(node, 0).map_err(&err)?, self.value(node, 1).map_err(&err)?);
                let (act, bias) = match (&a, &b) {
                    (Value::Act { .. }, Value::Const(_) | Value::QConst { .. }) => (a, b),
                    (Value::Const(_) | Value::QConst { .. }, Value::Act { .. }) => (b, a),
                    _ => {
                        return Err(err(
                            "an Add of two activations (a residual connection) is not supported yet".into()
                        ));
                    }
                };
                let Value::Act { tensor, shape, layout, .. } = act else {
                    return Err(err("the input is not an activation".into()));
                };
                if tensor != self.ops.len() || tensor == 0 {
                    return Err(err("a bias Add that does not follow a conv or dense layer directly".into()));
                }
                self.add_bias(bias).map_err(&err)?;
                // The layer's output is now the Add's: its quantization is the next QuantizeLinear's.
                if let Some(p) = self.pending.last_mut() {
                    p.output_q = None;
                }
                Value::Act { tensor, shape, layout, q: None }
            }
            other => {
                return Err(err(format!(
                    "{other} is not supported; mnistc imports Conv, MaxPool, AveragePool, GlobalAveragePool, MatMul, \
                     Gemm, Add (a bias), Relu, Clip (relu6), Flatten, Reshape, Transpose (NCHW <-> NHWC), a final \
                     Softmax, QuantizeLinear/DequantizeLinear and shape computations"
                )));
            }
        };
        for name in &node.output {
            self.values.insert(name.clone(), value.clone());
        }
        Ok(input_q)
    }

    fn push(&mut self, op: PlanOp, pending: Pending, layout: Layout) -> Value {
        let shape = op.output;
        self.ops.push(op);
        self.pending.push(pending);
        Value::Act { tensor: self.ops.len(), shape, layout, q: None }
    }

    /// Scales, zero points and axis of a `QuantizeLinear` / `DequantizeLinear`.
    fn quant_params(&self, node: &NodeProto) -> Result<(Vec<f32>, Vec<i64>, usize), String> {
        let scales = match self.value(node, 1)? {
            Value::Const(t) => floats(&t)?,
            _ => return Err("the scale is not a constant".into()),
        };
        let zero_points = match node.input.get(2).filter(|n| !n.is_empty()) {
            Some(_) => match self.value(node, 2)? {
                Value::Const(t) => ints(&t)?,
                _ => return Err("the zero point is not a constant".into()),
            },
            None => vec![0; scales.len()],
        };
        if scales.len() != zero_points.len() || scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(format!(
                "{} scales and {} zero points; scales must be positive",
                scales.len(),
                zero_points.len()
            ));
        }
        let axis = usize::try_from(attr_int(node, "axis").unwrap_or(1)).map_err(|_| "a negative axis".to_string())?;
        Ok((scales, zero_points, axis))
    }

    fn clip(&self, node: &NodeProto) -> Result<Activation, String> {
        let bound = |k: usize| -> Result<Option<f32>, String> {
            match node.input.get(k).filter(|n| !n.is_empty()) {
                None => Ok(None),
                Some(_) => match self.value(node, k)? {
                    Value::Const(t) => Ok(floats(&t)?.first().copied()),
                    _ => Err("a Clip bound that is not a constant".into()),
                },
            }
        };
        match (bound(1)?, bound(2)?) {
            (Some(lo), Some(hi)) if lo == 0.0 && hi == 6.0 => Ok(Activation::Relu6),
            (Some(0.0), None) => Ok(Activation::Relu),
            (lo, hi) => Err(format!("Clip to [{lo:?}, {hi:?}]; only [0, 6] (relu6) is supported")),
        }
    }

    /// A weight input: float values, or int8 values with per-channel scales along `axis`.
    fn weights(
        &self,
        node: &NodeProto,
        k: usize,
        channels: usize,
        axis: usize,
    ) -> Result<(Weights, Vec<f32>, Vec<usize>), String> {
        match self.value(node, k)? {
            Value::Const(t) => Ok((Weights::F32(floats(&t)?), vec![], t.shape().to_vec())),
            Value::QConst { values, scales, zero_points, axis: qa } => {
                if values.datum_type() != DatumType::I8 {
                    return Err(format!("int8 weights expected, not {:?}", values.datum_type()));
                }
                if zero_points.iter().any(|&z| z != 0) {
                    return Err("weights with a zero point other than 0 (asymmetric) are not supported".into());
                }
                let scales = match scales.len() {
                    1 => vec![scales[0]; channels],
                    n if n == channels && qa == axis => scales,
                    n => {
                        return Err(format!(
                            "{n} weight scales along axis {qa} for {channels} output channels along axis {axis}"
                        ));
                    }
                };
                let v: Vec<i8> =
                    values.to_plain_array_view::<i8>().map_err(|e| e.to_string())?.iter().copied().collect();
                Ok((Weights::I8(v), scales, values.shape().to_vec()))
            }
            _ => Err(format!("input {k} (the weights) is not a constant")),
        }
    }

    fn conv(&self, node: &NodeProto, quantized: bool) -> Result<(PlanOp, Pending), String> {
        let (tensor, x, layout, input_q) = self.act(node, 0)?;
        if layout != Layout::Nchw {
            return Err(format!("the input is {layout:?}; Conv takes NCHW"));
        }
        let wt = match self.value(node, 1)? {
            Value::Const(t) => t.shape().to_vec(),
            Value::QConst { values, .. } => values.shape().to_vec(),
            _ => return Err("the weights are not a constant".into()),
        };
        let &[out_c, per_group, kh, kw] = wt.as_slice() else { return Err(format!("weights of shape {wt:?}")) };
        let group = attr_int(node, "group").unwrap_or(1) as usize;
        let depthwise = group > 1;
        if depthwise && (group != x.c || out_c != x.c || per_group != 1) {
            return Err(format!("group {group}: only 1 or a depthwise convolution (group = channels, multiplier 1)"));
        }
        if !depthwise && per_group != x.c {
            return Err(format!("weights for {per_group} input channels, the input has {}", x.c));
        }
        if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err("dilation other than 1".into());
        }
        let kernel = [kh, kw];
        let stride = stride_attr(node)?;
        let pads = conv_pads(node, x, kernel, stride)?;
        let (h, w) = (x.h + pads[0] + pads[2], x.w + pads[1] + pads[3]);
        if h < kh || w < kw {
            return Err(format!("kernel {kernel:?} larger than the padded input"));
        }
        let y = Shape::new((h - kh) / stride[0] + 1, (w - kw) / stride[1] + 1, out_c);
        let (weights, scales, _) = self.weights(node, 1, out_c, 0)?;
        // ONNX [O][I][KH][KW] -> OHWI (depthwise: [C][1][KH][KW] is [channel][kh][kw] already).
        let reorder = |n: usize| -> Vec<usize> {
            if depthwise {
                return (0..n).collect();
            }
            let cin = x.c;
            let mut idx = Vec::with_capacity(n);
            for o in 0..out_c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        for c in 0..cin {
                            idx.push(((o * cin + c) * kh + ky) * kw + kx);
                        }
                    }
                }
            }
            idx
        };
        let weights = super::permute(weights, &reorder(out_c * per_group * kh * kw));
        let mut pending = Pending { input_q, weight_scales: scales, bias: vec![0.0; out_c], output_q: None };
        if let Some(b) = node.input.get(2).filter(|n| !n.is_empty()).map(|_| self.value(node, 2)).transpose()? {
            add_to(&mut pending.bias, b)?;
        }
        if quantized && matches!(weights, Weights::F32(_)) {
            return Err("float weights in a quantized (QDQ) graph".into());
        }
        let _ = tensor;
        Ok((
            PlanOp {
                inputs: vec![tensor],
                kernel,
                stride,
                pads,
                weights,
                ..super::plan_op(if depthwise { OpKind::DepthwiseConv2d } else { OpKind::Conv2d }, x, y)
            },
            pending,
        ))
    }

    fn pool(&self, node: &NodeProto, op: &str) -> Result<(PlanOp, Pending), String> {
        let (tensor, x, layout, input_q) = self.act(node, 0)?;
        if layout != Layout::Nchw {
            return Err(format!("the input is {layout:?}; pools take NCHW"));
        }
        let (kernel, stride) = if op == "GlobalAveragePool" {
            ([x.h, x.w], [x.h, x.w])
        } else {
            let k = attr_ints(node, "kernel_shape").unwrap_or_default();
            let &[kh, kw] = k.as_slice() else { return Err(format!("kernel_shape {k:?}")) };
            if attr_ints(node, "pads").is_some_and(|p| p.iter().any(|&v| v != 0))
                || attr_int(node, "ceil_mode").unwrap_or(0) != 0
                || attr_str(node, "auto_pad").is_some_and(|a| a != "NOTSET" && a != "VALID")
            {
                return Err("padding or ceil_mode: only unpadded pools are supported".into());
            }
            ([dim(kh)?, dim(kw)?], stride_attr(node)?)
        };
        if x.h < kernel[0] || x.w < kernel[1] {
            return Err(format!("window {kernel:?} larger than its input"));
        }
        let y = Shape::new((x.h - kernel[0]) / stride[0] + 1, (x.w - kernel[1]) / stride[1] + 1, x.c);
        Ok((
            PlanOp {
                inputs: vec![tensor],
                kernel,
                stride,
                ..super::plan_op(if op == "MaxPool" { OpKind::MaxPool2d } else { OpKind::AvgPool2d }, x, y)
            },
            Pending { input_q, ..Pending::default() },
        ))
    }

    fn dense(&self, node: &NodeProto, gemm: bool, quantized: bool) -> Result<(PlanOp, Pending), String> {
        let (tensor, x, layout, input_q) = self.act(node, 0)?;
        let flat_chw = match layout {
            Layout::FlatHwc => false,
            Layout::FlatChw => true,
            // A 1x1 map flattens the same in both orders.
            Layout::Nchw | Layout::Nhwc if x.h == 1 && x.w == 1 => false,
            other => return Err(format!("the input is {other:?}; flatten it first")),
        };
        let trans_b = gemm && attr_int(node, "transB").unwrap_or(0) == 1;
        if gemm && (attr_int(node, "transA").unwrap_or(0) != 0 || attr_float(node, "alpha").unwrap_or(1.0) != 1.0) {
            return Err("Gemm with transA or alpha other than 1".into());
        }
        let k = x.len();
        let probe = match self.value(node, 1)? {
            Value::Const(t) => t.shape().to_vec(),
            Value::QConst { values, .. } => values.shape().to_vec(),
            _ => return Err("the weights are not a constant".into()),
        };
        let out = match (probe.as_slice(), trans_b) {
            (&[kk, o], false) if kk == k => o,
            (&[o, kk], true) if kk == k => o,
            _ => return Err(format!("weights of shape {probe:?} for {k} inputs")),
        };
        let (weights, scales, _) = self.weights(node, 1, out, if trans_b { 0 } else { 1 })?;
        // Plan [out][k] with k in HWC order; the graph's row for HWC index (h, w, c).
        let row = |hwc: usize| -> usize {
            if !flat_chw {
                return hwc;
            }
            let (c, pixel) = (hwc % x.c, hwc / x.c);
            c * x.h * x.w + pixel
        };
        let mut idx = Vec::with_capacity(out * k);
        for o in 0..out {
            for i in 0..k {
                idx.push(if trans_b { o * k + row(i) } else { row(i) * out + o });
            }
        }
        let weights = super::permute(weights, &idx);
        if quantized && matches!(weights, Weights::F32(_)) {
            return Err("float weights in a quantized (QDQ) graph".into());
        }
        Ok((
            PlanOp { inputs: vec![tensor], weights, ..super::plan_op(OpKind::Dense, x, Shape::new(1, 1, out)) },
            Pending { input_q, weight_scales: scales, bias: vec![0.0; out], output_q: None },
        ))
    }

    /// Adds a constant bias to the last op's.
    fn add_bias(&mut self, bias: Value) -> Result<(), String> {
        let p = self.pending.last_mut().ok_or("a bias without a layer")?;
        add_to(&mut p.bias, bias)
    }
}

/// Adds a constant (float, or dequantized) to `bias`, one value per channel or one for all.
fn add_to(bias: &mut [f32], v: Value) -> Result<(), String> {
    let values: Vec<f32> = match v {
        Value::Const(t) => floats(&t)?,
        Value::QConst { values, scales, zero_points, .. } => {
            let ints = ints(&values)?;
            ints.iter()
                .enumerate()
                .map(|(i, &q)| {
                    let k = if scales.len() == 1 { 0 } else { i };
                    (q - zero_points.get(k).copied().unwrap_or(0)) as f32 * scales.get(k).copied().unwrap_or(0.0)
                })
                .collect()
        }
        _ => return Err("a bias that is not a constant".into()),
    };
    match values.len() {
        1 => bias.iter_mut().for_each(|b| *b += values[0]),
        n if n == bias.len() => bias.iter_mut().zip(&values).for_each(|(b, v)| *b += v),
        n => return Err(format!("a bias of {n} values for {} channels", bias.len())),
    }
    Ok(())
}

/// The clamp of `act` for an int8 output `y` (ReLU: real 0 and up; ReLU6: up to real 6).
fn act_range(act: Activation, y: QParams) -> (i32, i32) {
    let q = |f: f32| (y.zero_point as f32 + (f / y.scale).round_ties_even()).clamp(-128.0, 127.0) as i32;
    match act {
        Activation::None => (-128, 127),
        Activation::Relu => (q(0.0), 127),
        Activation::Relu6 => (q(0.0), q(6.0)),
    }
}

/// The input's NHWC shape and layout: `[N, H, W, C]` with C of 1 or 3 is NHWC (Keras, tf2onnx),
/// `[N, C, H, W]` NCHW (PyTorch).
fn input_shape(v: &pb::ValueInfoProto) -> Result<(Shape, Layout), String> {
    use pb::tensor_shape_proto::dimension::Value as D;
    let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err("not a tensor".into());
    };
    if t.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err("not float32 (a QDQ or float graph takes float pixels / 255)".into());
    }
    let dims: Vec<Option<i64>> = t
        .shape
        .as_ref()
        .map(|s| s.dim.iter().map(|d| if let Some(D::DimValue(v)) = d.value { Some(v) } else { None }).collect())
        .unwrap_or_default();
    let d = |i: usize| dims.get(i).copied().flatten().and_then(|v| dim(v).ok());
    match dims.len() {
        4 => match (d(1), d(2), d(3)) {
            (Some(h), Some(w), Some(c)) if c == 1 || c == 3 => Ok((Shape::new(h, w, c), Layout::Nhwc)),
            (Some(c), Some(h), Some(w)) => Ok((Shape::new(h, w, c), Layout::Nchw)),
            _ => Err(format!("shape {dims:?}")),
        },
        _ => Err(format!("shape {dims:?}; expected [N, H, W, C] or [N, C, H, W]")),
    }
}

/// The layout after a flatten or reshape of a `layout` tensor of NHWC shape `shape` to
/// `target` (`None`: a flatten to `[N, K]`).
fn reshape(layout: Layout, shape: Shape, target: Option<&[i64]>) -> Result<Layout, String> {
    let flat = |l: Layout| match l {
        Layout::Nhwc | Layout::FlatHwc => Layout::FlatHwc,
        Layout::Nchw | Layout::FlatChw => Layout::FlatChw,
    };
    let Some(target) = target else { return Ok(flat(layout)) };
    let dims: Vec<i64> = target.iter().skip(1).copied().collect();
    // NHWC <-> NCHW without moving a byte: one channel, or a 1x1 map.
    let same = |c: i64, h: i64, w: i64| {
        (c as usize, h as usize, w as usize) == (shape.c, shape.h, shape.w) && (shape.c == 1 || shape.h * shape.w == 1)
    };
    match (layout, dims.as_slice()) {
        (_, [_]) => Ok(flat(layout)),
        (Layout::Nhwc, &[c, h, w]) if same(c, h, w) => Ok(Layout::Nchw),
        (Layout::Nchw, &[h, w, c]) if same(c, h, w) => Ok(Layout::Nhwc),
        _ => Err(format!("a reshape of a {layout:?} {shape:?} tensor to {target:?}; only flattens are supported")),
    }
}

/// `[top, left, bottom, right]` of a Conv: `pads`, or `auto_pad` SAME_UPPER (the odd row or
/// column at the end) or VALID.
fn conv_pads(node: &NodeProto, x: Shape, kernel: [usize; 2], stride: [usize; 2]) -> Result<[usize; 4], String> {
    match attr_str(node, "auto_pad").as_deref() {
        None | Some("NOTSET") => {
            let p = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
            let p: Vec<usize> =
                p.iter().map(|&v| usize::try_from(v).map_err(|_| format!("pads {p:?}"))).collect::<Result<_, _>>()?;
            let &[t, l, b, r] = p.as_slice() else { return Err(format!("pads {p:?}")) };
            Ok([t, l, b, r])
        }
        Some("VALID") => Ok([0; 4]),
        Some("SAME_UPPER") => {
            let (t, b) = same_pads(x.h, kernel[0], stride[0]);
            let (l, r) = same_pads(x.w, kernel[1], stride[1]);
            Ok([t, l, b, r])
        }
        Some(other) => Err(format!("auto_pad {other}; NOTSET, VALID and SAME_UPPER are supported")),
    }
}

fn stride_attr(node: &NodeProto) -> Result<[usize; 2], String> {
    match attr_ints(node, "strides").as_deref() {
        None => Ok([1, 1]),
        Some(&[h, w]) => Ok([dim(h)?, dim(w)?]),
        Some(s) => Err(format!("strides {s:?}")),
    }
}

fn dim(v: i64) -> Result<usize, String> {
    usize::try_from(v).ok().filter(|&v| (1..=u16::MAX as usize).contains(&v)).ok_or_else(|| format!("dimension {v}"))
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn attr_float(node: &NodeProto, name: &str) -> Option<f32> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.f)
}

fn attr_str(node: &NodeProto, name: &str) -> Option<String> {
    node.attribute.iter().find(|a| a.name == name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// A tensor's values as f32.
fn floats(t: &Tensor) -> Result<Vec<f32>, String> {
    let t = t.cast_to::<f32>().map_err(|e| e.to_string())?;
    Ok(t.to_plain_array_view::<f32>().map_err(|e| e.to_string())?.iter().copied().collect())
}

/// A tensor's values as i64.
fn ints(t: &Tensor) -> Result<Vec<i64>, String> {
    let t = t.cast_to::<i64>().map_err(|e| e.to_string())?;
    Ok(t.to_plain_array_view::<i64>().map_err(|e| e.to_string())?.iter().copied().collect())
}

/// An initializer or constant (no external data).
fn load(t: &TensorProto) -> Result<Tensor, String> {
    tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::FopenDataResolver, t, None)
        .map_err(|e| format!("{e:#}"))
}
