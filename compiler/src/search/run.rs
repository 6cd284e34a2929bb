//! The search itself: trials drawn from a space, each built by the pipeline and journaled.

use crate::data::{self, DataDir, DataError, Images, Split, TrainingSplit, prepare_training};
use crate::lower::budget;
use crate::pipeline::{self, BuildError};
use crate::report::picture::{self, PictureError};
use crate::report::search_pictures::{ParamsChart, ParetoChart};
use crate::spec::{ModelSpec, Overrides, SpecError};
use crate::train::{self, Device, TrainError, TrainOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Candidate, Header, Journal, JournalError, Params, Ranked, SearchSpace, Status, TrialRecord, pareto};

/// How to search.
pub struct SearchOptions<'a> {
    /// Output directory (created if missing).
    pub dir: PathBuf,
    /// Trials wanted in the directory (in total, counting those already in the journal).
    pub trials: usize,
    /// Where the data sets are.
    pub data: DataDir,
    /// Where to train.
    pub device: Device,
    /// Show a progress bar over the trials (only when stderr is a terminal).
    pub progress: bool,
    /// One line per trial and the summary (stderr for the CLI).
    pub log: &'a mut dyn Write,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The space file (or a candidate it generates) is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The data files are missing or malformed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The journal belongs to another search, is damaged or cannot be written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Training failed (other than diverging, which fails only the trial).
    #[error("trial {trial}: {source}")]
    Train {
        /// 1-based trial.
        trial: usize,
        /// The error.
        source: TrainError,
    },
    /// Lowering or quantizing a trained candidate failed.
    #[error("trial {trial}: {source}")]
    Build {
        /// 1-based trial.
        trial: usize,
        /// The error.
        source: BuildError,
    },
    /// The output directory or a result file cannot be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A picture could not be drawn.
    #[error(transparent)]
    Picture(#[from] PictureError),
    /// The base model's settings leave no validation images for the trials.
    #[error(
        "{images} training images per trial with the base's data.validation = {fraction} leave no validation images \
         (the hold-out is rounded per class); use more images (train_limit or --train-limit)"
    )]
    NoValidation {
        /// Training images of a trial.
        images: usize,
        /// The validation fraction.
        fraction: f64,
    },
}

impl SearchError {
    /// Whether the error is the user's input (exit 2) rather than a failed run (exit 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            SearchError::Spec(_) | SearchError::Data(_) | SearchError::NoValidation { .. } => true,
            SearchError::Journal(e) => !matches!(e, JournalError::Io { .. }),
            SearchError::Train { source, .. } => source.is_bad_input(),
            SearchError::Build { .. } | SearchError::Io { .. } | SearchError::Picture(_) => false,
        }
    }
}

/// The files a search writes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Files {
    /// `DIR/journal.jsonl`.
    pub journal: PathBuf,
    /// `DIR/results.md`.
    pub markdown: PathBuf,
    /// `DIR/results.csv`.
    pub csv: PathBuf,
    /// `DIR/best.toml` (absent when no trial fits the budget).
    pub best: Option<PathBuf>,
    /// `DIR/pareto.png`: accuracy against flash and arena, the Pareto front drawn.
    pub pareto_png: PathBuf,
    /// `DIR/params.png`: accuracy against each sampled hyper-parameter.
    pub params_png: PathBuf,
}

/// What a search did.
#[derive(Debug)]
pub struct Outcome {
    /// Every trial of the directory, in trial order.
    pub records: Vec<TrialRecord>,
    /// Trials found in the journal and kept.
    pub reused: usize,
    /// Trials trained by this run.
    pub trained_now: usize,
    /// Over-budget trials recorded by this run.
    pub over_budget_now: usize,
    /// Draws resampled because their layers did not fit (all candidates of the directory).
    pub resampled: usize,
    /// Draws resampled because they repeated a candidate.
    pub repeats: usize,
    /// Whether an incomplete journal line was dropped (its trial was redone).
    pub dropped_incomplete: bool,
    /// Whether the space ran out of new candidates before `trials` were trained.
    pub exhausted: bool,
    /// Whether this run stopped at [`MAX_OVER_BUDGET_DRAWS`] over-budget draws.
    pub draw_limit: bool,
    /// Trial number of the best trial under budget.
    pub best: Option<usize>,
    /// The files written.
    pub files: Files,
}

