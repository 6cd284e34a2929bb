//! Post-training int8 quantization of a float plan.
//!
//! - Weights: int8 symmetric per output channel (`[-127, 127]`, zero point 0), scale
//!   `max|w_c| / 127`; bias int32 at scale `s_in · s_w[c]`.
//! - Activations: int8 asymmetric per tensor over the calibrated range ([`calibrate`](fn@calibrate)). The input
//!   is fixed at scale 1/255, zero point −128. ReLU/ReLU6 outputs start at zero point −128, so
//!   the activation is exactly the int8 clamp (ReLU6 caps the range at 6).
//! - Max pools keep their input's scale; average pools too, and requantize their window sum by
//!   `f32(1/n)` the way the exported depthwise `QLinearConv` does.
//! - Requantization follows tract's two paths ([`scales::requant_spec`]).
//!
//! Quantization works on the unfused plan (one op per layer); [`crate::lower::fuse_pools`] then
//! merges conv→pool pairs without changing any number.

pub mod calibrate;
pub mod scales;

pub use calibrate::{CalibrationError, Range, calibrate};
pub use scales::{ScaleError, avg_pool_requant, avg_pool_weight_scale, combined_scale, requant_spec};

use crate::lower::plan::{Activation, Bias, OpKind, OpQuant, Plan, Precision, QParams, Weights};

/// Why a plan cannot be quantized.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The plan is not an unfused f32 plan with one range per op.
    #[error("quantize expects an unfused f32 plan with one calibrated range per op")]
    NotFloat,
    /// A scale combination is unusable.
    #[error("op {op}: {source}")]
    Scale {
        /// Op index.
        op: usize,
        /// The problem.
        source: ScaleError,
    },
}

/// The int8 input's quantization: scale 1/255, zero point −128 (`q = pixel − 128`).
pub const INPUT_QPARAMS: QParams = QParams { scale: 1.0 / 255.0, zero_point: -128 };

/// Asymmetric int8 parameters covering `range`.
pub fn qparams(range: Range) -> QParams {
    let (lo, hi) = (range.lo.min(0.0), range.hi.max(0.0));
    let scale = ((hi - lo) / 255.0).max(1e-8);
    let zero_point = (-128.0 - lo / scale).round_ties_even().clamp(-128.0, 127.0) as i32;
    QParams { scale, zero_point }
}

/// Output parameters of a conv/dense with `activation` whose float output spans `range`.
fn output_qparams(activation: Activation, range: Range) -> QParams {
    match activation {
        Activation::None => qparams(range),
        Activation::Relu => QParams { scale: (range.hi.max(1e-6)) / 255.0, zero_point: -128 },
        Activation::Relu6 => QParams { scale: range.hi.clamp(1e-6, 6.0) / 255.0, zero_point: -128 },
    }
}

/// `y` with its scale raised to at least `floor` (the range scaled up around zero); `y` itself
/// when its scale is already large enough.
fn widen(activation: Activation, y: QParams, range: Range, floor: f32) -> QParams {
    if y.scale >= floor {
        return y;
    }
    match activation {
        Activation::None => {
            let f = floor / y.scale;
            let mut wide = qparams(Range { lo: range.lo.min(0.0) * f, hi: range.hi.max(0.0) * f });
            wide.scale = wide.scale.max(floor);
            wide
        }
        Activation::Relu | Activation::Relu6 => QParams { scale: floor, zero_point: -128 },
    }
}

