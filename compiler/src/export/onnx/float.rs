//! The float graph (F32 and F16 plans): `Conv` (depthwise: `group` = channels), `Relu` /
//! `Clip`, `MaxPool` / `AveragePool`, `Flatten` + `Gemm`, `Add`.

use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

use super::proto::{GraphBuilder, attr_int, attr_ints};
use super::{
    INPUT_NAME, OUTPUT_NAME, OnnxError, dense_hwc_to_chw, flatten_logits, io, nchw, ohwi_to_oihw, op_output_name,
};
use crate::lower::plan::{Activation, Bias, OpKind, Plan, PlanOp, Pool, PoolKind, Weights};

pub(super) fn graph(plan: &Plan) -> Result<pb::GraphProto, OnnxError> {
    let mut b = GraphBuilder::default();
    // Per tensor (0: the input, k + 1: op k's output) its name, and whether it is `[1, n]` (after
    // a dense layer) rather than `[1, C, H, W]`.
    let mut tensors: Vec<(String, bool)> = vec![(INPUT_NAME.to_string(), false)];
    let (mut x, mut flat) = (INPUT_NAME.to_string(), false);
    for (i, op) in plan.ops.iter().enumerate() {
        let p = op_output_name(i);
        let operand = |k: usize| {
            op.inputs
                .get(k)
                .and_then(|&t| tensors.get(t).cloned())
                .ok_or_else(|| inconsistent(i, op, "reads a tensor not written yet"))
        };
        (x, flat) = operand(0)?;
        let mut y = x.clone();
        if op.kind == OpKind::Add {
            // Both operands in one form: `[1, n]` when both are, else `[1, C, H, W]`.
            let (mut other, other_flat) = operand(1)?;
            if flat != other_flat {
                let shape =
                    b.i64s(format!("{p}.shape"), &[4], &[1, op.input.c as i64, op.input.h as i64, op.input.w as i64]);
                if flat {
                    y = b.node("Reshape", &[&y, &shape], format!("{p}.a.nchw"), vec![]);
                } else {
                    other = b.node("Reshape", &[&other, &shape], format!("{p}.b.nchw"), vec![]);
                }
                flat = false;
            }
            let sum = b.node("Add", &[&y, &other], format!("{p}.add"), vec![]);
            let y = activation(&mut b, &p, &sum, op.activation);
            x = b.rename_last(&y, &p);
            let dims = if flat { vec![1, op.output.c] } else { nchw(op.output).to_vec() };
            b.value_info(&x, DataType::Float, &dims);
            tensors.push((x.clone(), flat));
            continue;
        }
        if flat && op.kind != OpKind::Dense {
            let shape = b.i64s(format!("{p}.shape"), &[4], &[1, op.input.len() as i64, 1, 1]);
            y = b.node("Reshape", &[&y, &shape], format!("{p}.nchw"), vec![]);
            flat = false;
        }
        let (w, bias) = params(i, op)?;
        let y = match op.kind {
            OpKind::Conv2d => {
                let (o, c, [kh, kw]) = (op.output.c, op.input.c, op.kernel);
                let w = b.f32s(format!("{p}.w"), &[o, c, kh, kw], &ohwi_to_oihw(&w, o, op.kernel, c));
                let bias = b.f32s(format!("{p}.b"), &[o], &bias);
                let attrs = vec![
                    attr_ints("kernel_shape", &op.kernel),
                    attr_ints("strides", &op.stride),
                    attr_ints("pads", &op.pads),
                    attr_ints("dilations", &[1, 1]),
                    attr_int("group", 1),
                ];
                let y = b.node("Conv", &[&y, &w, &bias], format!("{p}.conv"), attrs);
                let y = activation(&mut b, &p, &y, op.activation);
                match &op.fused_pool {
                    Some(pool) => pool_node(&mut b, &p, &y, pool),
                    None => y,
                }
            }
            OpKind::DepthwiseConv2d => {
                // The plan's [C][kh][kw] is ONNX's [C, 1, kh, kw].
                let (c, [kh, kw]) = (op.output.c, op.kernel);
                let w = b.f32s(format!("{p}.w"), &[c, 1, kh, kw], &w);
                let bias = b.f32s(format!("{p}.b"), &[c], &bias);
                let attrs = vec![
                    attr_ints("kernel_shape", &op.kernel),
                    attr_ints("strides", &op.stride),
                    attr_ints("pads", &op.pads),
                    attr_ints("dilations", &[1, 1]),
                    attr_int("group", c as i64),
                ];
                let y = b.node("Conv", &[&y, &w, &bias], format!("{p}.dwconv"), attrs);
                activation(&mut b, &p, &y, op.activation)
            }
            OpKind::MaxPool2d | OpKind::AvgPool2d => {
                let kind = if op.kind == OpKind::MaxPool2d { PoolKind::Max } else { PoolKind::Avg };
                pool_node(&mut b, &p, &y, &Pool { kind, size: op.kernel, stride: op.stride })
            }
            OpKind::Add => unreachable!("handled above"),
            OpKind::Dense => {
                if !flat {
                    y = b.node("Flatten", &[&y], format!("{p}.flat"), vec![attr_int("axis", 1)]);
                }
                let (units, n) = (op.output.c, op.input.len());
                let w = b.f32s(format!("{p}.w"), &[units, n], &dense_hwc_to_chw(&w, units, op.input));
                let bias = b.f32s(format!("{p}.b"), &[units], &bias);
                let y = b.node("Gemm", &[&y, &w, &bias], format!("{p}.gemm"), vec![attr_int("transB", 1)]);
                flat = true;
                activation(&mut b, &p, &y, op.activation)
            }
        };
        x = b.rename_last(&y, &p);
        if flat {
            b.value_info(&x, DataType::Float, &[1, op.output.c]);
        } else {
            b.value_info(&x, DataType::Float, &nchw(op.output));
        }
        tensors.push((x.clone(), flat));
    }
    let last = plan.ops.last().ok_or(OnnxError::Empty)?;
    if flat {
        b.node("Identity", &[&x], OUTPUT_NAME, vec![]);
    } else {
        flatten_logits(&mut b, &x, last.output);
    }
    let (input, output) = io(plan, last.output.len());
    let doc = format!("{} float graph ({} weights); op i's output is `op{{i}}`", plan.name, plan.precision.name());
    Ok(b.finish(&plan.name, input, output, doc))
}

