//! The model description (`model.toml`): parsing, validation, shape inference, overrides and a
//! canonical serialization for cache keys.
//!
//! [`ModelSpec::parse`] / [`ModelSpec::from_path`] return a fully resolved and validated
//! description: defaults are filled in, every layer fits its input, the last layer is a dense
//! layer with `input.classes` units, and the input matches the dataset. Every key is documented
//! in `models/README.md`.
//!
//! This module does not train or touch data files; see [`crate::train`] and [`crate::data`].

mod error;
mod parse;
pub(crate) mod reader;
mod shape;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::data::Dataset;
pub use error::{InvalidKind, SpecError};
pub use shape::{LayerShape, TensorShape};

/// A parsed and validated model description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Model name (`name = ...`, default: the file stem).
    pub name: String,
    /// Where the description came from (file path or `<string>`); used in messages.
    pub origin: String,
    /// Input image and class count.
    pub input: InputSpec,
    /// Layers in order. A dense layer whose input is still spatial flattens it implicitly
    /// (channel-major, i.e. C,H,W order, like burn's `flatten(1, 3)`); no layer is inserted.
    pub layers: Vec<LayerSpec>,
    /// Dataset and how much of it to use.
    pub data: DataSpec,
    /// Training hyper-parameters.
    pub train: TrainSpec,
    /// Post-training quantization settings (used by `build`).
    pub quantize: QuantizeSpec,
    /// Optional deployment budgets.
    pub target: TargetSpec,
    /// `[init]`: pretrained weights to start from (transfer learning); `None`: a fresh start.
    #[serde(default)]
    pub init: Option<InitSpec>,
    /// `[ensemble]`: train several networks of this architecture and deploy them as one blob
    /// that averages their logits; `None`: one network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleSpec>,
    /// `[head]`: what turns the last hidden layer's features into class scores on the device.
    #[serde(default, skip_serializing_if = "HeadSpec::is_softmax")]
    pub head: HeadSpec,
    /// Non-fatal remarks about the description (e.g. a key that has no effect with the chosen
    /// optimizer). The CLI prints them on stderr.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `[input]`: the shape of one input image and the number of classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Channels (1 for MNIST and Fashion-MNIST).
    pub channels: usize,
    /// Number of classes (logits of the last layer).
    pub classes: usize,
}

/// `[init]`: start from the weights of a model trained elsewhere or earlier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitSpec {
    /// A `.tflite`, an `.onnx` or an mnistc checkpoint; a relative `from` is resolved against the
    /// model file's folder.
    pub from: PathBuf,
    /// How many of the model's layers with parameters (conv2d, depthwise_conv2d, dense,
    /// batchnorm), first to last, take the file's (by position; kind and shape must match);
    /// `None`: as many as the file has.
    pub layers: Option<usize>,
    /// 1-based line of `from` (0 when unknown).
    pub line: usize,
}

/// `[ensemble]`: the members' trainings. Every member has the model's layers and data; they
/// differ in their `[train]` (at least in the seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnsembleSpec {
    /// Each member's training, resolved; the first is the model's own `[train]`, so an
    /// ensemble's first member is the single network the same file describes without
    /// `[ensemble]` (and shares its cached training). At least 2, at most [`MAX_MEMBERS`].
    pub members: Vec<TrainSpec>,
}

impl TrainSpec {
    /// The training of ensemble member `i` (from 0) that no `[[ensemble.member]]` changes: this
    /// one with `seed + i`.
    pub fn member(&self, i: usize) -> TrainSpec {
        TrainSpec { seed: self.seed.wrapping_add(i as u64), ..*self }
    }
}

/// `[head]`: the deployed classifier on the features of the network's last hidden layer (the
/// input of its last dense layer). Not part of the training key: the network trains the same
/// with either head, and an SVM head is fitted after training on the trained network's features.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HeadSpec {
    /// The network's own last dense layer, trained with the softmax cross-entropy loss.
    #[default]
    Softmax,
    /// A linear SVM (one-vs-rest) on the standardized, PCA-reduced features, folded into the
    /// last dense layer ([`crate::train::svm_head`]).
    Svm(SvmHeadSpec),
}

