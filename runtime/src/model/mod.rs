//! [`Model::from_bytes`]: validate a blob once, so that running it cannot fail or panic.
//!
//! Everything a kernel relies on is checked here (TFLite Micro's "prepare" phase): header and
//! section bounds, checksum, every enum code, every shape and its arithmetic, that each op's input
//! is the previous op's output, weight/bias/multiplier regions and their exact lengths and
//! alignment, arena regions, zero points, multipliers, and that no int8 accumulator can overflow.
//! The result holds typed, zero-copy views of the blob in a fixed-capacity `heapless::Vec`.
//!
//! The checks live in three private modules:
//! - `header`: the header, section bounds, checksum and metadata;
//! - `validate`: each plan record, one function per op kind (conv2d, pools, dense);
//! - `checks`: the field checks those share (unused fields, geometry, weight regions, int8
//!   requantization and accumulator bounds).

mod checks;
mod header;
mod validate;

use half::f16;

use crate::error::{LoadError, Problem};
use crate::format::{BLOB_ALIGN, Header, MAX_OPS, Meta, OpRecord, Precision, str_from_fixed};
use crate::kernels::params::{AvgRequant, ConvF, ConvS8, DenseF, DenseS8, PoolGeometry, Shape};
use validate::{Chain, Ctx};

/// A byte range of the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    /// First byte.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Region {
    /// One past the last byte.
    pub const fn end(&self) -> usize {
        self.offset + self.len
    }
    /// Whether both regions are non-empty and share a byte.
    fn overlaps(&self, other: &Region) -> bool {
        self.len > 0 && other.len > 0 && self.offset < other.end() && other.offset < self.end()
    }
}

/// A validated op, ready for its kernel.
#[derive(Debug, Clone, Copy)]
pub enum Kernel<'a> {
    /// f32 convolution.
    ConvF32(ConvF<'a, f32>),
    /// f16-weight convolution.
    ConvF16(ConvF<'a, f16>),
    /// f32 dense.
    DenseF32(DenseF<'a, f32>),
    /// f16-weight dense.
    DenseF16(DenseF<'a, f16>),
    /// f32 max pool.
    MaxPoolF32(PoolGeometry),
    /// f32 average pool.
    AvgPoolF32(PoolGeometry),
    /// int8 convolution.
    ConvS8(ConvS8<'a>),
    /// int8 dense.
    DenseS8(DenseS8<'a>),
    /// int8 max pool.
    MaxPoolS8(PoolGeometry),
    /// int8 average pool.
    AvgPoolS8(PoolGeometry, AvgRequant),
}

/// One validated op of the plan.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// What to compute, with its weights.
    pub kernel: Kernel<'a>,
    /// Arena bytes of the input.
    pub input: Region,
    /// Arena bytes of the output.
    pub output: Region,
    /// Arena bytes of the scratch buffer.
    pub scratch: Region,
    /// The plan record this op was built from.
    pub record: &'a OpRecord,
}

/// A validated model blob, borrowed zero-copy.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    bytes: &'a [u8],
    header: Header,
    meta: &'a Meta,
    precision: Precision,
    ops: heapless::Vec<Op<'a>, MAX_OPS>,
}

/// The f32 bits of the input scale every blob uses (1/255).
pub const INPUT_SCALE_BITS: u32 = (1.0f32 / 255.0).to_bits();

impl<'a> Model<'a> {
    /// Validates `bytes` (see the module docs) and returns the model.
    ///
    /// # Errors
    /// A [`LoadError`] saying what is wrong and where (section, op index, field).
    // Never inlined: its frame (the ops being validated) is gone before the first inference
    // instead of staying in the caller's frame under every inference (firmware stack).
    #[inline(never)]
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, LoadError> {
        let header = header::read_header(bytes)?;
        let total = header.total_len as usize;
        let bytes = &bytes[..total];
        let (meta_range, plan_range, weights_range) = header::sections(&header)?;
        let meta: &Meta = bytemuck::try_from_bytes(&bytes[meta_range.0..meta_range.1])
            .map_err(|_| LoadError::Misaligned { required: BLOB_ALIGN })?;
        let records: &[OpRecord] = bytemuck::try_cast_slice(&bytes[plan_range.0..plan_range.1])
            .map_err(|_| LoadError::Misaligned { required: BLOB_ALIGN })?;
        let precision = header::validate_meta(meta)?;
        let weights = &bytes[weights_range.0..weights_range.1];

        let mut chain = Chain {
            shape: Shape::new(meta.input_h as usize, meta.input_w as usize, meta.input_c as usize),
            offset: None,
            zero_point: meta.input_zero_point,
        };
        let ctx = Ctx { precision, weights, arena: header.arena_size as usize };
        let mut ops = heapless::Vec::new();
        for (i, record) in records.iter().enumerate() {
            let op = validate::validate_op(&ctx, i as u16, record, &mut chain)?;
            ops.push(op).map_err(|_| LoadError::Header { field: "op_count", problem: Problem::OutOfRange })?;
        }
        let last = (records.len() - 1) as u16;
        if chain.shape.len() != meta.class_count as usize {
            return Err(LoadError::Op { index: last, field: "out_c", problem: Problem::Mismatch });
        }
        if precision == Precision::Int8 && chain.zero_point != meta.output_zero_point {
            return Err(LoadError::Meta { field: "output_zero_point", problem: Problem::Mismatch });
        }
        Ok(Model { bytes, header, meta, precision, ops })
    }

    /// Arena bytes [`Model::run`] needs.
    pub fn arena_size(&self) -> usize {
        self.header.arena_size as usize
    }
    /// Input shape (height, width, channels).
    pub fn input_shape(&self) -> Shape {
        Shape::new(self.meta.input_h as usize, self.meta.input_w as usize, self.meta.input_c as usize)
    }
    /// Input elements (`h · w · c`).
    pub fn input_len(&self) -> usize {
        self.input_shape().len()
    }
    /// Number of logits (classes).
    pub fn output_len(&self) -> usize {
        self.meta.class_count as usize
    }
    /// Numeric precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }
    /// Model name.
    pub fn name(&self) -> &'a str {
        str_from_fixed(&self.meta.name)
    }
    /// Data set the model was trained on (`mnist`, `fashion-mnist`).
    pub fn dataset(&self) -> &'a str {
        str_from_fixed(&self.meta.dataset)
    }
    /// Name of class `i` (`""` past the last class).
    pub fn class_name(&self, i: usize) -> &'a str {
        match self.meta.class_names.get(i) {
            Some(name) if i < self.output_len() => str_from_fixed(name),
            _ => "",
        }
    }
    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The metadata.
    pub fn meta(&self) -> &'a Meta {
        self.meta
    }
    /// The validated ops, in execution order.
    pub fn ops(&self) -> &[Op<'a>] {
        &self.ops
    }
    /// The blob.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}
