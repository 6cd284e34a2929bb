//! Checkpoint files: a trained model saved bit-exactly, with everything needed to decide
//! whether it can be reused.
//!
//! # File layout (format version 1, all integers little-endian)
//! | bytes | content |
//! |---|---|
//! | 8 | magic `MNISTCKP` |
//! | 4 | `u32` format version (1) |
//! | 8 | `u64` length `H` of the header |
//! | `H` | header, UTF-8 JSON: `created_by`, `spec` (the resolved [`ModelSpec`]), `training_key` ([`ModelSpec::training_key_json`]), `data_digests`, `history`, `test` (float test evaluation or null), `layers` (`spec_index`, `kind`, `weight_shape`, `bias_len` per weighted layer) |
//! | … | for each layer in order: its weights then its biases, as `f32` |
//! | 32 | SHA-256 of everything before |
//!
//! Next to `CKPT`, [`Checkpoint::save`] writes `CKPT.history.json`, `CKPT.history.csv` (one
//! row per epoch, for plotting) and `CKPT.spec.json`. Every file is written to a temporary
//! file in the same directory and renamed into place, so a reader never sees a partial file.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{History, LayerKind, TrainedLayer, TrainedModel, framed};
use crate::data::FileDigest;
use crate::report::metrics::Evaluation;
use crate::spec::ModelSpec;

pub(crate) const MAGIC: &[u8; 8] = b"MNISTCKP";
const VERSION: u32 = 1;

/// An error while saving or loading a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid checkpoint.
    #[error("{}: not a valid mnistc checkpoint: {problem}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// A saved training: the model, where it came from and how well it did.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The trained model (spec, weights, history).
    pub model: TrainedModel,
    /// [`ModelSpec::training_key_json`] of the spec it was trained from.
    pub training_key: String,
    /// Digests of the dataset files it was trained on.
    pub data_digests: Vec<FileDigest>,
    /// Float evaluation on the test set, if done.
    pub test: Option<Evaluation>,
    /// `mnistc <version>` that wrote it.
    pub created_by: String,
}

/// The files written by [`Checkpoint::save`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedFiles {
    /// The checkpoint itself.
    pub checkpoint: PathBuf,
    /// Per-epoch history as JSON.
    pub history_json: PathBuf,
    /// Per-epoch history as CSV.
    pub history_csv: PathBuf,
    /// The resolved spec as JSON.
    pub spec_json: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct LayerHeader {
    spec_index: usize,
    kind: LayerKind,
    weight_shape: Vec<usize>,
    bias_len: usize,
}

#[derive(Serialize, Deserialize)]
struct Header {
    created_by: String,
    spec: ModelSpec,
    training_key: String,
    data_digests: Vec<FileDigest>,
    history: History,
    test: Option<Evaluation>,
    layers: Vec<LayerHeader>,
}

/// `path` with `suffix` appended to its file name (`d.ckpt` → `d.ckpt.history.csv`).
pub(crate) fn side_path(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// [`crate::atomic::write`], with the path in the error.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    crate::atomic::write(path, bytes).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })
}

impl Checkpoint {
    /// A checkpoint for a freshly trained model.
    pub fn new(model: TrainedModel, data_digests: Vec<FileDigest>, test: Option<Evaluation>) -> Self {
        Checkpoint {
            training_key: model.spec.training_key_json(),
            model,
            data_digests,
            test,
            created_by: format!("mnistc {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Whether this checkpoint was trained from the same training-relevant spec and the same
    /// data files, i.e. can be reused instead of training again.
    pub fn is_reusable_for(&self, spec: &ModelSpec, data_digests: &[FileDigest]) -> bool {
        self.training_key == spec.training_key_json() && self.data_digests == data_digests
    }

    /// The checkpoint's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            created_by: self.created_by.clone(),
            spec: self.model.spec.clone(),
            training_key: self.training_key.clone(),
            data_digests: self.data_digests.clone(),
            history: self.model.history.clone(),
            test: self.test.clone(),
            layers: self
                .model
                .layers
                .iter()
                .map(|l| LayerHeader {
                    spec_index: l.spec_index,
                    kind: l.kind,
                    weight_shape: l.weight_shape.clone(),
                    bias_len: l.bias.len(),
                })
                .collect(),
        };
        // Plain data structures always serialize.
        let json = serde_json::to_vec(&header).unwrap_or_default();
        framed::frame(MAGIC, VERSION, &json, |out| {
            for l in &self.model.layers {
                for v in l.weight.iter().chain(&l.bias) {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        })
    }

    /// Parses checkpoint bytes (`path` only names the source in errors).
    ///
    /// # Errors
    /// [`CheckpointError::Format`] for anything malformed (bad magic, version, checksum,
    /// header, sizes, or weights that do not fit the spec).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bad = |problem: String| CheckpointError::Format { path: path.to_path_buf(), problem };
        let (header, mut data) = framed::unframe(bytes, MAGIC, VERSION, "a checkpoint file", path)?;
        let header: Header = serde_json::from_slice(header).map_err(|e| bad(format!("bad header: {e}")))?;
        let mut take = |count: usize| -> Result<Vec<f32>, CheckpointError> {
            let n = count
                .checked_mul(4)
                .filter(|&n| n <= data.len())
                .ok_or_else(|| bad("weight data is shorter than the header says".into()))?;
            let (head, rest) = data.split_at(n);
            data = rest;
            Ok(head.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let mut layers = Vec::with_capacity(header.layers.len());
        for l in &header.layers {
            let count = l
                .weight_shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| bad("weight shape overflows".into()))?;
            let weight = take(count)?;
            let bias = take(l.bias_len)?;
            layers.push(TrainedLayer {
                spec_index: l.spec_index,
                kind: l.kind,
                weight,
                weight_shape: l.weight_shape.clone(),
                bias,
            });
        }
        if !data.is_empty() {
            return Err(bad(format!("{} unexpected bytes after the weights", data.len())));
        }
        let model = TrainedModel { spec: header.spec, layers, history: header.history };
        model.validate().map_err(|e| bad(e.to_string()))?;
        Ok(Checkpoint {
            model,
            training_key: header.training_key,
            data_digests: header.data_digests,
            test: header.test,
            created_by: header.created_by,
        })
    }

    /// Reads a checkpoint file.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] if it cannot be read, else as [`Checkpoint::from_bytes`].
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = fs::read(path).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })?;
        Checkpoint::from_bytes(&bytes, path)
    }

    /// The side files written next to `path`.
    pub fn side_files(path: &Path) -> SavedFiles {
        SavedFiles {
            checkpoint: path.to_path_buf(),
            history_json: side_path(path, ".history.json"),
            history_csv: side_path(path, ".history.csv"),
            spec_json: side_path(path, ".spec.json"),
        }
    }

    /// Writes the checkpoint to `path` and the history (JSON and CSV) and spec (JSON) next to
    /// it, each atomically.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] naming the file that could not be written.
    pub fn save(&self, path: &Path) -> Result<SavedFiles, CheckpointError> {
        let files = Checkpoint::side_files(path);
        let history = serde_json::to_vec_pretty(&self.model.history).unwrap_or_default();
        let spec = serde_json::to_vec_pretty(&self.model.spec).unwrap_or_default();
        write_atomic(&files.history_json, &history)?;
        write_atomic(&files.history_csv, self.model.history.to_csv().as_bytes())?;
        write_atomic(&files.spec_json, &spec)?;
        write_atomic(path, &self.to_bytes())?;
        Ok(files)
    }
}
