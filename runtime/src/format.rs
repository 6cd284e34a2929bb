//! The model blob: the one definition of its byte layout.
//!
//! A blob is one flat, little-endian byte string that the compiler (`mnistc build`) writes with
//! these types and [`crate::Model::from_bytes`] reads back zero-copy with `bytemuck`. Nothing else
//! in the project describes the layout; change it here and bump [`FORMAT_VERSION`].
//!
//! ```text
//! offset                      size                     section
//! 0                           64  (Header)             magic "MNCB", version, lengths, CRC-32, counts
//! header.meta_offset          Meta::SIZE               data set, class names, input shape + quantization,
//!                                                       precision, output dequantization, source hash
//! header.plan_offset          op_count * 160           one OpRecord per op, in execution order
//! header.weights_offset (%16) header.weights_len       weights, biases and per-channel multipliers
//! ```
//!
//! * Every section starts at a multiple of 16 bytes; the blob itself must sit at an address that is
//!   a multiple of 4 (16 is recommended: use [`crate::Aligned`]) so `i32`/`f32` arrays can be read
//!   in place.
//! * `checksum` is the CRC-32 (IEEE, reflected, as zlib) of every byte after the checksum field,
//!   i.e. `blob[16..total_len]`.
//! * Activations are NHWC. A filter's taps are numbered in OHWI order, `k = (ky·kw + kx)·in + ic`
//!   (a dense layer's inputs in NHWC flatten order). Float weights are stored OHWI
//!   (`[out][k]`). int8 weights are stored *packed in groups of four taps*,
//!   `[ceil(K/4)][out][4]` ([`packed_index`]), the layout every fast kernel wants: four taps of
//!   one output channel are one 32-bit word (one `SMLAD` pair, one `vpdpbusd`/`sdot` lane), and
//!   the words of consecutive output channels are contiguous (one vector of channels). Taps past
//!   `K` in the last group are zero. Element types depend on [`Precision`]:
//!
//!   | precision | weights | bias  | activations | per-channel data (`quant_*`) |
//!   |-----------|---------|-------|-------------|------------------------------|
//!   | `F32`     | `f32`, OHWI | `f32` | `f32`   | none                         |
//!   | `F16`     | `f16`, OHWI | `f32` | `f32`   | none                         |
//!   | `Int8`    | `i8`, packed | `i32` | `i8`   | `u32` bits of each channel's f32 multiplier (when `requant` is [`Requant::PerChannel`]) |
//!
//! * The arena is one caller-provided byte buffer of `header.arena_size` bytes; each op reads its
//!   input at `input_offset` (an `add` its second operand at `input2_offset`) and writes its
//!   output at `output_offset` (bytes into the arena). The first op's input is where
//!   [`crate::Model::run`] copies the input; the last op's output holds the logits.
//! * The plan is a graph in execution order: an op's input is the output of an *earlier* op (the
//!   latest one whose `output_offset` equals the input offset, not necessarily the op just
//!   before: residual connections read older tensors) or the model input (the first op's
//!   `input_offset`), and no op in between may write over it (output or scratch).
//!
//! # int8 arithmetic
//! Inputs are `q = pixel - 128` (scale 1/255, zero point −128). A conv/dense output is
//! `clamp(requant(acc) + out_zp, act_min, act_max)` with `acc = bias + Σ (x − in_zp)·w`; `requant` is
//! one of tract-onnx's two roundings (see [`crate::quant`]). A fused or standalone average pool sums
//! `x − in_zp` over its window and requantizes with its own uniform multiplier, exactly like the
//! depthwise `QLinearConv` (all-ones weights, weight scale 1/n) that the ONNX export uses.
//! An `add` computes, per element and in f32 (as ONNX `DequantizeLinear` → `Add` →
//! `QuantizeLinear` does in tract), `y = f32(a − a_zp)·a_scale + f32(b − b_zp)·b_scale`, then
//! `clamp(round_half_even(y · (1/out_scale)) + out_zp, act_min, act_max)` with
//! `1/out_scale` one f32 division; a fused relu/relu6 is the clamp range, as for a conv. An int8
//! conv2d may carry such an add of a residual tensor into its own output, in place
//! ([`FLAG_RESIDUAL`]): the residual network's add costs no tensor of its own in the arena.
//!
//! Imported TFLite models use TFLite's arithmetic instead ([`Requant::Tflite`] on their
//! conv/dense/depthwise ops and average pools): the same accumulator, requantized with a Q31
//! multiplier and shift per channel, and TFLite's rounded average.

