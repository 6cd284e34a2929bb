//! Rendering a report picture with `plotters`: one drawing, two files (PNG through the bitmap
//! backend, SVG as text). Text is set in DejaVu Sans, embedded (the `dejavu` crate) and given to
//! plotters' `ab_glyph` renderer once, so pictures look the same on every machine and need no
//! system font library.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Why a picture could not be drawn or encoded.
#[derive(Debug, thiserror::Error)]
#[error("could not draw the {picture} picture: {message}")]
pub struct PictureError {
    /// Which picture (`curves`, `confusion`, ...).
    pub picture: &'static str,
    /// What plotters or the PNG encoder said.
    pub message: String,
}

/// The font family every picture uses.
pub const FONT: &str = "sans-serif";

/// A picture that can be drawn on any plotters backend.
pub trait Picture {
    /// Short name, for errors (`curves`).
    const NAME: &'static str;
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws on `area` (already filled white).
    ///
    /// # Errors
    /// What plotters reports, as text.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Registers DejaVu Sans with plotters (once per process).
fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded fonts are valid TrueType files; a failure would only leave text out.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

fn error<P: Picture>(message: impl ToString) -> PictureError {
    PictureError { picture: P::NAME, message: message.to_string() }
}

/// The picture's pixels as RGB bytes, row-major (`width * height * 3`).
///
/// # Errors
/// [`PictureError`] if drawing fails.
pub fn rgb<P: Picture>(picture: &P) -> Result<Vec<u8>, PictureError> {
    fonts();
    let (w, h) = picture.size();
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(error::<P>)?;
        picture.draw(&root).map_err(error::<P>)?;
        root.present().map_err(error::<P>)?;
    }
    Ok(buf)
}

/// The picture as a PNG file.
///
/// # Errors
/// [`PictureError`] if drawing or encoding fails.
pub fn png<P: Picture>(picture: &P) -> Result<Vec<u8>, PictureError> {
    use image::ImageEncoder;
    let (w, h) = picture.size();
    let pixels = rgb(picture)?;
    let mut out = Vec::new();
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive)
        .write_image(&pixels, w, h, image::ExtendedColorType::Rgb8)
        .map_err(error::<P>)?;
    Ok(out)
}

/// The picture as an SVG document.
///
/// # Errors
/// [`PictureError`] if drawing fails.
pub fn svg<P: Picture>(picture: &P) -> Result<String, PictureError> {
    fonts();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, picture.size()).into_drawing_area();
        root.fill(&WHITE).map_err(error::<P>)?;
        picture.draw(&root).map_err(error::<P>)?;
        root.present().map_err(error::<P>)?;
    }
    Ok(out)
}

/// Plotters' error as text (its error type differs per backend).
pub fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}
