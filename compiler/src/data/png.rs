//! PNG images as model inputs (`mnistc predict`): decoded with limits, resized, and for grey
//! models converted to grey and turned light-on-dark like the digit data sets; colour models
//! get the image's red, green and blue as they are.

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

/// Decodes an image held in memory (PNG, or any format the `image` build knows) to `width ×
/// height` pixels of `channels` bytes, refusing images over [`MAX_IMAGE_SIDE`] a side or 256 MiB
/// decoded before inflating them. One channel: grey, light-on-dark (inverted when the border is
/// light, as the digit data sets are). Three: red, green, blue interleaved (`HWC`), colours kept
/// (transparency is dropped).
///
/// # Errors
/// What the decoder reports, that the image has no pixels, or a channel count other than 1 or 3.
pub fn decode_png(bytes: &[u8], width: u32, height: u32, channels: usize) -> Result<Vec<u8>, String> {
    if channels != 1 && channels != 3 {
        return Err(format!("a model input of {channels} channels is not an image (1 = grey, 3 = colour)"));
    }
    check_png_palette(bytes)?;
    let mut reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    reader.limits(png_limits());
    let img = reader.decode().map_err(|e| e.to_string())?;
    if img.width() == 0 || img.height() == 0 {
        return Err("the image has no pixels".into());
    }
    if channels == 3 {
        let rgb = img.to_rgb8();
        let resized = image::imageops::resize(&rgb, width, height, image::imageops::FilterType::Triangle);
        return Ok(resized.into_raw());
    }
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
