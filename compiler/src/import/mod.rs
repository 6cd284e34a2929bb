//! Import: a model trained elsewhere (a full-integer `.tflite`, a QDQ or float `.onnx`) to a
//! [`Plan`], which then takes the same way to a blob as mnistc's own models
//! ([`crate::lower::fuse`](mod@crate::lower::fuse), [`crate::lower::emit`]).
//!
//! ```text
//!  MODEL.tflite ─▶ import::tflite (flatbuffer, TFLite's arithmetic) ──────────────┐
//!  MODEL.onnx   ─▶ import::onnx (tract-onnx's protobuf) ─▶ int8 (QDQ) ────────────┤
//!                                                      └▶ float ─▶ quantize ──────┴▶ lower::fuse ─▶ lower::emit ─▶ OUT.bin
//! ```
//!
//! A float ONNX model is quantized by mnistc itself ([`quantize_float`]: calibration images from
//! the data set the user names, then [`crate::quantize`]), exactly as its own models are.
//!
//! An imported model keeps its own numbers: TFLite's int8 arithmetic ([`RequantSpec::Tflite`]:
//! Q31 multipliers and shifts computed as TFLite Micro computes them, TFLite's rounded average
//! pool), its input quantization and its output scale, so the blob's outputs equal TFLite Micro's
//! reference kernels bit for bit. Anything the runtime cannot run exactly is an error that names
//! the operator, never an approximation.
//!
//! [`RequantSpec::Tflite`]: crate::lower::plan::RequantSpec::Tflite

pub mod onnx;
pub mod tflite;

use std::path::{Path, PathBuf};

use crate::data::Dataset;
use crate::lower::plan::{Plan, Precision, Shape};
use crate::quantize;
use crate::spec::CalibrationMethod;

/// Why a model file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a model of a format mnistc reads (by its extension and first bytes).
    #[error("{}: not a TFLite or ONNX model (expected a .tflite flatbuffer with the TFL3 identifier, or a .onnx protobuf)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is truncated or corrupt.
    #[error("{}: corrupt or truncated model file: {what}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the flatbuffer verifier or a bounds check found.
        what: String,
    },
    /// A model-wide property mnistc cannot run (several subgraphs, a float input, …).
    #[error("{}: {what}", path.display())]
    Model {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what is supported.
        what: String,
    },
    /// One operator the runtime cannot run exactly.
    #[error("{}: operator {index} ({op}): {what}", path.display())]
    Operator {
        /// The file.
        path: PathBuf,
        /// The operator's index in the subgraph.
        index: usize,
        /// Its TFLite name (`CONV_2D`).
        op: String,
        /// What is wrong, and what is supported.
        what: String,
    },
}

/// What `mnistc import` was asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// The data set the model classifies (class names, `eval`); its input shape must match.
    pub dataset: Option<Dataset>,
}

/// Reads `path` and imports it by its format.
///
/// # Errors
/// [`ImportError`] naming the file and the problem.
pub fn import(path: &Path, options: ImportOptions) -> Result<Plan, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read { path: path.to_path_buf(), source })?;
    if tflite::is_tflite(&bytes) {
        return tflite::import(path, &bytes, options);
    }
    if onnx::is_onnx(path, &bytes) {
        return onnx::import(path, &bytes, options);
    }
    Err(ImportError::UnknownFormat { path: path.to_path_buf() })
}

/// Calibration of a float import: min/max over `images` (training images of the data set).
pub const CALIBRATION_METHOD: CalibrationMethod = CalibrationMethod::MinMax;

/// Quantizes the unfused float plan of an imported float model with mnistc's own quantizer
/// (per-channel int8 weights, calibrated activations, tract's arithmetic) over `images` (pixels,
/// `n · input` bytes); an int8 plan is returned as it is.
///
/// # Errors
/// [`ImportError::Model`] if calibration or quantization fails.
pub fn quantize_float(path: &Path, plan: Plan, images: &[u8]) -> Result<Plan, ImportError> {
    if plan.precision == Precision::Int8 {
        return Ok(plan);
    }
    let err = |what: String| ImportError::Model { path: path.to_path_buf(), what };
    let ranges = quantize::calibrate(&plan, images, CALIBRATION_METHOD).map_err(|e| err(e.to_string()))?;
    let mut q = quantize::quantize(&plan, &ranges).map_err(|e| err(e.to_string()))?;
    q.name = plan.name;
    Ok(q)
}

/// The class names of an imported model with `classes` outputs on `input`: the data set's,
/// which must match, or the class indices.
///
/// # Errors
/// [`ImportError::Model`] if there are more classes than a blob holds, or the data set's images
/// or classes do not match the model.
pub(crate) fn class_names(
    path: &Path,
    dataset: Option<Dataset>,
    input: Shape,
    classes: usize,
) -> Result<Vec<String>, ImportError> {
    let max = mnistc_runtime::format::MAX_CLASSES;
    if classes > max {
        let what = format!("{classes} outputs; a blob holds at most {max}");
        return Err(ImportError::Model { path: path.to_path_buf(), what });
    }
    let Some(d) = dataset else { return Ok((0..classes).map(|i| i.to_string()).collect()) };
    let (h, w, c, n) = d.image_shape_and_classes();
    if Shape::new(h, w, c) != input || n != classes {
        return Err(ImportError::Model {
            path: path.to_path_buf(),
            what: format!(
                "the model takes {}x{}x{} and gives {classes} classes; {} has {h}x{w}x{c} images in {n} classes",
                input.h,
                input.w,
                input.c,
                d.name()
            ),
        });
    }
    Ok(d.class_names())
}

/// An op of `kind` from `input` to `output` with nothing else set: the importers fill in what
/// their operator has ([`PlanOp::bare`](crate::lower::plan::PlanOp::bare)).
pub(crate) fn plan_op(kind: crate::lower::plan::OpKind, input: Shape, output: Shape) -> crate::lower::plan::PlanOp {
    crate::lower::plan::PlanOp::bare(kind, input, output)
}

/// `weights` reordered: element `i` of the result is `weights[idx[i]]` (every index in bounds:
/// the importers build `idx` from the weights' own shape).
pub(crate) fn permute(weights: crate::lower::plan::Weights, idx: &[usize]) -> crate::lower::plan::Weights {
    use crate::lower::plan::Weights;
    match weights {
        Weights::F32(w) => Weights::F32(idx.iter().map(|&i| w[i]).collect()),
        Weights::I8(w) => Weights::I8(idx.iter().map(|&i| w[i]).collect()),
        other => other,
    }
}

/// The blob's model name: the file's stem.
pub(crate) fn model_name(path: &Path) -> String {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or("imported").to_string()
}

/// SHA-256 of the model file (the blob's source hash).
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
