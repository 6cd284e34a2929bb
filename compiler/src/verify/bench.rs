//! `mnistc bench`: one inference of a blob timed side by side in one process — the runtime with
//! its best kernels, the runtime with its scalar reference kernels (the same code the tests
//! trust), and tract-onnx on the exported ONNX — each after a warm-up, the median of many runs,
//! batch 1, one thread.

use std::time::Instant;

use mnistc_runtime::Model;
use mnistc_runtime::kernels::{self, Isa};
use serde::Serialize;

use crate::lower::emit::AlignedBytes;
use crate::verify::tract::{Feed, TractError, TractModel};

/// Timings of one blob.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Median µs per inference, runtime with its best kernels.
    pub runtime_us: f64,
    /// Median µs per inference, runtime with the scalar reference kernels.
    pub runtime_scalar_us: f64,
    /// Median µs per inference, tract-onnx on the exported ONNX (float input, as a user runs it).
    pub tract_us: Option<f64>,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// The runtime's kernels (`avx512-vnni`, `avx2`, ...).
    pub isa: &'static str,
    /// Timed runs per measurement.
    pub runs: usize,
    /// `runtime_scalar_us / runtime_us`.
    pub speedup_vs_scalar: f64,
    /// `tract_us / runtime_us`.
    pub speedup_vs_tract: Option<f64>,
    /// Multiply-accumulates per nanosecond with the best kernels.
    pub gmacs: f64,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The blob does not load.
    #[error("not a valid blob: {0}")]
    Load(mnistc_runtime::LoadError),
    /// The runtime refused to run it.
    #[error("the runtime could not run the blob: {0}")]
    Run(mnistc_runtime::RunError),
    /// tract failed.
    #[error(transparent)]
    Tract(#[from] TractError),
}

/// Median of `runs` timings of `f` in µs, after `runs / 5 + 5` untimed warm-up calls.
pub fn median_us(runs: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..runs / 5 + 5 {
        f();
    }
    let mut t: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// A deterministic test pattern of `n` pixels (timings do not depend on the values).
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7919) % 251) as u8).collect()
}

/// Times `blob` (and `onnx`, if given) over `runs` runs each.
///
/// # Errors
/// [`BenchError`] if the blob or the ONNX model cannot run.
pub fn bench(blob: &[u8], onnx: Option<&[u8]>, runs: usize) -> Result<BenchReport, BenchError> {
    let bytes = AlignedBytes::from(blob);
    let model = Model::from_bytes(bytes.as_bytes()).map_err(BenchError::Load)?;
    let mut arena = vec![0u128; model.arena_size().div_ceil(16)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let pixels = pattern(model.input_len());
    model.classify(&pixels, arena).map_err(BenchError::Run)?;
    let macs = crate::report::inspect::inspect(&model).macs;

    // The kernels in use (the best this CPU has, unless `MNISTC_ISA` or a caller chose).
    let chosen = kernels::isa();
    let mut time_isa = |isa: Isa| {
        kernels::set_isa(Some(isa));
        let us = median_us(runs, || {
            let _ = std::hint::black_box(model.classify(std::hint::black_box(&pixels), arena));
        });
        kernels::set_isa(Some(chosen));
        us
    };
    let runtime_scalar_us = time_isa(Isa::Reference);
    let runtime_us = time_isa(chosen);
    let isa = chosen.name();

    let tract_us = match onnx {
        Some(onnx) => {
            let mut tract = TractModel::load(onnx, Feed::Float, &[])?;
            let shape = model.input_shape();
            let nchw = crate::verify::tract::nhwc_to_nchw(
                &pixels.iter().map(|&p| p as f32 / 255.0).collect::<Vec<_>>(),
                shape,
            );
            tract.run_f32(&nchw)?;
            Some(median_us(runs, || {
                let _ = std::hint::black_box(tract.run_f32(std::hint::black_box(&nchw)));
            }))
        }
        None => None,
    };
    Ok(BenchReport {
        runtime_us,
        runtime_scalar_us,
        tract_us,
        macs,
        isa,
        runs,
        speedup_vs_scalar: runtime_scalar_us / runtime_us,
        speedup_vs_tract: tract_us.map(|t| t / runtime_us),
        gmacs: macs as f64 / runtime_us / 1e3,
    })
}
