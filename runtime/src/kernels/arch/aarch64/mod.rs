//! aarch64: NEON with the dot-product extension (`sdot`).

pub mod neon;
