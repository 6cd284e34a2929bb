//! The blob format end to end: the compiler's writer, the runtime's loader, and malformed blobs.
//!
//! Every mutation is resealed (checksum recomputed) so that the validation itself is exercised,
//! not just the CRC.

use std::mem::{offset_of, size_of};

use mnistc::lower::arena;
use mnistc::lower::emit::{self, AlignedBytes};
use mnistc::lower::plan::Precision;
use mnistc_runtime::format::{FORMAT_VERSION, Header, Meta, OpRecord};
use mnistc_runtime::{Input, LoadError, Model, Problem};
use mnistc_suite::{Rng, depthwise_plan, every_op_plan};
use proptest::prelude::*;

const PRECISIONS: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Int8];

fn blob_of(precision: Precision) -> Vec<u8> {
    emit::write(&every_op_plan(precision, 11)).expect("the fixture writes").to_vec()
}

fn depthwise_blob_of(precision: Precision) -> Vec<u8> {
    emit::write(&depthwise_plan(precision, 11)).expect("the depthwise fixture writes").to_vec()
}

fn residual_blob_of(precision: Precision) -> Vec<u8> {
    emit::write(&mnistc_suite::residual_plan(precision, 11)).expect("the residual fixture writes").to_vec()
}

fn arena_for(model: &Model<'_>) -> Vec<u8> {
    vec![0u8; model.arena_size()]
}

/// Loads `bytes` (copied to aligned memory) and, if that succeeds, runs a few inputs; it must not
/// panic either way.
fn load_and_run(bytes: &[u8]) -> Result<(), LoadError> {
    let aligned = AlignedBytes::from(bytes);
    let model = Model::from_bytes(aligned.as_bytes())?;
    let mut arena = AlignedBytes::from(arena_for(&model).as_slice());
    let mut out = vec![0f32; model.output_len()];
    let mut rng = Rng::new(3);
    for fill in [0u8, 255, 77] {
        let mut px = vec![fill; model.input_len()];
        if fill == 77 {
            px.iter_mut().for_each(|p| *p = rng.next_u64() as u8);
        }
        // A mutated input quantization makes an int8 blob take int8 tensors rather than pixels.
        let raw: Vec<i8> = px.iter().map(|&p| p as i8).collect();
        let input = if model.takes_pixels() { Input::Pixels(&px) } else { Input::I8(&raw) };
        let class = model.run(input, arena.as_bytes_mut(), &mut out).expect("a loaded model runs");
        assert!(class < model.output_len());
    }
    Ok(())
}

#[test]
fn written_blobs_load_and_run_in_every_precision() {
    for (precision, plan) in PRECISIONS.into_iter().flat_map(|p| [(p, every_op_plan(p, 5)), (p, depthwise_plan(p, 5))])
    {
        let blob = emit::write(&plan).unwrap();
        let bytes = blob.bytes();
        let model = blob.model();
        assert_eq!(model.precision(), precision);
        assert_eq!(model.op_count(), plan.ops.len());
        assert_eq!(model.ops().count(), plan.ops.len());
        assert_eq!(model.output_len(), plan.ops.last().unwrap().output.len());
        assert_eq!(model.input_shape(), plan.input);
        assert_eq!(model.class_name(3), "3");
        assert_eq!(model.class_name(10), "");
        assert_eq!(model.name(), plan.name);
        assert_eq!(model.dataset(), "mnist");
        assert_eq!(model.arena_size(), arena::plan_arena(&plan).size);
        assert_eq!(&arena::plan_arena(&plan), blob.arena());
        assert_eq!(mnistc_runtime::arena_size_of(bytes), model.arena_size());
        assert_eq!(blob.footprint().flash_bytes, bytes.len() as u64);
        load_and_run(bytes).unwrap();
    }
}

#[test]
fn arena_plan_reuses_memory_and_keeps_each_ops_buffers_apart() {
    let plan = every_op_plan(Precision::Int8, 1);
    let arena = arena::plan_arena(&plan);
    let elem = 1;
    let sizes: Vec<usize> = std::iter::once(plan.input.len()).chain(plan.ops.iter().map(|o| o.output.len())).collect();
    let scratch: usize = plan.ops.iter().map(|o| arena::scratch_bytes(o, plan.precision)).sum();
    let naive: usize = sizes.iter().map(|s| s * elem).sum::<usize>() + scratch;
    assert!(arena.size < naive, "arena {} should be smaller than one buffer per tensor ({naive})", arena.size);
    for (i, at) in arena.ops.iter().enumerate() {
        let (a, b) = ((at.input, at.input + sizes[i]), (at.output, at.output + sizes[i + 1]));
        assert!(a.1 <= b.0 || b.1 <= a.0, "op {i}: input {a:?} overlaps output {b:?}");
        if i > 0 {
            assert_eq!(at.input, arena.ops[i - 1].output, "op {i} reads where op {} wrote", i - 1);
        }
    }
}

