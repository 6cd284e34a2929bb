//! Hardware-aware hyper-parameter search (`mnistc search`): random search without repeats over
//! a space of model descriptions, each candidate checked against the `[target]` budgets before
//! any training, trained on the training split and scored in float and as the int8 blob run by
//! the runtime on the validation split (never the test set).
//!
//! - [`space`]: the search-space file and sampling;
//! - [`candidate`]: a candidate's `model.toml` text;
//! - [`journal`]: the per-trial journal and resuming;
//! - [`pareto`]: ranking, Pareto front, tables;
//! - `run.rs` (feature `train`): the driver, [`search`], re-exported here.
//!
//! The output directory holds `journal.jsonl`, `results.md`, `results.csv` and `best.toml` (the
//! best trial under budget, which `mnistc build` accepts as is).

pub mod candidate;
pub mod journal;
pub mod pareto;
pub mod space;

pub use journal::{Header, Journal, JournalError, Status, TrialRecord};
pub use pareto::Ranked;
pub use space::{Candidate, Params, SearchSpace};

#[cfg(feature = "train")]
mod run;
#[cfg(feature = "train")]
pub use run::*;
