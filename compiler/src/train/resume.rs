//! Resumable training: everything a run needs to go on after a finished epoch, saved after every
//! epoch, so that running the same command again continues from the last finished epoch and
//! ends with the same bytes as an uninterrupted run.
//!
//! What a run carries from one epoch to the next, and so what the file holds: the network
//! (parameters, batchnorm running statistics and the parameter ids the optimizer state is keyed
//! by, as burn's module record), the optimizer state (Adam moments and step counts, as burn's
//! optimizer record), the learning-rate scheduler, mnistc's shuffling and augmentation
//! generators and the current image order, the early-stopping bookkeeping (best loss, its epoch
//! and weights) and the history so far. burn's device RNG (dropout masks) cannot be saved (the
//! CPU backend keeps it private): a resumed run seeds it as the first run did, builds the network
//! (the same initial draws), then draws and drops the masks of the finished epochs, so that it
//! continues the stream where the interrupted run left it. Uninterrupted runs draw exactly as
//! they did before resuming existed. (On a GPU the masks come from the device's own generator,
//! which this replay does not reproduce: a resumed CUDA run continues, but not bit for bit.)
//!
//! # File layout (format version 1, all integers little-endian)
//! | bytes | content |
//! |---|---|
//! | 8 | magic `MNISTCRS` |
//! | 4 | `u32` format version (1) |
//! | 8 | `u64` length `H` of the header |
//! | `H` | header, UTF-8 JSON (see `Header`) |
//! | … | the image order (`u32` each), the network's burnpack record, the optimizer's burnpack record, the best epoch's weights as a checkpoint file (or nothing), with the lengths the header gives |
//! | 32 | SHA-256 of everything before |
//!
//! The file is written atomically (a reader never sees half of one) and deleted when the run
//! finishes. Its name comes from the training cache key, so a changed spec or data set never
//! resumes from it; the header repeats the training key as a second check.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, CheckpointError, write_atomic};
use super::schedule::SchedulerState;
use super::{History, TrainedLayer, TrainedModel, framed};
use crate::spec::ModelSpec;

const MAGIC: &[u8; 8] = b"MNISTCRS";
const VERSION: u32 = 1;

/// The lowest validation loss so far, for early stopping.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Best {
    /// The loss.
    pub loss: f64,
    /// Its epoch (1-based).
    pub epoch: usize,
    /// The weights after that epoch, kept only when early stopping may restore them.
    pub layers: Option<Vec<TrainedLayer>>,
}

/// The state of a training after a finished epoch.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ResumeState {
    /// [`ModelSpec::training_key_json`] of the spec being trained.
    pub training_key: String,
    /// Images in the training split (a check that the data are the same).
    pub train_images: usize,
    /// Epochs finished.
    pub epochs_done: usize,
    /// The history so far (`seconds`: the wall time of the runs so far).
    pub history: History,
    /// The learning-rate scheduler.
    pub scheduler: SchedulerState,
    /// The shuffling generator.
    pub shuffle_rng: [u64; 4],
    /// The augmentation generator.
    pub augment_rng: [u64; 4],
    /// The image order after the last shuffle (each epoch shuffles the previous order).
    pub order: Vec<usize>,
    /// Early stopping: the best epoch so far.
    pub best: Option<Best>,
    /// Early stopping: epochs since the best one.
    pub since_best: usize,
    /// burn's record of the network (burnpack bytes).
    pub net: Vec<u8>,
    /// burn's record of the optimizer (burnpack bytes).
    pub optimizer: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    created_by: String,
    training_key: String,
    train_images: usize,
    epochs_done: usize,
    history: History,
    scheduler: SchedulerState,
    shuffle_rng: [u64; 4],
    augment_rng: [u64; 4],
    best_loss: Option<f64>,
    best_epoch: Option<usize>,
    since_best: usize,
    order_len: usize,
    net_len: usize,
    optimizer_len: usize,
    best_weights_len: usize,
}

