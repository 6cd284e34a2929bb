//! `mnistc::data::png::decode_png` (what `mnistc predict` runs) on arbitrary bytes: the first two bytes give the size the
//! image is scaled to (`width − 1`, `height − 1`: 1 to 256 pixels each), the third the channels
//! (odd: 1, grey; even: 3, colour), the rest is the image.
//!
//! Properties: never panics; a decoded image holds exactly `width · height · channels` bytes; an
//! error's message is non-empty.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mnistc::data::png::decode_png;

fuzz_target!(|data: &[u8]| {
    let [w, h, c, image @ ..] = data else { return };
    let (width, height) = (u32::from(*w) + 1, u32::from(*h) + 1);
    let channels = if c % 2 == 1 { 1 } else { 3 };
    match decode_png(image, width, height, channels) {
        Ok(pixels) => assert_eq!(
            pixels.len(),
            (width * height) as usize * channels,
            "decoded {width}x{height}x{channels} has the wrong length"
        ),
        Err(message) => assert!(!message.trim().is_empty(), "empty error message"),
    }
});
