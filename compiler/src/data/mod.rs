//! Datasets on disk: locating the data directory, reading IDX files and CIFAR-10 batches (raw
//! or `.gz`), file digests for cache keys, and deterministic stratified subsets / validation
//! splits.
//!
//! Layout: `DIR/mnist/` and `DIR/fashion-mnist/`, each with the four standard files
//! `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
//! `t10k-labels-idx1-ubyte`; `DIR/cifar-10/` with `data_batch_1.bin` … `data_batch_5.bin` and
//! `test_batch.bin` (the authors' binary layout). Each file is raw or gzipped (`.gz` suffix;
//! the content decides, not the name). `DIR` is `--data DIR`, else `$MNISTC_DATA`, else `./data` and then the download
//! folder of the cache (`$MNISTC_CACHE/data`, see [`crate::cache_dir`]).
//!
//! When no directory was named and a data set is in neither place, the commands that need it
//! download it into the cache from its public mirrors, verified by SHA-256 ([`sources`] says
//! from where and which digests; `download.rs` does it, with the `train` feature).

pub mod cifar;
#[cfg(feature = "train")]
pub mod download;
mod error;
pub mod idx;
pub mod png;
mod rng;
pub mod sources;
mod split;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::{DataError, DownloadFailure};
pub use rng::Rng;
pub use split::{TrainingSplit, prepare_training, stratified_sample, stratified_split};

/// The environment variable naming the data directory.
pub const DATA_ENV: &str = "MNISTC_DATA";

/// A supported dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dataset {
    /// MNIST handwritten digits.
    Mnist,
    /// Zalando's Fashion-MNIST.
    FashionMnist,
    /// CIFAR-10: 32×32 colour photographs in ten classes.
    #[serde(rename = "cifar-10")]
    Cifar10,
}

impl Dataset {
    /// All datasets.
    pub const ALL: [Dataset; 3] = [Dataset::Mnist, Dataset::FashionMnist, Dataset::Cifar10];

    /// The name used in `model.toml` (`mnist`, `fashion-mnist`, `cifar-10`).
    pub fn name(&self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
            Dataset::Cifar10 => "cifar-10",
        }
    }

    /// The data set named `name` in `model.toml` or a blob.
    pub fn from_name(name: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The sub-folder of the data directory.
    pub fn dir_name(&self) -> &'static str {
        self.name()
    }

    /// `(height, width, channels, classes)`.
    pub fn image_shape_and_classes(&self) -> (usize, usize, usize, usize) {
        match self {
            Dataset::Mnist | Dataset::FashionMnist => (28, 28, 1, 10),
            Dataset::Cifar10 => (cifar::SIDE, cifar::SIDE, cifar::CHANNELS, cifar::CLASSES),
        }
    }

    /// Images in the standard training set.
    pub fn train_size(&self) -> usize {
        match self {
            Dataset::Mnist | Dataset::FashionMnist => 60_000,
            Dataset::Cifar10 => 50_000,
        }
    }

    /// Images in the standard test set.
    pub fn test_size(&self) -> usize {
        10_000
    }

    /// Human-readable class names, index = label.
    pub fn class_names(&self) -> Vec<String> {
        let names: &[&str] = match self {
            Dataset::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Dataset::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
            Dataset::Cifar10 => &cifar::CLASS_NAMES,
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    fn how_to_get(&self) -> &'static str {
        match self {
            Dataset::Mnist => {
                "download the four files of the MNIST database (Y. LeCun, C. Cortes, C. Burges; \
                 e.g. from http://yann.lecun.com/exdb/mnist/ or one of its mirrors) and put them \
                 there unchanged"
            }
            Dataset::FashionMnist => {
                "download the four files from https://github.com/zalandoresearch/fashion-mnist \
                 (data/fashion) or install Debian's dataset-fashion-mnist package \
                 (/usr/share/datasets/fashion-mnist) and copy them there unchanged"
            }
            Dataset::Cifar10 => {
                "download cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html \
                 and put the files of its cifar-10-batches-bin/ folder there unchanged"
            }
        }
    }

    /// The files of the data set that training and testing read (without `.gz`), training
    /// files first.
    pub fn files(&self) -> &'static [&'static str] {
        match self {
            Dataset::Mnist | Dataset::FashionMnist => &STANDARD_FILES,
            Dataset::Cifar10 => &cifar::BATCH_FILES,
        }
    }

    /// The files of one split (without `.gz`): for IDX data sets `[images, labels]`, for
    /// CIFAR-10 its batch files.
    pub fn split_files(&self, split: Split) -> &'static [&'static str] {
        let files = self.files();
        let train = match self {
            Dataset::Mnist | Dataset::FashionMnist => 2,
            Dataset::Cifar10 => cifar::BATCH_FILES.len() - 1,
        };
        match split {
            Split::Train => &files[..train],
            Split::Test => &files[train..],
        }
    }

    /// How the files are described in the missing-files message.
    fn file_kind(&self) -> &'static str {
        match self {
            Dataset::Mnist | Dataset::FashionMnist => "the four standard IDX files",
            Dataset::Cifar10 => "the six batch files of the binary version",
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Training or test part of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// The training images (60,000 for the MNIST sets: `train-*`; 50,000 for CIFAR-10:
    /// `data_batch_*`).
    Train,
    /// The 10,000 test images (`t10k-*`, `test_batch`).
    Test,
}

