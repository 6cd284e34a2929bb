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

    /// The (non-autodiff) burn device. For CUDA, first checks what burn-cuda would otherwise
    /// panic on: that the driver library loads and that `libdevice.10.bc` is there.
    ///
    /// # Errors
    /// [`TrainError::CudaUnavailable`] for [`Device::Cuda`] without the `cuda` feature;
    /// [`TrainError::CudaDriverMissing`] or [`TrainError::CudaLibdeviceMissing`].
    pub fn burn_device(&self) -> Result<burn::tensor::Device, TrainError> {
        match self {
            Device::Cpu => Ok(burn::tensor::Device::flex()),
            Device::Cuda => cuda_device(),
        }
    }

    /// Runs `f` (training or inference on this device) so that a CUDA failure, which burn-cuda
    /// reports by panicking (out of memory, a kernel that does not compile, a lost device), comes
    /// back as a [`TrainError`] instead of aborting the command. CPU runs are passed through.
    ///
    /// # Errors
    /// What `f` returns, or [`TrainError::CudaOutOfMemory`] / [`TrainError::Cuda`].
    pub fn guard<T>(&self, f: impl FnOnce() -> Result<T, TrainError>) -> Result<T, TrainError> {
        if *self == Device::Cpu {
            return f();
        }
        // The default hook would print the panic and a backtrace note before our error.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        std::panic::set_hook(hook);
        match result {
            Ok(r) => r,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown panic");
                Err(cuda_failure(message))
            }
        }
    }
}

/// The error for a CUDA failure message (burn-cuda and cudarc panic with the driver's text).
pub fn cuda_failure(message: &str) -> TrainError {
    let line = message.lines().find(|l| !l.trim().is_empty()).unwrap_or(message).trim().to_string();
    let lower = message.to_ascii_lowercase();
    if lower.contains("out of memory") || lower.contains("out_of_memory") || lower.contains("outofmemory") {
        TrainError::CudaOutOfMemory(line)
    } else {
        TrainError::Cuda(line)
    }
}

/// Toolkit folders searched for `nvvm/libdevice/libdevice.10.bc` when `CUDA_PATH` is unset: the
/// same as burn-cuda's kernel compiler (cubecl-llvm) searches.
pub const CUDA_ROOTS: [&str; 4] = ["/usr/local/cuda", "/opt/cuda", "/usr/lib/cuda", "/usr"];

/// Where burn-cuda will find `libdevice.10.bc`: under `cuda_path` (the `CUDA_PATH` variable) if
/// given, else under the first of [`CUDA_ROOTS`] that has `nvvm/libdevice`.
///
/// # Errors
/// [`TrainError::CudaLibdeviceMissing`] naming the places searched.
pub fn libdevice(cuda_path: Option<&std::ffi::OsStr>) -> Result<std::path::PathBuf, TrainError> {
    let file = |root: &std::path::Path| root.join("nvvm").join("libdevice").join("libdevice.10.bc");
    let (path, searched) = match cuda_path {
        Some(root) => {
            let path = file(std::path::Path::new(root));
            let searched = format!("CUDA_PATH={}", std::path::Path::new(root).display());
            (path.is_file().then_some(path), searched)
        }
        None => {
            let root = CUDA_ROOTS.iter().map(std::path::Path::new).find(|r| r.join("nvvm/libdevice").is_dir());
            let searched = format!("CUDA_PATH is unset; looked in {}", CUDA_ROOTS.join(", "));
            (root.map(file).filter(|p| p.is_file()), searched)
        }
    };
    path.ok_or(TrainError::CudaLibdeviceMissing { searched })
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<burn::tensor::Device, TrainError> {
    const LIBCUDA: &str = "libcuda.so.1";
    // SAFETY: loading the NVIDIA driver library runs its initializers, which is what burn-cuda
    // (cudarc) does next anyway; the handle is dropped at once and no symbol is called.
    if let Err(e) = unsafe { libloading::Library::new(LIBCUDA) } {
        return Err(TrainError::CudaDriverMissing { library: LIBCUDA, detail: e.to_string() });
    }
    libdevice(std::env::var_os("CUDA_PATH").as_deref())?;
    Device::Cuda.guard(|| Ok(burn::tensor::Device::cuda(0)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_failures_name_out_of_memory() {
        let oom = cuda_failure(
            "called `Result::unwrap()` on an `Err` value: DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")",
        );
        assert!(matches!(oom, TrainError::CudaOutOfMemory(_)), "{oom}");
        assert!(oom.to_string().contains("lower train.batch_size"));
        let other = cuda_failure("\nPTX compilation failed: invalid opcode\n");
        assert_eq!(other.to_string(), "CUDA failed: PTX compilation failed: invalid opcode");
        assert!(!other.is_bad_input());
    }

    #[test]
    fn libdevice_is_found_under_cuda_path_or_named_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = libdevice(Some(dir.path().as_os_str())).unwrap_err();
        assert!(err.to_string().contains(&format!("CUDA_PATH={}", dir.path().display())), "{err}");
        assert!(err.to_string().contains("nvidia-cuda-nvcc-cu12"), "{err}");
        let nvvm = dir.path().join("nvvm/libdevice");
        std::fs::create_dir_all(&nvvm).unwrap();
        std::fs::write(nvvm.join("libdevice.10.bc"), b"BC").unwrap();
        assert_eq!(libdevice(Some(dir.path().as_os_str())).unwrap(), nvvm.join("libdevice.10.bc"));
    }

    #[test]
    fn cpu_runs_pass_through_the_guard() {
        assert_eq!(Device::Cpu.guard(|| Ok(3)).unwrap(), 3);
        let cuda = Device::Cuda.guard::<()>(|| panic!("CUDA_ERROR_OUT_OF_MEMORY"));
        assert!(matches!(cuda, Err(TrainError::CudaOutOfMemory(_))));
    }
}
