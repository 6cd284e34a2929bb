//! Loading and running hand-built blobs: residual graphs (an op reading an older tensor or the
//! model input, an `add` of two tensors), what validation refuses in a graph, and that a plain
//! chain validates exactly as before.

extern crate std;
use std::vec;
use std::vec::Vec;

use bytemuck::Zeroable;

use super::*;
use crate::format::{Activation, FORMAT_VERSION, MAGIC, OpKind, crc32, fixed_str};
use crate::run::{Activations, Input};

/// A `Model` holds a copy of the header and a few references, no copy of the plan (with one
/// it was ~3 KB, and loading it set the firmware's stack high-water mark).
#[test]
fn a_model_holds_no_copy_of_its_plan() {
    let size = core::mem::size_of::<Model<'static>>();
    assert!(size <= core::mem::size_of::<Header>() + 8 * core::mem::size_of::<usize>(), "Model is {size} B");
    assert!(size < core::mem::size_of::<Op<'static>>() * 2);
}

// ---------- a blob writer for tests ----------

/// A blob in 16-byte-aligned memory.
struct Blob {
    words: Vec<u128>,
    len: usize,
}

impl Blob {
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

/// The blob layout of `format`: header, metadata, plan, weights, sealed with the checksum. The
/// logits are the last op's output, with its scale and zero point.
fn write(precision: Precision, input: [u16; 3], records: &[OpRecord], weights: &[u8], arena: u32) -> Blob {
    let last = records.last().expect("at least one op");
    let mut meta = Meta::zeroed();
    meta.name = fixed_str("residual");
    meta.dataset = fixed_str("test");
    meta.precision = precision as u8;
    meta.class_count = (last.out_h * last.out_w * last.out_c) as u8;
    for (i, name) in meta.class_names.iter_mut().take(meta.class_count as usize).enumerate() {
        *name = fixed_str(["a", "b", "c", "d", "e", "f"][i % 6]);
    }
    [meta.input_h, meta.input_w, meta.input_c] = input;
    meta.input_scale = 1.0 / 255.0;
    if precision == Precision::Int8 {
        meta.input_zero_point = -128;
        // (Valid ones, so that an op's invalid scale or zero point is reported at the op.)
        let valid = crate::quant::per_channel_multiplier_is_valid(last.output_scale.to_bits());
        meta.output_scale = if valid { last.output_scale } else { 1.0 };
        meta.output_zero_point = last.output_zero_point.clamp(-128, 127);
    } else {
        meta.output_scale = 1.0;
    }
    let plan_offset = Header::SIZE + Meta::SIZE;
    let weights_offset = plan_offset + records.len() * OpRecord::SIZE;
    let total = weights_offset + weights.len();
    let header = Header {
        magic: MAGIC,
        version: FORMAT_VERSION,
        header_len: Header::SIZE as u16,
        total_len: total as u32,
        checksum: 0,
        meta_offset: Header::SIZE as u32,
        meta_len: Meta::SIZE as u32,
        plan_offset: plan_offset as u32,
        op_count: records.len() as u16,
        op_record_len: OpRecord::SIZE as u16,
        weights_offset: weights_offset as u32,
        weights_len: weights.len() as u32,
        arena_size: arena,
        flags: 0,
        reserved: [0; 4],
    };
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(bytemuck::bytes_of(&header));
    bytes.extend_from_slice(bytemuck::bytes_of(&meta));
    bytes.extend_from_slice(bytemuck::cast_slice(records));
    bytes.extend_from_slice(weights);
    let checksum = crc32(&bytes[16..]);
    bytes[12..16].copy_from_slice(&checksum.to_le_bytes());
    let mut words = vec![0u128; total.div_ceil(16)];
    bytemuck::cast_slice_mut::<u128, u8>(&mut words)[..total].copy_from_slice(&bytes);
    Blob { words, len: total }
}

/// A record of `kind` reading `input` (h, w, c) at `from` and writing `output` at `to`.
fn record(kind: OpKind, input: [u16; 3], output: [u16; 3], from: u32, to: u32) -> OpRecord {
    OpRecord {
        kind: kind as u8,
        in_h: input[0],
        in_w: input[1],
        in_c: input[2],
        out_h: output[0],
        out_w: output[1],
        out_c: output[2],
        input_offset: from,
        output_offset: to,
        ..OpRecord::zeroed()
    }
}

/// A standalone pool with an `n`×`n` window, stride 1.
fn pool(kind: OpKind, input: [u16; 3], n: u16, from: u32, to: u32) -> OpRecord {
    let output = [input[0] - n + 1, input[1] - n + 1, input[2]];
    OpRecord { kernel_h: n, kernel_w: n, stride_h: 1, stride_w: 1, ..record(kind, input, output, from, to) }
}

/// int8 fields of a pool whose input (and, for a max pool, output) has zero point `zp`.
fn int8_pool(r: OpRecord, zp: i32, out_zp: i32, scales: (f32, f32)) -> OpRecord {
    OpRecord {
        input_zero_point: zp,
        conv_zero_point: zp,
        output_zero_point: out_zp,
        act_min: -128,
        act_max: 127,
        input_scale: scales.0,
        output_scale: scales.1,
        ..r
    }
}

/// An add of `[h, w, c]` tensors at `a` and `b`, written at `to`.
fn add(shape: [u16; 3], a: u32, b: u32, to: u32, activation: Activation) -> OpRecord {
    OpRecord { activation: activation as u8, input2_offset: b, ..record(OpKind::Add, shape, shape, a, to) }
}

const S: f32 = 1.0 / 255.0;

/// A 3×3 grey int8 model with a residual connection; arena (bytes):
/// `input 0..9 | t0 16..20 | out 24..28 | t1 32..36 | t2 48..52`.
///
/// - op 0: 2×2 max pool of the input → `t0` (zero point −128, scale 1/255);
/// - op 1: 1×1 average pool of `t0` scaled by 1/4 → `t1` (zero point 0, scale 4/255);
/// - op 2: 1×1 max pool of `t1` → `t2` (a copy);
/// - op 3: `relu(t0 + t2)` at scale 3/255, zero point −128 → the 4 logits. `t0` was written three
///   ops earlier (op 1 and 2 wrote elsewhere); it lies before the output, `t2` after it.
fn int8_graph() -> Vec<OpRecord> {
    let (multiplier, shift) = crate::quant::multiplier_from_scale(0.25).unwrap();
    vec![
        int8_pool(pool(OpKind::MaxPool2d, [3, 3, 1], 2, 0, 16), -128, -128, (S, S)),
        OpRecord {
            pool_multiplier: multiplier,
            pool_shift: shift,
            ..int8_pool(pool(OpKind::AvgPool2d, [2, 2, 1], 1, 16, 32), -128, 0, (S, 4.0 * S))
        },
        int8_pool(pool(OpKind::MaxPool2d, [2, 2, 1], 1, 32, 48), 0, 0, (4.0 * S, 4.0 * S)),
        OpRecord {
            input_zero_point: -128,
            input2_zero_point: 0,
            conv_zero_point: -128,
            output_zero_point: -128,
            act_min: -128,
            act_max: 127,
            input_scale: S,
            input2_scale: 4.0 * S,
            output_scale: 3.0 * S,
            ..add([2, 2, 1], 16, 48, 24, Activation::Relu)
        },
    ]
}

/// The pixels of the int8 test image: `q = p − 128` is `[−118, 72, −98; −88, −78, −68; −58, −48, 122]`.
const PIXELS: [u8; 9] = [10, 200, 30, 40, 50, 60, 70, 80, 250];

fn int8_blob(records: &[OpRecord]) -> Blob {
    write(Precision::Int8, [3, 3, 1], records, &[], 64)
}

/// Loads `records` as an int8 blob: the error, if any.
fn int8_error(records: &[OpRecord]) -> Option<LoadError> {
    Model::from_bytes(int8_blob(records).bytes()).err()
}

/// Runs an int8 model on [`PIXELS`]: every op's output, then the logits.
fn run_int8(records: &[OpRecord]) -> (Vec<Vec<i8>>, Vec<i8>) {
    let blob = int8_blob(records);
    let model = Model::from_bytes(blob.bytes()).expect("the test blob loads");
    let mut arena = vec![0x55u8; model.arena_size()];
    let mut seen = Vec::new();
    let logits = model
        .run_observed(Input::Pixels(&PIXELS), &mut arena, |_, a| match a {
            Activations::I8 { values, .. } => seen.push(values.to_vec()),
            Activations::F32(_) => unreachable!("an int8 model"),
        })
        .expect("a loaded model runs");
    let Activations::I8 { values, .. } = logits else { unreachable!("an int8 model") };
    (seen, values.to_vec())
}

fn op_err(index: u16, field: &'static str, problem: Problem) -> Option<LoadError> {
    Some(LoadError::Op { index, field, problem })
}

/// `blob` with its model input quantized at `scale` and `zero_point`, resealed.
fn with_input_quant(blob: Blob, scale: f32, zero_point: i32) -> Blob {
    let mut bytes = blob.bytes().to_vec();
    let at = Header::SIZE..Header::SIZE + Meta::SIZE;
    let mut meta: Meta = bytemuck::pod_read_unaligned(&bytes[at.clone()]);
    (meta.input_scale, meta.input_zero_point) = (scale, zero_point);
    bytes[at].copy_from_slice(bytemuck::bytes_of(&meta));
    let checksum = crc32(&bytes[16..]);
    bytes[12..16].copy_from_slice(&checksum.to_le_bytes());
    let mut words = vec![0u128; bytes.len().div_ceil(16)];
    bytemuck::cast_slice_mut::<u128, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    Blob { words, len: bytes.len() }
}

// An imported int8 model whose input is not `pixel − 128` (audio features, say) runs on int8
// input and refuses pixels and floats with `InputKind` (the blob fuzz target once fed such a
// model pixels and took the refusal for a failure: `fuzz/README.md`).
#[test]
fn an_int8_model_whose_input_is_not_pixels_runs_on_int8_input_only() {
    let records = [int8_pool(pool(OpKind::MaxPool2d, [3, 3, 1], 2, 0, 16), 3, 3, (0.5, 0.5))];
    let blob = with_input_quant(int8_blob(&records), 0.5, 3);
    let model = Model::from_bytes(blob.bytes()).expect("an int8-input model loads");
    assert!(!model.takes_pixels());
    let mut arena = vec![0u8; model.arena_size()];
    assert_eq!(model.run_logits(Input::Pixels(&PIXELS), &mut arena).err(), Some(crate::RunError::InputKind));
    assert_eq!(model.run_logits(Input::F32(&[0.5; 9]), &mut arena).err(), Some(crate::RunError::InputKind));
    let q: [i8; 9] = [-118, 72, -98, -88, -78, -68, -58, -48, 122];
    let Ok(Activations::I8 { values, .. }) = model.run_logits(Input::I8(&q), &mut arena) else {
        panic!("int8 input runs an int8 model")
    };
    assert_eq!(values, [72, 72, -48, 122]);
}

// ---------- residual graphs that load and run ----------

#[test]
fn an_int8_residual_graph_loads_and_runs() {
    let blob = int8_blob(&int8_graph());
    let model = Model::from_bytes(blob.bytes()).unwrap();
    assert_eq!((model.meta().output_scale, model.meta().output_zero_point), (3.0 * S, -128));
    let (seen, logits) = run_int8(&int8_graph());
    // 2×2 max pool of q: max(−118, 72, −88, −78) = 72, 72, −48, 122 (pixels 200, 200, 80, 250).
    assert_eq!(seen[0], [72, 72, -48, 122]);
    // (q + 128) / 4, half to even: 50, 50, 20, 62.5 → 62.
    assert_eq!(seen[1], [50, 50, 20, 62]);
    assert_eq!(seen[2], seen[1]);
    // Real sums (in 1/255): 200 + 4·50 = 400, 400, 80 + 80 = 160, 250 + 248 = 498; at scale 3/255:
    // 133.3 → 133, 133, 53.3 → 53, 166 → 166; minus 128.
    assert_eq!(logits, [5, 5, -75, 38]);
    assert_eq!(seen[3], logits);
}

#[test]
fn an_add_may_read_one_tensor_twice() {
    // relu(t0 + t0): 2·(200, 200, 80, 250)/255 at scale 3/255 = 133.3, 133.3, 53.3, 166.7.
    let mut records = int8_graph();
    records[3].input2_offset = 16;
    records[3].input2_zero_point = -128;
    records[3].input2_scale = S;
    let (_, logits) = run_int8(&records);
    assert_eq!(logits, [5, 5, -75, 39]);
}

#[test]
fn an_op_may_read_the_model_input_again() {
    // op 1 pools the model input again (op 0 left it alone): t1 = t0; their sum as above.
    let mut records = int8_graph();
    records[1] = int8_pool(pool(OpKind::MaxPool2d, [3, 3, 1], 2, 0, 32), -128, -128, (S, S));
    records[2] = int8_pool(pool(OpKind::MaxPool2d, [2, 2, 1], 1, 32, 48), -128, -128, (S, S));
    records[3].input2_zero_point = -128;
    records[3].input2_scale = S;
    let (seen, logits) = run_int8(&records);
    assert_eq!(seen[1], [72, 72, -48, 122]);
    assert_eq!(logits, [5, 5, -75, 39]);
}

/// A 3×3 float model: a 2×2 max pool (`t0`, arena bytes 48..64), a 1×1 convolution of `t0`
/// (`0.5·x + 1`, `t1` at 64..80), `relu6(t0 + t1)` over the dead input (0..16).
#[cfg(feature = "float")]
fn f32_blob(records: &[OpRecord]) -> Blob {
    let mut weights = Vec::new();
    weights.extend_from_slice(&0.5f32.to_le_bytes());
    weights.extend_from_slice(&1.0f32.to_le_bytes());
    write(Precision::F32, [3, 3, 1], records, &weights, 80)
}

#[cfg(feature = "float")]
fn f32_graph() -> Vec<OpRecord> {
    vec![
        pool(OpKind::MaxPool2d, [3, 3, 1], 2, 0, 48),
        OpRecord {
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 1,
            stride_w: 1,
            weights_offset: 0,
            weights_len: 4,
            bias_offset: 4,
            bias_len: 4,
            ..record(OpKind::Conv2d, [2, 2, 1], [2, 2, 1], 48, 64)
        },
        add([2, 2, 1], 48, 64, 0, Activation::Relu6),
    ]
}

#[cfg(feature = "float")]
#[test]
fn an_f32_residual_graph_loads_and_runs() {
    let blob = f32_blob(&f32_graph());
    let model = Model::from_bytes(blob.bytes()).expect("the test blob loads");
    assert_eq!(model.ops().count(), 3);
    let mut words = vec![0u128; model.arena_size().div_ceil(16)];
    let arena = &mut bytemuck::cast_slice_mut::<u128, u8>(&mut words)[..model.arena_size()];
    let input = [7.0f32, -1.0, 0.5, -3.0, -2.0, -0.25, -4.0, -5.0, -1.0];
    let mut seen: Vec<Vec<f32>> = Vec::new();
    let logits = model
        .run_observed(Input::F32(&input), arena, |_, a| seen.push((0..a.len()).map(|i| a.value(i)).collect()))
        .unwrap();
    let logits: Vec<f32> = (0..logits.len()).map(|i| logits.value(i)).collect();
    let want: [&[f32]; 3] = [&[7.0, 0.5, -2.0, -0.25], &[4.5, 1.25, 0.0, 0.875], &[6.0, 1.75, 0.0, 0.625]];
    assert_eq!(seen, want.map(<[f32]>::to_vec));
    // 7 + 4.5 = 11.5 → 6; 0.5 + 1.25; −2 + 0 → 0; −0.25 + 0.875.
    assert_eq!(logits, [6.0, 1.75, 0.0, 0.625]);
}

#[cfg(feature = "float")]
#[test]
fn f32_add_fields_follow_their_rules() {
    let error = |edit: fn(&mut OpRecord)| {
        let mut records = f32_graph();
        edit(&mut records[2]);
        Model::from_bytes(f32_blob(&records).bytes()).err()
    };
    assert_eq!(error(|r| r.input2_scale = 0.5), op_err(2, "input2_scale", Problem::Unknown));
    assert_eq!(error(|r| r.input2_zero_point = 1), op_err(2, "input2_zero_point", Problem::Unknown));
    assert_eq!(error(|r| r.output_scale = 1.0), op_err(2, "output_scale", Problem::Unknown));
    assert_eq!(error(|r| r.act_max = 6), op_err(2, "act_max", Problem::Unknown));
    assert_eq!(error(|r| r.requant = 1), op_err(2, "requant", Problem::Unknown));
    assert_eq!(error(|r| r.weights_len = 4), op_err(2, "weights_len", Problem::Unknown));
    assert_eq!(error(|r| r.input2_offset = 4), op_err(2, "input2_offset", Problem::Mismatch));
    // The model input is 3×3: not the first operand's shape.
    assert_eq!(error(|r| r.input2_offset = 0), op_err(2, "input2_offset", Problem::Mismatch));
    assert_eq!(error(|r| r.output_offset = 56), op_err(2, "output_offset", Problem::Overlap));
    assert_eq!(error(|r| r.output_offset = 2), op_err(2, "output_offset", Problem::Misaligned));
    assert_eq!(error(|r| r.out_c = 2), op_err(2, "out_c", Problem::Mismatch));
}

// ---------- what validation refuses in a graph ----------

#[test]
fn a_second_operand_where_no_tensor_is_is_refused() {
    let mut records = int8_graph();
    records[3].input2_offset = 40;
    assert_eq!(int8_error(&records), op_err(3, "input2_offset", Problem::Mismatch));
    // Inside a tensor, not at its start.
    records[3].input2_offset = 17;
    assert_eq!(int8_error(&records), op_err(3, "input2_offset", Problem::Mismatch));
}

#[test]
fn an_operand_overwritten_since_it_was_written_is_refused() {
    // op 2 now writes t2 at 18..22, over t0 (16..20), which op 3 still reads.
    let mut records = int8_graph();
    records[2].output_offset = 18;
    records[3].input2_offset = 18;
    assert_eq!(int8_error(&records), op_err(3, "input_offset", Problem::Overlap));
    // The same as the second operand.
    records[3].input_offset = 18;
    records[3].input_zero_point = 0;
    records[3].input2_offset = 16;
    records[3].input2_zero_point = -128;
    assert_eq!(int8_error(&records), op_err(3, "input2_offset", Problem::Overlap));
    // A scratch buffer over it counts as much as an output.
    let mut records = int8_graph();
    records[2].scratch_offset = 19;
    records[2].scratch_len = 1;
    assert_eq!(int8_error(&records), op_err(3, "input_offset", Problem::Overlap));
}

#[test]
fn the_model_input_overwritten_before_an_op_reads_it_is_refused() {
    let mut records = int8_graph();
    records[1] = int8_pool(pool(OpKind::MaxPool2d, [2, 2, 1], 1, 16, 2), -128, -128, (S, S));
    records[2] = int8_pool(pool(OpKind::MaxPool2d, [3, 3, 1], 2, 0, 48), -128, -128, (S, S));
    assert_eq!(int8_error(&records), op_err(2, "input_offset", Problem::Overlap));
}

#[test]
fn operands_of_another_shape_or_zero_point_are_refused() {
    let mut records = int8_graph();
    // The model input (3×3) as the second operand.
    records[3].input2_offset = 0;
    assert_eq!(int8_error(&records), op_err(3, "input2_offset", Problem::Mismatch));
    let mut records = int8_graph();
    records[3].input2_zero_point = -128;
    assert_eq!(int8_error(&records), op_err(3, "input2_zero_point", Problem::Mismatch));
    let mut records = int8_graph();
    records[3].input_zero_point = 0;
    assert_eq!(int8_error(&records), op_err(3, "input_zero_point", Problem::Mismatch));
    let mut records = int8_graph();
    records[3].in_c = 2;
    assert_eq!(int8_error(&records), op_err(3, "in_c", Problem::Mismatch));
    let mut records = int8_graph();
    records[3].out_w = 1;
    assert_eq!(int8_error(&records), op_err(3, "out_w", Problem::Mismatch));
}

#[test]
fn an_add_output_over_an_operand_is_refused() {
    let mut records = int8_graph();
    records[3].output_offset = 50; // inside t2 (48..52)
    assert_eq!(int8_error(&records), op_err(3, "output_offset", Problem::Overlap));
    records[3].output_offset = 14; // over the start of t0 (16..20)
    assert_eq!(int8_error(&records), op_err(3, "output_offset", Problem::Overlap));
    // Scratch over an operand.
    let mut records = int8_graph();
    records[3].scratch_offset = 51;
    records[3].scratch_len = 4;
    assert_eq!(int8_error(&records), op_err(3, "scratch_offset", Problem::Overlap));
}

#[test]
fn int8_add_fields_follow_their_rules() {
    let error = |edit: fn(&mut OpRecord)| {
        let mut records = int8_graph();
        edit(&mut records[3]);
        int8_error(&records)
    };
    assert_eq!(error(|_| ()), None);
    assert_eq!(error(|r| r.pool = 1), op_err(3, "pool", Problem::Unknown));
    assert_eq!(error(|r| r.requant = 1), op_err(3, "requant", Problem::Unknown));
    assert_eq!(error(|r| r.kernel_h = 1), op_err(3, "kernel_h", Problem::Unknown));
    assert_eq!(error(|r| r.pad_right = 1), op_err(3, "pad_right", Problem::Unknown));
    assert_eq!(error(|r| r.bias_len = 4), op_err(3, "bias_len", Problem::Unknown));
    assert_eq!(error(|r| r.quant_offset = 4), op_err(3, "quant_offset", Problem::Unknown));
    assert_eq!(error(|r| r.multiplier = 1 << 30), op_err(3, "multiplier", Problem::Unknown));
    assert_eq!(error(|r| r.pool_shift = 1), op_err(3, "pool_shift", Problem::Unknown));
    assert_eq!(error(|r| r.output_zero_point = 128), op_err(3, "output_zero_point", Problem::OutOfRange));
    assert_eq!(error(|r| r.conv_zero_point = 0), op_err(3, "conv_zero_point", Problem::Mismatch));
    assert_eq!(error(|r| r.act_min = -129), op_err(3, "act_min", Problem::OutOfRange));
    assert_eq!(error(|r| r.act_max = -129), op_err(3, "act_max", Problem::OutOfRange));
    assert_eq!(error(|r| (r.act_min, r.act_max) = (10, 9)), op_err(3, "act_max", Problem::OutOfRange));
    for bad in [0.0, -S, f32::NAN, f32::INFINITY, f32::MIN_POSITIVE / 2.0] {
        let e = |field| op_err(3, field, Problem::OutOfRange);
        let mut records = int8_graph();
        records[3].input_scale = bad;
        assert_eq!(int8_error(&records), e("input_scale"), "{bad}");
        let mut records = int8_graph();
        records[3].input2_scale = bad;
        assert_eq!(int8_error(&records), e("input2_scale"), "{bad}");
        let mut records = int8_graph();
        records[3].output_scale = bad;
        assert_eq!(int8_error(&records), e("output_scale"), "{bad}");
    }
    // Operand-to-output scale ratios: 2^16 at most.
    assert_eq!(error(|r| r.input_scale = r.output_scale * 65536.0), None);
    assert_eq!(error(|r| r.input2_scale = r.output_scale * 65536.0), None);
    let too_big = op_err(3, "input_scale", Problem::AccumulatorOverflow);
    assert_eq!(error(|r| r.input_scale = r.output_scale * 65540.0), too_big);
    let too_big = op_err(3, "input2_scale", Problem::AccumulatorOverflow);
    assert_eq!(error(|r| r.input2_scale = r.output_scale * 65540.0), too_big);
    assert_eq!(error(|r| r.input2_scale = f32::MAX), too_big);
}

#[test]
fn an_extreme_scale_ratio_runs_and_saturates() {
    // Output scale 2^−16 of the first operand's: every nonzero sum saturates.
    let mut records = int8_graph();
    records[3].output_scale = S / 65536.0;
    records[3].input2_scale = S;
    let (_, logits) = run_int8(&records);
    assert_eq!(logits, [127; 4]);
}

#[test]
fn other_ops_leave_the_second_operand_fields_zero() {
    for op in 0..3 {
        let error = |edit: fn(&mut OpRecord)| {
            let mut records = int8_graph();
            edit(&mut records[op]);
            int8_error(&records)
        };
        let at = |field| op_err(op as u16, field, Problem::Unknown);
        assert_eq!(error(|r| r.input2_offset = 16), at("input2_offset"));
        assert_eq!(error(|r| r.input2_zero_point = -1), at("input2_zero_point"));
        assert_eq!(error(|r| r.input2_scale = 0.5), at("input2_scale"));
        assert_eq!(error(|r| r.reserved[3] = 1), at("reserved"));
    }
}

// ---------- chains validate as before ----------

/// The int8 graph's first three ops: a plain chain, each op reading the one before.
fn chain() -> Vec<OpRecord> {
    let mut records = int8_graph();
    records.truncate(3);
    records
}

#[test]
fn a_plain_chain_validates_as_before() {
    let blob = int8_blob(&chain());
    let model = Model::from_bytes(blob.bytes()).unwrap();
    let ops: Vec<Op<'_>> = model.ops().collect();
    assert_eq!(ops.len(), 3);
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op.input2, Region::default(), "op {i}");
        if i > 0 {
            assert_eq!(op.input, ops[i - 1].output, "op {i} reads what op {} wrote", i - 1);
        }
    }
    let (seen, logits) = {
        let mut arena = vec![0u8; model.arena_size()];
        let mut seen = Vec::new();
        let logits = model
            .run_observed(Input::Pixels(&PIXELS), &mut arena, |_, a| {
                seen.push((0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>())
            })
            .unwrap();
        (seen, logits.argmax())
    };
    assert_eq!(seen.len(), 3);
    assert_eq!(logits, 3);

    let error = |op: usize, edit: fn(&mut OpRecord)| {
        let mut records = chain();
        edit(&mut records[op]);
        let blob = write(Precision::Int8, [3, 3, 1], &records, &[], 64);
        Model::from_bytes(blob.bytes()).err()
    };
    // A wrong input offset is reported at the end, in the arena checks, after every check of the
    // op against the previous op's output (as when the plan had to be a chain).
    assert_eq!(error(1, |r| r.input_offset = 40), op_err(1, "input_offset", Problem::Mismatch));
    assert_eq!(error(1, |r| (r.input_offset, r.kernel_h) = (40, 0)), op_err(1, "kernel_h", Problem::OutOfRange));
    assert_eq!(error(2, |r| (r.input_offset, r.in_h) = (40, 3)), op_err(2, "in_h", Problem::Mismatch));
    assert_eq!(
        error(2, |r| (r.input_offset, r.input_zero_point) = (40, 5)),
        op_err(2, "input_zero_point", Problem::Mismatch)
    );
    assert_eq!(
        error(2, |r| (r.input_offset, r.output_offset) = (40, 99)),
        op_err(2, "input_offset", Problem::Mismatch)
    );
    // Out of the arena or misaligned, before it is looked for.
    assert_eq!(error(1, |r| r.input_offset = 62), op_err(1, "input_offset", Problem::OutOfBounds));
    // The shapes and zero points are the previous op's.
    assert_eq!(error(1, |r| r.in_w = 3), op_err(1, "in_w", Problem::Mismatch));
    assert_eq!(error(2, |r| r.input_zero_point = -128), op_err(2, "input_zero_point", Problem::Mismatch));
    assert_eq!(error(0, |r| r.output_offset = 8), op_err(0, "output_offset", Problem::Overlap));
}

/// `blob` with `edit` applied to its bytes, resealed (checksum recomputed).
fn edited(mut blob: Blob, edit: impl FnOnce(&mut [u8])) -> Blob {
    let bytes = &mut bytemuck::cast_slice_mut::<u128, u8>(&mut blob.words)[..blob.len];
    edit(bytes);
    let checksum = crc32(&bytes[16..]);
    bytes[12..16].copy_from_slice(&checksum.to_le_bytes());
    blob
}

#[test]
fn the_last_ops_output_must_be_the_logits() {
    let meta = |field: usize| Header::SIZE + field;
    // Three classes declared for an output of four.
    let blob = edited(int8_blob(&chain()), |b| {
        b[meta(core::mem::offset_of!(Meta, class_count))] = 3;
        let fourth = meta(core::mem::offset_of!(Meta, class_names)) + 3 * crate::format::CLASS_NAME_LEN;
        b[fourth..fourth + crate::format::CLASS_NAME_LEN].fill(0);
    });
    assert_eq!(Model::from_bytes(blob.bytes()).err(), op_err(2, "out_c", Problem::Mismatch));
    // The metadata's output zero point is the last op's (0).
    let at = meta(core::mem::offset_of!(Meta, output_zero_point));
    let blob = edited(int8_blob(&chain()), |b| b[at..at + 4].copy_from_slice(&(-1i32).to_le_bytes()));
    let mismatch = LoadError::Meta { field: "output_zero_point", problem: Problem::Mismatch };
    assert_eq!(Model::from_bytes(blob.bytes()).err(), Some(mismatch));
}

#[test]
fn the_residual_flag_belongs_to_conv2d_alone() {
    // A pool or an add with `FLAG_RESIDUAL` (or any other flag) is refused at `flags`; so is a
    // nonzero `conv_scale` on an op without the flag.
    for op in [1usize, 3] {
        let mut records = int8_graph();
        records[op].flags = crate::format::FLAG_RESIDUAL;
        assert_eq!(int8_error(&records), op_err(op as u16, "flags", Problem::Unknown));
        records[op].flags = 2;
        assert_eq!(int8_error(&records), op_err(op as u16, "flags", Problem::Unknown));
    }
    let mut records = int8_graph();
    records[1].conv_scale = 0.5;
    assert_eq!(int8_error(&records), op_err(1, "conv_scale", Problem::Unknown));
}