impl HeadSpec {
    /// Whether this is the default head (the trained dense layer).
    pub fn is_softmax(&self) -> bool {
        matches!(self, HeadSpec::Softmax)
    }
}

/// `[head] type = "svm"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SvmHeadSpec {
    /// Principal components kept after standardization (1 to the number of features).
    pub pca: usize,
    /// Training images whose features the SVMs are fitted on (a stratified sample of the
    /// training split; the dense SMO kernel matrix grows with its square).
    pub samples: usize,
    /// The SVM's C values tried, one per fit; the one with the best validation accuracy wins.
    pub c: Vec<f64>,
}

/// Most members an ensemble may have (its blob holds every member's ops, see
/// [`mnistc_runtime::format::MAX_OPS`]).
pub const MAX_MEMBERS: usize = 8;

/// Where a layer reads its input from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputRef {
    /// The model's input image (`inputs = ["input"]`).
    Input,
    /// The output of `layers[i]`.
    Layer(usize),
}

/// One `[[layers]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// The layer with every parameter resolved.
    pub layer: Layer,
    /// The layer's `name`, by which later layers' `inputs` refer to its output.
    #[serde(default)]
    pub name: Option<String>,
    /// What the layer reads, resolved: one source, two for an `add`. Without an `inputs` key
    /// (and in specs written before graphs existed, where it is empty) a layer reads the layer
    /// before it, the first layer the model input: see [`ModelSpec::inputs_of`].
    #[serde(default)]
    pub inputs: Vec<InputRef>,
    /// Whether training leaves the layer's weights as they are (`freeze = true`, or `[init]
    /// freeze = "all-but-last-N"`); a frozen batchnorm also keeps its running statistics and
    /// normalizes with them.
    #[serde(default)]
    pub freeze: bool,
    /// 1-based line of the layer's table in the source (0 when unknown).
    pub line: usize,
    /// 1-based line of each key given in the source, for later error messages.
    #[serde(default)]
    pub key_lines: BTreeMap<String, usize>,
}

impl LayerSpec {
    /// Line of `key` in the source, falling back to the layer's line.
    pub fn line_of(&self, key: &str) -> usize {
        self.key_lines.get(key).copied().unwrap_or(self.line)
    }
}

/// A layer with its resolved parameters. All spatial pairs are `[height, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Layer {
    /// 2-D convolution (cross-correlation, bias on), followed by `activation`.
    Conv2d {
        /// Output channels.
        filters: usize,
        /// Kernel size.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// `valid` (no padding) or `same` (TF/burn style: out = ceil(in / stride), extra
        /// padding row/column at the bottom/right).
        padding: Padding,
        /// Activation applied to the output.
        activation: Activation,
    },
    /// Depthwise 2-D convolution, channel multiplier 1 (each channel convolved with its own
    /// filter, bias on), followed by `activation`.
    DepthwiseConv2d {
        /// Kernel size.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// `valid` or `same`, as for conv2d.
        padding: Padding,
        /// Activation applied to the output.
        activation: Activation,
    },
    /// Max pooling without padding; the output size is floored.
    MaxPool2d {
        /// Window size.
        size: [usize; 2],
        /// Stride (defaults to `size`).
        stride: [usize; 2],
    },
    /// Average pooling without padding; the output size is floored.
    AvgPool2d {
        /// Window size.
        size: [usize; 2],
        /// Stride (defaults to `size`).
        stride: [usize; 2],
    },
    /// Fully connected layer (bias on), followed by `activation`.
    Dense {
        /// Output features.
        units: usize,
        /// Activation applied to the output.
        activation: Activation,
    },
    /// Dropout (training only; identity at inference).
    Dropout {
        /// Probability of zeroing an element, in `[0, 1)`.
        rate: f64,
    },
    /// Flattens a spatial input (C,H,W order).
    Flatten,
    /// Batch normalization of the previous conv2d or dense layer's outputs (per channel),
    /// followed by `activation`. Trained with batch statistics; at lowering it is folded into
    /// the previous layer's weights and bias and never reaches the blob.
    BatchNorm {
        /// Added to the variance before the square root.
        epsilon: f64,
        /// Weight of the current batch in the running mean and variance (PyTorch's and burn's
        /// convention: `running = (1 − momentum) · running + momentum · batch`).
        momentum: f64,
        /// Activation applied after the normalization.
        activation: Activation,
    },
    /// The mean of each channel over the whole feature map: `(h, w, c)` → `(1, 1, c)`.
    GlobalAvgPool,
    /// The element-wise sum of two tensors of the same shape (a residual connection), followed
    /// by `activation`.
    Add {
        /// Activation applied to the sum.
        activation: Activation,
    },
}

