//! Learning-rate schedules (`train.lr_schedule`).
//!
//! - `none`: constant.
//! - `step`: `lr * gamma^floor(epoch / step_size)` (epochs counted from 0).
//! - `plateau`: Keras `ReduceLROnPlateau`: when the validation loss has not improved (by a
//!   relative 1e-4) for `patience` epochs, `lr = max(lr * factor, min_lr)` and the count
//!   restarts.
//! - `cosine`: `min_lr + (lr - min_lr) * (1 + cos(pi * t / T)) / 2` with `t` the batch index
//!   over the whole run and `T` the total number of batches; with `warmup = W` epochs, the first
//!   `w = W * batches per epoch` batches rise linearly, `lr * (t + 1) / w`, and the cosine runs
//!   over the rest (`t - w` of `T - w`).
//! - `one_cycle`: PyTorch's `OneCycleLR` with cosine annealing: from `lr / div` up to `lr` at
//!   batch `pct_start * T - 1`, then down to `lr / (div * final_div)` at batch `T - 1`.

use serde::{Deserialize, Serialize};

use crate::spec::LrSchedule;

/// What a [`Scheduler`] learned during a run (the `plateau` count), saved between epochs so that
/// a resumed run continues with the same learning rates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SchedulerState {
    plateau_lr: f64,
    /// The best validation loss so far (`None` before the first).
    best: Option<f64>,
    bad_epochs: usize,
}

/// Cosine interpolation from `start` (at `pct = 0`) to `end` (at `pct = 1`).
fn anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) * 0.5 * (1.0 + (std::f64::consts::PI * pct).cos())
}

/// Tracks the learning rate during a run.
#[derive(Clone, Debug)]
pub(crate) struct Scheduler {
    base: f64,
    schedule: LrSchedule,
    total_steps: usize,
    steps_per_epoch: usize,
    plateau_lr: f64,
    best: f64,
    bad_epochs: usize,
}

impl Scheduler {
    pub fn new(base: f64, schedule: LrSchedule, epochs: usize, steps_per_epoch: usize) -> Self {
        Scheduler {
            base,
            schedule,
            total_steps: epochs * steps_per_epoch,
            steps_per_epoch,
            plateau_lr: base,
            best: f64::INFINITY,
            bad_epochs: 0,
        }
    }

    /// Learning rate for batch `step` (0-based) of epoch `epoch` (0-based).
    pub fn lr(&self, epoch: usize, step: usize) -> f64 {
        match self.schedule {
            LrSchedule::None => self.base,
            LrSchedule::Step { step_size, gamma } => self.base * gamma.powi((epoch / step_size.max(1)) as i32),
            LrSchedule::Plateau { .. } => self.plateau_lr,
            LrSchedule::Cosine { min_lr, warmup } => {
                let t = epoch * self.steps_per_epoch + step;
                let warm = (warmup * self.steps_per_epoch).min(self.total_steps.saturating_sub(1));
                if t < warm {
                    return self.base * (t + 1) as f64 / warm as f64;
                }
                let total = (self.total_steps - warm).max(1) as f64;
                anneal(self.base, min_lr, (t - warm) as f64 / total)
            }
            LrSchedule::OneCycle { pct_start, div_factor, final_div_factor } => {
                // As torch.optim.lr_scheduler.OneCycleLR (anneal_strategy "cos", three_phase off).
                let t = (epoch * self.steps_per_epoch + step) as f64;
                let initial = self.base / div_factor;
                let last = (self.total_steps.max(1) - 1) as f64;
                let peak = (pct_start * self.total_steps as f64 - 1.0).max(0.0);
                if t <= peak && peak > 0.0 {
                    anneal(initial, self.base, t / peak)
                } else {
                    let span = (last - peak).max(1.0);
                    anneal(self.base, initial / final_div_factor, ((t - peak) / span).min(1.0))
                }
            }
        }
    }

    /// The state to save after an epoch.
    pub fn state(&self) -> SchedulerState {
        SchedulerState {
            plateau_lr: self.plateau_lr,
            best: self.best.is_finite().then_some(self.best),
            bad_epochs: self.bad_epochs,
        }
    }

    /// Continues from a saved state.
    pub fn restore(&mut self, state: &SchedulerState) {
        self.plateau_lr = state.plateau_lr;
        self.best = state.best.unwrap_or(f64::INFINITY);
        self.bad_epochs = state.bad_epochs;
    }

