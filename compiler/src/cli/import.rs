//! `mnistc import MODEL.tflite -o OUT.bin [--dataset NAME] [--json]`.

use std::path::PathBuf;

use super::common::check_output_path;
use super::{CliError, Io};
use crate::data::Dataset;
use crate::import::{self, ImportError, ImportOptions};
use crate::lower::{self, emit};

/// Arguments of `mnistc import`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Compiles a full-integer TFLite model (TFLiteConverter with TFLITE_BUILTINS_INT8) \
into a blob for the mnistc runtime, in TFLite's own int8 arithmetic: its outputs equal TensorFlow Lite \
Micro's reference kernels bit for bit. Writes OUT.bin atomically; the final SOFTMAX is dropped (the blob's \
logits are its int8 input). A model whose input is `pixel - 128` (scale 1/255, zero point -128) takes \
pixels like mnistc's own blobs; any other runs on int8 input (`predict --raw`).\n\
Exit codes: 0 written, 2 bad input (an unreadable, corrupt or unsupported model: the message names the \
operator and what is supported).")]
pub struct Args {
    /// The model (.tflite)
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Where to write the blob
    #[arg(short, long, value_name = "OUT.bin")]
    pub output: PathBuf,
    /// The data set the model classifies (mnist, fashion-mnist, cifar-10): class names, and `eval` without --data
    #[arg(long, value_name = "NAME", value_parser = parse_dataset)]
    pub dataset: Option<Dataset>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

fn parse_dataset(s: &str) -> Result<Dataset, String> {
    Dataset::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Dataset::ALL.iter().map(|d| d.name()).collect();
        format!("unknown data set {s:?}; expected one of {}", names.join(", "))
    })
}

/// Runs `mnistc import`.
///
/// # Errors
/// Exit 2 for an unreadable, corrupt or unsupported model or a bad output path; 1 if the blob
/// cannot be written.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    check_output_path(&args.output, "blob")?;
    let plan = import::import(&args.model, ImportOptions { dataset: args.dataset }).map_err(|e| match e {
        ImportError::Read { .. } | ImportError::UnknownFormat { .. } => CliError::bad_input(e),
        _ => CliError::bad_input(e),
    })?;
    let ops = plan.ops.len();
    let macs = plan.macs();
    let params: usize = plan.ops.iter().map(|o| o.params()).sum();
    let blob =
        emit::write(&lower::fuse(plan)).map_err(|e| CliError::bad_input(format!("{}: {e}", args.model.display())))?;
    crate::atomic::write(&args.output, blob.bytes())
        .map_err(|e| CliError::failed(format!("{}: {e}", args.output.display())))?;
    let model = blob.model();
    let json = serde_json::json!({
        "model": args.model.display().to_string(),
        "blob": args.output.display().to_string(),
        "dataset": model.dataset(),
        "input": [model.input_shape().h, model.input_shape().w, model.input_shape().c],
        "input_scale": model.meta().input_scale,
        "input_zero_point": model.meta().input_zero_point,
        "takes_pixels": model.takes_pixels(),
        "classes": model.output_len(),
        "tflite_ops": ops,
        "blob_ops": model.op_count(),
        "params": params,
        "macs": macs,
        "flash_bytes": blob.bytes().len(),
        "arena_bytes": model.arena_size(),
    });
    if args.json {
        writeln!(io.out, "{json}").map_err(CliError::failed)
    } else {
        writeln!(
            io.out,
            "wrote {} ({} B): {} ops ({} after fusion), {} parameters, {} MACs, arena {} B; input {}x{}x{} {}",
            args.output.display(),
            blob.bytes().len(),
            ops,
            model.op_count(),
            params,
            macs,
            model.arena_size(),
            model.input_shape().h,
            model.input_shape().w,
            model.input_shape().c,
            if model.takes_pixels() {
                "pixels (pixel - 128)".to_string()
            } else {
                format!("int8 (scale {}, zero point {})", model.meta().input_scale, model.meta().input_zero_point)
            }
        )
        .map_err(CliError::failed)
    }
}
