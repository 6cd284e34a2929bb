//! Golden blobs: a tiny model (conv 3x3 stride 2 + fused 2x2 max pool, dense 10 on 28x28 grey
//! images) in each precision, written by the compiler (`tests/golden_blobs.rs` in the workspace
//! root, which also checks that the compiler still writes these exact bytes), with 4 input images
//! and the logits the runtime gave for them. This crate alone checks that it loads and runs them
//! to the same numbers: a change of the blob format or of a kernel's arithmetic that does not
//! bump [`FORMAT_VERSION`] fails here.

use mnistc_runtime::format::FORMAT_VERSION;
use mnistc_runtime::{Activations, Input, LoadError, Model, Precision, arena_size_of};

const INPUTS: &[u8] = include_bytes!("golden/inputs.bin");
/// Images run: all four, or one under Miri (every op and kernel runs for each image, so one
/// covers the same code; Miri interprets a run in about 4 s, and CI's time is counted).
const IMAGES: usize = if cfg!(miri) { 1 } else { 4 };

/// The blob copied to 16-byte-aligned memory.
/// The recorded outputs of the first [`IMAGES`] images (the four images' outputs are stored one
/// after another, each the same size).
fn first_images(out: &[u8]) -> &[u8] {
    &out[..out.len() / 4 * IMAGES]
}

fn aligned(bytes: &[u8]) -> Vec<u128> {
    let mut words = vec![0u128; bytes.len().div_ceil(16)];
    bytemuck::cast_slice_mut::<u128, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    words
}

fn as_bytes(words: &[u128], len: usize) -> &[u8] {
    &bytemuck::cast_slice(words)[..len]
}

fn run(blob: &[u8], precision: Precision) -> Vec<u8> {
    let words = aligned(blob);
    let model = Model::from_bytes(as_bytes(&words, blob.len())).expect("the golden blob loads");
    assert_eq!(model.precision(), precision);
    assert_eq!(model.header().version, FORMAT_VERSION);
    assert_eq!((model.input_len(), model.output_len()), (784, 10));
    assert_eq!(model.arena_size(), arena_size_of(blob));
    // Float models need a 4-byte-aligned arena: a `Vec<u8>` only promises 1 (Miri takes it at
    // its word and hands out unaligned buffers), so borrow the bytes of 16-byte words.
    let mut arena_words = vec![0u128; model.arena_size().div_ceil(16)];
    let arena = &mut bytemuck::cast_slice_mut::<u128, u8>(&mut arena_words)[..model.arena_size()];
    let mut out = Vec::new();
    for img in INPUTS.chunks(784).take(IMAGES) {
        match model.run_logits(Input::Pixels(img), arena).expect("the golden blob runs") {
            Activations::I8 { values, .. } => out.extend(values.iter().map(|&v| v as u8)),
            Activations::F32(values) => out.extend(values.iter().flat_map(|v| v.to_le_bytes())),
        }
    }
    out
}

#[test]
fn int8_golden_blob_gives_its_logits_bit_for_bit() {
    let got = run(include_bytes!("golden/tiny-int8.bin"), Precision::Int8);
    assert_eq!(got, first_images(include_bytes!("golden/tiny-int8.out")));
}

#[cfg(feature = "float")]
fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Float kernels may contract multiply-adds differently on another ISA: within 1e-5 relative.
#[cfg(feature = "float")]
fn assert_close(got: &[u8], want: &[u8]) {
    let (got, want) = (floats(got), floats(want));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{got:?} vs {want:?}");
    }
}

#[cfg(feature = "float")]
#[test]
fn f16_golden_blob_gives_its_logits() {
    assert_close(
        &run(include_bytes!("golden/tiny-f16.bin"), Precision::F16),
        first_images(include_bytes!("golden/tiny-f16.out")),
    );
}

#[cfg(feature = "float")]
#[test]
fn f32_golden_blob_gives_its_logits() {
    assert_close(
        &run(include_bytes!("golden/tiny-f32.bin"), Precision::F32),
        first_images(include_bytes!("golden/tiny-f32.out")),
    );
}

/// A blob of a newer format version is refused with a clear error, never misread.
#[test]
fn a_future_format_version_is_refused() {
    let mut blob = include_bytes!("golden/tiny-int8.bin").to_vec();
    blob[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let words = aligned(&blob);
    let err = Model::from_bytes(as_bytes(&words, blob.len())).unwrap_err();
    assert_eq!(err, LoadError::UnsupportedVersion { found: FORMAT_VERSION + 1, supported: FORMAT_VERSION });
}

/// An int8-only runtime (without its `float` feature, as the firmware builds it) refuses float
/// blobs when loading them, with an error that names the feature, and still runs int8 ones.
#[cfg(not(feature = "float"))]
#[test]
fn without_the_float_feature_float_blobs_are_refused_at_load_time() {
    use mnistc_runtime::error::Problem;
    for blob in [&include_bytes!("golden/tiny-f32.bin")[..], &include_bytes!("golden/tiny-f16.bin")[..]] {
        let words = aligned(blob);
        let err = Model::from_bytes(as_bytes(&words, blob.len())).unwrap_err();
        assert_eq!(err, LoadError::Meta { field: "precision", problem: Problem::NotCompiledIn });
        assert!(err.to_string().contains("`float`"), "{err}");
    }
    assert_eq!(
        run(include_bytes!("golden/tiny-int8.bin"), Precision::Int8),
        first_images(include_bytes!("golden/tiny-int8.out"))
    );
}
