//! Real burn training on a few thousand images for one epoch: accuracy floors for a small CNN
//! and an MLP, bit-reproducibility, checkpoints, early stopping, optimizers and schedules, and
//! the exported weight layouts checked against a plain-Rust forward pass.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mnistc::data::{self, DataDir, Dataset, Images, Split, prepare_training};
use mnistc::spec::{Activation, Layer, ModelSpec, Padding};
use mnistc::train::{self, Checkpoint, CheckpointError, Device, LayerKind, TrainError, TrainOptions, TrainedModel};

fn data_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("MNISTC_DATA") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("../shared/data"),
    }
}

fn mnist(split: Split) -> &'static Images {
    static TRAIN: OnceLock<Images> = OnceLock::new();
    static TEST: OnceLock<Images> = OnceLock::new();
    let cell = match split {
        Split::Train => &TRAIN,
        Split::Test => &TEST,
    };
    cell.get_or_init(|| data::load(&DataDir::new(data_root()), Dataset::Mnist, split).unwrap())
}

fn spec(layers: &str, train: &str, data: &str) -> ModelSpec {
    ModelSpec::parse(&format!("[data]\ndataset = \"mnist\"\n{data}\n{layers}\n[train]\n{train}\n"), "test.toml")
        .unwrap()
}

const CNN: &str = r#"
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
type = "dropout"
rate = 0.5
[[layers]]
type = "dense"
units = 10
"#;

const MLP: &str = r#"
[[layers]]
type = "dense"
units = 256
[[layers]]
type = "dropout"
rate = 0.2
[[layers]]
type = "dense"
units = 128
[[layers]]
type = "dense"
units = 10
"#;

/// Exercises every layer type and option: an even kernel with `same` padding and unequal
/// strides (asymmetric padding), relu6, a valid conv without activation, overlapping max
/// pooling, average pooling, an explicit flatten, dropout.
const EVERY_LAYER: &str = r#"
[[layers]]
type = "conv2d"
filters = 6
kernel = [4, 2]
stride = [2, 1]
padding = "same"
activation = "relu6"
[[layers]]
type = "conv2d"
filters = 8
kernel = 3
activation = "none"
[[layers]]
type = "maxpool2d"
size = 3
stride = 2
[[layers]]
type = "avgpool2d"
size = 2
[[layers]]
type = "flatten"
[[layers]]
type = "dense"
units = 32
[[layers]]
type = "dropout"
rate = 0.3
[[layers]]
type = "dense"
units = 10
"#;

fn accuracy_on_test(model: &TrainedModel, n: usize) -> f64 {
    let test = mnist(Split::Test).head(n);
    train::evaluate(model, &test, Device::Cpu).unwrap().accuracy
}

#[test]
fn small_cnn_reaches_90_percent_after_one_epoch_on_5000_images() {
    let s = spec(CNN, "learning_rate = 0.002\nbatch_size = 32\nepochs = 1", "validation = 0.0\ntrain_limit = 5000");
    let model = train::train(&s, mnist(Split::Train), &TrainOptions::default()).unwrap();
    assert_eq!(model.history.train_images, 5000);
    assert_eq!(model.history.epochs.len(), 1);
    let acc = accuracy_on_test(&model, 2000);
    eprintln!("small CNN: {:.2}% on 2000 test images", acc * 100.0);
    assert!(acc >= 0.90, "CNN accuracy {acc}");
}

#[test]
fn mlp_reaches_90_percent_after_one_epoch_on_8000_images() {
    // An MLP learns less per image than a CNN: it needs a few more images (and small batches)
    // to pass 90 % in one epoch.
    let s = spec(MLP, "learning_rate = 0.001\nbatch_size = 8\nepochs = 1", "validation = 0.0\ntrain_limit = 8000");
    let model = train::train(&s, mnist(Split::Train), &TrainOptions::default()).unwrap();
    let acc = accuracy_on_test(&model, 2000);
    eprintln!("MLP: {:.2}% on 2000 test images", acc * 100.0);
    assert!(acc >= 0.90, "MLP accuracy {acc}");
}

