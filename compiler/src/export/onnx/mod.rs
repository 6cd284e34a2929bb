//! ONNX export of a lowered [`Plan`]: the same model, op for op, as an ONNX graph (opset 13,
//! IR version 8) that tract, onnxruntime and Netron open.
//!
//! # Interface
//! * Input [`INPUT_NAME`] (`input`): float32 `[1, C, H, W]`, NCHW, `pixel / 255`.
//! * Output [`OUTPUT_NAME`] (`logits`): float32 `[1, classes]`, in the runtime's logit order.
//! * Ops read the tensors the plan names ([`crate::lower::plan::PlanOp::inputs`]): the input or
//!   an earlier op's output, so residual graphs export as they run.
//! * The output of plan op `i` is the tensor [`op_output_name`]`(i)` (`op{i}`): float32 in float
//!   graphs (`[1, C, H, W]`, or `[1, units]` after a dense layer), int8 `[1, C, H, W]` in int8
//!   graphs (a dense layer gives `[1, units, 1, 1]`). These shapes are also recorded as
//!   `value_info`. The runtime's activations are NHWC; compare element `(y, x, c)` of the runtime
//!   with element `(0, c, y, x)` here.
//! * int8 graphs quantize the input into [`INPUT_Q_NAME`] (`input_q`): int8 `[1, C, H, W]`,
//!   `q = pixel − 128` for pixel inputs. Feeding `input_q` directly (cutting the graph there) is
//!   how [`crate::verify::tract`] and [`crate::verify::check`] compare tract with the runtime exactly: tract's
//!   per-tensor `QuantizeLinear` computes `x · (1/s)`, the ONNX spec (and onnxruntime, and the
//!   runtime's own float input path) `x / s`, and the two round differently at a few near-ties.
//!
//! # Graph form per op
//!
//! Float plans (F32, and F16 with its f16-rounded weights widened exactly to f32):
//!
//! | plan op | ONNX |
//! |---------|------|
//! | conv | `Conv` (weights OHWI → OIHW, `pads = [top, left, bottom, right]`, which is ONNX's `[x1_begin, x2_begin, x1_end, x2_end]`), then `Relu` or `Clip(0, 6)`, then `MaxPool` / `AveragePool` for a fused pool |
//! | max / avg pool | `MaxPool` / `AveragePool` (no padding, floor) |
//! | dense | `Flatten` (from 4-D), `Gemm(transB = 1)` with the weight columns permuted from the plan's NHWC `(h, w, c)` order to ONNX's NCHW flatten order `(c, h, w)`, then the activation |
//! | add | `Add` (a `[1, n]` operand reshaped to `[1, n, 1, 1]` when the other is 4-D), then the activation |
//! | logits | `Identity`, or `Transpose(0, 2, 3, 1)` + `Flatten` when the last op's output is spatial |
//!
//! A spatial op after a dense layer first `Reshape`s `[1, n]` to `[1, n, 1, 1]`.
//!
//! int8 plans carry the integer arithmetic explicitly (only an add runs in float, as the runtime's
//! add does):
//!
//! | plan op | ONNX |
//! |---------|------|
//! | input | `QuantizeLinear(scale 1/255, zero point −128)` → `input_q` |
//! | conv | `QLinearConv`: int8 OIHW weights, `w_scale` = the per-channel multipliers (1-D), 1-D int8 zero `w_zero_point`, int32 bias; `x_scale = y_scale = 1`, zero points from the op's input and `conv` parameters |
//! | activation clamp narrower than `[−128, 127]` | `Clip` with int8 `min` / `max` (`act_min`, `act_max`) |
//! | max pool (fused or standalone) | `MaxPool` on int8 |
//! | avg pool (fused or standalone) | depthwise `QLinearConv` (`group = C`, all-ones int8 weights `[C, 1, kh, kw]`, per-tensor weight scale = the pool's multiplier, zero point 0, no bias, strides = pool stride): the runtime's sum of `x − zp` with its uniform requantization |
//! | dense | `QLinearConv` whose kernel covers the whole input (`[units, C, H, W]`, the dense weights permuted to CHW), output `[1, units, 1, 1]`; a dense after a dense is a 1×1 `QLinearConv` |
//! | add | `DequantizeLinear` of each operand (real scale and zero point), `Add`, `Relu` / `Clip(0, 6)`, `QuantizeLinear` to the output's scale and zero point |
//! | logits | `DequantizeLinear(output scale, zero point)`, then `Flatten` (with `Transpose(0, 2, 3, 1)` first when the last op's output is spatial) |
//!
//! ONNX expresses requantization by scales, not by multipliers, and runtimes compute the
//! multiplier `s_w · s_x / s_y` themselves — each rounding it its own way (tract's constant
//! folding multiplies by `1/s_y`, in an order that depends on the op's code path; onnxruntime
//! divides), one ulp apart for some scales, which flips near-ties. So every `QLinearConv` carries
//! the runtime's own multiplier `m_c` as its weight scale, with `x_scale = y_scale = 1`: any ONNX
//! runtime then computes `m_c · 1 / 1 = m_c` exactly. Zero points and int8 tensors are the real
//! ones; only the intermediate tensors' declared scales are 1 (the graph's float input and output
//! keep their real scales). [`export`] also checks that the plan's
//! multipliers are exactly those ([`crate::quantize::requant_spec`],
//! [`crate::quantize::avg_pool_requant`]) and refuses plans whose integer arithmetic the graph
//! would not reproduce.

