//! Export: the lowered model in formats other tools read: ONNX ([`onnx`]) and C source
//! ([`c`], for the C API in `runtime-c/`).

pub mod c;
#[cfg(feature = "train")]
pub mod onnx;
