//! The search journal (`DIR/journal.jsonl`): a header line naming the search, then one JSON
//! line per finished trial. It is rewritten atomically after every trial, so it only ever holds
//! complete lines; an interrupted trial simply has no line and is redone. A torn last line
//! (from an external copy or edit) is dropped and its trial redone; lines already there are
//! kept byte for byte.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::space::Params;

/// Format version of the journal.
pub const JOURNAL_VERSION: u32 = 1;
/// Marker of the header line.
const JOURNAL_KIND: &str = "mnistc-search";

/// What happened to a trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trained and scored on the validation split.
    Trained,
    /// Exceeds a `[target]` budget: recorded without training.
    OverBudget,
    /// Training diverged (non-finite loss).
    Failed,
}

impl Status {
    /// The name used in the journal and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Trained => "trained",
            Status::OverBudget => "over_budget",
            Status::Failed => "failed",
        }
    }
}

/// One finished trial (one journal line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// 1-based trial number.
    pub trial: usize,
    /// Model name of the candidate.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// The sampled hyper-parameters.
    pub params: Params,
    /// Float accuracy on the validation split (trained trials).
    pub val_accuracy_float: Option<f64>,
    /// Accuracy of the int8 blob run by the runtime on the validation split (trained trials).
    pub val_accuracy_int8: Option<f64>,
    /// Blob bytes (of the trained blob; the estimate for other trials).
    pub flash_bytes: u64,
    /// Arena bytes.
    pub arena_bytes: u64,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Trainable parameters.
    pub weights: usize,
    /// The exceeded budgets (`flash`, `ram`, `macs`) of an over-budget trial.
    pub over_budget: Vec<String>,
    /// Why a failed trial failed.
    pub error: Option<String>,
    /// Epochs trained.
    pub epochs_trained: usize,
    /// Images trained on.
    pub train_images: usize,
    /// Images of the validation split.
    pub validation_images: usize,
    /// Training wall time in seconds (0 when not trained).
    pub train_seconds: f64,
    /// Wall time of the whole trial (training, lowering, both evaluations) in seconds.
    pub seconds: f64,
    /// Draws before this candidate whose layers did not fit their input, resampled.
    pub resampled: usize,
    /// Draws before this candidate that repeated an earlier one, resampled.
    pub repeats: usize,
}

/// The first line: which search the trials belong to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always `mnistc-search`.
    pub journal: String,
    /// [`JOURNAL_VERSION`].
    pub version: u32,
    /// SHA-256 of `inputs` (canonical JSON).
    pub fingerprint: String,
    /// Everything that makes trials comparable: the space (base model, choices, budgets,
    /// seed, per-trial epochs and images) and the data files' digests.
    pub inputs: serde_json::Value,
}

impl Header {
    /// The header of a search with these inputs.
    pub fn new(inputs: serde_json::Value) -> Header {
        let fingerprint = fingerprint(&inputs);
        Header { journal: JOURNAL_KIND.into(), version: JOURNAL_VERSION, fingerprint, inputs }
    }
}

/// SHA-256 (hex) of the canonical JSON of `inputs` (serde_json sorts object keys).
pub fn fingerprint(inputs: &serde_json::Value) -> String {
    crate::data::sha256_hex(inputs.to_string().as_bytes())
}

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The journal.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line other than the last one is not a journal line.
    #[error("{}:{line}: not a search journal line ({message}); the journal is damaged: move it away to start over", path.display())]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The journal belongs to another search.
    #[error(
        "{} holds trials of a different search (changed: {}); its trials would not be comparable. Use another \
         output directory, or delete the journal to start over",
        path.display(), changed.join(", ")
    )]
    Mismatch {
        /// The journal.
        path: PathBuf,
        /// What differs (`space`, `seed`, `train_limit`, `data`, ...).
        changed: Vec<String>,
    },
}

/// The journal of one output directory.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    header_line: String,
    lines: Vec<String>,
    records: Vec<TrialRecord>,
    /// Whether an incomplete last line was dropped when opening.
    pub dropped_incomplete: bool,
}

