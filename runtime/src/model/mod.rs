//! [`Model::from_bytes`]: validate a blob once, so that running it cannot fail or panic.
//!
//! Everything a kernel relies on is checked here (TFLite Micro's "prepare" phase): header and
//! section bounds, checksum, every enum code, every shape and its arithmetic, that each op's input
//! (and an add's second operand) is the model input or an earlier op's output that nothing has
//! overwritten since, weight/bias/multiplier regions and their exact lengths and alignment, arena
//! regions, zero points, multipliers and scales, and that no int8 accumulator can overflow.
//! The result borrows the blob and holds no copy of its plan: [`Model::ops`] decodes each op from
//! its plan record when it is needed, with the same function that validated it (a few hundred
//! instructions an op), so a `Model` is about 100 bytes and loading needs one op on the stack at a
//! time, not the whole plan (the firmware's stack is what this saves). An op's sources are found
//! the same way, by scanning the records before it (at most [`MAX_OPS`](crate::format::MAX_OPS)),
//! not from a table of tensors.
//!
//! The checks live in three private modules:
//! - `header`: the header, section bounds, checksum and metadata;
//! - `validate`: each plan record, one function per op kind (conv2d, depthwise conv2d, pools,
//!   dense, add), and where its operands come from;
//! - `checks`: the field checks those share (unused fields, geometry, weight regions, int8
//!   requantization and accumulator bounds).

mod checks;
mod header;
mod validate;

use half::f16;

use crate::error::{LoadError, Problem};
use crate::format::{BLOB_ALIGN, Header, Meta, OpRecord, Precision, str_from_fixed};
use crate::kernels::params::{
    AddF, AddS8, AvgRequant, ConvF, ConvS8, DenseF, DenseS8, DepthwiseF, DepthwiseS8, PoolGeometry, Shape,
};
use validate::Ctx;

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
    /// f32 depthwise convolution.
    DepthwiseF32(DepthwiseF<'a, f32>),
    /// f16-weight depthwise convolution.
    DepthwiseF16(DepthwiseF<'a, f16>),
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
    /// int8 depthwise convolution.
    DepthwiseS8(DepthwiseS8<'a>),
    /// int8 dense.
    DenseS8(DenseS8<'a>),
    /// int8 max pool.
    MaxPoolS8(PoolGeometry),
    /// int8 average pool.
    AvgPoolS8(PoolGeometry, AvgRequant),
    /// int8 element-wise add.
    AddS8(AddS8),
    /// f32 element-wise add.
    AddF32(AddF),
}

/// One validated op of the plan.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// What to compute, with its weights.
    pub kernel: Kernel<'a>,
    /// Arena bytes of the input (an add's first operand).
    pub input: Region,
    /// Arena bytes of an add's second operand (may be [`Op::input`] itself, as in `x + x`);
    /// empty (offset and length 0) for every other op.
    pub input2: Region,
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
    /// The plan section (validated).
    records: &'a [OpRecord],
    /// The weights section.
    weights: &'a [u8],
}

/// The ops of a [`Model`] in execution order, each decoded from its plan record by the function
/// that validated it at load.
///
/// Every op of a loaded model decodes again (the blob is borrowed immutably), so the iterator
/// yields exactly [`Model::op_count`] ops; should one ever fail, it ends there instead.
#[derive(Debug, Clone)]
pub struct Ops<'a> {
    ctx: Ctx<'a>,
    next: usize,
}

impl<'a> Ops<'a> {
    /// The next op, or the error that stops it (`None` after the last op or an error).
    pub(crate) fn try_next(&mut self) -> Option<Result<Op<'a>, LoadError>> {
        let record = self.ctx.records.get(self.next)?;
        // Built where it is returned (no copy of the op through this frame: firmware stack).
        let op = Some(validate::validate_op(&self.ctx, self.next as u16, record));
        self.next = if matches!(op, Some(Ok(_))) { self.next + 1 } else { self.ctx.records.len() };
        op
    }
}

impl<'a> Iterator for Ops<'a> {
    type Item = Op<'a>;

