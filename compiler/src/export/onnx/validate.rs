//! What [`super::export`] checks before it writes a graph: each op reads tensors written before
//! it, of its input's shape and quantization; shapes match the geometry,
//! weights match the precision, and int8 parameters are ones ONNX expresses exactly.

use crate::lower::plan::{Bias, OpKind, OpQuant, Plan, PlanOp, Pool, PoolKind, Precision, QParams, Shape, Weights};
use crate::quantize::{avg_pool_requant, requant_spec};

/// Why a plan cannot be exported as ONNX.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OnnxError {
    /// The plan has no ops.
    #[error("the plan has no ops")]
    Empty,
    /// An op is inconsistent (shapes, geometry, weights, quantization).
    #[error("op {op} ({kind}): {what}")]
    Op {
        /// Op index in the plan.
        op: usize,
        /// Op kind (`conv2d`, `maxpool2d`, `avgpool2d`, `dense`).
        kind: &'static str,
        /// What is wrong.
        what: String,
    },
    /// The plan-level quantization of the input or logits is not what the runtime and the graph
    /// assume.
    #[error("{0}")]
    Quantization(String),
}

/// The float32 value of the input scale `1/255` that the runtime's pixel input assumes.
pub(crate) const INPUT_SCALE: f32 = 1.0 / 255.0;
/// The int8 input zero point (`q = pixel − 128`).
pub(crate) const INPUT_ZERO_POINT: i32 = -128;

pub(super) fn plan(plan: &Plan) -> Result<(), OnnxError> {
    if plan.ops.is_empty() {
        return Err(OnnxError::Empty);
    }
    if plan.input.is_empty() {
        return Err(OnnxError::Op { op: 0, kind: plan.ops[0].kind.name(), what: "empty input shape".into() });
    }
    let int8 = plan.precision == Precision::Int8;
    // Per tensor (0: the input, k + 1: op k's output) its shape and quantization.
    let mut tensors = vec![(plan.input, QParams { scale: INPUT_SCALE, zero_point: INPUT_ZERO_POINT })];
    let mut q = tensors[0].1;
    for (i, op) in plan.ops.iter().enumerate() {
        let err = |what: String| OnnxError::Op { op: i, kind: op.kind.name(), what };
        let arity = if op.kind == OpKind::Add || op.residual { 2 } else { 1 };
        if op.inputs.len() != arity {
            return Err(err(format!("{} inputs, the op takes {arity}", op.inputs.len())));
        }
        let mut sources = Vec::with_capacity(arity);
        for (k, &t) in op.inputs.iter().enumerate() {
            let &(shape, tq) =
                tensors.get(t).ok_or_else(|| err(format!("reads tensor {t}, which is not written yet")))?;
            // A residual conv's second input is added to its output.
            let want = if op.residual && k == 1 { op.output } else { op.input };
            if want != shape {
                return Err(err(format!(
                    "operand {k} {} does not match tensor {t}, which is {}",
                    fmt(want),
                    fmt(shape)
                )));
            }
            sources.push(tq);
        }
        if op.residual && (!int8 || op.kind != OpKind::Conv2d || op.fused_pool.is_some()) {
            return Err(err("only an int8 conv2d without a pool can carry a residual add".into()));
        }
        geometry(op).map_err(err)?;
        weights(op, plan.precision).map_err(err)?;
        if int8 {
            let oq = op.quant.as_ref().ok_or_else(|| err("int8 op without quantization parameters".into()))?;
            let given = [Some(oq.input), oq.input2];
            for (k, (&want, got)) in sources.iter().zip(given).enumerate() {
                if got != Some(want) {
                    return Err(err(format!(
                        "operand {k}'s quantization {got:?} differs from its tensor's (scale {}, zero point {})",
                        want.scale, want.zero_point
                    )));
                }
            }
            if arity == 1 && oq.input2.is_some() {
                return Err(err("a second operand's quantization on a one-input op".into()));
            }
            quant(op, oq).map_err(err)?;
            q = oq.output;
        }
        tensors.push((op.output, op.quant.as_ref().map_or(q, |oq| oq.output)));
    }
    if int8 {
        match plan.output_quant {
            Some(o) if o == q => {}
            Some(o) => {
                return Err(OnnxError::Quantization(format!(
                    "the logits' quantization (scale {}, zero point {}) differs from the last op's output \
                     (scale {}, zero point {})",
                    o.scale, o.zero_point, q.scale, q.zero_point
                )));
            }
            None => return Err(OnnxError::Quantization("an int8 plan without output quantization".into())),
        }
    }
    Ok(())
}

