//! `[init] from` (pretrained weights from a .tflite, .onnx or checkpoint) and frozen layers.

use mnistc::data::{self, DataDir, Dataset, Images, Split};
use mnistc::import::{self, ImportOptions};
use mnistc::lower::plan::Weights;
use mnistc::spec::{InvalidKind, ModelSpec};
use mnistc::train::{self, Checkpoint, Device, LayerKind, TrainError, TrainOptions};
use mnistc_suite::{data_dir, mnistc, models_dir, workspace_root};

/// The first `n` CIFAR-10 training images.
fn cifar_head(n: usize) -> Images {
    data::load(&DataDir::new(data_dir()), Dataset::Cifar10, Split::Train).expect("CIFAR-10").head(n)
}

fn mnist(split: Split) -> Images {
    data::load(&DataDir::new(data_dir()), Dataset::Mnist, split).expect("MNIST")
}

/// The Keras MNIST CNN's layers (conv 32, pool, conv 64, pool, dense 10), after `init`.
fn keras_cnn(init: &str, train: &str) -> String {
    format!(
        r#"name = "keras-cnn"
{init}
[[layers]]
type = "conv2d"
filters = 32
kernel = 3
[[layers]]
type = "maxpool2d"
size = 2
[[layers]]
type = "conv2d"
filters = 64
kernel = 3
[[layers]]
type = "maxpool2d"
size = 2
[[layers]]
type = "dense"
units = 10
[data]
dataset = "mnist"
validation = 0
[train]
batch_size = 100
epochs = 1
{train}
"#
    )
}

fn tflite(name: &str) -> String {
    models_dir().join(name).to_str().unwrap().replace('\\', "/")
}

/// Keras's trained weights through `[init] from`, barely trained further, classify as Keras's
/// model does: the layouts (OHWI to OIHW, the dense layer's HWC inputs to burn's CHW) are right.
#[test]
fn weights_from_a_tflite_keep_its_accuracy() {
    let init = format!("[init]\nfrom = \"{}\"", tflite("cnn_mnist_float32.tflite"));
    let spec = ModelSpec::parse(&keras_cnn(&init, "learning_rate = 1e-9"), "keras.toml").unwrap();
    let model = train::train(&spec, &mnist(Split::Train).head(200), &TrainOptions::default()).unwrap();
    let test = mnist(Split::Test).head(2000);
    let eval = train::evaluate(&model, &test, Device::Cpu).unwrap();
    // Keras's float model: 99.16 % on all 10,000; a random start after 200 images is near 10-60 %.
    assert!(eval.accuracy >= 0.985, "accuracy {}", eval.accuracy);
}

/// Frozen layers come out of training with exactly the file's weights; the rest train.
#[test]
fn frozen_layers_keep_the_pretrained_weights() {
    let path = models_dir().join("cnn_mnist_float32.tflite");
    let init =
        format!("[init]\nfrom = \"{}\"\nlayers = 2\nfreeze = \"all-but-last-1\"", tflite("cnn_mnist_float32.tflite"));
    let spec = ModelSpec::parse(&keras_cnn(&init, "learning_rate = 0.01"), "keras.toml").unwrap();
    assert_eq!(spec.layers.iter().map(|l| l.freeze).collect::<Vec<_>>(), [true, false, true, false, false]);
    let model = train::train(&spec, &mnist(Split::Train).head(300), &TrainOptions::default()).unwrap();
    let plan = import::import(&path, ImportOptions::default()).unwrap();
    for (k, spec_index) in [(0usize, 0usize), (1, 2)] {
        let op = &plan.ops.iter().filter(|o| matches!(o.weights, Weights::F32(_))).nth(k).unwrap();
        let Weights::F32(ohwi) = &op.weights else { unreachable!() };
        let layer = model.layer(spec_index).unwrap();
        assert_eq!(layer.kind, LayerKind::Conv2d);
        let [o, i, kh, kw] = layer.weight_shape[..] else { panic!("a 4-D conv weight") };
        for (n, &v) in layer.weight.iter().enumerate() {
            let (oo, ii, y, x) = (n / (i * kh * kw), n / (kh * kw) % i, n / kw % kh, n % kw);
            assert_eq!(v.to_bits(), ohwi[((oo * kh + y) * kw + x) * i + ii].to_bits(), "layer {spec_index} weight {n}");
        }
        assert_eq!(o, op.output.c);
    }
    // The dense layer started fresh and trained: it does not hold Keras's weights.
    let Weights::F32(keras_dense) = &plan.ops.last().unwrap().weights else { panic!() };
    let dense = model.layer(4).unwrap();
    assert_ne!(dense.weight.len(), 0);
    assert!(dense.weight.iter().zip(keras_dense).any(|(a, b)| a != b));
}

