//! The training curves (`OUT.curves.png` / `.svg`): loss and accuracy against epoch, training
//! and validation side by side, the epoch whose weights were kept marked when early stopping
//! restored it, to spot over-fitting at a glance.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::picture::{FONT, Picture, text};
use crate::train::History;

/// Training in blue, validation in orange (matplotlib's first two colours).
pub const TRAIN: RGBColor = RGBColor(31, 119, 180);
/// The validation colour.
pub const VALIDATION: RGBColor = RGBColor(255, 127, 14);

/// The curves of one training run.
pub struct Curves<'a> {
    /// The model's name (title).
    pub title: &'a str,
    /// The per-epoch records.
    pub history: &'a History,
}

/// One panel: a quantity against epoch.
struct Panel {
    caption: &'static str,
    axis: &'static str,
    train: Vec<(f64, f64)>,
    validation: Vec<(f64, f64)>,
    /// Where the legend covers the least: loss falls, accuracy rises.
    legend: SeriesLabelPosition,
}

impl Curves<'_> {
    fn panels(&self) -> [Panel; 2] {
        let h = &self.history.epochs;
        let x = |e: &crate::train::EpochRecord| e.epoch as f64;
        [
            Panel {
                caption: "loss (cross-entropy)",
                axis: "loss",
                train: h.iter().map(|e| (x(e), e.train_loss)).collect(),
                validation: h.iter().filter_map(|e| e.val_loss.map(|v| (x(e), v))).collect(),
                legend: SeriesLabelPosition::UpperRight,
            },
            Panel {
                caption: "accuracy",
                axis: "accuracy %",
                train: h.iter().map(|e| (x(e), 100.0 * e.train_accuracy)).collect(),
                validation: h.iter().filter_map(|e| e.val_accuracy.map(|v| (x(e), 100.0 * v))).collect(),
                legend: SeriesLabelPosition::LowerRight,
            },
        ]
    }

    /// The epoch to mark: the one whose weights early stopping kept.
    fn marked_epoch(&self) -> Option<usize> {
        let h = self.history;
        (h.restored_best || h.stopped_early).then_some(h.best_epoch).flatten()
    }
}

/// `lo..hi` widened by 5 % each side (and to a non-empty range).
fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad)..(hi + pad)
}

impl Picture for Curves<'_> {
    const NAME: &'static str = "curves";

    fn size(&self) -> (u32, u32) {
        (960, 400)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let epochs = self.history.epochs.len().max(1) as f64;
        let title = format!("{}: training curves ({} epochs)", self.title, self.history.epochs.len());
        let area = area.titled(&title, (FONT, 20)).map_err(text)?;
        let halves = area.split_evenly((1, 2));
        for (panel, half) in self.panels().iter().zip(&halves) {
            let y = padded(panel.train.iter().chain(&panel.validation).map(|p| p.1));
            let mut chart = ChartBuilder::on(half)
                .caption(panel.caption, (FONT, 16))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d(0.5..epochs + 0.5, y.clone())
                .map_err(text)?;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .x_desc("epoch")
                .y_desc(panel.axis)
                .x_labels((epochs as usize).min(10))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .label_style((FONT, 12))
                .draw()
                .map_err(text)?;
            if let Some(best) = self.marked_epoch() {
                let grey = RGBColor(120, 120, 120);
                chart
                    .draw_series(LineSeries::new([(best as f64, y.start), (best as f64, y.end)], grey.stroke_width(1)))
                    .map_err(text)?
                    .label(format!("kept: epoch {best}"))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], grey));
            }
            for (points, colour, name) in
                [(&panel.train, TRAIN, "training"), (&panel.validation, VALIDATION, "validation")]
            {
                if points.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
                    .map_err(text)?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(text)?;
            }
            chart
                .configure_series_labels()
                .label_font((FONT, 12))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(panel.legend.clone())
                .draw()
                .map_err(text)?;
        }
        Ok(())
    }
}
