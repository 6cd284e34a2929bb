//! Training with burn, float inference and checkpoints.
//!
//! - [`train`] builds a burn network from a [`ModelSpec`] (real `Conv2d`, `MaxPool2d`,
//!   `AvgPool2d`, `Linear`, `Dropout` modules, ReLU/ReLU6), trains it with burn's optimizers
//!   and returns a [`TrainedModel`] whose weights are plain `Vec<f32>` (no burn needed to read
//!   them).
//! - [`predict_logits`], [`evaluate`] and [`for_each_layer_output`] run the float model
//!   (batched, inference mode) on any [`Device`].
//! - [`Checkpoint`] saves and loads a trained model bit-exactly, with its spec, history and
//!   the data digests it was trained on.
//! - With [`TrainOptions::resume`], the state after every epoch is saved (`resume.rs`) and a
//!   later run continues from it.
//!
//! # Reproducibility
//! Every random choice is seeded from `train.seed`: burn's device RNG (initialization,
//! dropout masks; a resumed run replays the finished epochs' draws) and mnistc's own [`Rng`](crate::data::Rng) streams (subset, validation
//! split, shuffling, augmentation). On the CPU a run is bit-reproducible. burn's CPU backend
//! keeps its RNG in a process-wide global, so trainings in one process are serialized by a
//! lock (two concurrent trainings would otherwise interleave their random draws).

#[cfg(feature = "train")]
mod augment;
#[cfg(feature = "train")]
mod batch;
#[cfg(feature = "train")]
pub mod cache;
#[cfg(feature = "train")]
pub(crate) mod checkpoint;
#[cfg(feature = "train")]
mod device;
mod error;
#[cfg(feature = "train")]
mod framed;
#[cfg(feature = "train")]
pub mod malloc;
#[cfg(feature = "train")]
mod model;
#[cfg(feature = "train")]
mod optim;
#[cfg(feature = "train")]
mod pretrained;
pub mod profile;
#[cfg(feature = "train")]
mod progress;
#[cfg(feature = "train")]
mod resume;
#[cfg(feature = "train")]
mod run;
#[cfg(feature = "train")]
mod schedule;
#[cfg(feature = "train")]
pub mod svm_head;

use serde::{Deserialize, Serialize};

#[cfg(feature = "train")]
use crate::data::Images;
#[cfg(feature = "train")]
use crate::report::metrics::Evaluation;
use crate::spec::ModelSpec;

#[cfg(feature = "train")]
pub use checkpoint::{Checkpoint, CheckpointError, SavedFiles};
#[cfg(feature = "train")]
pub use device::{CUDA_ROOTS, Device, cuda_failure, libdevice};
pub use error::TrainError;

/// How to run a training.
#[cfg(feature = "train")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrainOptions<'a> {
    /// Where to train.
    pub device: Device,
    /// Show a progress bar per epoch (only when stderr is a terminal).
    pub progress: bool,
    /// Print one summary line per epoch on stderr.
    pub verbose: bool,
    /// Wait for the device at every phase boundary, so that each phase of
    /// [`EpochRecord::phases`] gets its own time on an asynchronous device (a GPU); the CPU
    /// backend is synchronous and needs no wait.
    pub profile: bool,
    /// Where to save the training's state after every epoch and continue from it: a run whose
    /// file exists resumes after the last finished epoch with the same results as an
    /// uninterrupted run, and the file is deleted when the run finishes. `None`: nothing saved.
    pub resume: Option<&'a std::path::Path>,
    /// Stop after this many epochs of this run, with the state saved in `resume` (which must
    /// be set), and return [`TrainError::Paused`]: for training in slices.
    pub pause_after: Option<usize>,
}

#[cfg(feature = "train")]
impl Default for TrainOptions<'_> {
    fn default() -> Self {
        TrainOptions {
            device: Device::Cpu,
            progress: false,
            verbose: false,
            profile: false,
            resume: None,
            pause_after: None,
        }
    }
}

