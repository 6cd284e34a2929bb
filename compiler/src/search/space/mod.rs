//! The search-space file (`models/search.toml`): its types here, reading and validating it in
//! `parse.rs` (with the shared line-aware TOML reader of `model.toml`), drawing candidates from
//! it without repeats in `sample.rs`.
//!
//! A space names a base `model.toml` (`base = "digits.toml"`, relative to the space file) that
//! supplies everything that is not searched (input, `[data]`, the rest of `[train]`,
//! `[quantize]`), and lists the choices of every searched hyper-parameter in `[space]`: a
//! single value, a list of values, or an inclusive range `{ min, max, step }`. Errors name the
//! file, the line, the key path and what is allowed, like `model.toml` errors (and reuse
//! [`SpecError`]). Every key is documented in `models/README.md`.

mod parse;
mod sample;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::Rng;
use crate::lower::budget::Footprint;
use crate::spec::{InvalidKind, ModelSpec, Overrides, Padding, SpecError, TargetSpec};

pub use sample::Sampler;

/// Pooling after a searched conv layer (window 2, stride 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolChoice {
    /// `maxpool2d` with size 2.
    Max,
    /// `avgpool2d` with size 2.
    Avg,
    /// No pooling.
    None,
}

/// How a searched conv layer is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockChoice {
    /// One `conv2d` (kernel, stride, padding, filters).
    #[default]
    Conv,
    /// MobileNetV1's depthwise-separable block: a `depthwise_conv2d` (kernel, stride, padding)
    /// then a 1x1 `conv2d` (filters).
    Separable,
    /// The ResNet basic block of MLPerf Tiny's ResNet-8: two `same` conv2d (filters, kernel; the
    /// first with the stride) and their sum with a shortcut, the block's input itself when the
    /// shape is kept, else a 1x1 conv2d with the stride; ReLU after the sum. Padding is `same`.
    Residual,
}

/// What turns the last feature map into the dense layers' input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadChoice {
    /// The feature map flattened (C,H,W order).
    #[default]
    Flatten,
    /// A `global_avgpool`: one value per channel.
    GlobalAvgpool,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The optimizer of a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerChoice {
    /// Adam.
    Adam,
    /// AdamW.
    Adamw,
    /// SGD with the base's momentum, no Nesterov.
    Sgd,
    /// SGD with the base's momentum and Nesterov.
    SgdNesterov,
}

impl OptimizerChoice {
    /// The name used in the space file.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerChoice::Adam => "adam",
            OptimizerChoice::Adamw => "adamw",
            OptimizerChoice::Sgd => "sgd",
            OptimizerChoice::SgdNesterov => "sgd-nesterov",
        }
    }
}

/// The values one hyper-parameter can take (ranges are expanded; never empty).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Choices<T>(pub Vec<T>);

impl<T: Copy> Choices<T> {
    pub(super) fn pick(&self, rng: &mut Rng) -> T {
        self.0[rng.below(self.0.len() as u64) as usize]
    }

    /// As [`pick`](Choices::pick), but a single choice draws nothing from `rng`: the dimensions
    /// added after the first spaces shipped use this, so those spaces draw the same candidates.
    pub(super) fn pick_varied(&self, rng: &mut Rng) -> T {
        if self.0.len() == 1 { self.0[0] } else { self.pick(rng) }
    }
}

impl Choices<usize> {
    pub(super) fn max(&self) -> usize {
        self.0.iter().copied().max().unwrap_or(0)
    }
}

/// The searched hyper-parameters (`[space]`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Dims {
    /// Number of conv layers.
    pub conv_layers: Choices<usize>,
    /// Filters of each conv layer (drawn per layer).
    pub filters: Choices<usize>,
    /// Square kernel size of each conv layer (drawn per layer).
    pub kernel: Choices<usize>,
    /// Stride of each conv layer (drawn per layer).
    pub stride: Choices<usize>,
    /// Padding of each conv layer (drawn per layer).
    pub padding: Choices<Padding>,
    /// Pooling after each conv layer (drawn per layer).
    pub pool: Choices<PoolChoice>,
    /// The block each conv layer is (drawn per layer).
    pub block: Choices<BlockChoice>,
    /// Batch normalization after every conv (the activation moves after it).
    pub batchnorm: Choices<bool>,
    /// Flatten or global average pool after the conv layers.
    pub head: Choices<HeadChoice>,
    /// Number of hidden dense layers (before the logits layer).
    pub dense_layers: Choices<usize>,
    /// Units of each hidden dense layer (drawn per layer).
    pub units: Choices<usize>,
    /// Dropout rate after the conv block and after every hidden dense layer (0 = none).
    pub dropout: Choices<f64>,
    /// Optimizer.
    pub optimizer: Choices<OptimizerChoice>,
    /// Learning rate.
    pub learning_rate: Choices<f64>,
    /// Mini-batch size.
    pub batch_size: Choices<usize>,
    /// Epochs of a trial.
    pub epochs: Choices<usize>,
}

