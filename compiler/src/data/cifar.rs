//! CIFAR-10 reading: the standard binary layout (`cifar-10-batches-bin`), raw or gzipped.
//!
//! A batch file (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`) is a sequence of
//! 3,073-byte records: one label byte (0–9), then the 1,024 red, 1,024 green and 1,024 blue bytes
//! of a 32×32 image, each plane row-major. The official files hold 10,000 records each; a file
//! here may hold fewer (subsets for tests), never a partial record or more than 10,000.
//! `batches.meta.txt` names the ten classes, one a line, in label order.
//!
//! Images come out interleaved, height × width × channels (`HWC`, the runtime's input order):
//! pixel `(y, x)` of channel `c` is `pixels[(y·32 + x)·3 + c]`.

use std::io::Read;
use std::path::Path;

use super::error::DataError;
use super::idx;

/// Rows and columns of a CIFAR-10 image.
pub const SIDE: usize = 32;
/// Colour channels (red, green, blue).
pub const CHANNELS: usize = 3;
/// Bytes of one image (`32·32·3`).
pub const IMAGE_BYTES: usize = SIDE * SIDE * CHANNELS;
/// Bytes of one record: the label byte and the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Records in an official batch file, and the most a file may hold.
pub const MAX_RECORDS: usize = 10_000;
/// Classes (labels `0..=9`).
pub const CLASSES: usize = 10;
/// The batch files, the five training batches first, then the test batch (without `.gz`).
pub const BATCH_FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];
/// The class names in label order, as `batches.meta.txt` lists them.
pub const CLASS_NAMES: [&str; CLASSES] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// The images and labels of one batch file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Number of images.
    pub n: usize,
    /// `n · 3,072` bytes, each image `HWC`.
    pub pixels: Vec<u8>,
    /// `n` labels, each `< 10`.
    pub labels: Vec<u8>,
}

/// Parses the (uncompressed) content of a batch file; `path` only names it in errors.
///
/// # Errors
/// [`DataError::Records`] when the content is empty, not a whole number of records or more than
/// 10,000 of them; [`DataError::BadLabel`] for a label above 9.
pub fn parse_batch(path: &Path, bytes: &[u8]) -> Result<Batch, DataError> {
    let records = bytes.len() / RECORD_BYTES;
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) || records > MAX_RECORDS {
        return Err(DataError::Records { path: path.to_path_buf(), bytes: bytes.len() as u64 });
    }
    let mut pixels = vec![0u8; records * IMAGE_BYTES];
    let mut labels = Vec::with_capacity(records);
    for (index, (record, image)) in
        bytes.chunks_exact(RECORD_BYTES).zip(pixels.chunks_exact_mut(IMAGE_BYTES)).enumerate()
    {
        let label = record[0];
        if usize::from(label) >= CLASSES {
            return Err(DataError::BadLabel { path: path.to_path_buf(), index, label, classes: CLASSES });
        }
        labels.push(label);
        let planes = &record[1..];
        for (c, plane) in planes.chunks_exact(SIDE * SIDE).enumerate() {
            for (i, &v) in plane.iter().enumerate() {
                image[i * CHANNELS + c] = v;
            }
        }
    }
    Ok(Batch { n: records, pixels, labels })
}

/// Reads a batch file, raw or gzipped (the content decides). A file whose content exceeds 10,000
/// records is refused after reading one byte past that, whatever it would decompress to.
///
/// # Errors
/// [`DataError::Io`] or [`DataError::Gzip`] naming the file, or [`parse_batch`]'s errors.
pub fn read_batch(path: &Path) -> Result<Batch, DataError> {
    let limit = (MAX_RECORDS * RECORD_BYTES) as u64;
    let (reader, gz) = idx::open(path)?;
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes).map_err(|e| idx::read_error(path, gz, e))?;
    parse_batch(path, &bytes)
}

