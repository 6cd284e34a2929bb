//! `mnistc import` of full-integer TFLite models written by TensorFlow's converter (and MLPerf
//! Tiny), checked bit for bit against TensorFlow Lite Micro's reference kernels.
//!
//! The golden outputs under `tests/golden/` are what `tflite_micro.runtime.Interpreter` (PyPI
//! `tflite-micro` 0.dev, TFLite Micro's reference kernels) gives for the int8 tensor that feeds
//! each model's final SOFTMAX: `scripts/tflm-golden.py` wrote them (its docstring has the
//! commands), so these tests need no Python.

use std::io::Read;
use std::path::PathBuf;

use mnistc::data::{self, DataDir, Dataset, Split};
use mnistc::import::{self, ImportError, ImportOptions};
use mnistc::lower::{self, emit};
use mnistc::verify::tflite_micro::random_inputs;
use mnistc_runtime::{Activations, Input};
use mnistc_suite::{data_dir, mnistc, models_dir, workspace_root};

fn model(name: &str) -> PathBuf {
    models_dir().join(name)
}

/// The committed golden logits of `name` (`N × classes` int8, gzip).
fn golden(name: &str) -> Vec<i8> {
    let path = workspace_root().join("tests/golden").join(name);
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("golden file"))
        .read_to_end(&mut bytes)
        .expect("gzip");
    bytes.into_iter().map(|b| b as i8).collect()
}

/// The blob `mnistc import` writes for `name`.
fn import_blob(name: &str, dataset: Option<Dataset>) -> emit::Blob {
    let plan = import::import(&model(name), ImportOptions { dataset }).expect("imports");
    emit::write(&lower::fuse(plan)).expect("a valid blob")
}

/// The int8 logits of every input.
fn run_all<'a>(blob: &emit::Blob, inputs: impl Iterator<Item = Input<'a>>) -> Vec<i8> {
    let model = blob.model();
    let mut arena = vec![0u8; model.arena_size()];
    let mut logits = Vec::new();
    for input in inputs {
        match model.run_logits(input, &mut arena).expect("runs") {
            Activations::I8 { values, .. } => logits.extend_from_slice(values),
            Activations::F32(_) => panic!("an int8 blob gives int8 logits"),
        }
    }
    logits
}

#[test]
fn keras_mnist_cnn_matches_tflite_micro_on_every_test_image() {
    let blob = import_blob("cnn_mnist_int8.tflite", Some(Dataset::Mnist));
    let test = data::load(&DataDir::new(data_dir()), Dataset::Mnist, Split::Test).expect("MNIST test set");
    let logits = run_all(&blob, test.pixels.chunks(784).map(Input::Pixels));
    let want = golden("cnn_mnist_int8.tflm.gz");
    assert_eq!(logits.len(), 10_000 * 10);
    let differing = logits.chunks(10).zip(want.chunks(10)).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "images whose int8 logits differ from TFLite Micro's");
    // TFLite's accuracy on this model (its README: 99.17 %), with the first maximum winning.
    let correct = logits
        .chunks(10)
        .zip(&test.labels)
        .filter(|(l, y)| {
            let best = l.iter().enumerate().fold(0, |b, (i, &v)| if v > l[b] { i } else { b });
            best == **y as usize
        })
        .count();
    assert_eq!(correct, 9917);
    // The blob keeps the model's input quantization (pixel − 128) and takes pixels.
    assert!(blob.model().takes_pixels());
}

#[test]
fn mlperf_keyword_spotting_ds_cnn_matches_tflite_micro_on_1000_random_inputs() {
    let blob = import_blob("kws_ref_model.tflite", None);
    let model = blob.model();
    assert!(!model.takes_pixels(), "MFCC features, not pixels");
    assert_eq!((model.meta().input_zero_point, model.output_len()), (83, 12));
    let size = model.input_len();
    let inputs = random_inputs(1000, size);
    let logits = run_all(&blob, inputs.chunks(size).map(Input::I8));
    let want = golden("kws_ref_model.tflm.gz");
    assert_eq!(logits.len(), want.len());
    let differing = logits.chunks(12).zip(want.chunks(12)).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "inputs whose int8 logits differ from TFLite Micro's");
    // Pixels cannot stand for MFCC features.
    let mut arena = vec![0u8; model.arena_size()];
    let pixels = vec![0u8; size];
    assert!(model.run_logits(Input::Pixels(&pixels), &mut arena).is_err());
}

