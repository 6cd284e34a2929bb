//! Numeric parity between a blob on the mnistc runtime and its ONNX export on tract-onnx.
//!
//! [`check`] runs the same images through both:
//!
//! * runtime: [`Input::Pixels`] (int8 models take `pixel − 128` exactly, float models
//!   `pixel / 255`);
//! * tract: int8 models get the same int8 tensor at [`onnx::INPUT_Q_NAME`] (see [`crate::verify::tract`]
//!   for why the graph's own `QuantizeLinear` is bypassed); float models get `pixel / 255` as f32
//!   at [`onnx::INPUT_NAME`].
//!
//! int8 models must agree bit for bit: every int8 logit (and, with `per_layer`, every int8
//! activation of every op) is compared in quantization steps. Float models (F32, F16) must agree
//! within `|runtime − tract| ≤ 1e-5 + 1e-4·|tract|` on every value (summation order differs
//! between the two, so exact equality is not expected).

use mnistc_runtime::format::OpKind;
use mnistc_runtime::{Activations, Input, LoadError, Model, Precision, RunError, Shape};
use serde::Serialize;

use crate::export::onnx;
use crate::lower::emit::AlignedBytes;
use crate::verify::tract::{Feed, Output, TractError, TractModel, Values, nchw_to_nhwc, nhwc_to_nchw};

/// Absolute tolerance of float comparisons.
pub const FLOAT_ABS_TOLERANCE: f64 = 1e-5;
/// Relative tolerance of float comparisons (relative to tract's value).
pub const FLOAT_REL_TOLERANCE: f64 = 1e-4;

/// The outcome of [`check`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// Number of images compared.
    pub images: usize,
    /// Fraction of images (0..=1) whose top-1 class is the same on both sides.
    pub top1_agreement: f64,
    /// Largest difference of any logit, in logit units (dequantized for int8).
    pub max_abs_diff: f64,
    /// Largest difference of any int8 logit in quantization steps (0 for float models).
    pub max_lsb_diff: u32,
    /// Whether the two agree: top-1 agreement 1.0 and, for int8, `max_lsb_diff == 0`; for float,
    /// every logit within tolerance. With `per_layer`, every op's output must agree too.
    pub passed: bool,
    /// Per-op comparison (empty unless `per_layer`).
    pub layers: Vec<LayerReport>,
    /// The first op (in execution order) whose output disagrees (only with `per_layer`).
    pub first_divergence: Option<Divergence>,
}

/// The comparison of one op's output over all images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerReport {
    /// Op index in the plan.
    pub index: usize,
    /// Name of the op's output tensor in the ONNX graph (`op{i}`).
    pub name: String,
    /// Op kind (`conv2d`, `maxpool2d`, `avgpool2d`, `dense`).
    pub kind: &'static str,
    /// Values per image.
    pub elements: usize,
    /// Largest difference in real units (int8 values dequantized with the op's output scale).
    pub max_abs_diff: f64,
    /// Largest int8 difference in quantization steps (0 for float).
    pub max_lsb_diff: u32,
    /// Values that disagree (int8: differ; float: outside tolerance), summed over images.
    pub mismatches: usize,
    /// Whether every value agrees.
    pub passed: bool,
}

/// Where the two first disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// Op index in the plan.
    pub index: usize,
    /// Name of the op's output tensor in the ONNX graph.
    pub name: String,
    /// Op kind.
    pub kind: &'static str,
}

