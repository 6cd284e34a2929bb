//! `mnistc::data::png::decode_png` (what `mnistc predict` runs) on arbitrary bytes: the first two bytes give the size the
//! image is scaled to (`width − 1`, `height − 1`: 1 to 256 pixels each), the rest is the image.
//!
//! Properties: never panics; a decoded image holds exactly `width · height` grey pixels; an
//! error's message is non-empty.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mnistc::data::png::decode_png;

fuzz_target!(|data: &[u8]| {
    let [w, h, image @ ..] = data else { return };
    let (width, height) = (u32::from(*w) + 1, u32::from(*h) + 1);
    match decode_png(image, width, height) {
        Ok(pixels) => {
            assert_eq!(pixels.len(), (width * height) as usize, "decoded {width}x{height} has the wrong length")
        }
        Err(message) => assert!(!message.trim().is_empty(), "empty error message"),
    }
});