fn fmt(s: Shape) -> String {
    format!("{}x{}x{}", s.h, s.w, s.c)
}

/// `(n − k) / s + 1`, or an error when the window does not fit or a size is zero.
fn windowed(what: &str, n: usize, k: usize, s: usize) -> Result<usize, String> {
    if k == 0 || s == 0 {
        return Err(format!("{what}: zero window or stride"));
    }
    if k > n {
        return Err(format!("{what}: window {k} is larger than the input {n}"));
    }
    Ok((n - k) / s + 1)
}

fn pooled(input: Shape, p: &Pool) -> Result<Shape, String> {
    Ok(Shape::new(
        windowed("pool height", input.h, p.size[0], p.stride[0])?,
        windowed("pool width", input.w, p.size[1], p.stride[1])?,
        input.c,
    ))
}

fn geometry(op: &PlanOp) -> Result<(), String> {
    if op.input.is_empty() || op.output.is_empty() {
        return Err("empty shape".into());
    }
    let want = match op.kind {
        OpKind::Conv2d => {
            let [pt, pl, pb, pr] = op.pads;
            if pt >= op.kernel[0] || pb >= op.kernel[0] || pl >= op.kernel[1] || pr >= op.kernel[1] {
                return Err(format!("padding {:?} is not smaller than the kernel {:?}", op.pads, op.kernel));
            }
            let conv = Shape::new(
                windowed("conv height", op.input.h + pt + pb, op.kernel[0], op.stride[0])?,
                windowed("conv width", op.input.w + pl + pr, op.kernel[1], op.stride[1])?,
                op.output.c,
            );
            match &op.fused_pool {
                Some(p) => pooled(conv, p)?,
                None => conv,
            }
        }
        OpKind::DepthwiseConv2d => {
            let [pt, pl, pb, pr] = op.pads;
            if pt >= op.kernel[0] || pb >= op.kernel[0] || pl >= op.kernel[1] || pr >= op.kernel[1] {
                return Err(format!("padding {:?} is not smaller than the kernel {:?}", op.pads, op.kernel));
            }
            if op.fused_pool.is_some() {
                return Err("a depthwise conv cannot have a fused pool".into());
            }
            if op.output.c != op.input.c {
                return Err(format!("{} output channels from {} input channels", op.output.c, op.input.c));
            }
            Shape::new(
                windowed("conv height", op.input.h + pt + pb, op.kernel[0], op.stride[0])?,
                windowed("conv width", op.input.w + pl + pr, op.kernel[1], op.stride[1])?,
                op.output.c,
            )
        }
        OpKind::MaxPool2d | OpKind::AvgPool2d => {
            let kind = if op.kind == OpKind::MaxPool2d { PoolKind::Max } else { PoolKind::Avg };
            if op.fused_pool.is_some() {
                return Err("a pool op cannot have a fused pool".into());
            }
            pooled(op.input, &Pool { kind, size: op.kernel, stride: op.stride })?
        }
        OpKind::Dense => {
            if op.fused_pool.is_some() {
                return Err("a dense op cannot have a fused pool".into());
            }
            Shape::new(1, 1, op.output.c)
        }
        OpKind::Add => {
            if op.fused_pool.is_some() {
                return Err("an add cannot have a fused pool".into());
            }
            op.input
        }
    };
    if op.output != want {
        return Err(format!("output {} does not match the geometry, which gives {}", fmt(op.output), fmt(want)));
    }
    Ok(())
}

fn weights(op: &PlanOp, precision: Precision) -> Result<(), String> {
    let (count, channels) = match op.kind {
        OpKind::Conv2d => (op.output.c * op.kernel[0] * op.kernel[1] * op.input.c, op.output.c),
        OpKind::DepthwiseConv2d => (op.output.c * op.kernel[0] * op.kernel[1], op.output.c),
        OpKind::Dense => (op.output.c * op.input.len(), op.output.c),
        OpKind::MaxPool2d | OpKind::AvgPool2d | OpKind::Add => {
            if op.weights != Weights::None || op.bias != Bias::None {
                return Err(format!("a {} has no weights or bias", op.kind.name()));
            }
            return Ok(());
        }
    };
    let len = match (&op.weights, precision) {
        (Weights::F32(w), Precision::F32) => w.len(),
        (Weights::F16(w), Precision::F16) => w.len(),
        (Weights::I8(w), Precision::Int8) => w.len(),
        _ => return Err(format!("weights do not match the {} precision", precision.name())),
    };
    if len != count {
        return Err(format!("{len} weights, the geometry needs {count}"));
    }
    let blen = match (&op.bias, precision) {
        (Bias::F32(b), Precision::F32 | Precision::F16) => b.len(),
        (Bias::I32(b), Precision::Int8) => b.len(),
        _ => return Err(format!("bias does not match the {} precision", precision.name())),
    };
    if blen != channels {
        return Err(format!("{blen} biases for {channels} output channels"));
    }
    Ok(())
}

