//! `mnistc bench OUT.bin [--onnx FILE] [--source MODEL] [--runs N] [--json]`.

use std::path::PathBuf;

use super::{CliError, Io, blob_arg};
use crate::verify::bench::{BenchError, Source, bench_with_source};
use crate::verify::tract::TractError;

/// Arguments of `mnistc bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Times one inference (batch 1, one thread) after a warm-up, the median of N runs: \
the runtime with its best kernels, the runtime with its scalar reference kernels, and tract-onnx on \
the exported ONNX. For a blob made by `mnistc import`, --source times tract on the model it came from \
(tract-tflite on the .tflite, tract-onnx on the .onnx). Build with --release for meaningful numbers.")]
pub struct Args {
    /// The blob
    #[arg(value_name = "OUT.bin")]
    pub blob: PathBuf,
    /// The ONNX model for tract [default: OUT.onnx beside the blob, if present]
    #[arg(long, value_name = "FILE")]
    pub onnx: Option<PathBuf>,
    /// The model an imported blob came from (.tflite or .onnx): tract runs it too
    #[arg(long, value_name = "MODEL")]
    pub source: Option<PathBuf>,
    /// Timed runs per measurement
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub runs: u64,
    /// Print one JSON object (runtime_us, runtime_scalar_us, tract_us, macs, ...)
    #[arg(long)]
    pub json: bool,
}

/// Runs `mnistc bench`.
///
/// # Errors
/// Exit 2 for an unreadable blob or ONNX file; 1 if a model fails to run.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let bytes = blob_arg::read(&args.blob)?;
    blob_arg::load(&args.blob, &bytes)?;
    let onnx_path = args.onnx.clone().or_else(|| Some(args.blob.with_extension("onnx")).filter(|p| p.is_file()));
    let onnx = match &onnx_path {
        Some(p) => Some(std::fs::read(p).map_err(|e| CliError::bad_input(format!("{}: {e}", p.display())))?),
        None => None,
    };
    let source = match &args.source {
        Some(p) => Some(std::fs::read(p).map_err(|e| CliError::bad_input(format!("{}: {e}", p.display())))?),
        None => None,
    };
    let source_arg = source.as_deref().map(|b| Source { bytes: b, tflite: crate::import::tflite::is_tflite(b) });
    let report = bench_with_source(bytes.as_bytes(), onnx.as_deref(), source_arg, args.runs as usize).map_err(|e| {
        match (e, &onnx_path) {
            // An ONNX file tract cannot read is bad input, named by its path.
            (BenchError::Tract(e @ TractError::Load(_)), Some(p)) => {
                CliError::bad_input(format!("{}: {e}", p.display()))
            }
            // A source model tract cannot read is named too (tract's own limits: exit 1).
            (e @ BenchError::Source { .. }, _) => CliError::failed(format!(
                "{}: {e}",
                args.source.as_ref().map_or(String::new(), |p| p.display().to_string())
            )),
            (e, _) => CliError::failed(e),
        }
    })?;
    if args.json {
        writeln!(io.out, "{}", serde_json::to_string(&report).map_err(CliError::failed)?).map_err(CliError::failed)
    } else {
        let tract = match (report.tract_us, report.speedup_vs_tract) {
            (Some(t), Some(s)) => format!("tract-onnx:          {t:9.1} µs  (runtime is {s:.1}x faster)\n"),
            _ => "tract-onnx:          (no ONNX file)\n".into(),
        };
        let source = match (report.source_us, report.source_engine) {
            (Some(t), Some(engine)) => {
                format!("{engine:<12} (source) {t:9.1} µs  (runtime is {:.1}x faster)\n", t / report.runtime_us)
            }
            _ => String::new(),
        };
        let text = format!(
            "{} MACs per inference, median of {} runs, batch 1, one thread\n\
             runtime ({:<11}) {:9.1} µs  ({:.2} GMAC/s)\n\
             runtime (reference)   {:9.1} µs  (runtime is {:.1}x faster)\n{tract}{source}",
            report.macs,
            report.runs,
            report.isa,
            report.runtime_us,
            report.gmacs,
            report.runtime_scalar_us,
            report.speedup_vs_scalar,
        );
        io.out.write_all(text.as_bytes()).map_err(CliError::failed)
    }
}
