//! Full-data training benchmark (not a test): trains every model in `models/` on the whole
//! training set, evaluates the float model on the whole test set, and records wall time per
//! epoch, images per second, the mean epoch's breakdown by phase (data, forward, backward,
//! optimizer, metrics, validation; `mnistc::train::profile`) and test accuracy against the
//! accuracy bars.
//!
//! ```text
//! cargo bench --bench train_models                       # all four models, their own seeds
//! cargo bench --bench train_models -- digits mlp         # some models
//! cargo bench --bench train_models -- --seeds 42,1,2     # several seeds each
//! cargo bench --bench train_models -- --out results.json # default: target/train-models.json
//! ```
//!
//! Needs the data sets (`--data DIR`, else `$MNISTC_DATA`, else `../shared/data`). Writes a
//! JSON file and a Markdown table next to it (`.md`) and prints the table. Takes tens of
//! minutes on a 2-core CPU.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mnistc::data::{self, DataDir, Split};
use mnistc::spec::{ModelSpec, Overrides};
use mnistc::train::profile::Profile;
use mnistc::train::{self, Device, TrainOptions};

/// (model, float test-accuracy bar)
const MODELS: &[(&str, f64)] = &[("digits", 0.993), ("mlp", 0.980), ("fashion", 0.916), ("fashion-mlp", 0.880)];

struct Run {
    model: String,
    seed: u64,
    epochs: usize,
    epoch_seconds: Vec<f64>,
    total_seconds: f64,
    accuracy: f64,
    bar: f64,
    profile: Profile,
}

fn main() {
    // As the `mnistc` binary does: keep burn's freed buffers in the process (train/malloc.rs).
    mnistc::train::malloc::keep_freed_memory();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = Vec::new();
    let mut seeds: Option<Vec<u64>> = None;
    let mut out = root.join("target/train-models.json");
    let mut data_dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {} // passed by `cargo bench`
            "--seeds" => {
                seeds = args
                    .next()
                    .map(|s| s.split(',').map(|v| v.trim().parse().expect("--seeds takes integers")).collect())
            }
            "--out" => out = PathBuf::from(args.next().expect("--out FILE")),
            "--data" => data_dir = args.next().map(PathBuf::from),
            other if other.starts_with('-') => panic!("unknown option {other}"),
            other => names.push(other.to_string()),
        }
    }
    if names.is_empty() {
        names = MODELS.iter().map(|(n, _)| n.to_string()).collect();
    }
    let dir = match data_dir {
        Some(d) => DataDir::new(d),
        None if std::env::var_os("MNISTC_DATA").is_some() => DataDir::resolve(None),
        None => DataDir::new(root.join("../shared/data")),
    };

    let mut runs = Vec::new();
    for name in &names {
        let bar = MODELS.iter().find(|(n, _)| n == name).map_or(0.0, |(_, b)| *b);
        let spec =
            ModelSpec::from_path(&root.join("models").join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e}"));
        let train_set = data::load(&dir, spec.data.dataset, Split::Train).unwrap_or_else(|e| panic!("{e}"));
        let test_set = data::load(&dir, spec.data.dataset, Split::Test).unwrap_or_else(|e| panic!("{e}"));
        for seed in seeds.clone().unwrap_or_else(|| vec![spec.train.seed]) {
            let spec = spec
                .with_overrides(&Overrides { seed: Some(seed), ..Overrides::default() })
                .unwrap_or_else(|e| panic!("{e}"));
            eprintln!("== {name}, seed {seed}: {} epochs", spec.train.epochs);
            let start = Instant::now();
            let opts = TrainOptions { device: Device::Cpu, progress: true, verbose: true, ..TrainOptions::default() };
            let model = train::train(&spec, &train_set, &opts).unwrap_or_else(|e| panic!("{e}"));
            let eval = train::evaluate(&model, &test_set, Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
            let run = Run {
                model: name.clone(),
                seed,
                epochs: model.history.epochs.len(),
                epoch_seconds: model.history.epochs.iter().map(|e| e.seconds).collect(),
                total_seconds: start.elapsed().as_secs_f64(),
                accuracy: eval.accuracy,
                bar,
                profile: Profile::of(&model.history),
            };
            eprint!("{}", run.profile.render());
            eprintln!(
                "== {name}, seed {seed}: test accuracy {:.2}% (bar {:.1}%) in {:.0} s",
                run.accuracy * 100.0,
                bar * 100.0,
                run.total_seconds
            );
            runs.push(run);
        }
    }

    let json: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            serde_json::json!({
                "model": r.model,
                "seed": r.seed,
                "epochs": r.epochs,
                "epoch_seconds": r.epoch_seconds,
                "mean_epoch_seconds": mean(&r.epoch_seconds),
                "total_seconds": r.total_seconds,
                "test_accuracy": r.accuracy,
                "bar": r.bar,
                "passes": r.accuracy >= r.bar,
                "profile": r.profile,
            })
        })
        .collect();
    let mut md = String::from(
        "| model | seed | epochs | s/epoch (mean) | images/s | data / forward / backward / optimizer / validation s | total s | float test accuracy | bar |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.0} | {:.1} / {:.1} / {:.1} / {:.1} / {:.1} | {:.0} | {:.2} % | {:.1} % {} |",
            r.model,
            r.seed,
            r.epochs,
            mean(&r.epoch_seconds),
            r.profile.images_per_second,
            r.profile.phases.data,
            r.profile.phases.forward,
            r.profile.phases.backward,
            r.profile.phases.optimizer,
            r.profile.phases.validation,
            r.total_seconds,
            r.accuracy * 100.0,
            r.bar * 100.0,
            if r.accuracy >= r.bar { "(met)" } else { "(missed)" }
        );
    }
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let pretty = serde_json::to_string_pretty(&json).unwrap_or_default();
    if let Err(e) = std::fs::write(&out, pretty) {
        eprintln!("cannot write {}: {e}", out.display());
    }
    let md_path = out.with_extension("md");
    if let Err(e) = std::fs::write(&md_path, &md) {
        eprintln!("cannot write {}: {e}", md_path.display());
    }
    println!("{md}");
    println!("written: {} and {}", out.display(), md_path.display());
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}