impl Outcome {
    /// The trials ranked (see [`pareto::rank`]).
    pub fn ranked(&self) -> Vec<Ranked<'_>> {
        pareto::rank(&self.records)
    }
}

/// Over-budget draws one run records at most before it stops looking for candidates that fit.
pub const MAX_OVER_BUDGET_DRAWS: usize = 10_000;

/// Everything that makes trials comparable, hashed into the journal header.
pub fn inputs(space: &SearchSpace, digests: &[data::FileDigest]) -> serde_json::Value {
    let mut inputs = space.canonical_json();
    if let Some(obj) = inputs.as_object_mut() {
        obj.insert("data".into(), serde_json::to_value(digests).unwrap_or_default());
    }
    inputs
}

/// Runs (or resumes) a search of `space` into `opts.dir`.
///
/// # Errors
/// [`SearchError`]; bad input (see [`SearchError::is_bad_input`]) is reported before any training.
pub fn search(space: &SearchSpace, opts: &mut SearchOptions<'_>) -> Result<Outcome, SearchError> {
    let dir = opts.dir.clone();
    let dataset = space.base.data.dataset;
    data::download::ensure(&opts.data, dataset, opts.progress, opts.log)?;
    let train_set = data::load(&opts.data, dataset, Split::Train)?;
    let digests = data::file_digests(&opts.data, dataset)?;
    let ctx = TrialContext::new(space, &train_set, &digests, opts.device)?;
    std::fs::create_dir_all(&dir).map_err(|source| SearchError::Io { path: dir.clone(), source })?;
    let header = Header::new(inputs(space, &digests));
    let mut journal = Journal::open(&dir, &header)?;
    if journal.dropped_incomplete {
        let _ =
            writeln!(opts.log, "{}: dropped an incomplete last line; that trial is redone", journal.path().display());
    }

    // Regenerate the candidates of the finished trials (the sequence is fixed by the seed) and
    // check that they are the ones in the journal.
    let mut sampler = space.sampler();
    let mut candidates: Vec<Candidate> = Vec::new();
    for record in journal.records() {
        let candidate = sampler.next_candidate()?;
        match candidate {
            Some(c) if c.params == record.params => candidates.push(c),
            _ => {
                return Err(JournalError::Mismatch {
                    path: journal.path().to_path_buf(),
                    changed: vec![format!(
                        "trial {} is not the candidate this space draws (was the journal written by another mnistc \
                         version?)",
                        record.trial
                    )],
                }
                .into());
            }
        }
    }
    let reused = journal.records().len();

    // A trial is a trained (or failed) candidate; over-budget draws are recorded but cost no
    // training, so they do not count (keras-tuner's `max_trials`).
    let counted = |records: &[TrialRecord]| records.iter().filter(|r| r.status != Status::OverBudget).count();
    let bar = trial_bar(opts.progress, opts.trials.max(counted(journal.records())), counted(journal.records()));
    let (mut trained_now, mut over_budget_now, mut exhausted, mut draw_limit) = (0, 0, false, false);
    let mut over_by: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    while counted(journal.records()) < opts.trials {
        if over_budget_now >= MAX_OVER_BUDGET_DRAWS {
            draw_limit = true;
            break;
        }
        let Some(candidate) = sampler.next_candidate()? else {
            exhausted = true;
            break;
        };
        bar.set_message(format!("t{:03}: {}", candidate.trial, describe(&candidate.params)));
        let record = ctx.run(&candidate)?;
        match record.status {
            Status::OverBudget => {
                over_budget_now += 1;
                for budget in &record.over_budget {
                    *over_by.entry(budget.clone()).or_default() += 1;
                }
            }
            Status::Trained | Status::Failed => {
                trained_now += 1;
                bar.inc(1);
            }
        }
        journal.append(record.clone())?;
        let line = trial_line(&record, opts.trials);
        bar.suspend(|| {
            let _ = writeln!(opts.log, "{line}");
        });
        candidates.push(candidate);
    }
    bar.finish_and_clear();
    let trained = counted(journal.records());
    if exhausted {
        let _ = writeln!(
            opts.log,
            "the space has no further candidate that fits its input ({} draws in all, {trained} of {} trials              trained); stopping",
            journal.records().len(),
            opts.trials
        );
    }
    if draw_limit {
        let by: Vec<String> = over_by.iter().map(|(budget, n)| format!("{n} over {budget}")).collect();
        let _ = writeln!(
            opts.log,
            "stopped after {over_budget_now} over-budget draws in this run ({}) with {trained} of {} trials \
             trained; widen [target] or narrow the space",
            by.join(", "),
            opts.trials
        );
    }

    let records = journal.records().to_vec();
    let ranked = pareto::rank(&records);
    let best = ranked.iter().find(|r| r.best).map(|r| r.record.trial);
    let files = Files {
        journal: journal.path().to_path_buf(),
        markdown: dir.join("results.md"),
        csv: dir.join("results.csv"),
        best: best.map(|_| dir.join("best.toml")),
        pareto_png: dir.join("pareto.png"),
        params_png: dir.join("params.png"),
    };
    let write = |path: &Path, text: &str| {
        crate::atomic::write(path, text.as_bytes())
            .map_err(|source| SearchError::Io { path: path.to_path_buf(), source })
    };
    let outcome_counts = (sampler.total_resampled, sampler.total_repeats);
    let summary = summary_markdown(space, &records, outcome_counts.0, best);
    let pictures = "![accuracy against flash and arena, the Pareto front](pareto.png)\n\n\
                    ![accuracy against each sampled hyper-parameter](params.png)\n";
    write(&files.markdown, &format!("{summary}\n{pictures}\n{}", pareto::markdown(&ranked)))?;
    write(&files.csv, &pareto::csv(&ranked))?;
    let title = format!("search {}: {} trained trials", space.name, ranked.iter().filter(|r| r.rank.is_some()).count());
    let pareto_png = picture::png(&ParetoChart { title: &title, records: &records, best })?;
    let params_png = picture::png(&ParamsChart { title: &title, records: &records })?;
    for (path, bytes) in [(&files.pareto_png, &pareto_png), (&files.params_png, &params_png)] {
        crate::atomic::write(path, bytes).map_err(|source| SearchError::Io { path: path.to_path_buf(), source })?;
    }
    let best_path = dir.join("best.toml");
    match best {
        Some(trial) => {
            let record = &records[trial - 1];
            let text = best_toml(space, record, &candidates[trial - 1], records.len());
            write(&best_path, &text)?;
        }
        None => {
            // A best.toml left from an earlier, different run would be misleading.
            if best_path.exists() {
                std::fs::remove_file(&best_path)
                    .map_err(|source| SearchError::Io { path: best_path.clone(), source })?;
            }
        }
    }
    Ok(Outcome {
        records,
        reused,
        trained_now,
        over_budget_now,
        resampled: outcome_counts.0,
        repeats: outcome_counts.1,
        dropped_incomplete: journal.dropped_incomplete,
        exhausted,
        draw_limit,
        best,
        files,
    })
}

