//! Export: the lowered model in formats other tools read: ONNX ([`onnx`]) and C source
//! ([`c`], for the C API in `runtime-c/`); and one layer's activations over a data set
//! ([`features`], NumPy and CSV).

pub mod c;
pub mod features;
#[cfg(feature = "train")]
pub mod onnx;
