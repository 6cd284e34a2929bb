//! The int8 graph: `QuantizeLinear`, `QLinearConv` (convolutions, depthwise convolutions with
//! `group` = channels, dense layers and average pools), int8 `Clip` and `MaxPool`, an add as
//! `DequantizeLinear` → `Add` → `QuantizeLinear`, and `DequantizeLinear` for the logits.

use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

use super::proto::{GraphBuilder, attr_int, attr_ints};
use super::validate::{INPUT_SCALE, INPUT_ZERO_POINT};
use super::{
    INPUT_NAME, INPUT_Q_NAME, OnnxError, dense_hwc_to_chw, flatten_logits, io, nchw, ohwi_to_oihw, op_output_name,
};
use crate::lower::plan::{Activation, Bias, OpKind, OpQuant, Plan, PlanOp, PoolKind, QParams, RequantSpec, Weights};
use mnistc_runtime::quant::uniform_scale;

pub(super) fn graph(plan: &Plan) -> Result<pb::GraphProto, OnnxError> {
    let mut b = GraphBuilder::default();
    let scale = b.f32_scalar(format!("{INPUT_Q_NAME}.scale"), INPUT_SCALE);
    let zero_point = b.i8_scalar(format!("{INPUT_Q_NAME}.zero_point"), INPUT_ZERO_POINT as i8);
    let mut x = b.node("QuantizeLinear", &[INPUT_NAME, &scale, &zero_point], INPUT_Q_NAME, vec![]);
    b.value_info(&x, DataType::Int8, &nchw(plan.input));
    // Per tensor (0: the quantized input, k + 1: op k's output) its name.
    let mut tensors: Vec<String> = vec![x.clone()];
    for (i, op) in plan.ops.iter().enumerate() {
        let p = op_output_name(i);
        let err = |what: &str| OnnxError::Op { op: i, kind: op.kind.name(), what: what.into() };
        let q = op.quant.as_ref().ok_or_else(|| err("int8 op without quantization parameters"))?;
        let operand = |k: usize| op.inputs.get(k).and_then(|&t| tensors.get(t).cloned());
        x = operand(0).ok_or_else(|| err("reads a tensor not written yet"))?;
        let y = match op.kind {
            OpKind::Add => {
                let other = operand(1).ok_or_else(|| err("an add needs a second operand"))?;
                let b_q = q.input2.ok_or_else(|| err("an add needs its second operand's quantization"))?;
                add(&mut b, &p, [(&x, q.input), (&other, b_q)], op.activation, q.output)
            }
            OpKind::Conv2d => {
                let (w, bias) = params(op).ok_or_else(|| err("an int8 conv needs int8 weights and int32 bias"))?;
                let (o, c, [kh, kw]) = (op.output.c, op.input.c, op.kernel);
                let conv = Conv {
                    x_q: q.input,
                    weights: ohwi_to_oihw(w, o, op.kernel, c),
                    weight_dims: [o, c, kh, kw],
                    multipliers: multipliers(q, o).ok_or_else(|| err("an int8 conv needs its requantization"))?,
                    y_q: q.conv,
                    bias,
                    stride: op.stride,
                    pads: op.pads,
                    group: 1,
                };
                let y = conv.emit(&mut b, &p, &x, "conv");
                if op.residual {
                    // The convolution over all of int8 (no clamp of its own), then the add with
                    // the residual, as the separate ops would be.
                    let residual = operand(1).ok_or_else(|| err("a residual conv needs its residual"))?;
                    let r_q = q.input2.ok_or_else(|| err("a residual conv needs its residual's quantization"))?;
                    let y = add(
                        &mut b,
                        &format!("{p}.residual"),
                        [(&y, q.conv), (&residual, r_q)],
                        op.activation,
                        q.output,
                    );
                    x = b.rename_last(&y, &p);
                    b.value_info(&x, DataType::Int8, &nchw(op.output));
                    tensors.push(x.clone());
                    continue;
                }
                let y = clamp(&mut b, &p, &y, q);
                match &op.fused_pool {
                    None => y,
                    Some(pool) if pool.kind == PoolKind::Max => max_pool(&mut b, &p, &y, pool.size, pool.stride),
                    Some(pool) => {
                        let m =
                            pool_multiplier(q).ok_or_else(|| err("a fused average pool needs its requantization"))?;
                        avg_pool(&mut b, &format!("{p}.pool"), &y, o, pool.size, pool.stride, m, q.conv, q.output)
                    }
                }
            }
            OpKind::DepthwiseConv2d => {
                let (w, bias) =
                    params(op).ok_or_else(|| err("an int8 depthwise conv needs int8 weights and int32 bias"))?;
                let (c, [kh, kw]) = (op.output.c, op.kernel);
                let conv = Conv {
                    x_q: q.input,
                    // The plan's [C][kh][kw] is ONNX's [C, 1, kh, kw].
                    weights: w.to_vec(),
                    weight_dims: [c, 1, kh, kw],
                    multipliers: multipliers(q, c)
                        .ok_or_else(|| err("an int8 depthwise conv needs its requantization"))?,
                    y_q: q.conv,
                    bias,
                    stride: op.stride,
                    pads: op.pads,
                    group: c,
                };
                let y = conv.emit(&mut b, &p, &x, "dwconv");
                clamp(&mut b, &p, &y, q)
            }
            OpKind::MaxPool2d => max_pool(&mut b, &p, &x, op.kernel, op.stride),
            OpKind::AvgPool2d => {
                let m = pool_multiplier(q).ok_or_else(|| err("an average pool needs its requantization"))?;
                avg_pool(&mut b, &p, &x, op.input.c, op.kernel, op.stride, m, q.input, q.output)
            }
            OpKind::Dense => {
                let (w, bias) = params(op).ok_or_else(|| err("an int8 dense needs int8 weights and int32 bias"))?;
                let (units, s) = (op.output.c, op.input);
                let conv = Conv {
                    x_q: q.input,
                    weights: dense_hwc_to_chw(w, units, s),
                    weight_dims: [units, s.c, s.h, s.w],
                    multipliers: multipliers(q, units).ok_or_else(|| err("an int8 dense needs its requantization"))?,
                    y_q: q.conv,
                    bias,
                    stride: [1, 1],
                    pads: [0; 4],
                    group: 1,
                };
                let y = conv.emit(&mut b, &p, &x, "dense");
                clamp(&mut b, &p, &y, q)
            }
        };
        x = b.rename_last(&y, &p);
        b.value_info(&x, DataType::Int8, &nchw(op.output));
        tensors.push(x.clone());
    }
    let last = plan.ops.last().ok_or(OnnxError::Empty)?;
    let out =
        plan.output_quant.ok_or_else(|| OnnxError::Quantization("an int8 plan without output quantization".into()))?;
    let scale = b.f32_scalar("logits.scale", out.scale);
    let zero_point = b.i8_scalar("logits.zero_point", zp(out));
    let real = b.node("DequantizeLinear", &[&x, &scale, &zero_point], "logits.nchw", vec![]);
    b.value_info(&real, DataType::Float, &nchw(last.output));
    flatten_logits(&mut b, &real, last.output);
    let (input, output) = io(plan, last.output.len());
    let doc = format!(
        "{} int8 graph: QuantizeLinear -> `{INPUT_Q_NAME}` -> QLinearConv / Clip / MaxPool -> DequantizeLinear; \
         op i's int8 output is `op{{i}}`",
        plan.name
    );
    Ok(b.finish(&plan.name, input, output, doc))
}

