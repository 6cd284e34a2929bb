//! `mnistc import MODEL.tflite|MODEL.onnx -o OUT.bin [--dataset NAME] [--calibration N] [--data DIR] [--json]`.

use std::path::PathBuf;

use super::common::{DataArgs, check_output_path};
use super::{CliError, Io};
use crate::data::{self, Dataset, Split};
use crate::import::{self, ImportOptions};
use crate::lower::plan::Precision;
use crate::lower::{self, emit};

/// Arguments of `mnistc import`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Compiles a model trained elsewhere into a blob for the mnistc runtime; writes OUT.bin \
atomically. The final softmax is dropped (the blob's logits are its input).\n\
- A full-integer TFLite model (TFLiteConverter with TFLITE_BUILTINS_INT8) keeps TFLite's own int8 \
arithmetic: its outputs equal TensorFlow Lite Micro's reference kernels bit for bit.\n\
- A QDQ ONNX model (onnxruntime's quantize_static) keeps its scales, zero points and int8 weights, in \
mnistc's (tract's) arithmetic.\n\
- A float ONNX model is quantized by mnistc: it needs --dataset, whose first --calibration training \
images calibrate the activations (min/max).\n\
A model whose int8 input is `pixel - 128` (scale 1/255, zero point -128) takes pixels like mnistc's own \
blobs; any other runs on int8 input (`predict --raw`).\n\
Exit codes: 0 written, 2 bad input (an unreadable, corrupt or unsupported model: the message names the \
operator and what is supported).")]
pub struct Args {
    /// The model (.tflite or .onnx)
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// Where to write the blob
    #[arg(short, long, value_name = "OUT.bin")]
    pub output: PathBuf,
    /// The data set the model classifies (mnist, fashion-mnist, cifar-10): class names, and `eval` without --data
    #[arg(long, value_name = "NAME", value_parser = parse_dataset)]
    pub dataset: Option<Dataset>,
    /// Float models: how many training images of --dataset calibrate the activations
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub calibration: u64,
    #[command(flatten)]
    pub data: DataArgs,
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
    let plan = import::import(&args.model, ImportOptions { dataset: args.dataset }).map_err(CliError::bad_input)?;
    let float = plan.precision != Precision::Int8;
    let plan = if float {
        // The blob's limits (ops, classes, sizes) first: the float plan as a blob.
        emit::write(&lower::fuse(plan.clone()))
            .map_err(|e| CliError::bad_input(format!("{}: {e}", args.model.display())))?;
        let Some(dataset) = args.dataset else {
            return Err(CliError::bad_input(format!(
                "{}: a float model; give --dataset NAME: mnistc quantizes it to int8 with calibration images from that data set",
                args.model.display()
            )));
        };
        let dir = args.data.with_dataset(dataset, io.err)?;
        let train = data::load(&dir, dataset, Split::Train).map_err(CliError::bad_input)?;
        let images = crate::pipeline::calibration_images(&train, args.calibration as usize);
        import::quantize_float(&args.model, plan, &images.pixels).map_err(CliError::bad_input)?
    } else {
        plan
    };
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
        "quantized_by_mnistc": float,
        "source_ops": ops,
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
