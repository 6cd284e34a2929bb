//! Where the data sets come from and how a copy is recognised: the standard public mirrors of
//! MNIST, Fashion-MNIST and CIFAR-10, and the SHA-256 digests that verify a copy.
//!
//! A file is verified by the SHA-256 of its **uncompressed** content, so a re-gzipped copy (a
//! local mirror, `../shared/data`) verifies as well as the original `.gz`. A download is also
//! accepted when the SHA-256 of the file as served equals the published digest of the original
//! archive. CIFAR-10 comes from its authors as one tarball (`cifar-10-binary.tar.gz`), verified by
//! its SHA-256; the content digests of the extracted files are then recorded in `SHA256SUMS` next
//! to them (the digests of the official batch files are not published).
//!
//! The digests: MNIST and Fashion-MNIST content digests are those of `../shared/data/README.md`
//! (the original IDX files); archive digests are the ones torchvision, TensorFlow Datasets and
//! other loaders check; the CIFAR-10 JPEG-copy digests are those of `../shared/data/README.md`.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One file of a data set.
#[derive(Debug)]
pub struct KnownFile {
    /// The name without `.gz` (`train-images-idx3-ubyte`).
    pub name: &'static str,
    /// Digests of the uncompressed content, with the copy each one identifies.
    pub content: &'static [(Variant, &'static str)],
    /// SHA-256 of the original `.gz` as the standard mirrors serve it, if published.
    pub archive: Option<&'static str>,
    /// More bytes than any copy of the file has (a download stops there).
    pub max_bytes: u64,
}

/// Which copy of a data set a digest identifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The data set's original files.
    Official,
    /// CIFAR-10 decoded from the public JPEG copy (`../shared/data`; see its README).
    JpegCopy,
}

impl Variant {
    /// A short description for `mnistc data list`.
    pub fn describe(&self) -> &'static str {
        match self {
            Variant::Official => "official",
            Variant::JpegCopy => "JPEG copy",
        }
    }
}

/// A tarball that holds a data set's files (CIFAR-10).
#[derive(Debug)]
pub struct Archive {
    /// Its file name on the mirrors.
    pub name: &'static str,
    /// Its SHA-256.
    pub sha256: &'static str,
    /// Its size in bytes.
    pub bytes: u64,
    /// The folder inside the tarball that holds the files.
    pub folder: &'static str,
}

/// A downloadable data set.
#[derive(Debug)]
pub struct Source {
    /// The name (`mnist`), also the sub-folder of the data directory.
    pub name: &'static str,
    /// Who made it.
    pub title: &'static str,
    /// Its files, as they lie in the data directory (each raw or `.gz`).
    pub files: &'static [KnownFile],
    /// Base URLs tried in order (`BASE/FILE.gz`, or `BASE/ARCHIVE` when `archive` is set).
    pub mirrors: &'static [&'static str],
    /// The tarball the mirrors serve instead of single files.
    pub archive: Option<Archive>,
}

const MIB: u64 = 1 << 20;

/// A file of the official copy only.
const fn official(sha: &'static str) -> [(Variant, &'static str); 1] {
    [(Variant::Official, sha)]
}

/// A CIFAR-10 batch: 10,000 records of 3,073 bytes; its only published digest is that of the
/// JPEG copy.
macro_rules! cifar_batch {
    ($name:literal, $jpeg_copy:literal) => {
        KnownFile { name: $name, content: &[(Variant::JpegCopy, $jpeg_copy)], archive: None, max_bytes: 64 * MIB }
    };
}