fn params(op: &PlanOp) -> Option<(&[i8], &[i32])> {
    match (&op.weights, &op.bias) {
        (Weights::I8(w), Bias::I32(b)) => Some((w, b)),
        _ => None,
    }
}

/// The op's requantization multipliers `m_c`, one per output channel, as f32 (a uniform Q0.31
/// multiplier and shift stand for an f32 exactly).
fn multipliers(q: &OpQuant, channels: usize) -> Option<Vec<f32>> {
    match q.requant.as_ref()? {
        RequantSpec::PerChannel(m) => Some(m.clone()),
        RequantSpec::Uniform { multiplier, shift } => Some(vec![uniform_scale(*multiplier, *shift); channels]),
        // TFLite's double rounding has no ONNX operator: imported TFLite models are not exported.
        RequantSpec::Tflite(_) => None,
    }
}

/// An average pool's requantization multiplier as f32.
fn pool_multiplier(q: &OpQuant) -> Option<f32> {
    q.pool_requant.map(|(multiplier, shift)| uniform_scale(multiplier, shift))
}

/// A zero point as int8 (validated to fit).
fn zp(q: QParams) -> i8 {
    q.zero_point.clamp(-128, 127) as i8
}

/// A `QLinearConv` with per-output-channel multipliers and int32 bias.
///
/// The runtime's requantization multiplier `m_c` goes in as the weight scale, with `x_scale` and
/// `y_scale` 1.0 (the zero points are the real ones): every ONNX runtime then scales by exactly
/// `m_c · 1 / 1 = m_c`. Given the real scales instead, each runtime rounds its own product
/// `s_w · s_x / s_y`, and tract's constant folding does it in a different order per code path
/// (one ulp apart, which flips near-ties), so bit-exactness would depend on tract's internals.
/// The int8 tensors are the same either way; the model's float input and output keep their
/// real scales (`QuantizeLinear`, `DequantizeLinear`).
struct Conv<'a> {
    x_q: QParams,
    /// OIHW.
    weights: Vec<i8>,
    weight_dims: [usize; 4],
    multipliers: Vec<f32>,
    y_q: QParams,
    bias: &'a [i32],
    stride: [usize; 2],
    pads: [usize; 4],
    /// 1, or the channel count for a depthwise convolution.
    group: usize,
}

