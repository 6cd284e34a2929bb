//! The model importers (`mnistc import`) on arbitrary bytes: a `.tflite` when the bytes carry the
//! `TFL3` identifier, else an `.onnx`.
//!
//! Properties:
//! - importing never panics, whatever the bytes (the flatbuffers verifier, tract-onnx's protobuf
//!   decoder, then every shape, index and quantization parameter the importers read);
//! - an error names the file;
//! - an imported int8 model that the blob writer accepts gives a blob that the runtime loads
//!   (`Model::from_bytes` of a blob the compiler wrote always succeeds) and runs, on an input
//!   derived from the bytes, without error, twice with the same logits.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mnistc::import::{ImportOptions, onnx, tflite};
use mnistc::lower::{self, emit, plan::Precision};
use mnistc_runtime::{Input, Model};

/// Blobs whose arena is larger are loaded but not run.
const MAX_ARENA: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let tfl = tflite::is_tflite(data);
    let path = Path::new(if tfl { "fuzz.tflite" } else { "fuzz.onnx" });
    let plan = if tfl {
        tflite::import(path, data, ImportOptions::default())
    } else {
        onnx::import(path, data, ImportOptions::default())
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            assert!(e.to_string().starts_with(path.to_str().unwrap()), "an error without the file: {e}");
            return;
        }
    };
    if plan.precision != Precision::Int8 {
        return;
    }
    let Ok(blob) = emit::write(&lower::fuse(plan)) else { return };
    let model = Model::from_bytes(blob.bytes()).expect("the runtime loads a blob the compiler wrote");
    if model.arena_size() > MAX_ARENA {
        return;
    }
    let input: Vec<i8> = (0..model.input_len()).map(|i| data[i % data.len()] as i8).collect();
    let mut arena = emit::AlignedBytes::from(vec![0u8; model.arena_size()].as_slice());
    let mut logits = || -> Vec<u32> {
        let out = model.run_logits(Input::I8(&input), arena.as_bytes_mut()).expect("an accepted blob runs");
        (0..out.len()).map(|i| out.value(i).to_bits()).collect()
    };
    let first = logits();
    assert_eq!(first, logits(), "two runs differ");
});
