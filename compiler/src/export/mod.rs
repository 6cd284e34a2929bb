//! Export: the lowered model in formats other tools read. Today ONNX ([`onnx`]).

pub mod onnx;
