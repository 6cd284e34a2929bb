//! Errors of loading ([`LoadError`]) and running ([`RunError`]) a model.

use core::fmt;

use crate::kernels::params::ParamError;

/// What is wrong with a value that [`LoadError`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Problem {
    /// Not one of the values this version knows (an enum code, a reserved bit or field).
    Unknown,
    /// Outside the allowed range (zero size, zero point outside int8, bad multiplier, ...).
    OutOfRange,
    /// Size arithmetic overflows.
    Overflow,
    /// A region reaches past the end of its section or of the arena.
    OutOfBounds,
    /// An offset is not a multiple of the element's alignment.
    Misaligned,
    /// Two regions that must be disjoint overlap (or an op reads a tensor that an op since its
    /// producer has written over).
    Overlap,
    /// Disagrees with the value that the geometry or the tensor the op reads implies (or, for an
    /// input offset, names no tensor: neither an earlier op's output nor the model input).
    Mismatch,
    /// The worst-case accumulator (or its scaled value, or an int8 add's requantized sum) could
    /// overflow the integer arithmetic.
    AccumulatorOverflow,
    /// Text that is not UTF-8.
    NotUtf8,
    /// Valid, but this build of the runtime leaves out what it needs (a float model without the
    /// `float` feature, a depthwise convolution without `depthwise`).
    NotCompiledIn,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Problem::Unknown => "unknown value",
            Problem::OutOfRange => "out of range",
            Problem::Overflow => "size arithmetic overflows",
            Problem::OutOfBounds => "out of bounds",
            Problem::Misaligned => "misaligned",
            Problem::Overlap => "overlaps another region",
            Problem::Mismatch => "does not match the shapes it must agree with",
            Problem::AccumulatorOverflow => "worst-case accumulator overflows the integer arithmetic",
            Problem::NotUtf8 => "not UTF-8",
            Problem::NotCompiledIn => {
                "needs a runtime feature this build leaves out (`float` for f32 and f16 models, \
                 `depthwise` for depthwise convolutions)"
            }
        })
    }
}

/// Why [`crate::Model::from_bytes`] rejected a blob: what was wrong and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LoadError {
    /// The blob is shorter than its header or its declared length.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The blob's first byte is not at a multiple of [`crate::format::BLOB_ALIGN`].
    Misaligned {
        /// Required alignment in bytes.
        required: usize,
    },
    /// The blob does not start with [`crate::format::MAGIC`].
    BadMagic,
    /// The blob's format version is not the one this runtime reads.
    UnsupportedVersion {
        /// Version in the blob.
        found: u16,
        /// Version this runtime reads.
        supported: u16,
    },
    /// `total_len` differs from the number of bytes given.
    LengthMismatch {
        /// Length the header declares.
        declared: u32,
        /// Bytes given.
        actual: usize,
    },
    /// The CRC-32 does not match the contents (the blob is corrupt).
    ChecksumMismatch {
        /// Checksum stored in the header.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
    /// A header field is invalid.
    Header {
        /// Field name, as in [`crate::format::Header`].
        field: &'static str,
        /// What is wrong with it.
        problem: Problem,
    },
    /// A metadata field is invalid.
    Meta {
        /// Field name, as in [`crate::format::Meta`].
        field: &'static str,
        /// What is wrong with it.
        problem: Problem,
    },
    /// A field of plan record `index` is invalid.
    Op {
        /// Index of the op in the plan.
        index: u16,
        /// Field name, as in [`crate::format::OpRecord`].
        field: &'static str,
        /// What is wrong with it.
        problem: Problem,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LoadError::Truncated { needed, got } => {
                write!(f, "blob truncated: needs {needed} bytes, got {got}")
            }
            LoadError::Misaligned { required } => {
                write!(f, "blob must start at an address that is a multiple of {required}")
            }
            LoadError::BadMagic => f.write_str("not an mnistc blob (bad magic)"),
            LoadError::UnsupportedVersion { found, supported } => {
                write!(f, "blob format version {found} is not supported (this runtime reads {supported})")
            }
            LoadError::LengthMismatch { declared, actual } => {
                write!(f, "blob declares {declared} bytes but {actual} were given")
            }
            LoadError::ChecksumMismatch { stored, computed } => {
                write!(f, "blob checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            LoadError::Header { field, problem } => write!(f, "header field `{field}`: {problem}"),
            LoadError::Meta { field, problem } => write!(f, "metadata field `{field}`: {problem}"),
            LoadError::Op { index, field, problem } => write!(f, "op {index}, field `{field}`: {problem}"),
        }
    }
}

impl core::error::Error for LoadError {}

/// Why [`crate::Model::run`] could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RunError {
    /// The input has the wrong number of elements.
    InputLength {
        /// Elements the model takes.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// This kind of input does not fit the model (int8 input to a float model, pixels to an
    /// int8 model whose input is not `pixel − 128`).
    InputKind,
    /// The output buffer has the wrong number of elements.
    OutputLength {
        /// Logits the model produces.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// The arena is smaller than [`crate::Model::arena_size`].
    ArenaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// A float model's arena must start at a multiple of 4 (use [`crate::Aligned`]).
    ArenaMisaligned,
    /// A kernel rejected its arguments (never for a model that loaded: the loader checks more).
    Kernel(ParamError),
    /// An op no longer decodes from its plan record (never: a model borrows its blob immutably,
    /// and every op decoded at load).
    Op(LoadError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RunError::InputLength { expected, got } => {
                write!(f, "input has {got} elements, the model takes {expected}")
            }
            RunError::InputKind => {
                f.write_str("this kind of input does not fit the model (int8 needs an int8 model; pixels need a model that takes pixel - 128)")
            }
            RunError::OutputLength { expected, got } => {
                write!(f, "output has room for {got} logits, the model produces {expected}")
            }
            RunError::ArenaTooSmall { needed, got } => {
                write!(f, "arena has {got} bytes, the model needs {needed}")
            }
            RunError::ArenaMisaligned => f.write_str("arena must start at a multiple of 4 bytes"),
            RunError::Kernel(e) => write!(f, "kernel arguments rejected: {e}"),
            RunError::Op(e) => write!(f, "the blob changed after loading: {e}"),
        }
    }
}

impl core::error::Error for RunError {}