impl Journal {
    /// The journal file of `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join("journal.jsonl")
    }

    /// Opens the journal in `dir` for a search with `header`, creating it if absent, and
    /// checks that it belongs to the same search.
    ///
    /// # Errors
    /// [`JournalError::Mismatch`] for a journal of another search, [`JournalError::Corrupt`] for
    /// a damaged one, [`JournalError::Io`] if it cannot be read or written.
    pub fn open(dir: &Path, header: &Header) -> Result<Journal, JournalError> {
        let path = Journal::path_in(dir);
        let io = |source| JournalError::Io { path: path.clone(), source };
        let header_line = serde_json::to_string(header).unwrap_or_default();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let mut journal = Journal {
            path: path.clone(),
            header_line,
            lines: Vec::new(),
            records: Vec::new(),
            dropped_incomplete: false,
        };

        // Complete lines end with '\n'; anything after the last one is a torn write.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        let mut dropped = complete.len() < text.len();
        let all: Vec<&str> = complete.lines().collect();
        let corrupt = |line: usize, message: String| JournalError::Corrupt { path: path.clone(), line, message };

        if let Some(first) = all.first() {
            match serde_json::from_str::<Header>(first) {
                Ok(found) if found.journal == JOURNAL_KIND => {
                    if found.fingerprint != header.fingerprint || found.version != header.version {
                        let changed = changed_inputs(&found, header);
                        return Err(JournalError::Mismatch { path, changed });
                    }
                    journal.header_line = (*first).to_string();
                }
                Ok(_) => return Err(corrupt(1, "the first line is not an mnistc search header".into())),
                Err(_) if all.len() == 1 => dropped = true,
                Err(e) => return Err(corrupt(1, e.to_string())),
            }
        }
        for (i, line) in all.iter().enumerate().skip(1) {
            let is_last = i + 1 == all.len();
            match serde_json::from_str::<TrialRecord>(line) {
                Ok(r) if r.trial == journal.records.len() + 1 => {
                    journal.lines.push((*line).to_string());
                    journal.records.push(r);
                }
                Ok(r) => {
                    return Err(corrupt(
                        i + 1,
                        format!("trial {} where trial {} was expected", r.trial, journal.records.len() + 1),
                    ));
                }
                Err(_) if is_last => dropped = true,
                Err(e) => return Err(corrupt(i + 1, e.to_string())),
            }
        }
        journal.dropped_incomplete = dropped;
        if dropped || all.is_empty() {
            journal.save()?;
        }
        Ok(journal)
    }

    /// The finished trials, in order.
    pub fn records(&self) -> &[TrialRecord] {
        &self.records
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a finished trial and rewrites the journal atomically.
    ///
    /// # Errors
    /// [`JournalError::Io`] if it cannot be written (the trial is then not recorded).
    pub fn append(&mut self, record: TrialRecord) -> Result<(), JournalError> {
        self.lines.push(serde_json::to_string(&record).unwrap_or_default());
        self.records.push(record);
        if let Err(e) = self.save() {
            self.lines.pop();
            self.records.pop();
            return Err(e);
        }
        Ok(())
    }

    fn save(&self) -> Result<(), JournalError> {
        let mut text =
            String::with_capacity(self.header_line.len() + 1 + self.lines.iter().map(|l| l.len() + 1).sum::<usize>());
        text.push_str(&self.header_line);
        text.push('\n');
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        crate::atomic::write(&self.path, text.as_bytes())
            .map_err(|source| JournalError::Io { path: self.path.clone(), source })
    }
}

/// The top-level input fields (and fields of `inputs.space`) that differ, for the message.
fn changed_inputs(found: &Header, wanted: &Header) -> Vec<String> {
    if found.version != wanted.version {
        return vec![format!("journal format version {} (this mnistc writes {})", found.version, wanted.version)];
    }
    let mut changed = Vec::new();
    let (Some(a), Some(b)) = (found.inputs.as_object(), wanted.inputs.as_object()) else {
        return vec!["everything".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (x, y) = (a.get(key), b.get(key));
        if x == y {
            continue;
        }
        match (x.and_then(|v| v.as_object()), y.and_then(|v| v.as_object())) {
            (Some(x), Some(y)) if key == "space" => {
                let mut sub: Vec<&String> = x.keys().chain(y.keys()).collect();
                sub.sort();
                sub.dedup();
                for k in sub {
                    if x.get(k) != y.get(k) {
                        changed.push(format!("[space] {k}"));
                    }
                }
            }
            _ => changed.push(key.clone()),
        }
    }
    if changed.is_empty() {
        changed.push("the search fingerprint".into());
    }
    changed
}
