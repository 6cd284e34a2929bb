//! The search-space file (`models/search.toml`): reading and validating it, and sampling
//! candidates from it without repeats.
//!
//! A space names a base `model.toml` (`base = "digits.toml"`, relative to the space file) that
//! supplies everything that is not searched (input, `[data]`, the rest of `[train]`,
//! `[quantize]`), and lists the choices of every searched hyper-parameter in `[space]`: a
//! single value, a list of values, or an inclusive range `{ min, max, step }`. Errors name the
//! file, the line, the key path and what is allowed, like `model.toml` errors (and reuse
//! [`SpecError`]). Every key is documented in `models/README.md`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::candidate;
use crate::budget::{self, Footprint};
use crate::data::Rng;
use crate::spec::{
    InvalidKind, LrSchedule, ModelSpec, Optimizer, Overrides, Padding, Precision, SpecError, TargetSpec,
};

const TOP_KEYS: &[&str] = &["name", "base", "trials", "seed", "train_limit", "space", "target"];
const SPACE_KEYS: &[&str] = &[
    "conv_layers",
    "filters",
    "kernel",
    "stride",
    "padding",
    "pool",
    "dense_layers",
    "units",
    "dropout",
    "optimizer",
    "learning_rate",
    "batch_size",
    "epochs",
];
const TARGET_KEYS: &[&str] = &["flash", "ram", "macs"];
const RANGE_KEYS: &[&str] = &["min", "max", "step"];

/// Most values a range may expand to.
const MAX_CHOICES: usize = 1000;
/// Consecutive draws that give no new, valid candidate before the space counts as exhausted.
const MAX_FUTILE_DRAWS: usize = 20_000;

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
    fn pick(&self, rng: &mut Rng) -> T {
        self.0[rng.below(self.0.len() as u64) as usize]
    }
}