/// A parsed and validated search space.
#[derive(Clone, Debug)]
pub struct SearchSpace {
    /// The space file (for messages).
    pub origin: String,
    /// Search name; candidates are named `NAME-tNNN`.
    pub name: String,
    /// The base model file.
    pub base_path: PathBuf,
    /// The base model, resolved.
    pub base: ModelSpec,
    /// Trials wanted (the command line's `--trials` replaces it).
    pub trials: usize,
    /// Seed of the sampling and of every trial's training (`train.seed`).
    pub seed: u64,
    /// Training images of a trial (0 = all); `best.toml` keeps the base's `data.train_limit`.
    pub train_limit: usize,
    /// Budgets every candidate must fit (the space's `[target]`, else the base's).
    pub target: TargetSpec,
    /// The searched hyper-parameters.
    pub dims: Dims,
}

/// One searched conv layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvParams {
    /// Output channels.
    pub filters: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding.
    pub padding: Padding,
    /// Pooling after the layer.
    pub pool: PoolChoice,
    /// What the layer is (a plain conv unless the space says otherwise).
    #[serde(default, skip_serializing_if = "is_default")]
    pub block: BlockChoice,
}

/// The sampled hyper-parameters of one candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Conv layers in order.
    pub conv: Vec<ConvParams>,
    /// Units of the hidden dense layers in order.
    pub dense: Vec<usize>,
    /// Dropout rate (0 = no dropout layers).
    pub dropout: f64,
    /// Optimizer.
    pub optimizer: OptimizerChoice,
    /// Learning rate.
    pub learning_rate: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Epochs of the trial.
    pub epochs: usize,
    /// Batch normalization after every conv.
    #[serde(default, skip_serializing_if = "is_default")]
    pub batchnorm: bool,
    /// Flatten or global average pool after the conv layers.
    #[serde(default, skip_serializing_if = "is_default")]
    pub head: HeadChoice,
}

