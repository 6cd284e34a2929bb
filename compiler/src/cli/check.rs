//! `mnistc check OUT.bin [--onnx FILE | --tflite FILE [--random N] [--python PY]] [--data DIR] [--limit N]
//! [--per-layer] [--json]`.

use std::path::PathBuf;

use super::common::DataArgs;
use super::{CliError, Io, blob_arg};
use crate::data::{self, Split};
use crate::verify::check::CheckError;

/// Arguments of `mnistc check`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Runs the same test images through the runtime and through tract-onnx on the ONNX \
file. Passes (exit 0) when top-1 agreement is 1.0 and, for int8, every int8 logit is identical \
(max_lsb_diff 0); for f32/f16, every logit within 1e-5 absolute + 1e-4 relative. Otherwise exit 1. \
int8 models are compared from the same int8 input tensor (pixel - 128), because tract's \
QuantizeLinear multiplies by 1/s where ONNX divides by s.\n\n\
With --tflite, the blob (written by `mnistc import` from that file) is compared with TFLite Micro's \
reference kernels instead, run from Python (PyPI `tflite-micro`: python3 -m venv .venv-tflm && \
.venv-tflm/bin/pip install tflite-micro; then --python .venv-tflm/bin/python or MNISTC_PYTHON). \
Inputs: the data set's test images when the blob names one and takes pixels, else --random N \
int8 tensors (default 1000; the stream of tests/golden). Every int8 logit (and with --per-layer \
every op's output, against the TFLite tensor it stands for) must be identical.")]
pub struct Args {
    /// The blob
    #[arg(value_name = "OUT.bin")]
    pub blob: PathBuf,
    /// The ONNX model [default: OUT.onnx beside the blob]
    #[arg(long, value_name = "FILE")]
    pub onnx: Option<PathBuf>,
    /// Compare with TFLite Micro running this full-integer .tflite (the file the blob was imported from)
    #[arg(long, value_name = "FILE", conflicts_with = "onnx")]
    pub tflite: Option<PathBuf>,
    /// With --tflite: compare N random int8 inputs instead of test images
    #[arg(long, value_name = "N", requires = "tflite", value_parser = clap::value_parser!(u64).range(1..))]
    pub random: Option<u64>,
    /// With --tflite: the Python that has `tflite_micro` [default: $MNISTC_PYTHON, else python3]
    #[arg(long, value_name = "PY", requires = "tflite")]
    pub python: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Compare only the first N test images
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Compare every layer's output and name the first that diverges
    #[arg(long)]
    pub per_layer: bool,
    /// Print one JSON object (images, top1_agreement, max_abs_diff, max_lsb_diff, passed, ...)
    #[arg(long)]
    pub json: bool,
}

/// A readable summary of a check.
fn render(r: &crate::verify::check::CheckReport, reference: &str) -> String {
    let mut s = format!(
        "{} images: top-1 agreement {:.4}, max |diff| {:.3e}, max int8 diff {} steps: {}\n",
        r.images,
        r.top1_agreement,
        r.max_abs_diff,
        r.max_lsb_diff,
        if r.passed { "PASS" } else { "FAIL" }
    );
    for l in &r.layers {
        s.push_str(&format!(
            "  op {:<2} {:<16} {:>6} values: max |diff| {:.3e}, {} steps, {:>5} mismatches  {}{}\n",
            l.index,
            l.kind,
            l.elements,
            l.max_abs_diff,
            l.max_lsb_diff,
            l.mismatches,
            l.name,
            if l.passed { "" } else { "  <- differs" }
        ));
    }
    if let Some(d) = &r.first_divergence {
        s.push_str(&format!("first divergence: op {} ({}, {reference} tensor `{}`)\n", d.index, d.kind, d.name));
    }
    s
}