#[test]
fn a_fixed_seed_makes_training_bit_reproducible() {
    let train_cfg = "batch_size = 50\nepochs = 1\naugment = { shift = 2, rotate = 10.0 }";
    let data_cfg = "validation = 0.1\ntrain_limit = 1000";
    let s = spec(CNN, train_cfg, data_cfg);
    let a = train::train(&s, mnist(Split::Train), &TrainOptions::default()).unwrap();
    let b = train::train(&s, mnist(Split::Train), &TrainOptions::default()).unwrap();
    assert_eq!(a.layers, b.layers, "weights differ between two runs with one seed");
    let losses = |m: &TrainedModel| {
        m.history
            .epochs
            .iter()
            .map(|e| (e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&a), losses(&b));
    let other = spec(CNN, &format!("{train_cfg}\nseed = 7"), data_cfg);
    let c = train::train(&other, mnist(Split::Train), &TrainOptions::default()).unwrap();
    assert_ne!(a.layers, c.layers);
}

#[test]
fn checkpoints_round_trip_exactly_and_reject_corruption() {
    let s = spec(MLP, "epochs = 2\nbatch_size = 64", "train_limit = 1000");
    let model = train::train(&s, mnist(Split::Train), &TrainOptions::default()).unwrap();
    let test = mnist(Split::Test).head(500);
    let eval = train::evaluate(&model, &test, Device::Cpu).unwrap();
    let digests = data::file_digests(&DataDir::new(data_root()), Dataset::Mnist).unwrap();
    let ckpt = Checkpoint::new(model.clone(), digests.clone(), Some(eval.clone()));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.ckpt");
    let files = ckpt.save(&path).unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded, ckpt);
    for (a, b) in loaded.model.layers.iter().zip(&model.layers) {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.weight), bits(&b.weight));
        assert_eq!(bits(&a.bias), bits(&b.bias));
    }
    assert_eq!(
        train::predict_logits(&loaded.model, &test, Device::Cpu).unwrap(),
        train::predict_logits(&model, &test, Device::Cpu).unwrap()
    );
    assert!(loaded.is_reusable_for(&s, &digests));
    let mut changed = s.clone();
    changed.train.learning_rate = 0.01;
    assert!(!loaded.is_reusable_for(&changed, &digests));
    let mut renamed = s.clone();
    renamed.quantize.calibration = 10;
    assert!(loaded.is_reusable_for(&renamed, &digests));
    assert!(!loaded.is_reusable_for(&s, &digests[..3]));

    // Side files: history as JSON and CSV, the spec as JSON.
    let history: serde_json::Value = serde_json::from_slice(&std::fs::read(&files.history_json).unwrap()).unwrap();
    assert_eq!(history["epochs"].as_array().unwrap().len(), 2);
    assert!(history["epochs"][1]["val_loss"].as_f64().unwrap() > 0.0);
    let csv = std::fs::read_to_string(&files.history_csv).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.starts_with("epoch,train_loss,train_accuracy,val_loss,val_accuracy"));
    let spec_json: ModelSpec = serde_json::from_slice(&std::fs::read(&files.spec_json).unwrap()).unwrap();
    assert_eq!(spec_json, s);
    // No temporary file is left behind.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 4, "{names:?}");

    // One flipped bit, a truncation, and a non-checkpoint are all rejected.
    let bytes = std::fs::read(&path).unwrap();
    let mut flipped = bytes.clone();
    let at = bytes.len() - 100;
    flipped[at] ^= 1;
    let err = Checkpoint::from_bytes(&flipped, &path).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    let err = Checkpoint::from_bytes(&bytes[..bytes.len() / 2], &path).unwrap_err();
    assert!(matches!(err, CheckpointError::Format { .. }), "{err}");
    let err = Checkpoint::from_bytes(b"definitely not", &path).unwrap_err();
    assert!(err.to_string().contains("MNISTCKP"), "{err}");
    let err = Checkpoint::load(&dir.path().join("missing.ckpt")).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }));
}

#[test]
fn early_stopping_returns_the_weights_of_the_best_epoch() {
    let s = spec(
        CNN,
        "epochs = 3\nbatch_size = 64\nearly_stopping = 5\nlearning_rate = 0.003",
        "validation = 0.2\ntrain_limit = 1500",
    );
    let model = train::train(&s, mnist(Split::Train), &TrainOptions::default()).unwrap();
    let h = &model.history;
    assert!(h.restored_best);
    assert!(!h.stopped_early);
    let best = h.best_epoch.unwrap();
    let losses: Vec<f64> = h.epochs.iter().map(|e| e.val_loss.unwrap()).collect();
    let argmin = 1 + losses.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    assert_eq!(best, argmin);
    // The returned weights reproduce the best epoch's validation loss exactly.
    let split = prepare_training(mnist(Split::Train), &s.data, 10, s.train.seed);
    let val = split.validation.unwrap();
    let logits = train::predict_logits(&model, &val, Device::Cpu).unwrap();
    let mut loss = 0.0;
    for (i, &label) in val.labels.iter().enumerate() {
        let row = logits.row(i);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        loss += max + sum.ln() - row[label as usize] as f64;
    }
    loss /= val.n as f64;
    assert!((loss - losses[best - 1]).abs() < 1e-9, "{loss} vs {:?} (best epoch {best})", losses);
}