impl Layer {
    /// The `type` name used in `model.toml`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Layer::Conv2d { .. } => "conv2d",
            Layer::DepthwiseConv2d { .. } => "depthwise_conv2d",
            Layer::MaxPool2d { .. } => "maxpool2d",
            Layer::AvgPool2d { .. } => "avgpool2d",
            Layer::Dense { .. } => "dense",
            Layer::Dropout { .. } => "dropout",
            Layer::Flatten => "flatten",
            Layer::BatchNorm { .. } => "batchnorm",
            Layer::GlobalAvgPool => "global_avgpool",
            Layer::Add { .. } => "add",
        }
    }

    /// Whether the layer has weights (conv2d, depthwise_conv2d and dense).
    pub fn has_weights(&self) -> bool {
        matches!(self, Layer::Conv2d { .. } | Layer::DepthwiseConv2d { .. } | Layer::Dense { .. })
    }
}

/// Convolution padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// No padding: out = floor((in - k) / stride) + 1.
    Valid,
    /// Zero padding so that out = ceil(in / stride); the odd extra row/column goes to the
    /// bottom/right.
    Same,
}

/// Activation after a conv2d or dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Identity.
    None,
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
}

impl Activation {
    /// The name used in `model.toml`.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
        }
    }
}

/// The input a layer reads when it names none: the layer before it, or the model input.
pub fn default_input(index: usize) -> InputRef {
    index.checked_sub(1).map_or(InputRef::Input, InputRef::Layer)
}

/// `[data]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// Which dataset to train and test on.
    pub dataset: Dataset,
    /// Fraction of the (limited) training set held out for validation, stratified by class;
    /// `0` disables validation.
    pub validation: f64,
    /// Use only this many training images (stratified, deterministic given the seed); `0` = all.
    pub train_limit: usize,
}

/// Optimizer choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// Adam (burn's defaults: beta1 0.9, beta2 0.999, eps 1e-5); `weight_decay` is an L2
    /// penalty added to the gradient.
    Adam,
    /// AdamW: Adam with decoupled weight decay.
    Adamw,
    /// SGD with optional (Nesterov) momentum; `weight_decay` is an L2 penalty.
    Sgd,
}