/// A residual graph: every op reads where the op that wrote its input wrote it, however many ops
/// earlier, and no op in between (output or scratch) touches a tensor that is still to be read.
#[test]
fn arena_plan_keeps_residual_tensors_alive_across_their_branch() {
    for precision in PRECISIONS {
        let plan = mnistc_suite::residual_plan(precision, 2);
        assert!(!plan.is_chain());
        let arena = arena::plan_arena(&plan);
        let elem = precision.activation_size();
        let tensor = |t: usize| {
            let offset = if t == 0 { arena.ops[0].input } else { arena.ops[t - 1].output };
            (offset, offset + plan.tensor_shape(t).unwrap().len() * elem)
        };
        for (i, op) in plan.ops.iter().enumerate() {
            let placed = [arena.ops[i].input, arena.ops[i].input2];
            for (k, &t) in op.inputs.iter().enumerate() {
                let (start, end) = tensor(t);
                assert_eq!(placed[k], start, "op {i} operand {k} reads tensor {t}");
                // Ops after the producer (op t - 1), or every op before i for the image.
                for between in t..i {
                    let w = arena.ops[between];
                    let out = (w.output, w.output + plan.ops[between].output.len() * elem);
                    let scratch = (w.scratch, w.scratch + arena::scratch_bytes(&plan.ops[between], precision));
                    for (what, r) in [("output", out), ("scratch", scratch)] {
                        assert!(
                            r.0 == r.1 || r.1 <= start || end <= r.0,
                            "op {between}'s {what} {r:?} overwrites tensor {t} before op {i} reads it"
                        );
                    }
                }
            }
        }
        load_and_run(emit::write(&plan).unwrap().bytes()).unwrap();
    }
}

#[test]
fn writing_is_deterministic() {
    for precision in PRECISIONS {
        assert_eq!(
            emit::write(&every_op_plan(precision, 9)).unwrap(),
            emit::write(&every_op_plan(precision, 9)).unwrap()
        );
    }
}

#[test]
fn every_truncation_is_rejected() {
    for precision in PRECISIONS {
        let bytes = blob_of(precision);
        for len in 0..bytes.len() {
            let aligned = AlignedBytes::from(&bytes[..len]);
            match Model::from_bytes(aligned.as_bytes()) {
                Err(LoadError::Truncated { needed, got }) => {
                    assert_eq!(got, len);
                    assert_eq!(needed, if len < 64 { 64 } else { bytes.len() });
                }
                other => panic!("{precision:?}, {len} bytes: expected Truncated, got {other:?}"),
            }
        }
    }
}

#[test]
fn trailing_bytes_misalignment_and_corruption_are_rejected() {
    let bytes = blob_of(Precision::Int8);
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(
        matches!(load_and_run(&longer), Err(LoadError::LengthMismatch { declared, actual }) if declared as usize == bytes.len() && actual == bytes.len() + 1)
    );

    let mut shifted = vec![0u8; bytes.len() + 1];
    shifted[1..].copy_from_slice(&bytes);
    let aligned = AlignedBytes::from(shifted.as_slice());
    assert_eq!(Model::from_bytes(&aligned.as_bytes()[1..]).unwrap_err(), LoadError::Misaligned { required: 4 });

    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(matches!(load_and_run(&corrupt), Err(LoadError::ChecksumMismatch { .. })));
}

