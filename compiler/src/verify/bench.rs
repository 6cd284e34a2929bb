//! `mnistc bench`: one inference of a blob timed side by side in one process — the runtime with
//! its best kernels, the runtime with its scalar reference kernels (the same code the tests
//! trust), and tract-onnx on the exported ONNX — each after a warm-up, the median of many runs,
//! batch 1, one thread.

use std::time::Instant;

use mnistc_runtime::kernels::{self, Isa};
use mnistc_runtime::{Input, Model};
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
    /// Median µs per inference, tract on the model an imported blob came from (`--source`:
    /// tract-tflite on a `.tflite`, tract-onnx on an `.onnx`, as the other tool wrote it).
    pub source_us: Option<f64>,
    /// Which tract ran the source model (`tract-tflite`, `tract-onnx`).
    pub source_engine: Option<&'static str>,
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
    /// tract could not load or run the source model of an imported blob.
    #[error("{engine} could not run the source model: {what}")]
    Source {
        /// `tract-tflite` or `tract-onnx`.
        engine: &'static str,
        /// tract's message.
        what: String,
    },
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
    bench_with_source(blob, onnx, None, runs)
}

/// A model trained elsewhere, as its file: its bytes and whether it is a `.tflite`.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The file's bytes.
    pub bytes: &'a [u8],
    /// A TFLite flatbuffer (else ONNX).
    pub tflite: bool,
}

/// [`bench`](fn@bench), and tract on `source`, the model the blob was imported from (its input in the
/// model's own type: int8 `pixel − 128` for a full-integer TFLite model, float `pixel / 255`
/// otherwise, in the layout the file declares).
///
/// # Errors
/// [`BenchError`] if a model cannot run.
pub fn bench_with_source(
    blob: &[u8],
    onnx: Option<&[u8]>,
    source: Option<Source<'_>>,
    runs: usize,
) -> Result<BenchReport, BenchError> {
    let bytes = AlignedBytes::from(blob);
    let model = Model::from_bytes(bytes.as_bytes()).map_err(BenchError::Load)?;
    let mut arena = vec![0u128; model.arena_size().div_ceil(16)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let pixels = pattern(model.input_len());
    // A model that does not take pixels (audio features) runs on the same bytes as int8 values.
    let raw: Vec<i8> = pixels.iter().map(|&p| p as i8).collect();
    let input = if model.takes_pixels() { Input::Pixels(&pixels) } else { Input::I8(&raw) };
    model.run_logits(input, arena).map_err(BenchError::Run)?;
    let macs = crate::report::inspect::inspect(&model).macs;

    // The kernels in use (the best this CPU has, unless `MNISTC_ISA` or a caller chose).
    let chosen = kernels::isa();
    let mut time_isa = |isa: Isa| {
        kernels::set_isa(Some(isa));
        let us = median_us(runs, || {
            let _ = std::hint::black_box(model.run_logits(std::hint::black_box(input), arena).map(|l| l.argmax()));
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
    let source_us = match source {
        Some(src) => Some(time_source(src, &pixels, runs)?),
        None => None,
    };
    Ok(BenchReport {
        source_us,
        source_engine: source.map(|s| if s.tflite { "tract-tflite" } else { "tract-onnx" }),
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

/// Median µs of tract on a source model, fed `pixels` in the type and layout its input declares.
fn time_source(src: Source<'_>, pixels: &[u8], runs: usize) -> Result<f64, BenchError> {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::internal::DimLike;
    use tract_onnx::tract_hir::infer::Factoid;
    let engine = if src.tflite { "tract-tflite" } else { "tract-onnx" };
    let load = |e: TractError| BenchError::Source { engine, what: format!("{e:#}") };
    let model: TypedModel = if src.tflite {
        tract_tflite::tflite().model_for_read(&mut &src.bytes[..]).map_err(load)?
    } else {
        let mut m = tract_onnx::onnx().model_for_read(&mut &src.bytes[..]).map_err(load)?;
        // A dynamic batch becomes 1.
        let fact = m.input_fact(0).map_err(load)?.clone();
        let dims: Vec<usize> = match fact.shape.dims().map(|d| d.concretize()).collect::<Option<Vec<_>>>() {
            Some(d) => d.iter().enumerate().map(|(i, v)| v.to_usize().unwrap_or(if i == 0 { 1 } else { 0 })).collect(),
            None => vec![],
        };
        let dt = fact.datum_type().unwrap_or(f32::datum_type());
        m.set_input_fact(0, InferenceFact::dt_shape(dt, dims)).map_err(load)?;
        m.into_typed().map_err(load)?
    };
    let runnable = model.into_optimized().and_then(|m| m.into_runnable()).map_err(load)?;
    let fact = runnable.model().input_fact(0).map_err(load)?.clone();
    let shape: Vec<usize> = fact.shape.as_concrete().map(|s| s.to_vec()).unwrap_or_default();
    let run_err = |e: TractError| BenchError::Source { engine, what: format!("{e:#}") };
    // NHWC pixels in the model's layout: NCHW when its second dimension is the channel count.
    let n: usize = shape.iter().product();
    if n != pixels.len() {
        return Err(run_err(TractError::msg(format!(
            "the source model takes {shape:?}, the blob {} values",
            pixels.len()
        ))));
    }
    let input: Tensor = if fact.datum_type.unquantized() == i8::datum_type() {
        let v: Vec<i8> = pixels.iter().map(|&p| (p as i16 - 128) as i8).collect();
        tract_ndarray::ArrayD::from_shape_vec(shape.clone(), v)
            .map_err(|e| run_err(e.into()))?
            .into_tensor()
            .cast_to_dt(fact.datum_type)
            .map_err(run_err)?
            .into_owned()
    } else {
        let v: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        tract_ndarray::ArrayD::from_shape_vec(shape.clone(), v).map_err(|e| run_err(e.into()))?.into_tensor()
    };
    let input = input.into_tvalue();
    runnable.run(tvec!(input.clone())).map_err(run_err)?;
    Ok(median_us(runs, || {
        let _ = std::hint::black_box(runnable.run(tvec!(input.clone())));
    }))
}
