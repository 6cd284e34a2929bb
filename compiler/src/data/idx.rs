//! IDX file reading (the MNIST format), raw or gzip-compressed.
//!
//! Format: a 4-byte big-endian magic `0x0000TTDD` (TT = element type, 0x08 = unsigned byte;
//! DD = number of dimensions), then DD big-endian `u32` sizes, then the elements. Images files
//! are `0x00000803` (count, rows, columns), labels files `0x00000801` (count).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::error::DataError;

/// Reads a whole file, gunzipping it when it starts with the gzip magic (`1f 8b`), whatever its
/// name.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io { path: path.to_path_buf(), source };
    let mut raw = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut raw)).map_err(io)?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::with_capacity(raw.len() * 4);
        MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip { path: path.to_path_buf(), source })?;
        Ok(out)
    } else {
        Ok(raw)
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

/// Parses an images file: returns `(count, rows, cols, pixels)`.
pub fn parse_images(path: &Path, bytes: Vec<u8>) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    check_magic(path, &bytes, "images", 3, 16)?;
    let n = be_u32(&bytes, 4) as u64;
    let rows = be_u32(&bytes, 8) as u64;
    let cols = be_u32(&bytes, 12) as u64;
    let expected = n * rows * cols;
    let found = (bytes.len() - 16) as u64;
    if expected != found {
        return Err(DataError::Length {
            path: path.to_path_buf(),
            what: "images",
            header: format!("{n} images of {rows}x{cols}"),
            expected,
            found,
        });
    }
    let mut pixels = bytes;
    pixels.drain(..16);
    Ok((n as usize, rows as usize, cols as usize, pixels))
}

/// Parses a labels file.
pub fn parse_labels(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, DataError> {
    check_magic(path, &bytes, "labels", 1, 8)?;
    let n = be_u32(&bytes, 4) as u64;
    let found = (bytes.len() - 8) as u64;
    if n != found {
        return Err(DataError::Length {
            path: path.to_path_buf(),
            what: "labels",
            header: format!("{n} labels"),
            expected: n,
            found,
        });
    }
    let mut labels = bytes;
    labels.drain(..8);
    Ok(labels)
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
}
