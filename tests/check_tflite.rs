//! `mnistc check OUT.bin --tflite MODEL.tflite`: the blob against TFLite Micro's reference kernels,
//! run from Python.
//!
//! The comparisons need a Python with `tflite_micro` (PyPI `tflite-micro`): `.ci/run` creates one
//! and sets `MNISTC_PYTHON`; without it those tests say so and return (the committed golden outputs
//! in `tests/import_tflite.rs` check the same numbers without Python). The error paths run
//! everywhere.

use std::path::PathBuf;

use mnistc::import::{self, ImportOptions};
use mnistc::lower::plan::Bias;
use mnistc::lower::{self, emit};
use mnistc_suite::{data_dir, mnistc, models_dir};

fn model(name: &str) -> String {
    models_dir().join(name).to_str().unwrap().to_string()
}

/// The Python with `tflite_micro`, or `None` (with a note on stderr) when `MNISTC_PYTHON` is unset.
fn python() -> Option<String> {
    match std::env::var("MNISTC_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            eprintln!("skipped: set MNISTC_PYTHON to a Python with tflite-micro (as .ci/run does) to run this test");
            None
        }
    }
}

/// `mnistc import NAME -o DIR/NAME.bin [--dataset mnist]`.
fn import(dir: &tempfile::TempDir, name: &str, mnist: bool) -> String {
    let out = dir.path().join(format!("{name}.bin"));
    let out = out.to_str().unwrap().to_string();
    let src = model(name);
    let mut args = vec!["import", &src, "-o", &out];
    if mnist {
        args.extend(["--dataset", "mnist"]);
    }
    let (code, _, stderr) = mnistc(&args);
    assert_eq!(code, 0, "{stderr}");
    out
}

#[test]
fn imported_mnist_cnn_equals_tflite_micro_at_every_layer() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let blob = import(&dir, "cnn_mnist_int8.tflite", true);
    let data = data_dir();
    let src = model("cnn_mnist_int8.tflite");
    let (code, stdout, stderr) = mnistc(&[
        "check",
        &blob,
        "--tflite",
        &src,
        "--python",
        &py,
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "200",
        "--per-layer",
        "--json",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["images"], 200);
    assert_eq!(r["passed"], true);
    assert_eq!(r["max_lsb_diff"], 0);
    // Conv + pool (fused: compared at the pool's tensor), conv + pool, dense.
    let layers = r["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    assert!(layers[0]["name"].as_str().unwrap().contains("max_pooling2d"), "{stdout}");
    assert_eq!(layers[0]["elements"], 13 * 13 * 32);
    assert_eq!(layers[2]["elements"], 10);
}

#[test]
fn keyword_spotting_equals_tflite_micro_on_random_inputs() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let blob = import(&dir, "kws_ref_model.tflite", false);
    let src = model("kws_ref_model.tflite");
    let (code, stdout, stderr) =
        mnistc(&["check", &blob, "--tflite", &src, "--python", &py, "--random", "50", "--per-layer"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("50 images: top-1 agreement 1.0000"), "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
    assert_eq!(stdout.matches("0 mismatches").count(), 10, "{stdout}");
}

/// A blob whose second op has a wrong bias: the check fails (exit 1) and names that op first.
#[test]
fn a_changed_number_is_found_at_its_layer() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = models_dir().join("kws_ref_model.tflite");
    let mut plan = import::import(&src, ImportOptions::default()).expect("imports");
    match &mut plan.ops[1].bias {
        Bias::I32(b) => b[0] += 5_000,
        other => panic!("op 1 has an int32 bias, not {other:?}"),
    }
    let blob = dir.path().join("changed.bin");
    std::fs::write(&blob, emit::write(&lower::fuse(plan)).unwrap().to_vec()).unwrap();
    let (code, stdout, stderr) = mnistc(&[
        "check",
        blob.to_str().unwrap(),
        "--tflite",
        src.to_str().unwrap(),
        "--python",
        &py,
        "--random",
        "20",
        "--per-layer",
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("first divergence: op 1 (depthwise_conv2d, TFLite tensor"), "{stdout}");
    let op0 = stdout.lines().nth(1).unwrap();
    assert!(op0.contains(" 0 mismatches") && !op0.contains("differs"), "{stdout}");
    assert!(stderr.contains("disagree"), "{stderr}");
}

#[test]
fn files_that_cannot_be_compared_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cnn = import(&dir, "cnn_mnist_int8.tflite", true);
    let kws_src = model("kws_ref_model.tflite");
    // Another model's .tflite.
    let (code, _, stderr) = mnistc(&["check", &cnn, "--tflite", &kws_src, "--python", "python3"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("kws_ref_model.tflite") && stderr.contains("not imported from this file"), "{stderr}");
    // A float .tflite: mnistc quantized it, so TFLite Micro has no int8 numbers to match.
    let float = import(&dir, "cnn_mnist_float32.tflite", true);
    let float_src = model("cnn_mnist_float32.tflite");
    let (code, _, stderr) = mnistc(&["check", &float, "--tflite", &float_src, "--python", "python3"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("float32 .tflite") && stderr.contains("mnistc eval"), "{stderr}");
    // No such Python: the message says how to get one.
    let missing: PathBuf = dir.path().join("no-python");
    let src = model("cnn_mnist_int8.tflite");
    let (code, _, stderr) =
        mnistc(&["check", &cnn, "--tflite", &src, "--python", missing.to_str().unwrap(), "--limit", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot start it") && stderr.contains("pip install tflite-micro"), "{stderr}");
    // --random needs --tflite; --tflite and --onnx exclude each other.
    let (code, _, _) = mnistc(&["check", &cnn, "--random", "3"]);
    assert_eq!(code, 2);
    let (code, _, _) = mnistc(&["check", &cnn, "--tflite", &src, "--onnx", &src]);
    assert_eq!(code, 2);
}
