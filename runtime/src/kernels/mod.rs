//! Kernels, and the one dispatch point that picks an implementation for each op.
//!
//! - [`reference`](mod@reference): the specification of every op, plain loops, never optimised in place.
//! - [`arch`]: one module per instruction set (x86-64 AVX2 and AVX-512 VNNI, aarch64 NEON
//!   `sdot`, Cortex-M DSP `SMLAD`), each exporting the same kernel names, built on the shared
//!   `driver` (im2col, tiling, requantization, fused pools) around a small dot-product
//!   micro-kernel. Every one equals the reference bit for bit (property-tested per ISA). The
//!   element-wise add has no fast path (a tiny share of any model's work): every ISA runs the
//!   reference.
//! - This module: [`isa`] chooses once — at run time with the `std` feature on x86-64/aarch64,
//!   from the compile-time target otherwise; the `force-scalar` feature (or [`set_isa`]) selects
//!   the reference everywhere — and each kernel function below dispatches on it.
//!
//! Scratch: each kernel states what it needs (`*_scratch_size`); the numbers are the most any
//! implementation uses, so one blob's arena plan serves every target.

// With `force-scalar` the fast paths are not even compiled: the build is the reference alone.
#[cfg(not(feature = "force-scalar"))]
pub mod arch;
#[cfg(not(feature = "force-scalar"))]
pub(crate) mod driver;
pub mod params;
pub mod reference;

#[cfg(test)]
mod soundness;
#[cfg(all(test, not(feature = "force-scalar")))]
mod tests;

use core::sync::atomic::{AtomicU8, Ordering};

use params::{
    AddF, AddS8, AvgRequant, ConvF, ConvGeometry, ConvS8, DenseF, DenseS8, DepthwiseF, DepthwiseS8, FloatWeight,
    ParamError, PoolGeometry,
};

/// An implementation of the int8 kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Isa {
    /// The reference kernels (portable scalar code).
    Reference = 1,
    /// x86-64 AVX2.
    Avx2 = 2,
    /// x86-64 AVX-512 F/BW/VNNI.
    Avx512Vnni = 3,
    /// aarch64 NEON with the dot-product extension (`sdot`).
    NeonDot = 4,
    /// Arm DSP extension (`SMLAD`, `SXTB16`: Cortex-M4/M7/M33, Armv7-A).
    ArmDsp = 5,
    /// x86-64 AVX2 with AVX-VNNI (`vpdpbusd` on 256-bit vectors).
    AvxVnni = 6,
}

impl Isa {
    /// Every implementation, best last.
    pub const ALL: [Isa; 6] = [Isa::Reference, Isa::ArmDsp, Isa::NeonDot, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];