/// Why a check could not run (a disagreement is not an error: see [`CheckReport::passed`]).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The blob does not load.
    #[error("the blob does not load: {0}")]
    Blob(#[from] LoadError),
    /// tract could not load the ONNX model.
    #[error("tract: {0}")]
    Tract(#[from] TractError),
    /// No images were given.
    #[error("no images to check")]
    NoImages,
    /// The image bytes are not a whole number of images.
    #[error("{len} bytes of images is not a whole number of {per_image}-byte ({h}x{w}x{c}) images")]
    ImageBytes {
        /// Bytes given.
        len: usize,
        /// Bytes per image.
        per_image: usize,
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
        /// Input channels.
        c: usize,
    },
    /// The ONNX model and the blob describe different models.
    #[error("the ONNX model does not match the blob: {0}")]
    Mismatch(String),
    /// The runtime failed on an image.
    #[error("the runtime failed on image {image}: {source}")]
    Runtime {
        /// Image index.
        image: usize,
        /// The error.
        source: RunError,
    },
    /// The `.tflite` cannot be imported (`--tflite`).
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    /// The `.tflite` is not what the blob was imported from, or TFLite Micro cannot compare it.
    #[error("{0}")]
    NotComparable(String),
    /// TFLite Micro, run from Python (`--tflite`), failed.
    #[error("TFLite Micro (Python `{python}`): {what}")]
    Python {
        /// The Python interpreter.
        python: String,
        /// What went wrong, and how to fix it.
        what: String,
    },
    /// tract failed on an image.
    #[error("tract failed on image {image}: {source}")]
    TractRun {
        /// Image index.
        image: usize,
        /// The error.
        source: TractError,
    },
}

/// Runs `images` (`n · h · w · c` raw pixels, NHWC per image) through the runtime (`blob`) and
/// tract (`onnx`) and compares the logits and, with `per_layer`, every op's output.
///
/// # Errors
/// [`CheckError`] when either side cannot load or run, or the two models do not have the same
/// interface. Numeric disagreement is reported in [`CheckReport`], not as an error.
pub fn check(blob: &[u8], onnx: &[u8], images: &[u8], per_layer: bool) -> Result<CheckReport, CheckError> {
    let aligned = AlignedBytes::from(blob);
    let model = Model::from_bytes(aligned.as_bytes())?;
    let shape = model.input_shape();
    let per_image = shape.len();
    if images.is_empty() {
        return Err(CheckError::NoImages);
    }
    if per_image == 0 || !images.len().is_multiple_of(per_image) {
        return Err(CheckError::ImageBytes { len: images.len(), per_image, h: shape.h, w: shape.w, c: shape.c });
    }
    let int8 = model.precision() == Precision::Int8;
    let ops: Vec<_> = model.ops().collect();
    let last = ops.len().saturating_sub(1);

    // Outputs asked from tract: the logits, the last op's int8 output (int8), every op (per_layer).
    let mut names = vec![onnx::OUTPUT_NAME.to_string()];
    let layer_names: Vec<usize> = if per_layer {
        (0..ops.len()).collect()
    } else if int8 {
        vec![last]
    } else {
        vec![]
    };
    names.extend(layer_names.iter().map(|&i| onnx::op_output_name(i)));
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let feed = if int8 { Feed::Quantized } else { Feed::Float };
    let mut tract = TractModel::load(onnx, feed, &name_refs).map_err(|e| match e {
        TractError::UnknownTensor(name) if name == onnx::INPUT_Q_NAME => CheckError::Mismatch(format!(
            "the blob is int8 but the ONNX model has no quantized input `{name}` (a float model's export?)"
        )),
        TractError::UnknownTensor(name) => {
            CheckError::Mismatch(format!("the ONNX model has no tensor `{name}`; the blob has {} ops", ops.len()))
        }
        e => CheckError::Tract(e),
    })?;
    let want = [1, shape.c, shape.h, shape.w];
    if tract.input_shape() != want {
        return Err(CheckError::Mismatch(format!(
            "ONNX input is {:?}, the blob's input is {want:?} (NCHW)",
            tract.input_shape()
        )));
    }

    let shapes: Vec<Shape> = ops.iter().map(|op| op_shape(op.record)).collect();
    let mut layers: Vec<LayerReport> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| LayerReport {
            index: i,
            name: onnx::op_output_name(i),
            kind: OpKind::from_u8(op.record.kind).map_or("unknown", OpKind::name),
            elements: shapes[i].len(),
            max_abs_diff: 0.0,
            max_lsb_diff: 0,
            mismatches: 0,
            passed: true,
        })
        .collect();
    let mut logits = Cmp::default();
    let mut last_q = Cmp::default();
    let mut agree = 0usize;
    let mut arena = AlignedBytes::from(vec![0u8; model.arena_size()].as_slice());
    let n = images.len() / per_image;

    for (image, pixels) in images.chunks_exact(per_image).enumerate() {
        // Runtime, keeping every op's output when needed.
        let mut observed: Vec<Vec<f32>> = vec![Vec::new(); ops.len()];
        let mut observed_q: Vec<Vec<i8>> = vec![Vec::new(); ops.len()];
        let want_layer = |i: usize| per_layer || (int8 && i == last);
        let rt = model
            .run_observed(Input::Pixels(pixels), arena.as_bytes_mut(), |i, act| {
                if want_layer(i) {
                    match act {
                        Activations::I8 { values, .. } => observed_q[i] = values.to_vec(),
                        Activations::F32(values) => observed[i] = values.to_vec(),
                    }
                }
            })
            .map_err(|source| CheckError::Runtime { image, source })?;
        let rt_logits: Vec<f32> = (0..rt.len()).map(|i| rt.value(i)).collect();
        let rt_scale = match rt {
            Activations::I8 { scale, .. } => scale,
            Activations::F32(_) => 1.0,
        };

        // tract.
        let outs = if int8 {
            let q: Vec<i8> = pixels.iter().map(|&p| (p as i16 - 128) as i8).collect();
            tract.run_i8(&nhwc_to_nchw(&q, shape))
        } else {
            let x: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
            tract.run_f32(&nhwc_to_nchw(&x, shape))
        }
        .map_err(|source| CheckError::TractRun { image, source })?;
        let tr_logits = match outs.first() {
            Some(Output { values: Values::F32(v), .. }) => v,
            _ => return Err(CheckError::Mismatch("the ONNX logits are not float32".into())),
        };
        if tr_logits.len() != rt_logits.len() {
            return Err(CheckError::Mismatch(format!(
                "ONNX has {} logits, the blob {}",
                tr_logits.len(),
                rt_logits.len()
            )));
        }
        if argmax(&rt_logits) == argmax(tr_logits) {
            agree += 1;
        }
        logits.floats(&rt_logits, tr_logits, !int8);

        for (out, &i) in outs[1..].iter().zip(&layer_names) {
            let s = shapes[i];
            let tr = nhwc_values(out, s)?;
            let mut cmp = Cmp::default();
            match (&tr, int8) {
                (Values::I8(t), true) => {
                    let scale = ops[i].record.output_scale;
                    cmp.ints(&observed_q[i], t, scale);
                    if i == last {
                        last_q.ints(&observed_q[i], t, rt_scale);
                    }
                }
                (Values::F32(t), false) => cmp.floats(&observed[i], t, true),
                _ => {
                    return Err(CheckError::Mismatch(format!(
                        "tensor `{}` is not of the blob's activation type",
                        out.name
                    )));
                }
            }
            if per_layer {
                let l = &mut layers[i];
                l.max_abs_diff = l.max_abs_diff.max(cmp.max_abs);
                l.max_lsb_diff = l.max_lsb_diff.max(cmp.max_lsb);
                l.mismatches += cmp.mismatches;
                l.passed &= cmp.mismatches == 0;
            }
        }
    }

    let top1_agreement = agree as f64 / n as f64;
    let logits_ok = if int8 { last_q.mismatches == 0 } else { logits.mismatches == 0 };
    let first_divergence = if per_layer {
        layers.iter().find(|l| !l.passed).map(|l| Divergence { index: l.index, name: l.name.clone(), kind: l.kind })
    } else {
        None
    };
    Ok(CheckReport {
        images: n,
        top1_agreement,
        max_abs_diff: logits.max_abs,
        max_lsb_diff: last_q.max_lsb,
        passed: top1_agreement == 1.0 && logits_ok && first_divergence.is_none(),
        layers: if per_layer { layers } else { Vec::new() },
        first_divergence,
    })
}

