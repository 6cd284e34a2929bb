//! Verification: the written blob run by the runtime on the host ([`on_device`]), compared with
//! tract-onnx on the exported ONNX ([`tract`], [`check`]), an imported `.tflite`
//! compared with TFLite Micro's reference kernels ([`tflite_micro`]), and timed side by side ([`bench`](mod@bench)).

pub mod bench;
pub mod check;
pub mod on_device;
pub mod tflite_micro;
pub mod tract;
