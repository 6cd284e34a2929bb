//! Reading a blob given on the command line.

use std::path::Path;

use super::CliError;
use crate::data::Dataset;
use crate::lower::emit::AlignedBytes;

/// Reads `path` into aligned memory.
///
/// # Errors
/// Exit 2 if the file cannot be read.
pub fn read(path: &Path) -> Result<AlignedBytes, CliError> {
    AlignedBytes::read(path).map_err(|e| CliError::bad_input(format!("{}: {e}", path.display())))
}

/// Validates the blob.
///
/// # Errors
/// Exit 2 with the runtime's [`mnistc_runtime::LoadError`] if the blob is malformed.
pub fn load<'a>(path: &Path, bytes: &'a AlignedBytes) -> Result<mnistc_runtime::Model<'a>, CliError> {
    mnistc_runtime::Model::from_bytes(bytes.as_bytes())
        .map_err(|e| CliError::bad_input(format!("{}: not a valid mnistc blob: {e}", path.display())))
}

/// The data set a blob was trained on.
///
/// # Errors
/// Exit 2 if the blob names a data set mnistc does not know.
pub fn dataset(model: &mnistc_runtime::Model<'_>) -> Result<Dataset, CliError> {
    Dataset::from_name(model.dataset()).ok_or_else(|| {
        CliError::bad_input(format!("the blob's data set `{}` is not one mnistc knows", model.dataset()))
    })
}