    fn next(&mut self) -> Option<Op<'a>> {
        self.try_next()?.ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.ctx.records.len().saturating_sub(self.next)))
    }
}

impl core::iter::FusedIterator for Ops<'_> {}

/// The f32 bits of the input scale of every blob that takes pixels (1/255).
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
        // `read_header` and `sections` checked every range below against the blob's length;
        // `get` instead of indexing keeps that knowledge from being a panic path (the compiler
        // cannot see it when the blob's length is not a constant, as behind the C API).
        let truncated = LoadError::Truncated { needed: total, got: bytes.len() };
        let bytes = bytes.get(..total).ok_or(truncated)?;
        let (meta_range, plan_range, weights_range) = header::sections(&header)?;
        let section = |(start, end): (usize, usize)| bytes.get(start..end).ok_or(truncated);
        let meta: &Meta = bytemuck::try_from_bytes(section(meta_range)?)
            .map_err(|_| LoadError::Misaligned { required: BLOB_ALIGN })?;
        let records: &[OpRecord] = bytemuck::try_cast_slice(section(plan_range)?)
            .map_err(|_| LoadError::Misaligned { required: BLOB_ALIGN })?;
        let precision = header::validate_meta(meta)?;
        let weights = section(weights_range)?;

        let model = Model { bytes, header, meta, precision, records, weights };
        // Every op in turn, each checked against the ops before it; one op at a time.
        let mut ops = model.ops();
        while let Some(op) = ops.try_next() {
            op?;
        }
        // The last op's output holds the logits (`read_header` checked that there is one op).
        let index = records.len().saturating_sub(1) as u16;
        let op_count = LoadError::Header { field: "op_count", problem: Problem::OutOfRange };
        let last = records.last().ok_or(op_count)?;
        let logits = Shape::new(last.out_h as usize, last.out_w as usize, last.out_c as usize);
        if logits.len() != meta.class_count as usize {
            return Err(LoadError::Op { index, field: "out_c", problem: Problem::Mismatch });
        }
        if precision == Precision::Int8 && last.output_zero_point != meta.output_zero_point {
            return Err(LoadError::Meta { field: "output_zero_point", problem: Problem::Mismatch });
        }
        Ok(model)
    }

    /// The validated ops, in execution order (see [`Ops`]).
    pub fn ops(&self) -> Ops<'a> {
        Ops {
            ctx: Ctx {
                precision: self.precision,
                weights: self.weights,
                arena: self.header.arena_size as usize,
                records: self.records,
                input: self.input_shape(),
                input_zero_point: self.meta.input_zero_point,
            },
            next: 0,
        }
    }

    /// Number of ops (at least 1, at most [`MAX_OPS`](crate::format::MAX_OPS)).
    pub fn op_count(&self) -> usize {
        self.records.len()
    }

    /// Whether the model takes pixels ([`crate::Input::Pixels`], [`crate::Input::F32`]): every
    /// float model, and int8 models whose input is `pixel − 128` (scale 1/255, zero point −128:
    /// mnistc's own, and imported image models quantized that way). Other imported int8 models
    /// (audio features, say) take [`crate::Input::I8`] only.
    pub fn takes_pixels(&self) -> bool {
        self.precision != Precision::Int8
            || (self.meta.input_scale.to_bits() == INPUT_SCALE_BITS && self.meta.input_zero_point == -128)
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
    /// The blob.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A one-line summary for defmt logs: `digits (mnist, int8): 28x28x1 -> 10 classes, 3 ops,
/// arena 8420 B`.
#[cfg(feature = "defmt")]
impl defmt::Format for Model<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        let shape = self.input_shape();
        defmt::write!(
            f,
            "{=str} ({=str}, {=str}): {=usize}x{=usize}x{=usize} -> {=usize} classes, {=usize} ops, arena {=usize} B",
            self.name(),
            self.dataset(),
            self.precision.name(),
            shape.h,
            shape.w,
            shape.c,
            self.output_len(),
            self.op_count(),
            self.arena_size()
        );
    }
}

#[cfg(test)]
mod tests;