mod float;
mod int8;
mod proto;
mod validate;

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

use crate::lower::plan::{Plan, Precision, Shape};

pub use validate::OnnxError;

/// Name of the float32 `[1, C, H, W]` model input (`pixel / 255`).
pub const INPUT_NAME: &str = "input";
/// Name of the int8 `[1, C, H, W]` quantized input inside int8 graphs.
pub const INPUT_Q_NAME: &str = "input_q";
/// Name of the float32 `[1, classes]` model output.
pub const OUTPUT_NAME: &str = "logits";
/// The ONNX opset the graphs use (default domain).
pub const OPSET_VERSION: i64 = 13;
/// The ONNX IR version of the written model (that of tract-onnx's schema).
pub const IR_VERSION: i64 = 8;
/// `producer_name` of exported models.
pub const PRODUCER_NAME: &str = "mnistc";

/// Name of the tensor holding plan op `i`'s output (`op{i}`).
pub fn op_output_name(i: usize) -> String {
    format!("op{i}")
}

/// The model as ONNX bytes (a serialized `ModelProto`).
///
/// # Errors
/// [`OnnxError`] when the plan is inconsistent (shapes that do not chain, weights that do not
/// match the precision or geometry, quantization parameters ONNX cannot express exactly).
pub fn export(plan: &Plan) -> Result<Vec<u8>, OnnxError> {
    Ok(model_proto(plan)?.encode_to_vec())
}

/// The model as a `ModelProto` (what [`export`] serializes).
///
/// # Errors
/// As [`export`].
pub fn model_proto(plan: &Plan) -> Result<pb::ModelProto, OnnxError> {
    validate::plan(plan)?;
    let graph = match plan.precision {
        Precision::F32 | Precision::F16 => float::graph(plan)?,
        Precision::Int8 => int8::graph(plan)?,
    };
    let hash = crate::data::hex(&plan.source_hash);
    let props = [
        ("dataset", plan.dataset.clone()),
        ("precision", plan.precision.name().to_string()),
        ("class_names", plan.class_names.join(",")),
        ("source_hash", hash),
    ];
    Ok(pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: OPSET_VERSION }],
        producer_name: PRODUCER_NAME.into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "{} ({}, {}): input `{INPUT_NAME}` float32 [1, C, H, W] = pixel / 255, output `{OUTPUT_NAME}` \
             float32 [1, classes]; op i's output is tensor `op{{i}}`",
            plan.name,
            plan.dataset,
            plan.precision.name()
        ),
        graph: Some(graph),
        metadata_props: props
            .into_iter()
            .map(|(key, value)| pb::StringStringEntryProto { key: key.into(), value })
            .collect(),
        ..Default::default()
    })
}

