//! Where training and float inference run.

use std::fmt;
use std::str::FromStr;

use super::error::TrainError;

/// Compute device. Every device runs the same code path; only the burn device differs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// burn's pure-Rust `flex` CPU backend (multi-threaded with rayon; `RAYON_NUM_THREADS`
    /// limits the threads).
    #[default]
    Cpu,
    /// The first NVIDIA GPU through burn-cuda. Only in binaries built with `--features cuda`.
    Cuda,
}

impl Device {
    /// `cpu` or `cuda`.
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }

    /// Whether this binary can use the device.
    pub fn is_compiled_in(&self) -> bool {
        match self {
            Device::Cpu => true,
            Device::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The (non-autodiff) burn device.
    ///
    /// # Errors
    /// [`TrainError::CudaUnavailable`] for [`Device::Cuda`] without the `cuda` feature.
    pub fn burn_device(&self) -> Result<burn::tensor::Device, TrainError> {
        match self {
            Device::Cpu => Ok(burn::tensor::Device::flex()),
            Device::Cuda => cuda_device(),
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<burn::tensor::Device, TrainError> {
    Ok(burn::tensor::Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<burn::tensor::Device, TrainError> {
    Err(TrainError::CudaUnavailable)
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            other => Err(format!("unknown device `{other}`; use cpu or cuda")),
        }
    }
}
