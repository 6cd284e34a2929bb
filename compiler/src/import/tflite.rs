//! Full-integer TFLite models (what `TFLiteConverter` writes with `TFLITE_BUILTINS_INT8`) to an
//! int8 [`Plan`] in TFLite's arithmetic; float32 TFLite models to an unfused f32 plan, which
//! `mnistc import` quantizes itself ([`super::quantize_float`]).
//!
//! The flatbuffer is read with the code generated from the official schema (`tract-tflite`
//! re-exports it) after the flatbuffers verifier has checked it. Supported operators:
//! `CONV_2D`, `DEPTHWISE_CONV_2D` (depth multiplier 1), `FULLY_CONNECTED`, `MAX_POOL_2D`,
//! `AVERAGE_POOL_2D`, `RESHAPE` to `[1, N]` (a flatten: free in NHWC), a final `SOFTMAX` (dropped:
//! the blob's logits are its int8 input, as for mnistc's own models), and the `SHAPE` /
//! `STRIDED_SLICE` / `PACK` ops that compute a flatten's target shape. Fused `RELU` / `RELU6`
//! become the clamp range TFLite computes (`CalculateActivationRangeQuantized`); `SAME` padding
//! puts the odd row or column at the bottom/right, as TFLite does.
//!
//! Requantization: for output channel `c`, TFLite Micro computes
//! `f64(s_in) · f64(s_w[c]) / f64(s_out)` and `QuantizeMultiplier` of it
//! ([`mnistc_runtime::quant::tflite_multiplier`]); the same here, so the runtime's
//! [`mnistc_runtime::quant::requantize_tflite`] gives TFLite Micro's bits.

use std::path::Path;

use mnistc_runtime::quant::tflite_multiplier;
use tract_tflite::tflite::{
    self as fb, ActivationFunctionType, BuiltinOperator, Operator, Padding, SubGraph, Tensor, TensorType,
};

use super::{ImportError, ImportOptions};
use crate::lower::plan::{
    Activation, Bias, OpKind, OpQuant, Plan, PlanOp, Precision, QParams, RequantSpec, Shape, Weights,
};
use crate::lower::same_pads;
use crate::quantize::INPUT_QPARAMS;

/// Whether `bytes` look like a TFLite flatbuffer (file identifier `TFL3` at byte 4).
pub fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"TFL3")
}

/// The operators this importer runs, for error messages.
const SUPPORTED: &str = "CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE (flatten), \
                         a final SOFTMAX, and SHAPE/STRIDED_SLICE/PACK computing a flatten's shape";

/// Imports the TFLite model `bytes` (read from `path`).
///
/// # Errors
/// [`ImportError`]: a corrupt flatbuffer, a model-wide property or an operator mnistc cannot run.
pub fn import(path: &Path, bytes: &[u8], options: ImportOptions) -> Result<Plan, ImportError> {
    import_traced(path, bytes, options).map(|(plan, _)| plan)
}

/// A TFLite tensor, by its index in the subgraph and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// Index in the subgraph's tensor list (what TFLite Micro's `GetTensor` takes).
    pub index: i32,
    /// The tensor's name in the file (`sequential/conv2d/Relu`).
    pub name: String,
}

/// [`import`], and for each op of the (unfused) plan the TFLite tensor its output equals
/// (`mnistc check --tflite --per-layer` compares the two).
///
/// # Errors
/// As [`import`].
pub fn import_traced(path: &Path, bytes: &[u8], options: ImportOptions) -> Result<(Plan, Vec<TensorRef>), ImportError> {
    let model =
        fb::root_as_model(bytes).map_err(|e| ImportError::Corrupt { path: path.to_path_buf(), what: e.to_string() })?;
    let cx = Cx { path, model, float: false };
    cx.plan(bytes, options)
}

/// The model being imported, and its errors.
struct Cx<'a> {
    path: &'a Path,
    model: fb::Model<'a>,
    /// A float32 model (weights, biases and activations): no quantization to read.
    float: bool,
}

/// A tensor on the activation path: its plan tensor number, shape and quantization.
#[derive(Debug, Clone, Copy)]
struct Activ {
    tensor: usize,
    shape: Shape,
    q: QParams,
}

