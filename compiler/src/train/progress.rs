//! Per-epoch progress bar (indicatif) and epoch summary lines, on stderr.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that is hidden when disabled or when stderr is not a terminal.
pub(crate) struct EpochProgress {
    bar: ProgressBar,
    verbose: bool,
}

impl EpochProgress {
    pub fn new(enabled: bool, verbose: bool, epoch: usize, epochs: usize, batches: usize) -> Self {
        let visible = enabled && std::io::stderr().is_terminal();
        let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(batches as u64), target);
        if let Ok(style) =
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} batches {msg} ({elapsed}, eta {eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("{epoch}/{epochs}"));
        EpochProgress { bar, verbose }
    }

    pub fn update(&self, loss: f64, accuracy: f64) {
        self.bar.inc(1);
        if !self.bar.is_hidden() {
            self.bar.set_message(format!("loss {loss:.4} acc {:.2}%", accuracy * 100.0));
        }
    }

    /// Clears the bar and prints `line` (when verbose).
    pub fn finish(self, line: &str) {
        self.bar.finish_and_clear();
        if self.verbose {
            eprintln!("{line}");
        }
    }
}