/// The four files of an IDX data set (train images, train labels, test images, test labels),
/// without `.gz`.
pub const STANDARD_FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// How the data directory was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirSource {
    /// `--data DIR`.
    Flag,
    /// `$MNISTC_DATA`.
    Env,
    /// The default `./data`.
    Default,
}

impl DataDirSource {
    fn describe(&self) -> &'static str {
        match self {
            DataDirSource::Flag => "the --data option",
            DataDirSource::Env => "the MNISTC_DATA environment variable",
            DataDirSource::Default => {
                "default (./data, then the cache's data folder, because neither --data nor MNISTC_DATA was given)"
            }
        }
    }
}

/// A resolved data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    /// The directory holding `mnist/` and `fashion-mnist/`.
    pub root: PathBuf,
    /// How it was chosen (reported when files are missing).
    pub source: DataDirSource,
    /// Where a data set missing from `root` is looked for next, and downloaded to: the cache's
    /// data folder, only when no directory was named (`source` is `Default`).
    pub download_root: Option<PathBuf>,
}

impl DataDir {
    /// `--data DIR` if given, else `$MNISTC_DATA` if set and non-empty, else `./data` (and then
    /// the cache's data folder). Does not check that the directory exists (loading does, with a
    /// helpful error).
    pub fn resolve(cli_arg: Option<&Path>) -> DataDir {
        if let Some(p) = cli_arg {
            return DataDir::new(p);
        }
        match std::env::var_os(DATA_ENV) {
            Some(v) if !v.is_empty() => {
                DataDir { root: PathBuf::from(v), source: DataDirSource::Env, download_root: None }
            }
            _ => DataDir {
                root: PathBuf::from("data"),
                source: DataDirSource::Default,
                download_root: Some(crate::cache_dir::data()),
            },
        }
    }

    /// A data directory given explicitly (as if by `--data`).
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into(), source: DataDirSource::Flag, download_root: None }
    }

    /// The folder of one dataset under the data directory.
    pub fn dataset_dir(&self, dataset: Dataset) -> PathBuf {
        self.root.join(dataset.dir_name())
    }

    /// The root a missing data set is downloaded into: the cache's data folder when no
    /// directory was named, else the named directory.
    pub fn download_target(&self) -> &Path {
        self.download_root.as_deref().unwrap_or(&self.root)
    }

    /// Finds the files `names` (each raw or `.gz`) of the data set in the data directory, else
    /// all of them in the download folder: `Ok(paths)`, or `Err(the names missing from the data
    /// directory)`.
    pub fn find_all(&self, dataset: Dataset, names: &[&str]) -> Result<Vec<PathBuf>, Vec<String>> {
        let in_dir = |root: &Path| -> Vec<Option<PathBuf>> {
            let dir = root.join(dataset.dir_name());
            names.iter().map(|n| sources::find_file(&dir, n)).collect()
        };
        let here = in_dir(&self.root);
        if here.iter().all(Option::is_some) {
            return Ok(here.into_iter().flatten().collect());
        }
        if let Some(cached) = self.download_root.as_deref().map(in_dir)
            && cached.iter().all(Option::is_some)
        {
            return Ok(cached.into_iter().flatten().collect());
        }
        Err(names.iter().zip(here).filter(|(_, p)| p.is_none()).map(|(n, _)| format!("{n}(.gz)")).collect())
    }

    /// Locates the files of the given splits, or reports every missing one.
    pub(crate) fn locate(&self, dataset: Dataset, splits: &[Split]) -> Result<Vec<PathBuf>, DataError> {
        let names: Vec<&str> = splits.iter().flat_map(|&s| dataset.split_files(s)).copied().collect();
        match self.find_all(dataset, &names) {
            Ok(found) => Ok(found),
            Err(missing) => {
                let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
                Err(DataError::Missing {
                    dataset,
                    dir: abs(&self.dataset_dir(dataset)),
                    root: abs(&self.root),
                    chosen_by: self.source,
                    missing,
                })
            }
        }
    }
}

/// Images (grey or colour) with their labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// Number of images.
    pub n: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
    /// Channels per pixel: 1 (grey) or 3 (red, green, blue).
    pub channels: usize,
    /// `n * height * width * channels` bytes, image-major, then row-major, the channels of a
    /// pixel interleaved (`HWC`, the runtime's input order); 0 = black.
    pub pixels: Vec<u8>,
    /// `n` labels.
    pub labels: Vec<u8>,
}

