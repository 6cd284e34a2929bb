//! Activation ranges for int8: run the float model over calibration images and pick, per
//! tensor, the real range `[lo, hi]` that its 256 int8 steps will cover.
//!
//! The float model runs as an *unfused* f32 plan through the runtime itself (so a fused
//! conv→average-pool still gets its convolution's own range), observing every op's output.
//! Methods:
//! - `minmax`: the observed minimum and maximum;
//! - `percentile`: the 0.01 % and 99.99 % quantiles (outliers clipped);
//! - `mse`: the clipping range (min/max scaled by a common factor between 1 and 0.01) that
//!   minimises the mean squared quantization error over the observed values' histogram.

use mnistc_runtime::{Activations, Input};

use crate::lower::emit::{self, AlignedBytes, BlobError};
use crate::lower::plan::{Plan, Precision};
use crate::spec::CalibrationMethod;

/// The real range an int8 tensor covers (always contains 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Lowest representable value.
    pub lo: f32,
    /// Highest representable value.
    pub hi: f32,
}

/// Bins of the histograms used by `percentile` and `mse`.
const BINS: usize = 2048;

/// Per-op output statistics of a float plan over a set of images.
#[derive(Debug, Clone)]
struct Stats {
    min: f32,
    max: f32,
    bins: Vec<u64>,
    count: u64,
}

impl Stats {
    fn bin_of(&self, v: f32) -> usize {
        let span = (self.max - self.min).max(f32::MIN_POSITIVE);
        (((v - self.min) / span * BINS as f32) as usize).min(BINS - 1)
    }
    fn bin_center(&self, i: usize) -> f32 {
        self.min + (i as f32 + 0.5) * (self.max - self.min) / BINS as f32
    }
}

/// Why calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The float plan could not be written as a blob.
    #[error("calibration plan: {0}")]
    Blob(#[from] BlobError),
    /// Running it failed.
    #[error("calibration run failed: {0}")]
    Run(mnistc_runtime::RunError),
    /// No calibration image.
    #[error("no calibration images")]
    NoImages,
}

/// Observed output range of every op of the f32 `plan` over `images` (raw pixels, `n` images
/// of the plan's input size), turned into int8 ranges with `method`.
///
/// # Errors
/// [`CalibrationError`] if the plan cannot run.
pub fn calibrate(plan: &Plan, images: &[u8], method: CalibrationMethod) -> Result<Vec<Range>, CalibrationError> {
    debug_assert_eq!(plan.precision, Precision::F32);
    let image_len = plan.input.len();
    if images.is_empty() || image_len == 0 {
        return Err(CalibrationError::NoImages);
    }
    let blob = emit::write(plan)?;
    let model = blob.model();
    let mut arena = AlignedBytes::from(vec![0u8; model.arena_size()].as_slice());
    let n_ops = plan.ops.len();
    let mut stats: Vec<Stats> =
        vec![Stats { min: f32::INFINITY, max: f32::NEG_INFINITY, bins: vec![0; BINS], count: 0 }; n_ops];

    // Pass 1: min and max.
    for image in images.chunks_exact(image_len) {
        model
            .run_observed(Input::Pixels(image), arena.as_bytes_mut(), |i, out| {
                if let Activations::F32(v) = out {
                    let s = &mut stats[i];
                    for &x in v {
                        s.min = s.min.min(x);
                        s.max = s.max.max(x);
                    }
                }
            })
            .map_err(CalibrationError::Run)?;
    }
    // Pass 2: histograms (only the methods that need them).
    if method != CalibrationMethod::MinMax {
        for image in images.chunks_exact(image_len) {
            model
                .run_observed(Input::Pixels(image), arena.as_bytes_mut(), |i, out| {
                    if let Activations::F32(v) = out {
                        let s = &mut stats[i];
                        for &x in v {
                            let b = s.bin_of(x);
                            s.bins[b] += 1;
                            s.count += 1;
                        }
                    }
                })
                .map_err(CalibrationError::Run)?;
        }
    }
    Ok(stats.iter().map(|s| range_of(s, method)).collect())
}

fn range_of(s: &Stats, method: CalibrationMethod) -> Range {
    let (min, max) = (s.min.min(0.0), s.max.max(0.0));
    let (lo, hi) = match method {
        CalibrationMethod::MinMax => (min, max),
        CalibrationMethod::Percentile => {
            let tail = (s.count as f64 * 1e-4) as u64;
            let mut seen = 0;
            let lo_bin = s.bins.iter().position(|&c| {
                seen += c;
                seen > tail
            });
            let mut seen = 0;
            let hi_bin = s.bins.iter().rposition(|&c| {
                seen += c;
                seen > tail
            });
            let lo = lo_bin.map_or(min, |b| s.min + b as f32 * (s.max - s.min) / BINS as f32);
            let hi = hi_bin.map_or(max, |b| s.min + (b + 1) as f32 * (s.max - s.min) / BINS as f32);
            (lo.min(0.0).max(min), hi.max(0.0).min(max))
        }
        CalibrationMethod::Mse => {
            let mut best = (f64::INFINITY, min, max);
            // Shrink geometrically from the full range down to 1 % of it.
            for step in 0..100 {
                let f = 0.01f32.powf(step as f32 / 99.0);
                let (lo, hi) = (min * f, max * f);
                let err = quantization_error(s, lo, hi);
                if err < best.0 {
                    best = (err, lo, hi);
                }
            }
            (best.1, best.2)
        }
    };
    // A tensor that is constant zero still needs a positive scale.
    if hi - lo < 1e-6 { Range { lo, hi: lo + 1e-6 } } else { Range { lo, hi } }
}

/// Mean squared error of quantizing the histogram's values to 256 steps over `[lo, hi]`.
fn quantization_error(s: &Stats, lo: f32, hi: f32) -> f64 {
    let step = ((hi - lo) / 255.0).max(f32::MIN_POSITIVE) as f64;
    let mut err = 0.0;
    for (i, &c) in s.bins.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let v = s.bin_center(i) as f64;
        let q = ((v - lo as f64) / step).round().clamp(0.0, 255.0) * step + lo as f64;
        err += c as f64 * (v - q) * (v - q);
    }
    err / s.count.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[f32]) -> Stats {
        let mut s = Stats {
            min: values.iter().copied().fold(f32::INFINITY, f32::min),
            max: values.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            bins: vec![0; BINS],
            count: 0,
        };
        for &v in values {
            let b = s.bin_of(v);
            s.bins[b] += 1;
            s.count += 1;
        }
        s
    }

    #[test]
    fn minmax_covers_zero_and_the_extremes() {
        let s = stats(&[0.5, 2.0, 3.0]);
        assert_eq!(range_of(&s, CalibrationMethod::MinMax), Range { lo: 0.0, hi: 3.0 });
        let s = stats(&[-1.5, 2.0]);
        assert_eq!(range_of(&s, CalibrationMethod::MinMax), Range { lo: -1.5, hi: 2.0 });
    }

    #[test]
    fn percentile_and_mse_clip_a_lone_outlier() {
        let mut values: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        values.push(50.0);
        let s = stats(&values);
        let p = range_of(&s, CalibrationMethod::Percentile);
        assert!(p.hi < 2.0, "percentile kept the outlier: {p:?}");
        assert!(p.hi > 0.9);
        let m = range_of(&s, CalibrationMethod::Mse);
        assert!(m.hi < 50.0, "mse kept the outlier: {m:?}");
    }
}
