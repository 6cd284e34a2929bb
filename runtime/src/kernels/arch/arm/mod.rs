//! 32-bit Arm with the DSP extension (Cortex-M4/M7/M33 with DSP, Armv7-A): `SMLAD`, `SXTB16`.
//! Selected by `build.rs` from the target name (`cfg(mnistc_arm_dsp)`), because
//! `target_feature = "dsp"` is not visible on stable Rust.

mod conv2d;
mod depthwise_conv2d;
pub mod dsp;