impl Images {
    /// Grey images (one channel).
    pub fn grey(n: usize, height: usize, width: usize, pixels: Vec<u8>, labels: Vec<u8>) -> Images {
        Images { n, height, width, channels: 1, pixels, labels }
    }

    /// `(height, width, channels)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.height, self.width, self.channels)
    }

    /// Bytes per image (`height * width * channels`).
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// The pixels of image `i`.
    ///
    /// # Panics
    /// If `i >= n`.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.pixels[i * len..(i + 1) * len]
    }

    /// A new set with the images at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Images {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Images {
            n: indices.len(),
            height: self.height,
            width: self.width,
            channels: self.channels,
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// The first `n` images (all if fewer).
    pub fn head(&self, n: usize) -> Images {
        let n = n.min(self.n);
        Images {
            n,
            height: self.height,
            width: self.width,
            channels: self.channels,
            pixels: self.pixels[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// Images per class, for `classes` classes.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }
}

/// Loads one split of a dataset, checking magic numbers, dimensions, lengths and labels.
///
/// # Errors
/// [`DataError::Missing`] (naming the files, the folder and how the data directory was chosen),
/// or an error naming the malformed file and what was expected.
pub fn load(dir: &DataDir, dataset: Dataset, split: Split) -> Result<Images, DataError> {
    let paths = dir.locate(dataset, &[split])?;
    if dataset == Dataset::Cifar10 {
        return load_cifar(&paths);
    }
    let (images_path, labels_path) = (&paths[0], &paths[1]);
    let (n, height, width, pixels) = idx::read_images(images_path)?;
    let (eh, ew, _, classes) = dataset.image_shape_and_classes();
    if (height, width) != (eh, ew) {
        return Err(DataError::ImageSize {
            path: images_path.clone(),
            dataset,
            height,
            width,
            expected_height: eh,
            expected_width: ew,
        });
    }
    let labels = idx::read_labels(labels_path)?;
    if labels.len() != n {
        return Err(DataError::CountMismatch {
            images_path: images_path.clone(),
            labels_path: labels_path.clone(),
            images: n,
            labels: labels.len(),
        });
    }
    if let Some((index, &label)) = labels.iter().enumerate().find(|&(_, &l)| usize::from(l) >= classes) {
        return Err(DataError::BadLabel { path: labels_path.clone(), index, label, classes });
    }
    Ok(Images::grey(n, height, width, pixels, labels))
}

/// Reads CIFAR-10 batch files one after another into one set.
fn load_cifar(paths: &[PathBuf]) -> Result<Images, DataError> {
    let mut all = Images {
        n: 0,
        height: cifar::SIDE,
        width: cifar::SIDE,
        channels: cifar::CHANNELS,
        pixels: Vec::new(),
        labels: Vec::new(),
    };
    for path in paths {
        let batch = cifar::read_batch(path)?;
        if all.pixels.is_empty() {
            all.pixels.reserve_exact(paths.len() * batch.pixels.len());
        }
        all.n += batch.n;
        all.pixels.extend_from_slice(&batch.pixels);
        all.labels.extend_from_slice(&batch.labels);
    }
    Ok(all)
}

/// Reads an IDX images file (raw or gzip) anywhere on disk: `(count, rows, cols, pixels)`.
///
/// # Errors
/// [`DataError`] naming the file and what was expected when it is missing or malformed.
pub fn read_images_file(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    idx::read_images(path)
}

/// Reads a whole file, decompressing it when its content is gzip (whatever its name).
///
/// # Errors
/// [`DataError::Io`] or [`DataError::Gzip`], naming the file.
pub fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    idx::read_maybe_gz(path)
}

/// Reads any IDX labels file (raw or gzipped).
///
/// # Errors
/// A [`DataError`] naming the file and what is wrong.
pub fn read_labels_file(path: &Path) -> Result<Vec<u8>, DataError> {
    idx::read_labels(path)
}

/// The SHA-256 of one dataset file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Standard file name without `.gz` (`train-images-idx3-ubyte`).
    pub file: String,
    /// SHA-256 (lower-case hex) of the **uncompressed** content, so a raw file and its `.gz`
    /// have the same digest.
    pub sha256: String,
}

/// Lower-case hex of `bytes` (digests and hashes in cache keys, reports and metadata).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 digests of the uncompressed content of the dataset's files ([`Dataset::files`]: for
/// the IDX sets train images, train labels, test images, test labels), for cache keys.
///
/// # Errors
/// As [`load`], for missing or unreadable files (the content is not validated here).
pub fn file_digests(dir: &DataDir, dataset: Dataset) -> Result<Vec<FileDigest>, DataError> {
    let paths = dir.locate(dataset, &[Split::Train, Split::Test])?;
    paths
        .iter()
        .zip(dataset.files())
        .map(|(path, name)| {
            let mut hasher = Sha256::new();
            idx::stream_maybe_gz(path, |chunk| hasher.update(chunk))?;
            Ok(FileDigest { file: name.to_string(), sha256: hex(&hasher.finalize()) })
        })
        .collect()
}
