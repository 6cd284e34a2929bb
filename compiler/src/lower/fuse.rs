//! Fusion: a pool that directly follows a convolution is merged into it, so the full
//! convolution output never sits in RAM; in int8 plans, a residual add is merged into the
//! convolution right before it, which then writes the sum over the shortcut tensor in place.

use super::plan::{Activation, OpKind, OpQuant, Plan, PlanOp, Pool, PoolKind, Precision};

/// Every fusion, in order: [`fuse_pools`], then [`fuse_residual_adds`].
pub fn fuse(plan: Plan) -> Plan {
    fuse_traced(plan).0
}

/// [`fuse`], and for each fused op the index of the unfused op whose output it writes (the last
/// op merged into it: the pool of a conv + pool, the add of a conv + add).
pub fn fuse_traced(plan: Plan) -> (Plan, Vec<usize>) {
    let (plan, pools) = pools_traced(plan);
    let (plan, adds) = residual_adds_traced(plan);
    let origins = adds.into_iter().map(|i| pools[i]).collect();
    (plan, origins)
}

/// Merges each int8 add into the convolution that produces one of its operands, when that
/// convolution is the op right before the add, has no pool or activation of its own and no other
/// reader, and the add is the last reader of its other operand (the residual), which is not the
/// convolution's own input: the merged op writes the sum over the residual in place, so the
/// convolution's output never takes arena space (in a ResNet stack, one feature map less at the
/// peak). Numbers do not change: the runtime requantizes the convolution to its own scale and adds
/// exactly as the add op does. Float plans are returned as they are.
pub fn fuse_residual_adds(plan: Plan) -> Plan {
    residual_adds_traced(plan).0
}

/// [`fuse_residual_adds`] and, per fused op, the index of the op whose output it writes.
fn residual_adds_traced(mut plan: Plan) -> (Plan, Vec<usize>) {
    if plan.precision != Precision::Int8 {
        let identity = (0..plan.ops.len()).collect();
        return (plan, identity);
    }
    let mut origins: Vec<usize> = Vec::with_capacity(plan.ops.len());
    let readers = plan.reader_counts();
    let last_reader = plan.last_readers();
    let mut renumber: Vec<usize> = vec![0; plan.ops.len() + 1];
    let mut ops: Vec<PlanOp> = Vec::with_capacity(plan.ops.len());
    for (i, mut op) in plan.ops.drain(..).enumerate() {
        let old = op.inputs.clone();
        op.inputs = op.inputs.iter().map(|&t| renumber.get(t).copied().unwrap_or(t)).collect();
        // The convolution's tensor is `i` (op i − 1's output); the other operand the residual.
        let fusable = op.kind == OpKind::Add
            && old.len() == 2
            && readers[i] == 1
            && old.contains(&i)
            && ops.last().is_some_and(|conv| {
                let full_range = conv.quant.as_ref().is_some_and(|q| (q.act_min, q.act_max) == (-128, 127));
                let residual = if old[0] == i { old[1] } else { old[0] };
                conv.kind == OpKind::Conv2d
                    && conv.fused_pool.is_none()
                    && !conv.residual
                    && conv.activation == Activation::None
                    && full_range
                    && residual != i
                    && last_reader[residual] == Some(i)
                    && conv.inputs.first() != Some(&renumber[residual])
            });
        if let (true, Some(conv), Some(add_q)) = (fusable, ops.last_mut(), op.quant.as_ref()) {
            let k = usize::from(old[0] == i); // the residual's position among the add's operands
            let residual_q = if k == 0 { add_q.input } else { add_q.input2.unwrap_or(add_q.input) };
            if let Some(conv_q) = conv.quant.as_mut() {
                *conv_q = OpQuant {
                    input2: Some(residual_q),
                    output: add_q.output,
                    act_min: add_q.act_min,
                    act_max: add_q.act_max,
                    ..conv_q.clone()
                };
            }
            conv.residual = true;
            conv.activation = op.activation;
            conv.inputs.push(op.inputs[k]);
            renumber[i + 1] = ops.len();
            if let Some(last) = origins.last_mut() {
                *last = i;
            }
            continue;
        }
        ops.push(op);
        origins.push(i);
        renumber[i + 1] = ops.len();
    }
    plan.ops = ops;
    (plan, origins)
}

/// Merges every pool op that directly follows a convolution and is the only reader of its
/// output into that convolution (a conv output that a residual connection also reads stays a
/// tensor of its own), renumbering the tensors the later ops read.
///
/// Exact in every precision: the fused kernel computes the convolution's (requantized)
/// outputs and pools them as the two ops would. For int8 the merged op keeps the
/// convolution's output quantization as `conv` and takes the pool's output and average-pool
/// requantization.
pub fn fuse_pools(plan: Plan) -> Plan {
    pools_traced(plan).0
}

/// [`fuse_pools`] and, per fused op, the index of the op whose output it writes.
fn pools_traced(mut plan: Plan) -> (Plan, Vec<usize>) {
    let readers = plan.reader_counts();
    let mut origins: Vec<usize> = Vec::with_capacity(plan.ops.len());
    // Old tensor number -> new one (the model input stays 0).
    let mut renumber: Vec<usize> = vec![0; plan.ops.len() + 1];
    let mut ops: Vec<PlanOp> = Vec::with_capacity(plan.ops.len());
    for (i, mut op) in plan.ops.drain(..).enumerate() {
        let reads_previous_alone = op.inputs == [i] && i > 0 && readers[i] == 1;
        op.inputs = op.inputs.iter().map(|&t| renumber.get(t).copied().unwrap_or(t)).collect();
        let pool_kind = match op.kind {
            OpKind::MaxPool2d => Some(PoolKind::Max),
            OpKind::AvgPool2d => Some(PoolKind::Avg),
            _ => None,
        };
        match (pool_kind, ops.last_mut()) {
            (Some(kind), Some(conv))
                if reads_previous_alone && conv.kind == OpKind::Conv2d && conv.fused_pool.is_none() =>
            {
                conv.fused_pool = Some(Pool { kind, size: op.kernel, stride: op.stride });
                conv.output = op.output;
                if let (Some(cq), Some(pq)) = (conv.quant.as_mut(), op.quant) {
                    cq.output = pq.output;
                    cq.pool_requant = pq.pool_requant;
                }
                if let Some(last) = origins.last_mut() {
                    *last = i;
                }
            }
            _ => {
                ops.push(op);
                origins.push(i);
            }
        }
        renumber[i + 1] = ops.len();
    }
    plan.ops = ops;
    (plan, origins)
}