impl<'a> Cx<'a> {
    fn model_err(&self, what: impl Into<String>) -> ImportError {
        ImportError::Model { path: self.path.to_path_buf(), what: what.into() }
    }

    fn corrupt(&self, what: impl Into<String>) -> ImportError {
        ImportError::Corrupt { path: self.path.to_path_buf(), what: what.into() }
    }

    fn plan(mut self, bytes: &[u8], options: ImportOptions) -> Result<(Plan, Vec<TensorRef>), ImportError> {
        let graphs = self.model.subgraphs().ok_or_else(|| self.corrupt("no subgraph"))?;
        if graphs.len() != 1 {
            return Err(self.model_err(format!("{} subgraphs; mnistc imports single-subgraph models", graphs.len())));
        }
        let g = graphs.get(0);
        let tensors = g.tensors().ok_or_else(|| self.corrupt("no tensors"))?;
        let inputs = g.inputs().map(|v| v.iter().collect::<Vec<i32>>()).unwrap_or_default();
        let outputs = g.outputs().map(|v| v.iter().collect::<Vec<i32>>()).unwrap_or_default();
        let (&[input], &[output]) = (inputs.as_slice(), outputs.as_slice()) else {
            return Err(self.model_err(format!(
                "{} inputs and {} outputs; mnistc imports models with one of each",
                inputs.len(),
                outputs.len()
            )));
        };
        let input_tensor = self.tensor(&g, input)?;
        self.float = input_tensor.type_() == TensorType::FLOAT32;
        if input_tensor.type_() != TensorType::INT8 && !self.float {
            return Err(self.model_err(format!(
                "the input is {}: mnistc imports full-integer models (TFLiteConverter with \
                 TFLITE_BUILTINS_INT8 and int8 input and output types) and float32 ones",
                type_name(input_tensor.type_())
            )));
        }
        let shape = self.activation_shape(&input_tensor).map_err(|what| self.model_err(format!("input: {what}")))?;
        let q = self.qparams(&input_tensor).map_err(|what| self.model_err(format!("input: {what}")))?;
        // TFLite tensor index -> activation; shape tensors (int32 SHAPE/PACK results) are skipped.
        let mut activ: Vec<Option<Activ>> = vec![None; tensors.len()];
        activ[input as usize] = Some(Activ { tensor: 0, shape, q });
        let mut ops: Vec<PlanOp> = Vec::new();
        let mut origins: Vec<TensorRef> = Vec::new();
        let mut logits: Option<Activ> = None;
        let operators = g.operators().ok_or_else(|| self.corrupt("no operators"))?;
        let count = operators.len();
        for (index, op) in operators.iter().enumerate() {
            let code = self.opcode(&op, index)?;
            let err =
                |what: String| ImportError::Operator { path: self.path.to_path_buf(), index, op: op_name(code), what };
            if logits.is_some() {
                return Err(err("an operator after the final SOFTMAX".into()));
            }
            let op_inputs: Vec<i32> = op.inputs().map(|v| v.iter().collect()).unwrap_or_default();
            let op_outputs: Vec<i32> = op.outputs().map(|v| v.iter().collect()).unwrap_or_default();
            let &[out_index] = op_outputs.as_slice() else {
                return Err(err(format!("{} outputs, expected 1", op_outputs.len())));
            };
            let out_tensor = self.tensor(&g, out_index)?;
            // The activation an op reads, by its input slot.
            let read =
                |slot: usize| -> Result<Activ, ImportError> {
                    let t = *op_inputs.get(slot).ok_or_else(|| err(format!("input {slot} is missing")))?;
                    activ.get(usize::try_from(t).unwrap_or(usize::MAX)).copied().flatten().ok_or_else(|| {
                        err(format!("input {slot} (tensor {t}) is not an int8 activation computed earlier"))
                    })
                };
            match code {
                BuiltinOperator::SHAPE | BuiltinOperator::STRIDED_SLICE | BuiltinOperator::PACK => {
                    if out_tensor.type_() != TensorType::INT32 {
                        return Err(err(format!(
                            "only shape computations (int32 results) are supported, this one gives {}",
                            type_name(out_tensor.type_())
                        )));
                    }
                    continue;
                }
                BuiltinOperator::SOFTMAX => {
                    if index + 1 != count || out_index != output {
                        return Err(err("SOFTMAX is supported as the model's last operator only".into()));
                    }
                    logits = Some(read(0)?);
                    continue;
                }
                _ => {}
            }
            let x = read(0)?;
            let y_shape = self.activation_shape(&out_tensor).map_err(|what| err(format!("output: {what}")))?;
            let y_q = self.qparams(&out_tensor).map_err(|what| err(format!("output: {what}")))?;
            if out_tensor.type_() != self.activation_type() {
                return Err(err(format!(
                    "output is {}, not {}",
                    type_name(out_tensor.type_()),
                    type_name(self.activation_type())
                )));
            }
            if code == BuiltinOperator::RESHAPE {
                // A flatten: the NHWC bytes stay where they are.
                if y_shape.len() != x.shape.len() || (y_shape.h, y_shape.w) != (1, 1) || y_q != x.q {
                    return Err(err(format!(
                        "only a flatten to [1, {}] with unchanged quantization is supported, not {y_shape:?}",
                        x.shape.len()
                    )));
                }
                activ[out_index as usize] = Some(Activ { tensor: x.tensor, shape: x.shape, q: x.q });
                continue;
            }
            let mut plan_op = match code {
                BuiltinOperator::CONV_2D | BuiltinOperator::DEPTHWISE_CONV_2D => {
                    self.conv(&g, &op, &op_inputs, x, (y_shape, y_q), code == BuiltinOperator::DEPTHWISE_CONV_2D)
                }
                BuiltinOperator::FULLY_CONNECTED => self.dense(&g, &op, &op_inputs, x, (y_shape, y_q)),
                BuiltinOperator::MAX_POOL_2D | BuiltinOperator::AVERAGE_POOL_2D => {
                    self.pool(&op, x, (y_shape, y_q), code == BuiltinOperator::AVERAGE_POOL_2D)
                }
                _ => Err(format!("not supported; mnistc imports {SUPPORTED}")),
            }
            .map_err(err)?;
            plan_op.inputs = vec![x.tensor];
            ops.push(plan_op);
            origins.push(TensorRef { index: out_index, name: out_tensor.name().unwrap_or("").to_string() });
            activ[out_index as usize] = Some(Activ { tensor: ops.len(), shape: y_shape, q: y_q });
        }
        let logits = match logits {
            Some(l) => l,
            None => activ
                .get(output as usize)
                .copied()
                .flatten()
                .ok_or_else(|| self.model_err("the model output is not an int8 activation"))?,
        };
        if logits.tensor != ops.len() || ops.is_empty() {
            return Err(self.model_err("the logits are not the last operator's output"));
        }
        let classes = logits.shape.len();
        let class_names = super::class_names(self.path, options.dataset, shape, classes)?;
        let name = super::model_name(self.path);
        let pixels = q.scale.to_bits() == INPUT_QPARAMS.scale.to_bits() && q.zero_point == INPUT_QPARAMS.zero_point;
        let plan = Plan {
            name,
            dataset: options.dataset.map_or(String::new(), |d| d.name().to_string()),
            class_names,
            input: shape,
            precision: if self.float { Precision::F32 } else { Precision::Int8 },
            output_quant: (!self.float).then_some(logits.q),
            input_quant: (!pixels && !self.float).then_some(q),
            source_hash: super::sha256(bytes),
            ops,
        };
        Ok((plan, origins))
    }

