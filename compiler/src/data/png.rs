//! PNG images as model inputs (`mnistc predict`): decoded with limits, converted to grey,
//! resized, and turned light-on-dark like the data sets.

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
