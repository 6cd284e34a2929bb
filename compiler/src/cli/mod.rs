//! The `mnistc` command line: one file per subcommand.
//!
//! Adding a subcommand: write `cli/<name>.rs` with an `Args` struct (`clap::Args`) and
//! `pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError>`, then add one variant to
//! [`Command`] and one arm to `dispatch`. Shared options (data directory, overrides, device)
//! live in [`common`].
//!
//! Exit codes: 0 success, 1 a failed check or run (the operation itself went wrong), 2 bad
//! input (command line, model file, data files). Errors go to stderr as `error: ...`.

pub mod bench;
pub mod blob_arg;
pub mod build;
pub mod check;
pub mod common;
pub mod data;
pub mod eval;
pub mod export_c;
pub mod features;
pub mod import;
pub mod inspect;
pub mod predict;
pub mod search;
pub mod summary;
pub mod train;

use std::ffi::OsString;
use std::io::Write;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

/// mnistc: train small CNN/MLP classifiers from a model.toml and compile them for
/// microcontrollers.
#[derive(Debug, Parser)]
#[command(name = "mnistc", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the layers, output shapes, parameters and MACs of a model.
    Summary(summary::Args),
    /// Train a model, evaluate it on the test set and save a checkpoint.
    Train(train::Args),
    /// Train (or reuse the cached training), quantize and compile a model into a blob, with its ONNX twin and a report.
    Build(build::Args),
    /// Run a blob with the runtime over its data set's test images.
    Eval(eval::Args),
    /// Show a blob's layer plan, quantization, flash and arena bytes, MACs.
    Inspect(inspect::Args),
    /// Write a blob as C source (NAME.h / NAME.c) for the C API, optionally with test vectors.
    ExportC(export_c::Args),
    /// Compile a model trained elsewhere (a full-integer .tflite) into a blob.
    Import(import::Args),
    /// Write one layer's activations for the training and test images (.npy and .csv), from a checkpoint or a blob.
    Features(features::Args),
    /// Classify PNG images or the images of an IDX file with a blob.
    Predict(predict::Args),
    /// Compare a blob run by the runtime with its ONNX twin (tract-onnx) or its .tflite (TFLite Micro), bit for bit.
    Check(check::Args),
    /// Time a blob: runtime fast kernels, runtime reference kernels, tract-onnx.
    Bench(bench::Args),
    /// Hardware-aware hyper-parameter search: random search over a space file, budgets checked before training.
    Search(search::Args),
    /// List the data sets (where they are, verified or not) or download them.
    Data(data::Args),
}

/// Where a command writes.
pub struct Io<'a> {
    /// Results (tables, JSON).
    pub out: &'a mut dyn Write,
    /// Diagnostics (errors, warnings).
    pub err: &'a mut dyn Write,
}

/// How a command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The operation went wrong or a check failed: exit code 1.
    Failed,
    /// Bad command line, model file or data: exit code 2.
    BadInput,
    /// A training stopped by `--pause-after`, its state saved: exit code 3.
    Paused,
}

/// A command error with its exit code.
#[derive(Debug)]
pub struct CliError {
    /// Exit-code category.
    pub failure: Failure,
    /// What went wrong (its `Display` is printed after `error: `).
    pub error: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl CliError {
    /// A bad-input error (exit 2).
    pub fn bad_input(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        CliError { failure: Failure::BadInput, error: e.into() }
    }

    /// A failure (exit 1).
    pub fn failed(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        CliError { failure: Failure::Failed, error: e.into() }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self.failure {
            Failure::Failed => 1,
            Failure::BadInput => 2,
            Failure::Paused => 3,
        }
    }
}

/// `MNISTC_ISA=NAME` pins the runtime's kernels (`reference`, `avx2`, `avx512-vnni`, ...) for every
/// command that runs a blob, e.g. to compare an ISA against the reference on a real model.
fn select_kernels() -> Result<(), String> {
    use mnistc_runtime::kernels::{Isa, set_isa};
    let Some(name) = std::env::var_os("MNISTC_ISA") else { return Ok(()) };
    let name = name.to_string_lossy();
    let isa = Isa::ALL.into_iter().find(|i| i.name() == name).ok_or_else(|| {
        let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
        format!("MNISTC_ISA={name}: unknown; use one of {}", names.join(", "))
    })?;
    if set_isa(Some(isa)) { Ok(()) } else { Err(format!("MNISTC_ISA={name}: not available on this machine")) }
}

fn dispatch(cli: Cli, io: &mut Io<'_>) -> Result<(), CliError> {
    match cli.command {
        Command::Summary(args) => summary::run(args, io),
        Command::Train(args) => train::run(args, io),
        Command::Build(args) => build::run(args, io),
        Command::Eval(args) => eval::run(args, io),
        Command::Inspect(args) => inspect::run(args, io),
        Command::ExportC(args) => export_c::run(args, io),
        Command::Import(args) => import::run(args, io),
        Command::Features(args) => features::run(args, io),
        Command::Predict(args) => predict::run(args, io),
        Command::Check(args) => check::run(args, io),
        Command::Bench(args) => bench::run(args, io),
        Command::Search(args) => search::run(args, io),
        Command::Data(args) => data::run(args, io),
    }
}

/// Parses `args` (including the program name) and runs the command; returns the exit code.
/// Never panics on user input; an internal panic is reported as exit code 1.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = write!(out, "{}", e.render());
                    0
                }
                _ => {
                    let _ = write!(err, "{}", e.render());
                    2
                }
            };
        }
    };
    let mut io = Io { out, err };
    if let Err(e) = select_kernels() {
        let _ = writeln!(io.err, "error: {e}");
        return 2;
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli, &mut io)));
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            let _ = writeln!(io.err, "error: {}", e.error);
            e.exit_code()
        }
        Err(_) => {
            let _ = writeln!(io.err, "error: internal error (panic, see the message above); please report it");
            1
        }
    }
}
