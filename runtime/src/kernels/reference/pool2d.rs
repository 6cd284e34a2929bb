//! Reference max and average pools (no padding, output floored, windows may overlap).
//!
//! Inputs are read with `get`: a validated op's input holds every window, so no value is ever
//! skipped and no panic path is compiled.

use super::conv2d::{pool_f32, window};
use crate::kernels::params::{AvgRequant, PoolGeometry, PoolKind};

/// f32 max pool. Scratch: none.
pub fn maxpool2d_f32(p: &PoolGeometry, input: &[f32], output: &mut [f32]) {
    pool_each(p, output, |py, px, c| {
        pool_f32(PoolKind::Max, p, window(p, py, px).filter_map(|(y, x)| input.get(p.input.index(y, x, c)).copied()))
    });
}

/// f32 average pool (sum of the window divided by its size). Scratch: none.
pub fn avgpool2d_f32(p: &PoolGeometry, input: &[f32], output: &mut [f32]) {
    pool_each(p, output, |py, px, c| {
        pool_f32(PoolKind::Avg, p, window(p, py, px).filter_map(|(y, x)| input.get(p.input.index(y, x, c)).copied()))
    });
}

/// int8 max pool (input and output share scale and zero point). Scratch: none.
pub fn maxpool2d_s8(p: &PoolGeometry, input: &[i8], output: &mut [i8]) {
    let _ = try_pool_each(p, output, |py, px, c| {
        window(p, py, px).try_fold(i8::MIN, |m, (y, x)| Some(m.max(*input.get(p.input.index(y, x, c))?)))
    });
}

/// int8 average pool: `clamp(requant(Σ (x − in_zp)) + out_zp)`, exactly what a depthwise
/// `QLinearConv` with all-ones weights of scale `1/n` computes, or TFLite's rounded division
/// ([`AvgRounding`](crate::kernels::params::AvgRounding)). Scratch: none.
pub fn avgpool2d_s8(p: &PoolGeometry, q: &AvgRequant, input: &[i8], output: &mut [i8]) {
    let _ = try_pool_each(p, output, |py, px, c| {
        let sum = window(p, py, px).try_fold(0i32, |sum, (y, x)| {
            Some(sum + (*input.get(p.input.index(y, x, c))? as i32 - q.input_zero_point))
        })?;
        Some(q.finish(sum, p.window_len()))
    });
}

/// Writes `f(py, px, c)` to every output element, in NHWC order.
fn pool_each<T>(p: &PoolGeometry, output: &mut [T], mut f: impl FnMut(usize, usize, usize) -> T) {
    let _ = try_pool_each(p, output, |py, px, c| Some(f(py, px, c)));
}

/// [`pool_each`] for an `f` that fails (`None`) on an input too short for the geometry, which a
/// validated op's never is: stops there.
fn try_pool_each<T>(
    p: &PoolGeometry,
    output: &mut [T],
    mut f: impl FnMut(usize, usize, usize) -> Option<T>,
) -> Option<()> {
    let mut out = output.iter_mut();
    for py in 0..p.output.h {
        for px in 0..p.output.w {
            for (c, o) in out.by_ref().take(p.output.c).enumerate() {
                *o = f(py, px, c)?;
            }
        }
    }
    Some(())
}