/// `[1, C, H, W]` of an NHWC shape.
fn nchw(s: Shape) -> [usize; 4] {
    [1, s.c, s.h, s.w]
}

/// Conv weights OHWI → OIHW.
fn ohwi_to_oihw<T: Copy>(w: &[T], out: usize, kernel: [usize; 2], inp: usize) -> Vec<T> {
    let [kh, kw] = kernel;
    let mut r = Vec::with_capacity(w.len());
    for o in 0..out {
        for i in 0..inp {
            for y in 0..kh {
                for x in 0..kw {
                    r.push(w[((o * kh + y) * kw + x) * inp + i]);
                }
            }
        }
    }
    r
}

/// Dense weights `[units][in]` with `in` in NHWC `(h, w, c)` order → `[units][in]` with `in` in
/// NCHW `(c, h, w)` order (ONNX's `Flatten` order, and OIHW for the int8 conv form).
fn dense_hwc_to_chw<T: Copy>(w: &[T], units: usize, input: Shape) -> Vec<T> {
    let n = input.len();
    let mut r = Vec::with_capacity(w.len());
    for u in 0..units {
        let row = &w[u * n..(u + 1) * n];
        for c in 0..input.c {
            for y in 0..input.h {
                for x in 0..input.w {
                    r.push(row[input.index(y, x, c)]);
                }
            }
        }
    }
    r
}

/// Flattens a final 4-D `[1, C, H, W]` tensor `x` into `[1, classes]` logits in the runtime's NHWC
/// order: a `Transpose` is needed only when both `C` and `H·W` exceed 1.
fn flatten_logits(b: &mut proto::GraphBuilder, x: &str, shape: Shape) -> String {
    let x = if shape.c > 1 && shape.h * shape.w > 1 {
        b.node("Transpose", &[x], "logits.nhwc", vec![proto::attr_ints("perm", &[0, 2, 3, 1])])
    } else {
        x.to_string()
    };
    b.node("Flatten", &[&x], OUTPUT_NAME, vec![proto::attr_int("axis", 1)])
}

/// The graph's input and output declarations.
fn io(plan: &Plan, classes: usize) -> (pb::ValueInfoProto, pb::ValueInfoProto) {
    (
        proto::value_info(INPUT_NAME, DataType::Float, &nchw(plan.input)),
        proto::value_info(OUTPUT_NAME, DataType::Float, &[1, classes]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ohwi_to_oihw_moves_input_channels_before_the_kernel() {
        // out 2, kernel 1x2, in 3: w[o][y][x][i] = 100o + 10x + i.
        let w: Vec<i32> =
            (0..2).flat_map(|o| (0..2).flat_map(move |x| (0..3).map(move |i| 100 * o + 10 * x + i))).collect();
        let r = ohwi_to_oihw(&w, 2, [1, 2], 3);
        assert_eq!(r, vec![0, 10, 1, 11, 2, 12, 100, 110, 101, 111, 102, 112]);
    }

    #[test]
    fn dense_columns_go_from_hwc_to_chw() {
        // input h2 w3 c2; column of (y, x, c) holds 100y + 10x + c.
        let s = Shape::new(2, 3, 2);
        let row: Vec<i32> =
            (0..2).flat_map(|y| (0..3).flat_map(move |x| (0..2).map(move |c| 100 * y + 10 * x + c))).collect();
        let r = dense_hwc_to_chw(&row, 1, s);
        let want: Vec<i32> =
            (0..2).flat_map(|c| (0..2).flat_map(move |y| (0..3).map(move |x| 100 * y + 10 * x + c))).collect();
        assert_eq!(r, want);
    }
}
