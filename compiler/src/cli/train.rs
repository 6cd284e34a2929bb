//! `mnistc train MODEL.toml -o CHECKPOINT [--data DIR] [--epochs N] [--train-limit N]
//! [--seed N] [--device cpu|cuda] [--json]`.

use std::path::{Path, PathBuf};

use super::common::{DataArgs, DeviceArg, OverrideArgs};
use super::{CliError, Io};
use crate::cache::Cache;
use crate::data::{self, DataDir, Split};
use crate::spec::ModelSpec;
use crate::train::{self, Checkpoint, Device, TrainError, TrainOptions};

/// Arguments of `mnistc train`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The model description
    #[arg(value_name = "MODEL.toml")]
    pub model: PathBuf,
    /// Where to write the checkpoint (history and spec are written next to it)
    #[arg(short, long, value_name = "CHECKPOINT")]
    pub output: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Where to train
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Print one JSON object on stdout instead of the text report
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no per-epoch lines on stderr
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not store the training in the cache that `mnistc build` reuses
    #[arg(long)]
    pub no_cache: bool,
}

fn train_error(e: TrainError) -> CliError {
    match e {
        TrainError::Diverged { .. } | TrainError::Backend(_) => CliError::failed(e),
        _ => CliError::bad_input(e),
    }
}

/// Fails early (before a long training) if the checkpoint cannot be written there.
fn check_output(path: &Path) -> Result<(), CliError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.file_name().is_none() || path.is_dir() {
        return Err(CliError::bad_input(format!("-o {}: expected a file path for the checkpoint", path.display())));
    }
    if !parent.is_dir() {
        return Err(CliError::bad_input(format!(
            "-o {}: the directory {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    Ok(())
}

/// Runs `mnistc train`.
///
/// # Errors
/// Exit 2 for bad input (model file, data, device not compiled in, output directory), exit 1
/// if training diverges or the checkpoint cannot be written.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let spec = ModelSpec::from_path(&args.model).map_err(CliError::bad_input)?;
    let spec = spec.with_overrides(&args.overrides.overrides()).map_err(CliError::bad_input)?;
    for w in &spec.warnings {
        let _ = writeln!(io.err, "warning: {w}");
    }
    let device = Device::from(args.device);
    if !device.is_compiled_in() {
        return Err(CliError::bad_input(TrainError::CudaUnavailable));
    }
    check_output(&args.output)?;

    let dir = DataDir::resolve(args.data.data.as_deref());
    let dataset = spec.data.dataset;
    let train_set = data::load(&dir, dataset, Split::Train).map_err(CliError::bad_input)?;
    let test_set = data::load(&dir, dataset, Split::Test).map_err(CliError::bad_input)?;
    let digests = data::file_digests(&dir, dataset).map_err(CliError::bad_input)?;

    if !args.quiet {
        let _ = writeln!(
            io.err,
            "training {} on {} ({} training images{}) for {} epochs on {}",
            spec.name,
            dataset,
            if spec.data.train_limit > 0 { spec.data.train_limit.min(train_set.n) } else { train_set.n },
            if spec.data.validation > 0.0 {
                format!(", {:.0}% held out for validation", spec.data.validation * 100.0)
            } else {
                String::new()
            },
            spec.train.epochs,
            device
        );
    }
    let opts = TrainOptions { device, progress: !args.quiet, verbose: !args.quiet };
    let model = train::train(&spec, &train_set, &opts).map_err(train_error)?;
    let eval = train::evaluate(&model, &test_set, device).map_err(train_error)?;
    let checkpoint = Checkpoint::new(model, digests, Some(eval.clone()));
    let files = checkpoint.save(&args.output).map_err(CliError::failed)?;
    // Also into the training cache, so that `mnistc build` of the same model reuses it.
    if !args.no_cache
        && let Err(e) = Cache::from_env().store(&spec, &checkpoint.data_digests, &checkpoint)
    {
        let _ = writeln!(io.err, "warning: could not store the training in the cache: {e}");
    }
    let model = &checkpoint.model;
    let history = &model.history;

    if args.json {
        let mut json = eval.to_json();
        let extra = serde_json::json!({
            "model": spec.name,
            "origin": spec.origin,
            "dataset": dataset.name(),
            "device": device.name(),
            "seed": spec.train.seed,
            "params": spec.total_params().unwrap_or(0),
            "macs": spec.total_macs().unwrap_or(0),
            "checkpoint": files.checkpoint,
            "files": {
                "history_json": files.history_json,
                "history_csv": files.history_csv,
                "spec_json": files.spec_json,
            },
            "epochs": history.epochs,
            "best_epoch": history.best_epoch,
            "restored_best": history.restored_best,
            "stopped_early": history.stopped_early,
            "train_images": history.train_images,
            "validation_images": history.validation_images,
            "train_seconds": history.seconds,
            "mean_epoch_seconds": history.epochs.iter().map(|e| e.seconds).sum::<f64>()
                / history.epochs.len().max(1) as f64,
            "warnings": spec.warnings,
        });
        if let (Some(obj), serde_json::Value::Object(extra)) = (json.as_object_mut(), extra) {
            obj.extend(extra);
        }
        writeln!(io.out, "{json}").map_err(CliError::failed)?;
    } else {
        let text = format!(
            "trained {} on {} images ({} validation) for {} epochs in {:.1} s on {}{}\n\
             float test {}\n\
             checkpoint: {}\n  history: {}, {}\n  spec: {}\n",
            spec.name,
            history.train_images,
            history.validation_images,
            history.epochs.len(),
            history.seconds,
            device,
            match (history.restored_best, history.best_epoch) {
                (true, Some(e)) => format!(" (weights of epoch {e}, lowest validation loss)"),
                _ => String::new(),
            },
            eval.render(),
            files.checkpoint.display(),
            files.history_json.display(),
            files.history_csv.display(),
            files.spec_json.display()
        );
        io.out.write_all(text.as_bytes()).map_err(CliError::failed)?;
    }
    Ok(())
}