/// The op's weights widened to f32 (f16 weights exactly) and its bias; empty for pools.
fn params(i: usize, op: &PlanOp) -> Result<(Vec<f32>, Vec<f32>), OnnxError> {
    let w = match &op.weights {
        Weights::None => vec![],
        Weights::F32(w) => w.clone(),
        Weights::F16(w) => w.iter().map(|v| v.to_f32()).collect(),
        Weights::I8(_) => return Err(inconsistent(i, op, "int8 weights in a float plan")),
    };
    let b = match &op.bias {
        Bias::None => vec![],
        Bias::F32(b) => b.clone(),
        Bias::I32(_) => return Err(inconsistent(i, op, "int32 bias in a float plan")),
    };
    Ok((w, b))
}

fn inconsistent(i: usize, op: &PlanOp, what: &str) -> OnnxError {
    OnnxError::Op { op: i, kind: op.kind.name(), what: what.into() }
}

/// `x` through `activation` (`Relu`, or `Clip(0, 6)` for relu6); `x` itself for none.
pub(super) fn activation(b: &mut GraphBuilder, p: &str, x: &str, activation: Activation) -> String {
    match activation {
        Activation::None => x.to_string(),
        Activation::Relu => b.node("Relu", &[x], format!("{p}.relu"), vec![]),
        Activation::Relu6 => {
            let lo = b.f32_scalar(format!("{p}.relu6.min"), 0.0);
            let hi = b.f32_scalar(format!("{p}.relu6.max"), 6.0);
            b.node("Clip", &[x, &lo, &hi], format!("{p}.relu6"), vec![])
        }
    }
}

fn pool_node(b: &mut GraphBuilder, p: &str, x: &str, pool: &Pool) -> String {
    let attrs = vec![attr_ints("kernel_shape", &pool.size), attr_ints("strides", &pool.stride)];
    match pool.kind {
        PoolKind::Max => b.node("MaxPool", &[x], format!("{p}.maxpool"), attrs),
        PoolKind::Avg => b.node("AveragePool", &[x], format!("{p}.avgpool"), attrs),
    }
}