/// Every data set mnistc can fetch.
pub static SOURCES: [Source; 3] = [
    Source {
        name: "mnist",
        title: "MNIST handwritten digits (Y. LeCun, C. Cortes, C. Burges)",
        files: &[
            KnownFile {
                name: "train-images-idx3-ubyte",
                content: &official("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
                archive: Some("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
                max_bytes: 64 * MIB,
            },
            KnownFile {
                name: "train-labels-idx1-ubyte",
                content: &official("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
                archive: Some("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
                max_bytes: MIB,
            },
            KnownFile {
                name: "t10k-images-idx3-ubyte",
                content: &official("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
                archive: Some("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
                max_bytes: 16 * MIB,
            },
            KnownFile {
                name: "t10k-labels-idx1-ubyte",
                content: &official("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
                archive: Some("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
                max_bytes: MIB,
            },
        ],
        mirrors: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist",
            "https://storage.googleapis.com/cvdf-datasets/mnist",
            "https://yann.lecun.com/exdb/mnist",
        ],
        archive: None,
    },
    Source {
        name: "fashion-mnist",
        title: "Fashion-MNIST (Zalando Research)",
        files: &[
            KnownFile {
                name: "train-images-idx3-ubyte",
                content: &official("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
                archive: Some("08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"),
                max_bytes: 64 * MIB,
            },
            KnownFile {
                name: "train-labels-idx1-ubyte",
                content: &official("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
                archive: Some("b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"),
                max_bytes: MIB,
            },
            KnownFile {
                name: "t10k-images-idx3-ubyte",
                content: &official("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
                archive: Some("78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229"),
                max_bytes: 16 * MIB,
            },
            KnownFile {
                name: "t10k-labels-idx1-ubyte",
                content: &official("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
                archive: Some("42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"),
                max_bytes: MIB,
            },
        ],
        mirrors: &[
            "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets",
        ],
        archive: None,
    },
    Source {
        name: "cifar-10",
        title: "CIFAR-10 (A. Krizhevsky, V. Nair, G. Hinton)",
        files: &[
            cifar_batch!("data_batch_1.bin", "e4a2c26e3dd9502150734afacddf741a27633b98521bea9fa4f119efc11ed005"),
            cifar_batch!("data_batch_2.bin", "07dc681f8e6b539c4d96200ad788de122073afe9d52400118a2eec7209c7398f"),
            cifar_batch!("data_batch_3.bin", "ecce61f230bd690efa33164f5f753db79032b8895919d2a247b433dab78056a2"),
            cifar_batch!("data_batch_4.bin", "4a530933b20e51d5eeae97a324e0fc6181f9b5751a63320e0d4ace564f690610"),
            cifar_batch!("data_batch_5.bin", "3c67fa39fb83ba551da93a16c0c34e2b0556dd64c175c108515e11038622a2b7"),
            cifar_batch!("test_batch.bin", "cef3ae3cfe18a44c31b9f5919f4c92270bd1d450a3783e56fb053b2e968638ca"),
            KnownFile {
                name: "batches.meta.txt",
                content: &[(Variant::JpegCopy, "2ce042b1e0b48db4bb214408e6414ba18b2731c24af244f2d6c112fddf31af00")],
                archive: None,
                max_bytes: MIB,
            },
        ],
        mirrors: &["https://www.cs.toronto.edu/~kriz", "https://cave.cs.toronto.edu/kriz"],
        archive: Some(Archive {
            name: "cifar-10-binary.tar.gz",
            sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            bytes: 170_052_171,
            folder: "cifar-10-batches-bin",
        }),
    },
];

/// The source named `name` (`mnist`, `fashion-mnist`, `cifar-10`).
pub fn source(name: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.name == name)
}

/// The names of every source, for error messages.
pub fn names() -> Vec<&'static str> {
    SOURCES.iter().map(|s| s.name).collect()
}

impl Source {
    /// The files this source holds, by name.
    pub fn file(&self, name: &str) -> Option<&'static KnownFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

impl KnownFile {
    /// Which copy `content_sha256` identifies, if any.
    pub fn variant_of(&self, content_sha256: &str) -> Option<Variant> {
        self.content.iter().find(|(_, sha)| *sha == content_sha256).map(|(v, _)| *v)
    }
}

/// `name` or `name.gz` in `dir`, whichever exists (the raw file first).
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))].into_iter().find(|p| p.is_file())
}

/// The SHA-256 (hex) of the uncompressed content of `path` (raw or gzip, as the content says).
///
/// # Errors
/// [`super::DataError::Io`] or [`super::DataError::Gzip`], naming the file.
pub fn content_sha256(path: &Path) -> Result<String, super::DataError> {
    let mut hasher = Sha256::new();
    super::idx::stream_maybe_gz(path, |chunk| hasher.update(chunk))?;
    Ok(super::hex(&hasher.finalize()))
}

/// The SHA-256 (hex) of the bytes of `path` as they are.
///
/// # Errors
/// [`super::DataError::Io`], naming the file.
pub fn file_sha256(path: &Path) -> Result<String, super::DataError> {
    let io = |source| super::DataError::Io { path: path.to_path_buf(), source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(super::hex(&hasher.finalize()))
}

/// The name of the file that records the content digests of files extracted from a verified
/// archive (`sha256sum` format).
pub const RECORDED_DIGESTS: &str = "SHA256SUMS";

/// The digests recorded in `dir/SHA256SUMS` by a verified download: `(file, sha256)` pairs.
pub fn recorded_digests(dir: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join(RECORDED_DIGESTS)) else { return Vec::new() };
    text.lines()
        .filter_map(|line| {
            let (sha, name) = line.split_once("  ")?;
            (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (name.to_string(), sha.to_string()))
        })
        .collect()
}

/// How a file in a data folder checks out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// Not there (neither raw nor `.gz`).
    Missing,
    /// Its content digest is a known one.
    Verified(Variant),
    /// Its content digest is the one recorded when it was extracted from a verified archive.
    VerifiedAtDownload,
    /// Its digest matches nothing known: a different or damaged copy.
    Unknown,
    /// It cannot be read (or its gzip is broken).
    Unreadable(String),
}

impl FileStatus {
    /// Whether the file can be trusted as a copy of the data set.
    pub fn is_verified(&self) -> bool {
        matches!(self, FileStatus::Verified(_) | FileStatus::VerifiedAtDownload)
    }

    /// For `mnistc data list`.
    pub fn describe(&self) -> String {
        match self {
            FileStatus::Missing => "missing".into(),
            FileStatus::Verified(v) => format!("verified ({})", v.describe()),
            FileStatus::VerifiedAtDownload => "verified (extracted from the verified archive)".into(),
            FileStatus::Unknown => "NOT verified: its SHA-256 matches no known copy".into(),
            FileStatus::Unreadable(e) => format!("unreadable: {e}"),
        }
    }
}

/// One file's state in a data folder.
#[derive(Clone, Debug)]
pub struct FileCheck {
    /// The file's standard name.
    pub name: &'static str,
    /// Where it is, if present.
    pub path: Option<PathBuf>,
    /// The SHA-256 of its uncompressed content, if read.
    pub sha256: Option<String>,
    /// The verdict.
    pub status: FileStatus,
}

/// Checks every file of `source` in `dir` (the data set's own folder, `ROOT/mnist`).
pub fn check_folder(source: &Source, dir: &Path) -> Vec<FileCheck> {
    let recorded = recorded_digests(dir);
    source
        .files
        .iter()
        .map(|file| {
            let Some(path) = find_file(dir, file.name) else {
                return FileCheck { name: file.name, path: None, sha256: None, status: FileStatus::Missing };
            };
            match content_sha256(&path) {
                Err(e) => FileCheck {
                    name: file.name,
                    path: Some(path),
                    sha256: None,
                    status: FileStatus::Unreadable(e.to_string()),
                },
                Ok(sha) => {
                    let status = match file.variant_of(&sha) {
                        Some(v) => FileStatus::Verified(v),
                        None if recorded.iter().any(|(n, s)| n == file.name && *s == sha) => {
                            FileStatus::VerifiedAtDownload
                        }
                        None => FileStatus::Unknown,
                    };
                    FileCheck { name: file.name, path: Some(path), sha256: Some(sha), status }
                }
            }
        })
        .collect()
}

/// Where each known data set lies for `dir` and each file's verdict (`mnistc data list`): the
/// data directory's folder, or the download folder when that one holds more of the files.
pub fn list(dir: &super::DataDir) -> Vec<(&'static Source, PathBuf, Vec<FileCheck>)> {
    SOURCES
        .iter()
        .map(|source| {
            let here = dir.root.join(source.name);
            let present = |d: &Path| source.files.iter().filter(|f| find_file(d, f.name).is_some()).count();
            let folder = match dir.download_root.as_ref().map(|r| r.join(source.name)) {
                Some(cached) if present(&cached) > present(&here) => cached,
                _ => here,
            };
            let checks = check_folder(source, &folder);
            (source, folder, checks)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_digest_is_lower_case_hex_of_the_right_length() {
        for s in &SOURCES {
            let mut all: Vec<&str> = s.files.iter().flat_map(|f| f.content.iter().map(|(_, d)| *d)).collect();
            all.extend(s.files.iter().filter_map(|f| f.archive));
            all.extend(s.archive.as_ref().map(|a| a.sha256));
            for d in all {
                assert_eq!(d.len(), 64, "{}: {d}", s.name);
                assert!(d.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{}: {d}", s.name);
            }
            assert!(!s.mirrors.is_empty());
            assert!(s.mirrors.iter().all(|m| m.starts_with("https://") && !m.ends_with('/')));
        }
    }

    #[test]
    fn the_data_sets_of_model_toml_are_all_fetchable() {
        for d in super::super::Dataset::ALL {
            let s = source(d.name()).unwrap();
            for name in d.files() {
                assert!(s.file(name).is_some(), "{d}: {name}");
            }
        }
    }
}