/// A CNN with every kind of state a training carries across epochs: a batchnorm (running
/// statistics), dropout (burn's device RNG), augmentation and shuffling (mnistc's generators),
/// Adam moments, a plateau schedule and early-stopping bookkeeping.
const RESUMABLE: &str = r#"
[[layers]]
type = "conv2d"
filters = 8
kernel = 3
activation = "none"
[[layers]]
type = "batchnorm"
activation = "relu"
[[layers]]
type = "maxpool2d"
size = 2
[[layers]]
type = "dropout"
rate = 0.3
[[layers]]
type = "dense"
units = 10
"#;

#[test]
fn a_paused_or_interrupted_training_resumes_to_the_bytes_of_an_uninterrupted_run() {
    let s = spec(
        RESUMABLE,
        "epochs = 3\nbatch_size = 50\nearly_stopping = 3\nweight_decay = 0.0001\n\
         lr_schedule = { type = \"plateau\", patience = 1, factor = 0.5 }\naugment = { shift = 2 }",
        "validation = 0.2\ntrain_limit = 600",
    );
    let images = mnist(Split::Train);
    let plain = train::train(&s, images, &TrainOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.resume");
    let opts = |pause_after| TrainOptions { resume: Some(&path), pause_after, ..TrainOptions::default() };

    // Two slices of one epoch, then the rest.
    for done in 1..=2 {
        match train::train(&s, images, &opts(Some(1))) {
            Err(TrainError::Paused { epochs_done, epochs: 3, path: p }) => {
                assert_eq!((epochs_done, p.as_path()), (done, path.as_path()));
            }
            other => panic!("expected a pause after epoch {done}, got {other:?}"),
        }
        assert!(path.exists());
    }
    let resumed = train::train(&s, images, &opts(None)).unwrap();
    assert!(!path.exists(), "the state is deleted when the run finishes");
    let bits = |m: &TrainedModel| {
        m.layers
            .iter()
            .map(|l| l.weight.iter().chain(&l.bias).map(|v| v.to_bits()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&resumed), bits(&plain), "resumed weights differ from the uninterrupted run's");
    let numbers = |m: &TrainedModel| {
        let h = &m.history;
        let epochs: Vec<_> = h
            .epochs
            .iter()
            .map(|e| (e.epoch, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy, e.learning_rate))
            .collect();
        (epochs, h.best_epoch, h.restored_best, h.stopped_early, h.train_images, h.validation_images)
    };
    assert_eq!(numbers(&resumed), numbers(&plain));
    assert_eq!(plain.history.epochs.len(), 3);

    // A state that cannot be used (corrupt, or another spec's) is ignored: the run starts over
    // and still ends with the same bytes.
    assert!(matches!(train::train(&s, images, &opts(Some(1))), Err(TrainError::Paused { .. })));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(bits(&train::train(&s, images, &opts(None)).unwrap()), bits(&plain));
    let mut other = s.clone();
    other.train.seed = 99;
    assert!(matches!(train::train(&other, images, &opts(Some(1))), Err(TrainError::Paused { .. })));
    assert_eq!(bits(&train::train(&s, images, &opts(None)).unwrap()), bits(&plain));
}

#[test]
fn sgd_nesterov_adamw_schedules_glorot_and_label_smoothing_train() {
    let data_cfg = "validation = 0.1\ntrain_limit = 2000";
    let configs = [
        "optimizer = \"sgd\"\nlearning_rate = 0.05\nmomentum = 0.9\nnesterov = true\nweight_decay = 0.0001\nepochs = 2\nbatch_size = 32\ninit = \"glorot\"\nlr_schedule = { type = \"step\", step_size = 1, gamma = 0.5 }",
        "optimizer = \"adamw\"\nweight_decay = 0.01\nepochs = 2\nbatch_size = 32\nlabel_smoothing = 0.1\nlr_schedule = { type = \"plateau\", patience = 1, factor = 0.5 }",
        "optimizer = \"adam\"\nepochs = 2\nbatch_size = 32\nlr_schedule = \"cosine\"",
        "optimizer = \"adam\"\nlearning_rate = 0.003\nepochs = 2\nbatch_size = 32\nlr_schedule = \"one_cycle\"",
    ];
    for cfg in configs {
        let s = spec(MLP, cfg, data_cfg);
        let m = train::train(&s, mnist(Split::Train), &TrainOptions::default()).unwrap();
        let e = &m.history.epochs;
        assert_eq!(e.len(), 2, "{cfg}");
        assert!(e[1].train_loss < e[0].train_loss, "{cfg}: {e:?}");
        assert!(e[1].val_accuracy.unwrap() > 0.8, "{cfg}: {e:?}");
        if cfg.contains("step") {
            assert_eq!(e[0].learning_rate, 0.05);
            assert_eq!(e[1].learning_rate, 0.025);
        }
        if cfg.contains("one_cycle") {
            // Epoch 1 starts at learning_rate / 25; the peak (batch 0.3 * 114 - 1) is in epoch 1,
            // so epoch 2 starts on the way down.
            assert!((e[0].learning_rate - 0.003 / 25.0).abs() < 1e-12, "{e:?}");
            assert!(e[1].learning_rate > 0.0015 && e[1].learning_rate < 0.003, "{e:?}");
        }
        if cfg.contains("cosine") {
            assert_eq!(e[0].learning_rate, 0.001);
            assert!((e[1].learning_rate - 0.0005).abs() < 1e-5, "{e:?}");
        }
    }
}

/// Plain-Rust forward pass over the exported weights, written from the documented layouts:
/// NCHW activations, conv weights `[out, in, kh, kw]` (cross-correlation, TF-style `same`
/// padding with the extra row/column at the bottom/right), floor pooling without padding,
/// dense weights `[in, out]` with inputs in C,H,W order.
fn reference_logits(model: &TrainedModel, image: &[u8]) -> Vec<f32> {
    let (mut c, mut h, mut w) = (1usize, 28usize, 28usize);
    let mut x: Vec<f32> = image.iter().map(|&p| p as f32 / 255.0).collect();
    let act = |v: f32, a: Activation| match a {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::Relu6 => v.clamp(0.0, 6.0),
    };
    for (i, l) in model.spec.layers.iter().enumerate() {
        match l.layer {
            Layer::Conv2d { filters, kernel: [kh, kw], stride: [sh, sw], padding, activation } => {
                let t = model.layer(i).unwrap();
                assert_eq!(t.kind, LayerKind::Conv2d);
                assert_eq!(t.weight_shape, vec![filters, c, kh, kw]);
                let (oh, ow, pt, pl) = match padding {
                    Padding::Valid => ((h - kh) / sh + 1, (w - kw) / sw + 1, 0, 0),
                    Padding::Same => {
                        let (oh, ow) = (h.div_ceil(sh), w.div_ceil(sw));
                        let th = ((oh - 1) * sh + kh).saturating_sub(h);
                        let tw = ((ow - 1) * sw + kw).saturating_sub(w);
                        (oh, ow, th / 2, tw / 2)
                    }
                };
                let mut y = vec![0f32; filters * oh * ow];
                for o in 0..filters {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut s = t.bias[o];
                            for ci in 0..c {
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let iy = (oy * sh + ky) as isize - pt as isize;
                                        let ix = (ox * sw + kx) as isize - pl as isize;
                                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                            continue;
                                        }
                                        let xv = x[(ci * h + iy as usize) * w + ix as usize];
                                        let wv = t.weight[((o * c + ci) * kh + ky) * kw + kx];
                                        s += xv * wv;
                                    }
                                }
                            }
                            y[(o * oh + oy) * ow + ox] = act(s, activation);
                        }
                    }
                }
                (x, c, h, w) = (y, filters, oh, ow);
            }
            Layer::MaxPool2d { size: [ph, pw], stride: [sh, sw] }
            | Layer::AvgPool2d { size: [ph, pw], stride: [sh, sw] } => {
                let is_max = matches!(l.layer, Layer::MaxPool2d { .. });
                let (oh, ow) = ((h - ph) / sh + 1, (w - pw) / sw + 1);
                let mut y = vec![0f32; c * oh * ow];
                for ci in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let vals = (0..ph).flat_map(|ky| {
                                let x = &x;
                                (0..pw).map(move |kx| x[(ci * h + oy * sh + ky) * w + ox * sw + kx])
                            });
                            y[(ci * oh + oy) * ow + ox] = if is_max {
                                vals.fold(f32::NEG_INFINITY, f32::max)
                            } else {
                                vals.sum::<f32>() / (ph * pw) as f32
                            };
                        }
                    }
                }
                (x, h, w) = (y, oh, ow);
            }
            Layer::Dense { units, activation } => {
                let t = model.layer(i).unwrap();
                let n = x.len();
                assert_eq!(t.weight_shape, vec![n, units]);
                let y: Vec<f32> = (0..units)
                    .map(|j| {
                        let s = t.bias[j] + (0..n).map(|k| x[k] * t.weight[k * units + j]).sum::<f32>();
                        act(s, activation)
                    })
                    .collect();
                (x, c, h, w) = (y, units, 1, 1);
            }
            Layer::Dropout { .. } | Layer::Flatten => {}
            // tests/spec_to_blob.rs (`batchnorm_and_global_avgpool`, `residual`) covers these against
            // the runtime's f32 blob.
            other @ (Layer::DepthwiseConv2d { .. }
            | Layer::BatchNorm { .. }
            | Layer::GlobalAvgPool
            | Layer::Add { .. }) => {
                panic!("the models of this test have no {} layer", other.type_name())
            }
        }
    }
    x
}

