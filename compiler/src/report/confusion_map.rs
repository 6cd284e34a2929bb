//! The confusion matrix as a heat map (`OUT.confusion.png`): one cell per (true, predicted)
//! pair with its count, shaded by the share of the true class it holds (white 0 %, dark blue
//! 100 %, so the rows of classes of any size compare), class names on both axes.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::metrics::Evaluation;
use crate::report::picture::{FONT, Picture, text};

/// Side of a cell, pixels.
pub const CELL: u32 = 64;
const LEFT: u32 = 110;
const TOP: u32 = 80;

/// The heat map of one evaluation.
pub struct ConfusionMap<'a> {
    /// Title (model and what was evaluated).
    pub title: &'a str,
    /// The counts and class names.
    pub eval: &'a Evaluation,
}

impl ConfusionMap<'_> {
    fn classes(&self) -> u32 {
        self.eval.confusion.len() as u32
    }

    /// Top-left pixel of the cell of `(true class, predicted class)`.
    pub fn cell_origin(row: usize, col: usize) -> (u32, u32) {
        (LEFT + col as u32 * CELL, TOP + row as u32 * CELL)
    }

    /// The shade of a cell holding `fraction` (0..=1) of its row: white to matplotlib's
    /// "Blues" darkest blue, linearly.
    pub fn colour(fraction: f64) -> RGBColor {
        let f = fraction.clamp(0.0, 1.0);
        let mix = |white: f64, dark: f64| (white + (dark - white) * f).round() as u8;
        RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
    }

    /// The share of row `row` in cell `(row, col)` (0 for an empty row).
    pub fn fraction(&self, row: usize, col: usize) -> f64 {
        let total: u64 = self.eval.confusion[row].iter().sum();
        if total == 0 { 0.0 } else { self.eval.confusion[row][col] as f64 / total as f64 }
    }
}

impl Picture for ConfusionMap<'_> {
    const NAME: &'static str = "confusion";

    fn size(&self) -> (u32, u32) {
        let n = self.classes().max(1);
        ((LEFT + n * CELL + 20).max(420), TOP + n * CELL + 40)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let n = self.classes() as usize;
        let centre = Pos::new(HPos::Center, VPos::Center);
        let px = |v: u32| v as i32;
        let (w, h) = self.size();
        let title = (FONT, 18).into_font().style(FontStyle::Bold).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        area.draw(&Text::new(self.title.to_string(), (px(w / 2), 8), title)).map_err(text)?;
        let label = (FONT, 12).into_font().color(&BLACK);
        let names = &self.eval.class_names;
        let axis = label.clone().pos(centre);
        area.draw(&Text::new("predicted class", (px(LEFT + n as u32 * CELL / 2), px(TOP - 40)), axis.clone()))
            .map_err(text)?;
        area.draw(&Text::new("true class", (px(LEFT / 2), px(TOP - 40)), axis.clone())).map_err(text)?;
        for (i, name) in names.iter().enumerate().take(n) {
            let (x, y) = Self::cell_origin(i, i);
            area.draw(&Text::new(name.clone(), (px(x + CELL / 2), px(TOP - 14)), axis.clone())).map_err(text)?;
            let right = label.clone().pos(Pos::new(HPos::Right, VPos::Center));
            area.draw(&Text::new(name.clone(), (px(LEFT - 8), px(y + CELL / 2)), right)).map_err(text)?;
        }
        for row in 0..n {
            for col in 0..n {
                let (x, y) = Self::cell_origin(row, col);
                let f = self.fraction(row, col);
                let cell = [(px(x), px(y)), (px(x + CELL), px(y + CELL))];
                area.draw(&Rectangle::new(cell, Self::colour(f).filled())).map_err(text)?;
                area.draw(&Rectangle::new(cell, RGBColor(200, 200, 200))).map_err(text)?;
                let ink = if f > 0.5 { WHITE } else { BLACK };
                let count = (FONT, 13).into_font().color(&ink).pos(centre);
                let c = self.eval.confusion[row][col];
                area.draw(&Text::new(c.to_string(), (px(x + CELL / 2), px(y + CELL / 2)), count)).map_err(text)?;
            }
        }
        let note = format!(
            "{} of {} correct ({:.2} %); shade: share of the true class",
            self.eval.correct,
            self.eval.samples,
            100.0 * self.eval.accuracy
        );
        let bottom = label.pos(Pos::new(HPos::Center, VPos::Center));
        area.draw(&Text::new(note, (px(w / 2), px(h - 20)), bottom)).map_err(text)?;
        Ok(())
    }
}