use crate::kernels::params::ParamError;
use bytemuck::{Pod, Zeroable};

#[cfg(target_endian = "big")]
compile_error!("mnistc-runtime reads its little-endian blobs in place and supports little-endian targets only");

/// The four bytes every blob starts with.
pub const MAGIC: [u8; 4] = *b"MNCB";
/// The layout version this runtime reads (and the compiler writes).
pub const FORMAT_VERSION: u16 = 2;
/// [`OpRecord::flags`] bit: an int8 `conv2d` without a fused pool adds a residual tensor to its
/// output, in place. The residual is the tensor at `input2_offset`, which must equal
/// `output_offset` (the op overwrites the residual as it reads it), with `input2_zero_point` and
/// `input2_scale`. The convolution is requantized to `conv_zero_point` and `conv_scale` over the
/// whole int8 range (no activation of its own), then added to the residual exactly as an `add`
/// op adds its operands (the convolution's output being the first), with `output_scale`,
/// `output_zero_point` and the `act_min..=act_max` clamp (the add's activation).
pub const FLAG_RESIDUAL: u32 = 1;
/// Largest `input_scale / output_scale` (and `input2_scale / output_scale`) of an int8 add:
/// `2^16`. With `|x − zp| <= 255` an operand then contributes at most `255 · 2^16 < 2^24` output
/// steps, so `|y · (1/output_scale)| < 2^25` (with the f32 roundings' few ulps to spare): the
/// f32 → i32 conversion is exact, never saturating, and `+ output_zero_point` cannot overflow,
/// as in tract, whose `as i32 + zp` would otherwise differ from (or overflow) the kernel's.
pub const MAX_ADD_SCALE_RATIO: f32 = 65536.0;
/// Alignment of every section inside the blob.
pub const SECTION_ALIGN: usize = 16;
/// Alignment the blob's first byte must have in memory.
pub const BLOB_ALIGN: usize = 4;
/// Most ops a plan may hold.
pub const MAX_OPS: usize = 32;
/// Most classes a model may have (the metadata has room for this many names).
pub const MAX_CLASSES: usize = 16;
/// Bytes of each class name (UTF-8, NUL-padded).
pub const CLASS_NAME_LEN: usize = 16;
/// Byte offset of the first byte covered by the checksum.
pub const CHECKSUM_START: usize = 16;

/// Numeric precision of a whole blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Precision {
    /// f32 weights and activations (the float reference).
    F32 = 0,
    /// f16 weights (`half::f16`), f32 bias and activations; computed in f32.
    F16 = 1,
    /// int8 weights (symmetric, per output channel), int32 bias, int8 activations.
    Int8 = 2,
}

impl Precision {
    /// Decodes the metadata byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::F32),
            1 => Some(Self::F16),
            2 => Some(Self::Int8),
            _ => None,
        }
    }
    /// Bytes per weight element.
    pub const fn weight_size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
            Self::Int8 => 1,
        }
    }
    /// Bytes per activation element.
    pub const fn activation_size(self) -> usize {
        match self {
            Self::F32 | Self::F16 => 4,
            Self::Int8 => 1,
        }
    }
    /// Bytes per bias element (`f32` or `i32`).
    pub const fn bias_size(self) -> usize {
        4
    }
    /// Lower-case name (`f32`, `f16`, `int8`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Int8 => "int8",
        }
    }
}