#[test]
fn exported_weights_follow_the_documented_layouts() {
    let s = spec(EVERY_LAYER, "epochs = 1\nbatch_size = 32", "validation = 0.0\ntrain_limit = 600");
    let shapes = s.shapes().unwrap();
    assert_eq!(shapes[0].output.hwc(), (14, 28, 6));
    assert_eq!(shapes[3].output.hwc(), (2, 6, 8));
    let model = train::train(&s, mnist(Split::Train), &TrainOptions::default()).unwrap();
    model.validate().unwrap();
    assert_eq!(model.layers.iter().map(|l| l.spec_index).collect::<Vec<_>>(), vec![0, 1, 5, 7]);
    let test = mnist(Split::Test).head(20);
    let logits = train::predict_logits(&model, &test, Device::Cpu).unwrap();
    assert_eq!(logits.len(), 20);
    for i in 0..test.n {
        let want = reference_logits(&model, test.image(i));
        for (a, b) in logits.row(i).iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "image {i}: burn {:?} vs reference {want:?}",
                logits.row(i)
            );
        }
    }

    // Per-layer outputs: one call per layer per batch, sized by the spec's shapes, and the last
    // one is the logits.
    let mut seen = vec![0usize; s.layers.len()];
    let mut last = Vec::new();
    train::for_each_layer_output(&model, &test, Device::Cpu, |layer, values, batch| {
        assert_eq!(batch, 20);
        assert_eq!(values.len(), batch * shapes[layer].output.len(), "layer {layer}");
        seen[layer] += 1;
        if layer == s.layers.len() - 1 {
            last = values.to_vec();
        }
        if layer == 0 {
            assert!(values.iter().all(|&v| (0.0..=6.0).contains(&v)), "relu6");
        }
    })
    .unwrap();
    assert_eq!(seen, vec![1; s.layers.len()]);
    assert_eq!(last, logits.values);
}

#[test]
fn mismatched_images_and_missing_cuda_are_errors() {
    let s = spec(MLP, "epochs = 1", "validation = 0.0\ntrain_limit = 100");
    let small = Images::grey(1, 27, 28, vec![0; 27 * 28], vec![3]);
    let err = train::train(&s, &small, &TrainOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("the model expects 28x28x1 images (height x width x channels), but the data has 27x28x1"),
        "{err}"
    );
    let bad_label = Images::grey(1, 28, 28, vec![0; 784], vec![12]);
    let err = train::train(&s, &bad_label, &TrainOptions::default()).unwrap_err();
    assert!(matches!(err, TrainError::LabelOutOfRange { label: 12, .. }), "{err}");
    if !Device::Cuda.is_compiled_in() {
        let opts = TrainOptions { device: Device::Cuda, ..TrainOptions::default() };
        let err = train::train(&s, mnist(Split::Train), &opts).unwrap_err();
        assert!(matches!(err, TrainError::CudaUnavailable), "{err}");
        assert!(err.to_string().contains("built without CUDA"), "{err}");
    }
}