impl Conv<'_> {
    fn emit(&self, b: &mut GraphBuilder, p: &str, x: &str, stage: &str) -> String {
        let [o, _, kh, kw] = self.weight_dims;
        let x_scale = b.f32_scalar(format!("{p}.x_scale"), 1.0);
        let x_zp = b.i8_scalar(format!("{p}.x_zero_point"), zp(self.x_q));
        let w = b.i8s(format!("{p}.w"), &self.weight_dims, &self.weights);
        let w_scale = b.f32s(format!("{p}.w_scale"), &[o], &self.multipliers);
        let w_zp = b.i8s(format!("{p}.w_zero_point"), &[o], &vec![0; o]);
        let y_scale = b.f32_scalar(format!("{p}.y_scale"), 1.0);
        let y_zp = b.i8_scalar(format!("{p}.y_zero_point"), zp(self.y_q));
        let bias = b.i32s(format!("{p}.b"), &[o], self.bias);
        let attrs = vec![
            attr_ints("kernel_shape", &[kh, kw]),
            attr_ints("strides", &self.stride),
            attr_ints("pads", &self.pads),
            attr_ints("dilations", &[1, 1]),
            attr_int("group", self.group as i64),
        ];
        b.node(
            "QLinearConv",
            &[x, &x_scale, &x_zp, &w, &w_scale, &w_zp, &y_scale, &y_zp, &bias],
            format!("{p}.{stage}"),
            attrs,
        )
    }
}

/// The activation clamp, when it is narrower than int8's range (`QLinearConv` already saturates
/// to `[−128, 127]`).
fn clamp(b: &mut GraphBuilder, p: &str, x: &str, q: &OpQuant) -> String {
    if (q.act_min, q.act_max) == (-128, 127) {
        return x.to_string();
    }
    let lo = b.i8_scalar(format!("{p}.clip.min"), q.act_min.clamp(-128, 127) as i8);
    let hi = b.i8_scalar(format!("{p}.clip.max"), q.act_max.clamp(-128, 127) as i8);
    b.node("Clip", &[x, &lo, &hi], format!("{p}.clip"), vec![])
}

