//! Emits a [`Plan`] as a model blob, through the runtime's own format types: the last step of
//! lowering.
//!
//! The layout is defined once, in [`mnistc_runtime::format`]; this module fills those structs,
//! places the arena ([`crate::lower::arena`]) and checks its own output by loading it with
//! [`Model::from_bytes`]. The result is a [`Blob`]: bytes the runtime accepted, with the arena
//! plan and [`Footprint`] they were written with, so the later steps (evaluation, inspection,
//! budgets, files) share one emission instead of writing, re-planning or re-reading it.

use bytemuck::Zeroable;
use mnistc_runtime::format::{
    self, CLASS_NAME_LEN, FORMAT_VERSION, FusedPool, Header, MAGIC, MAX_CLASSES, MAX_OPS, Meta, OpRecord, Requant,
    SECTION_ALIGN,
};
use mnistc_runtime::{LoadError, Model};

use super::arena::{ArenaPlan, plan_arena, scratch_bytes};
use super::budget::Footprint;
use super::plan::{Bias, OpKind, Plan, PoolKind, Precision, RequantSpec, Weights};

/// Why a plan cannot be written as a blob.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// More ops than the runtime's fixed-capacity plan holds.
    #[error("the plan has {0} ops; the runtime holds at most {MAX_OPS}")]
    TooManyOps(usize),
    /// More classes than the metadata holds.
    #[error("the model has {0} classes; the blob holds at most {MAX_CLASSES}")]
    TooManyClasses(usize),
    /// A dimension does not fit the record's 16-bit field.
    #[error("op {op}: {field} = {value} does not fit in 16 bits")]
    Dimension {
        /// Op index.
        op: usize,
        /// Field.
        field: &'static str,
        /// Value.
        value: usize,
    },
    /// The op's weights, bias or quantization do not match the plan's precision.
    #[error("op {op}: {what}")]
    Inconsistent {
        /// Op index.
        op: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The blob would exceed 4 GiB.
    #[error("the blob would exceed 4 GiB")]
    TooLarge,
    /// The written blob does not load: a compiler bug or a plan the runtime cannot run.
    #[error("the written blob does not load: {0}")]
    Invalid(LoadError),
}

/// Appends `bytes` to the weights section at the next 16-byte boundary; returns (offset, len).
fn push_aligned(section: &mut Vec<u8>, bytes: &[u8]) -> (u32, u32) {
    if bytes.is_empty() {
        return (0, 0);
    }
    section.resize(section.len().div_ceil(SECTION_ALIGN) * SECTION_ALIGN, 0);
    let offset = section.len();
    section.extend_from_slice(bytes);
    (offset as u32, bytes.len() as u32)
}

fn dim(op: usize, field: &'static str, value: usize) -> Result<u16, BlobError> {
    u16::try_from(value).map_err(|_| BlobError::Dimension { op, field, value })
}

/// A blob the runtime accepted, with the arena plan it was written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    bytes: AlignedBytes,
    arena: ArenaPlan,
    footprint: Footprint,
}

impl Blob {
    /// The blob's bytes (16-byte aligned in memory).
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_bytes()
    }

    /// The runtime's view of the blob. Cheap: the bytes were validated when written and cannot
    /// have changed since.
    pub fn model(&self) -> Model<'_> {
        match Model::from_bytes(self.bytes.as_bytes()) {
            Ok(model) => model,
            // `write` returned this blob only after the same call succeeded on the same bytes.
            Err(e) => unreachable!("a written blob stopped loading: {e}"),
        }
    }

    /// The arena placement written into the op records.
    pub fn arena(&self) -> &ArenaPlan {
        &self.arena
    }

    /// Flash, arena and MACs.
    pub fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// The bytes, owned.
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes().to_vec()
    }
}