/// What an op computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpKind {
    /// 2-D convolution (cross-correlation), optionally followed by a fused pool.
    Conv2d = 1,
    /// Max pooling (no padding, floor).
    MaxPool2d = 2,
    /// Average pooling (no padding, floor).
    AvgPool2d = 3,
    /// Fully connected layer over the flattened (NHWC) input.
    Dense = 4,
    /// Depthwise 2-D convolution, channel multiplier 1: output channel `c` convolves input
    /// channel `c` alone. Weights `[kernel_h][kernel_w][c]` (TFLite's layout, not packed), one
    /// bias per channel; no fused pool.
    DepthwiseConv2d = 5,
    /// Element-wise sum of two tensors of the same shape (a residual connection), then the
    /// activation. The first operand is at `input_offset`, the second at `input2_offset`; no
    /// weights. int8: both operands are dequantized and added in f32, the sum is requantized to
    /// the output's scale (see the module docs).
    Add = 6,
}

impl OpKind {
    /// Decodes the record byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Conv2d),
            2 => Some(Self::MaxPool2d),
            3 => Some(Self::AvgPool2d),
            4 => Some(Self::Dense),
            5 => Some(Self::DepthwiseConv2d),
            6 => Some(Self::Add),
            _ => None,
        }
    }
    /// Lower-case name as in `model.toml`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Conv2d => "conv2d",
            Self::MaxPool2d => "maxpool2d",
            Self::AvgPool2d => "avgpool2d",
            Self::Dense => "dense",
            Self::DepthwiseConv2d => "depthwise_conv2d",
            Self::Add => "add",
        }
    }
}

/// Activation fused into a conv or dense op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Activation {
    /// Identity.
    None = 0,
    /// `max(x, 0)`.
    Relu = 1,
    /// `min(max(x, 0), 6)`.
    Relu6 = 2,
}

impl Activation {
    /// Decodes the record byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::None),
            1 => Some(Self::Relu),
            2 => Some(Self::Relu6),
            _ => None,
        }
    }
    /// Lower-case name as in `model.toml`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Relu => "relu",
            Self::Relu6 => "relu6",
        }
    }
}

/// Pool fused onto a conv op's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FusedPool {
    /// No pool: the op's output is the conv output.
    None = 0,
    /// Max pool over the conv output.
    Max = 1,
    /// Average pool over the conv output.
    Avg = 2,
}

impl FusedPool {
    /// Decodes the record byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::None),
            1 => Some(Self::Max),
            2 => Some(Self::Avg),
            _ => None,
        }
    }
    /// What an op's name gets for this pool: `+maxpool2d`, `+avgpool2d`, or nothing.
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Max => "+maxpool2d",
            Self::Avg => "+avgpool2d",
        }
    }
}

/// How an int8 conv/dense turns its i32 accumulator into int8 (tract-onnx's two paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Requant {
    /// Float ops (f32/f16 blobs) and int8 pools without a requantization.
    None = 0,
    /// One multiplier for the op: Q0.31 `multiplier` and `shift`, exact i64 product rounded half
    /// to even (tract's `Scaler`).
    Uniform = 1,
    /// One f32 multiplier per output channel in the weights section at `quant_offset`:
    /// `round_half_even(f32(f32(|acc|)·m_c))·sign(acc)` (tract's `scale_by`).
    PerChannel = 2,
    /// TFLite's arithmetic (imported TFLite models). A conv/dense/depthwise op: one Q31
    /// `[multiplier, shift]` i32 pair per output channel in the weights section at
    /// `quant_offset`, applied as [`crate::quant::requantize_tflite`]; a fused or standalone
    /// average pool divides the window's sum by its size, rounding half away from zero
    /// ([`crate::quant::tflite_average`]), keeping its input's zero point. No residual add.
    Tflite = 3,
}

impl Requant {
    /// Decodes the record byte.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::None),
            1 => Some(Self::Uniform),
            2 => Some(Self::PerChannel),
            3 => Some(Self::Tflite),
            _ => None,
        }
    }
}

