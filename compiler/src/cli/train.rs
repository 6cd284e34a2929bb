//! `mnistc train MODEL.toml -o CHECKPOINT [--data DIR] [--epochs N] [--train-limit N]
//! [--seed N] [--member K] [--device cpu|cuda] [--pause-after N] [--profile] [--json]`.

use std::path::PathBuf;

use super::common::{PauseArgs, TrainingArgs, check_output_path};
use super::{CliError, Io};
use crate::pipeline::{self, TrainedRun};
use crate::report::curves::Curves;
use crate::report::picture;
use crate::train::checkpoint::side_path;

/// Arguments of `mnistc train`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "The training saves its state in the training cache after every epoch: run the same \
command again after an interruption (or --pause-after) and it continues from the last finished epoch, with the \
bytes of an uninterrupted run.\n\
Exit codes: 0 trained, 1 the training diverged or a file could not be written, 2 bad input, 3 paused by \
--pause-after.")]
pub struct Args {
    /// The model description
    #[arg(value_name = "MODEL.toml")]
    pub model: PathBuf,
    /// Where to write the checkpoint (history, training curves and spec are written next to it)
    #[arg(short, long, value_name = "CHECKPOINT")]
    pub output: PathBuf,
    #[command(flatten)]
    pub training: TrainingArgs,
    #[command(flatten)]
    pub pause: PauseArgs,
    /// Print one JSON object on stdout instead of the text report
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no per-epoch lines on stderr
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not store the training in the cache that `mnistc build` reuses
    #[arg(long)]
    pub no_cache: bool,
    /// Train member K (from 1) of an `[ensemble]` (needed for ensembles: a checkpoint holds one
    /// network; `mnistc build` trains, or reuses, every member)
    #[arg(long, value_name = "K")]
    pub member: Option<usize>,
    /// Time each phase of the training loop (data, forward, backward, optimizer, metrics,
    /// validation) and print the mean epoch's breakdown and images per second (bypasses the
    /// training cache: a cached training has no fresh timings)
    #[arg(long)]
    pub profile: bool,
}

/// Runs `mnistc train`.
///
/// # Errors
/// Exit 2 for bad input (model file, data, device not compiled in, output directory), exit 1
/// if training diverges or the checkpoint cannot be written.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let spec = member(args.training.spec(&args.model, io.err)?, args.member)?;
    let device = args.training.device()?;
    check_output_path(&args.output, "checkpoint")?;

    // A cached training has no fresh timings: `--profile` always trains.
    let mut opts = args.training.build_options(device, args.no_cache || args.profile, args.quiet, io.err);
    args.pause.apply(&mut opts, "--no-cache (or --profile)")?;
    opts.profile = args.profile;
    let TrainedRun { checkpoint, test: eval } =
        pipeline::train_and_evaluate(&spec, &mut opts).map_err(CliError::from)?;
    let files = checkpoint.save(&args.output).map_err(CliError::failed)?;
    let dataset = spec.data.dataset;
    let model = &checkpoint.model;
    let history = &model.history;
    let curves = Curves { title: &spec.name, history };
    let curves_png = side_path(&args.output, ".curves.png");
    let curves_svg = side_path(&args.output, ".curves.svg");
    let png = picture::png(&curves).map_err(CliError::failed)?;
    let svg = picture::svg(&curves).map_err(CliError::failed)?;
    for (path, bytes) in [(&curves_png, png.as_slice()), (&curves_svg, svg.as_bytes())] {
        crate::atomic::write(path, bytes).map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
    }

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
                "curves_png": curves_png,
                "curves_svg": curves_svg,
                "spec_json": files.spec_json,
            },
            "epochs": history.epochs,
            "best_epoch": history.best_epoch,
            "restored_best": history.restored_best,
            "stopped_early": history.stopped_early,
            "train_images": history.train_images,
            "validation_images": history.validation_images,
            "train_seconds": history.seconds,
            "mean_epoch_seconds": history.mean_epoch_seconds(),
            "warnings": spec.warnings,
            "profile": args.profile.then(|| crate::train::profile::Profile::of(history)),
        });
        if let (Some(obj), serde_json::Value::Object(extra)) = (json.as_object_mut(), extra) {
            obj.extend(extra);
        }
        writeln!(io.out, "{json}").map_err(CliError::failed)?;
    } else {
        let text = format!(
            "trained {} on {} images ({} validation) for {} epochs in {:.1} s on {}{}\n\
             float test {}\n\
             checkpoint: {}\n  history: {}, {}\n  curves: {}, {}\n  spec: {}\n",
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
            curves_png.display(),
            curves_svg.display(),
            files.spec_json.display()
        );
        io.out.write_all(text.as_bytes()).map_err(CliError::failed)?;
        if args.profile {
            let table = crate::train::profile::Profile::of(history).render();
            io.out.write_all(table.as_bytes()).map_err(CliError::failed)?;
        }
    }
    Ok(())
}

/// The network `mnistc train` trains: the spec itself, or member `k` of its `[ensemble]`.
fn member(spec: crate::spec::ModelSpec, k: Option<usize>) -> Result<crate::spec::ModelSpec, CliError> {
    let mut members = spec.members();
    let n = members.len();
    match (k, &spec.ensemble) {
        (None, None) => Ok(spec),
        (Some(_), None) => Err(CliError::bad_input(format!("--member: {} has no [ensemble]", spec.origin))),
        (None, Some(_)) => Err(CliError::bad_input(format!(
            "{}: [ensemble] trains {n} networks and a checkpoint holds one: pass --member K (1 to {n}) \
             to train one of them, or run `mnistc build`, which trains (or reuses) every member",
            spec.origin
        ))),
        (Some(k), Some(_)) if (1..=n).contains(&k) => Ok(members.swap_remove(k - 1)),
        (Some(k), Some(_)) => Err(CliError::bad_input(format!("--member {k}: {} has members 1 to {n}", spec.origin))),
    }
}
