//! The pictures of `mnistc search`: `DIR/pareto.png` (int8 validation accuracy against flash,
//! arena as the marker's size, the Pareto front drawn through its trials, the best trial ringed)
//! and `DIR/params.png` (accuracy against each sampled hyper-parameter, one panel each, as
//! TensorBoard's "hparams" view), over the trained trials of the journal.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::curves::{TRAIN, VALIDATION};
use crate::report::picture::{FONT, Picture, text};
use crate::search::journal::{Status, TrialRecord};
use crate::search::pareto::pareto_front;
use crate::search::space::OptimizerChoice;

/// A trained trial: `(record, on the Pareto front, int8 validation accuracy %)`.
fn trained(records: &[TrialRecord]) -> Vec<(&TrialRecord, bool, f64)> {
    let front = pareto_front(records);
    records
        .iter()
        .zip(front)
        .filter_map(|(r, f)| Some((r, f, 100.0 * r.val_accuracy_int8?)))
        .filter(|(r, _, _)| r.status == Status::Trained)
        .collect()
}

/// `lo..hi` of `values` widened by `pad` of its span each side (a unit range when empty).
fn span(values: impl Iterator<Item = f64>, pad: f64) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return 0.0..1.0;
    }
    let d = ((hi - lo) * pad).max(hi.abs().max(1.0) * 0.02);
    (lo - d)..(hi + d)
}

/// `DIR/pareto.png`.
pub struct ParetoChart<'a> {
    /// Title.
    pub title: &'a str,
    /// Every trial of the journal.
    pub records: &'a [TrialRecord],
    /// The best trial under budget, if any.
    pub best: Option<usize>,
}

impl ParetoChart<'_> {
    /// Marker radius of a trial with `arena` bytes, when the largest arena is `largest`: the
    /// area grows with the arena.
    pub fn radius(arena: u64, largest: u64) -> i32 {
        (4.0 + 12.0 * (arena as f64 / largest.max(1) as f64).sqrt()).round() as i32
    }
}

