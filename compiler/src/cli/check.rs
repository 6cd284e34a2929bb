//! `mnistc check OUT.bin [--onnx FILE] [--data DIR] [--limit N] [--per-layer] [--json]`.

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
QuantizeLinear multiplies by 1/s where ONNX divides by s.")]
pub struct Args {
    /// The blob
    #[arg(value_name = "OUT.bin")]
    pub blob: PathBuf,
    /// The ONNX model [default: OUT.onnx beside the blob]
    #[arg(long, value_name = "FILE")]
    pub onnx: Option<PathBuf>,
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
fn render(r: &crate::verify::check::CheckReport) -> String {
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
            "  op {} {:<10} {:>6} values: max |diff| {:.3e}, {} steps, {} mismatches{}\n",
            l.index,
            l.kind,
            l.elements,
            l.max_abs_diff,
            l.max_lsb_diff,
            l.mismatches,
            if l.passed { "" } else { "  <- differs" }
        ));
    }
    if let Some(d) = &r.first_divergence {
        s.push_str(&format!("first divergence: op {} ({}, ONNX tensor `{}`)\n", d.index, d.kind, d.name));
    }
    s
}

/// Runs `mnistc check`.
///
/// # Errors
/// Exit 2 for bad input, 1 when the runtime and tract disagree.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
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
    if args.json {
        writeln!(io.out, "{}", serde_json::to_string(&report).map_err(CliError::failed)?).map_err(CliError::failed)?;
    } else {
        io.out.write_all(render(&report).as_bytes()).map_err(CliError::failed)?;
    }
    if report.passed {
        Ok(())
    } else {
        Err(CliError::failed(format!("the runtime and tract-onnx disagree on {} (see above)", onnx_path.display())))
    }
}