/// From an mnistc checkpoint: a frozen batchnorm keeps its scale, shift and running statistics.
#[test]
fn a_frozen_batchnorm_keeps_its_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let layers = r#"
[[layers]]
type = "conv2d"
filters = 8
kernel = 3
[[layers]]
type = "batchnorm"
activation = "relu"
[[layers]]
type = "maxpool2d"
size = 2
[[layers]]
type = "dense"
units = 10
[data]
dataset = "mnist"
validation = 0
[train]
batch_size = 50
epochs = 1
"#;
    let images = mnist(Split::Train).head(300);
    let base = ModelSpec::parse(&format!("name = \"base\"\n{layers}"), "base.toml").unwrap();
    let trained = train::train(&base, &images, &TrainOptions::default()).unwrap();
    let ckpt = dir.path().join("base.ckpt");
    Checkpoint::new(trained.clone(), Vec::new(), None).save(&ckpt).unwrap();

    let text = format!(
        "name = \"tuned\"\n[init]\nfrom = \"{}\"\nlayers = 2\nfreeze = \"all-but-last-1\"\n{layers}",
        ckpt.to_str().unwrap().replace('\\', "/")
    );
    let mut spec = ModelSpec::parse(&text, "tuned.toml").unwrap();
    assert!(spec.layers[1].freeze, "a batchnorm follows its frozen conv");
    // Two epochs in two slices: the layers stay frozen across a pause and resume.
    spec.train.epochs = 2;
    let state = dir.path().join("tuned.state");
    let sliced = TrainOptions { resume: Some(&state), pause_after: Some(1), ..TrainOptions::default() };
    let first = train::train(&spec, &mnist(Split::Train).head(600), &sliced);
    assert!(matches!(first, Err(TrainError::Paused { .. })), "{first:?}");
    let resumed = TrainOptions { resume: Some(&state), ..TrainOptions::default() };
    let tuned = train::train(&spec, &mnist(Split::Train).head(600), &resumed).unwrap();
    for i in [0, 1] {
        assert_eq!(tuned.layer(i).unwrap().weight, trained.layer(i).unwrap().weight, "layer {i}");
        assert_eq!(tuned.layer(i).unwrap().bias, trained.layer(i).unwrap().bias, "layer {i}");
    }
    assert_ne!(tuned.layer(3).unwrap().weight, trained.layer(3).unwrap().weight);
}