/// Writes `plan` as a blob and checks that the runtime loads it.
///
/// # Errors
/// [`BlobError`] when the plan does not fit the format or the result does not load.
pub fn write(plan: &Plan) -> Result<Blob, BlobError> {
    if plan.ops.len() > MAX_OPS || plan.ops.is_empty() {
        return Err(BlobError::TooManyOps(plan.ops.len()));
    }
    if plan.class_names.len() > MAX_CLASSES {
        return Err(BlobError::TooManyClasses(plan.class_names.len()));
    }
    let arena = plan_arena(plan);
    let mut weights = Vec::new();
    let mut records = Vec::with_capacity(plan.ops.len());
    for (i, op) in plan.ops.iter().enumerate() {
        let mut r = OpRecord::zeroed();
        r.kind = op.kind as u8;
        r.in_h = dim(i, "in_h", op.input.h)?;
        r.in_w = dim(i, "in_w", op.input.w)?;
        r.in_c = dim(i, "in_c", op.input.c)?;
        r.out_h = dim(i, "out_h", op.output.h)?;
        r.out_w = dim(i, "out_w", op.output.w)?;
        r.out_c = dim(i, "out_c", op.output.c)?;
        if !matches!(op.kind, OpKind::Dense | OpKind::Add) {
            r.kernel_h = dim(i, "kernel_h", op.kernel[0])?;
            r.kernel_w = dim(i, "kernel_w", op.kernel[1])?;
            r.stride_h = dim(i, "stride_h", op.stride[0])?;
            r.stride_w = dim(i, "stride_w", op.stride[1])?;
        }
        if matches!(op.kind, OpKind::Conv2d | OpKind::DepthwiseConv2d) {
            r.pad_top = dim(i, "pad_top", op.pads[0])?;
            r.pad_left = dim(i, "pad_left", op.pads[1])?;
            r.pad_bottom = dim(i, "pad_bottom", op.pads[2])?;
            r.pad_right = dim(i, "pad_right", op.pads[3])?;
        }
        if op.kind == OpKind::Conv2d
            && let Some(p) = op.fused_pool
        {
            r.pool = match p.kind {
                PoolKind::Max => FusedPool::Max as u8,
                PoolKind::Avg => FusedPool::Avg as u8,
            };
            r.pool_h = dim(i, "pool_h", p.size[0])?;
            r.pool_w = dim(i, "pool_w", p.size[1])?;
            r.pool_stride_h = dim(i, "pool_stride_h", p.stride[0])?;
            r.pool_stride_w = dim(i, "pool_stride_w", p.stride[1])?;
        }
        if matches!(op.kind, OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::Dense | OpKind::Add) {
            r.activation = op.activation as u8;
        }
        let inconsistent = |what| BlobError::Inconsistent { op: i, what };
        let packed: Vec<i8>;
        let transposed: Vec<u8>;
        let w_bytes: &[u8] = match (&op.weights, plan.precision) {
            (Weights::None, _) => &[],
            // Depthwise: the plan's [C][kh·kw] becomes the blob's [kh·kw][C], in every precision.
            (w, _) if op.kind == OpKind::DepthwiseConv2d => {
                let bytes: &[u8] = match (w, plan.precision) {
                    (Weights::F32(w), Precision::F32) => bytemuck::cast_slice(w),
                    (Weights::F16(w), Precision::F16) => bytemuck::cast_slice(w),
                    (Weights::I8(w), Precision::Int8) => bytemuck::cast_slice(w),
                    _ => return Err(inconsistent("weights do not match the plan's precision")),
                };
                let size = plan.precision.weight_size();
                let channels = op.output.c;
                if bytes.len() != channels * op.kernel[0] * op.kernel[1] * size {
                    return Err(inconsistent("depthwise weights are not one kernel per channel"));
                }
                transposed = channels_last(bytes, channels, size);
                &transposed
            }
            (Weights::F32(w), Precision::F32) => bytemuck::cast_slice(w),
            (Weights::F16(w), Precision::F16) => bytemuck::cast_slice(w),
            (Weights::I8(w), Precision::Int8) => {
                // int8 weights go in the runtime's packed layout (groups of 4 taps).
                let out = op.output.c;
                let k = w.len() / out.max(1);
                if k * out != w.len() {
                    return Err(inconsistent("weights are not a whole number of filters"));
                }
                let mut p = vec![0i8; format::packed_len(k, out)];
                format::pack_weights(w, k, out, &mut p).map_err(|_| inconsistent("weights do not pack"))?;
                packed = p;
                bytemuck::cast_slice(&packed)
            }
            _ => return Err(inconsistent("weights do not match the plan's precision")),
        };
        (r.weights_offset, r.weights_len) = push_aligned(&mut weights, w_bytes);
        let b_bytes: &[u8] = match (&op.bias, plan.precision) {
            (Bias::None, _) => &[],
            (Bias::F32(b), Precision::F32 | Precision::F16) => bytemuck::cast_slice(b),
            (Bias::I32(b), Precision::Int8) => bytemuck::cast_slice(b),
            _ => return Err(inconsistent("bias does not match the plan's precision")),
        };
        (r.bias_offset, r.bias_len) = push_aligned(&mut weights, b_bytes);
        if plan.precision == Precision::Int8 {
            let q = op.quant.as_ref().ok_or(inconsistent("int8 op without quantization parameters"))?;
            r.input_zero_point = q.input.zero_point;
            r.conv_zero_point = q.conv.zero_point;
            r.output_zero_point = q.output.zero_point;
            r.input_scale = q.input.scale;
            r.output_scale = q.output.scale;
            r.act_min = q.act_min;
            r.act_max = q.act_max;
            match &q.requant {
                None => r.requant = Requant::None as u8,
                Some(RequantSpec::Uniform { multiplier, shift }) => {
                    r.requant = Requant::Uniform as u8;
                    r.multiplier = *multiplier;
                    r.shift = *shift;
                }
                Some(RequantSpec::PerChannel(m)) => {
                    r.requant = Requant::PerChannel as u8;
                    (r.quant_offset, r.quant_len) = push_aligned(&mut weights, bytemuck::cast_slice(m));
                }
                Some(RequantSpec::Tflite(m)) => {
                    r.requant = Requant::Tflite as u8;
                    // An average pool names the arithmetic alone: no multipliers, no region.
                    if !m.is_empty() {
                        (r.quant_offset, r.quant_len) = push_aligned(&mut weights, bytemuck::cast_slice(m));
                    }
                }
            }
            if let Some(b) = q.input2 {
                r.input2_zero_point = b.zero_point;
                r.input2_scale = b.scale;
            }
            if op.residual {
                r.flags = format::FLAG_RESIDUAL;
                r.conv_scale = q.conv.scale;
            }
            if let Some((multiplier, shift)) = q.pool_requant {
                r.pool_multiplier = multiplier;
                r.pool_shift = shift;
            }
        }
        let at = arena.ops[i];
        r.input_offset = at.input as u32;
        r.output_offset = at.output as u32;
        r.scratch_offset = at.scratch as u32;
        if op.kind == OpKind::Add || op.residual {
            r.input2_offset = at.input2 as u32;
        }
        r.scratch_len = scratch_bytes(op, plan.precision) as u32;
        if r.scratch_len == 0 {
            r.scratch_offset = 0;
        }
        records.push(r);
    }

    let mut meta = Meta::zeroed();
    meta.name = format::fixed_str(&plan.name);
    meta.dataset = format::fixed_str(&plan.dataset);
    meta.precision = plan.precision as u8;
    meta.class_count = plan.class_names.len() as u8;
    meta.input_h = dim(0, "input_h", plan.input.h)?;
    meta.input_w = dim(0, "input_w", plan.input.w)?;
    meta.input_c = dim(0, "input_c", plan.input.c)?;
    meta.input_scale = 1.0 / 255.0;
    match plan.output_quant {
        Some(q) => {
            let input = plan.input_quant.unwrap_or(crate::quantize::INPUT_QPARAMS);
            meta.input_scale = input.scale;
            meta.input_zero_point = input.zero_point;
            meta.output_scale = q.scale;
            meta.output_zero_point = q.zero_point;
        }
        None => meta.output_scale = 1.0,
    }
    meta.source_hash = plan.source_hash;
    for (slot, name) in meta.class_names.iter_mut().zip(&plan.class_names) {
        *slot = format::fixed_str::<CLASS_NAME_LEN>(name);
    }

    let meta_offset = Header::SIZE;
    let plan_offset = (meta_offset + Meta::SIZE).div_ceil(SECTION_ALIGN) * SECTION_ALIGN;
    let weights_offset = (plan_offset + records.len() * OpRecord::SIZE).div_ceil(SECTION_ALIGN) * SECTION_ALIGN;
    let total = weights_offset + weights.len();
    let total32 = u32::try_from(total).map_err(|_| BlobError::TooLarge)?;
    let mut header = Header::zeroed();
    header.magic = MAGIC;
    header.version = FORMAT_VERSION;
    header.header_len = Header::SIZE as u16;
    header.total_len = total32;
    header.meta_offset = meta_offset as u32;
    header.meta_len = Meta::SIZE as u32;
    header.plan_offset = plan_offset as u32;
    header.op_count = records.len() as u16;
    header.op_record_len = OpRecord::SIZE as u16;
    header.weights_offset = weights_offset as u32;
    header.weights_len = weights.len() as u32;
    header.arena_size = u32::try_from(arena.size).map_err(|_| BlobError::TooLarge)?;

    let mut bytes = vec![0u8; total];
    bytes[meta_offset..meta_offset + Meta::SIZE].copy_from_slice(bytemuck::bytes_of(&meta));
    bytes[plan_offset..plan_offset + records.len() * OpRecord::SIZE].copy_from_slice(bytemuck::cast_slice(&records));
    bytes[weights_offset..].copy_from_slice(&weights);
    bytes[..Header::SIZE].copy_from_slice(bytemuck::bytes_of(&header));
    reseal(&mut bytes);

    let aligned = AlignedBytes::from(bytes.as_slice());
    Model::from_bytes(aligned.as_bytes()).map_err(BlobError::Invalid)?;
    let footprint = Footprint { flash_bytes: total as u64, arena_bytes: arena.size as u64, macs: plan.macs() };
    Ok(Blob { bytes: aligned, arena, footprint })
}

