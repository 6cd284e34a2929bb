//! An ensemble's members as one plan: every member reads the model input, one after another,
//! and a chain of adds averages their logits.
//!
//! Each member's last op (its dense classifier, linear in its weights and bias) is scaled by
//! `1/N`, so the adds sum `logits_m / N`: the mean of the members' logits, in f32 exactly as
//! the members compute them (up to the f32 rounding of the scaled weights and of the sums). The
//! ops run member by member and each member's logits are added to the running sum as soon as
//! they exist (`m1, m2, add, m3, add, …`), so at any time the arena holds one member's
//! activations, the model input (read by every member's first op) and two small logit vectors:
//! the arena planner ([`super::arena`]) then reuses the same bytes for every member.
//!
//! Quantized to int8, an add is the runtime's int8 add (dequantize both operands, add in f32,
//! requantize to the sum's calibrated scale), the same arithmetic as ONNX's `DequantizeLinear →
//! Add → QuantizeLinear` that the ONNX export writes and tract checks. The alternative, summing
//! the members' int8 logits at one common scale, would need a wider accumulator than the int8
//! tensors the format passes between ops, or a common scale wide enough for `N` times the
//! logits' range; the running mean keeps the logits' own range, at the cost of one int8
//! rounding per member after the first.

use super::LowerError;
use super::plan::{Bias, OpKind, Plan, PlanOp, Weights};

/// One plan running `members` (float plans of the same input, classes and precision, each
/// ending with the op that writes its logits) and averaging their logits.
///
/// # Errors
/// [`LowerError::Ensemble`] when there are fewer than two members, when they disagree on the
/// input, the classes or the precision, or when a member's last op is not a float dense or conv
/// layer (whose weights and bias can carry the `1/N`).
pub fn ensemble(members: Vec<Plan>) -> Result<Plan, LowerError> {
    let n = members.len();
    let err = |what: String| LowerError::Ensemble(what);
    let (Some(first), true) = (members.first(), n >= 2) else {
        return Err(err(format!("an ensemble needs at least two members, found {n}")));
    };
    let mut plan = Plan { ops: Vec::new(), ..first.clone() };
    let scale = 1.0 / n as f32;
    let mut sum: Option<usize> = None;
    for (m, member) in members.into_iter().enumerate() {
        if member.input != plan.input || member.class_names != plan.class_names || member.precision != plan.precision {
            return Err(err(format!("member {} has another input, classes or precision than member 1", m + 1)));
        }
        let base = plan.ops.len();
        let count = member.ops.len();
        for (i, mut op) in member.ops.into_iter().enumerate() {
            // Tensor 0 is the model input, shared; tensor k + 1 of the member is op base + k's.
            for t in &mut op.inputs {
                if *t > 0 {
                    *t += base;
                }
            }
            if i + 1 == count {
                scale_output(&mut op, scale).map_err(|what| err(format!("member {}: {what}", m + 1)))?;
            }
            plan.ops.push(op);
        }
        let logits = plan.ops.len();
        let Some(last) = plan.ops.last() else {
            return Err(err(format!("member {} has no ops", m + 1)));
        };
        let shape = last.output;
        sum = Some(match sum {
            None => logits,
            Some(previous) => {
                plan.ops.push(add(previous, logits, shape));
                plan.ops.len()
            }
        });
    }
    Ok(plan)
}

/// Multiplies a float dense or conv op's weights and bias by `scale` (> 0, so a fused relu
/// commutes with it).
fn scale_output(op: &mut PlanOp, scale: f32) -> Result<(), String> {
    match (op.kind, &mut op.weights, &mut op.bias) {
        (OpKind::Dense | OpKind::Conv2d, Weights::F32(w), Bias::F32(b)) => {
            w.iter_mut().for_each(|w| *w *= scale);
            b.iter_mut().for_each(|b| *b *= scale);
            Ok(())
        }
        _ => Err(format!("the last op is a {} without float weights, not a float dense layer", op.kind.name())),
    }
}

/// The add of tensors `a` and `b` (of `shape`), without activation.
fn add(a: usize, b: usize, shape: super::plan::Shape) -> PlanOp {
    PlanOp { inputs: vec![a, b], ..PlanOp::bare(OpKind::Add, shape, shape) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::emit;
    use crate::lower::plan::{Activation, Precision, Shape};

    use mnistc_runtime::{Aligned, Input};

    /// A tiny float network: dense 4 → 3 on a 2×2×1 input, weights from `seed`.
    fn member(seed: u32) -> Plan {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 2001) as f32 / 1000.0 - 1.0
        };
        let input = Shape::new(2, 2, 1);
        let hidden = PlanOp {
            inputs: vec![0],
            activation: Activation::Relu,
            weights: Weights::F32((0..20).map(|_| next()).collect()),
            bias: Bias::F32((0..5).map(|_| next()).collect()),
            ..PlanOp::bare(OpKind::Dense, input, Shape::new(1, 1, 5))
        };
        let logits = PlanOp {
            inputs: vec![1],
            weights: Weights::F32((0..15).map(|_| next()).collect()),
            bias: Bias::F32((0..3).map(|_| next()).collect()),
            ..PlanOp::bare(OpKind::Dense, Shape::new(1, 1, 5), Shape::new(1, 1, 3))
        };
        Plan {
            name: "m".into(),
            dataset: "mnist".into(),
            class_names: vec!["a".into(), "b".into(), "c".into()],
            input,
            precision: Precision::F32,
            output_quant: None,
            input_quant: None,
            source_hash: [0; 32],
            ops: vec![hidden, logits],
        }
    }

    fn logits(plan: &Plan, pixels: &[u8]) -> Vec<f32> {
        let blob = emit::write(plan).expect("the plan writes");
        let model = blob.model();
        let mut arena = Aligned([0u8; 4096]);
        let mut out = vec![0.0; 3];
        model.run(Input::Pixels(pixels), &mut arena.0, &mut out).expect("runs");
        out
    }

    #[test]
    fn the_ensemble_computes_the_mean_of_its_members_logits() {
        for n in [2, 3, 5] {
            let members: Vec<Plan> = (0..n).map(|m| member(m as u32 + 7)).collect();
            let plan = ensemble(members.clone()).expect("members of one shape make an ensemble");
            assert_eq!(plan.ops.len(), 2 * n + n - 1);
            assert_eq!(plan.ops.iter().filter(|op| op.inputs.contains(&0)).count(), n, "every member reads the input");
            for pixels in [[0u8, 255, 17, 200], [255, 255, 0, 3], [128, 1, 99, 250]] {
                let got = logits(&plan, &pixels);
                let each: Vec<Vec<f32>> = members.iter().map(|m| logits(m, &pixels)).collect();
                for c in 0..3 {
                    let mean = each.iter().map(|l| l[c]).sum::<f32>() / n as f32;
                    assert!(
                        (got[c] - mean).abs() <= 1e-5 * (1.0 + mean.abs()),
                        "n={n} class {c}: {} vs {mean}",
                        got[c]
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_average() {
        assert!(matches!(ensemble(vec![member(1)]), Err(LowerError::Ensemble(_))));
        let mut other = member(2);
        other.class_names.pop();
        assert!(matches!(ensemble(vec![member(1), other]), Err(LowerError::Ensemble(_))));
    }
}