impl ResumeState {
    /// The file's bytes. `spec` is the spec being trained (the best weights are stored as a
    /// checkpoint of it).
    pub fn to_bytes(&self, spec: &ModelSpec) -> Vec<u8> {
        let best_weights = self
            .best
            .as_ref()
            .and_then(|b| b.layers.clone())
            .map(|layers| {
                let model = TrainedModel { spec: spec.clone(), layers, history: History::default() };
                Checkpoint::new(model, Vec::new(), None).to_bytes()
            })
            .unwrap_or_default();
        let header = Header {
            created_by: format!("mnistc {}", env!("CARGO_PKG_VERSION")),
            training_key: self.training_key.clone(),
            train_images: self.train_images,
            epochs_done: self.epochs_done,
            history: self.history.clone(),
            scheduler: self.scheduler.clone(),
            shuffle_rng: self.shuffle_rng,
            augment_rng: self.augment_rng,
            best_loss: self.best.as_ref().map(|b| b.loss),
            best_epoch: self.best.as_ref().map(|b| b.epoch),
            since_best: self.since_best,
            order_len: self.order.len(),
            net_len: self.net.len(),
            optimizer_len: self.optimizer.len(),
            best_weights_len: best_weights.len(),
        };
        // Plain data structures always serialize.
        let json = serde_json::to_vec(&header).unwrap_or_default();
        framed::frame(MAGIC, VERSION, &json, |out| {
            for &i in &self.order {
                out.extend_from_slice(&(i as u32).to_le_bytes());
            }
            out.extend_from_slice(&self.net);
            out.extend_from_slice(&self.optimizer);
            out.extend_from_slice(&best_weights);
        })
    }

    /// Parses a file's bytes (`path` only names the source in errors).
    ///
    /// # Errors
    /// [`CheckpointError::Format`] for anything malformed.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<ResumeState, CheckpointError> {
        let bad = |problem: String| CheckpointError::Format { path: path.to_path_buf(), problem };
        let (header, mut data) = framed::unframe(bytes, MAGIC, VERSION, "a saved training state", path)?;
        let h: Header = serde_json::from_slice(header).map_err(|e| bad(format!("bad header: {e}")))?;
        let mut take = |len: Option<usize>, what: &str| -> Result<&[u8], CheckpointError> {
            let n = len
                .filter(|&n| n <= data.len())
                .ok_or_else(|| bad(format!("{what} is shorter than the header says")))?;
            let (head, rest) = data.split_at(n);
            data = rest;
            Ok(head)
        };
        let order = take(h.order_len.checked_mul(4), "the image order")?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .collect::<Vec<_>>();
        let net = take(Some(h.net_len), "the network record")?.to_vec();
        let optimizer = take(Some(h.optimizer_len), "the optimizer record")?.to_vec();
        let best_weights = take(Some(h.best_weights_len), "the best weights")?;
        let layers =
            if best_weights.is_empty() { None } else { Some(Checkpoint::from_bytes(best_weights, path)?.model.layers) };
        if !data.is_empty() {
            return Err(bad(format!("{} unexpected bytes at the end", data.len())));
        }
        let mut sorted = order.clone();
        sorted.sort_unstable();
        if sorted.iter().enumerate().any(|(i, &v)| i != v) || order.len() != h.train_images {
            return Err(bad("the image order is not a permutation of the training images".into()));
        }
        let best = match (h.best_loss, h.best_epoch) {
            (Some(loss), Some(epoch)) => Some(Best { loss, epoch, layers }),
            _ => None,
        };
        Ok(ResumeState {
            training_key: h.training_key,
            train_images: h.train_images,
            epochs_done: h.epochs_done,
            history: h.history,
            scheduler: h.scheduler,
            shuffle_rng: h.shuffle_rng,
            augment_rng: h.augment_rng,
            order,
            best,
            since_best: h.since_best,
            net,
            optimizer,
        })
    }

    /// Reads the state saved at `path` for a training of `spec` on `train_images` images: `Ok(None)`
    /// when there is no file, an error when there is one that cannot be used.
    ///
    /// # Errors
    /// [`CheckpointError`] if the file cannot be read, is malformed, or belongs to another
    /// training.
    pub fn load(path: &Path, spec: &ModelSpec, train_images: usize) -> Result<Option<ResumeState>, CheckpointError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { path: path.to_path_buf(), source }),
        };
        let state = ResumeState::from_bytes(&bytes, path)?;
        if state.training_key != spec.training_key_json() || state.train_images != train_images {
            return Err(CheckpointError::Format {
                path: path.to_path_buf(),
                problem: "saved by a training of another spec or data set".into(),
            });
        }
        Ok(Some(state))
    }

    /// Writes the state to `path` atomically.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] if the file cannot be written.
    pub fn save(&self, path: &Path, spec: &ModelSpec) -> Result<(), CheckpointError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io { path: dir.to_path_buf(), source })?;
        }
        write_atomic(path, &self.to_bytes(spec))
    }
}
