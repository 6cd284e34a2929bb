//! Deployment budgets (`[target]`: flash, ram, macs): what a model costs and whether it fits.
//!
//! Flash (blob bytes), arena bytes and MACs depend only on the architecture and precision, so
//! [`estimate`] computes them from the spec before any training: the arena exactly, the flash
//! exactly as long as every int8 op needs per-channel multipliers (the usual case; an op whose
//! channels all share one multiplier stores 4 bytes per channel less).

use serde::Serialize;

use super::emit::{self, BlobError};
use super::plan::{Precision, RequantSpec};
use super::{self as lower, LowerError};
use crate::quantize::{self, Range};
use crate::spec::{ModelSpec, TargetSpec};

/// What a model costs on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Footprint {
    /// Blob bytes (flash).
    pub flash_bytes: u64,
    /// Arena bytes (RAM for activations).
    pub arena_bytes: u64,
    /// Multiply-accumulates per inference.
    pub macs: u64,
}

/// A budget that is exceeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overrun {
    /// `flash`, `ram` or `macs`.
    pub budget: &'static str,
    /// The limit in `[target]`.
    pub limit: u64,
    /// What the model needs.
    pub actual: u64,
}

impl std::fmt::Display for Overrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = if self.budget == "macs" { "MACs" } else { "bytes" };
        let what = match self.budget {
            "flash" => "blob (flash)",
            "ram" => "arena (ram)",
            _ => "multiply-accumulates (macs)",
        };
        write!(
            f,
            "target.{}: the {what} needs {} {unit}, {} over the budget of {} {unit}",
            self.budget,
            self.actual,
            self.actual - self.limit,
            self.limit
        )
    }
}

/// Why a footprint could not be estimated.
#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    /// The spec does not lower.
    #[error(transparent)]
    Lower(#[from] LowerError),
    /// The skeleton does not quantize.
    #[error(transparent)]
    Quantize(#[from] quantize::QuantizeError),
    /// The skeleton does not fit the blob format.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// The footprint of `spec` in its `[quantize] precision`, from the architecture alone.
///
/// # Errors
/// [`EstimateError`] if the spec cannot be lowered or written (too many ops, dimensions too
/// large for the blob format).
pub fn estimate(spec: &ModelSpec) -> Result<Footprint, EstimateError> {
    let float = lower::skeleton_unfused(spec)?;
    let plan = match lower::precision(spec.quantize.precision) {
        Precision::F32 => float,
        Precision::F16 => lower::to_f16(float),
        Precision::Int8 => {
            let ranges = vec![Range { lo: -1.0, hi: 1.0 }; float.ops.len()];
            let mut q = quantize::quantize(&float, &ranges)?;
            // Assume per-channel multipliers everywhere (the larger, usual case).
            for op in &mut q.ops {
                if let Some(quant) = op.quant.as_mut()
                    && let Some(RequantSpec::Uniform { .. }) = quant.requant
                {
                    let m = quantize::combined_scale(1.0 / 127.0, quant.input.scale, quant.conv.scale);
                    quant.requant = Some(RequantSpec::PerChannel(vec![m; quant.weight_scales.len()]));
                }
            }
            q
        }
    };
    Ok(emit::write(&lower::fuse(plan))?.footprint())
}

/// The budgets of `target` that `footprint` exceeds.
pub fn overruns(target: &TargetSpec, footprint: &Footprint) -> Vec<Overrun> {
    [
        ("flash", target.flash, footprint.flash_bytes),
        ("ram", target.ram, footprint.arena_bytes),
        ("macs", target.macs, footprint.macs),
    ]
    .into_iter()
    .filter_map(|(budget, limit, actual)| match limit {
        Some(limit) if actual > limit => Some(Overrun { budget, limit, actual }),
        _ => None,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overruns_say_what_is_over_and_by_how_much() {
        let target = TargetSpec { flash: Some(1000), ram: Some(5000), macs: None };
        let fp = Footprint { flash_bytes: 1500, arena_bytes: 5000, macs: 9 };
        let over = overruns(&target, &fp);
        assert_eq!(over, vec![Overrun { budget: "flash", limit: 1000, actual: 1500 }]);
        assert_eq!(
            over[0].to_string(),
            "target.flash: the blob (flash) needs 1500 bytes, 500 over the budget of 1000 bytes"
        );
    }
}