impl Params {
    /// The conv layers as `32 k3 s1 same max; 64 k5 s2 valid` (empty when there are none).
    pub fn conv_summary(&self) -> String {
        self.conv
            .iter()
            .map(|c| {
                let pool = match c.pool {
                    PoolChoice::Max => " max",
                    PoolChoice::Avg => " avg",
                    PoolChoice::None => "",
                };
                let padding = if c.padding == Padding::Same { "same" } else { "valid" };
                let block = match c.block {
                    BlockChoice::Conv => "",
                    BlockChoice::Separable => "sep ",
                    BlockChoice::Residual => "res ",
                };
                let bn = if self.batchnorm { " bn" } else { "" };
                format!("{block}{} k{} s{} {padding}{bn}{pool}", c.filters, c.kernel, c.stride)
            })
            .chain((self.head == HeadChoice::GlobalAvgpool && !self.conv.is_empty()).then(|| "global avg".to_string()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The hidden dense layers as `128, 64` (empty when there are none).
    pub fn dense_summary(&self) -> String {
        self.dense.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// A sampled candidate that fits its input: its model description and footprint.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// 1-based trial number.
    pub trial: usize,
    /// Model name (`NAME-tNNN`).
    pub name: String,
    /// The hyper-parameters.
    pub params: Params,
    /// The candidate's model.toml (base epochs and train_limit: what `best.toml` builds).
    pub text: String,
    /// `text`, parsed.
    pub spec: ModelSpec,
    /// Flash, arena and MACs from the architecture alone.
    pub footprint: Footprint,
    /// Draws since the previous candidate whose layers did not fit their input (or could not
    /// be lowered), resampled.
    pub resampled: usize,
    /// Draws since the previous candidate that repeated an earlier one, resampled.
    pub repeats: usize,
}

impl SearchSpace {
    /// Applies the command line: `--epochs` replaces `[space] epochs`, `--train-limit` the
    /// trials' `train_limit`, `--seed` the space's `seed`.
    ///
    /// # Errors
    /// [`SpecError::Invalid`] naming the option when a value does not fit.
    pub fn with_overrides(&self, overrides: &Overrides) -> Result<SearchSpace, SpecError> {
        let mut space = self.clone();
        let bad = |key: &str, message: String| SpecError::Invalid {
            origin: "command line".into(),
            line: 0,
            key: key.into(),
            message,
            kind: InvalidKind::BadValue,
        };
        if let Some(epochs) = overrides.epochs {
            if epochs == 0 {
                return Err(bad("--epochs", "must be at least 1".into()));
            }
            space.dims.epochs = Choices(vec![epochs]);
        }
        if let Some(limit) = overrides.train_limit {
            let max = space.base.data.dataset.train_size();
            if limit > max {
                return Err(bad("--train-limit", format!("{limit} is more than the {max} training images")));
            }
            parse::check_limit(limit, space.base.data.validation).map_err(|m| bad("--train-limit", m))?;
            space.train_limit = limit;
        }
        if let Some(seed) = overrides.seed {
            space.seed = seed;
        }
        Ok(space)
    }

    /// Canonical JSON of everything that decides which candidates are drawn and how they are
    /// trained and judged (not `trials`, which may grow between runs).
    pub fn canonical_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "base": {
                "training": serde_json::from_str::<serde_json::Value>(&self.base.training_key_json())
                    .unwrap_or_default(),
                "quantize": self.base.quantize,
            },
            "seed": self.seed,
            "train_limit": self.train_limit,
            "target": self.target,
            "space": self.dims,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::search::candidate;
    use crate::spec::Optimizer;
    fn space(text: &str) -> SearchSpace {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/space-under-test.toml");
        SearchSpace::parse(text, &dir).unwrap()
    }

    #[test]
    fn sampling_is_deterministic_without_repeats_and_resamples_what_does_not_fit() {
        // One conv layer: 2 pool choices fit. Three 5x5 stride-2 valid layers never fit 28x28.
        let s = space(
            "base = \"digits.toml\"\nseed = 9\n[space]\nconv_layers = [1, 3]\nfilters = 4\nkernel = 5\nstride = 2\n\
             pool = [\"max\", \"none\"]\ndense_layers = [0, 1]\nunits = 8\n",
        );
        let mut sampler = s.sampler();
        let mut all = Vec::new();
        while let Some(c) = sampler.next_candidate().unwrap() {
            assert_eq!(c.trial, all.len() + 1);
            assert_eq!(c.spec.name, format!("space-under-test-t{:03}", c.trial));
            assert_eq!(c.params.conv.len(), 1);
            all.push(c.params);
        }
        assert_eq!(all.len(), 4, "2 pools x 2 dense depths");
        for (i, a) in all.iter().enumerate() {
            assert!(!all[..i].contains(a), "repeated candidate {a:?}");
        }
        assert!(sampler.total_resampled > 0, "three-layer draws must be resampled");

        let mut again = s.sampler();
        let first: Vec<Params> = (0..4).map(|_| again.next_candidate().unwrap().unwrap().params).collect();
        assert_eq!(first, all, "same seed, same sequence");
        let other = SearchSpace { seed: 10, ..s.clone() };
        let mut other = other.sampler();
        let seq: Vec<Params> = (0..4).map(|_| other.next_candidate().unwrap().unwrap().params).collect();
        assert_ne!(seq, all, "another seed, another order");
    }

    #[test]
    fn residual_and_separable_blocks_render_as_graphs_that_validate() {
        // Block 0 keeps the image's shape only in channels 3 -> 8: a 1x1 shortcut. Block 1
        // (8 -> 8, stride 1) adds its input itself.
        let text = "base = \"digits.toml\"\nseed = 3\n[space]\nconv_layers = 3\nfilters = 8\nkernel = 3\n\
                    stride = 1\npadding = \"same\"\npool = \"none\"\nblock = [\"separable\", \"residual\"]\n\
                    batchnorm = [false, true]\nhead = [\"flatten\", \"global_avgpool\"]\ndense_layers = 0\n";
        let s = space(text);
        let mut sampler = s.sampler();
        let mut seen = Vec::new();
        while let Some(c) = sampler.next_candidate().unwrap() {
            let blocks: Vec<BlockChoice> = c.params.conv.iter().map(|b| b.block).collect();
            // The text is what ModelSpec::parse validated; check its graph.
            let layers = &c.spec.layers;
            let adds = layers.iter().filter(|l| matches!(l.layer, crate::spec::Layer::Add { .. })).count();
            assert_eq!(adds, blocks.iter().filter(|&&b| b == BlockChoice::Residual).count(), "{}", c.text);
            let depthwise =
                layers.iter().filter(|l| matches!(l.layer, crate::spec::Layer::DepthwiseConv2d { .. })).count();
            assert_eq!(depthwise, blocks.iter().filter(|&&b| b == BlockChoice::Separable).count());
            let norms = layers.iter().filter(|l| matches!(l.layer, crate::spec::Layer::BatchNorm { .. })).count();
            let convs = layers.iter().filter(|l| l.layer.has_weights()).count() - 1; // less the logits
            assert_eq!(norms, if c.params.batchnorm { convs } else { 0 }, "{}", c.text);
            // A residual first block (1 -> 8 channels) needs the 1x1 shortcut; a later one does not.
            if blocks[0] == BlockChoice::Residual {
                assert!(
                    c.text.contains("name = \"b0_shortcut\"") && c.text.contains("inputs = [\"input\"]"),
                    "{}",
                    c.text
                );
            }
            if blocks[1] == BlockChoice::Residual {
                assert!(c.text.contains("inputs = [\"b1_main\", \"b1_in\"]"), "{}", c.text);
            }
            assert_eq!(c.params.conv_summary().contains("global avg"), c.params.head == HeadChoice::GlobalAvgpool);
            seen.push(c.params);
        }
        assert_eq!(seen.len(), 8 * 2 * 2, "every block sequence, batchnorm and head once");
    }

    #[test]
    fn candidates_keep_the_base_and_take_the_sampled_values() {
        let s = space(
            "base = \"digits.toml\"\nseed = 5\ntrain_limit = 2000\n[space]\nconv_layers = 2\nfilters = 16\nkernel = 3\n\
             padding = \"same\"\ndense_layers = 1\nunits = 32\ndropout = 0.2\noptimizer = \"sgd-nesterov\"\n\
             learning_rate = 0.01\nbatch_size = 16\nepochs = 2\n[target]\nram = 20000\n",
        );
        let c = s.sampler().next_candidate().unwrap().unwrap();
        let spec = &c.spec;
        let t = &spec.train;
        assert_eq!((t.optimizer, t.nesterov, t.learning_rate, t.batch_size), (Optimizer::Sgd, true, 0.01, 16));
        assert_eq!(t.epochs, 12, "the candidate keeps the base's full training; trials override it");
        assert_eq!(t.seed, 5);
        assert_eq!(spec.data.train_limit, 0);
        assert_eq!(t.augment, s.base.train.augment);
        assert_eq!(t.lr_schedule, s.base.train.lr_schedule);
        assert_eq!(spec.target, TargetSpec { flash: None, ram: Some(20000), macs: None });
        let types: Vec<&str> = spec.layers.iter().map(|l| l.layer.type_name()).collect();
        assert_eq!(types, ["conv2d", "maxpool2d", "conv2d", "maxpool2d", "dropout", "dense", "dropout", "dense"]);
        assert!(spec.warnings.is_empty(), "{:?}", spec.warnings);
        // The text is canonical: parsing and rendering again gives the same text.
        assert_eq!(candidate::render(&s, &c.name, &c.params), c.text);
        assert_eq!(ModelSpec::parse(&c.text, "x").unwrap().layers, spec.layers);
        let over = s.with_overrides(&Overrides { epochs: Some(3), train_limit: Some(1000), seed: Some(8) }).unwrap();
        assert_eq!((over.dims.epochs.0.clone(), over.train_limit, over.seed), (vec![3], 1000, 8));
        assert!(s.with_overrides(&Overrides { epochs: None, train_limit: Some(5), seed: None }).is_err());
    }
}