    /// Short name (`reference`, `avx2`, `avx-vnni`, `avx512-vnni`, `neon-dot`, `arm-dsp`).
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Reference => "reference",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx-vnni",
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::NeonDot => "neon-dot",
            Isa::ArmDsp => "arm-dsp",
        }
    }

    /// Whether this build and this CPU can run it (under Miri, which cannot run SIMD
    /// intrinsics or `asm!`, only the reference).
    pub fn is_available(self) -> bool {
        match self {
            Isa::Reference => true,
            #[cfg(all(target_arch = "x86_64", not(feature = "force-scalar"), not(miri)))]
            Isa::Avx2 => arch::x86_64::avx2::is_available(),
            #[cfg(all(target_arch = "x86_64", not(feature = "force-scalar"), not(miri)))]
            Isa::AvxVnni => arch::x86_64::avx_vnni::is_available(),
            #[cfg(all(target_arch = "x86_64", not(feature = "force-scalar"), not(miri)))]
            Isa::Avx512Vnni => arch::x86_64::avx512::is_available(),
            #[cfg(all(target_arch = "aarch64", not(feature = "force-scalar"), not(miri)))]
            Isa::NeonDot => arch::aarch64::neon::is_available(),
            #[cfg(all(mnistc_arm_dsp, not(feature = "force-scalar"), not(miri)))]
            Isa::ArmDsp => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    const fn from_u8(v: u8) -> Option<Isa> {
        match v {
            1 => Some(Isa::Reference),
            2 => Some(Isa::Avx2),
            3 => Some(Isa::Avx512Vnni),
            4 => Some(Isa::NeonDot),
            5 => Some(Isa::ArmDsp),
            6 => Some(Isa::AvxVnni),
            _ => None,
        }
    }
}

/// The selected implementation (0: not chosen yet).
static SELECTED: AtomicU8 = AtomicU8::new(0);

/// The best available implementation (the reference with the `force-scalar` feature).
pub fn best_isa() -> Isa {
    if cfg!(feature = "force-scalar") {
        return Isa::Reference;
    }
    let mut best = Isa::Reference;
    for isa in Isa::ALL {
        if isa.is_available() {
            best = isa;
        }
    }
    best
}

/// The implementation the kernels use: [`best_isa`], chosen once, unless [`set_isa`] chose.
#[inline]
pub fn isa() -> Isa {
    match Isa::from_u8(SELECTED.load(Ordering::Relaxed)) {
        Some(isa) => isa,
        None => {
            let isa = best_isa();
            SELECTED.store(isa as u8, Ordering::Relaxed);
            isa
        }
    }
}

/// Selects an implementation for every later call (`None`: back to [`best_isa`]); for
/// benchmarks and comparisons. Returns `false`, changing nothing, if `isa` is not available.
pub fn set_isa(isa: Option<Isa>) -> bool {
    let isa = match isa {
        Some(i) if !i.is_available() => return false,
        Some(i) => i,
        None => best_isa(),
    };
    SELECTED.store(isa as u8, Ordering::Relaxed);
    true
}

/// Float convolution (with fused activation and pool). Scratch: none.
///
/// # Errors
/// [`ParamError`] unless [`ConvF::check`] accepts the op with these input and output lengths;
/// nothing is written then.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
pub fn conv2d_f<W: FloatWeight>(
    op: &ConvF<'_, W>,
    input: &[f32],
    output: &mut [f32],
    _scratch: &mut [u8],
) -> Result<(), ParamError> {
    op.check(input.len(), output.len())?;
    reference::conv2d_f(op, input, output);
    Ok(())
}

/// Float depthwise convolution (with fused activation). Scratch: none.
///
/// # Errors
/// [`ParamError`] unless [`DepthwiseF::check`] accepts the op with these input and output
/// lengths; nothing is written then.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
pub fn depthwise_conv2d_f<W: FloatWeight>(
    op: &DepthwiseF<'_, W>,
    input: &[f32],
    output: &mut [f32],
) -> Result<(), ParamError> {
    op.check(input.len(), output.len())?;
    reference::depthwise_conv2d_f(op, input, output);
    Ok(())
}

/// Float dense layer. Scratch: none.
///
/// # Errors
/// [`ParamError`] unless [`DenseF::check`] accepts the op with these input and output lengths.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
pub fn dense_f<W: FloatWeight>(op: &DenseF<'_, W>, input: &[f32], output: &mut [f32]) -> Result<(), ParamError> {
    op.check(input.len(), output.len())?;
    reference::dense_f(op, input, output);
    Ok(())
}

/// f32 max pool. Scratch: none.
///
/// # Errors
/// [`ParamError`] unless [`PoolGeometry::check_io`] accepts the lengths.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
pub fn maxpool2d_f32(p: &PoolGeometry, input: &[f32], output: &mut [f32]) -> Result<(), ParamError> {
    p.check_io(input.len(), output.len())?;
    reference::maxpool2d_f32(p, input, output);
    Ok(())
}

/// f32 average pool. Scratch: none.
///
/// # Errors
/// [`ParamError`] unless [`PoolGeometry::check_io`] accepts the lengths.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
pub fn avgpool2d_f32(p: &PoolGeometry, input: &[f32], output: &mut [f32]) -> Result<(), ParamError> {
    p.check_io(input.len(), output.len())?;
    reference::avgpool2d_f32(p, input, output);
    Ok(())
}

/// Float element-wise add (a residual connection) with fused activation. Scratch: none.
///
/// The reference on every ISA: the add is element-wise and well under 1% of a residual
/// network's work, so it has no SIMD path.
///
/// # Errors
/// [`ParamError`] unless [`AddF::check`] accepts the lengths; nothing is written then.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
pub fn add_f32(p: &AddF, a: &[f32], b: &[f32], output: &mut [f32]) -> Result<(), ParamError> {
    p.check(a.len(), b.len(), output.len())?;
    reference::add_f32(p.activation, a, b, output);
    Ok(())
}

/// Scratch bytes [`conv2d_s8`] needs for a convolution of this geometry whose fused pool (if
/// any) has `pool_window` pixels (1 without a pool): the most any implementation uses (the fast
/// paths' driver: an effective bias per output channel, 4 alignment bytes, and one im2col patch
/// per pixel of a group of 4, or of the pool window rounded up to 4), so one blob serves every
/// build, `force-scalar` included.
///
/// Saturates at `usize::MAX` for geometries too large to run (no buffer is that large).
pub const fn conv2d_s8_scratch_size(geometry: &ConvGeometry, pool_window: usize) -> usize {
    let group = if pool_window > GROUP_PIXELS {
        pool_window.div_ceil(GROUP_PIXELS).saturating_mul(GROUP_PIXELS)
    } else {
        GROUP_PIXELS
    };
    4usize
        .saturating_add(geometry.output.c.saturating_mul(4))
        .saturating_add(group.saturating_mul(patch_len(geometry.filter_len())))
}

/// Scratch bytes [`dense_s8`] needs: the most any implementation uses (effective biases and
/// the input patch). Saturates at `usize::MAX`.
pub const fn dense_s8_scratch_size(input_len: usize, output_len: usize) -> usize {
    4usize.saturating_add(output_len.saturating_mul(4)).saturating_add(patch_len(input_len))
}

/// Output pixels per micro-kernel call of the fast paths (a group).
const GROUP_PIXELS: usize = 4;
/// im2col patches are padded with zeros to a multiple of this many bytes.
const PATCH_ALIGN: usize = 16;

/// Bytes of an im2col patch of `k` taps (padded with zeros to a multiple of `PATCH_ALIGN`, 16;
/// saturating at `usize::MAX`).
pub const fn patch_len(k: usize) -> usize {
    k.div_ceil(PATCH_ALIGN).saturating_mul(PATCH_ALIGN)
}

/// The dispatch point of the int8 kernels: calls `$name` of the selected ISA's module with the
/// first argument list (each validates its arguments), or runs the block (the reference path,
/// which validates before it calls the reference kernel). Under Miri, which cannot run SIMD
/// intrinsics or `asm!`, the reference path is always taken.
macro_rules! dispatch {
    ($name:ident($($fast:expr),*) else $reference:block) => {
        match isa() {
            #[cfg(all(target_arch = "x86_64", not(feature = "force-scalar"), not(miri)))]
            // SAFETY: `isa()` returns this ISA only when its `is_available()` holds; the function
            // checks every other precondition itself.
            Isa::Avx512Vnni => unsafe { arch::x86_64::avx512::$name($($fast),*) },
            #[cfg(all(target_arch = "x86_64", not(feature = "force-scalar"), not(miri)))]
            // SAFETY: `isa()` returns this ISA only when its `is_available()` holds; the function
            // checks every other precondition itself.
            Isa::Avx2 => unsafe { arch::x86_64::avx2::$name($($fast),*) },
            #[cfg(all(target_arch = "x86_64", not(feature = "force-scalar"), not(miri)))]
            // SAFETY: `isa()` returns this ISA only when its `is_available()` holds; the function
            // checks every other precondition itself.
            Isa::AvxVnni => unsafe { arch::x86_64::avx_vnni::$name($($fast),*) },
            #[cfg(all(target_arch = "aarch64", not(feature = "force-scalar"), not(miri)))]
            // SAFETY: `isa()` returns this ISA only when its `is_available()` holds; the function
            // checks every other precondition itself.
            Isa::NeonDot => unsafe { arch::aarch64::neon::$name($($fast),*) },
            #[cfg(all(mnistc_arm_dsp, not(feature = "force-scalar"), not(miri)))]
            // SAFETY: `isa()` returns this ISA only when its `is_available()` holds; the function
            // checks every other precondition itself.
            Isa::ArmDsp => unsafe { arch::arm::dsp::$name($($fast),*) },
            _ => $reference,
        }
    };
}

/// Checks a [`conv2d_s8`] call: [`ConvS8::check`] and at least [`ConvS8::scratch_size`] bytes of
/// scratch.
pub(crate) fn check_conv2d_s8(op: &ConvS8<'_>, input: &[i8], output: &[i8], scratch: &[u8]) -> Result<(), ParamError> {
    op.check(input.len(), output.len())?;
    if scratch.len() < op.scratch_size() {
        return Err(ParamError::Scratch);
    }
    Ok(())
}

/// Checks a [`dense_s8`] call: [`DenseS8::check`] and at least [`DenseS8::scratch_size`] bytes
/// of scratch.
pub(crate) fn check_dense_s8(op: &DenseS8<'_>, input: &[i8], output: &[i8], scratch: &[u8]) -> Result<(), ParamError> {
    op.check(input.len(), output.len())?;
    if scratch.len() < op.scratch_size() {
        return Err(ParamError::Scratch);
    }
    Ok(())
}

/// Checks an int8 average pool call: [`PoolGeometry::check_io`] and [`AvgRequant::check`].
pub(crate) fn check_avgpool2d_s8(
    p: &PoolGeometry,
    q: &AvgRequant,
    input: &[i8],
    output: &[i8],
) -> Result<(), ParamError> {
    p.check_io(input.len(), output.len())?;
    q.check(p.window_len())
}

/// int8 convolution (with fused activation range and pool). `scratch` needs
/// [`ConvS8::scratch_size`] bytes (the same on every ISA, the reference included).
///
/// # Errors
/// [`ParamError`] unless [`ConvS8::check`] accepts the op with these input and output lengths
/// and the scratch is large enough; nothing is written then.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
#[cfg_attr(feature = "force-scalar", allow(unused_variables))]
pub fn conv2d_s8(op: &ConvS8<'_>, input: &[i8], output: &mut [i8], scratch: &mut [u8]) -> Result<(), ParamError> {
    dispatch!(conv2d_s8(op, input, output, scratch) else {
        check_conv2d_s8(op, input, output, scratch)?;
        reference::conv2d_s8(op, input, output);
        Ok(())
    })
}

/// int8 depthwise convolution (with fused activation range). Scratch: none.
///
/// The fast paths share one channel-vectorized loop (`driver`), compiled with each ISA's
/// features.
///
/// # Errors
/// [`ParamError`] unless [`DepthwiseS8::check`] accepts the op with these input and output
/// lengths; nothing is written then.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
pub fn depthwise_conv2d_s8(op: &DepthwiseS8<'_>, input: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    dispatch!(depthwise_conv2d_s8(op, input, output) else {
        op.check(input.len(), output.len())?;
        reference::depthwise_conv2d_s8(op, input, output);
        Ok(())
    })
}

