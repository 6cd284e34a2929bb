//! [`TrainError`]: why training or float inference failed.

use crate::data::DataError;
use crate::report::metrics::MetricsError;
use crate::spec::SpecError;

/// An error from [`train`](super::train), [`predict_logits`](super::predict_logits) or
/// [`evaluate`](super::evaluate).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The model description is inconsistent.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Data could not be loaded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The images do not have the model's input size.
    #[error(
        "the model expects {}x{}x{} images (height x width x channels), but the data has {}x{}x{} images",
        expected.0, expected.1, expected.2, got.0, got.1, got.2
    )]
    InputMismatch {
        /// Model input `(height, width, channels)`.
        expected: (usize, usize, usize),
        /// The data's `(height, width, channels)`.
        got: (usize, usize, usize),
    },
    /// A label is not a class of the model.
    #[error("image #{index} has label {label}, but the model has only {classes} classes")]
    LabelOutOfRange {
        /// Image index.
        index: usize,
        /// Its label.
        label: u8,
        /// Classes of the model.
        classes: usize,
    },
    /// Nothing to train on.
    #[error("the training set is empty (check data.train_limit and data.validation)")]
    EmptyTrainingSet,
    /// `--device cuda` on a binary built without the `cuda` feature.
    #[error(
        "this mnistc binary was built without CUDA support; build one with scripts/cuda-toolchain.sh \
         (see the README's CUDA section) or use --device cpu"
    )]
    CudaUnavailable,
    /// The NVIDIA driver library cannot be loaded.
    #[error("no CUDA driver: {library} not found ({detail}); install the NVIDIA driver or use --device cpu")]
    CudaDriverMissing {
        /// The library looked for.
        library: &'static str,
        /// The loader's message.
        detail: String,
    },
    /// `libdevice.10.bc`, which burn-cuda's kernel compiler links, is missing.
    #[error(
        "libdevice.10.bc not found ({searched}): set CUDA_PATH to a CUDA toolkit, or to the folder that \
         `scripts/cuda-toolchain.sh --install-only` prints (it unpacks libdevice from the PyPI wheel \
         nvidia-cuda-nvcc-cu12)"
    )]
    CudaLibdeviceMissing {
        /// Where it was looked for.
        searched: String,
    },
    /// The GPU ran out of memory.
    #[error("the GPU ran out of memory ({0}); lower train.batch_size or use a larger GPU")]
    CudaOutOfMemory(String),
    /// CUDA failed while running (driver, kernel compilation or launch).
    #[error("CUDA failed: {0}")]
    Cuda(String),
    /// The loss became NaN or infinite.
    #[error(
        "training diverged: the loss became {loss} at epoch {epoch}, batch {batch}; lower \
         train.learning_rate (now {learning_rate})"
    )]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch at which the non-finite running loss was read (it is
        /// read every 32 batches and at the end of the epoch).
        batch: usize,
        /// The non-finite (summed) loss.
        loss: f32,
        /// Learning rate in use.
        learning_rate: f64,
    },
    /// `[init] from` cannot be read, or its layers do not fit the model's.
    #[error("{origin}:{line}: init.from: {}: {detail}", from.display())]
    Pretrained {
        /// The model file.
        origin: String,
        /// Line of `from`.
        line: usize,
        /// The pretrained file.
        from: std::path::PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Stored weights do not fit the model description.
    #[error("the weights do not match the model description: {detail}")]
    WeightsMismatch {
        /// What differs.
        detail: String,
    },
    /// The backend failed (reading a tensor back, ...).
    #[error("burn backend error: {0}")]
    Backend(String),
    /// The run stopped as asked (`--pause-after`) with its state saved; the same command
    /// continues it.
    #[error(
        "paused after epoch {epochs_done} of {epochs}, the state saved in {}; run the same command again to continue",
        path.display()
    )]
    Paused {
        /// Epochs finished (all runs together).
        epochs_done: usize,
        /// Epochs the spec asks for.
        epochs: usize,
        /// The saved state.
        path: std::path::PathBuf,
    },
    /// The state after an epoch could not be saved.
    #[error("could not save the training state: {0}")]
    SaveState(String),
    /// Metrics could not be computed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

impl TrainError {
    /// Whether the error is the user's input or setup (exit 2: a spec, data, a device that is not
    /// there) rather than a run that failed (exit 1: divergence, a backend or GPU failure).
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            TrainError::Diverged { .. }
                | TrainError::Backend(_)
                | TrainError::Cuda(_)
                | TrainError::CudaOutOfMemory(_)
                | TrainError::Paused { .. }
                | TrainError::SaveState(_)
        )
    }
}
