//! `mnistc search SPACE.toml -o DIR [--trials N] [--data DIR] [--train-limit N] [--epochs N]
//! [--seed N] [--device cpu|cuda] [--json]`.

use std::path::PathBuf;

use super::common::TrainingArgs;
use super::{CliError, Io};
use crate::search::{self, Outcome, SearchError, SearchOptions, SearchSpace, Status};

/// Arguments of `mnistc search`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Random search without repeats over the space file (see models/README.md). Candidates over a \
[target] budget are recorded without training; the others are trained on the training split and scored in float and \
as the int8 blob run by the runtime on the validation split (never the test set).\n\
DIR gets journal.jsonl (one line per finished trial, rewritten after every trial), results.md and results.csv (trials \
ranked by int8 validation accuracy, Pareto front marked) and best.toml (the best trial under budget; `mnistc build \
DIR/best.toml -o best.bin` builds it). Running the same command again resumes: finished trials are kept.\n\
--epochs replaces the space's epochs per trial, --train-limit its images per trial, --seed its seed.\n\
Exit codes: 0 done, 1 no trial fits the budgets (or a trial failed to lower), 2 bad input (space file, base model, \
data, a journal of another search).")]
pub struct Args {
    /// The search space
    #[arg(value_name = "SPACE.toml")]
    pub space: PathBuf,
    /// Output directory (created if missing; resumed if it holds a journal of the same search)
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Trials wanted in DIR: trained (or failed) candidates; over-budget draws are recorded but not counted
    /// [default: the space's `trials`]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub trials: Option<u64>,
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Print the ranked trials as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no per-trial lines on stderr
    #[arg(short, long)]
    pub quiet: bool,
}

fn search_error(e: SearchError) -> CliError {
    if e.is_bad_input() { CliError::bad_input(e) } else { CliError::failed(e) }
}

/// The ranked trials and what the run did, as JSON.
pub fn to_json(space: &SearchSpace, outcome: &Outcome, wanted: usize) -> serde_json::Value {
    let trials: Vec<serde_json::Value> = outcome
        .ranked()
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r.record).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert("rank".into(), serde_json::json!(r.rank));
                obj.insert("pareto".into(), serde_json::json!(r.pareto));
                obj.insert("best".into(), serde_json::json!(r.best));
            }
            v
        })
        .collect();
    let best = outcome.best.map(|t| {
        let r = &outcome.records[t - 1];
        serde_json::json!({
            "trial": r.trial,
            "name": r.name,
            "val_accuracy_int8": r.val_accuracy_int8,
            "val_accuracy_float": r.val_accuracy_float,
            "flash_bytes": r.flash_bytes,
            "arena_bytes": r.arena_bytes,
            "macs": r.macs,
            "path": outcome.files.best,
        })
    });
    let count = |s: Status| outcome.records.iter().filter(|r| r.status == s).count();
    serde_json::json!({
        "space": space.origin,
        "name": space.name,
        "base": space.base_path,
        "dataset": space.base.data.dataset.name(),
        "seed": space.seed,
        "train_limit": space.train_limit,
        "target": space.target,
        "trials_wanted": wanted,
        "trials_done": outcome.records.len(),
        "trained": count(Status::Trained),
        "over_budget": count(Status::OverBudget),
        "failed": count(Status::Failed),
        "reused": outcome.reused,
        "trained_this_run": outcome.trained_now,
        "over_budget_this_run": outcome.over_budget_now,
        "resampled": outcome.resampled,
        "repeats": outcome.repeats,
        "dropped_incomplete_line": outcome.dropped_incomplete,
        "exhausted": outcome.exhausted,
        "draw_limit_reached": outcome.draw_limit,
        "best": best,
        "files": outcome.files,
        "trials": trials,
    })
}

/// Runs `mnistc search`.
///
/// # Errors
/// Exit 2 for bad input, 1 when no trial fits the budgets or a run step fails.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let space = SearchSpace::from_path(&args.space).map_err(CliError::bad_input)?;
    let space = space.with_overrides(&args.training.overrides.overrides()).map_err(CliError::bad_input)?;
    for w in &space.base.warnings {
        let _ = writeln!(io.err, "warning: {w}");
    }
    let device = args.training.device()?;
    if args.output.exists() && !args.output.is_dir() {
        return Err(CliError::bad_input(format!("-o {}: not a directory", args.output.display())));
    }
    let wanted = args.trials.map_or(space.trials, |n| n as usize);

    let mut sink = std::io::sink();
    let log: &mut dyn std::io::Write = if args.quiet { &mut sink } else { io.err };
    let mut opts = SearchOptions {
        dir: args.output.clone(),
        trials: wanted,
        data: args.training.data_dir(),
        device,
        progress: !args.quiet,
        log,
    };
    let outcome = search::search(&space, &mut opts).map_err(search_error)?;

    if args.json {
        writeln!(io.out, "{}", to_json(&space, &outcome, wanted)).map_err(CliError::failed)?;
    } else {
        let count = |s: Status| outcome.records.iter().filter(|r| r.status == s).count();
        let mut text = format!(
            "search {}: {} trials in {} ({} kept, {} trained now, {} over budget now); {} trained, {} over budget, \
             {} failed; {} draws resampled (layers did not fit)\n",
            space.name,
            outcome.records.len(),
            args.output.display(),
            outcome.reused,
            outcome.trained_now,
            outcome.over_budget_now,
            count(Status::Trained),
            count(Status::OverBudget),
            count(Status::Failed),
            outcome.resampled,
        );
        if let Some(t) = outcome.best {
            let r = &outcome.records[t - 1];
            text.push_str(&format!(
                "best under budget: t{:03} val int8 {:.2} % (float {:.2} %), flash {} B, arena {} B, {} MACs\n",
                r.trial,
                100.0 * r.val_accuracy_int8.unwrap_or(0.0),
                100.0 * r.val_accuracy_float.unwrap_or(0.0),
                r.flash_bytes,
                r.arena_bytes,
                r.macs
            ));
        }
        text.push_str(&format!(
            "wrote {}, {}, {}",
            outcome.files.journal.display(),
            outcome.files.markdown.display(),
            outcome.files.csv.display()
        ));
        if let Some(b) = &outcome.files.best {
            text.push_str(&format!(", {}", b.display()));
        }
        text.push_str(&format!(
            "\npictures {}, {}\n",
            outcome.files.pareto_png.display(),
            outcome.files.params_png.display()
        ));
        io.out.write_all(text.as_bytes()).map_err(CliError::failed)?;
    }
    if outcome.best.is_none() {
        return Err(CliError::failed(format!(
            "no trial fits the budgets ({} trials: {} over budget, {} failed); see {}",
            outcome.records.len(),
            outcome.records.iter().filter(|r| r.status == Status::OverBudget).count(),
            outcome.records.iter().filter(|r| r.status == Status::Failed).count(),
            outcome.files.markdown.display()
        )));
    }
    Ok(())
}
