//! Where an epoch's time goes: the training loop's phases, timed with a monotonic clock.
//!
//! The phases follow one batch through the loop: `data` (shuffled indices to pixels, with
//! augmentation, then the input and label tensors), `forward` (the network and the loss),
//! `backward` (gradients), `optimizer` (the update), `metrics` (reading the running loss and
//! accuracy back from the device every few batches) and, once an epoch, `validation` (inference
//! on the held-out images). What is left of the epoch's wall time (the progress bar, bookkeeping)
//! is `other`.
//!
//! On the CPU backend every operation has finished when its call returns, so the phases are
//! exact. A GPU runs asynchronously: with [`TrainOptions::profile`](super::TrainOptions) the loop
//! waits for the device at each phase boundary (slower, but each phase gets its own time);
//! without it the time of queued work lands in whichever phase next waits for it.

#[cfg(feature = "train")]
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Seconds spent in each phase of one epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// Batch assembly: pixels (augmented), input and label tensors.
    pub data: f64,
    /// Network forward pass and loss.
    pub forward: f64,
    /// Backward pass (gradients).
    pub backward: f64,
    /// Optimizer step.
    pub optimizer: f64,
    /// Reading the running loss and accuracy back from the device.
    pub metrics: f64,
    /// Inference on the validation images after the epoch.
    pub validation: f64,
}

impl Phases {
    /// The phases with their names, in loop order.
    pub fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("data", self.data),
            ("forward", self.forward),
            ("backward", self.backward),
            ("optimizer", self.optimizer),
            ("metrics", self.metrics),
            ("validation", self.validation),
        ]
    }

    /// The sum of the phases.
    pub fn total(&self) -> f64 {
        self.named().iter().map(|(_, s)| s).sum()
    }

    /// The mean of several epochs' phases (zero for none).
    pub fn mean<'a>(epochs: impl IntoIterator<Item = &'a Phases>) -> Phases {
        let mut sum = Phases::default();
        let mut n = 0usize;
        for p in epochs {
            sum.data += p.data;
            sum.forward += p.forward;
            sum.backward += p.backward;
            sum.optimizer += p.optimizer;
            sum.metrics += p.metrics;
            sum.validation += p.validation;
            n += 1;
        }
        let k = 1.0 / n.max(1) as f64;
        Phases {
            data: sum.data * k,
            forward: sum.forward * k,
            backward: sum.backward * k,
            optimizer: sum.optimizer * k,
            metrics: sum.metrics * k,
            validation: sum.validation * k,
        }
    }
}

/// The mean epoch of a training run, phase by phase: what `mnistc train --profile` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    /// Epochs averaged.
    pub epochs: usize,
    /// Training images per epoch.
    pub train_images: usize,
    /// Mean wall time of an epoch, validation included.
    pub epoch_seconds: f64,
    /// Mean seconds per phase.
    pub phases: Phases,
    /// The rest of the epoch's wall time (progress bar, bookkeeping).
    pub other_seconds: f64,
    /// Training images per second of the training phases (the epoch without validation).
    pub images_per_second: f64,
}

impl Profile {
    /// The profile of `history`'s epochs.
    pub fn of(history: &super::History) -> Profile {
        let phases = Phases::mean(history.epochs.iter().map(|e| &e.phases));
        let epoch_seconds = history.mean_epoch_seconds();
        let training = epoch_seconds - phases.validation;
        Profile {
            epochs: history.epochs.len(),
            train_images: history.train_images,
            epoch_seconds,
            phases,
            other_seconds: (epoch_seconds - phases.total()).max(0.0),
            images_per_second: if training > 0.0 { history.train_images as f64 / training } else { 0.0 },
        }
    }

    /// The profile as a table: seconds per epoch and share of each phase.
    pub fn render(&self) -> String {
        let share = |s: f64| if self.epoch_seconds > 0.0 { 100.0 * s / self.epoch_seconds } else { 0.0 };
        let mut out = format!(
            "profile: mean of {} epoch(s), {} training images each\n  phase         s/epoch   share\n",
            self.epochs, self.train_images
        );
        for (name, s) in self.phases.named().into_iter().chain([("other", self.other_seconds)]) {
            out.push_str(&format!("  {name:<10} {s:>10.3} {:>6.1} %\n", share(s)));
        }
        out.push_str(&format!(
            "  {:<10} {:>10.3}  {:.0} training images/s\n",
            "epoch", self.epoch_seconds, self.images_per_second
        ));
        out
    }
}

/// Attributes the time since the previous mark to a phase.
#[cfg(feature = "train")]
pub(crate) struct PhaseClock {
    last: Instant,
    /// Wait for the device before each mark (see the module documentation).
    sync: Option<burn::prelude::Device>,
}

#[cfg(feature = "train")]
impl PhaseClock {
    pub(crate) fn new(sync: Option<burn::prelude::Device>) -> Self {
        PhaseClock { last: Instant::now(), sync }
    }

    /// Adds the seconds since the last mark (or creation) to `phase` and restarts the clock.
    pub(crate) fn mark(&mut self, phase: &mut f64) {
        if let Some(device) = &self.sync {
            // A failed sync surfaces at the next read of a tensor; here it only ends the wait.
            let _ = device.sync();
        }
        let now = Instant::now();
        *phase += now.duration_since(self.last).as_secs_f64();
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_and_total_add_up() {
        let a = Phases { data: 1.0, forward: 2.0, backward: 3.0, optimizer: 4.0, metrics: 0.5, validation: 1.5 };
        let b = Phases { data: 3.0, ..a };
        let m = Phases::mean([&a, &b]);
        assert_eq!(m.data, 2.0);
        assert_eq!(m.backward, 3.0);
        assert_eq!(a.total(), 12.0);
        assert_eq!(Phases::mean([]), Phases::default());
    }

    #[cfg(feature = "train")]
    #[test]
    fn the_clock_attributes_elapsed_time() {
        let mut clock = PhaseClock::new(None);
        let mut t = 0.0;
        std::thread::sleep(std::time::Duration::from_millis(5));
        clock.mark(&mut t);
        assert!(t >= 0.005, "{t}");
    }
}