/// Recomputes the checksum of a blob in place (for tools and tests that edit blobs).
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= Header::SIZE {
        let crc = format::crc32(&bytes[format::CHECKSUM_START..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Bytes stored at a 16-byte-aligned address, as [`Model::from_bytes`] wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlignedBytes {
    words: Vec<u128>,
    len: usize,
}

impl AlignedBytes {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
    /// Mutable bytes.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
    /// Reads a file into aligned memory.
    ///
    /// # Errors
    /// The I/O error of reading `path`.
    pub fn read(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self::from(std::fs::read(path)?.as_slice()))
    }
}

impl From<&[u8]> for AlignedBytes {
    fn from(bytes: &[u8]) -> Self {
        let mut words = vec![0u128; bytes.len().div_ceil(16)];
        bytemuck::cast_slice_mut::<u128, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Self { words, len: bytes.len() }
    }
}

/// `[channels][taps]` elements of `size` bytes, rearranged to `[taps][channels]`.
fn channels_last(bytes: &[u8], channels: usize, size: usize) -> Vec<u8> {
    let taps = bytes.len() / (channels * size).max(1);
    let mut out = vec![0u8; bytes.len()];
    for c in 0..channels {
        for t in 0..taps {
            let from = (c * taps + t) * size;
            let to = (t * channels + c) * size;
            out[to..to + size].copy_from_slice(&bytes[from..from + size]);
        }
    }
    out
}