/// A field of a fixed-size struct: name, offset and size.
type Field = (&'static str, usize, usize);

macro_rules! fields {
    ($ty:ty: $($name:ident),* $(,)?) => {
        vec![$((stringify!($name), offset_of!($ty, $name), size_of_field(|s: &$ty| &s.$name))),*]
    };
}

fn size_of_field<S, T>(_: impl Fn(&S) -> &T) -> usize {
    size_of::<T>()
}

fn header_fields() -> Vec<Field> {
    fields!(Header: magic, version, header_len, total_len, checksum, meta_offset, meta_len, plan_offset, op_count,
        op_record_len, weights_offset, weights_len, arena_size, flags, reserved)
}

fn meta_fields() -> Vec<Field> {
    fields!(Meta: name, dataset, precision, class_count, reserved0, input_h, input_w, input_c, reserved1,
        input_scale, input_zero_point, output_scale, output_zero_point, source_hash, class_names, reserved)
}

fn record_fields() -> Vec<Field> {
    fields!(OpRecord: kind, activation, pool, requant, flags, in_h, in_w, in_c, out_h, out_w, out_c, kernel_h,
        kernel_w, stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right, pool_h, pool_w, pool_stride_h,
        pool_stride_w, weights_offset, weights_len, bias_offset, bias_len, quant_offset, quant_len,
        input_zero_point, conv_zero_point, output_zero_point, multiplier, shift, act_min, act_max,
        pool_multiplier, pool_shift, input_offset, output_offset, scratch_offset, scratch_len, input_scale,
        output_scale, input2_offset, input2_zero_point, input2_scale, conv_scale, reserved)
}

/// Values a field of `size` bytes is set to: small, large, off by one, sign flips.
fn mutations(original: &[u8]) -> Vec<Vec<u8>> {
    let size = original.len();
    let as_u64 = |b: &[u8]| b.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64);
    let from_u64 = |v: u64| (0..size).map(|i| (v >> (8 * (i % 8))) as u8).collect::<Vec<u8>>();
    let v = as_u64(original);
    let mut out =
        vec![vec![0u8; size], vec![0xFF; size], from_u64(v.wrapping_add(1)), from_u64(v.wrapping_sub(1)), from_u64(1)];
    if size >= 2 {
        out.push(from_u64(v ^ (1 << (8 * size.min(8) - 1))));
        out.push(from_u64(v.wrapping_mul(3)));
    }
    if size > 8 {
        let mut b = original.to_vec();
        b[size / 2] ^= 0x5A;
        out.push(b);
    }
    out.retain(|m| m != original);
    out
}

/// Applies every mutation to every field in `fields` at `base`, reseals, and checks the outcome
/// with `judge(field, result)`.
fn mutate_fields(
    bytes: &[u8],
    base: usize,
    fields: &[Field],
    mut judge: impl FnMut(&str, &Result<(), LoadError>),
) -> (usize, usize) {
    let (mut rejected, mut accepted) = (0, 0);
    for &(name, offset, size) in fields {
        let range = base + offset..base + offset + size;
        for m in mutations(&bytes[range.clone()]) {
            let mut b = bytes.to_vec();
            b[range.clone()].copy_from_slice(&m);
            if name != "checksum" {
                emit::reseal(&mut b);
            }
            let result = load_and_run(&b);
            judge(name, &result);
            if result.is_err() { rejected += 1 } else { accepted += 1 }
        }
    }
    (rejected, accepted)
}

const SECTIONS: [&str; 6] = ["meta_offset", "meta_len", "plan_offset", "op_count", "weights_offset", "weights_len"];

#[test]
fn header_field_mutations_are_rejected_where_they_are() {
    for precision in PRECISIONS {
        let bytes = blob_of(precision);
        let (rejected, _) = mutate_fields(&bytes, 0, &header_fields(), |name, result| {
            let ok = match (name, result) {
                ("magic", Err(LoadError::BadMagic)) => true,
                ("version", Err(LoadError::UnsupportedVersion { found, supported: FORMAT_VERSION })) => {
                    *found != FORMAT_VERSION
                }
                ("total_len", Err(LoadError::Truncated { .. } | LoadError::LengthMismatch { .. })) => true,
                ("checksum", Err(LoadError::ChecksumMismatch { .. })) => true,
                // Section fields are reported on the header, or (arena) on the op whose region no longer fits.
                ("arena_size", Err(LoadError::Op { problem: Problem::OutOfBounds, .. })) => true,
                ("arena_size", Err(LoadError::Header { field: "arena_size", .. })) => true,
                ("arena_size", Ok(())) => true, // a larger arena is harmless
                // Moving or resizing one section is caught on that section or the next one.
                (
                    "meta_offset" | "meta_len" | "plan_offset" | "op_count" | "weights_offset" | "weights_len",
                    Err(LoadError::Header { field: f, .. }),
                ) => SECTIONS.contains(f),
                // Fewer ops still chain, but no longer end in the logits.
                ("op_count", Err(LoadError::Op { .. })) => true,
                (field, Err(LoadError::Header { field: f, .. })) => *f == field,
                _ => false,
            };
            assert!(ok, "{precision:?}: header.{name} mutation gave {result:?}");
        });
        assert!(rejected > 60, "{precision:?}: only {rejected} header mutations rejected");
    }
}