fn qparams(what: &str, q: QParams) -> Result<(), String> {
    if !(q.scale.is_normal() && q.scale > 0.0) {
        return Err(format!("{what} scale {} is not a positive normal number", q.scale));
    }
    if !(-128..=127).contains(&q.zero_point) {
        return Err(format!("{what} zero point {} is outside int8", q.zero_point));
    }
    Ok(())
}

fn quant(op: &PlanOp, q: &OpQuant) -> Result<(), String> {
    qparams("input", q.input)?;
    qparams("conv", q.conv)?;
    qparams("output", q.output)?;
    if !(-128..=127).contains(&q.act_min) || !(-128..=127).contains(&q.act_max) || q.act_min > q.act_max {
        return Err(format!("activation range [{}, {}] is not an int8 range", q.act_min, q.act_max));
    }
    let avg = |window: [usize; 2], x: QParams, y: QParams| -> Result<(), String> {
        let want = avg_pool_requant(window[0] * window[1], x.scale, y.scale).map_err(|e| e.to_string())?;
        if q.pool_requant != Some(want) {
            return Err(format!(
                "average pool requantization {:?} differs from the {want:?} that a depthwise QLinearConv \
                 with weight scale 1/{} computes",
                q.pool_requant,
                window[0] * window[1]
            ));
        }
        Ok(())
    };
    match op.kind {
        OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::Dense => {
            if q.weight_scales.len() != op.output.c {
                return Err(format!("{} weight scales for {} output channels", q.weight_scales.len(), op.output.c));
            }
            if let Some(s) = q.weight_scales.iter().find(|s| !(s.is_normal() && **s > 0.0)) {
                return Err(format!("weight scale {s} is not a positive normal number"));
            }
            let want = requant_spec(q.input.scale, &q.weight_scales, q.conv.scale).map_err(|e| e.to_string())?;
            if q.requant.as_ref() != Some(&want) {
                return Err(format!(
                    "requantization {:?} differs from the {want:?} that QLinearConv computes from the scales",
                    q.requant
                ));
            }
            match &op.fused_pool {
                Some(p) if p.kind == PoolKind::Avg => avg(p.size, q.conv, q.output)?,
                _ if op.residual => {
                    let r = q.input2.ok_or("a residual conv without its residual's quantization")?;
                    qparams("residual", r)?;
                    let ratio = q.conv.scale.max(r.scale) / q.output.scale;
                    if ratio > mnistc_runtime::format::MAX_ADD_SCALE_RATIO {
                        return Err(format!("an operand's scale is {ratio} times the output's (at most 65536)"));
                    }
                }
                _ => {
                    if q.output != q.conv {
                        return Err("output quantization differs from the conv's without an average pool".into());
                    }
                    if q.pool_requant.is_some() {
                        return Err("pool requantization without an average pool".into());
                    }
                }
            }
        }
        OpKind::Add => {
            let b = q.input2.ok_or("an add without its second operand's quantization")?;
            qparams("second operand", b)?;
            if q.requant.is_some() || q.pool_requant.is_some() || q.output != q.conv {
                return Err("an add has only its output quantization".into());
            }
            let ratio = q.input.scale.max(b.scale) / q.output.scale;
            if ratio > mnistc_runtime::format::MAX_ADD_SCALE_RATIO {
                return Err(format!("an operand's scale is {ratio} times the output's (at most 65536)"));
            }
        }
        OpKind::MaxPool2d | OpKind::AvgPool2d => {
            if q.requant.is_some() {
                return Err("a pool has no conv requantization".into());
            }
            if (q.act_min, q.act_max) != (-128, 127) {
                return Err("a pool's activation range must be the full int8 range".into());
            }
            if op.kind == OpKind::MaxPool2d {
                if q.output != q.input {
                    return Err("a max pool's output quantization must equal its input's".into());
                }
                if q.pool_requant.is_some() {
                    return Err("a max pool has no requantization".into());
                }
            } else {
                avg(op.kernel, q.input, q.output)?;
            }
        }
    }
    Ok(())
}
