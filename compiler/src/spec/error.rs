//! [`SpecError`]: everything that can be wrong with a `model.toml`.

use std::path::PathBuf;

/// What kind of mistake an [`SpecError::Invalid`] reports; lets callers and tests match on the
/// cause without parsing the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidKind {
    /// A key that this table does not know (typo, or a key of another layer type).
    UnknownKey,
    /// A required key is absent.
    Missing,
    /// The value has the wrong TOML type (string instead of integer, ...).
    WrongType,
    /// The value has the right type but is not one of the allowed values or is out of range.
    BadValue,
    /// The value is fine on its own but does not fit the rest of the model (a kernel larger
    /// than its input, a last dense layer with the wrong number of units, ...).
    Inconsistent,
}

/// An error in a model description. Every variant names where the problem is.
///
/// The `Display` form is `ORIGIN:LINE: KEY: MESSAGE`, for example
/// `models/x.toml:14: layers[3].kernel: 30x30 does not fit the 4x4 input of this layer`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read model file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}:{line}:{column}: invalid TOML: {message}")]
    Syntax {
        /// File name (or `<string>`).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The TOML parser's message.
        message: String,
    },
    /// The file is valid TOML but not a valid model description.
    #[error("{}", location(origin, *line, key, message))]
    Invalid {
        /// File name (or `<string>`).
        origin: String,
        /// 1-based line of the offending key or table.
        line: usize,
        /// Key path, such as `layers[3].kernel` or `train.learning_rate`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
        /// The category of the mistake.
        kind: InvalidKind,
    },
}

impl SpecError {
    /// The 1-based line of the problem, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            SpecError::Io { .. } => None,
            SpecError::Syntax { line, .. } | SpecError::Invalid { line, .. } => Some(*line),
        }
    }

    /// The key path of a semantic error (`layers[3].kernel`).
    pub fn key(&self) -> Option<&str> {
        match self {
            SpecError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The category of a semantic error.
    pub fn kind(&self) -> Option<InvalidKind> {
        match self {
            SpecError::Invalid { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// `ORIGIN:LINE: KEY: MESSAGE`, or `ORIGIN: KEY: MESSAGE` without a line (command line).
fn location(origin: &str, line: usize, key: &str, message: &str) -> String {
    if line == 0 { format!("{origin}: {key}: {message}") } else { format!("{origin}:{line}: {key}: {message}") }
}