#[test]
fn metadata_field_mutations_are_rejected_or_harmless() {
    for precision in PRECISIONS {
        let bytes = blob_of(precision);
        let meta_offset = offset_of!(Header, meta_offset);
        let base = u32::from_le_bytes(bytes[meta_offset..meta_offset + 4].try_into().unwrap()) as usize;
        let (rejected, accepted) = mutate_fields(&bytes, base, &meta_fields(), |name, result| {
            let ok = match (name, result) {
                // Free text and the source hash may hold anything valid.
                ("name" | "dataset" | "class_names" | "source_hash", Ok(())) => true,
                ("output_scale", Ok(())) => precision == Precision::Int8,
                // An int8 blob may take any input quantization (an imported model's).
                ("input_scale" | "input_zero_point", Ok(())) => precision == Precision::Int8,
                // Another precision changes every op's element sizes.
                ("precision", Err(LoadError::Op { .. } | LoadError::Meta { .. })) => true,
                // The input shape is checked where the first op reads it.
                ("input_h" | "input_w" | "input_c", Err(LoadError::Op { index: 0, .. } | LoadError::Meta { .. })) => {
                    true
                }
                (
                    "class_count",
                    Err(
                        LoadError::Op { field: "out_c", .. }
                        | LoadError::Meta { field: "class_count", .. }
                        | LoadError::Meta { field: "class_names", .. },
                    ),
                ) => true,
                ("input_zero_point", Err(LoadError::Meta { field: "input_zero_point", .. })) => true,
                // The first op reads the input at its zero point.
                ("input_zero_point", Err(LoadError::Op { index: 0, field: "input_zero_point", .. })) => true,
                ("output_zero_point", Err(LoadError::Meta { field: "output_zero_point", .. })) => true,
                (field, Err(LoadError::Meta { field: f, .. })) => {
                    *f == field || (field.starts_with("reserved") && *f == "reserved")
                }
                _ => false,
            };
            assert!(ok, "{precision:?}: meta.{name} mutation gave {result:?}");
        });
        assert!(rejected > 40 && accepted > 5, "{precision:?}: {rejected} rejected, {accepted} accepted");
    }
}

#[test]
fn plan_record_mutations_are_rejected_at_their_op_or_harmless() {
    let blobs = |p| [(p, blob_of(p)), (p, depthwise_blob_of(p)), (p, residual_blob_of(p))];
    for (precision, bytes) in PRECISIONS.into_iter().flat_map(blobs) {
        let plan_offset = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
        let n = u16::from_le_bytes(bytes[28..30].try_into().unwrap()) as usize;
        let mut rejected_total = 0;
        for i in 0..n {
            let (rejected, _) =
                mutate_fields(&bytes, plan_offset + i * OpRecord::SIZE, &record_fields(), |name, result| {
                    let ok = match result {
                        // A change may surface at this op or, through the chain, at a later one.
                        Err(LoadError::Op { index, .. }) => *index as usize >= i,
                        Err(LoadError::Meta { field: "output_zero_point", .. }) => i == n - 1,
                        Ok(()) => true,
                        _ => false,
                    };
                    assert!(ok, "{precision:?}: op {i}.{name} mutation gave {result:?}");
                });
            rejected_total += rejected;
        }
        assert!(rejected_total > 100 * n, "{precision:?}: only {rejected_total} record mutations rejected");
    }
}