/// Running maxima of one comparison.
#[derive(Debug, Default)]
pub(crate) struct Cmp {
    pub(crate) max_abs: f64,
    pub(crate) max_lsb: u32,
    pub(crate) mismatches: usize,
}

impl Cmp {
    /// Float values (`runtime`, `tract`); with `tolerance` a value outside it is a mismatch
    /// (without, only `max_abs` is tracked: int8 logits are judged on their integers).
    fn floats(&mut self, runtime: &[f32], tract: &[f32], tolerance: bool) {
        for (&r, &t) in runtime.iter().zip(tract) {
            let (r, t) = (r as f64, t as f64);
            let d = (r - t).abs();
            // NaN on either side is a difference, never a match.
            let d = if d.is_nan() { f64::INFINITY } else { d };
            self.max_abs = self.max_abs.max(d);
            // A NaN from tract makes the tolerance NaN and the comparison false: a mismatch.
            let within = d <= FLOAT_ABS_TOLERANCE + FLOAT_REL_TOLERANCE * t.abs();
            if tolerance && !within {
                self.mismatches += 1;
            }
        }
    }

    /// int8 values, exact; `scale` converts steps to real units.
    pub(crate) fn ints(&mut self, runtime: &[i8], tract: &[i8], scale: f32) {
        for (&r, &t) in runtime.iter().zip(tract) {
            let d = (r as i32 - t as i32).unsigned_abs();
            self.max_lsb = self.max_lsb.max(d);
            self.max_abs = self.max_abs.max(d as f64 * scale as f64);
            if d != 0 {
                self.mismatches += 1;
            }
        }
    }
}

/// Index of the largest value, the first on ties (as the runtime's `argmax`).
pub(crate) fn argmax<T: PartialOrd>(v: &[T]) -> usize {
    let mut best = 0;
    for i in 1..v.len() {
        if v[i] > v[best] {
            best = i;
        }
    }
    best
}

/// The output shape of an op record.
fn op_shape(r: &mnistc_runtime::format::OpRecord) -> Shape {
    Shape::new(r.out_h as usize, r.out_w as usize, r.out_c as usize)
}

/// tract's output for an op (NCHW `[1, C, H, W]`, or `[1, n]` after a float dense) in the
/// runtime's NHWC order.
fn nhwc_values(out: &Output, s: Shape) -> Result<Values, CheckError> {
    let ok = match out.shape.as_slice() {
        [1, c, h, w] => [*c, *h, *w] == [s.c, s.h, s.w],
        [1, n] => *n == s.len() && s.h * s.w == 1,
        _ => false,
    };
    if !ok || out.values.len() != s.len() {
        return Err(CheckError::Mismatch(format!(
            "tensor `{}` has shape {:?}, the blob's op output is {}x{}x{} (HWC)",
            out.name, out.shape, s.h, s.w, s.c
        )));
    }
    Ok(match &out.values {
        Values::F32(v) => Values::F32(nchw_to_nhwc(v, s)),
        Values::I8(v) => Values::I8(nchw_to_nhwc(v, s)),
    })
}