/// int8 dense layer. `scratch` needs [`DenseS8::scratch_size`] bytes.
///
/// # Errors
/// [`ParamError`] unless [`DenseS8::check`] accepts the op with these input and output lengths
/// and the scratch is large enough; nothing is written then.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
#[cfg_attr(feature = "force-scalar", allow(unused_variables))]
pub fn dense_s8(op: &DenseS8<'_>, input: &[i8], output: &mut [i8], scratch: &mut [u8]) -> Result<(), ParamError> {
    dispatch!(dense_s8(op, input, output, scratch) else {
        check_dense_s8(op, input, output, scratch)?;
        reference::dense_s8(op, input, output);
        Ok(())
    })
}

/// int8 max pool. Scratch: none.
///
/// # Errors
/// [`ParamError`] unless [`PoolGeometry::check_io`] accepts the lengths.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
pub fn maxpool2d_s8(p: &PoolGeometry, input: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    dispatch!(maxpool2d_s8(p, input, output) else {
        p.check_io(input.len(), output.len())?;
        reference::maxpool2d_s8(p, input, output);
        Ok(())
    })
}

/// int8 average pool. Scratch: none.
///
/// # Errors
/// [`ParamError`] unless [`PoolGeometry::check_io`] and [`AvgRequant::check`] accept them.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
pub fn avgpool2d_s8(p: &PoolGeometry, q: &AvgRequant, input: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    dispatch!(avgpool2d_s8(p, q, input, output) else {
        check_avgpool2d_s8(p, q, input, output)?;
        reference::avgpool2d_s8(p, q, input, output);
        Ok(())
    })
}

/// int8 element-wise add (a residual connection), requantized to the output's scale, with fused
/// activation range. Scratch: none.
///
/// Every ISA runs the driver's loop (compiled with the ISA's features): the reference's f32
/// operations, which are what tract-onnx computes, with its `rintf` call replaced by an exact
/// two-addition rounding. On the Cortex-M4 that call cost about 125 instructions an element,
/// 10 % of a ResNet-8 inference; the reference stays the one obviously-correct definition.
///
/// # Errors
/// [`ParamError`] unless [`AddS8::check`] accepts the op with these lengths; nothing is written
/// then.
#[inline(never)] // one kernel's frame at a time under the interpreter (firmware stack)
pub fn add_s8(p: &AddS8, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<(), ParamError> {
    dispatch!(add_s8(p, a, b, output) else {
        p.check(a.len(), b.len(), output.len())?;
        reference::add_s8(p, a, b, output);
        Ok(())
    })
}