/// Blob header (64 bytes at offset 0).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 4],
    /// [`FORMAT_VERSION`].
    pub version: u16,
    /// `size_of::<Header>()` (64).
    pub header_len: u16,
    /// Length of the whole blob in bytes.
    pub total_len: u32,
    /// CRC-32 of `blob[CHECKSUM_START..total_len]`.
    pub checksum: u32,
    /// Byte offset of [`Meta`].
    pub meta_offset: u32,
    /// `size_of::<Meta>()`.
    pub meta_len: u32,
    /// Byte offset of the first [`OpRecord`].
    pub plan_offset: u32,
    /// Number of ops (records).
    pub op_count: u16,
    /// `size_of::<OpRecord>()` (160).
    pub op_record_len: u16,
    /// Byte offset of the weights section (multiple of 16).
    pub weights_offset: u32,
    /// Length of the weights section.
    pub weights_len: u32,
    /// Bytes of arena the plan needs.
    pub arena_size: u32,
    /// Reserved flags (0).
    pub flags: u32,
    /// Reserved (0).
    pub reserved: [u32; 4],
}

/// Model metadata (fixed size).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct Meta {
    /// Model name, UTF-8, NUL-padded.
    pub name: [u8; 32],
    /// Data set name (`mnist`, `fashion-mnist`), UTF-8, NUL-padded.
    pub dataset: [u8; 16],
    /// [`Precision`] as `u8`.
    pub precision: u8,
    /// Number of classes (logits).
    pub class_count: u8,
    /// Reserved (0).
    pub reserved0: [u8; 2],
    /// Input height.
    pub input_h: u16,
    /// Input width.
    pub input_w: u16,
    /// Input channels.
    pub input_c: u16,
    /// Reserved (0).
    pub reserved1: u16,
    /// Scale of the model's input (1/255: the float input is `pixel / 255`).
    pub input_scale: f32,
    /// Zero point of the int8 input (−128: the int8 input is `pixel − 128`).
    pub input_zero_point: i32,
    /// Scale of the int8 logits (1.0 for float blobs).
    pub output_scale: f32,
    /// Zero point of the int8 logits (0 for float blobs).
    pub output_zero_point: i32,
    /// SHA-256 of the source model spec and data set files.
    pub source_hash: [u8; 32],
    /// Class names, UTF-8, NUL-padded; entries past `class_count` are zero.
    pub class_names: [[u8; CLASS_NAME_LEN]; MAX_CLASSES],
    /// Reserved (0).
    pub reserved: [u32; 5],
}

