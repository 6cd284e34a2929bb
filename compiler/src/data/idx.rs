//! IDX file reading (the MNIST format), raw or gzip-compressed.
//!
//! Format: a 4-byte big-endian magic `0x0000TTDD` (TT = element type, 0x08 = unsigned byte;
//! DD = number of dimensions), then DD big-endian `u32` sizes, then the elements. Images files
//! are `0x00000803` (count, rows, columns), labels files `0x00000801` (count).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::error::DataError;

/// Opens `path` for reading its content, through a gunzip stream when it starts with the gzip
/// magic (`1f 8b`), whatever its name. Returns the reader and whether it is gzip.
pub(super) fn open(path: &Path) -> Result<(Box<dyn Read>, bool), DataError> {
    let io = |source| DataError::Io { path: path.to_path_buf(), source };
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let head = file.fill_buf().map_err(io)?;
    let gz = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
    Ok(if gz { (Box::new(MultiGzDecoder::new(file)), true) } else { (Box::new(file), false) })
}

/// The error of a failed read of `path`'s content.
pub(super) fn read_error(path: &Path, gz: bool, source: std::io::Error) -> DataError {
    if gz {
        DataError::Gzip { path: path.to_path_buf(), source }
    } else {
        DataError::Io { path: path.to_path_buf(), source }
    }
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic (`1f 8b`), whatever its
/// name.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let (mut reader, gz) = open(path)?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).map_err(|e| read_error(path, gz, e))?;
    Ok(out)
}

/// Streams a file's content (gunzipped as [`read_maybe_gz`] does) into `sink`, without holding
/// it in memory.
pub fn stream_maybe_gz(path: &Path, mut sink: impl FnMut(&[u8])) -> Result<(), DataError> {
    let (mut reader, gz) = open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => sink(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(path, gz, e)),
        }
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn check_magic(path: &Path, bytes: &[u8], what: &'static str, dims: u8, header_len: usize) -> Result<(), DataError> {
    let bad = |problem: String| DataError::BadHeader { path: path.to_path_buf(), what, problem };
    let expected = format!("0x000008{dims:02x}");
    if bytes.len() < 4 {
        return Err(bad(format!(
            "the file has only {} bytes; expected the magic number {expected} followed by the \
             header",
            bytes.len()
        )));
    }
    let magic = be_u32(bytes, 0);
    if magic != 0x0800 | u32::from(dims) {
        let hint = match magic {
            0x0000_0803 => " (this is an images file)",
            0x0000_0801 => " (this is a labels file)",
            _ => "",
        };
        return Err(bad(format!(
            "magic number is 0x{magic:08x}{hint}, expected {expected} (unsigned bytes, {dims} \
             dimension{})",
            if dims == 1 { "" } else { "s" }
        )));
    }
    if bytes.len() < header_len {
        return Err(bad(format!("the header needs {header_len} bytes but the file has only {}", bytes.len())));
    }
    Ok(())
}

/// An IDX file's layout: what it holds, its header length and the header's sizes.
struct Layout {
    what: &'static str,
    dims: u8,
}

const IMAGES: Layout = Layout { what: "images", dims: 3 };
const LABELS: Layout = Layout { what: "labels", dims: 1 };

impl Layout {
    fn header_len(&self) -> usize {
        4 + 4 * usize::from(self.dims)
    }

    /// Checks the header at the start of `bytes`; returns its sizes and the data length they
    /// imply (which cannot overflow: three `u32` sizes are multiplied in `u128`).
    fn sizes(&self, path: &Path, bytes: &[u8]) -> Result<(Vec<u64>, u128), DataError> {
        check_magic(path, bytes, self.what, self.dims, self.header_len())?;
        let sizes: Vec<u64> = (0..usize::from(self.dims)).map(|i| u64::from(be_u32(bytes, 4 + 4 * i))).collect();
        Ok((sizes.clone(), sizes.iter().map(|&s| u128::from(s)).product()))
    }

    fn length_error(&self, path: &Path, sizes: &[u64], expected: u128, found: u64) -> DataError {
        let header = match sizes {
            [n, rows, cols] => format!("{n} images of {rows}x{cols}"),
            [n] => format!("{n} labels"),
            _ => format!("{sizes:?}"),
        };
        DataError::Length {
            path: path.to_path_buf(),
            what: self.what,
            header,
            expected: u64::try_from(expected).unwrap_or(u64::MAX),
            found,
        }
    }

    /// Parses an IDX file held in memory: `(sizes, data)`.
    fn parse(&self, path: &Path, mut bytes: Vec<u8>) -> Result<(Vec<u64>, Vec<u8>), DataError> {
        let (sizes, expected) = self.sizes(path, &bytes)?;
        let found = (bytes.len() - self.header_len()) as u64;
        if expected != u128::from(found) {
            return Err(self.length_error(path, &sizes, expected, found));
        }
        bytes.drain(..self.header_len());
        Ok((sizes, bytes))
    }