fn trial_bar(enabled: bool, total: usize, done: usize) -> ProgressBar {
    let visible = enabled && std::io::stderr().is_terminal();
    let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(total as u64), target);
    if let Ok(style) = ProgressStyle::with_template("search [{bar:30}] {pos}/{len} trials {msg} ({elapsed}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(done as u64);
    bar
}

/// `conv 32 k3 s1 valid max; 64 k3 s1 valid max | dense 64 | adam lr 0.001 batch 32 drop 0.25`.
fn describe(p: &Params) -> String {
    let conv = p.conv_summary();
    let dense = p.dense_summary();
    format!(
        "conv [{}] dense [{}] drop {} {} lr {} batch {} epochs {}",
        conv,
        dense,
        p.dropout,
        p.optimizer.name(),
        p.learning_rate,
        p.batch_size,
        p.epochs
    )
}

fn trial_line(r: &TrialRecord, total: usize) -> String {
    let what = match r.status {
        Status::Trained => format!(
            "val int8 {:.2} % (float {:.2} %), {:.1} s",
            100.0 * r.val_accuracy_int8.unwrap_or(0.0),
            100.0 * r.val_accuracy_float.unwrap_or(0.0),
            r.seconds
        ),
        Status::OverBudget => format!("over budget ({}), not trained", r.over_budget.join(", ")),
        Status::Failed => format!("failed: {}", r.error.as_deref().unwrap_or("?")),
    };
    format!(
        "trial {}/{total} {}: {} | flash {} B, arena {} B, {} MACs | {what}",
        r.trial,
        r.name,
        describe(&r.params),
        r.flash_bytes,
        r.arena_bytes,
        r.macs
    )
}