/// Which kind of layer a [`TrainedLayer`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// Convolution.
    Conv2d,
    /// Depthwise convolution (`[channels, 1, kh, kw]`).
    DepthwiseConv2d,
    /// Fully connected.
    Dense,
    /// Batch normalization (folded into the layer before it at lowering).
    BatchNorm,
}

/// The float weights of one conv2d, dense or batchnorm layer, in burn's layouts.
///
/// - conv2d: `weight_shape = [out_channels, in_channels, kernel_h, kernel_w]`, row-major
///   (cross-correlation, no kernel flip, like PyTorch); depthwise conv2d: `[channels, 1,
///   kernel_h, kernel_w]` (burn's grouped convolution with one group per channel).
/// - dense: `weight_shape = [in_features, out_features]`, row-major, i.e. `y = x · W + b`
///   (the transpose of PyTorch's `[out, in]`). When the dense layer follows a feature map of
///   shape `(H, W, C)`, input feature `i = c·H·W + h·W + w` (burn's C,H,W flatten order).
/// - `bias` has `out` elements.
/// - batchnorm: `weight_shape = [4, channels]`, the rows γ (scale), β (shift), running mean and
///   running variance; no bias.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedLayer {
    /// Index into `ModelSpec::layers`.
    pub spec_index: usize,
    /// Layer kind.
    pub kind: LayerKind,
    /// Weights, row-major in `weight_shape`.
    pub weight: Vec<f32>,
    /// Weight shape (see the type's documentation).
    pub weight_shape: Vec<usize>,
    /// Biases.
    pub bias: Vec<f32>,
}

/// One epoch of training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (with dropout, augmentation and label
    /// smoothing, as optimized).
    pub train_loss: f64,
    /// Training accuracy over the epoch's batches (same conditions).
    pub train_accuracy: f64,
    /// Cross-entropy on the validation set after the epoch (inference mode).
    pub val_loss: Option<f64>,
    /// Accuracy on the validation set after the epoch.
    pub val_accuracy: Option<f64>,
    /// Learning rate at the epoch's first batch.
    pub learning_rate: f64,
    /// Wall time of the epoch including validation, in seconds.
    pub seconds: f64,
    /// Where that time went ([`profile::Phases`]; zero in checkpoints written before it was
    /// recorded).
    #[serde(default)]
    pub phases: profile::Phases,
}

/// What happened during a training run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Per-epoch records.
    pub epochs: Vec<EpochRecord>,
    /// Epoch (1-based) with the lowest validation loss, if there was validation.
    pub best_epoch: Option<usize>,
    /// Whether the returned weights are those of `best_epoch` (early stopping on).
    pub restored_best: bool,
    /// Whether training stopped before `train.epochs`.
    pub stopped_early: bool,
    /// Images trained on.
    pub train_images: usize,
    /// Images in the validation set.
    pub validation_images: usize,
    /// Device used.
    pub device: String,
    /// Total wall time in seconds.
    pub seconds: f64,
}

impl History {
    /// Mean wall time of an epoch, in seconds (0 without epochs).
    pub fn mean_epoch_seconds(&self) -> f64 {
        self.epochs.iter().map(|e| e.seconds).sum::<f64>() / self.epochs.len().max(1) as f64
    }

    /// The history as CSV (`epoch,train_loss,train_accuracy,val_loss,val_accuracy,
    /// learning_rate,seconds`; empty cells when there was no validation).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds\n");
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        for e in &self.epochs {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                e.epoch,
                e.train_loss,
                e.train_accuracy,
                opt(e.val_loss),
                opt(e.val_accuracy),
                e.learning_rate,
                e.seconds
            ));
        }
        out
    }
}

/// A trained float model: its spec, weights and training history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    /// The spec it was trained from (overrides applied).
    pub spec: ModelSpec,
    /// Weights of every conv2d/dense layer and parameters of every batchnorm, in layer order.
    pub layers: Vec<TrainedLayer>,
    /// Training history.
    pub history: History,
}