#[test]
fn imported_blob_works_with_eval_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cnn.bin");
    let src = model("cnn_mnist_int8.tflite");
    let (code, stdout, stderr) =
        mnistc(&["import", src.to_str().unwrap(), "-o", out.to_str().unwrap(), "--dataset", "mnist", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["classes"], 10);
    assert_eq!(report["takes_pixels"], true);
    assert_eq!(report["flash_bytes"].as_u64(), Some(std::fs::metadata(&out).unwrap().len()));
    let (code, stdout, stderr) = mnistc(&["inspect", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("tflite"), "inspect names the arithmetic:\n{stdout}");
    let data = data_dir();
    let (code, stdout, stderr) = mnistc(&["eval", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0.9917"), "{stdout}");
}

#[test]
fn a_model_on_audio_features_runs_on_raw_int8_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kws.bin");
    let src = model("kws_ref_model.tflite");
    let (code, stdout, stderr) = mnistc(&["import", src.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("int8 (scale 0.5847029, zero point 83)"), "{stdout}");
    let size = 49 * 10;
    let raw = dir.path().join("features.i8");
    std::fs::write(&raw, random_inputs(3, size).iter().map(|&v| v as u8).collect::<Vec<u8>>()).unwrap();
    let (code, stdout, stderr) = mnistc(&["predict", out.to_str().unwrap(), "--raw", raw.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let want = golden("kws_ref_model.tflm.gz");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        let l = &want[i * 12..(i + 1) * 12];
        let best = l.iter().enumerate().fold(0, |b, (k, &v)| if v > l[b] { k } else { b });
        assert_eq!(line["class"].as_u64(), Some(best as u64), "input {i}");
    }
    // A file that is not whole tensors, and pixels for a model that takes features: exit 2.
    std::fs::write(&raw, [0u8; 7]).unwrap();
    let (code, _, stderr) = mnistc(&["predict", out.to_str().unwrap(), "--raw", raw.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("490-byte"), "{stderr}");
    let idx = data_dir().join("mnist/t10k-images-idx3-ubyte.gz");
    let (code, _, stderr) = mnistc(&["predict", out.to_str().unwrap(), "--idx", idx.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--raw"), "{stderr}");
}

#[test]
fn unsupported_or_broken_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // MobileNetV1 (28 ops, within a blob's 32) is a float model: without a data set to calibrate
    // it, exit 2, named; with one whose images are not its 96x96x3, exit 2, both shapes named.
    let vww = model("vww_96_float.tflite");
    let out = dir.path().join("v.bin");
    let (code, _, stderr) = mnistc(&["import", vww.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("vww_96_float.tflite") && stderr.contains("--dataset"), "{stderr}");
    let (code, _, stderr) =
        mnistc(&["import", vww.to_str().unwrap(), "-o", out.to_str().unwrap(), "--dataset", "cifar-10"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("vww_96_float.tflite") && stderr.contains("96x96x3"), "{stderr}");
    assert!(!out.exists());
    // Truncated and corrupted copies of a real model: errors, never a panic.
    let bytes = std::fs::read(model("cnn_mnist_int8.tflite")).unwrap();
    for (i, cut) in [9, 100, bytes.len() / 2, bytes.len() - 1].into_iter().enumerate() {
        let path = dir.path().join(format!("cut{i}.tflite"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = import::import(&path, ImportOptions::default()).unwrap_err();
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    }
    let mut rng = mnistc::data::Rng::new(5);
    for i in 0..200 {
        let mut broken = bytes.clone();
        for _ in 0..8 {
            let at = 8 + rng.below((broken.len() - 8) as u64) as usize;
            broken[at] = rng.next_u64() as u8;
        }
        let path = dir.path().join(format!("broken{i}.tflite"));
        std::fs::write(&path, &broken).unwrap();
        // Either an error or a model the runtime accepts: `emit::write` validates it.
        if let Ok(plan) = import::import(&path, ImportOptions::default()) {
            let _ = emit::write(&lower::fuse(plan));
        }
    }
    // Not a TFLite file at all, and the wrong data set.
    let idx = data_dir().join("mnist/t10k-labels-idx1-ubyte.gz");
    assert!(matches!(import::import(&idx, ImportOptions::default()), Err(ImportError::UnknownFormat { .. })));
    let err =
        import::import(&model("kws_ref_model.tflite"), ImportOptions { dataset: Some(Dataset::Mnist) }).unwrap_err();
    assert!(err.to_string().contains("49x10x1"), "{err}");
    // A float model without a data set to calibrate it: exit 2, one line naming the file and
    // what to give, no output left behind.
    let out = dir.path().join("out.bin");
    let float = model("cnn_mnist_float32.tflite");
    let (code, _, stderr) = mnistc(&["import", float.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cnn_mnist_float32.tflite") && stderr.contains("--dataset"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_float_tflite_model_is_quantized_by_mnistc() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("float.bin");
    let src = model("cnn_mnist_float32.tflite");
    let data = data_dir();
    let (code, stdout, stderr) = mnistc(&[
        "import",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--dataset",
        "mnist",
        "--data",
        data.to_str().unwrap(),
        "--calibration",
        "500",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["quantized_by_mnistc"], true);
    let (code, stdout, stderr) = mnistc(&["eval", out.to_str().unwrap(), "--data", data.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let eval: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let accuracy = eval["correct"].as_f64().unwrap() / eval["images"].as_f64().unwrap();
    // Keras's float model: 99.16 %; int8 by mnistc within a few tenths of it.
    assert!(accuracy > 0.985, "{accuracy}");
}