/// What every trial shares: the data, the validation split, the device.
struct TrialContext<'a> {
    space: &'a SearchSpace,
    train_set: &'a Images,
    /// The trials' training images (calibration) and validation images (scoring).
    split: TrainingSplit,
    digests: &'a [data::FileDigest],
    device: Device,
}

impl<'a> TrialContext<'a> {
    fn new(
        space: &'a SearchSpace,
        train_set: &'a Images,
        digests: &'a [data::FileDigest],
        device: Device,
    ) -> Result<Self, SearchError> {
        // The validation split depends on the base's [data], the trials' limit and the seed only:
        // every trial is scored on the same images. Check now that there are some.
        let data = crate::spec::DataSpec { train_limit: space.train_limit, ..space.base.data };
        let split = prepare_training(train_set, &data, space.base.input.classes, space.seed);
        if split.validation.is_none() {
            return Err(SearchError::NoValidation { images: split.train.n, fraction: data.validation });
        }
        Ok(TrialContext { space, train_set, split, digests, device })
    }

    /// The spec a trial trains: the candidate with the trial's epochs and images.
    fn trial_spec(&self, candidate: &Candidate) -> Result<ModelSpec, SpecError> {
        candidate.spec.with_overrides(&Overrides {
            epochs: Some(candidate.params.epochs),
            train_limit: Some(self.space.train_limit),
            seed: None,
        })
    }

    fn run(&self, candidate: &Candidate) -> Result<TrialRecord, SearchError> {
        let start = Instant::now();
        let fp = candidate.footprint;
        let mut record = TrialRecord {
            trial: candidate.trial,
            name: candidate.name.clone(),
            status: Status::OverBudget,
            params: candidate.params.clone(),
            val_accuracy_float: None,
            val_accuracy_int8: None,
            flash_bytes: fp.flash_bytes,
            arena_bytes: fp.arena_bytes,
            macs: fp.macs,
            weights: candidate.spec.total_params()?,
            over_budget: Vec::new(),
            error: None,
            epochs_trained: 0,
            train_images: 0,
            validation_images: 0,
            train_seconds: 0.0,
            seconds: 0.0,
            resampled: candidate.resampled,
            repeats: candidate.repeats,
        };
        let over = budget::overruns(&self.space.target, &fp);
        if !over.is_empty() {
            record.over_budget = over.iter().map(|o| o.budget.to_string()).collect();
            record.seconds = start.elapsed().as_secs_f64();
            return Ok(record);
        }

        let trial = candidate.trial;
        let spec = self.trial_spec(candidate)?;
        let Some(validation) = &self.split.validation else {
            return Err(SearchError::NoValidation { images: self.split.train.n, fraction: spec.data.validation });
        };
        let opts = TrainOptions { device: self.device, ..TrainOptions::default() };
        let model = match train::train(&spec, self.train_set, &opts) {
            Ok(m) => m,
            Err(e @ TrainError::Diverged { .. }) => {
                record.status = Status::Failed;
                record.error = Some(e.to_string());
                record.seconds = start.elapsed().as_secs_f64();
                record.train_seconds = record.seconds;
                return Ok(record);
            }
            Err(source) => return Err(SearchError::Train { trial, source }),
        };
        let float =
            train::evaluate(&model, validation, self.device).map_err(|source| SearchError::Train { trial, source })?;

        // The int8 blob, calibrated on the images the trial trained on, run by the runtime.
        let hash = pipeline::source_hash(&spec, self.digests);
        let deployed = pipeline::deploy(&spec, &model, &self.split.train, validation, hash)
            .map_err(|source| SearchError::Build { trial, source })?;
        let (int8, actual) = (deployed.eval, deployed.blob.footprint());
        record.flash_bytes = actual.flash_bytes;
        record.arena_bytes = actual.arena_bytes;
        record.macs = actual.macs;
        let over = budget::overruns(&self.space.target, &actual);
        record.status = if over.is_empty() { Status::Trained } else { Status::OverBudget };
        record.over_budget = over.iter().map(|o| o.budget.to_string()).collect();
        record.val_accuracy_float = Some(float.accuracy);
        record.val_accuracy_int8 = Some(int8.accuracy);
        record.epochs_trained = model.history.epochs.len();
        record.train_images = model.history.train_images;
        record.validation_images = validation.n;
        record.train_seconds = model.history.seconds;
        record.seconds = start.elapsed().as_secs_f64();
        Ok(record)
    }
}