impl Picture for ParetoChart<'_> {
    const NAME: &'static str = "pareto";

    fn size(&self) -> (u32, u32) {
        (800, 560)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let trials = trained(self.records);
        let kb = |r: &TrialRecord| r.flash_bytes as f64 / 1024.0;
        let x = span(trials.iter().map(|t| kb(t.0)), 0.08);
        let y = span(trials.iter().map(|t| t.2), 0.08);
        let largest = trials.iter().map(|t| t.0.arena_bytes).max().unwrap_or(1);
        let mut chart = ChartBuilder::on(area)
            .caption(self.title, (FONT, 18))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x, y)
            .map_err(text)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("flash (blob), KB")
            .y_desc("int8 validation accuracy %")
            .label_style((FONT, 12))
            .draw()
            .map_err(text)?;
        let mut front: Vec<(f64, f64)> = trials.iter().filter(|t| t.1).map(|t| (kb(t.0), t.2)).collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        chart
            .draw_series(LineSeries::new(front, VALIDATION.stroke_width(2)))
            .map_err(text)?
            .label("Pareto front (accuracy, flash, arena)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], VALIDATION.stroke_width(2)));
        let r = |t: &TrialRecord| Self::radius(t.arena_bytes, largest);
        chart
            .draw_series(
                trials.iter().filter(|t| !t.1).map(|t| Circle::new((kb(t.0), t.2), r(t.0), TRAIN.mix(0.35).filled())),
            )
            .map_err(text)?
            .label("trial (marker area: arena bytes)")
            .legend(|(x, y)| Circle::new((x + 8, y), 5, TRAIN.mix(0.35).filled()));
        chart
            .draw_series(
                trials
                    .iter()
                    .filter(|t| t.1)
                    .map(|t| Circle::new((kb(t.0), t.2), r(t.0), VALIDATION.mix(0.6).filled())),
            )
            .map_err(text)?
            .label("trial on the front")
            .legend(|(x, y)| Circle::new((x + 8, y), 5, VALIDATION.mix(0.6).filled()));
        for t in &trials {
            let label = (FONT, 11).into_font().color(&BLACK);
            chart.draw_series([Text::new(format!("#{}", t.0.trial), (kb(t.0), t.2), label)]).map_err(text)?;
        }
        if let Some(best) = trials.iter().find(|t| Some(t.0.trial) == self.best) {
            chart
                .draw_series([Circle::new((kb(best.0), best.2), r(best.0) + 4, BLACK.stroke_width(2))])
                .map_err(text)?
                .label(format!("best under budget: #{}", best.0.trial))
                .legend(|(x, y)| Circle::new((x + 8, y), 6, BLACK.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(text)?;
        Ok(())
    }
}

/// How a hyper-parameter's value is read from a trial.
pub type Param = fn(&TrialRecord) -> f64;

/// One sampled hyper-parameter: its axis name and its value in a trial (`log10` for the
/// learning rate; the optimizer as its index in [`OPTIMIZERS`]).
pub const PARAMS: [(&str, Param); 9] = [
    ("conv layers", |r| r.params.conv.len() as f64),
    ("conv filters (sum)", |r| r.params.conv.iter().map(|c| c.filters).sum::<usize>() as f64),
    ("dense layers", |r| r.params.dense.len() as f64),
    ("dense units (sum)", |r| r.params.dense.iter().sum::<usize>() as f64),
    ("dropout", |r| r.params.dropout),
    ("log10 learning rate", |r| r.params.learning_rate.log10()),
    ("batch size", |r| r.params.batch_size as f64),
    ("epochs", |r| r.params.epochs as f64),
    ("optimizer", |r| OPTIMIZERS.iter().position(|o| *o == r.params.optimizer).unwrap_or(0) as f64),
];

/// The optimizers, in the order of the optimizer panel's axis.
pub const OPTIMIZERS: [OptimizerChoice; 4] =
    [OptimizerChoice::Adam, OptimizerChoice::Adamw, OptimizerChoice::Sgd, OptimizerChoice::SgdNesterov];

/// `DIR/params.png`.
pub struct ParamsChart<'a> {
    /// Title.
    pub title: &'a str,
    /// Every trial of the journal.
    pub records: &'a [TrialRecord],
}

impl Picture for ParamsChart<'_> {
    const NAME: &'static str = "params";

    fn size(&self) -> (u32, u32) {
        (1050, 820)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let trials = trained(self.records);
        let area = area.titled(self.title, (FONT, 18)).map_err(text)?;
        let y = span(trials.iter().map(|t| t.2), 0.08);
        for ((name, value), panel) in PARAMS.iter().zip(area.split_evenly((3, 3))) {
            let optimizer = *name == "optimizer";
            let x = if optimizer {
                -0.5..OPTIMIZERS.len() as f64 - 0.5
            } else {
                span(trials.iter().map(|t| value(t.0)), 0.1)
            };
            let mut chart = ChartBuilder::on(&panel)
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(45)
                .build_cartesian_2d(x, y.clone())
                .map_err(text)?;
            // Counts (layers, epochs, ...) get ticks at whole numbers only.
            let whole = trials.iter().all(|t| value(t.0).fract() == 0.0);
            let names = |v: &f64| {
                let i = v.round();
                let at_whole = (v - i).abs() < 1e-6;
                if optimizer && at_whole && (0.0..OPTIMIZERS.len() as f64).contains(&i) {
                    OPTIMIZERS[i as usize].name().to_string()
                } else if optimizer || (whole && !at_whole) {
                    String::new()
                } else {
                    format!("{}", (v * 1000.0).round() / 1000.0)
                }
            };
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .x_desc(*name)
                .y_desc("int8 val. acc. %")
                .x_labels(if optimizer { OPTIMIZERS.len() } else { 6 })
                .x_label_formatter(&names)
                .label_style((FONT, 11))
                .draw()
                .map_err(text)?;
            chart
                .draw_series(trials.iter().map(|t| {
                    let colour = if t.1 { VALIDATION } else { TRAIN };
                    Circle::new((value(t.0), t.2), 5, colour.mix(0.7).filled())
                }))
                .map_err(text)?;
        }
        Ok(())
    }
}