/// Parses `batches.meta.txt`: the ten class names, one a line, in label order (blank lines and
/// surrounding spaces ignored).
///
/// # Errors
/// [`DataError::ClassNames`] naming the file and what is wrong.
pub fn parse_class_names(path: &Path, bytes: &[u8]) -> Result<Vec<String>, DataError> {
    let problem = |problem: String| DataError::ClassNames { path: path.to_path_buf(), problem };
    let text = std::str::from_utf8(bytes).map_err(|e| problem(format!("not UTF-8 ({e})")))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.len() != CLASSES {
        return Err(problem(format!("{} class names, expected {CLASSES} (one a line)", names.len())));
    }
    if let Some(long) = names.iter().find(|n| n.len() > 64) {
        let head: String = long.chars().take(32).collect();
        return Err(problem(format!("the class name `{head}…` is longer than 64 bytes")));
    }
    Ok(names)
}

/// Reads `batches.meta.txt` (raw or gzipped).
///
/// # Errors
/// As [`parse_class_names`], or [`DataError::Io`] / [`DataError::Gzip`].
pub fn read_class_names(path: &Path) -> Result<Vec<String>, DataError> {
    let (reader, gz) = idx::open(path)?;
    let mut bytes = Vec::new();
    reader.take(64 * 1024).read_to_end(&mut bytes).map_err(|e| idx::read_error(path, gz, e))?;
    parse_class_names(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, seed: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend((0..IMAGE_BYTES).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
        r
    }

    #[test]
    fn planes_become_interleaved_pixels() {
        let bytes = [record(3, 1), record(9, 2)].concat();
        let b = parse_batch(Path::new("b.bin"), &bytes).unwrap();
        assert_eq!((b.n, b.labels.as_slice()), (2, &[3u8, 9][..]));
        for (i, (rec, img)) in bytes.chunks(RECORD_BYTES).zip(b.pixels.chunks(IMAGE_BYTES)).enumerate() {
            for (y, x, c) in [(0, 0, 0), (0, 1, 2), (31, 31, 1), (5, 17, 2)] {
                assert_eq!(img[(y * SIDE + x) * CHANNELS + c], rec[1 + c * 1024 + y * SIDE + x], "image {i}");
            }
        }
    }

    #[test]
    fn sizes_and_labels_are_checked_and_the_file_named() {
        let p = Path::new("cifar/data_batch_1.bin");
        for bytes in [vec![], record(1, 0)[..100].to_vec(), [record(1, 0), vec![0; 5]].concat()] {
            let e = parse_batch(p, &bytes).unwrap_err().to_string();
            assert!(e.contains("data_batch_1.bin") && e.contains("3,073-byte"), "{e}");
        }
        let e = parse_batch(p, &[record(1, 0), record(10, 0)].concat()).unwrap_err().to_string();
        assert!(e.contains("label #1 is 10"), "{e}");
        let too_many = vec![0u8; (MAX_RECORDS + 1) * RECORD_BYTES];
        assert!(matches!(parse_batch(p, &too_many), Err(DataError::Records { .. })));
    }

    #[test]
    fn class_names_are_ten_lines() {
        let p = Path::new("batches.meta.txt");
        let names =
            parse_class_names(p, b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n").unwrap();
        assert_eq!(names[9], "truck");
        let e = parse_class_names(p, b"a\nb\n").unwrap_err().to_string();
        assert!(e.contains("batches.meta.txt") && e.contains("2 class names"), "{e}");
        assert!(parse_class_names(p, &[0xff, 0xfe]).is_err());
    }

    #[test]
    fn the_shared_copy_reads_when_present() {
        let Some(dir) = std::env::var_os("MNISTC_DATA").map(|d| std::path::PathBuf::from(d).join("cifar-10")) else {
            return;
        };
        let Some(path) = super::super::sources::find_file(&dir, "test_batch.bin") else { return };
        let b = read_batch(&path).unwrap();
        assert_eq!(b.n, MAX_RECORDS);
        let mut counts = [0usize; CLASSES];
        b.labels.iter().for_each(|&l| counts[usize::from(l)] += 1);
        assert_eq!(counts, [1000; CLASSES], "the test batch holds 1,000 images a class");
        let names = read_class_names(&super::super::sources::find_file(&dir, "batches.meta.txt").unwrap()).unwrap();
        assert_eq!(names[0], "airplane");
    }
}