fn budgets(space: &SearchSpace) -> String {
    let t = &space.target;
    let parts: Vec<String> = [("flash", t.flash, "B"), ("ram", t.ram, "B"), ("macs", t.macs, "")]
        .into_iter()
        .filter_map(|(k, v, unit)| {
            v.map(|v| format!("{k} ≤ {v}{}", if unit.is_empty() { String::new() } else { format!(" {unit}") }))
        })
        .collect();
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

fn summary_markdown(space: &SearchSpace, records: &[TrialRecord], resampled: usize, best: Option<usize>) -> String {
    let count = |s: Status| records.iter().filter(|r| r.status == s).count();
    let front = pareto::pareto_front(records).iter().filter(|&&p| p).count();
    let images = if space.train_limit == 0 { "all".to_string() } else { space.train_limit.to_string() };
    let mut s = format!(
        "# Search `{}` ({})\n\n\
         - base model: `{}`, data set {}, seed {}, {images} training images per trial \
         ({:.0} % held out for validation; trials are scored on that validation split, never on the test set)\n\
         - budgets: {}\n\
         - trials: {} ({} trained, {} over budget and not trained, {} failed); {resampled} draws resampled because \
         their layers did not fit their input\n\
         - Pareto front (max int8 val accuracy, min flash, min arena): {front} trials, marked `*`\n",
        space.name,
        space.origin,
        space.base_path.display(),
        space.base.data.dataset,
        space.seed,
        100.0 * space.base.data.validation,
        budgets(space),
        records.len(),
        count(Status::Trained),
        count(Status::OverBudget),
        count(Status::Failed),
    );
    match best.map(|t| &records[t - 1]) {
        Some(r) => s.push_str(&format!(
            "- best under budget: t{:03} (`{}`), val int8 {:.2} %, float {:.2} %, flash {} B, arena {} B → `best.toml`\n",
            r.trial,
            r.name,
            100.0 * r.val_accuracy_int8.unwrap_or(0.0),
            100.0 * r.val_accuracy_float.unwrap_or(0.0),
            r.flash_bytes,
            r.arena_bytes
        )),
        None => s.push_str("- no trial fits the budgets: no `best.toml`\n"),
    }
    s.push_str(
        "\nConv layers read `filters kKERNEL sSTRIDE padding [pool]` (pool: 2x2 max or avg after the layer); \
         dense lists the hidden layers before the logits layer.\n",
    );
    s
}

fn best_toml(space: &SearchSpace, r: &TrialRecord, candidate: &Candidate, trials: usize) -> String {
    let images = if r.train_images > 0 { format!("{} images", r.train_images) } else { "all images".into() };
    let full = if candidate.spec.data.train_limit == 0 {
        "all training images".to_string()
    } else {
        format!("{} training images", candidate.spec.data.train_limit)
    };
    format!(
        "# Best trial under budget of `mnistc search {}` (seed {}): trial {} of {}.\n\
         # Trial: {} epochs on {images} -> validation accuracy int8 {:.2} %, float {:.2} %;\n\
         # flash {} bytes, arena {} bytes, {} MACs (budgets: {}).\n\
         # `mnistc build best.toml -o best.bin` trains it for train.epochs = {} epochs on {full}.\n\n{}",
        space.origin,
        space.seed,
        r.trial,
        trials,
        r.epochs_trained,
        100.0 * r.val_accuracy_int8.unwrap_or(0.0),
        100.0 * r.val_accuracy_float.unwrap_or(0.0),
        r.flash_bytes,
        r.arena_bytes,
        r.macs,
        budgets(space),
        candidate.spec.train.epochs,
        candidate.text
    )
}