/// Weight initialization. Biases always start at zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// He (Kaiming) normal: N(0, 2 / fan_in).
    He,
    /// Glorot (Xavier) uniform: U(±sqrt(6 / (fan_in + fan_out))).
    Glorot,
}

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LrSchedule {
    /// Constant learning rate.
    None,
    /// Multiply the learning rate by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays.
        step_size: usize,
        /// Decay factor in (0, 1].
        gamma: f64,
    },
    /// Multiply the learning rate by `factor` when the validation loss has not improved for
    /// `patience` epochs, never going below `min_lr`. Needs a validation set.
    Plateau {
        /// Epochs without improvement before a decay.
        patience: usize,
        /// Decay factor in (0, 1).
        factor: f64,
        /// Lower bound of the learning rate.
        min_lr: f64,
    },
    /// Cosine annealing from `learning_rate` to `min_lr` over all training steps (updated every
    /// batch), after `warmup` epochs of linear warm-up from `learning_rate / steps` to
    /// `learning_rate`.
    Cosine {
        /// Final learning rate.
        min_lr: f64,
        /// Epochs of linear warm-up (0: none).
        #[serde(default, skip_serializing_if = "is_zero")]
        warmup: usize,
    },
    /// Leslie Smith's one-cycle policy as PyTorch's `OneCycleLR` computes it (cosine phases,
    /// updated every batch): from `learning_rate / div_factor` up to `learning_rate` over the
    /// first `pct_start` of the batches, then down to `learning_rate / (div_factor *
    /// final_div_factor)`.
    OneCycle {
        /// Fraction of the batches spent rising, in (0, 1).
        pct_start: f64,
        /// Initial learning rate = `learning_rate / div_factor`.
        div_factor: f64,
        /// Final learning rate = initial / `final_div_factor`.
        final_div_factor: f64,
    },
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Data augmentation applied to training images (never to validation or test images).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Maximum random shift in pixels along each axis (uniform integer in `-shift..=shift`).
    pub shift: usize,
    /// Maximum random rotation in degrees (uniform in `-rotate..=rotate`), bilinear resampling.
    pub rotate: f64,
    /// Mirror left-right with probability ½ (for photographs, not for digits).
    #[serde(default)]
    pub flip: bool,
}

impl Augment {
    /// Whether augmentation does anything.
    pub fn is_enabled(&self) -> bool {
        self.shift > 0 || self.rotate > 0.0 || self.flip
    }
}

/// `[train]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Initial learning rate.
    pub learning_rate: f64,
    /// SGD momentum in [0, 1) (ignored by Adam/AdamW).
    pub momentum: f64,
    /// SGD Nesterov momentum (ignored by Adam/AdamW).
    pub nesterov: bool,
    /// Weight decay (L2 penalty for adam/sgd, decoupled for adamw).
    pub weight_decay: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Number of epochs.
    pub epochs: usize,
    /// Seed of every random choice (init, dropout, shuffling, augmentation, splits).
    pub seed: u64,
    /// Weight initialization.
    pub init: Init,
    /// Early-stopping patience in epochs on the validation loss (0 = off). When on, the weights
    /// of the best epoch are restored at the end.
    pub early_stopping: usize,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Augmentation.
    pub augment: Augment,
    /// Label smoothing of the cross-entropy loss, in [0, 1) (0 = plain cross-entropy).
    pub label_smoothing: f64,
}

/// Number format of the deployed model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 8-bit integers (per-channel weights, per-tensor activations).
    Int8,
    /// Half-precision floats.
    F16,
    /// Single-precision floats.
    F32,
}

/// How activation ranges are calibrated for int8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// Observed minimum and maximum.
    MinMax,
    /// Clip to a high percentile of the observed values.
    Percentile,
    /// Choose the clipping range minimizing the quantization mean squared error.
    Mse,
}

/// `[quantize]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantizeSpec {
    /// Number format.
    pub precision: Precision,
    /// Training images used for calibration.
    pub calibration: usize,
    /// Calibration method.
    pub method: CalibrationMethod,
}

/// `[target]`: optional budgets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSpec {
    /// Maximum blob size in bytes.
    pub flash: Option<u64>,
    /// Maximum arena size in bytes.
    pub ram: Option<u64>,
    /// Maximum multiply-accumulates per inference.
    pub macs: Option<u64>,
}

/// Command-line overrides shared by `train`, `build` and `search`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Replace `train.epochs` (must be ≥ 1).
    pub epochs: Option<usize>,
    /// Replace `data.train_limit` (0 = all).
    pub train_limit: Option<usize>,
    /// Replace `train.seed`.
    pub seed: Option<u64>,
}

/// A layer in the training key: its parameters, and its inputs only when they are not the
/// default chain (so the keys of chain models did not change when graphs came), and `freeze`
/// only when set.
#[derive(Serialize)]
struct KeyLayer<'a> {
    #[serde(flatten)]
    layer: &'a Layer,
    #[serde(skip_serializing_if = "Option::is_none")]
    inputs: Option<Vec<InputRef>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    freeze: bool,
}

