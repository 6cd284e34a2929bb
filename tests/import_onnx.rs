//! `mnistc import` of ONNX models written by other tools: the Keras MNIST CNN exported by tf2onnx
//! (float) and quantized by onnxruntime's `quantize_static` (QDQ), against onnxruntime's own
//! top-1 classes on the MNIST test set (`tests/golden/*.ort.gz`, written by
//! `scripts/onnxruntime-golden.py`; no Python here).

use std::io::Read;

use mnistc::data::{self, DataDir, Dataset, Split};
use mnistc::import::{self, ImportError, ImportOptions};
use mnistc::lower::{self, emit, plan::Precision};
use mnistc_runtime::{Activations, Input};
use mnistc_suite::{data_dir, mnistc, models_dir, workspace_root};

/// onnxruntime's top-1 class of every MNIST test image.
fn golden(name: &str) -> Vec<u8> {
    let path = workspace_root().join("tests/golden").join(name);
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("golden file"))
        .read_to_end(&mut bytes)
        .expect("gzip");
    bytes
}

/// The blob's top-1 class (first maximum) of every MNIST test image, and the labels.
fn classes(blob: &emit::Blob) -> (Vec<u8>, Vec<u8>) {
    let test = data::load(&DataDir::new(data_dir()), Dataset::Mnist, Split::Test).expect("MNIST test set");
    let model = blob.model();
    let mut arena = vec![0u8; model.arena_size()];
    let top1 = test
        .pixels
        .chunks(784)
        .map(|img| match model.run_logits(Input::Pixels(img), &mut arena).expect("runs") {
            Activations::I8 { values, .. } => {
                values.iter().enumerate().fold(0, |b, (i, &v)| if v > values[b] { i } else { b }) as u8
            }
            Activations::F32(_) => panic!("an int8 blob"),
        })
        .collect();
    (top1, test.labels.clone())
}

fn agreement(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

#[test]
fn qdq_model_agrees_with_onnxruntime_on_the_mnist_test_set() {
    let path = models_dir().join("cnn_mnist_int8.onnx");
    let plan = import::import(&path, ImportOptions { dataset: Some(Dataset::Mnist) }).expect("imports");
    assert_eq!(plan.precision, Precision::Int8, "a QDQ graph keeps its own quantization");
    let blob = emit::write(&lower::fuse(plan)).expect("a valid blob");
    let (top1, labels) = classes(&blob);
    let ort = golden("cnn_mnist_int8.ort.gz");
    let agree = agreement(&top1, &ort);
    let correct = agreement(&top1, &labels);
    eprintln!(
        "QDQ: {agree}/10000 top-1 equal to onnxruntime's; accuracy {correct}/10000 (onnxruntime {})",
        agreement(&ort, &labels)
    );
    assert!(agree >= 9990, "top-1 agreement with onnxruntime {agree}/10000 (goal: 99.9 %)");
    assert!(correct >= 9900, "{correct}");
}

#[test]
fn float_model_quantized_by_mnistc_agrees_with_onnxruntime() {
    let path = models_dir().join("cnn_mnist_float32.onnx");
    let plan = import::import(&path, ImportOptions { dataset: Some(Dataset::Mnist) }).expect("imports");
    assert_eq!(plan.precision, Precision::F32);
    let train = data::load(&DataDir::new(data_dir()), Dataset::Mnist, Split::Train).expect("MNIST train set");
    let images = mnistc::pipeline::calibration_images(&train, 1000);
    let plan = import::quantize_float(&path, plan, &images.pixels).expect("quantizes");
    let blob = emit::write(&lower::fuse(plan)).expect("a valid blob");
    let (top1, labels) = classes(&blob);
    let ort = golden("cnn_mnist_float32.ort.gz");
    let agree = agreement(&top1, &ort);
    let correct = agreement(&top1, &labels);
    eprintln!(
        "float: {agree}/10000 top-1 equal to onnxruntime's float; accuracy {correct}/10000 (onnxruntime {})",
        agreement(&ort, &labels)
    );
    assert!(agree >= 9950, "top-1 agreement with onnxruntime's float model {agree}/10000");
    assert!(correct >= 9900, "{correct}");
}

#[test]
fn a_float_model_needs_a_data_set_to_calibrate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let src = models_dir().join("cnn_mnist_float32.onnx");
    let (code, _, stderr) = mnistc(&["import", src.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--dataset") && stderr.contains("cnn_mnist_float32.onnx"), "{stderr}");
    assert!(!out.exists());
    // Truncated ONNX: a clear error, no panic.
    let bytes = std::fs::read(models_dir().join("cnn_mnist_int8.onnx")).unwrap();
    for cut in [1, 50, bytes.len() / 3, bytes.len() - 1] {
        let path = dir.path().join(format!("cut{cut}.onnx"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        match import::import(&path, ImportOptions::default()) {
            Err(ImportError::Corrupt { .. } | ImportError::Model { .. } | ImportError::Operator { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}
