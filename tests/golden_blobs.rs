//! The golden blobs under `runtime/tests/golden/`: a tiny model in each precision, the inputs
//! and the outputs the runtime gave when they were written. `runtime/tests/golden.rs` loads and
//! runs them with the runtime alone; this test checks that the compiler still writes the same
//! bytes, so a change of the blob format shows up here and must come with a format version bump
//! and new golden files (`MNISTC_BLESS=1 cargo test --test golden_blobs` rewrites them).

use std::path::PathBuf;

use mnistc::data::{Images, Rng};
use mnistc::pipeline;
use mnistc::spec::ModelSpec;
use mnistc::train::TrainedModel;
use mnistc_runtime::{Activations, Input, format::FORMAT_VERSION};
use mnistc_suite::workspace_root;

/// The tiny model: conv 3x3 stride 2 (4 filters, ReLU) with a fused 2x2 max pool, dense 10.
const SPEC: &str = "name = \"tiny\"\n\
[[layers]]\ntype = \"conv2d\"\nfilters = 4\nkernel = 3\nstride = 2\n\
[[layers]]\ntype = \"maxpool2d\"\nsize = 2\n\
[[layers]]\ntype = \"dense\"\nunits = 10\n\
[data]\ndataset = \"mnist\"\n\
[quantize]\nprecision = \"PRECISION\"\ncalibration = 16\n";

/// Images of the golden inputs: 4 images of 28x28 (a bright square on noise, at different places).
pub const INPUTS: usize = 4;

fn images(n: usize, seed: u64) -> Images {
    let mut rng = Rng::new(seed);
    let mut pixels = vec![0u8; n * 784];
    for (i, img) in pixels.chunks_mut(784).enumerate() {
        let (y0, x0) = (3 + 5 * (i % 4), 2 + 4 * (i % 5));
        for (j, p) in img.iter_mut().enumerate() {
            let (y, x) = (j / 28, j % 28);
            let square = (y0..y0 + 9).contains(&y) && (x0..x0 + 7).contains(&x);
            *p = if square { 180 + rng.below(76) as u8 } else { rng.below(40) as u8 };
        }
    }
    Images::grey(n, 28, 28, pixels, vec![0; n])
}

fn golden_dir() -> PathBuf {
    workspace_root().join("runtime/tests/golden")
}

/// `(blob, outputs)` of the tiny model in `precision`: int8 logits as bytes, float logits as
/// little-endian f32.
fn build(precision: &str) -> (Vec<u8>, Vec<u8>) {
    let spec = ModelSpec::parse(&SPEC.replace("PRECISION", precision), "tiny").unwrap();
    let model = TrainedModel::seeded(&spec, 1).unwrap();
    let deployed = pipeline::deploy(&spec, &model, &images(32, 2), &images(INPUTS, 3), [0x60; 32]).unwrap();
    let device = deployed.blob.model();
    let mut arena = vec![0u8; device.arena_size()];
    let mut outputs = Vec::new();
    for img in images(INPUTS, 4).pixels.chunks(784) {
        match device.run_logits(Input::Pixels(img), &mut arena).unwrap() {
            Activations::I8 { values, .. } => outputs.extend(values.iter().map(|&v| v as u8)),
            Activations::F32(values) => outputs.extend(values.iter().flat_map(|v| v.to_le_bytes())),
        }
    }
    (deployed.blob.to_vec(), outputs)
}

#[test]
fn the_compiler_still_writes_the_golden_blobs() {
    let dir = golden_dir();
    let bless = std::env::var_os("MNISTC_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("inputs.bin"), images(INPUTS, 4).pixels).unwrap();
    }
    assert_eq!(std::fs::read(dir.join("inputs.bin")).unwrap(), images(INPUTS, 4).pixels);
    for precision in ["int8", "f16", "f32"] {
        let (blob, outputs) = build(precision);
        let (blob_path, out_path) =
            (dir.join(format!("tiny-{precision}.bin")), dir.join(format!("tiny-{precision}.out")));
        if bless {
            std::fs::write(&blob_path, &blob).unwrap();
            std::fs::write(&out_path, &outputs).unwrap();
        }
        let golden = std::fs::read(&blob_path).unwrap();
        assert!(
            golden == blob,
            "{precision}: the compiler no longer writes {} (format version {FORMAT_VERSION}). A change of the blob \
             format needs a new FORMAT_VERSION and new golden files: MNISTC_BLESS=1 cargo test --test golden_blobs",
            blob_path.display()
        );
        assert_eq!(std::fs::read(&out_path).unwrap(), outputs, "{precision}: the runtime's outputs changed");
    }
}
