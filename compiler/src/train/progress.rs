//! Per-epoch progress bar (indicatif) and epoch summary lines, on stderr.
//!
//! The bar shows the epoch, the batches done, the running loss and accuracy, and two ETAs: the
//! epoch's (from its own pace) and the whole run's (the epochs left at the mean pace of the
//! finished ones, or of this one before any has finished).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::History;

/// A progress bar that is hidden when disabled or when stderr is not a terminal.
pub(crate) struct EpochProgress {
    bar: ProgressBar,
    verbose: bool,
    /// Epochs after this one.
    epochs_after: usize,
    /// Mean seconds of the finished epochs (`None` before the first).
    mean_epoch: Option<f64>,
}

/// `1h02m`, `4m05s` or `17s`.
fn short_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The whole run's remaining seconds: this epoch's `epoch_left`, then `epochs_after` epochs of
/// `mean_epoch` seconds, or of this epoch's projected length (`elapsed` for `done` of `total`
/// batches) when no epoch has finished yet.
fn run_eta(epoch_left: f64, epochs_after: usize, mean_epoch: Option<f64>, elapsed: f64, done: u64, total: u64) -> f64 {
    let per_epoch = mean_epoch.unwrap_or(elapsed * total as f64 / done.max(1) as f64);
    epoch_left + epochs_after as f64 * per_epoch
}

impl EpochProgress {
    /// The bar for epoch `epoch` of `epochs` (1-based) with `batches` batches; `history` holds
    /// the epochs finished before (in this run or in the runs it resumes).
    pub fn new(
        enabled: bool,
        verbose: bool,
        (epoch, epochs): (usize, usize),
        batches: usize,
        history: &History,
    ) -> Self {
        let visible = enabled && std::io::stderr().is_terminal();
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(batches as u64), target);
        if let Ok(style) = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} batches {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("{epoch}/{epochs}"));
        let mean_epoch = (!history.epochs.is_empty()).then(|| history.mean_epoch_seconds());
        EpochProgress { bar, verbose, epochs_after: epochs.saturating_sub(epoch), mean_epoch }
    }

    /// `batches` done, with the running loss and accuracy.
    pub fn update(&self, batches: usize, loss: f64, accuracy: f64) {
        if !self.bar.is_hidden() {
            let done = batches as u64;
            let total = self.bar.length().unwrap_or(done);
            let elapsed = self.bar.elapsed().as_secs_f64();
            let epoch_left = elapsed / done.max(1) as f64 * total.saturating_sub(done) as f64;
            let run_left = run_eta(epoch_left, self.epochs_after, self.mean_epoch, elapsed, done, total);
            self.bar.set_message(format!(
                "loss {loss:.4} acc {:.2}% | {} (eta {}, run eta {})",
                accuracy * 100.0,
                short_duration(elapsed),
                short_duration(epoch_left),
                short_duration(run_left)
            ));
        }
        self.bar.set_position(batches as u64);
    }

    /// Clears the bar and prints `line` (when verbose).
    pub fn finish(self, line: &str) {
        self.bar.finish_and_clear();
        if self.verbose {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(short_duration(17.2), "17s");
        assert_eq!(short_duration(245.0), "4m05s");
        assert_eq!(short_duration(3720.0), "1h02m");
    }

    #[test]
    fn run_eta_uses_finished_epochs_when_there_are_some() {
        // 10 s left in this epoch, then 3 epochs of 100 s.
        assert_eq!(run_eta(10.0, 3, Some(100.0), 90.0, 90, 100), 310.0);
        // No finished epoch: this one projects to 50 s (25 s for half the batches).
        assert_eq!(run_eta(25.0, 2, None, 25.0, 5, 10), 125.0);
    }
}
