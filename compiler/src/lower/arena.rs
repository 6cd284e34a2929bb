//! The static arena plan: one offset per activation buffer, shared over non-overlapping lifetimes.
//!
//! TFLite Micro's greedy planner, done at compile time: buffers are placed largest first, each at
//! the lowest offset where it overlaps no already-placed buffer that is alive at the same time.
//! A buffer is alive from the op that writes it to the last op that reads it (inclusive), so an
//! op's input, output and scratch never share bytes, while buffers of ops far apart do.

use mnistc_runtime::kernels::params::ConvGeometry;

use super::plan::{OpKind, Plan, PlanOp, Precision};

/// A buffer to place: its size and the steps (op indices, inclusive) during which it is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Bytes.
    pub size: usize,
    /// First step it is alive.
    pub first: usize,
    /// Last step it is alive.
    pub last: usize,
}

impl Buffer {
    fn alive_with(&self, other: &Buffer) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// Where each buffer goes, and the arena size that holds them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArenaLayout {
    /// Offset of each buffer, in the order given.
    pub offsets: Vec<usize>,
    /// Bytes of arena needed.
    pub size: usize,
}

/// Places `buffers` first-fit, largest first, every offset a multiple of `align`.
pub fn place(buffers: &[Buffer], align: usize) -> ArenaLayout {
    let align = align.max(1);
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].size), buffers[i].first, i));
    let mut offsets = vec![0usize; buffers.len()];
    let mut placed: Vec<usize> = Vec::new();
    for i in order {
        let b = &buffers[i];
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].size > 0 && b.alive_with(&buffers[j]))
            .map(|&j| (offsets[j], offsets[j] + buffers[j].size))
            .collect();
        conflicts.sort_unstable();
        let mut candidate = 0;
        for (start, end) in conflicts {
            if candidate + b.size <= start {
                break;
            }
            candidate = candidate.max(end.div_ceil(align) * align);
        }
        offsets[i] = candidate;
        placed.push(i);
    }
    let size = buffers.iter().zip(&offsets).map(|(b, o)| o + b.size).max().unwrap_or(0);
    ArenaLayout { offsets, size }
}

/// Bytes of scratch reserved for `op` (the largest any kernel implementation needs).
pub fn scratch_bytes(op: &PlanOp, precision: Precision) -> usize {
    match (op.kind, precision) {
        (OpKind::Conv2d, Precision::Int8) => {
            let window = op.fused_pool.map_or(1, |p| p.size[0] * p.size[1]);
            mnistc_runtime::kernels::conv2d_s8_scratch_size(&conv_geometry(op), window)
        }
        (OpKind::Dense, Precision::Int8) => mnistc_runtime::kernels::dense_s8_scratch_size(op.input.len(), op.output.c),
        _ => 0,
    }
}

fn conv_geometry(op: &PlanOp) -> ConvGeometry {
    ConvGeometry {
        input: op.input,
        output: op.conv_output(),
        kernel_h: op.kernel[0],
        kernel_w: op.kernel[1],
        stride_h: op.stride[0],
        stride_w: op.stride[1],
        pad_top: op.pads[0],
        pad_left: op.pads[1],
    }
}

/// Where one op's buffers sit in the arena (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpPlacement {
    /// The (first) input.
    pub input: usize,
    /// An `add`'s second operand (0 for other ops).
    pub input2: usize,
    /// The output.
    pub output: usize,
    /// The scratch buffer.
    pub scratch: usize,
}

/// Arena placement of a plan: per op its buffers' offsets, and the total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArenaPlan {
    /// Per op, in order.
    pub ops: Vec<OpPlacement>,
    /// Arena bytes.
    pub size: usize,
}

/// Alignment of every arena buffer (bytes).
pub const ARENA_ALIGN: usize = 16;

