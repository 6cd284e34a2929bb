//! `mnistc predict OUT.bin (IMAGE.png... | --idx FILE | --cifar FILE | --raw FILE [--limit N]) [--json]`.

use std::path::{Path, PathBuf};

use super::{CliError, Io, blob_arg};
pub use crate::data::png::{MAX_IMAGE_FILE_BYTES, MAX_IMAGE_SIDE, decode_png};
use crate::verify::on_device;

/// Arguments of `mnistc predict`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "A PNG of any size is resized to the model's input (bilinear). For a grey model \
(MNIST, Fashion-MNIST) it is converted to grey and inverted when its background is light (the data \
sets are light-on-dark: a mean border brightness above 50 % counts as a light background); a colour \
model (CIFAR-10) gets its red, green and blue as they are.\n\
--raw runs an int8 model on already-quantized inputs, in the model's input quantization (`inspect` and \
`import` show it): the file holds N tensors of the model's input size, one signed byte per value, NHWC. \
It is the way to run an imported model whose input is not pixels (audio features, say).")]
pub struct Args {
    /// The blob
    #[arg(value_name = "OUT.bin")]
    pub blob: PathBuf,
    /// Images to classify
    #[arg(value_name = "IMAGE.png", required_unless_present_any = ["idx", "cifar", "raw"], conflicts_with_all = ["idx", "cifar", "raw"])]
    pub images: Vec<PathBuf>,
    /// Classify the images of an IDX file (raw or .gz; grey models) instead
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cifar", "raw"])]
    pub idx: Option<PathBuf>,
    /// Classify the images of a CIFAR-10 batch file (raw or .gz; colour models) instead
    #[arg(long, value_name = "FILE", conflicts_with = "raw")]
    pub cifar: Option<PathBuf>,
    /// Run an int8 model on raw int8 input tensors (N x the input size, signed bytes) instead
    #[arg(long, value_name = "FILE")]
    pub raw: Option<PathBuf>,
    /// With --idx, --cifar or --raw: only the first N inputs
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// One JSON object per line: index, class, name, scores (dequantized logits)
    #[arg(long)]
    pub json: bool,
}

/// A PNG file as the model's input: `width × height` pixels of `channels` bytes (grey
/// light-on-dark, or colour), see [`decode_png`].
///
/// # Errors
/// Exit 2 if the file cannot be read or decoded.
pub fn load_png(path: &Path, width: u32, height: u32, channels: usize) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let bad = |e: &dyn std::fmt::Display| CliError::bad_input(format!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_IMAGE_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| bad(&e))?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(bad(&format!("the file is larger than {} MiB; is it an image?", MAX_IMAGE_FILE_BYTES >> 20)));
    }
    decode_png(&bytes, width, height, channels).map_err(|e| CliError::bad_input(format!("{}: {e}", path.display())))
}

/// Runs `mnistc predict`.
///
/// # Errors
/// Exit 2 for unreadable blobs or images, or images that do not fit the model.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let bytes = blob_arg::read(&args.blob)?;
    let model = blob_arg::load(&args.blob, &bytes)?;
    let shape = model.input_shape();
    if let Some(path) = &args.raw {
        return raw(&args, path, &model, io);
    }
    if !model.takes_pixels() {
        return Err(CliError::bad_input(format!(
            "{}: the model's int8 input is not pixels (scale {}, zero point {}): give its tensors with --raw FILE",
            args.blob.display(),
            model.meta().input_scale,
            model.meta().input_zero_point
        )));
    }
    if shape.c != 1 && shape.c != 3 {
        return Err(CliError::bad_input(format!(
            "the model takes {} channels: predict supports grey (1) and colour (3) models",
            shape.c
        )));
    }
    if args.limit.is_some() && args.idx.is_none() && args.cifar.is_none() {
        return Err(CliError::bad_input("--limit applies to --idx, --cifar or --raw"));
    }
    let file_images = |path: &Path, (n, h, w, c): (usize, usize, usize, usize), pixels: Vec<u8>| {
        if (h, w, c) != (shape.h, shape.w, shape.c) {
            return Err(CliError::bad_input(format!(
                "{}: images are {h}x{w}x{c} (height x width x channels), the model takes {}x{}x{}",
                path.display(),
                shape.h,
                shape.w,
                shape.c
            )));
        }
        let n = args.limit.map_or(n, |l| n.min(l as usize));
        Ok(pixels.chunks_exact(h * w * c).take(n).enumerate().map(|(i, p)| (format!("{i}"), p.to_vec())).collect())
    };
    let images: Vec<(String, Vec<u8>)> = match (&args.idx, &args.cifar) {
        (Some(path), _) => {
            let (n, rows, cols, pixels) = crate::data::read_images_file(path).map_err(CliError::bad_input)?;
            file_images(path, (n, rows, cols, 1), pixels)?
        }
        (None, Some(path)) => {
            let batch = crate::data::cifar::read_batch(path).map_err(CliError::bad_input)?;
            let (side, c) = (crate::data::cifar::SIDE, crate::data::cifar::CHANNELS);
            file_images(path, (batch.n, side, side, c), batch.pixels)?
        }
        (None, None) => args
            .images
            .iter()
            .map(|p| Ok((p.display().to_string(), load_png(p, shape.w as u32, shape.h as u32, shape.c)?)))
            .collect::<Result<_, CliError>>()?,
    };
    for (index, (source, pixels)) in images.iter().enumerate() {
        let scores = on_device::logits(&model, pixels).map_err(CliError::bad_input)?;
        print_scores(&args, &model, index, source, &scores, io)?;
    }
    Ok(())
}

/// `--raw FILE`: the file's int8 tensors, one after another.
fn raw(args: &Args, path: &Path, model: &mnistc_runtime::Model<'_>, io: &mut Io<'_>) -> Result<(), CliError> {
    let bad = |what: String| CliError::bad_input(format!("{}: {what}", path.display()));
    if model.precision() != mnistc_runtime::format::Precision::Int8 {
        return Err(bad(format!(
            "--raw takes int8 tensors; {} is a {} model",
            args.blob.display(),
            model.precision().name()
        )));
    }
    let size = model.input_len();
    let len = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?.len();
    if len == 0 || len % size as u64 != 0 || len > (1 << 30) {
        return Err(bad(format!(
            "{len} bytes; expected a whole number of {size}-byte int8 tensors (the model's input)"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let n = args.limit.map_or(usize::MAX, |l| l as usize);
    for (index, tensor) in bytes.chunks_exact(size).take(n).enumerate() {
        let input: &[i8] = bytemuck::cast_slice(tensor);
        let scores = on_device::logits_of(model, mnistc_runtime::Input::I8(input)).map_err(CliError::bad_input)?;
        print_scores(args, model, index, &format!("{index}"), &scores, io)?;
    }
    Ok(())
}

/// One line per input: its class and scores (JSON with --json).
fn print_scores(
    args: &Args,
    model: &mnistc_runtime::Model<'_>,
    index: usize,
    source: &str,
    scores: &[f32],
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let class = scores.iter().enumerate().fold(0, |best, (i, &v)| if v > scores[best] { i } else { best });
    let name = model.class_name(class);
    let line = if args.json {
        serde_json::json!({ "index": index, "source": source, "class": class, "name": name, "scores": scores })
            .to_string()
    } else {
        let scores: Vec<String> = scores.iter().map(|s| format!("{s:.3}")).collect();
        format!("{source}: {class} ({name})  scores [{}]", scores.join(", "))
    };
    writeln!(io.out, "{line}").map_err(CliError::failed)
}
