//! Reports: classification [`metrics`], the Keras-style [`summary`] of a spec, what a blob holds
//! ([`inspect`]) and the build report ([`build_report`]).

#[cfg(feature = "train")]
pub mod build_report;
pub mod inspect;
pub mod metrics;
pub mod summary;

#[cfg(feature = "train")]
pub use build_report::{Files, to_json, to_markdown};
