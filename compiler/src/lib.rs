//! mnistc: compiles a `model.toml` into a trained, quantized model blob for `mnistc-runtime`.
//!
//! The pipeline: [`spec`] (the model.toml contract) → [`data`] (IDX data sets) → [`train`] (burn)
//! → quantization → [`plan`] (the runtime's op sequence) → [`blob`] (bytes, arena planned by
//! [`arena`]).

pub mod arena;
pub mod atomic;
pub mod bench;
pub mod blob;
pub mod budget;
pub mod build;
pub mod cache;
pub mod check;
pub mod cli;
pub mod data;
pub mod inspect;
pub mod lower;
pub mod metrics;
pub mod on_device;
pub mod onnx;
pub mod plan;
pub mod quantize;
pub mod report;
pub mod search;
pub mod spec;
pub mod summary;
pub mod tract;
pub mod train;