/// Quantizes the unfused f32 `plan` with one calibrated output range per op.
///
/// # Errors
/// [`QuantizeError`] for a plan of the wrong kind or unusable scales.
pub fn quantize(plan: &Plan, ranges: &[Range]) -> Result<Plan, QuantizeError> {
    if plan.precision != Precision::F32
        || ranges.len() != plan.ops.len()
        || plan.ops.iter().any(|o| o.fused_pool.is_some())
    {
        return Err(QuantizeError::NotFloat);
    }
    let mut out = plan.clone();
    // Per tensor (0: the input, k + 1: op k's output) its quantization.
    let mut tensors: Vec<QParams> = vec![INPUT_QPARAMS];
    for (i, (op, &range)) in out.ops.iter_mut().zip(ranges).enumerate() {
        let scale_err = |source| QuantizeError::Scale { op: i, source };
        let operand = |k: usize| op.inputs.get(k).and_then(|&t| tensors.get(t).copied());
        let x = operand(0).ok_or(QuantizeError::NotFloat)?;
        let q = match op.kind {
            OpKind::Add => {
                let b = operand(1).ok_or(QuantizeError::NotFloat)?;
                add_quant(op.activation, x, b, range)
            }
            OpKind::MaxPool2d => OpQuant::max_pool(x),
            OpKind::AvgPool2d => {
                let window = op.kernel[0] * op.kernel[1];
                OpQuant::avg_pool(x, x, avg_pool_requant(window, x.scale, x.scale).map_err(scale_err)?)
            }
            OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::Dense => {
                let (Weights::F32(w), Bias::F32(b)) = (&op.weights, &op.bias) else {
                    return Err(QuantizeError::NotFloat);
                };
                let channels = b.len();
                let per = w.len() / channels.max(1);
                let mut scales = Vec::with_capacity(channels);
                let mut wq = Vec::with_capacity(w.len());
                for row in w.chunks_exact(per.max(1)) {
                    let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let s = if max > 0.0 { max / 127.0 } else { 1.0 / 127.0 };
                    scales.push(s);
                    wq.extend(row.iter().map(|v| (v / s).round_ties_even().clamp(-127.0, 127.0) as i8));
                }
                // Keep |bias| + k·255·128 inside i32 (the runtime's accumulator bound).
                let limit = (i32::MAX as f64 - per as f64 * 255.0 * 128.0).max(0.0);
                let mut bq: Vec<i32> = b
                    .iter()
                    .zip(&scales)
                    .map(|(&v, &s)| (v as f64 / (x.scale as f64 * s as f64)).round().clamp(-limit, limit) as i32)
                    .collect();
                // The runtime accepts a conv/dense only if its worst-case accumulator, requantized,
                // stays below 2^30 (exact requantization, no saturation). A calibration range far
                // narrower than what the weights can produce (dead units, random weights) would
                // break that: widen the output scale to the smallest that keeps it, with a factor
                // 2 for the rounding of the multipliers. Trained models are far from this floor.
                let floor = bq
                    .iter()
                    .zip(&scales)
                    .map(|(&b, &s)| {
                        let bound = per as f64 * 255.0 * 128.0 + b.unsigned_abs() as f64;
                        2.0 * bound * x.scale as f64 * s as f64 / (1u64 << 30) as f64
                    })
                    .fold(0.0, f64::max) as f32;
                let y = widen(op.activation, output_qparams(op.activation, range), range, floor);
                // A channel whose weights are all but zero (a dead filter of a pretrained model:
                // |w| ~ 1e-30) would get a multiplier below the smallest the runtime represents
                // (2^-32). Raise its scale to the smallest usable one (and far enough for its bias
                // to fit); its weights then round to 0, as they nearly are. Changes nothing else.
                let s_min = 2f32.powi(-31) * y.scale / x.scale;
                for (c, row) in w.chunks_exact(per.max(1)).enumerate() {
                    if scales[c] >= s_min {
                        continue;
                    }
                    let s = s_min.max((b[c].abs() as f64 / (x.scale as f64 * limit.max(1.0))) as f32 * 1.001);
                    scales[c] = s;
                    for (q, v) in wq[c * per..(c + 1) * per].iter_mut().zip(row) {
                        *q = (v / s).round_ties_even().clamp(-127.0, 127.0) as i8;
                    }
                    bq[c] = (b[c] as f64 / (x.scale as f64 * s as f64)).round().clamp(-limit, limit) as i32;
                }
                // ReLU6 clamps at 6 through the int8 range unless a widened scale reaches past it.
                let act_max = match op.activation {
                    Activation::Relu6 => ((6.0 / y.scale).round() as i32 - 128).min(127),
                    _ => 127,
                };
                op.weights = Weights::I8(wq);
                op.bias = Bias::I32(bq);
                OpQuant {
                    input: x,
                    input2: None,
                    conv: y,
                    output: y,
                    requant: Some(requant_spec(x.scale, &scales, y.scale).map_err(scale_err)?),
                    weight_scales: scales,
                    act_min: -128,
                    act_max,
                    pool_requant: None,
                }
            }
        };
        tensors.push(q.output);
        op.quant = Some(q);
    }
    out.precision = Precision::Int8;
    out.output_quant = tensors.last().copied();
    Ok(out)
}

