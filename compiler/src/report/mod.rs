//! Reports: classification [`metrics`], the Keras-style [`summary`] of a spec, what a blob holds
//! ([`inspect`]), the build report ([`build_report`]) and its pictures, drawn with plotters
//! ([`picture`]): the training [`curves`], the [`confusion_map`], the most confident
//! [`mistakes`] and the [`search_pictures`].

#[cfg(feature = "train")]
pub mod build_report;
#[cfg(feature = "train")]
pub mod confusion_map;
#[cfg(feature = "train")]
pub mod curves;
pub mod inspect;
pub mod metrics;
#[cfg(feature = "train")]
pub mod mistakes;
#[cfg(feature = "train")]
pub mod picture;
#[cfg(feature = "train")]
pub mod search_pictures;
pub mod summary;

#[cfg(feature = "train")]
pub use build_report::{Files, Pictures, to_html, to_json, to_markdown};
