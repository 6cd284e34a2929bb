//! Import: a model trained elsewhere (a full-integer `.tflite`) to a [`Plan`], which then takes
//! the same way to a blob as mnistc's own models ([`crate::lower::fuse`], [`crate::lower::emit`]).
//!
//! ```text
//!  MODEL.tflite ─▶ import::tflite (flatbuffer, TFLite's arithmetic) ─▶ lower::fuse ─▶ lower::emit ─▶ OUT.bin
//! ```
//!
//! An imported model keeps its own numbers: TFLite's int8 arithmetic ([`RequantSpec::Tflite`]:
//! Q31 multipliers and shifts computed as TFLite Micro computes them, TFLite's rounded average
//! pool), its input quantization and its output scale, so the blob's outputs equal TFLite Micro's
//! reference kernels bit for bit. Anything the runtime cannot run exactly is an error that names
//! the operator, never an approximation.
//!
//! [`RequantSpec::Tflite`]: crate::lower::plan::RequantSpec::Tflite

pub mod tflite;

use std::path::{Path, PathBuf};

use crate::data::Dataset;
use crate::lower::plan::Plan;

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
    #[error("{}: not a TFLite model (expected a .tflite flatbuffer with the TFL3 identifier)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is truncated or corrupt.
    #[error("{}: corrupt or truncated TFLite flatbuffer: {what}", path.display())]
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
    Err(ImportError::UnknownFormat { path: path.to_path_buf() })
}
