//! x86-64: AVX2 (`vpmaddwd` on widened bytes) and AVX-512 VNNI (`vpdpbusd`). Both feed
//! `x + 128` as `u8` (the driver's offset) and let the driver fold `(128 + zp)·Σ w` into the
//! bias.

pub mod avx2;
pub mod avx512;
