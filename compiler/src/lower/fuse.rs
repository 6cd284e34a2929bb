//! Conv → pool fusion: a pool that directly follows a convolution is merged into it, so the
//! full convolution output never sits in RAM.

use super::plan::{OpKind, Plan, PlanOp, Pool, PoolKind};

/// Merges every pool op that directly follows a convolution and is the only reader of its
/// output into that convolution (a conv output that a residual connection also reads stays a
/// tensor of its own), renumbering the tensors the later ops read.
///
/// Exact in every precision: the fused kernel computes the convolution's (requantized)
/// outputs and pools them as the two ops would. For int8 the merged op keeps the
/// convolution's output quantization as `conv` and takes the pool's output and average-pool
/// requantization.
pub fn fuse_pools(mut plan: Plan) -> Plan {
    let readers = plan.reader_counts();
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
            }
            _ => ops.push(op),
        }
        renumber[i + 1] = ops.len();
    }
    plan.ops = ops;
    plan
}
