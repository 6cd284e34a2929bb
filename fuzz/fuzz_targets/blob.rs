//! `Model::from_bytes` on arbitrary bytes, and every accepted blob run.
//!
//! Each input is tried twice: unchanged, and with its `total_len` and CRC-32 fields fixed up to
//! match the bytes (so that mutations get past the checksum to the deeper checks). Properties:
//! - loading never panics (any bytes, any alignment the runtime accepts);
//! - an accepted blob, run on an input derived from the fuzz bytes with an arena of exactly
//!   [`Model::arena_size`] bytes inside a larger buffer, never writes outside its arena (canary
//!   bytes on both sides stay intact) and never fails;
//! - running twice gives the same bytes (determinism);
//! - the reference kernels and the best ISA of this CPU give bit-identical logits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mnistc_runtime::format::{CHECKSUM_START, Header, crc32};
use mnistc_runtime::kernels::{Isa, best_isa, set_isa};
use mnistc_runtime::model::Kernel;
use mnistc_runtime::{Activations, Input, Model, Precision};

/// Byte offset of `Header::total_len`.
const TOTAL_LEN_AT: usize = 8;
/// Byte offset of `Header::checksum`.
const CHECKSUM_AT: usize = 12;
/// Canary bytes on each side of the arena (a multiple of 16 keeps the arena 16-aligned).
const CANARY: usize = 64;
const CANARY_BYTE: u8 = 0xA5;
/// Blobs whose arena or work is larger are loaded but not run (fuzzing speed, memory limit).
const MAX_ARENA: usize = 1 << 20;
const MAX_WORK: u64 = 500_000;

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= Header::SIZE {
        let mut fixed = data.to_vec();
        fixed[TOTAL_LEN_AT..TOTAL_LEN_AT + 4].copy_from_slice(&(data.len() as u32).to_le_bytes());
        let crc = crc32(&fixed[CHECKSUM_START..]);
        fixed[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&crc.to_le_bytes());
        if fixed != data {
            check(&fixed);
        }
    }
});

/// Loads `bytes` from 16-aligned memory and, when accepted and small enough, runs it.
fn check(bytes: &[u8]) {
    let mut words = vec![0u128; bytes.len().div_ceil(16)];
    let blob = &mut bytemuck_bytes(&mut words)[..bytes.len()];
    blob.copy_from_slice(bytes);
    let blob: &[u8] = blob;
    let Ok(model) = Model::from_bytes(blob) else { return };
    let _ = (model.name(), model.dataset(), model.class_name(0), model.class_name(99));
    if model.arena_size() > MAX_ARENA || work(&model) > MAX_WORK {
        return;
    }
    let input = InputData::derive(&model, bytes);
    let best = best_isa();
    assert!(set_isa(Some(best)));
    let first = run(&model, &input);
    let again = run(&model, &input);
    assert_eq!(first, again, "two runs of the same blob and input differ");
    assert!(set_isa(Some(Isa::Reference)));
    let reference = run(&model, &input);
    assert!(set_isa(None));
    assert_eq!(first, reference, "{} and the reference kernels differ", best.name());
}

/// Multiply-adds (or pool taps) of one inference: a bound on its run time.
fn work(model: &Model<'_>) -> u64 {
    let mut total = model.input_len() as u64;
    for op in model.ops() {
        let n = match &op.kernel {
            Kernel::ConvF32(c) => c.geometry.output.len() as u64 * c.geometry.filter_len() as u64,
            Kernel::ConvF16(c) => c.geometry.output.len() as u64 * c.geometry.filter_len() as u64,
            Kernel::ConvS8(c) => c.geometry.output.len() as u64 * c.geometry.filter_len() as u64,
            Kernel::DepthwiseF32(c) => {
                c.geometry.output.len() as u64 * (c.geometry.kernel_h * c.geometry.kernel_w) as u64
            }
            Kernel::DepthwiseF16(c) => {
                c.geometry.output.len() as u64 * (c.geometry.kernel_h * c.geometry.kernel_w) as u64
            }
            Kernel::DepthwiseS8(c) => {
                c.geometry.output.len() as u64 * (c.geometry.kernel_h * c.geometry.kernel_w) as u64
            }
            Kernel::DenseF32(d) => d.input_len as u64 * d.output_len as u64,
            Kernel::DenseF16(d) => d.input_len as u64 * d.output_len as u64,
            Kernel::DenseS8(d) => d.input_len as u64 * d.output_len as u64,
            Kernel::AddS8(_) | Kernel::AddF32(_) => op.output.len as u64,
            Kernel::MaxPoolF32(p) | Kernel::AvgPoolF32(p) | Kernel::MaxPoolS8(p) | Kernel::AvgPoolS8(p, _) => {
                p.output.len() as u64 * p.window_len() as u64
            }
        };
        total = total.saturating_add(n).saturating_add(op.output.len as u64);
    }
    total
}

