//! Kernels, and the one dispatch point that picks an implementation for each op.
//!
//! [`reference`] holds the specification of every op. The functions in this module are what the
//! interpreter calls; each states the scratch bytes it needs (`*_scratch_size`), which the compiler
//! reserves in the arena plan and [`crate::Model::from_bytes`] checks.

pub mod params;
pub mod reference;

use params::{AvgRequant, ConvF, ConvGeometry, ConvS8, DenseF, DenseS8, FloatWeight, PoolGeometry};

/// Float convolution (with fused activation and pool).
#[inline]
pub fn conv2d_f<W: FloatWeight>(op: &ConvF<'_, W>, input: &[f32], output: &mut [f32], _scratch: &mut [u8]) {
    reference::conv2d_f(op, input, output)
}

/// int8 convolution (with fused activation range and pool).
#[inline]
pub fn conv2d_s8(op: &ConvS8<'_>, input: &[i8], output: &mut [i8], _scratch: &mut [u8]) {
    reference::conv2d_s8(op, input, output)
}

/// Scratch bytes [`conv2d_s8`] may need for a convolution of this geometry: the most that any
/// implementation (on any ISA) uses, so one blob serves every target.
pub const fn conv2d_s8_scratch_size(_geometry: &ConvGeometry) -> usize {
    0
}

/// Float dense layer.
#[inline]
pub fn dense_f<W: FloatWeight>(op: &DenseF<'_, W>, input: &[f32], output: &mut [f32]) {
    reference::dense_f(op, input, output)
}

/// int8 dense layer.
#[inline]
pub fn dense_s8(op: &DenseS8<'_>, input: &[i8], output: &mut [i8]) {
    reference::dense_s8(op, input, output)
}

/// f32 max pool.
#[inline]
pub fn maxpool2d_f32(p: &PoolGeometry, input: &[f32], output: &mut [f32]) {
    reference::maxpool2d_f32(p, input, output)
}

/// f32 average pool.
#[inline]
pub fn avgpool2d_f32(p: &PoolGeometry, input: &[f32], output: &mut [f32]) {
    reference::avgpool2d_f32(p, input, output)
}

/// int8 max pool.
#[inline]
pub fn maxpool2d_s8(p: &PoolGeometry, input: &[i8], output: &mut [i8]) {
    reference::maxpool2d_s8(p, input, output)
}

/// int8 average pool.
#[inline]
pub fn avgpool2d_s8(p: &PoolGeometry, q: &AvgRequant, input: &[i8], output: &mut [i8]) {
    reference::avgpool2d_s8(p, q, input, output)
}