/// Plans the arena of `plan`: the input and every op's output, live from the op that writes them
/// to the last op that reads them (a residual's input stays live across its branch), plus each
/// op's scratch. An op with a fused residual add writes over its residual: its output and the
/// residual are one buffer, live from the residual's writer to the output's last reader.
pub fn plan_arena(plan: &Plan) -> ArenaPlan {
    let elem = plan.precision.activation_size();
    let n = plan.ops.len();
    let last_reader: Vec<usize> = plan.last_readers().into_iter().map(|r| r.unwrap_or(0)).collect();
    // Tensor t lives in buffer `buffer_of[t]`.
    let mut buffer_of: Vec<usize> = Vec::with_capacity(n + 1);
    let mut buffers = vec![Buffer { size: plan.input.len() * elem, first: 0, last: last_reader[0] }];
    buffer_of.push(0);
    for (i, op) in plan.ops.iter().enumerate() {
        // The last op's output (the logits) is read by the caller, after the last step.
        let last = if i + 1 == n { i } else { last_reader[i + 1].max(i) };
        match op.inputs.get(1).filter(|_| op.residual).and_then(|&r| buffer_of.get(r).copied()) {
            Some(b) => {
                buffers[b].last = buffers[b].last.max(last);
                buffer_of.push(b);
            }
            None => {
                buffer_of.push(buffers.len());
                buffers.push(Buffer { size: op.output.len() * elem, first: i, last });
            }
        }
    }
    let first_scratch = buffers.len();
    for (i, op) in plan.ops.iter().enumerate() {
        buffers.push(Buffer { size: scratch_bytes(op, plan.precision), first: i, last: i });
    }
    let layout = place(&buffers, ARENA_ALIGN);
    let tensor = |t: Option<&usize>| {
        t.and_then(|&t| buffer_of.get(t)).and_then(|&b| layout.offsets.get(b).copied()).unwrap_or(0)
    };
    let ops = plan
        .ops
        .iter()
        .enumerate()
        .map(|(i, op)| OpPlacement {
            input: tensor(op.inputs.first()),
            input2: tensor(op.inputs.get(1)),
            output: tensor(Some(&(i + 1))),
            scratch: layout.offsets[first_scratch + i],
        })
        .collect();
    ArenaPlan { ops, size: layout.size.max(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_memory_of_dead_buffers() {
        // The reference CNN, fused: input 784, conv1+pool 5408, conv2+pool 1600, logits 10.
        let buffers = [
            Buffer { size: 784, first: 0, last: 0 },
            Buffer { size: 5408, first: 0, last: 1 },
            Buffer { size: 1600, first: 1, last: 2 },
            Buffer { size: 10, first: 2, last: 3 },
        ];
        let layout = place(&buffers, 16);
        assert_eq!(layout.offsets, vec![5408, 0, 5408, 0]);
        assert_eq!(layout.size, 7008);
    }

    #[test]
    fn never_overlaps_live_buffers() {
        // A pseudo-random mix of sizes and lifetimes.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let n = 1 + (next() % 12) as usize;
            let buffers: Vec<Buffer> = (0..n)
                .map(|_| {
                    let first = (next() % 8) as usize;
                    Buffer { size: 1 + (next() % 5000) as usize, first, last: first + (next() % 3) as usize }
                })
                .collect();
            let layout = place(&buffers, 4);
            for (i, a) in buffers.iter().enumerate() {
                assert_eq!(layout.offsets[i] % 4, 0);
                assert!(layout.offsets[i] + a.size <= layout.size);
                for (j, b) in buffers.iter().enumerate().skip(i + 1) {
                    if a.alive_with(b) {
                        let (oa, ob) = (layout.offsets[i], layout.offsets[j]);
                        assert!(oa + a.size <= ob || ob + b.size <= oa, "{a:?}@{oa} overlaps {b:?}@{ob}");
                    }
                }
            }
            // Never worse than giving every buffer its own bytes.
            assert!(layout.size <= buffers.iter().map(|b| b.size.div_ceil(4) * 4).sum::<usize>());
        }
    }
}