/// Exact errors for mutations whose meaning is clear.
#[test]
fn specific_mutations_give_specific_errors() {
    let bytes = blob_of(Precision::Int8);
    let plan_offset = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
    let arena_size = u32::from_le_bytes(bytes[40..44].try_into().unwrap());
    let set = |op: usize, field: &str, value: &[u8]| {
        let (_, offset, size) = record_fields().into_iter().find(|f| f.0 == field).unwrap();
        assert_eq!(size, value.len());
        let mut b = bytes.clone();
        let at = plan_offset + op * OpRecord::SIZE + offset;
        b[at..at + size].copy_from_slice(value);
        emit::reseal(&mut b);
        load_and_run(&b).unwrap_err()
    };
    let op = |index, field, problem| LoadError::Op { index, field, problem };
    assert_eq!(set(1, "kind", &[9]), op(1, "kind", Problem::Unknown));
    assert_eq!(set(0, "activation", &[3]), op(0, "activation", Problem::Unknown));
    assert_eq!(set(2, "in_h", &7u16.to_le_bytes()), op(2, "in_h", Problem::Mismatch));
    assert_eq!(set(0, "out_h", &6u16.to_le_bytes()), op(0, "out_h", Problem::Mismatch));
    assert_eq!(set(0, "kernel_h", &0u16.to_le_bytes()), op(0, "kernel_h", Problem::OutOfRange));
    assert_eq!(set(0, "kernel_h", &60000u16.to_le_bytes()), op(0, "kernel_h", Problem::OutOfRange));
    assert_eq!(set(0, "stride_w", &0u16.to_le_bytes()), op(0, "stride_w", Problem::OutOfRange));
    assert_eq!(set(0, "weights_len", &1u32.to_le_bytes()), op(0, "weights_len", Problem::Mismatch));
    assert_eq!(set(0, "weights_offset", &u32::MAX.to_le_bytes()), op(0, "weights_offset", Problem::OutOfBounds));
    assert_eq!(set(4, "bias_offset", &2u32.to_le_bytes()), op(4, "bias_offset", Problem::Misaligned));
    assert_eq!(set(0, "output_offset", &arena_size.to_le_bytes()), op(0, "output_offset", Problem::OutOfBounds));
    assert_eq!(set(1, "input_offset", &8u32.to_le_bytes()), op(1, "input_offset", Problem::Mismatch));
    assert_eq!(set(5, "output_zero_point", &300i32.to_le_bytes()), op(5, "output_zero_point", Problem::OutOfRange));
    assert_eq!(set(0, "input_zero_point", &5i32.to_le_bytes()), op(0, "input_zero_point", Problem::Mismatch));
    assert_eq!(set(0, "act_min", &200i32.to_le_bytes()), op(0, "act_min", Problem::OutOfRange));
    assert_eq!(set(0, "act_max", &(-129i32).to_le_bytes()), op(0, "act_max", Problem::OutOfRange));
    assert_eq!(set(0, "scratch_len", &(arena_size + 1).to_le_bytes()), op(0, "scratch_len", Problem::OutOfBounds));
    assert_eq!(set(1, "pool_multiplier", &5i32.to_le_bytes()), op(1, "pool_multiplier", Problem::OutOfRange));
    assert_eq!(set(0, "reserved", &[1; 16]), op(0, "reserved", Problem::Unknown));
}

/// A depthwise op's own rules: as many output channels as input channels, no fused pool, weights
/// of exactly `kernel_h · kernel_w · channels` unpacked bytes.
#[test]
fn depthwise_records_follow_their_own_rules() {
    for precision in PRECISIONS {
        let plan = depthwise_plan(precision, 4);
        assert_eq!(plan.ops[0].kind, mnistc::lower::plan::OpKind::DepthwiseConv2d);
        let bytes = depthwise_blob_of(precision);
        load_and_run(&bytes).unwrap();
        let plan_offset = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
        let set = |field: &str, value: &[u8]| {
            let (_, offset, size) = record_fields().into_iter().find(|f| f.0 == field).unwrap();
            let mut b = bytes.clone();
            let at = plan_offset + offset;
            b[at..at + size].copy_from_slice(value);
            emit::reseal(&mut b);
            load_and_run(&b).unwrap_err()
        };
        let op = |field, problem| LoadError::Op { index: 0, field, problem };
        assert_eq!(set("out_c", &4u16.to_le_bytes()), op("out_c", Problem::Mismatch), "{precision:?}");
        assert_eq!(set("pool", &[1]), op("pool", Problem::Unknown), "{precision:?}");
        assert_eq!(set("pool_h", &2u16.to_le_bytes()), op("pool_h", Problem::Unknown), "{precision:?}");
        // 3x2 taps of 3 channels: 18 weights, not packed to groups of 4 taps.
        let size = precision.weight_size() as u32;
        assert_eq!(set("weights_len", &(24 * size).to_le_bytes()), op("weights_len", Problem::Mismatch));
    }
}

#[test]
fn accumulators_that_could_overflow_are_rejected() {
    let mut plan = every_op_plan(Precision::Int8, 2);
    if let mnistc::lower::plan::Bias::I32(b) = &mut plan.ops[4].bias {
        b[0] = i32::MAX - 10;
    }
    match emit::write(&plan) {
        Err(emit::BlobError::Invalid(LoadError::Op { index: 4, problem: Problem::AccumulatorOverflow, .. })) => {}
        other => panic!("expected an accumulator overflow at op 4, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), keep_magic in any::<bool>()) {
        let mut bytes = bytes;
        if keep_magic && bytes.len() >= 64 {
            bytes[..4].copy_from_slice(b"MNCB");
            bytes[4..6].copy_from_slice(&1u16.to_le_bytes());
            let len = bytes.len() as u32;
            bytes[8..12].copy_from_slice(&len.to_le_bytes());
            emit::reseal(&mut bytes);
        }
        let _ = load_and_run(&bytes);
    }

    #[test]
    fn random_edits_of_valid_blobs_never_panic(precision in 0usize..3, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = blob_of(PRECISIONS[precision]);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        emit::reseal(&mut bytes);
        let _ = load_and_run(&bytes);
    }
}
