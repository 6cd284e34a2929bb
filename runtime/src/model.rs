//! [`Model::from_bytes`]: validate a blob once, so that running it cannot fail or panic.
//!
//! Everything a kernel relies on is checked here (TFLite Micro's "prepare" phase): header and
//! section bounds, checksum, every enum code, every shape and its arithmetic, that each op's input
//! is the previous op's output, weight/bias/multiplier regions and their exact lengths and
//! alignment, arena regions, zero points, multipliers, and that no int8 accumulator can overflow.
//! The result holds typed, zero-copy views of the blob in a fixed-capacity `heapless::Vec`.

use bytemuck::Pod;
use half::f16;

use crate::error::{LoadError, Problem};
use crate::format::{
    Activation, CHECKSUM_START, FORMAT_VERSION, FusedPool, Header, MAGIC, MAX_CLASSES, MAX_OPS, Meta, OpKind, OpRecord,
    Precision, Requant, SECTION_ALIGN, TAP_GROUP, crc32, str_from_fixed,
};
use crate::kernels;
use crate::kernels::params::{
    AvgRequant, ConvF, ConvGeometry, ConvS8, DenseF, DenseS8, PoolGeometry, PoolKind, Requantizer, Shape,
};
use crate::quant;

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
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, LoadError> {
        let header = read_header(bytes)?;
        let total = header.total_len as usize;
        let bytes = &bytes[..total];
        let (meta_range, plan_range, weights_range) = sections(&header)?;
        let meta: &Meta = bytemuck::try_from_bytes(&bytes[meta_range.0..meta_range.1])
            .map_err(|_| LoadError::Misaligned { required: crate::format::BLOB_ALIGN })?;
        let records: &[OpRecord] = bytemuck::try_cast_slice(&bytes[plan_range.0..plan_range.1])
            .map_err(|_| LoadError::Misaligned { required: crate::format::BLOB_ALIGN })?;
        let precision = validate_meta(meta)?;
        let weights = &bytes[weights_range.0..weights_range.1];

        let mut chain = Chain {
            shape: Shape::new(meta.input_h as usize, meta.input_w as usize, meta.input_c as usize),
            offset: None,
            zero_point: meta.input_zero_point,
        };
        let ctx = Ctx { precision, weights, arena: header.arena_size as usize };
        let mut ops = heapless::Vec::new();
        for (i, record) in records.iter().enumerate() {
            let op = validate_op(&ctx, i as u16, record, &mut chain)?;
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

fn read_header(bytes: &[u8]) -> Result<Header, LoadError> {
    if bytes.len() < Header::SIZE {
        return Err(LoadError::Truncated { needed: Header::SIZE, got: bytes.len() });
    }
    if !(bytes.as_ptr() as usize).is_multiple_of(crate::format::BLOB_ALIGN) {
        return Err(LoadError::Misaligned { required: crate::format::BLOB_ALIGN });
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

type Range = (usize, usize);

/// Section ranges, each 16-aligned, in order, inside the blob; weights end the blob.
fn sections(h: &Header) -> Result<(Range, Range, Range), LoadError> {
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

fn validate_meta(m: &Meta) -> Result<Precision, LoadError> {
    let err = |field, problem| LoadError::Meta { field, problem };
    let precision = Precision::from_u8(m.precision).ok_or(err("precision", Problem::Unknown))?;
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
    if m.input_scale.to_bits() != INPUT_SCALE_BITS {
        return Err(err("input_scale", Problem::OutOfRange));
    }
    match precision {
        Precision::Int8 => {
            if m.input_zero_point != -128 {
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

fn utf8(bytes: &[u8]) -> Result<(), Problem> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    if bytes[end..].iter().any(|&b| b != 0) {
        return Err(Problem::Unknown);
    }
    core::str::from_utf8(&bytes[..end]).map(|_| ()).map_err(|_| Problem::NotUtf8)
}

/// What the previous op left for the next: its output shape, arena offset and zero point.
struct Chain {
    shape: Shape,
    offset: Option<usize>,
    zero_point: i32,
}

struct Ctx<'a> {
    precision: Precision,
    weights: &'a [u8],
    arena: usize,
}

/// Builds the error for field `field` of op `index`.
struct OpErr(u16);

impl OpErr {
    fn at(&self, field: &'static str, problem: Problem) -> LoadError {
        LoadError::Op { index: self.0, field, problem }
    }
}

const I8_RANGE: core::ops::RangeInclusive<i32> = -128..=127;
/// Largest |requantized accumulator| allowed: keeps `+ zero_point` and the f32 path exact.
const SCALED_LIMIT_LOG2: u32 = 30;

fn validate_op<'a>(ctx: &Ctx<'a>, index: u16, r: &'a OpRecord, chain: &mut Chain) -> Result<Op<'a>, LoadError> {
    let e = OpErr(index);
    let kind = OpKind::from_u8(r.kind).ok_or(e.at("kind", Problem::Unknown))?;
    let activation = Activation::from_u8(r.activation).ok_or(e.at("activation", Problem::Unknown))?;
    let pool = FusedPool::from_u8(r.pool).ok_or(e.at("pool", Problem::Unknown))?;
    let requant = Requant::from_u8(r.requant).ok_or(e.at("requant", Problem::Unknown))?;
    if r.flags != 0 {
        return Err(e.at("flags", Problem::Unknown));
    }
    if r.reserved != [0; 8] {
        return Err(e.at("reserved", Problem::Unknown));
    }

    // The input is the previous op's output.
    for (field, got, want) in
        [("in_h", r.in_h, chain.shape.h), ("in_w", r.in_w, chain.shape.w), ("in_c", r.in_c, chain.shape.c)]
    {
        if got as usize != want {
            return Err(e.at(field, Problem::Mismatch));
        }
    }
    let input = chain.shape;
    for (field, v) in [("out_h", r.out_h), ("out_w", r.out_w), ("out_c", r.out_c)] {
        if v == 0 {
            return Err(e.at(field, Problem::OutOfRange));
        }
    }
    let output = Shape::new(r.out_h as usize, r.out_w as usize, r.out_c as usize);
    let int8 = ctx.precision == Precision::Int8;

    // Fields each kind must leave at zero.
    let zero = |fields: &[(&'static str, u32)]| -> Result<(), LoadError> {
        match fields.iter().find(|(_, v)| *v != 0) {
            Some((field, _)) => Err(e.at(field, Problem::Unknown)),
            None => Ok(()),
        }
    };
    let pool_fields = [
        ("pool_h", r.pool_h as u32),
        ("pool_w", r.pool_w as u32),
        ("pool_stride_h", r.pool_stride_h as u32),
        ("pool_stride_w", r.pool_stride_w as u32),
    ];
    let pad_fields = [
        ("pad_top", r.pad_top as u32),
        ("pad_left", r.pad_left as u32),
        ("pad_bottom", r.pad_bottom as u32),
        ("pad_right", r.pad_right as u32),
    ];
    let weight_fields = [
        ("weights_offset", r.weights_offset),
        ("weights_len", r.weights_len),
        ("bias_offset", r.bias_offset),
        ("bias_len", r.bias_len),
    ];
    let quant_fields = [("quant_offset", r.quant_offset), ("quant_len", r.quant_len)];
    let int8_fields = [
        ("input_zero_point", r.input_zero_point as u32),
        ("conv_zero_point", r.conv_zero_point as u32),
        ("output_zero_point", r.output_zero_point as u32),
        ("multiplier", r.multiplier as u32),
        ("shift", r.shift as u32),
        ("act_min", r.act_min as u32),
        ("act_max", r.act_max as u32),
        ("pool_multiplier", r.pool_multiplier as u32),
        ("pool_shift", r.pool_shift as u32),
    ];
    if !int8 {
        zero(&int8_fields)?;
        zero(&quant_fields)?;
        if requant != Requant::None {
            return Err(e.at("requant", Problem::Unknown));
        }
    } else if r.input_zero_point != chain.zero_point {
        return Err(e.at("input_zero_point", Problem::Mismatch));
    }

    let kernel = match kind {
        OpKind::Conv2d => {
            let geometry = conv_geometry(&e, r, input)?;
            let conv_out = geometry.output;
            let fused = match pool {
                FusedPool::None => {
                    zero(&pool_fields)?;
                    None
                }
                FusedPool::Max | FusedPool::Avg => {
                    let kind = if pool == FusedPool::Max { PoolKind::Max } else { PoolKind::Avg };
                    let g = pool_geometry(
                        &e,
                        conv_out,
                        [("pool_h", r.pool_h), ("pool_w", r.pool_w)],
                        [("pool_stride_h", r.pool_stride_h), ("pool_stride_w", r.pool_stride_w)],
                    )?;
                    Some((kind, g))
                }
            };
            let final_shape = fused.map_or(conv_out, |(_, g)| g.output);
            check_output_shape(&e, output, final_shape)?;
            let filter_len = geometry.filter_len();
            let (w_bytes, b_bytes) = weights_and_bias(ctx, &e, r, conv_out.c, filter_len)?;
            if int8 {
                let weights: &[i8] = bytemuck::cast_slice(w_bytes);
                let bias: &[i32] = cast(&e, "bias_offset", b_bytes)?;
                let requantizer = requantizer(ctx, &e, r, requant, conv_out.c)?;
                check_int8_output(&e, r, pool == FusedPool::Avg)?;
                check_accumulator(&e, bias, filter_len, &requantizer)?;
                let pool = match fused {
                    None => None,
                    Some((kind, g)) => {
                        let avg = avg_requant(&e, r, r.conv_zero_point, kind == PoolKind::Avg, g.window_len())?;
                        Some((kind, g, avg))
                    }
                };
                if pool.is_none_or(|(k, _, _)| k == PoolKind::Max) && r.output_zero_point != r.conv_zero_point {
                    return Err(e.at("output_zero_point", Problem::Mismatch));
                }
                Kernel::ConvS8(ConvS8 {
                    geometry,
                    input_zero_point: r.input_zero_point,
                    requant: requantizer,
                    conv_zero_point: r.conv_zero_point,
                    act_min: r.act_min,
                    act_max: r.act_max,
                    pool,
                    weights,
                    bias,
                })
            } else {
                let bias: &[f32] = cast(&e, "bias_offset", b_bytes)?;
                match ctx.precision {
                    Precision::F16 => Kernel::ConvF16(ConvF {
                        geometry,
                        activation,
                        pool: fused,
                        weights: cast(&e, "weights_offset", w_bytes)?,
                        bias,
                    }),
                    _ => Kernel::ConvF32(ConvF {
                        geometry,
                        activation,
                        pool: fused,
                        weights: cast(&e, "weights_offset", w_bytes)?,
                        bias,
                    }),
                }
            }
        }
        OpKind::Dense => {
            if pool != FusedPool::None {
                return Err(e.at("pool", Problem::Unknown));
            }
            zero(&pool_fields)?;
            zero(&pad_fields)?;
            zero(&[
                ("kernel_h", r.kernel_h as u32),
                ("kernel_w", r.kernel_w as u32),
                ("stride_h", r.stride_h as u32),
                ("stride_w", r.stride_w as u32),
            ])?;
            if output.h != 1 || output.w != 1 {
                return Err(e.at(if output.h != 1 { "out_h" } else { "out_w" }, Problem::Mismatch));
            }
            let input_len = input.len();
            let output_len = output.c;
            let (w_bytes, b_bytes) = weights_and_bias(ctx, &e, r, output_len, input_len)?;
            if int8 {
                let bias: &[i32] = cast(&e, "bias_offset", b_bytes)?;
                let requantizer = requantizer(ctx, &e, r, requant, output_len)?;
                check_int8_output(&e, r, false)?;
                check_accumulator(&e, bias, input_len, &requantizer)?;
                if r.output_zero_point != r.conv_zero_point {
                    return Err(e.at("output_zero_point", Problem::Mismatch));
                }
                zero(&[("pool_multiplier", r.pool_multiplier as u32), ("pool_shift", r.pool_shift as u32)])?;
                Kernel::DenseS8(DenseS8 {
                    input_len,
                    output_len,
                    input_zero_point: r.input_zero_point,
                    requant: requantizer,
                    output_zero_point: r.output_zero_point,
                    act_min: r.act_min,
                    act_max: r.act_max,
                    weights: bytemuck::cast_slice(w_bytes),
                    bias,
                })
            } else {
                let bias: &[f32] = cast(&e, "bias_offset", b_bytes)?;
                match ctx.precision {
                    Precision::F16 => Kernel::DenseF16(DenseF {
                        input_len,
                        output_len,
                        activation,
                        weights: cast(&e, "weights_offset", w_bytes)?,
                        bias,
                    }),
                    _ => Kernel::DenseF32(DenseF {
                        input_len,
                        output_len,
                        activation,
                        weights: cast(&e, "weights_offset", w_bytes)?,
                        bias,
                    }),
                }
            }
        }
        OpKind::MaxPool2d | OpKind::AvgPool2d => {
            if activation != Activation::None {
                return Err(e.at("activation", Problem::Unknown));
            }
            if pool != FusedPool::None {
                return Err(e.at("pool", Problem::Unknown));
            }
            if requant != Requant::None {
                return Err(e.at("requant", Problem::Unknown));
            }
            zero(&pool_fields)?;
            zero(&pad_fields)?;
            zero(&weight_fields)?;
            zero(&quant_fields)?;
            let g = pool_geometry(
                &e,
                input,
                [("kernel_h", r.kernel_h), ("kernel_w", r.kernel_w)],
                [("stride_h", r.stride_h), ("stride_w", r.stride_w)],
            )?;
            check_output_shape(&e, output, g.output)?;
            let avg = kind == OpKind::AvgPool2d;
            if int8 {
                zero(&[("multiplier", r.multiplier as u32), ("shift", r.shift as u32)])?;
                if r.act_min != -128 || r.act_max != 127 {
                    return Err(e.at(if r.act_min != -128 { "act_min" } else { "act_max" }, Problem::OutOfRange));
                }
                if r.conv_zero_point != r.input_zero_point {
                    return Err(e.at("conv_zero_point", Problem::Mismatch));
                }
                if !I8_RANGE.contains(&r.output_zero_point) {
                    return Err(e.at("output_zero_point", Problem::OutOfRange));
                }
                let q = avg_requant(&e, r, r.input_zero_point, avg, g.window_len())?;
                if avg {
                    Kernel::AvgPoolS8(g, q)
                } else {
                    if r.output_zero_point != r.input_zero_point {
                        return Err(e.at("output_zero_point", Problem::Mismatch));
                    }
                    Kernel::MaxPoolS8(g)
                }
            } else if avg {
                Kernel::AvgPoolF32(g)
            } else {
                Kernel::MaxPoolF32(g)
            }
        }
    };

    // Arena regions.
    let elem = ctx.precision.activation_size();
    let region = |field: &'static str, offset: u32, len: usize| -> Result<Region, LoadError> {
        let bytes = len.checked_mul(elem).ok_or(e.at(field, Problem::Overflow))?;
        let region = Region { offset: offset as usize, len: bytes };
        let end = region.offset.checked_add(bytes).ok_or(e.at(field, Problem::Overflow))?;
        if end > ctx.arena {
            return Err(e.at(field, Problem::OutOfBounds));
        }
        if !region.offset.is_multiple_of(elem) {
            return Err(e.at(field, Problem::Misaligned));
        }
        Ok(region)
    };
    let input_region = region("input_offset", r.input_offset, input.len())?;
    if chain.offset.is_some_and(|o| o != input_region.offset) {
        return Err(e.at("input_offset", Problem::Mismatch));
    }
    let output_region = region("output_offset", r.output_offset, output.len())?;
    if input_region.overlaps(&output_region) {
        return Err(e.at("output_offset", Problem::Overlap));
    }
    let scratch = Region { offset: r.scratch_offset as usize, len: r.scratch_len as usize };
    if scratch.offset.checked_add(scratch.len).is_none_or(|end| end > ctx.arena) {
        return Err(e.at("scratch_len", Problem::OutOfBounds));
    }
    if scratch.overlaps(&input_region) || scratch.overlaps(&output_region) {
        return Err(e.at("scratch_offset", Problem::Overlap));
    }
    let needed = match &kernel {
        Kernel::ConvS8(op) => {
            kernels::conv2d_s8_scratch_size(&op.geometry, op.pool.map_or(1, |(_, p, _)| p.window_len()))
        }
        Kernel::DenseS8(op) => kernels::dense_s8_scratch_size(op.input_len, op.output_len),
        _ => 0,
    };
    if scratch.len < needed {
        return Err(e.at("scratch_len", Problem::OutOfRange));
    }

    *chain = Chain {
        shape: output,
        offset: Some(output_region.offset),
        zero_point: if int8 { r.output_zero_point } else { 0 },
    };
    Ok(Op { kernel, input: input_region, output: output_region, scratch, record: r })
}

fn check_output_shape(e: &OpErr, got: Shape, want: Shape) -> Result<(), LoadError> {
    for (field, g, w) in [("out_h", got.h, want.h), ("out_w", got.w, want.w), ("out_c", got.c, want.c)] {
        if g != w {
            return Err(e.at(field, Problem::Mismatch));
        }
    }
    Ok(())
}

fn conv_geometry(e: &OpErr, r: &OpRecord, input: Shape) -> Result<ConvGeometry, LoadError> {
    let dims = [
        ("kernel_h", r.kernel_h, "stride_h", r.stride_h, "pad_top", r.pad_top, "pad_bottom", r.pad_bottom, input.h),
        ("kernel_w", r.kernel_w, "stride_w", r.stride_w, "pad_left", r.pad_left, "pad_right", r.pad_right, input.w),
    ];
    let mut out = [0usize; 2];
    for (i, (kf, k, sf, s, paf, pa, pbf, pb, n)) in dims.into_iter().enumerate() {
        if k == 0 {
            return Err(e.at(kf, Problem::OutOfRange));
        }
        if s == 0 {
            return Err(e.at(sf, Problem::OutOfRange));
        }
        if pa >= k {
            return Err(e.at(paf, Problem::OutOfRange));
        }
        if pb >= k {
            return Err(e.at(pbf, Problem::OutOfRange));
        }
        let padded = n + pa as usize + pb as usize;
        if padded < k as usize {
            return Err(e.at(kf, Problem::OutOfRange));
        }
        out[i] = (padded - k as usize) / s as usize + 1;
    }
    if r.out_c == 0 {
        return Err(e.at("out_c", Problem::OutOfRange));
    }
    Ok(ConvGeometry {
        input,
        output: Shape::new(out[0], out[1], r.out_c as usize),
        kernel_h: r.kernel_h as usize,
        kernel_w: r.kernel_w as usize,
        stride_h: r.stride_h as usize,
        stride_w: r.stride_w as usize,
        pad_top: r.pad_top as usize,
        pad_left: r.pad_left as usize,
    })
}

fn pool_geometry(
    e: &OpErr,
    input: Shape,
    size: [(&'static str, u16); 2],
    stride: [(&'static str, u16); 2],
) -> Result<PoolGeometry, LoadError> {
    let mut out = [0usize; 2];
    for (i, n) in [input.h, input.w].into_iter().enumerate() {
        let (sf, k) = size[i];
        let (tf, s) = stride[i];
        if k == 0 || k as usize > n {
            return Err(e.at(sf, Problem::OutOfRange));
        }
        if s == 0 {
            return Err(e.at(tf, Problem::OutOfRange));
        }
        out[i] = (n - k as usize) / s as usize + 1;
    }
    Ok(PoolGeometry {
        input,
        output: Shape::new(out[0], out[1], input.c),
        size_h: size[0].1 as usize,
        size_w: size[1].1 as usize,
        stride_h: stride[0].1 as usize,
        stride_w: stride[1].1 as usize,
    })
}

/// The weight and bias bytes of an op with `out` outputs of `per_out` weights each.
fn weights_and_bias<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    out: usize,
    per_out: usize,
) -> Result<(&'a [u8], &'a [u8]), LoadError> {
    let wsize = ctx.precision.weight_size();
    // int8 weights are packed in groups of 4 taps (padded with zeros); float ones are [out][k].
    let taps = if ctx.precision == Precision::Int8 { per_out.div_ceil(TAP_GROUP) * TAP_GROUP } else { per_out };
    let w_len =
        out.checked_mul(taps).and_then(|n| n.checked_mul(wsize)).ok_or(e.at("weights_len", Problem::Overflow))?;
    let w = section_slice(ctx, e, ("weights_offset", r.weights_offset), ("weights_len", r.weights_len), w_len, wsize)?;
    if taps > per_out {
        // The padding taps of the last group must be zero (fast kernels read whole groups).
        let last_group = &w[(taps / TAP_GROUP - 1) * TAP_GROUP * out..];
        let padding_is_zero =
            last_group.chunks_exact(TAP_GROUP).all(|word| word[per_out % TAP_GROUP..].iter().all(|&b| b == 0));
        if !padding_is_zero {
            return Err(e.at("weights_offset", Problem::Mismatch));
        }
    }
    let b_len = out * ctx.precision.bias_size();
    let b = section_slice(ctx, e, ("bias_offset", r.bias_offset), ("bias_len", r.bias_len), b_len, 4)?;
    Ok((w, b))
}

fn section_slice<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    (offset_field, offset): (&'static str, u32),
    (len_field, len): (&'static str, u32),
    expected_len: usize,
    align: usize,
) -> Result<&'a [u8], LoadError> {
    if len as usize != expected_len {
        return Err(e.at(len_field, Problem::Mismatch));
    }
    let start = offset as usize;
    if !start.is_multiple_of(align) {
        return Err(e.at(offset_field, Problem::Misaligned));
    }
    let end = start.checked_add(expected_len).ok_or(e.at(offset_field, Problem::Overflow))?;
    ctx.weights.get(start..end).ok_or(e.at(offset_field, Problem::OutOfBounds))
}

fn cast<'a, T: Pod>(e: &OpErr, field: &'static str, bytes: &'a [u8]) -> Result<&'a [T], LoadError> {
    bytemuck::try_cast_slice(bytes).map_err(|_| e.at(field, Problem::Misaligned))
}

fn requantizer<'a>(
    ctx: &Ctx<'a>,
    e: &OpErr,
    r: &OpRecord,
    requant: Requant,
    channels: usize,
) -> Result<Requantizer<'a>, LoadError> {
    let zero = |fields: &[(&'static str, u32)]| match fields.iter().find(|(_, v)| *v != 0) {
        Some((field, _)) => Err(e.at(field, Problem::Unknown)),
        None => Ok(()),
    };
    match requant {
        Requant::None => Err(e.at("requant", Problem::Unknown)),
        Requant::Uniform => {
            zero(&[("quant_offset", r.quant_offset), ("quant_len", r.quant_len)])?;
            uniform(e, ("multiplier", r.multiplier), ("shift", r.shift))?;
            Ok(Requantizer::Uniform { multiplier: r.multiplier, shift: r.shift })
        }
        Requant::PerChannel => {
            zero(&[("multiplier", r.multiplier as u32), ("shift", r.shift as u32)])?;
            let bytes =
                section_slice(ctx, e, ("quant_offset", r.quant_offset), ("quant_len", r.quant_len), channels * 4, 4)?;
            let m: &[u32] = cast(e, "quant_offset", bytes)?;
            if !m.iter().all(|&b| quant::per_channel_multiplier_is_valid(b)) {
                return Err(e.at("quant_offset", Problem::OutOfRange));
            }
            Ok(Requantizer::PerChannel(m))
        }
    }
}

fn uniform(e: &OpErr, (mf, m): (&'static str, i32), (sf, s): (&'static str, i32)) -> Result<(), LoadError> {
    if !quant::uniform_multiplier_is_valid(m) {
        return Err(e.at(mf, Problem::OutOfRange));
    }
    if !quant::uniform_shift_is_valid(s) {
        return Err(e.at(sf, Problem::OutOfRange));
    }
    Ok(())
}

fn check_int8_output(e: &OpErr, r: &OpRecord, has_avg_pool: bool) -> Result<(), LoadError> {
    for (field, v) in [("conv_zero_point", r.conv_zero_point), ("output_zero_point", r.output_zero_point)] {
        if !I8_RANGE.contains(&v) {
            return Err(e.at(field, Problem::OutOfRange));
        }
    }
    if !I8_RANGE.contains(&r.act_min) {
        return Err(e.at("act_min", Problem::OutOfRange));
    }
    if !I8_RANGE.contains(&r.act_max) || r.act_max < r.act_min {
        return Err(e.at("act_max", Problem::OutOfRange));
    }
    if !has_avg_pool && (r.pool_multiplier != 0 || r.pool_shift != 0) {
        return Err(e.at(if r.pool_multiplier != 0 { "pool_multiplier" } else { "pool_shift" }, Problem::Unknown));
    }
    Ok(())
}

/// The requantization of an average pool over `n` values with zero point `zp`, or zeros if `avg`
/// is false (the fields must then be zero).
fn avg_requant(e: &OpErr, r: &OpRecord, zp: i32, avg: bool, n: usize) -> Result<AvgRequant, LoadError> {
    if !avg {
        if r.pool_multiplier != 0 || r.pool_shift != 0 {
            return Err(e.at(if r.pool_multiplier != 0 { "pool_multiplier" } else { "pool_shift" }, Problem::Unknown));
        }
        return Ok(AvgRequant {
            input_zero_point: zp,
            multiplier: 0,
            shift: 0,
            output_zero_point: r.output_zero_point,
        });
    }
    uniform(e, ("pool_multiplier", r.pool_multiplier), ("pool_shift", r.pool_shift))?;
    let bound = (n as u64) * 255;
    if bound > i32::MAX as u64 || !uniform_scaled_below(bound, r.pool_multiplier, r.pool_shift) {
        return Err(e.at("pool_multiplier", Problem::AccumulatorOverflow));
    }
    Ok(AvgRequant {
        input_zero_point: zp,
        multiplier: r.pool_multiplier,
        shift: r.pool_shift,
        output_zero_point: r.output_zero_point,
    })
}

/// Checks that `|bias| + k·255·128` (|x − zp| ≤ 255, |w| ≤ 128) fits in i32 and that its
/// requantized value stays below 2^30, so accumulation never overflows and requantization is
/// exact (no saturation).
fn check_accumulator(e: &OpErr, bias: &[i32], k: usize, requant: &Requantizer<'_>) -> Result<(), LoadError> {
    let products = (k as u64).checked_mul(255 * 128).ok_or(e.at("in_c", Problem::AccumulatorOverflow))?;
    for (c, b) in bias.iter().enumerate() {
        let bound = products.saturating_add(b.unsigned_abs() as u64);
        if bound > i32::MAX as u64 {
            return Err(e.at("bias_offset", Problem::AccumulatorOverflow));
        }
        let ok = match *requant {
            Requantizer::Uniform { multiplier, shift } => uniform_scaled_below(bound, multiplier, shift),
            Requantizer::PerChannel(m) => {
                let bits = m[c];
                let mant = ((bits & 0x7F_FFFF) | 0x80_0000) as u64;
                let exp = ((bits >> 23) & 0xFF) as i32 - 150;
                scaled_below(bound, mant, exp)
            }
        };
        if !ok {
            let field = if matches!(requant, Requantizer::Uniform { .. }) { "multiplier" } else { "quant_offset" };
            return Err(e.at(field, Problem::AccumulatorOverflow));
        }
    }
    Ok(())
}

fn uniform_scaled_below(bound: u64, multiplier: i32, shift: i32) -> bool {
    scaled_below(bound, multiplier as u64, -(31 + shift))
}

/// Whether `bound · mant · 2^exp < 2^SCALED_LIMIT_LOG2` (`bound < 2^32`, `mant < 2^31`).
fn scaled_below(bound: u64, mant: u64, exp: i32) -> bool {
    let product = bound * mant;
    let limit = SCALED_LIMIT_LOG2 as i32 - exp;
    if limit >= 64 {
        true
    } else if limit <= 0 {
        product == 0
    } else {
        product < 1u64 << limit
    }
}