/// An int8 add as ONNX's QDQ form: `DequantizeLinear` of each operand with its real scale and
/// zero point, a float `Add`, the activation in float (`Relu`, `Clip(0, 6)`), `QuantizeLinear`
/// to the output's. tract runs exactly this in f32 (an `Add` has two inputs, so tract does not
/// fold the dequantization away), and the runtime's `add_s8` computes the same f32 operations.
fn add(b: &mut GraphBuilder, p: &str, operands: [(&str, QParams); 2], activation: Activation, y_q: QParams) -> String {
    let mut real = Vec::with_capacity(2);
    for (k, (x, q)) in operands.into_iter().enumerate() {
        let scale = b.f32_scalar(format!("{p}.x{k}.scale"), q.scale);
        let zero_point = b.i8_scalar(format!("{p}.x{k}.zero_point"), zp(q));
        real.push(b.node("DequantizeLinear", &[x, &scale, &zero_point], format!("{p}.x{k}.real"), vec![]));
    }
    let sum = b.node("Add", &[&real[0], &real[1]], format!("{p}.add"), vec![]);
    let y = super::float::activation(b, p, &sum, activation);
    let scale = b.f32_scalar(format!("{p}.y_scale"), y_q.scale);
    let zero_point = b.i8_scalar(format!("{p}.y_zero_point"), zp(y_q));
    b.node("QuantizeLinear", &[&y, &scale, &zero_point], format!("{p}.q"), vec![])
}

fn max_pool(b: &mut GraphBuilder, p: &str, x: &str, size: [usize; 2], stride: [usize; 2]) -> String {
    b.node(
        "MaxPool",
        &[x],
        format!("{p}.maxpool"),
        vec![attr_ints("kernel_shape", &size), attr_ints("strides", &stride)],
    )
}

/// An int8 average pool as a depthwise `QLinearConv`: all-ones weights `[C, 1, kh, kw]`, no bias.
/// It sums `x − x_zp` over the window and requantizes the sum uniformly with the pool's multiplier
/// `m` (≈ `s_x / (n · s_y)`), exactly the runtime's average pool; as in [`Conv`], `m` is the weight
/// scale and `x_scale = y_scale = 1`.
#[allow(clippy::too_many_arguments)]
fn avg_pool(
    b: &mut GraphBuilder,
    p: &str,
    x: &str,
    channels: usize,
    size: [usize; 2],
    stride: [usize; 2],
    m: f32,
    x_q: QParams,
    y_q: QParams,
) -> String {
    let n = size[0] * size[1];
    let x_scale = b.f32_scalar(format!("{p}.x_scale"), 1.0);
    let x_zp = b.i8_scalar(format!("{p}.x_zero_point"), zp(x_q));
    let w = b.i8s(format!("{p}.w"), &[channels, 1, size[0], size[1]], &vec![1; channels * n]);
    let w_scale = b.f32_scalar(format!("{p}.w_scale"), m);
    let w_zp = b.i8_scalar(format!("{p}.w_zero_point"), 0);
    let y_scale = b.f32_scalar(format!("{p}.y_scale"), 1.0);
    let y_zp = b.i8_scalar(format!("{p}.y_zero_point"), zp(y_q));
    let attrs = vec![
        attr_ints("kernel_shape", &size),
        attr_ints("strides", &stride),
        attr_ints("pads", &[0; 4]),
        attr_ints("dilations", &[1, 1]),
        attr_int("group", channels as i64),
    ];
    b.node("QLinearConv", &[x, &x_scale, &x_zp, &w, &w_scale, &w_zp, &y_scale, &y_zp], format!("{p}.avgpool"), attrs)
}
