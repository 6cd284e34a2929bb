//! `mnistc predict OUT.bin (IMAGE.png... | --idx FILE [--limit N]) [--json]`.

use std::path::{Path, PathBuf};

use super::{CliError, Io, blob_arg};
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

/// The largest image `predict` decodes: 8192 pixels a side and 256 MiB of decoded pixels, so a
/// decompression bomb (a small file claiming a huge image) is refused before it is inflated.
fn png_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(256 << 20);
    limits
}

/// The largest width or height of an image `predict` accepts.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// The largest image file `predict` reads.
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;

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

/// Decodes an image held in memory (PNG, or any format the `image` build knows) to `w × h` grey
/// pixels, light-on-dark, refusing images over [`MAX_IMAGE_SIDE`] a side or 256 MiB decoded
/// before inflating them.
///
/// # Errors
/// What the decoder reports, or that the image has no pixels.
pub fn decode_png(bytes: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    check_png_palette(bytes)?;
    let mut reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    reader.limits(png_limits());
    let img = reader.decode().map_err(|e| e.to_string())?;
    let grey = image::imageops::grayscale(&img);
    let (w, h) = grey.dimensions();
    if w == 0 || h == 0 {
        return Err("the image has no pixels".into());
    }
    let border: Vec<u8> = (0..w)
        .flat_map(|x| [grey.get_pixel(x, 0)[0], grey.get_pixel(x, h - 1)[0]])
        .chain((0..h).flat_map(|y| [grey.get_pixel(0, y)[0], grey.get_pixel(w - 1, y)[0]]))
        .collect();
    let light = border.iter().map(|&p| p as u64).sum::<u64>() * 2 > 255 * border.len() as u64;
    let resized = image::imageops::resize(&grey, width, height, image::imageops::FilterType::Triangle);
    Ok(resized.pixels().map(|p| if light { 255 - p[0] } else { p[0] }).collect())
}

/// Refuses a PNG whose palette (`PLTE` chunk) is not a whole number of RGB triples.
///
/// The PNG specification requires it (§11.2.3), but `png` 0.18.1 accepts such a chunk and then
/// panics expanding the palette (image-rs/image-png#694; found here by the `png` fuzz target).
/// Walks the chunk headers only; anything else malformed is left to the decoder to report.
fn check_png_palette(bytes: &[u8]) -> Result<(), String> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    let Some(mut rest) = bytes.strip_prefix(SIGNATURE) else { return Ok(()) };
    while let [l0, l1, l2, l3, t0, t1, t2, t3, after @ ..] = rest {
        let len = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
        if [*t0, *t1, *t2, *t3] == *b"PLTE" && !len.is_multiple_of(3) {
            return Err(format!(
                "malformed PNG: its palette (PLTE chunk) is {len} bytes, not a whole number of RGB triples"
            ));
        }
        // The chunk's data and its 4-byte CRC.
        let Some(next) = after.get(len.saturating_add(4)..) else { break };
        rest = next;
    }
    Ok(())
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