/// One op of the static plan (160 bytes).
///
/// Shapes are `(h, w, c)`; `in_*` is the op's input, `out_*` its output (after a fused pool).
/// Fields an op kind does not use must be zero.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct OpRecord {
    /// [`OpKind`] as `u8`.
    pub kind: u8,
    /// [`Activation`] as `u8` (conv and dense).
    pub activation: u8,
    /// [`FusedPool`] as `u8` (conv only).
    pub pool: u8,
    /// [`Requant`] as `u8` (int8 conv and dense).
    pub requant: u8,
    /// Flags: [`FLAG_RESIDUAL`] on an int8 `conv2d`, else 0.
    pub flags: u32,
    /// Input height.
    pub in_h: u16,
    /// Input width.
    pub in_w: u16,
    /// Input channels.
    pub in_c: u16,
    /// Output height.
    pub out_h: u16,
    /// Output width.
    pub out_w: u16,
    /// Output channels.
    pub out_c: u16,
    /// Kernel (conv) or window (pool) height.
    pub kernel_h: u16,
    /// Kernel (conv) or window (pool) width.
    pub kernel_w: u16,
    /// Vertical stride.
    pub stride_h: u16,
    /// Horizontal stride.
    pub stride_w: u16,
    /// Zero-padding rows above (conv).
    pub pad_top: u16,
    /// Zero-padding columns left (conv).
    pub pad_left: u16,
    /// Zero-padding rows below (conv).
    pub pad_bottom: u16,
    /// Zero-padding columns right (conv).
    pub pad_right: u16,
    /// Fused pool window height.
    pub pool_h: u16,
    /// Fused pool window width.
    pub pool_w: u16,
    /// Fused pool vertical stride.
    pub pool_stride_h: u16,
    /// Fused pool horizontal stride.
    pub pool_stride_w: u16,
    /// Weights: byte offset into the weights section.
    pub weights_offset: u32,
    /// Weights: byte length.
    pub weights_len: u32,
    /// Bias: byte offset into the weights section.
    pub bias_offset: u32,
    /// Bias: byte length.
    pub bias_len: u32,
    /// Per-channel multipliers: byte offset into the weights section.
    pub quant_offset: u32,
    /// Per-channel multipliers: byte length.
    pub quant_len: u32,
    /// int8: zero point of the input.
    pub input_zero_point: i32,
    /// int8: zero point of the conv/dense result (before a fused pool).
    pub conv_zero_point: i32,
    /// int8: zero point of the op's output.
    pub output_zero_point: i32,
    /// int8, [`Requant::Uniform`]: Q0.31 multiplier in `[2^30, 2^31)`.
    pub multiplier: i32,
    /// int8, [`Requant::Uniform`]: tract's shift (total right shift is `31 + shift`).
    pub shift: i32,
    /// int8: lowest output value (after the zero point).
    pub act_min: i32,
    /// int8: highest output value.
    pub act_max: i32,
    /// int8 average pool (standalone or fused): Q0.31 multiplier.
    pub pool_multiplier: i32,
    /// int8 average pool: shift.
    pub pool_shift: i32,
    /// Arena byte offset of the input.
    pub input_offset: u32,
    /// Arena byte offset of the output.
    pub output_offset: u32,
    /// Arena byte offset of the scratch buffer.
    pub scratch_offset: u32,
    /// Bytes of scratch reserved for this op.
    pub scratch_len: u32,
    /// Scale of the input (informational; int8).
    pub input_scale: f32,
    /// Scale of the output (informational for every int8 op but `add`, which requantizes to it).
    pub output_scale: f32,
    /// `add`: arena byte offset of the second operand (0 for other ops).
    pub input2_offset: u32,
    /// `add`, int8: zero point of the second operand (0 otherwise).
    pub input2_zero_point: i32,
    /// `add`, int8: scale of the second operand (0.0 otherwise).
    pub input2_scale: f32,
    /// int8 `conv2d` with [`FLAG_RESIDUAL`]: scale of the convolution's own output, before the
    /// residual add (0.0 otherwise).
    pub conv_scale: f32,
    /// Reserved for later ops (0).
    pub reserved: [u32; 4],
}

const _: () = assert!(core::mem::size_of::<Header>() == 64);
const _: () = assert!(core::mem::size_of::<OpRecord>() == 160);
const _: () = assert!(core::mem::size_of::<Meta>().is_multiple_of(SECTION_ALIGN));

impl Meta {
    /// Size of the metadata section.
    pub const SIZE: usize = core::mem::size_of::<Meta>();
}

impl Header {
    /// Size of the header.
    pub const SIZE: usize = core::mem::size_of::<Header>();
}

impl OpRecord {
    /// Size of one plan record.
    pub const SIZE: usize = core::mem::size_of::<OpRecord>();
}

/// Taps per group of the packed int8 weight layout.
pub const TAP_GROUP: usize = 4;

/// Bytes of packed int8 weights for `out` output channels of `k` taps: `ceil(k/4)·4·out`
/// (saturating at `usize::MAX`).
pub const fn packed_len(k: usize, out: usize) -> usize {
    k.div_ceil(TAP_GROUP).saturating_mul(TAP_GROUP).saturating_mul(out)
}

/// Index of tap `k` of output channel `oc` in the packed int8 layout `[ceil(K/4)][out][4]`
/// (wrapping arithmetic: in bounds, and exact, for any `k`, `oc < out` of a checked op).
#[inline(always)]
pub const fn packed_index(k: usize, oc: usize, out: usize) -> usize {
    (k / TAP_GROUP).wrapping_mul(out).wrapping_add(oc).wrapping_mul(TAP_GROUP).wrapping_add(k % TAP_GROUP)
}