/// The parameters of an add of `a` and `b` whose float sum (after `activation`) spans `range`:
/// its own output scale and zero point (widened, if need be, to within
/// [`MAX_ADD_SCALE_RATIO`](mnistc_runtime::format::MAX_ADD_SCALE_RATIO) of
/// the operands'), and the activation as a clamp. A relu6 caps at `q(6)` computed as tract's
/// `QuantizeLinear` computes it: `round_half_even(6 · (1/s)) + zp`.
pub fn add_quant(activation: Activation, a: QParams, b: QParams, range: Range) -> OpQuant {
    let floor = a.scale.max(b.scale) / mnistc_runtime::format::MAX_ADD_SCALE_RATIO * 1.001;
    let y = widen(activation, output_qparams(activation, range), range, floor);
    let act_max = match activation {
        Activation::Relu6 => (((6.0f32 * y.scale.recip()).round_ties_even() as i32) + y.zero_point).clamp(-128, 127),
        _ => 127,
    };
    let act_min = if activation == Activation::None { -128 } else { y.zero_point.clamp(-128, 127) };
    OpQuant {
        input: a,
        input2: Some(b),
        conv: y,
        output: y,
        weight_scales: vec![],
        requant: None,
        act_min,
        act_max,
        pool_requant: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qparams_cover_the_range_and_zero() {
        let q = qparams(Range { lo: -1.0, hi: 3.0 });
        assert!((q.scale - 4.0 / 255.0).abs() < 1e-7);
        // real 0 maps to an integer: -128 + 1/scale*1.0 = -64.25 -> -64
        assert_eq!(q.zero_point, -64);
        let q = qparams(Range { lo: 0.5, hi: 2.0 });
        assert_eq!(q.zero_point, -128);
        let q = qparams(Range { lo: -2.0, hi: -1.0 });
        assert_eq!(q.zero_point, 127);
    }

    /// A pretrained model's dead filter (weights ~1e-30) gets a usable scale: weights 0, its bias
    /// kept, and the runtime accepts the blob.
    #[test]
    fn an_all_but_zero_channel_gets_a_usable_scale() {
        use crate::lower::plan::Shape;
        let input = Shape::new(1, 1, 4);
        let layer = crate::spec::Layer::Dense { units: 2, activation: crate::spec::Activation::None };
        let w = vec![0.5, -0.3, 0.2, 0.1, 1e-30, -2e-30, 0.0, 1e-31];
        let mut op = crate::lower::layer_op(&layer, input, w, vec![0.05, 0.1]).unwrap().unwrap();
        op.inputs = vec![0];
        let plan = Plan {
            name: "dead".into(),
            dataset: String::new(),
            class_names: vec!["a".into(), "b".into()],
            input,
            precision: Precision::F32,
            output_quant: None,
            input_quant: None,
            source_hash: [0; 32],
            ops: vec![op],
        };
        let q = quantize(&plan, &[Range { lo: -1.0, hi: 2.0 }]).expect("quantizes");
        let op = &q.ops[0];
        let (Weights::I8(wq), Bias::I32(bq), Some(oq)) = (&op.weights, &op.bias, &op.quant) else { panic!() };
        assert_eq!(&wq[4..], &[0, 0, 0, 0]);
        let bias = bq[1] as f64 * oq.input.scale as f64 * oq.weight_scales[1] as f64;
        assert!((bias - 0.1).abs() < 1e-6, "{bias}");
        crate::lower::emit::write(&q).expect("the runtime accepts it");
    }

    #[test]
    fn relu_outputs_start_at_the_lowest_int8() {
        let q = output_qparams(Activation::Relu, Range { lo: -3.0, hi: 5.1 });
        assert_eq!(q, QParams { scale: 5.1 / 255.0, zero_point: -128 });
        let q = output_qparams(Activation::Relu6, Range { lo: 0.0, hi: 9.0 });
        assert_eq!(q, QParams { scale: 6.0 / 255.0, zero_point: -128 });
    }
}
