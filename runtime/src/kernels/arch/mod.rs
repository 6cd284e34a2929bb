//! One module per instruction set, each exporting the same kernel names as
//! [`crate::kernels::reference`] (plus `is_available`), built on the shared
//! `driver` module. Only [`crate::kernels`] (the dispatch point) calls them.

#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;

#[cfg(mnistc_arm_dsp)]
pub mod arm;
