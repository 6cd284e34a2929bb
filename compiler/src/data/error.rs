//! [`DataError`]: missing, unreadable or malformed dataset files.

use std::path::PathBuf;

use super::{DataDirSource, Dataset};

/// An error while locating or reading dataset files. Every variant names the file or folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// Some of the dataset's files are not there.
    #[error(
        "missing {} files in {}: {}\n  the data directory {} was chosen by {}\n  \
         needed: {} {} (raw or .gz) in {}/\n  \
         how to get them: `mnistc data fetch {} --data {}` downloads and verifies them there; \
         or {}; or point --data DIR (or the MNISTC_DATA environment variable) at a directory \
         holding mnist/, fashion-mnist/ and cifar-10/ (with neither set, mnistc downloads into \
         its cache).",
        dataset.name(),
        dir.display(),
        missing.join(", "),
        root.display(),
        chosen_by.describe(),
        dataset.file_kind(),
        dataset.files().join(", "),
        dataset.dir_name(),
        dataset.name(),
        root.display(),
        dataset.how_to_get()
    )]
    Missing {
        /// Which dataset.
        dataset: Dataset,
        /// The folder searched (`ROOT/mnist`).
        dir: PathBuf,
        /// The data directory.
        root: PathBuf,
        /// How the data directory was chosen.
        chosen_by: DataDirSource,
        /// Missing file names (`train-images-idx3-ubyte(.gz)`).
        missing: Vec<String>,
    },
    /// A data set could not be downloaded: every mirror failed for some file.
    #[error("{0}")]
    Download(Box<DownloadFailure>),
    /// A CIFAR-10 batch file is not a whole number of records, or holds too many.
    #[error(
        "{}: {bytes} bytes is not a CIFAR-10 batch: it must be 1 to {} whole 3,073-byte records \
         (a label byte, then the 1,024 red, green and blue bytes of a 32x32 image)",
        path.display(),
        super::cifar::MAX_RECORDS
    )]
    Records {
        /// The file.
        path: PathBuf,
        /// Its (uncompressed) length, or 10,000 records and one byte when it is longer.
        bytes: u64,
    },
    /// A class-names file (`batches.meta.txt`) is malformed.
    #[error("{}: {problem}", path.display())]
    ClassNames {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A gzip file is corrupt or truncated.
    #[error("{} is not a valid gzip file (corrupt or truncated): {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decompressor's error.
        source: std::io::Error,
    },
    /// The IDX header is wrong.
    #[error("{}: not an IDX {what} file: {problem}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// `images` or `labels`.
        what: &'static str,
        /// What was expected and found.
        problem: String,
    },
    /// The file is shorter or longer than its header says.
    #[error(
        "{}: {what} file has {found} bytes of data but its header ({header}) needs {expected}; \
         the file is {}",
        path.display(),
        if found < expected { "truncated" } else { "followed by unexpected bytes" }
    )]
    Length {
        /// The file (uncompressed content).
        path: PathBuf,
        /// `images` or `labels`.
        what: &'static str,
        /// The header's dimensions, e.g. `60000 x 28 x 28`.
        header: String,
        /// Bytes the header implies (after the header).
        expected: u64,
        /// Bytes present (after the header).
        found: u64,
    },
    /// Images and labels disagree on the number of items.
    #[error(
        "{} has {images} images but {} has {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// Images file.
        images_path: PathBuf,
        /// Labels file.
        labels_path: PathBuf,
        /// Image count.
        images: usize,
        /// Label count.
        labels: usize,
    },
    /// Images have another size than the dataset's.
    #[error("{}: images are {height}x{width}, but {} images are {expected_height}x{expected_width}", path.display(), dataset.name())]
    ImageSize {
        /// The file.
        path: PathBuf,
        /// Which dataset.
        dataset: Dataset,
        /// Rows found.
        height: usize,
        /// Columns found.
        width: usize,
        /// Expected rows.
        expected_height: usize,
        /// Expected columns.
        expected_width: usize,
    },
    /// A label is not a valid class.
    #[error("{}: label #{index} is {label}, but the dataset has only {classes} classes (0..={})", path.display(), classes - 1)]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// Position of the label.
        index: usize,
        /// The label value.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
}

/// Why a data set could not be downloaded ([`DataError::Download`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadFailure {
    /// The data set's name (`mnist`, `cifar-10`).
    pub dataset: String,
    /// The folder the files were to go to.
    pub dir: PathBuf,
    /// The data set's files.
    pub files: Vec<String>,
    /// What went wrong overall (`no mirror served a verified copy of train-images-idx3-ubyte`).
    pub problem: String,
    /// Each URL tried and what went wrong with it.
    pub attempts: Vec<String>,
}

impl std::fmt::Display for DownloadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.dataset;
        write!(f, "cannot download {d}: {}", self.problem)?;
        if !self.attempts.is_empty() {
            write!(f, "\n  tried:\n    {}", self.attempts.join("\n    "))?;
        }
        write!(
            f,
            "\n  to work offline, put the files {} (raw or .gz) in {}/ (or point --data DIR or MNISTC_DATA at a \
             directory holding {d}/); MNISTC_MIRROR=URL (or --mirror URL with `mnistc data fetch`) names a \
             mirror holding URL/{d}/FILE(.gz)",
            self.files.join(", "),
            self.dir.display()
        )
    }
}