impl TrainedModel {
    /// An untrained model of `spec` with seeded He-uniform weights (bound `sqrt(6 / fan_in)`)
    /// and small biases: what tests and benchmarks lower, quantize and write exactly as a build
    /// does, without training. The same spec and seed give the same weights.
    ///
    /// # Errors
    /// [`TrainError::Spec`] if the spec's shapes are inconsistent.
    pub fn seeded(spec: &ModelSpec, seed: u64) -> Result<TrainedModel, TrainError> {
        let mut rng = crate::data::Rng::for_stream(seed, "seeded-weights");
        let mut layers = Vec::new();
        for s in spec.shapes()? {
            let Some((kind, weight_shape, out)) = expected_weights(&s) else { continue };
            let len: usize = weight_shape.iter().product();
            let (weight, bias) = if kind == LayerKind::BatchNorm {
                // γ, β, running mean and (positive) running variance of a plausible trained layer.
                let c = weight_shape[1];
                let ranges = [(0.5, 1.5), (-0.2, 0.2), (-0.3, 0.3), (0.3, 2.0)];
                let weight =
                    ranges.iter().flat_map(|&(lo, hi)| (0..c).map(|_| rng.uniform(lo, hi)).collect::<Vec<_>>());
                (weight.collect(), Vec::new())
            } else {
                let bound = (6.0 / (len / out).max(1) as f32).sqrt();
                let weight = (0..len).map(|_| rng.uniform(-bound, bound)).collect();
                (weight, (0..out).map(|_| rng.uniform(-0.1, 0.1)).collect())
            };
            layers.push(TrainedLayer { spec_index: s.index, kind, weight, weight_shape, bias });
        }
        Ok(TrainedModel { spec: spec.clone(), layers, history: History::default() })
    }

    /// The weights of spec layer `index`, if it has weights.
    pub fn layer(&self, spec_index: usize) -> Option<&TrainedLayer> {
        self.layers.iter().find(|l| l.spec_index == spec_index)
    }

    /// Checks that the weights have exactly the shapes the spec implies.
    ///
    /// # Errors
    /// [`TrainError::WeightsMismatch`] naming the first difference.
    pub fn validate(&self) -> Result<(), TrainError> {
        let shapes = self.spec.shapes()?;
        let mut layers = self.layers.iter();
        for s in &shapes {
            let Some((kind, shape, bias)) = expected_weights(s) else {
                continue;
            };
            let Some(l) = layers.next() else {
                return Err(TrainError::WeightsMismatch { detail: format!("no weights for layer {}", s.index) });
            };
            if l.spec_index != s.index
                || l.kind != kind
                || l.weight_shape != shape
                || l.weight.len() != shape.iter().product::<usize>()
                || l.bias.len() != bias
            {
                return Err(TrainError::WeightsMismatch {
                    detail: format!(
                        "layer {} should be {kind:?} {shape:?} + {bias} biases, found layer {} \
                         {:?} {:?} ({} values) + {} biases",
                        s.index,
                        l.spec_index,
                        l.kind,
                        l.weight_shape,
                        l.weight.len(),
                        l.bias.len()
                    ),
                });
            }
        }
        if let Some(extra) = layers.next() {
            return Err(TrainError::WeightsMismatch {
                detail: format!("unexpected weights for layer {}", extra.spec_index),
            });
        }
        Ok(())
    }
}

/// `(kind, weight shape, biases)` of the trained parameters of a layer (see [`TrainedLayer`]),
/// `None` for layers without any.
pub(crate) fn expected_weights(s: &crate::spec::LayerShape) -> Option<(LayerKind, Vec<usize>, usize)> {
    use crate::spec::Layer;
    match s.layer {
        Layer::Conv2d { filters, kernel, .. } => {
            Some((LayerKind::Conv2d, vec![filters, s.input.hwc().2, kernel[0], kernel[1]], filters))
        }
        Layer::DepthwiseConv2d { kernel, .. } => {
            let c = s.input.hwc().2;
            Some((LayerKind::DepthwiseConv2d, vec![c, 1, kernel[0], kernel[1]], c))
        }
        Layer::Dense { units, .. } => Some((LayerKind::Dense, vec![s.input.len(), units], units)),
        Layer::BatchNorm { .. } => Some((LayerKind::BatchNorm, vec![4, s.input.hwc().2], 0)),
        _ => None,
    }
}

