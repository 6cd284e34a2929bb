//! Options shared by several subcommands.

use std::path::PathBuf;

use crate::spec::Overrides;
use crate::train::Device;

/// `--data DIR`.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Data directory holding mnist/ and fashion-mnist/ [default: $MNISTC_DATA, else ./data, then the
    /// cache's data folder, where a missing data set is downloaded]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    /// The data directory (`--data`, else `$MNISTC_DATA`, else `./data` and the cache), with
    /// `dataset` in it: downloaded into the cache first when no directory was named and it is
    /// missing (progress and log lines on `err`).
    pub fn with_dataset(
        &self,
        dataset: crate::data::Dataset,
        err: &mut dyn std::io::Write,
    ) -> Result<crate::data::DataDir, super::CliError> {
        let dir = crate::data::DataDir::resolve(self.data.as_deref());
        crate::data::download::ensure(&dir, dataset, true, err).map_err(super::CliError::bad_input)?;
        Ok(dir)
    }
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

/// What every command that trains takes: `--data DIR`, the spec overrides (`--epochs`,
/// `--train-limit`, `--seed`) and `--device`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainingArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Where to train
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// `--pause-after N` of `train` and `build`.
#[derive(Debug, Clone, clap::Args)]
pub struct PauseArgs {
    /// Train at most N epochs in this run, then stop (exit 3) with the training's state saved in
    /// the cache; the same command continues it. Every epoch's state is saved anyway: an
    /// interrupted training also continues from its last finished epoch
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub pause_after: Option<u64>,
}

impl PauseArgs {
    /// Sets `opts.pause_after` (exit 2 without a cache to save the state in).
    pub fn apply(
        &self,
        opts: &mut crate::pipeline::BuildOptions<'_>,
        why_no_cache: &str,
    ) -> Result<(), super::CliError> {
        if self.pause_after.is_some() && opts.cache.is_none() {
            return Err(super::CliError::bad_input(format!(
                "--pause-after saves the training's state in the training cache, which {why_no_cache} turns off"
            )));
        }
        opts.pause_after = self.pause_after.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        Ok(())
    }
}

impl TrainingArgs {
    /// The device, if this binary can train on it (exit 2 otherwise).
    pub fn device(&self) -> Result<Device, super::CliError> {
        let device = Device::from(self.device);
        if !device.is_compiled_in() {
            return Err(super::CliError::bad_input(crate::train::TrainError::CudaUnavailable));
        }
        Ok(device)
    }

    /// The data directory (`--data`, else `$MNISTC_DATA`, else `./data`).
    pub fn data_dir(&self) -> crate::data::DataDir {
        crate::data::DataDir::resolve(self.data.data.as_deref())
    }

    /// The pipeline's options for these arguments on `device`: the training cache unless
    /// `no_cache`; a progress bar and log lines on `err` unless `quiet`.
    pub fn build_options<'a>(
        &self,
        device: Device,
        no_cache: bool,
        quiet: bool,
        err: &'a mut dyn std::io::Write,
    ) -> crate::pipeline::BuildOptions<'a> {
        // `Sink` has no size: leaking one allocates nothing.
        let log: &'a mut dyn std::io::Write = if quiet { Box::leak(Box::new(std::io::sink())) } else { err };
        crate::pipeline::BuildOptions {
            data: self.data_dir(),
            device,
            cache: (!no_cache).then(crate::train::cache::Cache::from_env),
            progress: !quiet,
            profile: false,
            pause_after: None,
            log,
        }
    }

    /// Reads `path` as a model spec with the overrides applied, printing its warnings to `err`.
    pub fn spec(
        &self,
        path: &std::path::Path,
        err: &mut dyn std::io::Write,
    ) -> Result<crate::spec::ModelSpec, super::CliError> {
        let spec = crate::spec::ModelSpec::from_path(path).map_err(super::CliError::bad_input)?;
        let spec = spec.with_overrides(&self.overrides.overrides()).map_err(super::CliError::bad_input)?;
        for w in &spec.warnings {
            let _ = writeln!(err, "warning: {w}");
        }
        Ok(spec)
    }
}

impl From<crate::pipeline::BuildError> for super::CliError {
    /// Bad input (spec, data, device) exits 2; a budget, a failed training or check exits 1; a
    /// training paused by `--pause-after` exits 3.
    fn from(e: crate::pipeline::BuildError) -> Self {
        if matches!(e, crate::pipeline::BuildError::Train(crate::train::TrainError::Paused { .. })) {
            super::CliError { failure: super::Failure::Paused, error: e.into() }
        } else if e.is_bad_input() {
            super::CliError::bad_input(e)
        } else {
            super::CliError::failed(e)
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
