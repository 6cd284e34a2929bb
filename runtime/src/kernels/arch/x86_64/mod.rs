//! x86-64: AVX2 (`vpmaddwd` on widened bytes), AVX-VNNI (`vpdpbusd` on 256-bit vectors) and
//! AVX-512 VNNI (`vpdpbusd` on 512-bit vectors). All three feed
//! `x + 128` as `u8` (the driver's offset) and let the driver fold `(128 + zp)·Σ w` into the
//! bias.

pub mod avx2;
pub mod avx512;
pub mod avx_vnni;
mod first_layer;