/// Float logits, row-major `[n, classes]`.
#[cfg(feature = "train")]
#[derive(Clone, Debug, PartialEq)]
pub struct Logits {
    /// Number of classes (row length).
    pub classes: usize,
    /// `n * classes` values.
    pub values: Vec<f32>,
}

#[cfg(feature = "train")]
impl Logits {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.classes).unwrap_or(0)
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Logits of sample `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.classes..(i + 1) * self.classes]
    }

    /// Predicted class of every sample (first maximum on ties).
    pub fn predictions(&self) -> Vec<u8> {
        self.values.chunks_exact(self.classes.max(1)).map(|r| batch::argmax(r) as u8).collect()
    }
}

/// Trains `spec` on `train_set` (the full training split of the dataset; `[data]` decides the
/// limit and validation hold-out).
///
/// # Errors
/// [`TrainError`] if the images do not fit the model, the device is unavailable, or training
/// diverges.
#[cfg(feature = "train")]
pub fn train(spec: &ModelSpec, train_set: &Images, opts: &TrainOptions<'_>) -> Result<TrainedModel, TrainError> {
    opts.device.guard(|| run::run(spec, train_set, opts))
}

/// Float logits of `images` (inference mode, batches of 1000) on `device`.
///
/// # Errors
/// [`TrainError`] if the images do not fit the model or the device is unavailable.
#[cfg(feature = "train")]
pub fn predict_logits(model: &TrainedModel, images: &Images, device: Device) -> Result<Logits, TrainError> {
    run::check_images(&model.spec, images)?;
    let dev = device.burn_device()?;
    device.guard(|| {
        let net = model::Net::from_trained(&model.spec, &model.layers, &dev)?;
        Ok(Logits { classes: model.spec.input.classes, values: batch::logits(&net, images, &dev)? })
    })
}

/// Evaluates the float model on labelled images.
///
/// # Errors
/// As [`predict_logits`].
#[cfg(feature = "train")]
pub fn evaluate(model: &TrainedModel, images: &Images, device: Device) -> Result<Evaluation, TrainError> {
    let logits = predict_logits(model, images, device)?;
    Ok(Evaluation::from_predictions(&images.labels, &logits.predictions(), &model.spec.data.dataset.class_names())?)
}

/// Runs the float model on `images` in batches and calls `observe(layer_index, values,
/// batch_len)` after every layer with that layer's output for the batch, `batch_len` samples
/// of `values.len() / batch_len` values each (feature maps in C,H,W order, after the
/// activation). Meant for calibrating activation ranges.
///
/// # Errors
/// As [`predict_logits`].
#[cfg(feature = "train")]
pub fn for_each_layer_output(
    model: &TrainedModel,
    images: &Images,
    device: Device,
    mut observe: impl FnMut(usize, &[f32], usize),
) -> Result<(), TrainError> {
    run::check_images(&model.spec, images)?;
    let dev = device.burn_device()?;
    device.guard(|| {
        let net = model::Net::from_trained(&model.spec, &model.layers, &dev)?;
        let len = images.image_len();
        let mut start = 0;
        let mut failure = None;
        while start < images.n {
            let b = batch::INFER_BATCH.min(images.n - start);
            let x = batch::image_tensor(&images.pixels[start * len..(start + b) * len], b, images.shape(), &dev);
            net.forward_trace(x, |i, t| {
                if failure.is_some() {
                    return;
                }
                match batch::to_f32(t.clone()) {
                    Ok(v) => observe(i, &v, b),
                    Err(e) => failure = Some(e),
                }
            });
            if let Some(e) = failure {
                return Err(e);
            }
            start += b;
        }
        Ok(())
    })
}