/// `[init]` in the training key: the pretrained file by content, not by path.
#[derive(Serialize)]
struct KeyInit {
    sha256: String,
    layers: Option<usize>,
}

/// The canonical form of everything that influences training (for cache keys).
#[derive(Serialize)]
struct TrainingKey<'a> {
    key_version: u32,
    input: &'a InputSpec,
    layers: Vec<KeyLayer<'a>>,
    data: &'a DataSpec,
    train: &'a TrainSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    init: Option<KeyInit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ensemble: Option<&'a EnsembleSpec>,
}

impl ModelSpec {
    /// Reads and validates a model file.
    ///
    /// # Errors
    /// [`SpecError::Io`] if the file cannot be read, otherwise as [`ModelSpec::parse`].
    pub fn from_path(path: &Path) -> Result<ModelSpec, SpecError> {
        let text = crate::spec::reader::read_text(path)?;
        ModelSpec::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a model description. `origin` names it in error messages and,
    /// when it is a file path, gives the default `name` (its stem).
    ///
    /// # Errors
    /// [`SpecError::Syntax`] for invalid TOML, [`SpecError::Invalid`] for anything else, naming
    /// the key path, the line and what is allowed.
    pub fn parse(text: &str, origin: &str) -> Result<ModelSpec, SpecError> {
        parse::parse(text, origin)
    }

    /// Per-layer input/output shapes, parameter counts and MACs.
    ///
    /// # Errors
    /// Only if the public fields were modified into an invalid model after parsing.
    pub fn shapes(&self) -> Result<Vec<LayerShape>, SpecError> {
        shape::infer(&self.input, &self.layers).map_err(|e| {
            let line = self.layers.get(e.index).map_or(0, |l| l.line_of(e.key));
            SpecError::Invalid {
                origin: self.origin.clone(),
                line,
                key: format!("layers[{}].{}", e.index, e.key),
                message: e.message,
                kind: InvalidKind::Inconsistent,
            }
        })
    }

    /// Total trainable parameters.
    ///
    /// # Errors
    /// As [`ModelSpec::shapes`].
    pub fn total_params(&self) -> Result<usize, SpecError> {
        Ok(self.shapes()?.iter().map(|s| s.params).sum())
    }

    /// Total multiply-accumulates per inference.
    ///
    /// # Errors
    /// As [`ModelSpec::shapes`].
    pub fn total_macs(&self) -> Result<u64, SpecError> {
        Ok(self.shapes()?.iter().map(|s| s.macs).sum())
    }

    /// Applies command-line overrides.
    ///
    /// # Errors
    /// [`SpecError::Invalid`] with key `--epochs` if `epochs` is 0, or `--train-limit` if the
    /// limit exceeds the dataset's training images.
    pub fn with_overrides(&self, overrides: &Overrides) -> Result<ModelSpec, SpecError> {
        let mut spec = self.clone();
        if let Some(epochs) = overrides.epochs {
            if epochs == 0 {
                return Err(SpecError::Invalid {
                    origin: "command line".into(),
                    line: 0,
                    key: "--epochs".into(),
                    message: "must be at least 1".into(),
                    kind: InvalidKind::BadValue,
                });
            }
            spec.train.epochs = epochs;
        }
        if let Some(limit) = overrides.train_limit {
            let max = spec.data.dataset.train_size();
            if limit > max {
                return Err(SpecError::Invalid {
                    origin: "command line".into(),
                    line: 0,
                    key: "--train-limit".into(),
                    message: format!("{limit} is more than the {max} training images of {}", spec.data.dataset),
                    kind: InvalidKind::BadValue,
                });
            }
            spec.data.train_limit = limit;
        }
        if let Some(seed) = overrides.seed {
            spec.train.seed = seed;
        }
        let train = spec.train;
        if let Some(ensemble) = spec.ensemble.as_mut() {
            for (i, member) in ensemble.members.iter_mut().enumerate() {
                if let Some(epochs) = overrides.epochs {
                    member.epochs = epochs;
                }
                if overrides.seed.is_some() {
                    member.seed = train.member(i).seed;
                }
            }
        }
        Ok(spec)
    }

    /// The spec with `n` networks (`--members`): one network for 1, else an ensemble keeping
    /// the first `n` members it has and adding members trained as `[train]` with the next seeds
    /// (`train.seed + i` for member `i` from 0).
    pub fn with_members(&self, n: usize) -> ModelSpec {
        let mut spec = self.clone();
        let mut members = self.ensemble.as_ref().map_or_else(|| vec![self.train], |e| e.members.clone());
        members.truncate(n.max(1));
        for i in members.len()..n {
            members.push(self.train.member(i));
        }
        spec.ensemble = (members.len() > 1).then_some(EnsembleSpec { members });
        spec
    }

    /// The networks this spec trains: itself, or each `[ensemble]` member as a spec of its own
    /// (the member's `[train]`, no `[ensemble]`, named `NAME-memberK`; the first member is the
    /// spec without `[ensemble]`, and the name is not part of the training key).
    pub fn members(&self) -> Vec<ModelSpec> {
        match &self.ensemble {
            None => vec![self.clone()],
            Some(e) => e
                .members
                .iter()
                .enumerate()
                .map(|(i, &train)| ModelSpec {
                    name: format!("{}-member{}", self.name, i + 1),
                    train,
                    ensemble: None,
                    ..self.clone()
                })
                .collect(),
        }
    }

    /// Canonical JSON of everything that influences the trained weights: `input`, the layers
    /// (parameters only, no line numbers), `[data]`, `[train]` and, for an ensemble, every
    /// member's training (absent otherwise, so single networks keep their keys). `name`, `[quantize]` and
    /// `[target]` are left out, so renaming a model or changing its quantization or budgets
    /// does not invalidate a training. Field order is fixed by the struct definitions, so the
    /// string is stable across runs and platforms. `[init]` enters by the SHA-256 of the
    /// pretrained file's bytes (read here; an unreadable file keys as its path, and training
    /// then reports it).
    pub fn training_key_json(&self) -> String {
        let key = TrainingKey {
            key_version: 1,
            input: &self.input,
            layers: (0..self.layers.len())
                .map(|i| KeyLayer {
                    layer: &self.layers[i].layer,
                    inputs: (!self.is_default_input(i)).then(|| self.inputs_of(i)),
                    freeze: self.layers[i].freeze,
                })
                .collect(),
            data: &self.data,
            train: &self.train,
            init: self.init.as_ref().map(|init| KeyInit {
                sha256: std::fs::read(&init.from).map_or_else(
                    |_| format!("unreadable {}", init.from.display()),
                    |bytes| {
                        use sha2::Digest;
                        sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
                    },
                ),
                layers: init.layers,
            }),
            ensemble: self.ensemble.as_ref(),
        };
        // Serializing plain structs, enums and numbers into a String cannot fail.
        serde_json::to_string(&key).unwrap_or_default()
    }

    /// What `layers[index]` reads: its resolved `inputs`, or by default the layer before it (the
    /// model input for the first layer).
    pub fn inputs_of(&self, index: usize) -> Vec<InputRef> {
        match self.layers.get(index) {
            Some(l) if !l.inputs.is_empty() => l.inputs.clone(),
            _ => vec![default_input(index)],
        }
    }

    /// Whether `layers[index]` reads just the layer before it (the model input for the first).
    pub fn is_default_input(&self, index: usize) -> bool {
        self.inputs_of(index) == [default_input(index)]
    }

    /// Whether every layer reads the one before it (no `add`, no `inputs` elsewhere).
    pub fn is_chain(&self) -> bool {
        (0..self.layers.len()).all(|i| self.is_default_input(i))
    }

    /// Indices (into `layers`) of the layers that carry weights, in order.
    pub fn weighted_layers(&self) -> Vec<usize> {
        self.layers.iter().enumerate().filter(|(_, l)| l.layer.has_weights()).map(|(i, _)| i).collect()
    }
}