/// Runs `mnistc check`.
///
/// # Errors
/// Exit 2 for bad input, 1 when the runtime and tract disagree.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    if args.tflite.is_some() {
        return run_tflite(args, io);
    }
    let bytes = blob_arg::read(&args.blob)?;
    let model = blob_arg::load(&args.blob, &bytes)?;
    let dataset = blob_arg::dataset(&model)?;
    let onnx_path = args.onnx.clone().unwrap_or_else(|| args.blob.with_extension("onnx"));
    let onnx = std::fs::read(&onnx_path).map_err(|e| CliError::bad_input(format!("{}: {e}", onnx_path.display())))?;
    let dir = args.data.with_dataset(dataset, io.err)?;
    let mut test = data::load(&dir, dataset, Split::Test).map_err(CliError::bad_input)?;
    if let Some(limit) = args.limit {
        test = test.head(limit as usize);
    }
    let report =
        crate::verify::check::check(bytes.as_bytes(), &onnx, &test.pixels, args.per_layer).map_err(|e| match e {
            // The ONNX file is unreadable or describes another model: name it.
            CheckError::Tract(_) | CheckError::Mismatch(_) => {
                CliError::bad_input(format!("{}: {e}", onnx_path.display()))
            }
            e => CliError::bad_input(e),
        })?;
    print(&report, args.json, "ONNX", io)?;
    if report.passed {
        Ok(())
    } else {
        Err(CliError::failed(format!("the runtime and tract-onnx disagree on {} (see above)", onnx_path.display())))
    }
}

/// Random inputs compared by `--tflite` when the blob has no data set of images.
const DEFAULT_RANDOM: u64 = 1000;

/// `mnistc check OUT.bin --tflite MODEL.tflite`.
fn run_tflite(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    use crate::verify::tflite_micro::{self, Inputs};
    let tflite_path = args.tflite.clone().unwrap_or_default();
    let bytes = blob_arg::read(&args.blob)?;
    let model = blob_arg::load(&args.blob, &bytes)?;
    let tflite =
        std::fs::read(&tflite_path).map_err(|e| CliError::bad_input(format!("{}: {e}", tflite_path.display())))?;
    let python = args
        .python
        .clone()
        .map(PathBuf::into_os_string)
        .or_else(|| std::env::var_os("MNISTC_PYTHON"))
        .unwrap_or_else(|| "python3".into());
    let images = model.takes_pixels() && args.random.is_none() && !model.dataset().is_empty();
    let pixels;
    let random;
    let inputs = if images {
        let dataset = blob_arg::dataset(&model)?;
        let dir = args.data.with_dataset(dataset, io.err)?;
        let mut test = data::load(&dir, dataset, Split::Test).map_err(CliError::bad_input)?;
        if let Some(limit) = args.limit {
            test = test.head(limit as usize);
        }
        pixels = test.pixels;
        Inputs::Pixels(&pixels)
    } else {
        let n = args.random.unwrap_or(DEFAULT_RANDOM).min(args.limit.unwrap_or(u64::MAX));
        random = tflite_micro::random_inputs(n as usize, model.input_len());
        Inputs::Int8(&random)
    };
    let report = tflite_micro::check(bytes.as_bytes(), &tflite_path, &tflite, inputs, args.per_layer, &python)
        .map_err(|e| match e {
            CheckError::Import(e) => CliError::bad_input(e),
            CheckError::NotComparable(_) => CliError::bad_input(format!("{}: {e}", tflite_path.display())),
            e => CliError::bad_input(e),
        })?;
    print(&report, args.json, "TFLite", io)?;
    if report.passed {
        Ok(())
    } else {
        Err(CliError::failed(format!("the runtime and TFLite Micro disagree on {} (see above)", tflite_path.display())))
    }
}

/// Writes the report as text or one JSON object.
fn print(
    report: &crate::verify::check::CheckReport,
    json: bool,
    reference: &str,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    if json {
        writeln!(io.out, "{}", serde_json::to_string(report).map_err(CliError::failed)?).map_err(CliError::failed)
    } else {
        io.out.write_all(render(report, reference).as_bytes()).map_err(CliError::failed)
    }
}