/// A model input built from the fuzz bytes; its kind is picked by the last byte, among the
/// kinds the model takes (an int8 model whose input is not `pixel − 128` takes int8 only).
enum InputData {
    Pixels(Vec<u8>),
    F32(Vec<f32>),
    I8(Vec<i8>),
}

impl InputData {
    fn derive(model: &Model<'_>, bytes: &[u8]) -> InputData {
        let n = model.input_len();
        let at = |i: usize| bytes[i % bytes.len()].wrapping_add((i / bytes.len()) as u8);
        match bytes[bytes.len() - 1] % 4 {
            // Float models always take pixels; an int8 one that does not takes int8.
            _ if !model.takes_pixels() => InputData::I8((0..n).map(|i| at(i) as i8).collect()),
            // Arbitrary f32 bits: NaN, infinities, subnormals, values far outside [0, 1].
            0 => InputData::F32(
                (0..n).map(|i| f32::from_le_bytes([at(4 * i), at(4 * i + 1), at(4 * i + 2), at(4 * i + 3)])).collect(),
            ),
            1 if model.precision() == Precision::Int8 => InputData::I8((0..n).map(|i| at(i) as i8).collect()),
            _ => InputData::Pixels((0..n).map(at).collect()),
        }
    }

    fn get(&self) -> Input<'_> {
        match self {
            InputData::Pixels(p) => Input::Pixels(p),
            InputData::F32(x) => Input::F32(x),
            InputData::I8(q) => Input::I8(q),
        }
    }
}

/// Runs `model` with an arena of exactly its size between two canaries; returns the logits'
/// bytes and checks that nothing outside the arena changed.
fn run(model: &Model<'_>, input: &InputData) -> Vec<u8> {
    let size = model.arena_size();
    let mut words = vec![0u128; (2 * CANARY + size).div_ceil(16)];
    let buffer = bytemuck_bytes(&mut words);
    buffer.fill(CANARY_BYTE);
    let (before, rest) = buffer.split_at_mut(CANARY);
    let (arena, after) = rest.split_at_mut(size);
    let logits: Vec<u8> = match model.run_logits(input.get(), arena) {
        Ok(Activations::I8 { values, .. }) => values.iter().map(|&v| v as u8).collect(),
        Ok(Activations::F32(values)) => values.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect(),
        Err(e) => panic!("an accepted blob failed to run: {e}"),
    };
    assert_eq!(logits.len(), model.output_len() * if model.precision() == Precision::Int8 { 1 } else { 4 });
    // Slice equality is one memcmp, not 64 instrumented byte compares.
    assert!(*before == [CANARY_BYTE; CANARY], "the run wrote before its arena");
    let (after, padding) = after.split_at(CANARY);
    assert!(*after == [CANARY_BYTE; CANARY], "the run wrote past its arena");
    assert!(padding.iter().all(|&b| b == CANARY_BYTE), "the run wrote past its arena");
    logits
}

fn bytemuck_bytes(words: &mut [u128]) -> &mut [u8] {
    // SAFETY: any u128 storage is valid as bytes; the length covers exactly the same memory.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 16) }
}