    /// Feeds the validation loss at the end of an epoch (used by `plateau`).
    pub fn end_epoch(&mut self, val_loss: Option<f64>) {
        let LrSchedule::Plateau { patience, factor, min_lr } = self.schedule else {
            return;
        };
        let Some(loss) = val_loss else { return };
        if loss < self.best * (1.0 - 1e-4) {
            self.best = loss;
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
            if self.bad_epochs >= patience {
                self.plateau_lr = (self.plateau_lr * factor).max(min_lr);
                self.bad_epochs = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schedule() {
        let s = Scheduler::new(0.1, LrSchedule::Step { step_size: 2, gamma: 0.5 }, 6, 10);
        assert_eq!(s.lr(0, 5), 0.1);
        assert_eq!(s.lr(1, 9), 0.1);
        assert_eq!(s.lr(2, 0), 0.05);
        assert_eq!(s.lr(5, 0), 0.025);
    }

    #[test]
    fn cosine_goes_from_base_to_min() {
        let s = Scheduler::new(1.0, LrSchedule::Cosine { min_lr: 0.1, warmup: 0 }, 2, 50);
        assert_eq!(s.lr(0, 0), 1.0);
        assert!((s.lr(1, 0) - 0.55).abs() < 1e-12);
        assert!(s.lr(1, 49) > 0.1 && s.lr(1, 49) < 0.1003);
    }

    #[test]
    fn cosine_warmup_rises_linearly_then_anneals_over_the_rest() {
        // 1 warm-up epoch of 10 batches, then 3 epochs (30 batches) of cosine.
        let s = Scheduler::new(2.0, LrSchedule::Cosine { min_lr: 0.0, warmup: 1 }, 4, 10);
        assert!((s.lr(0, 0) - 0.2).abs() < 1e-12);
        assert!((s.lr(0, 4) - 1.0).abs() < 1e-12);
        assert_eq!(s.lr(0, 9), 2.0);
        assert_eq!(s.lr(1, 0), 2.0);
        assert!((s.lr(2, 5) - 1.0).abs() < 1e-12, "halfway through the cosine");
        assert!(s.lr(3, 9) < 0.01);
    }

    #[test]
    fn one_cycle_matches_pytorch() {
        // torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=100) (pct_start 0.3,
        // div_factor 25, final_div_factor 1e4): lr at steps 0, 10, 29, 50, 99, from its
        // `get_lr` (phase ends at steps 29 and 99, `_annealing_cos`) evaluated in Python.
        let s = Scheduler::new(
            0.1,
            LrSchedule::OneCycle { pct_start: 0.3, div_factor: 25.0, final_div_factor: 1e4 },
            10,
            10,
        );
        let expected =
            [(0, 0.004), (10, 0.029_516_394_846_410_082), (29, 0.1), (50, 0.079_389_345_057_573_2), (99, 4e-7)];
        for (t, lr) in expected {
            let got = s.lr(t / 10, t % 10);
            assert!((got - lr).abs() < 1e-12 * lr.max(1.0), "step {t}: {got} vs {lr}");
        }
    }

    #[test]
    fn restored_state_gives_the_same_rates() {
        let schedule = LrSchedule::Plateau { patience: 1, factor: 0.5, min_lr: 0.0 };
        let mut a = Scheduler::new(1.0, schedule, 10, 1);
        a.end_epoch(Some(1.0));
        a.end_epoch(Some(2.0));
        let mut b = Scheduler::new(1.0, schedule, 10, 1);
        b.restore(&a.state());
        for loss in [3.0, 0.5, 0.7] {
            a.end_epoch(Some(loss));
            b.end_epoch(Some(loss));
            assert_eq!(a.lr(0, 0), b.lr(0, 0));
        }
        assert_eq!(a.state(), b.state());
    }

    #[test]
    fn plateau_reduces_after_patience_and_respects_min() {
        let mut s = Scheduler::new(1.0, LrSchedule::Plateau { patience: 2, factor: 0.1, min_lr: 0.05 }, 10, 1);
        s.end_epoch(Some(1.0));
        s.end_epoch(Some(0.5));
        assert_eq!(s.lr(2, 0), 1.0);
        s.end_epoch(Some(0.5));
        assert_eq!(s.lr(3, 0), 1.0);
        s.end_epoch(Some(0.6));
        assert!((s.lr(4, 0) - 0.1).abs() < 1e-12);
        s.end_epoch(Some(0.7));
        s.end_epoch(Some(0.7));
        assert_eq!(s.lr(6, 0), 0.05);
    }
}