    fn opcode(&self, op: &Operator<'_>, index: usize) -> Result<BuiltinOperator, ImportError> {
        let codes = self.model.operator_codes().ok_or_else(|| self.corrupt("no operator codes"))?;
        let i = op.opcode_index() as usize;
        if i >= codes.len() {
            return Err(self.corrupt(format!("operator {index}: opcode index {i} of {}", codes.len())));
        }
        let c = codes.get(i);
        // Schema 3a: small codes live in `deprecated_builtin_code`; the larger of the two is it.
        Ok(BuiltinOperator(c.builtin_code().0.max(c.deprecated_builtin_code() as i32)))
    }

    fn tensor(&self, g: &SubGraph<'a>, index: i32) -> Result<Tensor<'a>, ImportError> {
        let tensors = g.tensors().ok_or_else(|| self.corrupt("no tensors"))?;
        match usize::try_from(index) {
            Ok(i) if i < tensors.len() => Ok(tensors.get(i)),
            _ => Err(self.corrupt(format!("tensor index {index} of {}", tensors.len()))),
        }
    }

    /// An activation's shape: `[1, H, W, C]`, or `[1, N]` as `1×1×N`.
    fn activation_shape(&self, t: &Tensor<'_>) -> Result<Shape, String> {
        let dims: Vec<i32> = t.shape().map(|v| v.iter().collect()).unwrap_or_default();
        let positive = |d: i32| usize::try_from(d).ok().filter(|&d| d > 0 && d <= u16::MAX as usize);
        let shape = match dims.as_slice() {
            [1, h, w, c] => positive(*h).zip(positive(*w)).zip(positive(*c)).map(|((h, w), c)| Shape::new(h, w, c)),
            [1, n] => positive(*n).map(|n| Shape::new(1, 1, n)),
            _ => None,
        };
        shape.ok_or_else(|| format!("shape {dims:?}; expected [1, H, W, C] or [1, N] with a batch of 1"))
    }

    /// The type of every activation: int8, or float32 in a float model.
    fn activation_type(&self) -> TensorType {
        if self.float { TensorType::FLOAT32 } else { TensorType::INT8 }
    }

    /// A per-tensor int8 quantization (a float model's activations have none: scale 1 stands in).
    fn qparams(&self, t: &Tensor<'_>) -> Result<QParams, String> {
        if self.float {
            return Ok(QParams { scale: 1.0, zero_point: 0 });
        }
        let (scales, zps) = quantization(t);
        match (scales.as_slice(), zps.as_slice()) {
            ([s], [z]) if s.is_finite() && *s > 0.0 && (-128..=127).contains(z) => {
                Ok(QParams { scale: *s, zero_point: *z as i32 })
            }
            _ => Err(format!(
                "quantization {scales:?} / zero points {zps:?}; expected one positive scale and an int8 zero point"
            )),
        }
    }

    /// A constant tensor's bytes.
    fn data(&self, t: &Tensor<'_>) -> Result<&'a [u8], String> {
        let buffers = self.model.buffers().ok_or("no buffers")?;
        let b = t.buffer() as usize;
        if b == 0 || b >= buffers.len() {
            return Err(format!("tensor {:?} has no constant data", t.name().unwrap_or("")));
        }
        Ok(buffers.get(b).data().map(|d| d.bytes()).unwrap_or(&[]))
    }

    /// Weights of `shape`: float32 in a float model, else int8 with symmetric scales, one per
    /// output channel (along `channel_dim`) or one for all, zero points 0.
    fn weights(&self, t: &Tensor<'_>, shape: &[usize], channel_dim: usize) -> Result<(Weights, Vec<f32>), String> {
        let dims: Vec<i32> = t.shape().map(|v| v.iter().collect()).unwrap_or_default();
        let want = if self.float { TensorType::FLOAT32 } else { TensorType::INT8 };
        if t.type_() != want || dims.iter().map(|&d| d as i64).ne(shape.iter().map(|&d| d as i64)) {
            return Err(format!(
                "weights are {} {dims:?}, expected {} {shape:?}",
                type_name(t.type_()),
                type_name(want)
            ));
        }
        let data = self.data(t)?;
        let n: usize = shape.iter().product();
        let size = if self.float { 4 } else { 1 };
        if data.len() != n * size {
            return Err(format!("weights hold {} bytes, expected {}", data.len(), n * size));
        }
        if self.float {
            let w = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            return Ok((Weights::F32(w), vec![]));
        }
        let (scales, zps) = quantization(t);
        let channels = shape[channel_dim];
        if zps.iter().any(|&z| z != 0) {
            return Err("weights with a zero point other than 0 (asymmetric) are not supported".into());
        }
        let scales = match scales.len() {
            1 => vec![scales[0]; channels],
            k if k == channels => scales,
            k => return Err(format!("{k} weight scales for {channels} output channels")),
        };
        if scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err("a weight scale that is not positive and finite".into());
        }
        Ok((Weights::I8(bytemuck::cast_slice(data).to_vec()), scales))
    }

    /// The bias of `n` values (int32, or float32 in a float model), or zeros when the operator
    /// has none.
    fn bias(&self, g: &SubGraph<'a>, inputs: &[i32], n: usize) -> Result<Bias, String> {
        let Some(&b) = inputs.get(2).filter(|&&b| b >= 0) else {
            return Ok(if self.float { Bias::F32(vec![0.0; n]) } else { Bias::I32(vec![0; n]) });
        };
        let t = self.tensor(g, b).map_err(|e| e.to_string())?;
        let want = if self.float { TensorType::FLOAT32 } else { TensorType::INT32 };
        if t.type_() != want {
            return Err(format!("bias is {}, expected {}", type_name(t.type_()), type_name(want)));
        }
        let data = self.data(&t)?;
        if data.len() != 4 * n {
            return Err(format!("bias holds {} bytes, expected {}", data.len(), 4 * n));
        }
        let words = data.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
        Ok(if self.float {
            Bias::F32(words.map(f32::from_le_bytes).collect())
        } else {
            Bias::I32(words.map(i32::from_le_bytes).collect())
        })
    }

    /// The quantization of a conv/dense (none in a float model).
    fn weighted(
        &self,
        x: QParams,
        y: QParams,
        w_scales: Vec<f32>,
        act: ActivationFunctionType,
    ) -> Result<Option<OpQuant>, String> {
        // Also refuses an activation the runtime has no clamp for, in a float model too.
        let range = activation_range(act, y)?;
        if self.float {
            return Ok(None);
        }
        weighted_quant(x, y, w_scales, range).map(Some)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        g: &SubGraph<'a>,
        op: &Operator<'_>,
        inputs: &[i32],
        x: Activ,
        (y, y_q): (Shape, QParams),
        depthwise: bool,
    ) -> Result<PlanOp, String> {
        let (padding, stride, dilation, act) = if depthwise {
            let o = op.builtin_options_as_depthwise_conv_2_doptions().ok_or("no DepthwiseConv2DOptions")?;
            if o.depth_multiplier() != 1 && y.c != x.shape.c {
                return Err(format!("depth multiplier {}; only 1 is supported", o.depth_multiplier()));
            }
            (
                o.padding(),
                [o.stride_h(), o.stride_w()],
                [o.dilation_h_factor(), o.dilation_w_factor()],
                o.fused_activation_function(),
            )
        } else {
            let o = op.builtin_options_as_conv_2_doptions().ok_or("no Conv2DOptions")?;
            (
                o.padding(),
                [o.stride_h(), o.stride_w()],
                [o.dilation_h_factor(), o.dilation_w_factor()],
                o.fused_activation_function(),
            )
        };
        if dilation != [1, 1] {
            return Err(format!("dilation {dilation:?}; only 1 is supported"));
        }
        let stride = stride_of(stride)?;
        let filter_index = *inputs.get(1).ok_or("no filter input")?;
        let filter = self.tensor(g, filter_index).map_err(|e| e.to_string())?;
        let fdims: Vec<i32> = filter.shape().map(|v| v.iter().collect()).unwrap_or_default();
        let &[_, kh, kw, _] = fdims.as_slice() else { return Err(format!("filter shape {fdims:?}, expected 4-D")) };
        let kernel = [dim(kh)?, dim(kw)?];
        let c_in = x.shape.c;
        let (shape, channel_dim) = if depthwise {
            if y.c != c_in {
                return Err(format!("{} output channels from {c_in}; only a depth multiplier of 1 is supported", y.c));
            }
            ([1, kernel[0], kernel[1], c_in], 3)
        } else {
            ([y.c, kernel[0], kernel[1], c_in], 0)
        };
        let (w, w_scales) = self.weights(&filter, &shape, channel_dim)?;
        let bias = self.bias(g, inputs, y.c)?;
        let pads = pads(padding, x.shape, kernel, stride)?;
        let out_h = (x.shape.h + pads[0] + pads[2]).checked_sub(kernel[0]).map(|v| v / stride[0] + 1);
        let out_w = (x.shape.w + pads[1] + pads[3]).checked_sub(kernel[1]).map(|v| v / stride[1] + 1);
        if out_h != Some(y.h) || out_w != Some(y.w) {
            return Err(format!(
                "output {y:?} does not follow from input {:?}, kernel {kernel:?}, stride {stride:?}",
                x.shape
            ));
        }
        // The plan keeps depthwise weights [channel][kh][kw]; TFLite stores [1][kh][kw][channel].
        let weights = if depthwise {
            let taps = kernel[0] * kernel[1];
            let idx: Vec<usize> = (0..c_in).flat_map(|c| (0..taps).map(move |t| t * c_in + c)).collect();
            super::permute(w, &idx)
        } else {
            w
        };
        let kind = if depthwise { OpKind::DepthwiseConv2d } else { OpKind::Conv2d };
        Ok(PlanOp {
            kernel,
            stride,
            pads,
            activation: plan_activation(act),
            weights,
            bias,
            quant: self.weighted(x.q, y_q, w_scales, act)?,
            ..super::plan_op(kind, x.shape, y)
        })
    }

    fn dense(
        &self,
        g: &SubGraph<'a>,
        op: &Operator<'_>,
        inputs: &[i32],
        x: Activ,
        (y, y_q): (Shape, QParams),
    ) -> Result<PlanOp, String> {
        let o = op.builtin_options_as_fully_connected_options().ok_or("no FullyConnectedOptions")?;
        if o.weights_format() != fb::FullyConnectedOptionsWeightsFormat::DEFAULT {
            return Err("shuffled weights are not supported".into());
        }
        if (y.h, y.w) != (1, 1) {
            return Err(format!("output {y:?}; expected [1, N]"));
        }
        let n_in = x.shape.len();
        let filter = self.tensor(g, *inputs.get(1).ok_or("no weights input")?).map_err(|e| e.to_string())?;
        let (w, w_scales) = self.weights(&filter, &[y.c, n_in], 0)?;
        let bias = self.bias(g, inputs, y.c)?;
        let act = o.fused_activation_function();
        Ok(PlanOp {
            activation: plan_activation(act),
            weights: w,
            bias,
            quant: self.weighted(x.q, y_q, w_scales, act)?,
            ..super::plan_op(OpKind::Dense, x.shape, y)
        })
    }

    fn pool(&self, op: &Operator<'_>, x: Activ, (y, y_q): (Shape, QParams), avg: bool) -> Result<PlanOp, String> {
        let o = op.builtin_options_as_pool_2_doptions().ok_or("no Pool2DOptions")?;
        if o.fused_activation_function() != ActivationFunctionType::NONE {
            return Err("a fused activation on a pool is not supported".into());
        }
        let kernel = [dim(o.filter_height())?, dim(o.filter_width())?];
        let stride = stride_of([o.stride_h(), o.stride_w()])?;
        if pads(o.padding(), x.shape, kernel, stride)? != [0; 4] {
            return Err("a padded pool (SAME padding that adds rows or columns) is not supported".into());
        }
        if x.shape.h < kernel[0] || x.shape.w < kernel[1] {
            return Err(format!("window {kernel:?} larger than its input {:?}", x.shape));
        }
        let expect =
            Shape::new((x.shape.h - kernel[0]) / stride[0] + 1, (x.shape.w - kernel[1]) / stride[1] + 1, x.shape.c);
        if expect != y {
            return Err(format!("output {y:?}, expected {expect:?}"));
        }
        if y_q != x.q {
            return Err("a pool whose output quantization differs from its input's is not supported".into());
        }
        let mut quant = OpQuant::max_pool(x.q);
        if avg {
            quant.requant = Some(RequantSpec::Tflite(vec![]));
        }
        let quant = (!self.float).then_some(quant);
        Ok(PlanOp {
            kernel,
            stride,
            quant,
            ..super::plan_op(if avg { OpKind::AvgPool2d } else { OpKind::MaxPool2d }, x.shape, y)
        })
    }
}

/// The quantization of a conv/dense: TFLite Micro's multipliers
/// (`f64(s_in) · f64(s_w[c]) / f64(s_out)`, `QuantizeMultiplier`).
fn weighted_quant(
    x: QParams,
    y: QParams,
    w_scales: Vec<f32>,
    (act_min, act_max): (i32, i32),
) -> Result<OpQuant, String> {
    let pairs: Vec<[i32; 2]> = w_scales
        .iter()
        .map(|&s| {
            let (m, shift) = tflite_multiplier(x.scale as f64 * s as f64 / y.scale as f64);
            [m, shift]
        })
        .collect();
    if pairs.iter().any(|&[m, _]| m == 0) {
        return Err("a requantization scale below 2^-32 (TFLite would flush it to zero)".into());
    }
    Ok(OpQuant {
        input: x,
        input2: None,
        conv: y,
        output: y,
        weight_scales: w_scales,
        requant: Some(RequantSpec::Tflite(pairs)),
        act_min,
        act_max,
        pool_requant: None,
    })
}

/// TFLite's `CalculateActivationRangeQuantized` for int8: `zp + round(f / scale)` of the
/// activation's bounds (rounded half away from zero, in f32), within `[-128, 127]`.
fn activation_range(act: ActivationFunctionType, q: QParams) -> Result<(i32, i32), String> {
    let quantize = |f: f32| q.zero_point + (f / q.scale).round() as i32;
    match act {
        ActivationFunctionType::NONE => Ok((-128, 127)),
        ActivationFunctionType::RELU => Ok((quantize(0.0).max(-128), 127)),
        ActivationFunctionType::RELU6 => Ok((quantize(0.0).max(-128), quantize(6.0).min(127))),
        other => Err(format!("fused activation {other:?}; NONE, RELU and RELU6 are supported")),
    }
}

fn plan_activation(act: ActivationFunctionType) -> Activation {
    match act {
        ActivationFunctionType::RELU => Activation::Relu,
        ActivationFunctionType::RELU6 => Activation::Relu6,
        _ => Activation::None,
    }
}

/// TFLite's padding: `SAME` pads `max((out − 1)·stride + k − in, 0)` in all, the smaller half
/// first (top/left), as `ComputePaddingHeightWidth` does; `VALID` none.
fn pads(padding: Padding, input: Shape, kernel: [usize; 2], stride: [usize; 2]) -> Result<[usize; 4], String> {
    match padding {
        Padding::VALID => Ok([0; 4]),
        Padding::SAME => {
            let (t, b) = same_pads(input.h, kernel[0], stride[0]);
            let (l, r) = same_pads(input.w, kernel[1], stride[1]);
            Ok([t, l, b, r])
        }
        other => Err(format!("padding {other:?}")),
    }
}

fn stride_of([h, w]: [i32; 2]) -> Result<[usize; 2], String> {
    Ok([dim(h)?, dim(w)?])
}

fn dim(v: i32) -> Result<usize, String> {
    usize::try_from(v).ok().filter(|&v| (1..=u16::MAX as usize).contains(&v)).ok_or_else(|| format!("dimension {v}"))
}

/// A tensor's scales and zero points (empty when it has none).
fn quantization(t: &Tensor<'_>) -> (Vec<f32>, Vec<i64>) {
    let q = t.quantization();
    let scales = q.and_then(|q| q.scale()).map(|v| v.iter().collect()).unwrap_or_default();
    let zps = q.and_then(|q| q.zero_point()).map(|v| v.iter().collect()).unwrap_or_default();
    (scales, zps)
}

fn type_name(t: TensorType) -> String {
    t.variant_name().map_or_else(|| format!("type {}", t.0), |n| n.to_lowercase())
}

fn op_name(code: BuiltinOperator) -> String {
    code.variant_name().map_or_else(|| format!("builtin {}", code.0), str::to_string)
}
