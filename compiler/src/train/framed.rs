//! The container of mnistc's training files, checkpoints (`MNISTCKP`) and saved training states
//! (`MNISTCRS`): all integers little-endian,
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic |
//! | 4 | `u32` format version |
//! | 8 | `u64` length `H` of the header |
//! | `H` | header, UTF-8 JSON |
//! | … | payload (what the header describes) |
//! | 32 | SHA-256 of everything before |

use std::path::Path;

use super::checkpoint::CheckpointError;

const PREFIX: usize = 8 + 4 + 8;
const DIGEST: usize = 32;

/// The SHA-256 of `bytes`.
pub(super) fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).to_vec()
}

/// A file's bytes: `magic`, `version`, the JSON `header`, then what `payload` appends, then the
/// checksum.
pub(super) fn frame(magic: &[u8; 8], version: u32, header: &[u8], payload: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX + header.len() + DIGEST);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header);
    payload(&mut out);
    let digest = sha256(&out);
    out.extend_from_slice(&digest);
    out
}

/// The header and payload of a file's `bytes`, after checking its magic (`what` names such a
/// file in the error), `version` and checksum; `path` only names the source in errors.
///
/// # Errors
/// [`CheckpointError::Format`] saying which check failed.
pub(super) fn unframe<'b>(
    bytes: &'b [u8],
    magic: &[u8; 8],
    version: u32,
    what: &str,
    path: &Path,
) -> Result<(&'b [u8], &'b [u8]), CheckpointError> {
    let bad = |problem: String| CheckpointError::Format { path: path.to_path_buf(), problem };
    if bytes.len() < PREFIX + DIGEST || &bytes[..8] != magic {
        return Err(bad(format!("missing the {} magic (not {what})", String::from_utf8_lossy(magic))));
    }
    let found = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if found != version {
        return Err(bad(format!("format version {found}; this mnistc reads version {version}")));
    }
    let (body, digest) = bytes.split_at(bytes.len() - DIGEST);
    if sha256(body) != digest {
        return Err(bad("checksum mismatch (the file is truncated or corrupt)".into()));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[12..20]);
    let header_len = usize::try_from(u64::from_le_bytes(len8))
        .ok()
        .filter(|&n| n <= body.len() - PREFIX)
        .ok_or_else(|| bad("header length exceeds the file".into()))?;
    Ok(body[PREFIX..].split_at(header_len))
}
