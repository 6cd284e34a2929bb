//! mnistc: compiles a `model.toml` into a trained, quantized model blob for `mnistc-runtime`.
//!
//! The modules follow the pipeline of `mnistc build`, one folder per stage:
//!
//! ```text
//!  model.toml ─▶ spec ─▶ lower::budget ─▶ train ◀─ data        ([target] before training; burn,
//!                                           │                  cached by train::cache)
//!                                           ▼
//!     lower (float plan) ─▶ quantize (calibrate, int8) ─▶ lower::fuse ─▶ lower::arena ─▶ lower::emit
//!                                                                                          │
//!                   ┌──────────────────────────┬───────────────────────────────────────────┤
//!                   ▼                          ▼                                           ▼
//!        export::onnx ─▶ OUT.onnx   verify (runtime on the test set,              OUT.bin (Blob)
//!                                    tract parity, latency)
//!                                             │
//!                                             ▼
//!                                  report (metrics, summary, inspect, OUT.report.*)
//! ```
//!
//! | stage | module | what |
//! |---|---|---|
//! | 1 | [`spec`] | `model.toml`: parsing (one line-aware TOML reader, `spec/reader.rs`), validation, shape inference |
//! | 1′ | [`import`] | a model trained elsewhere (`.tflite`, `.onnx`) to a plan (int8 in its own arithmetic, or float for stage 5), then stage 4's fuse and emit; also `[init] from` |
//! | 2 | [`data`] | IDX data sets, splits, the seeded [`data::Rng`]; where data sets come from ([`data::sources`]) and their download |
//! | 3 | [`train`] | burn training, float inference, checkpoints, the training [`train::cache`]; the SVM head fitted on a trained network's features with linfa ([`train::svm_head`]) |
//! | 4 | [`lower`] | the float [`lower::plan::Plan`], [`lower::fuse`](mod@lower::fuse), the [`lower::arena`] planner, the blob writer [`lower::emit`], [`lower::budget`] |
//! | 5 | [`quantize`] | calibration and int8 quantization of a float plan |
//! | 6 | [`export`] | the same model as ONNX |
//! | 7 | [`verify`] | the blob on the runtime (accuracy), against tract (parity), latency |
//! | 8 | [`report`] | metrics, `summary`, `inspect`, the build report |
//! | — | [`pipeline`] | the stages above chained: what `mnistc build` and a search trial run |
//! | — | [`search`] | hardware-aware hyper-parameter search over many pipelines |
//! | — | [`cli`] | one file per command: parse arguments, call the library, print |
//!
//! Feature `train` (default) brings burn and tract-onnx: training, [`pipeline`], [`verify`],
//! ONNX export, search trials and [`cli`]. Without it the crate is the rest: what the parsers'
//! fuzz targets build. Feature `import` (part of `train`) is the importers alone, without burn:
//! what the importer's fuzz target builds.

pub mod atomic;
pub mod cache_dir;
#[cfg(feature = "train")]
pub mod cli;
pub mod data;
pub mod export;
#[cfg(feature = "import")]
pub mod import;
pub mod lower;
#[cfg(feature = "train")]
pub mod pipeline;
pub mod quantize;
pub mod report;
pub mod search;
pub mod spec;
pub mod train;
#[cfg(feature = "train")]
pub mod verify;
