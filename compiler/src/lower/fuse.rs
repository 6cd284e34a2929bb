//! Conv → pool fusion: a pool that directly follows a convolution is merged into it, so the
//! full convolution output never sits in RAM.

use super::plan::{OpKind, Plan, PlanOp, Pool, PoolKind};

/// Merges every pool op that directly follows a convolution into that convolution.
///
/// Exact in every precision: the fused kernel computes the convolution's (requantized)
/// outputs and pools them as the two ops would. For int8 the merged op keeps the
/// convolution's output quantization as `conv` and takes the pool's output and average-pool
/// requantization.
pub fn fuse_pools(mut plan: Plan) -> Plan {
    let mut ops: Vec<PlanOp> = Vec::with_capacity(plan.ops.len());
    for op in plan.ops.drain(..) {
        let pool_kind = match op.kind {
            OpKind::MaxPool2d => Some(PoolKind::Max),
            OpKind::AvgPool2d => Some(PoolKind::Avg),
            _ => None,
        };
        match (pool_kind, ops.last_mut()) {
            (Some(kind), Some(conv)) if conv.kind == OpKind::Conv2d && conv.fused_pool.is_none() => {
                conv.fused_pool = Some(Pool { kind, size: op.kernel, stride: op.stride });
                conv.output = op.output;
                if let (Some(cq), Some(pq)) = (conv.quant.as_mut(), op.quant) {
                    cq.output = pq.output;
                    cq.pool_requant = pq.pool_requant;
                }
            }
            _ => ops.push(op),
        }
    }
    plan.ops = ops;
    plan
}