/// Packs int8 weights from `[out][k]` (OHWI) into the blob layout (see [`packed_index`]); the
/// padding taps are zeroed.
///
/// # Errors
/// [`ParamError::Weights`] unless `ohwi` holds `k·out` values and `packed` [`packed_len`]`(k, out)`
/// bytes, [`ParamError::Overflow`] if those sizes overflow; nothing is written then.
// For the compiler's blob writer (and tests): not part of the reading API, so hidden from the docs.
#[doc(hidden)]
pub fn pack_weights(ohwi: &[i8], k: usize, out: usize, packed: &mut [i8]) -> Result<(), ParamError> {
    let n = k.checked_mul(out).ok_or(ParamError::Overflow)?;
    let len = k.div_ceil(TAP_GROUP).checked_mul(TAP_GROUP).and_then(|g| g.checked_mul(out));
    let len = len.ok_or(ParamError::Overflow)?;
    if ohwi.len() != n || packed.len() != len {
        return Err(ParamError::Weights);
    }
    packed.fill(0);
    if k == 0 {
        return Ok(());
    }
    for (oc, filter) in ohwi.chunks_exact(k).enumerate() {
        for (t, &w) in filter.iter().enumerate() {
            // In bounds: packed_index(t, oc, out) < ceil(k/4)·4·out for t < k, oc < out.
            if let Some(slot) = packed.get_mut(packed_index(t, oc, out)) {
                *slot = w;
            }
        }
    }
    Ok(())
}

/// CRC-32 (IEEE 802.3, reflected, init and final XOR `0xFFFF_FFFF`; the zlib/PNG CRC) of `bytes`.
///
/// Nibble-table implementation: 64 bytes of table, two lookups per byte.
pub fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 16] = {
        let mut t = [0u32; 16];
        let mut i = 0;
        while i < 16 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 4 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ b as u32) & 0xF) as usize] ^ (crc >> 4);
        crc = TABLE[((crc ^ (b as u32 >> 4)) & 0xF) as usize] ^ (crc >> 4);
    }
    !crc
}

/// Arena bytes a blob declares, readable in `const` context so firmware can size a `static`
/// arena at compile time: `static mut ARENA: Aligned<[u8; arena_size_of(BLOB)]>`.
///
/// Returns 0 when `blob` is too short to hold a header or does not start with [`MAGIC`]; the
/// blob is not validated (that is [`crate::Model::from_bytes`]'s job).
pub const fn arena_size_of(blob: &[u8]) -> usize {
    if blob.len() < Header::SIZE
        || blob[0] != MAGIC[0]
        || blob[1] != MAGIC[1]
        || blob[2] != MAGIC[2]
        || blob[3] != MAGIC[3]
    {
        return 0;
    }
    u32::from_le_bytes([blob[40], blob[41], blob[42], blob[43]]) as usize
}

/// Copies `s` into a NUL-padded fixed array, truncating at a character boundary.
// For the compiler's blob writer: not part of the reading API, so hidden from the docs.
#[doc(hidden)]
pub fn fixed_str<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

/// Reads a NUL-padded fixed array back as `&str` (up to the first NUL; `""` if not UTF-8).
pub fn str_from_fixed(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..end]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_known_vectors() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414F_A339);
    }

    #[test]
    fn arena_size_is_at_its_documented_offset() {
        let h = Header { magic: MAGIC, arena_size: 0x0102_0304, ..Zeroable::zeroed() };
        assert_eq!(arena_size_of(bytemuck::bytes_of(&h)), 0x0102_0304);
        assert_eq!(arena_size_of(&bytemuck::bytes_of(&h)[..63]), 0);
    }

    #[test]
    fn fixed_strings_round_trip_and_truncate_on_char_boundaries() {
        let a: [u8; 16] = fixed_str("T-shirt/top");
        assert_eq!(str_from_fixed(&a), "T-shirt/top");
        let b: [u8; 4] = fixed_str("aé€");
        assert_eq!(str_from_fixed(&b), "aé");
    }
}
