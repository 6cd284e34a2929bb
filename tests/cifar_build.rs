//! CIFAR-10 end to end through the command line: a small colour CNN with batchnorms and a global
//! average pool (`tests/fixtures/cifar-chain.toml`) trained for two epochs on 5,000 images with
//! the CIFAR augmentation, lowered to int8 (batchnorms folded, the pool fused), run by the
//! runtime, bit-exact with tract layer by layer, and classifying a colour PNG exactly as it
//! classifies the same pixels from the test batch.

use std::path::Path;
use std::sync::OnceLock;

use mnistc::data::{self, DataDir, Dataset, Split};
use mnistc_suite::{data_dir, mnistc, workspace_root};

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The blob, built once for these tests, and its build report.
fn built() -> &'static (tempfile::TempDir, serde_json::Value) {
    static BUILT: OnceLock<(tempfile::TempDir, serde_json::Value)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = workspace_root().join("tests/fixtures/cifar-chain.toml");
        let (code, out, err) = mnistc(&[
            "build",
            &path(&model),
            "-o",
            &path(&dir.path().join("c.bin")),
            "--data",
            &path(&data_dir()),
            "--no-cache",
            "--quiet",
            "--json",
        ]);
        assert_eq!(code, 0, "build failed: {err}");
        let report = json(&out);
        (dir, report)
    })
}

fn test_set() -> &'static data::Images {
    static TEST: OnceLock<data::Images> = OnceLock::new();
    TEST.get_or_init(|| data::load(&DataDir::new(data_dir()), Dataset::Cifar10, Split::Test).unwrap())
}

#[test]
fn the_cifar_test_batch_loads_as_colour_images() {
    let test = test_set();
    assert_eq!(test.shape(), (32, 32, 3));
    assert_eq!((test.n, test.pixels.len()), (10_000, 10_000 * 3072));
    assert_eq!(test.class_counts(10), vec![1000; 10]);
    // Not grey: the channels of a pixel differ somewhere in (nearly) every image.
    let colourful =
        (0..test.n).filter(|&i| test.image(i).chunks_exact(3).any(|p| p[0] != p[1] || p[1] != p[2])).count();
    assert!(colourful > 9_800, "{colourful}");
}

#[test]
fn a_colour_cnn_trains_deploys_and_beats_chance() {
    let (dir, report) = built();
    let float = report["float_accuracy"].as_f64().unwrap();
    let device = report["device_accuracy"].as_f64().unwrap();
    // Two epochs on 4,500 images: far from good, far above the 10 % of guessing.
    assert!(float > 0.25 && device > 0.25, "float {float}, int8 {device}");
    assert!((float - device).abs() < 0.03, "int8 lost too much: float {float}, int8 {device}");
    let blob = std::fs::read(dir.path().join("c.bin")).unwrap();
    let aligned = mnistc::lower::emit::AlignedBytes::from(blob.as_slice());
    let model = mnistc_runtime::Model::from_bytes(aligned.as_bytes()).unwrap();
    let shape = model.input_shape();
    assert_eq!((shape.h, shape.w, shape.c), (32, 32, 3));
    assert_eq!(model.dataset(), "cifar-10");
    assert_eq!(model.class_name(3), "cat");
    // The batchnorms are folded and the global average pool fused: conv, conv, conv, dense.
    assert_eq!(model.op_count(), 4);
    // `eval` on the full test batch reproduces the build's number.
    let (code, out, err) = mnistc(&["eval", &path(&dir.path().join("c.bin")), "--data", &path(&data_dir()), "--json"]);
    assert_eq!(code, 0, "{err}");
    let eval = json(&out);
    assert_eq!(eval["dataset"], "cifar-10");
    assert_eq!(eval["images"].as_u64(), Some(10_000));
    assert_eq!(eval["correct"].as_f64().unwrap() / 10_000.0, device);
}

#[test]
fn int8_is_bit_exact_with_tract_on_colour_images_layer_by_layer() {
    let (dir, _) = built();
    let (code, out, err) = mnistc(&[
        "check",
        &path(&dir.path().join("c.bin")),
        "--data",
        &path(&data_dir()),
        "--limit",
        "200",
        "--per-layer",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}\n{out}");
    let r = json(&out);
    assert_eq!(r["passed"], true, "{r}");
    assert_eq!(r["max_lsb_diff"].as_u64(), Some(0), "{r}");
    assert_eq!(r["images"].as_u64(), Some(200), "{r}");
}

#[test]
fn predict_classifies_a_colour_png_as_the_same_pixels_from_the_batch() {
    let (dir, _) = built();
    let blob = path(&dir.path().join("c.bin"));
    let test = test_set();
    let png_dir = tempfile::tempdir().unwrap();
    let mut pngs = Vec::new();
    for i in 0..4 {
        let img = image::RgbImage::from_raw(32, 32, test.image(i).to_vec()).unwrap();
        let p = png_dir.path().join(format!("{i}.png"));
        img.save(&p).unwrap();
        pngs.push(path(&p));
    }
    let mut args = vec!["predict", &blob, "--json"];
    args.extend(pngs.iter().map(String::as_str));
    let (code, from_png, err) = mnistc(&args);
    assert_eq!(code, 0, "{err}");
    let batch = data_dir().join("cifar-10/test_batch.bin.gz");
    let (code, from_batch, err) = mnistc(&["predict", &blob, "--cifar", &path(&batch), "--limit", "4", "--json"]);
    assert_eq!(code, 0, "{err}");
    let scores = |out: &str| -> Vec<serde_json::Value> { out.lines().map(|l| json(l)["scores"].clone()).collect() };
    assert_eq!(scores(&from_png).len(), 4);
    assert_eq!(scores(&from_png), scores(&from_batch));
    // A grey IDX file does not fit a colour model: a clear error, exit 2.
    let idx = data_dir().join("mnist/t10k-images-idx3-ubyte.gz");
    let (code, _, err) = mnistc(&["predict", &blob, "--idx", &path(&idx)]);
    assert_eq!(code, 2);
    assert!(err.contains("images are 28x28x1 (height x width x channels), the model takes 32x32x3"), "{err}");
}
