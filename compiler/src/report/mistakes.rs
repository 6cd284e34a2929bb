//! The most confident mistakes (`OUT.mistakes.png`): the test images the blob gets wrong with
//! the highest confidence, their real pixels upscaled (in colour for RGB data sets), each with
//! its true and predicted class and the confidence (softmax of the dequantized logits, as
//! `mnistc predict` prints it).

use mnistc_runtime::{Input, Model, RunError};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::Images;
use crate::report::picture::{FONT, Picture, text};

/// One misclassified image.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mistake {
    /// Index in the evaluated set.
    pub index: usize,
    /// True class.
    pub label: u8,
    /// Predicted class.
    pub predicted: u8,
    /// Softmax probability of the predicted class, 0..=1.
    pub confidence: f32,
}

/// The most confident mistakes and their images.
#[derive(Clone, Debug)]
pub struct Mistakes {
    /// Most confident first (ties: lower index first).
    pub list: Vec<Mistake>,
    /// Image `k` is the image of `list[k]` (labels: the true classes).
    pub images: Images,
}

/// The `n` misclassified images (`predictions[i] != images.labels[i]`) the model is most
/// confident about.
///
/// # Errors
/// [`RunError`] if an image does not fit the model.
pub fn most_confident(model: &Model<'_>, images: &Images, predictions: &[u8], n: usize) -> Result<Mistakes, RunError> {
    let len = images.image_len();
    let mut arena = crate::verify::on_device::arena(model);
    let mut probabilities = vec![0f32; model.output_len()];
    let mut list = Vec::new();
    for (index, (&label, &predicted)) in images.labels.iter().zip(predictions).enumerate() {
        if label == predicted {
            continue;
        }
        let Some(image) = images.pixels.get(index * len..(index + 1) * len) else { continue };
        let logits = model.run_logits(Input::Pixels(image), bytemuck::cast_slice_mut(&mut arena))?;
        logits.softmax(&mut probabilities);
        let confidence = probabilities.get(predicted as usize).copied().unwrap_or(0.0);
        list.push(Mistake { index, label, predicted, confidence });
    }
    list.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.index.cmp(&b.index)));
    list.truncate(n);
    let indices: Vec<usize> = list.iter().map(|m| m.index).collect();
    Ok(Mistakes { list, images: images.subset(&indices) })
}

/// Images per row of the grid.
pub const COLUMNS: usize = 5;
/// Each image pixel becomes `SCALE × SCALE` picture pixels.
pub const SCALE: u32 = 3;
const TITLE: u32 = 40;
const CAPTION: u32 = 40;
const GAP: u32 = 10;

/// The grid of mistakes.
pub struct MistakeGrid<'a> {
    /// Title.
    pub title: &'a str,
    /// The mistakes to show, in order, with their images.
    pub mistakes: &'a Mistakes,
    /// Class names, index = class.
    pub class_names: &'a [String],
}

impl MistakeGrid<'_> {
    fn cell(&self) -> (u32, u32) {
        let w = (self.mistakes.images.width as u32 * SCALE).max(150);
        (w + GAP, self.mistakes.images.height as u32 * SCALE + CAPTION + GAP)
    }

    /// Top-left picture pixel of the `k`-th mistake's image.
    pub fn image_origin(&self, k: usize) -> (u32, u32) {
        let (cw, ch) = self.cell();
        let image_w = self.mistakes.images.width as u32 * SCALE;
        let (row, col) = ((k / COLUMNS) as u32, (k % COLUMNS) as u32);
        (GAP + col * cw + (cw - GAP - image_w) / 2, TITLE + row * ch)
    }

    fn name(&self, class: u8) -> String {
        self.class_names.get(class as usize).cloned().unwrap_or_else(|| class.to_string())
    }
}

impl Picture for MistakeGrid<'_> {
    const NAME: &'static str = "mistakes";

    fn size(&self) -> (u32, u32) {
        let (cw, ch) = self.cell();
        let rows = self.mistakes.list.len().div_ceil(COLUMNS).max(1) as u32;
        (GAP + COLUMNS as u32 * cw, TITLE + rows * ch)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (w, _) = self.size();
        let title = (FONT, 18).into_font().style(FontStyle::Bold).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        area.draw(&Text::new(self.title.to_string(), ((w / 2) as i32, 10), title)).map_err(text)?;
        let caption = (FONT, 12).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        if self.mistakes.list.is_empty() {
            area.draw(&Text::new("no misclassified image", ((w / 2) as i32, TITLE as i32 + 20), caption))
                .map_err(text)?;
            return Ok(());
        }
        let (iw, ih, c) = (self.mistakes.images.width, self.mistakes.images.height, self.mistakes.images.channels);
        let len = self.mistakes.images.image_len();
        for (k, m) in self.mistakes.list.iter().enumerate() {
            let Some(pixels) = self.mistakes.images.pixels.get(k * len..(k + 1) * len) else { continue };
            let (x0, y0) = self.image_origin(k);
            for y in 0..ih {
                for x in 0..iw {
                    let p = &pixels[(y * iw + x) * c..][..c];
                    let colour = if c >= 3 { RGBColor(p[0], p[1], p[2]) } else { RGBColor(p[0], p[0], p[0]) };
                    let (px, py) = ((x0 + x as u32 * SCALE) as i32, (y0 + y as u32 * SCALE) as i32);
                    let s = SCALE as i32;
                    area.draw(&Rectangle::new([(px, py), (px + s, py + s)], colour.filled())).map_err(text)?;
                }
            }
            let centre = (x0 + iw as u32 * SCALE / 2) as i32;
            let below = (y0 + ih as u32 * SCALE) as i32;
            let lines = [
                format!("#{}: true {}", m.index, self.name(m.label)),
                format!("predicted {} ({:.1} %)", self.name(m.predicted), 100.0 * m.confidence),
            ];
            for (i, line) in lines.into_iter().enumerate() {
                area.draw(&Text::new(line, (centre, below + 4 + 16 * i as i32), caption.clone())).map_err(text)?;
            }
        }
        Ok(())
    }
}
