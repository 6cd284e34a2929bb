//! Reading and validating a search-space file, through the shared TOML reader
//! ([`crate::spec::reader`]): errors name the file, the line, the key path and what is allowed.

use std::path::Path;

use super::{BlockChoice, Choices, Dims, HeadChoice, OptimizerChoice, PoolChoice, SearchSpace};
use crate::spec::reader::{Source, Value};
use crate::spec::{InvalidKind, LrSchedule, ModelSpec, Optimizer, Padding, Precision, SpecError, TargetSpec};
use toml::de::DeValue;

const TOP_KEYS: &[&str] = &["name", "base", "trials", "seed", "train_limit", "space", "target"];
const SPACE_KEYS: &[&str] = &[
    "conv_layers",
    "filters",
    "kernel",
    "stride",
    "padding",
    "pool",
    "block",
    "batchnorm",
    "head",
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
impl SearchSpace {
    /// Reads and validates a space file and its base model.
    ///
    /// # Errors
    /// [`SpecError`] naming the file, line and key (the base model's own errors name the base).
    pub fn from_path(path: &Path) -> Result<SearchSpace, SpecError> {
        let text = crate::spec::reader::read_text(path)?;
        SearchSpace::parse(&text, path)
    }

    /// Parses a space file whose text is `text` and whose path is `path` (the base model is
    /// resolved relative to it).
    ///
    /// # Errors
    /// As [`SearchSpace::from_path`].
    pub fn parse(text: &str, path: &Path) -> Result<SearchSpace, SpecError> {
        let origin = path.display().to_string();
        let src = Source::new(&origin, text, TOP_KEYS);
        let doc = src.parse(text)?;
        let root = src.root(&doc);
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
        if base.ensemble.is_some() {
            return Err(base_value.err(
                InvalidKind::Inconsistent,
                format!(
                    "the base model {} is an [ensemble]; a search trial trains and scores one network, so use \
                     a base without [ensemble] (and build the best candidate with `mnistc build --members N`)",
                    base_path.display()
                ),
            ));
        }
        if !base.head.is_softmax() {
            return Err(base_value.err(
                InvalidKind::Inconsistent,
                format!(
                    "the base model {} has an svm [head]; a search trial scores the trained softmax head, so use a \
                     base without [head] (and give the best candidate the [head] afterwards)",
                    base_path.display()
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

pub(super) fn check_limit(limit: usize, validation: f64) -> Result<(), String> {
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

fn read_dims(t: &crate::spec::reader::Table<'_, '_>, base: &ModelSpec) -> Result<Dims, SpecError> {
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
    let block = match t.get("block") {
        Some(v) => strings(
            &v,
            &[("conv", BlockChoice::Conv), ("separable", BlockChoice::Separable), ("residual", BlockChoice::Residual)],
        )?,
        None => Choices(vec![BlockChoice::Conv]),
    };
    let batchnorm = match t.get("batchnorm") {
        Some(v) => bools(&v)?,
        None => Choices(vec![false]),
    };
    let head = match t.get("head") {
        Some(v) => strings(&v, &[("flatten", HeadChoice::Flatten), ("global_avgpool", HeadChoice::GlobalAvgpool)])?,
        None => Choices(vec![HeadChoice::Flatten]),
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
                LrSchedule::Cosine { min_lr, .. } | LrSchedule::Plateau { min_lr, .. } => min_lr,
                LrSchedule::None | LrSchedule::Step { .. } | LrSchedule::OneCycle { .. } => 0.0,
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
        block,
        batchnorm,
        head,
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
fn distinct<T: PartialEq + std::fmt::Debug>(v: &Value<'_, '_>, items: Vec<T>) -> Result<Choices<T>, SpecError> {
    for (i, a) in items.iter().enumerate() {
        if items[..i].contains(a) {
            return Err(v.err(InvalidKind::BadValue, format!("{a:?} is listed twice; list every choice once")));
        }
    }
    Ok(Choices(items))
}

/// An integer, a list of integers or `{ min, max, step = 1 }`, each in `min..=max`.
fn ints(v: &Value<'_, '_>, min: usize, max: usize) -> Result<Choices<usize>, SpecError> {
    match v.raw() {
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
fn floats(v: &Value<'_, '_>, min: f64, min_open: bool, max: f64, max_open: bool) -> Result<Choices<f64>, SpecError> {
    match v.raw() {
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
    v: &Value<'_, '_>,
    choices: &[(&str, T)],
) -> Result<Choices<T>, SpecError> {
    match v.raw() {
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

/// `true`, `false` or a list of them.
fn bools(v: &Value<'_, '_>) -> Result<Choices<bool>, SpecError> {
    match v.raw() {
        DeValue::Boolean(_) => Ok(Choices(vec![v.bool()?])),
        DeValue::Array(_) => {
            let items = v.items()?.iter().map(Value::bool).collect::<Result<Vec<_>, _>>()?;
            distinct(v, items)
        }
        _ => Err(v.wrong_type("true, false or a list such as [false, true]")),
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
