//! x86-64: AVX2 (`vpmaddwd` on widened bytes), AVX-VNNI (`vpdpbusd` on 256-bit vectors) and
//! AVX-512 VNNI (`vpdpbusd` on 512-bit vectors). All three feed
//! `x + 128` as `u8` (the driver's offset) and let the driver fold `(128 + zp)·Σ w` into the
//! bias.

pub mod avx2;
pub mod avx512;
pub mod avx_vnni;
mod first_layer;

use crate::kernels::driver::MAX_BLOCK;

/// 4 bytes of `s` at `i` as one little-endian i32.
///
/// # Safety
/// `i + 4 <= s.len()`.
#[inline(always)]
unsafe fn word(s: &[u8], i: usize) -> i32 {
    debug_assert!(i + 4 <= s.len());
    // SAFETY: in bounds (the caller's contract); unaligned reads are allowed.
    unsafe { core::ptr::read_unaligned(s.as_ptr().add(i).cast::<i32>()) }
}

/// Where a `vpdpbusd` module's block accumulation puts its accumulators.
enum Out<'a, const P: usize> {
    /// One row per pixel ([`crate::kernels::driver::Micro::accumulate`]).
    Rows(&'a mut [[i32; MAX_BLOCK]; P]),
    /// Merged into a running max ([`crate::kernels::driver::Micro::accumulate_max`]).
    Max(&'a mut [i32; MAX_BLOCK]),
}