#[test]
fn a_layer_that_does_not_fit_is_named() {
    // The file's second conv has 64 filters; this model's has 48.
    let init = format!("[init]\nfrom = \"{}\"", tflite("cnn_mnist_float32.tflite"));
    let text = keras_cnn(&init, "").replace("filters = 64", "filters = 48");
    let spec = ModelSpec::parse(&text, "keras.toml").unwrap();
    let err = train::train(&spec, &mnist(Split::Train).head(100), &TrainOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TrainError::Pretrained { .. }) && err.is_bad_input(), "{msg}");
    assert!(msg.starts_with("keras.toml:3: init.from:"), "{msg}");
    assert!(
        msg.contains("layers[2] (line 11) is a conv2d with weights 48x32x3x3")
            && msg.contains("op 2 (conv2d, 64x32x3x3)"),
        "{msg}"
    );
    // A file that is not there, through the CLI: exit 2.
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("m.toml");
    std::fs::write(&spec_path, keras_cnn("[init]\nfrom = \"missing.tflite\"", "")).unwrap();
    let out = dir.path().join("m.bin");
    let (code, _, stderr) = mnistc(&[
        "build",
        spec_path.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--train-limit",
        "100",
        "--data",
        data_dir().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("init.from") && stderr.contains("missing.tflite") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn init_and_freeze_keys_are_checked() {
    let bad = |init: &str, train: &str| ModelSpec::parse(&keras_cnn(init, train), "m.toml").expect_err("invalid");
    let e = bad("[init]\nfrom = \"x.tflite\"\nfreeze = \"all-but-last-0\"", "");
    assert_eq!((e.key(), e.kind()), (Some("init.freeze"), Some(InvalidKind::BadValue)), "{e}");
    assert!(e.to_string().contains("all-but-last-N"), "{e}");
    let e = bad("[init]\nfrom = \"x.tflite\"\nlayers = 4", "");
    assert_eq!(e.key(), Some("init.layers"), "{e}");
    let e = bad("[init]\nlayers = 1", "");
    assert_eq!((e.key(), e.kind()), (Some("init.from"), Some(InvalidKind::Missing)), "{e}");
    // Everything frozen: nothing would train.
    let all = keras_cnn("", "")
        .replace("units = 10", "units = 10\nfreeze = true")
        .replace("kernel = 3", "kernel = 3\nfreeze = true");
    let e = ModelSpec::parse(&all, "m.toml").expect_err("nothing to train");
    assert!(e.to_string().contains("nothing would train"), "{e}");
    // A relative `from` is resolved against the model file's folder; freeze without [init] warns.
    let s = ModelSpec::parse(&keras_cnn("[init]\nfrom = \"w.tflite\"", ""), "dir/m.toml").unwrap();
    assert_eq!(s.init.unwrap().from, std::path::Path::new("dir/w.tflite"));
    let s =
        ModelSpec::parse(&keras_cnn("", "").replacen("kernel = 3", "kernel = 3\nfreeze = true", 1), "m.toml").unwrap();
    assert!(s.warnings.iter().any(|w| w.contains("random initial weights")), "{:?}", s.warnings);
    // The pretrained file enters the training key (by content), so does freezing.
    let a = ModelSpec::parse(&keras_cnn("", ""), "m.toml").unwrap().training_key_json();
    let b = ModelSpec::parse(
        &keras_cnn(&format!("[init]\nfrom = \"{}\"", tflite("cnn_mnist_float32.tflite")), ""),
        "m.toml",
    )
    .unwrap()
    .training_key_json();
    assert_ne!(a, b);
    assert!(b.contains("\"sha256\":\""), "{b}");
}

/// The shipped transfer model: the VWW MobileNet's first 13 layers, frozen, and a new head (it
/// builds and checks in `tests/cli_build.rs`, with every shipped model).
#[test]
fn the_shipped_transfer_model_maps_the_vww_backbone() {
    let text = std::fs::read_to_string(workspace_root().join("models/cifar-transfer.toml")).unwrap();
    let text = text.replace("../../shared/models/vww_96_float.tflite", &tflite("vww_96_float.tflite"));
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("cifar-transfer.toml");
    std::fs::write(&spec_path, text).unwrap();
    let spec = ModelSpec::from_path(&spec_path).unwrap();
    assert_eq!(spec.layers.iter().filter(|l| l.freeze).count(), 13);
    let (code, stdout, stderr) = mnistc(&["summary", spec_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(frozen)") && stdout.contains("Trainable:    1,290"), "{stdout}");
    assert!(stdout.contains("Total params: 20,010"), "{stdout}");
    // Its 13 layers take the file's first 13 layers with weights, shape for shape.
    let mut ckpt_spec = spec.clone();
    ckpt_spec.train.epochs = 1;
    let model = train::train(&ckpt_spec, &cifar_head(40), &TrainOptions::default()).unwrap();
    let plan = import::import(&models_dir().join("vww_96_float.tflite"), ImportOptions::default()).unwrap();
    let Weights::F32(first) = &plan.ops[0].weights else { panic!("a float model") };
    // The same values, permuted from OHWI to OIHW (the layout itself: frozen_layers_keep_the_pretrained_weights).
    let sorted = |v: &[f32]| {
        let mut v: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(sorted(&model.layer(0).unwrap().weight), sorted(first));
    assert_eq!(model.layer(0).unwrap().weight_shape, [8, 3, 3, 3]);
}