    /// Reads an IDX file header first, then exactly the data its header announces (one byte
    /// more, to detect trailing bytes): a header that claims terabytes, or a gzip stream that
    /// inflates forever, costs no more memory than the file really holds up to that size.
    fn read(&self, path: &Path) -> Result<(Vec<u64>, Vec<u8>), DataError> {
        let (mut reader, gz) = open(path)?;
        let mut header = Vec::with_capacity(self.header_len());
        (&mut reader).take(self.header_len() as u64).read_to_end(&mut header).map_err(|e| read_error(path, gz, e))?;
        let (sizes, expected) = self.sizes(path, &header)?;
        // More than any file could hold is reported without reading on.
        let Ok(expected) = u64::try_from(expected) else {
            return Err(self.length_error(path, &sizes, expected, 0));
        };
        let mut data = Vec::new();
        reader.take(expected.saturating_add(1)).read_to_end(&mut data).map_err(|e| read_error(path, gz, e))?;
        if data.len() as u64 != expected {
            return Err(self.length_error(path, &sizes, u128::from(expected), data.len() as u64));
        }
        Ok((sizes, data))
    }
}

/// `(count, rows, cols)` of images sizes, which fit `usize` once the data was read or held.
fn image_dims(sizes: &[u64]) -> (usize, usize, usize) {
    (sizes[0] as usize, sizes[1] as usize, sizes[2] as usize)
}

/// Parses an images file held in memory: returns `(count, rows, cols, pixels)`.
pub fn parse_images(path: &Path, bytes: Vec<u8>) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let (sizes, pixels) = IMAGES.parse(path, bytes)?;
    let (n, rows, cols) = image_dims(&sizes);
    Ok((n, rows, cols, pixels))
}

/// Parses a labels file held in memory.
pub fn parse_labels(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, DataError> {
    Ok(LABELS.parse(path, bytes)?.1)
}

/// Reads an images file (raw or gzip): `(count, rows, cols, pixels)`, reading no more than its
/// header announces.
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let (sizes, pixels) = IMAGES.read(path)?;
    let (n, rows, cols) = image_dims(&sizes);
    Ok((n, rows, cols, pixels))
}

/// Reads a labels file (raw or gzip), reading no more than its header announces.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    Ok(LABELS.read(path)?.1)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn gzip_is_detected_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let payload: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&payload).unwrap();
        let gz = enc.finish().unwrap();
        let named_raw = dir.path().join("raw-name");
        std::fs::write(&named_raw, &gz).unwrap();
        assert_eq!(read_maybe_gz(&named_raw).unwrap(), payload);
        let named_gz = dir.path().join("x.gz");
        std::fs::write(&named_gz, &payload).unwrap();
        assert_eq!(read_maybe_gz(&named_gz).unwrap(), payload);
        std::fs::write(&named_gz, &gz[..gz.len() - 9]).unwrap();
        assert!(matches!(read_maybe_gz(&named_gz), Err(DataError::Gzip { .. })));
    }

    #[test]
    fn header_checks() {
        let p = Path::new("f");
        let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 2, 3, 4];
        assert_eq!(parse_labels(p, labels.clone()).unwrap(), vec![3, 4]);
        labels.push(5);
        assert!(matches!(parse_labels(p, labels), Err(DataError::Length { expected: 2, found: 3, .. })));
        let images = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4];
        let (n, h, w, px) = parse_images(p, images).unwrap();
        assert_eq!((n, h, w, px), (1, 2, 2, vec![1, 2, 3, 4]));
        assert!(matches!(parse_images(p, vec![0, 0, 9, 3]), Err(DataError::BadHeader { .. })));
    }

    #[test]
    fn reading_stops_where_the_header_says() {
        let dir = tempfile::tempdir().unwrap();
        let header = |n: u32, rows: u32, cols: u32| {
            let mut b = vec![0, 0, 8, 3];
            for v in [n, rows, cols] {
                b.extend_from_slice(&v.to_be_bytes());
            }
            b
        };
        // One 2x2 image followed by 8 MB of zeros, gzipped: an error after 5 data bytes.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&header(1, 2, 2)).unwrap();
        enc.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = dir.path().join("bomb.gz");
        std::fs::write(&bomb, enc.finish().unwrap()).unwrap();
        assert!(matches!(read_images(&bomb), Err(DataError::Length { expected: 4, found: 5, .. })));
        // Headers whose sizes multiply beyond u64, or claim 2^31 images: no read, no overflow.
        let huge = dir.path().join("huge");
        std::fs::write(&huge, header(u32::MAX, u32::MAX, u32::MAX)).unwrap();
        let err = read_images(&huge).unwrap_err();
        assert!(matches!(err, DataError::Length { expected: u64::MAX, found: 0, .. }), "{err}");
        std::fs::write(&huge, header(1 << 31, 28, 28)).unwrap();
        assert!(matches!(read_images(&huge), Err(DataError::Length { found: 0, .. })));
        assert!(matches!(parse_images(&huge, header(u32::MAX, u32::MAX, u32::MAX)), Err(DataError::Length { .. })));
        // A header cut short.
        std::fs::write(&huge, &header(1, 2, 2)[..10]).unwrap();
        assert!(matches!(read_images(&huge), Err(DataError::BadHeader { .. })));
    }
}
