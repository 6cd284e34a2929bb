//! The checks before the plan: header, section bounds and checksum, and the metadata.

use super::INPUT_SCALE_BITS;
use crate::error::{LoadError, Problem};
use crate::format::{
    BLOB_ALIGN, CHECKSUM_START, FORMAT_VERSION, Header, MAGIC, MAX_CLASSES, MAX_OPS, Meta, OpRecord, Precision,
    SECTION_ALIGN, crc32,
};
use crate::quant;

/// Reads and checks the header of `bytes` (length, alignment, magic, version, checksum, fields).
pub(super) fn read_header(bytes: &[u8]) -> Result<Header, LoadError> {
    if bytes.len() < Header::SIZE {
        return Err(LoadError::Truncated { needed: Header::SIZE, got: bytes.len() });
    }
    if !(bytes.as_ptr() as usize).is_multiple_of(BLOB_ALIGN) {
        return Err(LoadError::Misaligned { required: BLOB_ALIGN });
    }
    let header: Header = bytemuck::pod_read_unaligned(&bytes[..Header::SIZE]);
    if header.magic != MAGIC {
        return Err(LoadError::BadMagic);
    }
    if header.version != FORMAT_VERSION {
        return Err(LoadError::UnsupportedVersion { found: header.version, supported: FORMAT_VERSION });
    }
    let total = header.total_len as usize;
    if total > bytes.len() {
        return Err(LoadError::Truncated { needed: total, got: bytes.len() });
    }
    if total != bytes.len() {
        return Err(LoadError::LengthMismatch { declared: header.total_len, actual: bytes.len() });
    }
    if total < Header::SIZE {
        return Err(LoadError::Header { field: "total_len", problem: Problem::OutOfRange });
    }
    let computed = crc32(&bytes[CHECKSUM_START..total]);
    if computed != header.checksum {
        return Err(LoadError::ChecksumMismatch { stored: header.checksum, computed });
    }
    let field = |field, problem| Err(LoadError::Header { field, problem });
    if header.header_len as usize != Header::SIZE {
        return field("header_len", Problem::Mismatch);
    }
    if header.op_record_len as usize != OpRecord::SIZE {
        return field("op_record_len", Problem::Mismatch);
    }
    if header.flags != 0 {
        return field("flags", Problem::Unknown);
    }
    if header.reserved != [0; 4] {
        return field("reserved", Problem::Unknown);
    }
    if header.arena_size == 0 {
        return field("arena_size", Problem::OutOfRange);
    }
    Ok(header)
}

/// A byte range `(start, end)` of the blob.
type Range = (usize, usize);

/// Section ranges, each 16-aligned, in order, inside the blob; weights end the blob.
pub(super) fn sections(h: &Header) -> Result<(Range, Range, Range), LoadError> {
    let total = h.total_len as usize;
    let section = |field: &'static str, offset: u32, len: usize, after: usize| -> Result<Range, LoadError> {
        let offset = offset as usize;
        let err = |problem| LoadError::Header { field, problem };
        if !offset.is_multiple_of(SECTION_ALIGN) {
            return Err(err(Problem::Misaligned));
        }
        if offset < after {
            return Err(err(Problem::Overlap));
        }
        let end = offset.checked_add(len).ok_or(err(Problem::Overflow))?;
        if end > total {
            return Err(err(Problem::OutOfBounds));
        }
        Ok((offset, end))
    };
    if h.meta_len as usize != Meta::SIZE {
        return Err(LoadError::Header { field: "meta_len", problem: Problem::Mismatch });
    }
    let meta = section("meta_offset", h.meta_offset, Meta::SIZE, Header::SIZE)?;
    let op_count = h.op_count as usize;
    if op_count == 0 || op_count > MAX_OPS {
        return Err(LoadError::Header { field: "op_count", problem: Problem::OutOfRange });
    }
    let plan = section("plan_offset", h.plan_offset, op_count * OpRecord::SIZE, meta.1)?;
    let weights = section("weights_offset", h.weights_offset, h.weights_len as usize, plan.1)?;
    if weights.1 != total {
        return Err(LoadError::Header { field: "weights_len", problem: Problem::Mismatch });
    }
    Ok((meta, plan, weights))
}

/// Checks the metadata and returns the blob's precision.
pub(super) fn validate_meta(m: &Meta) -> Result<Precision, LoadError> {
    let err = |field, problem| LoadError::Meta { field, problem };
    let precision = Precision::from_u8(m.precision).ok_or(err("precision", Problem::Unknown))?;
    if precision != Precision::Int8 && !cfg!(feature = "float") {
        return Err(err("precision", Problem::NotCompiledIn));
    }
    if m.class_count == 0 || m.class_count as usize > MAX_CLASSES {
        return Err(err("class_count", Problem::OutOfRange));
    }
    for (field, dim) in [("input_h", m.input_h), ("input_w", m.input_w), ("input_c", m.input_c)] {
        if dim == 0 {
            return Err(err(field, Problem::OutOfRange));
        }
    }
    if m.reserved0 != [0; 2] || m.reserved1 != 0 || m.reserved != [0; 5] {
        return Err(err("reserved", Problem::Unknown));
    }
    utf8(&m.name).map_err(|p| err("name", p))?;
    utf8(&m.dataset).map_err(|p| err("dataset", p))?;
    for (i, name) in m.class_names.iter().enumerate() {
        if i < m.class_count as usize {
            utf8(name).map_err(|p| err("class_names", p))?;
        } else if name.iter().any(|&b| b != 0) {
            return Err(err("class_names", Problem::Unknown));
        }
    }
    match precision {
        // mnistc's own blobs take `pixel − 128` (scale 1/255, zero point −128); an imported
        // model keeps its input quantization (any positive scale, an int8 zero point) and then
        // runs on int8 input only (`Model::takes_pixels`).
        Precision::Int8 => {
            if !quant::per_channel_multiplier_is_valid(m.input_scale.to_bits()) {
                return Err(err("input_scale", Problem::OutOfRange));
            }
            if !(-128..=127).contains(&m.input_zero_point) {
                return Err(err("input_zero_point", Problem::OutOfRange));
            }
            if !quant::per_channel_multiplier_is_valid(m.output_scale.to_bits()) {
                return Err(err("output_scale", Problem::OutOfRange));
            }
            if !(-128..=127).contains(&m.output_zero_point) {
                return Err(err("output_zero_point", Problem::OutOfRange));
            }
        }
        Precision::F32 | Precision::F16 => {
            if m.input_scale.to_bits() != INPUT_SCALE_BITS {
                return Err(err("input_scale", Problem::OutOfRange));
            }
            if m.input_zero_point != 0 {
                return Err(err("input_zero_point", Problem::OutOfRange));
            }
            if m.output_scale != 1.0 {
                return Err(err("output_scale", Problem::OutOfRange));
            }
            if m.output_zero_point != 0 {
                return Err(err("output_zero_point", Problem::OutOfRange));
            }
        }
    }
    Ok(precision)
}

/// Checks a NUL-padded text field: UTF-8 up to the first NUL, only NULs after it.
fn utf8(bytes: &[u8]) -> Result<(), Problem> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    if bytes[end..].iter().any(|&b| b != 0) {
        return Err(Problem::Unknown);
    }
    core::str::from_utf8(&bytes[..end]).map(|_| ()).map_err(|_| Problem::NotUtf8)
}
