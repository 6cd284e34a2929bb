//! Options shared by several subcommands.

use std::path::PathBuf;

use crate::spec::Overrides;
use crate::train::Device;

/// `--data DIR`.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Data directory holding mnist/ and fashion-mnist/ [default: $MNISTC_DATA, else ./data]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// `--epochs`, `--train-limit`, `--seed`: override the model file.
#[derive(Debug, Clone, clap::Args)]
pub struct OverrideArgs {
    /// Override train.epochs
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub epochs: Option<u64>,
    /// Override data.train_limit (use only N training images; 0 = all)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub train_limit: Option<u64>,
    /// Override train.seed
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    pub seed: Option<u64>,
}

impl OverrideArgs {
    /// As spec overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            epochs: self.epochs.map(|v| v as usize),
            train_limit: self.train_limit.map(|v| v as usize),
            seed: self.seed,
        }
    }
}

/// `--device cpu|cuda`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// burn's flex CPU backend
    Cpu,
    /// NVIDIA GPU 0 (binaries built with --features cuda only)
    Cuda,
}

impl From<DeviceArg> for Device {
    fn from(d: DeviceArg) -> Device {
        match d {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda,
        }
    }
}

/// Fails early (before a long training) if `path` cannot be an output file: it must name a file
/// (not a directory) in an existing directory. `what` names the file in the message.
pub fn check_output_path(path: &std::path::Path, what: &str) -> Result<(), super::CliError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if path.file_name().is_none() || path.is_dir() {
        return Err(super::CliError::bad_input(format!("-o {}: expected a file path for the {what}", path.display())));
    }
    if !parent.is_dir() {
        return Err(super::CliError::bad_input(format!(
            "-o {}: the directory {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    Ok(())
}
