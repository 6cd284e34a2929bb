//! `mnistc predict OUT.bin (IMAGE.png... | --idx FILE [--limit N]) [--json]`.

use std::path::{Path, PathBuf};

use super::{CliError, Io, blob_arg};
pub use crate::data::png::{MAX_IMAGE_FILE_BYTES, MAX_IMAGE_SIDE, decode_png};
use crate::verify::on_device;

/// Arguments of `mnistc predict`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "A PNG of any size or colour is converted to grey, resized to the model's input \
(bilinear), and inverted when its background is light (the data sets are light-on-dark: a mean \
border brightness above 50 % counts as a light background).")]
pub struct Args {
    /// The blob
    #[arg(value_name = "OUT.bin")]
    pub blob: PathBuf,
    /// Images to classify
    #[arg(value_name = "IMAGE.png", required_unless_present = "idx", conflicts_with = "idx")]
    pub images: Vec<PathBuf>,
    /// Classify the images of an IDX file (raw or .gz) instead
    #[arg(long, value_name = "FILE")]
    pub idx: Option<PathBuf>,
    /// With --idx: only the first N images
    #[arg(long, value_name = "N", requires = "idx", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// One JSON object per line: index, class, name, scores (dequantized logits)
    #[arg(long)]
    pub json: bool,
}

/// A PNG file as `w × h` grey pixels, light-on-dark, of the model's input size.
///
/// # Errors
/// Exit 2 if the file cannot be read or decoded.
pub fn load_png(path: &Path, width: u32, height: u32) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let bad = |e: &dyn std::fmt::Display| CliError::bad_input(format!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_IMAGE_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| bad(&e))?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(bad(&format!("the file is larger than {} MiB; is it an image?", MAX_IMAGE_FILE_BYTES >> 20)));
    }
    decode_png(&bytes, width, height).map_err(|e| CliError::bad_input(format!("{}: {e}", path.display())))
}

/// Runs `mnistc predict`.
///
/// # Errors
/// Exit 2 for unreadable blobs or images, or images that do not fit the model.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let bytes = blob_arg::read(&args.blob)?;
    let model = blob_arg::load(&args.blob, &bytes)?;
    let shape = model.input_shape();
    if shape.c != 1 {
        return Err(CliError::bad_input("predict supports single-channel (grey) models"));
    }
    let images: Vec<(String, Vec<u8>)> = match &args.idx {
        Some(path) => {
            let (n, rows, cols, pixels) = crate::data::read_images_file(path).map_err(CliError::bad_input)?;
            if (rows, cols) != (shape.h, shape.w) {
                return Err(CliError::bad_input(format!(
                    "{}: images are {rows}x{cols}, the model takes {}x{}",
                    path.display(),
                    shape.h,
                    shape.w
                )));
            }
            let n = args.limit.map_or(n, |l| n.min(l as usize));
            pixels.chunks_exact(rows * cols).take(n).enumerate().map(|(i, p)| (format!("{i}"), p.to_vec())).collect()
        }
        None => args
            .images
            .iter()
            .map(|p| Ok((p.display().to_string(), load_png(p, shape.w as u32, shape.h as u32)?)))
            .collect::<Result<_, CliError>>()?,
    };
    for (index, (source, pixels)) in images.iter().enumerate() {
        let scores = on_device::logits(&model, pixels).map_err(CliError::bad_input)?;
        let class = scores.iter().enumerate().fold(0, |best, (i, &v)| if v > scores[best] { i } else { best });
        let name = model.class_name(class);
        let line = if args.json {
            serde_json::json!({ "index": index, "source": source, "class": class, "name": name, "scores": scores })
                .to_string()
        } else {
            let scores: Vec<String> = scores.iter().map(|s| format!("{s:.3}")).collect();
            format!("{source}: {class} ({name})  scores [{}]", scores.join(", "))
        };
        writeln!(io.out, "{line}").map_err(CliError::failed)?;
    }
    Ok(())
}