impl Choices<usize> {
    fn max(&self) -> usize {
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
                format!("{} k{} s{} {padding}{pool}", c.filters, c.kernel, c.stride)
            })
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
    /// Reads and validates a space file and its base model.
    ///
    /// # Errors
    /// [`SpecError`] naming the file, line and key (the base model's own errors name the base).
    pub fn from_path(path: &Path) -> Result<SearchSpace, SpecError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SpecError::Io { path: path.to_path_buf(), source })?;
        SearchSpace::parse(&text, path)
    }

    /// Parses a space file whose text is `text` and whose path is `path` (the base model is
    /// resolved relative to it).
    ///
    /// # Errors
    /// As [`SearchSpace::from_path`].
    pub fn parse(text: &str, path: &Path) -> Result<SearchSpace, SpecError> {
        let origin = path.display().to_string();
        let src = Src::new(&origin, text);
        let doc = DeTable::parse(text).map_err(|e| src.syntax(e.span(), e.message()))?;
        let root = Tab { src: &src, path: String::new(), line: 1, table: doc.get_ref() };
        root.check_keys(TOP_KEYS, "at the top level of a search space")?;

        let name = match root.get("name") {
            Some(v) => {
                let name = v.str()?.to_string();
                check_name(&name).map_err(|m| v.err(InvalidKind::BadValue, m))?;
                name
            }
            None => {
                let stem = path.file_stem().map_or_else(|| "search".into(), |s| s.to_string_lossy().into_owned());
                check_name(&stem).map_err(|m| {
                    src.error(1, "name", InvalidKind::BadValue, format!("{m} (taken from the file name; set `name`)"))
                })?;
                stem
            }
        };

        let base_value =
            root.require("base", "the model file the candidates start from, e.g. base = \"digits.toml\"")?;
        let base_rel = base_value.str()?;
        let base_path = path.parent().unwrap_or(Path::new("")).join(base_rel);
        let base = match ModelSpec::from_path(&base_path) {
            Ok(b) => b,
            Err(SpecError::Io { source, .. }) => {
                return Err(base_value.err(
                    InvalidKind::BadValue,
                    format!(
                        "cannot read the base model {}: {source} (the path is relative to the space file)",
                        base_path.display()
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        if base.quantize.precision != Precision::Int8 {
            return Err(base_value.err(
                InvalidKind::Inconsistent,
                format!(
                    "the base model {} deploys in {:?}; a search scores the int8 blob, so set quantize.precision = \
                     \"int8\" there",
                    base_path.display(),
                    base.quantize.precision
                ),
            ));
        }
        if base.data.validation <= 0.0 {
            return Err(base_value.err(
                InvalidKind::Inconsistent,
                format!(
                    "the base model {} has data.validation = 0; trials are scored on the validation split (never \
                     the test set), so set data.validation > 0 there (e.g. 0.05)",
                    base_path.display()
                ),
            ));
        }

        let trials = match root.get("trials") {
            Some(v) => v.usize(1, 100_000)?,
            None => 20,
        };
        let seed = match root.get("seed") {
            Some(v) => v.uint(0, i64::MAX as u64)?,
            None => base.train.seed,
        };
        let train_limit = match root.get("train_limit") {
            Some(v) => {
                let limit = v.usize(0, base.data.dataset.train_size())?;
                check_limit(limit, base.data.validation).map_err(|m| v.err(InvalidKind::Inconsistent, m))?;
                limit
            }
            None => base.data.train_limit,
        };
        let target = match root.get("target") {
            Some(v) => {
                let t = v.table()?;
                t.check_keys(TARGET_KEYS, "in [target]")?;
                let budget = |key: &str| t.get(key).map(|v| v.uint(1, i64::MAX as u64)).transpose();
                TargetSpec { flash: budget("flash")?, ram: budget("ram")?, macs: budget("macs")? }
            }
            None => base.target,
        };

        let space = root.require("space", "add a [space] table listing the searched hyper-parameters")?.table()?;
        space.check_keys(SPACE_KEYS, "in [space]")?;
        let dims = read_dims(&space, &base)?;

        Ok(SearchSpace { origin, name, base_path, base, trials, seed, train_limit, target, dims })
    }

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
            check_limit(limit, space.base.data.validation).map_err(|m| bad("--train-limit", m))?;
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

    /// A deterministic sampler over this space.
    pub fn sampler(&self) -> Sampler<'_> {
        Sampler {
            space: self,
            rng: Rng::for_stream(self.seed, "search"),
            seen: HashSet::new(),
            drawn: 0,
            total_resampled: 0,
            total_repeats: 0,
        }
    }
}

/// Draws candidates in a fixed order given the seed: the same space and seed always give the
/// same sequence, so a resumed search continues where it stopped.
pub struct Sampler<'a> {
    space: &'a SearchSpace,
    rng: Rng,
    seen: HashSet<String>,
    drawn: usize,
    /// Draws whose layers did not fit, so far.
    pub total_resampled: usize,
    /// Draws that repeated an earlier candidate, so far.
    pub total_repeats: usize,
}

impl Sampler<'_> {
    /// The next new candidate that fits its input, or `None` when the space is exhausted
    /// (20,000 draws in a row gave nothing new).
    ///
    /// # Errors
    /// [`SpecError`] if a candidate is invalid for another reason than its shapes (a space the
    /// loader should have rejected).
    pub fn next_candidate(&mut self) -> Result<Option<Candidate>, SpecError> {
        let (mut resampled, mut repeats) = (0, 0);
        for _ in 0..MAX_FUTILE_DRAWS {
            let params = self.draw();
            let key = serde_json::to_string(&params).unwrap_or_default();
            if !self.seen.insert(key) {
                repeats += 1;
                self.total_repeats += 1;
                continue;
            }
            let trial = self.drawn + 1;
            let name = format!("{}-t{trial:03}", self.space.name);
            let text = candidate::render(self.space, &name, &params);
            let spec = match ModelSpec::parse(&text, &format!("<candidate {name}>")) {
                Ok(spec) => spec,
                Err(e)
                    if e.kind() == Some(InvalidKind::Inconsistent)
                        && e.key().is_some_and(|k| k.starts_with("layers")) =>
                {
                    resampled += 1;
                    self.total_resampled += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Ok(footprint) = budget::estimate(&spec) else {
                // Fits its input but not the blob format (e.g. a dimension too large): resample.
                resampled += 1;
                self.total_resampled += 1;
                continue;
            };
            self.drawn = trial;
            return Ok(Some(Candidate { trial, name, params, text, spec, footprint, resampled, repeats }));
        }
        Ok(None)
    }

    fn draw(&mut self) -> Params {
        let d = &self.space.dims;
        let rng = &mut self.rng;
        let conv_layers = d.conv_layers.pick(rng);
        let conv = (0..conv_layers)
            .map(|_| ConvParams {
                filters: d.filters.pick(rng),
                kernel: d.kernel.pick(rng),
                stride: d.stride.pick(rng),
                padding: d.padding.pick(rng),
                pool: d.pool.pick(rng),
            })
            .collect();
        let dense_layers = d.dense_layers.pick(rng);
        let dense = (0..dense_layers).map(|_| d.units.pick(rng)).collect();
        Params {
            conv,
            dense,
            dropout: d.dropout.pick(rng),
            optimizer: d.optimizer.pick(rng),
            learning_rate: d.learning_rate.pick(rng),
            batch_size: d.batch_size.pick(rng),
            epochs: d.epochs.pick(rng),
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 59
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid search name; use 1 to 59 ASCII letters, digits, '-', '_' or '.' (candidates \
             are named NAME-tNNN)"
        ))
    }
}

fn check_limit(limit: usize, validation: f64) -> Result<(), String> {
    if limit == 0 {
        return Ok(());
    }
    let held = (limit as f64 * validation).round() as usize;
    if held == 0 || held == limit {
        return Err(format!(
            "{limit} images with the base's data.validation = {validation} leaves no images for {}; use more images",
            if held == 0 { "validation" } else { "training" }
        ));
    }
    Ok(())
}

fn base_optimizer(base: &ModelSpec) -> OptimizerChoice {
    match (base.train.optimizer, base.train.nesterov) {
        (Optimizer::Adam, _) => OptimizerChoice::Adam,
        (Optimizer::Adamw, _) => OptimizerChoice::Adamw,
        (Optimizer::Sgd, false) => OptimizerChoice::Sgd,
        (Optimizer::Sgd, true) => OptimizerChoice::SgdNesterov,
    }
}

fn read_dims(t: &Tab<'_, '_>, base: &ModelSpec) -> Result<Dims, SpecError> {
    let count = |key: &str, max: usize| -> Result<Choices<usize>, SpecError> {
        let v =
            t.require(key, &format!("a number of layers, a list such as [0, 1, 2] or {{ min = 0, max = {max} }}"))?;
        ints(&v, 0, max)
    };
    let conv_layers = count("conv_layers", 6)?;
    let dense_layers = count("dense_layers", 4)?;
    let has_conv = conv_layers.max() > 0;
    let has_dense = dense_layers.max() > 0;

    // Per-layer keys: required when such layers can be drawn, else optional (and unused).
    let per_layer = |key: &str, needed: bool, what: &str, min: usize, max: usize, default: usize| match t.get(key) {
        Some(v) => ints(&v, min, max),
        None if needed => Err(t.src.error(
            t.line,
            t.key_path(key),
            InvalidKind::Missing,
            format!("missing; {what} (a value, a list or {{ min, max, step }})"),
        )),
        None => Ok(Choices(vec![default])),
    };
    let filters = per_layer("filters", has_conv, "the filters of each conv layer, e.g. [16, 32, 64]", 1, 4096, 1)?;
    let kernel = per_layer("kernel", has_conv, "the kernel size of each conv layer, e.g. [3, 5]", 1, 64, 3)?;
    let stride = per_layer("stride", false, "", 1, 64, 1)?;
    let units =
        per_layer("units", has_dense, "the units of each hidden dense layer, e.g. [32, 64, 128]", 1, 65_536, 1)?;
    let padding = match t.get("padding") {
        Some(v) => strings(&v, &[("valid", Padding::Valid), ("same", Padding::Same)])?,
        None => Choices(vec![Padding::Valid]),
    };
    let pool = match t.get("pool") {
        Some(v) => strings(&v, &[("max", PoolChoice::Max), ("avg", PoolChoice::Avg), ("none", PoolChoice::None)])?,
        None => Choices(vec![PoolChoice::Max]),
    };
    let dropout = match t.get("dropout") {
        Some(v) => floats(&v, 0.0, false, 1.0, true)?,
        None => Choices(vec![0.0]),
    };
    let optimizer = match t.get("optimizer") {
        Some(v) => {
            let c = strings(
                &v,
                &[
                    ("adam", OptimizerChoice::Adam),
                    ("adamw", OptimizerChoice::Adamw),
                    ("sgd", OptimizerChoice::Sgd),
                    ("sgd-nesterov", OptimizerChoice::SgdNesterov),
                ],
            )?;
            if c.0.contains(&OptimizerChoice::SgdNesterov) && base.train.momentum == 0.0 {
                return Err(v.err(
                    InvalidKind::Inconsistent,
                    "sgd-nesterov needs momentum, but the base model has train.momentum = 0; set it there (e.g. 0.9)",
                ));
            }
            c
        }
        None => Choices(vec![base_optimizer(base)]),
    };
    let learning_rate = match t.get("learning_rate") {
        Some(v) => {
            let c = floats(&v, 0.0, true, 10.0, false)?;
            let min_lr = match base.train.lr_schedule {
                LrSchedule::Cosine { min_lr } | LrSchedule::Plateau { min_lr, .. } => min_lr,
                LrSchedule::None | LrSchedule::Step { .. } => 0.0,
            };
            if let Some(lr) = c.0.iter().find(|&&lr| lr < min_lr) {
                return Err(v.err(
                    InvalidKind::Inconsistent,
                    format!(
                        "{lr} is below the base model's lr_schedule min_lr = {min_lr}; use larger learning rates or \
                         lower min_lr in the base"
                    ),
                ));
            }
            c
        }
        None => Choices(vec![base.train.learning_rate]),
    };
    let batch_size = match t.get("batch_size") {
        Some(v) => ints(&v, 1, 65_536)?,
        None => Choices(vec![base.train.batch_size]),
    };
    let epochs = match t.get("epochs") {
        Some(v) => ints(&v, 1, 100_000)?,
        None => Choices(vec![base.train.epochs]),
    };
    Ok(Dims {
        conv_layers,
        filters,
        kernel,
        stride,
        padding,
        pool,
        dense_layers,
        units,
        dropout,
        optimizer,
        learning_rate,
        batch_size,
        epochs,
    })
}

/// Rejects duplicates (a listed value would be drawn more often than the others).
fn distinct<T: PartialEq + std::fmt::Debug>(v: &Val<'_, '_>, items: Vec<T>) -> Result<Choices<T>, SpecError> {
    for (i, a) in items.iter().enumerate() {
        if items[..i].contains(a) {
            return Err(v.err(InvalidKind::BadValue, format!("{a:?} is listed twice; list every choice once")));
        }
    }
    Ok(Choices(items))
}

/// An integer, a list of integers or `{ min, max, step = 1 }`, each in `min..=max`.
fn ints(v: &Val<'_, '_>, min: usize, max: usize) -> Result<Choices<usize>, SpecError> {
    match v.value.get_ref() {
        DeValue::Integer(_) => Ok(Choices(vec![v.usize(min, max)?])),
        DeValue::Array(_) => {
            let items = v.items()?.iter().map(|i| i.usize(min, max)).collect::<Result<Vec<_>, _>>()?;
            distinct(v, items)
        }
        DeValue::Table(_) => {
            let t = v.table()?;
            t.check_keys(RANGE_KEYS, "in a range")?;
            let lo = t.require("min", "the smallest value")?.usize(min, max)?;
            let hi = t.require("max", "the largest value")?.usize(min, max)?;
            let step = match t.get("step") {
                Some(s) => s.usize(1, max.max(1))?,
                None => 1,
            };
            if lo > hi {
                return Err(v.err(InvalidKind::BadValue, format!("min = {lo} is larger than max = {hi}")));
            }
            let values: Vec<usize> = (lo..=hi).step_by(step).collect();
            if values.len() > MAX_CHOICES {
                return Err(v.err(
                    InvalidKind::BadValue,
                    format!("the range has {} values; at most {MAX_CHOICES} (use a larger step)", values.len()),
                ));
            }
            Ok(Choices(values))
        }
        _ => Err(v.wrong_type("an integer, a list of integers or { min, max, step }")),
    }
}

/// A number, a list of numbers or `{ min, max, step }` (step required).
fn floats(v: &Val<'_, '_>, min: f64, min_open: bool, max: f64, max_open: bool) -> Result<Choices<f64>, SpecError> {
    match v.value.get_ref() {
        DeValue::Integer(_) | DeValue::Float(_) => Ok(Choices(vec![v.float_in(min, min_open, max, max_open)?])),
        DeValue::Array(_) => {
            let items =
                v.items()?.iter().map(|i| i.float_in(min, min_open, max, max_open)).collect::<Result<Vec<_>, _>>()?;
            distinct(v, items)
        }
        DeValue::Table(_) => {
            let t = v.table()?;
            t.check_keys(RANGE_KEYS, "in a range")?;
            let lo = t.require("min", "the smallest value")?.float_in(min, min_open, max, max_open)?;
            let hi = t.require("max", "the largest value")?.float_in(min, min_open, max, max_open)?;
            let step = t
                .require("step", "the distance between two choices, e.g. step = 0.05 (ranges of numbers need one)")?
                .float_in(0.0, true, f64::MAX, false)?;
            if lo > hi {
                return Err(v.err(InvalidKind::BadValue, format!("min = {lo} is larger than max = {hi}")));
            }
            let count = ((hi - lo) / step + 1e-9).floor() as usize + 1;
            if count > MAX_CHOICES {
                return Err(v.err(
                    InvalidKind::BadValue,
                    format!("the range has {count} values; at most {MAX_CHOICES} (use a larger step)"),
                ));
            }
            Ok(Choices((0..count).map(|k| round_sig(lo + k as f64 * step)).collect()))
        }
        _ => Err(v.wrong_type("a number, a list of numbers or { min, max, step }")),
    }
}

/// Rounds away binary noise (`0.1 + 2 * 0.1` → `0.3`): 12 significant digits.
fn round_sig(x: f64) -> f64 {
    format!("{x:.11e}").parse().unwrap_or(x)
}

/// A string or a list of strings, each one of `choices`.
fn strings<T: Copy + PartialEq + std::fmt::Debug>(
    v: &Val<'_, '_>,
    choices: &[(&str, T)],
) -> Result<Choices<T>, SpecError> {
    match v.value.get_ref() {
        DeValue::String(_) => Ok(Choices(vec![v.choice(choices)?])),
        DeValue::Array(_) => {
            let items = v.items()?.iter().map(|i| i.choice(choices)).collect::<Result<Vec<_>, _>>()?;
            distinct(v, items)
        }
        _ => {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            Err(v.wrong_type(&format!("a string or a list of strings among {}", names.join(", "))))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Line-aware access to the space file (the same error style as model.toml: `FILE:LINE: KEY: ...`).

struct Src<'s> {
    origin: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> Src<'s> {
    fn new(origin: &'s str, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1));
        Src { origin, line_starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset).max(1)
    }

    fn error(&self, line: usize, key: impl Into<String>, kind: InvalidKind, message: impl Into<String>) -> SpecError {
        SpecError::Invalid { origin: self.origin.to_string(), line, key: key.into(), message: message.into(), kind }
    }

    fn syntax(&self, span: Option<std::ops::Range<usize>>, message: &str) -> SpecError {
        let start = span.map_or(0, |s| s.start);
        let line = self.line(start);
        SpecError::Syntax {
            origin: self.origin.to_string(),
            line,
            column: start - self.line_starts[line - 1] + 1,
            message: message.trim().to_string(),
        }
    }
}

struct Tab<'a, 'i> {
    src: &'a Src<'a>,
    path: String,
    line: usize,
    table: &'a DeTable<'i>,
}

impl<'a, 'i> Tab<'a, 'i> {
    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    fn check_keys(&self, allowed: &[&str], context: &str) -> Result<(), SpecError> {
        let first = self
            .table
            .iter()
            .filter(|(k, _)| !allowed.contains(&k.get_ref().as_ref()))
            .min_by_key(|(k, _)| k.span().start);
        if let Some((key, _)) = first {
            let name = key.get_ref().as_ref();
            let hint = if !self.path.is_empty() && TOP_KEYS.contains(&name) {
                format!(
                    "`{name}` is a top-level key, but TOML puts every key written after a [table] header into that \
                     table: move it above the first [table] header; "
                )
            } else {
                String::new()
            };
            return Err(self.src.error(
                self.src.line(key.span().start),
                self.key_path(name),
                InvalidKind::UnknownKey,
                format!("unknown key {context}; {hint}allowed keys: {}", allowed.join(", ")),
            ));
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<Val<'a, 'i>> {
        self.table.get_key_value(key).map(|(k, v)| Val {
            src: self.src,
            path: self.key_path(key),
            line: self.src.line(k.span().start),
            value: v,
        })
    }

    fn require(&self, key: &str, what: &str) -> Result<Val<'a, 'i>, SpecError> {
        self.get(key).ok_or_else(|| {
            self.src.error(self.line, self.key_path(key), InvalidKind::Missing, format!("missing; {what}"))
        })
    }
}

struct Val<'a, 'i> {
    src: &'a Src<'a>,
    path: String,
    line: usize,
    value: &'a Spanned<DeValue<'i>>,
}

impl<'a, 'i> Val<'a, 'i> {
    fn err(&self, kind: InvalidKind, message: impl Into<String>) -> SpecError {
        self.src.error(self.line, self.path.clone(), kind, message)
    }

    fn wrong_type(&self, expected: &str) -> SpecError {
        self.err(
            InvalidKind::WrongType,
            format!("expected {expected}, found {}", crate::spec::toml_type_name(self.value.get_ref())),
        )
    }

    fn uint(&self, min: u64, max: u64) -> Result<u64, SpecError> {
        let v = match self.value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| self.err(InvalidKind::BadValue, format!("integer {i} does not fit in 64 bits")))?,
            _ => return Err(self.wrong_type("an integer")),
        };
        if v < 0 || (v as u64) < min || (v as u64) > max {
            return Err(self.err(InvalidKind::BadValue, format!("{v} is out of range; allowed: {min}..={max}")));
        }
        Ok(v as u64)
    }

    fn usize(&self, min: usize, max: usize) -> Result<usize, SpecError> {
        Ok(self.uint(min as u64, max as u64)? as usize)
    }

    fn float_in(&self, min: f64, min_open: bool, max: f64, max_open: bool) -> Result<f64, SpecError> {
        let v = match self.value.get_ref() {
            DeValue::Float(f) => f
                .as_str()
                .replace('_', "")
                .parse::<f64>()
                .map_err(|_| self.err(InvalidKind::BadValue, format!("cannot read {f} as a number")))?,
            DeValue::Integer(_) => self.uint(0, i64::MAX as u64)? as f64,
            _ => return Err(self.wrong_type("a number")),
        };
        let low_ok = if min_open { v > min } else { v >= min };
        let high_ok = if max_open { v < max } else { v <= max };
        if !(v.is_finite() && low_ok && high_ok) {
            let l = if min_open { "(" } else { "[" };
            let h = if max_open { ")" } else { "]" };
            let max = if max == f64::MAX { "inf".to_string() } else { max.to_string() };
            return Err(self.err(InvalidKind::BadValue, format!("{v} is out of range; allowed: {l}{min}, {max}{h}")));
        }
        Ok(v)
    }

    fn str(&self) -> Result<&'a str, SpecError> {
        match self.value.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.wrong_type("a string")),
        }
    }

    fn choice<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T, SpecError> {
        let s = self.str()?;
        choices.iter().find(|(name, _)| *name == s).map(|&(_, v)| v).ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            self.err(InvalidKind::BadValue, format!("`{s}` is not allowed; use one of: {}", names.join(", ")))
        })
    }

    fn table(&self) -> Result<Tab<'a, 'i>, SpecError> {
        match self.value.get_ref() {
            DeValue::Table(t) => Ok(Tab { src: self.src, path: self.path.clone(), line: self.line, table: t }),
            _ => Err(self.wrong_type("a table")),
        }
    }

    /// The elements of a non-empty array.
    fn items(&self) -> Result<Vec<Val<'a, 'i>>, SpecError> {
        let DeValue::Array(items) = self.value.get_ref() else {
            return Err(self.wrong_type("an array"));
        };
        if items.is_empty() {
            return Err(self.err(InvalidKind::BadValue, "the list is empty; give at least one choice"));
        }
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| Val {
                src: self.src,
                path: format!("{}[{i}]", self.path),
                line: self.src.line(item.span().start),
                value: item,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_without_binary_noise() {
        assert_eq!(round_sig(0.1 + 2.0 * 0.1), 0.3);
        assert_eq!(round_sig(1e-3), 1e-3);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("digits-search").is_ok());
        assert!(check_name("bad name").is_err());
        assert!(check_name("").is_err());
    }
}

#[cfg(test)]
mod sampler_tests {
    use super::*;

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
