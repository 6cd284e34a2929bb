//! Every spec that validates must build: random `model.toml` layer stacks (explicit and implicit
//! flatten, dropout, odd sizes, strides 1–3, `same`/`valid`, kernels 1–5 square and rectangular,
//! max/avg pools that floor, global average pools, depthwise convolutions, batchnorms after convs
//! and dense layers, dense stacks, every activation, every precision and calibration method) go through the build's own path without training — seeded weights
//! ([`TrainedModel::seeded`]) → [`pipeline::deploy`] (float plan, calibration, quantization,
//! conv/pool fusion, arena plan, blob, runtime evaluation) → ONNX export → tract-onnx on every
//! op's output; some stacks hold residual blocks (named layers, `add`, fused into the conv before
//! it or not) and an add on the image itself. The module `batchnorm_and_global_avgpool` checks
//! those layers' placement rules and that folding a batchnorm leaves the float model's outputs
//! unchanged; `residual` runs the shipped ResNet-8.

use mnistc::data::{Images, Rng};
use mnistc::export::onnx;
use mnistc::pipeline;
use mnistc::report::summary;
use mnistc::spec::{InvalidKind, ModelSpec, SpecError};
use mnistc::train::TrainedModel;
use mnistc::verify::check;
use proptest::prelude::*;

/// Random but valid-looking TOML for a layer stack on 28×28 grey images (it may still not fit:
/// a kernel larger than its input, say, which `ModelSpec::parse` must reject).
fn random_spec(seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut pick = |n: u64| rng.below(n) as usize;
    let mut layers = String::new();
    let activation = |i: usize| ["none", "relu", "relu6"][i];
    let pair = |a: usize, b: usize| if a == b { a.to_string() } else { format!("[{a}, {b}]") };
    let convs = pick(4);
    if pick(4) == 0 {
        // A pool straight on the input.
        layers += &format!("[[layers]]\ntype = \"maxpool2d\"\nsize = {}\n\n", 1 + pick(3));
    }
    if pick(8) == 0 {
        // A residual add straight on the image: a one-filter `same` conv plus the input itself.
        layers += "[[layers]]\ntype = \"conv2d\"\nfilters = 1\nkernel = 3\npadding = \"same\"\nactivation = \"none\"\n\n\
                   [[layers]]\ntype = \"add\"\ninputs = \"input\"\nactivation = \"relu\"\n\n";
    }
    for block in 0..convs {
        let k = (1 + pick(5), 1 + pick(5));
        let k = if pick(3) == 0 { k } else { (k.0, k.0) };
        let normalized = pick(3) == 0;
        layers += &format!(
            "[[layers]]\ntype = \"conv2d\"\nfilters = {}\nkernel = {}\nstride = {}\npadding = \"{}\"\nactivation = \"{}\"\n\n",
            1 + pick(9),
            pair(k.0, k.1),
            pair(1 + pick(3), 1 + pick(3)),
            ["same", "valid"][pick(2)],
            if normalized { "none" } else { activation(pick(3)) },
        );
        if normalized {
            layers += &format!("[[layers]]\ntype = \"batchnorm\"\nactivation = \"{}\"\n\n", activation(pick(3)));
        }
        if pick(3) == 0 {
            // A depthwise convolution, sometimes batch-normalized.
            let k = (1 + pick(4), 1 + pick(4));
            let normalized = pick(2) == 0;
            layers += &format!(
                "[[layers]]\ntype = \"depthwise_conv2d\"\nkernel = {}\nstride = {}\npadding = \"{}\"\nactivation = \"{}\"\n\n",
                pair(k.0, k.1),
                pair(1 + pick(2), 1 + pick(2)),
                ["same", "valid"][pick(2)],
                if normalized { "none" } else { activation(pick(3)) },
            );
            if normalized {
                layers += &format!("[[layers]]\ntype = \"batchnorm\"\nactivation = \"{}\"\n\n", activation(pick(3)));
            }
        }
        match pick(4) {
            0 | 1 => {
                let kind = ["maxpool2d", "avgpool2d"][pick(2)];
                let size = 1 + pick(3);
                let stride = if pick(2) == 0 { String::new() } else { format!("stride = {}\n", 1 + pick(3)) };
                layers += &format!("[[layers]]\ntype = \"{kind}\"\nsize = {size}\n{stride}\n");
            }
            _ => {}
        }
        if pick(4) == 0 {
            layers += "[[layers]]\ntype = \"dropout\"\nrate = 0.25\n\n";
        }
        if pick(3) == 0 {
            // A residual block: `same` convs of one width, the last (sometimes batch-normalized,
            // sometimes activated, which keeps the add from being fused into it) added to the
            // first; sometimes the add names both inputs.
            let (f, name) = (1 + pick(8), format!("r{block}"));
            let conv = |k: usize, act: &str, name: &str| {
                format!(
                    "[[layers]]\ntype = \"conv2d\"\nfilters = {f}\nkernel = {k}\npadding = \"same\"\nactivation = \"{act}\"\n{name}\n"
                )
            };
            layers += &conv(1 + pick(3), activation(pick(3)), &format!("name = \"{name}\"\n"));
            let normalized = pick(3) == 0;
            let second = if normalized { "none" } else { activation(pick(3)) };
            let last = if pick(2) == 0 { "name = \"branch\"\n".to_string() } else { String::new() };
            if normalized {
                layers += &conv(1 + pick(3), second, "");
                layers += &format!("[[layers]]\ntype = \"batchnorm\"\nactivation = \"none\"\n{last}\n");
            } else {
                layers += &conv(1 + pick(3), second, &last);
            }
            let inputs = if last.is_empty() { format!("\"{name}\"") } else { format!("[\"branch\", \"{name}\"]") };
            layers +=
                &format!("[[layers]]\ntype = \"add\"\ninputs = {inputs}\nactivation = \"{}\"\n\n", activation(pick(3)));
            layers = layers.replace("name = \"branch\"", &format!("name = \"branch{block}\""));
            layers = layers.replace("\"branch\", ", &format!("\"branch{block}\", "));
        }
    }
    if convs > 0 && pick(4) == 0 {
        layers += "[[layers]]\ntype = \"global_avgpool\"\n\n";
    }
    if pick(2) == 0 {
        layers += "[[layers]]\ntype = \"flatten\"\n\n";
        if pick(3) == 0 {
            layers += "[[layers]]\ntype = \"dropout\"\nrate = 0.1\n\n";
        }
    }
    for _ in 0..pick(3) {
        let normalized = pick(4) == 0;
        layers += &format!(
            "[[layers]]\ntype = \"dense\"\nunits = {}\nactivation = \"{}\"\n\n",
            1 + pick(16),
            if normalized { "none" } else { activation(pick(3)) }
        );
        if normalized {
            layers += &format!(
                "[[layers]]\ntype = \"batchnorm\"\nepsilon = 0.001\nactivation = \"{}\"\n\n",
                activation(pick(3))
            );
        }
        if pick(3) == 0 {
            layers += "[[layers]]\ntype = \"dropout\"\nrate = 0.5\n\n";
        }
    }
    layers += "[[layers]]\ntype = \"dense\"\nunits = 10\n\n";
    let precision = ["int8", "int8", "f16", "f32"][pick(4)];
    let method = ["minmax", "percentile", "mse"][pick(3)];
    format!(
        "name = \"random\"\n\n{layers}[data]\ndataset = \"mnist\"\n\n[quantize]\nprecision = \"{precision}\"\n\
         calibration = 8\nmethod = \"{method}\"\n"
    )
}

/// `n` random 28×28 images (noise plus a bright square, so activations are not all alike).
fn images(n: usize, seed: u64) -> Images {
    let mut rng = Rng::new(seed);
    let mut pixels = vec![0u8; n * 784];
    for img in pixels.chunks_mut(784) {
        let (y0, x0) = (rng.below(20) as usize, rng.below(20) as usize);
        for (i, p) in img.iter_mut().enumerate() {
            let (y, x) = (i / 28, i % 28);
            let square = (y0..y0 + 8).contains(&y) && (x0..x0 + 8).contains(&x);
            *p = if square { 200 + rng.below(56) as u8 } else { rng.below(64) as u8 };
        }
    }
    Images::grey(n, 28, 28, pixels, (0..n).map(|i| (i % 10) as u8).collect())
}

/// `n` random 32×32 colour images, labels cycling through the ten classes.
fn colour_images(n: usize, seed: u64) -> Images {
    let mut rng = Rng::new(seed);
    let pixels = (0..n * 32 * 32 * 3).map(|_| rng.below(256) as u8).collect();
    Images { n, height: 32, width: 32, channels: 3, pixels, labels: (0..n).map(|i| (i % 10) as u8).collect() }
}

/// The f32 `plan` written as a blob and run by the runtime on `images`, against `expected` (10
/// logits an image, e.g. burn's): the largest difference and the largest expected magnitude.
fn float_blob_against(plan: &mnistc::lower::plan::Plan, images: &Images, expected: &[f32]) -> (f32, f32) {
    let blob = mnistc::lower::emit::write(plan).unwrap();
    let device = blob.model();
    let mut arena = vec![0u8; device.arena_size()];
    let (mut worst, mut largest) = (0.0f32, 0.0f32);
    for (img, expected) in images.pixels.chunks(device.input_len()).zip(expected.chunks(10)) {
        let mnistc_runtime::Activations::F32(got) =
            device.run_logits(mnistc_runtime::Input::Pixels(img), &mut arena).unwrap()
        else {
            panic!("an f32 blob gives f32 logits")
        };
        for (g, e) in got.iter().zip(expected) {
            worst = worst.max((g - e).abs());
            largest = largest.max(e.abs());
        }
    }
    (worst, largest)
}

/// Builds `spec` with seeded weights exactly as `mnistc build` lowers a trained model, and
/// checks the blob against tract on every op. Returns the blob bytes.
fn build_and_check(spec: &ModelSpec, seed: u64) -> Vec<u8> {
    let model = TrainedModel::seeded(spec, seed).unwrap();
    let calibration = images(8, seed ^ 1);
    let eval = images(4, seed ^ 2);
    let deployed = pipeline::deploy(spec, &model, &calibration, &eval, [7; 32])
        .unwrap_or_else(|e| panic!("{}: does not build: {e}", spec.origin));
    let onnx = onnx::export(&deployed.plan).unwrap();
    let report = check::check(deployed.blob.bytes(), &onnx, &eval.pixels, true).unwrap();
    assert!(report.passed, "{}: runtime and tract differ: {report:?}", spec.origin);
    assert_eq!(report.max_lsb_diff, 0);
    deployed.blob.to_vec()
}

fn parse(text: &str, origin: &str) -> Result<ModelSpec, SpecError> {
    ModelSpec::parse(text, origin)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_spec_that_validates_builds_and_matches_tract(seed in any::<u64>()) {
        let text = random_spec(seed);
        match parse(&text, &format!("<random spec {seed}>")) {
            Ok(spec) => {
                // What `mnistc summary` accepts...
                summary::summarize(&spec).unwrap();
                // ...builds, and the blob agrees with tract on every op.
                build_and_check(&spec, seed);
            }
            // Shapes that do not fit their input are the spec's to reject, with the key named.
            Err(e) => prop_assert!(
                e.kind() == Some(InvalidKind::Inconsistent) && e.key().is_some(),
                "unexpected error for\n{text}\n{e}"
            ),
        }
    }
}

/// The generator reaches builds often enough for the property to mean something.
#[test]
fn most_random_specs_validate() {
    let valid: Vec<ModelSpec> = (0..200).filter_map(|s| parse(&random_spec(s), "x").ok()).collect();
    assert!(valid.len() >= 60, "only {} of 200 random specs validate", valid.len());
    // Graphs among them: residual blocks and adds on the image.
    let graphs = valid.iter().filter(|s| !s.is_chain()).count();
    let on_image = valid
        .iter()
        .filter(|s| s.layers.iter().any(|l| l.inputs.contains(&mnistc::spec::InputRef::Input) && l.inputs.len() == 2))
        .count();
    assert!(graphs >= 15 && on_image >= 3, "{graphs} graphs, {on_image} adds on the image among {}", valid.len());
}

const KERAS_CNN: &str = "name = \"g\"\n[[layers]]\ntype = \"conv2d\"\nfilters = 4\nkernel = 3\nactivation = \"relu\"\n\
[[layers]]\ntype = \"POOL\"\nsize = 2\nFLATTEN[[layers]]\ntype = \"dense\"\nunits = 10\n[data]\ndataset = \"mnist\"\n";

/// An explicit `flatten` is exactly the implicit one: same blob bytes (the bug of issue 11:
/// `mnistc build` rejected the blob it had just written).
#[test]
fn an_explicit_flatten_gives_the_same_blob_as_the_implicit_one() {
    let specs = [
        KERAS_CNN.replace("POOL", "maxpool2d"),
        KERAS_CNN.replace("POOL", "avgpool2d"),
        // conv → pool → conv stride 2 same → avgpool → flatten → dense → dropout → dense.
        "name = \"g\"\n[[layers]]\ntype = \"conv2d\"\nfilters = 4\nkernel = 3\n[[layers]]\ntype = \"maxpool2d\"\n\
         size = 2\n[[layers]]\ntype = \"conv2d\"\nfilters = 6\nkernel = 3\nstride = 2\npadding = \"same\"\n\
         [[layers]]\ntype = \"avgpool2d\"\nsize = 2\nFLATTEN[[layers]]\ntype = \"dense\"\nunits = 12\n\
         [[layers]]\ntype = \"dropout\"\nrate = 0.5\n[[layers]]\ntype = \"dense\"\nunits = 10\n\
         [data]\ndataset = \"mnist\"\n"
            .to_string(),
        // flatten directly on the input (the shipped MLPs).
        "name = \"g\"\nFLATTEN[[layers]]\ntype = \"dense\"\nunits = 32\n[[layers]]\ntype = \"dense\"\nunits = 10\n\
         [data]\ndataset = \"mnist\"\n"
            .to_string(),
    ];
    for (i, text) in specs.iter().enumerate() {
        let explicit = text.replace("FLATTEN", "[[layers]]\ntype = \"flatten\"\n");
        let implicit = text.replace("FLATTEN", "");
        let explicit = parse(&explicit, &format!("explicit {i}")).unwrap();
        let implicit = parse(&implicit, &format!("implicit {i}")).unwrap();
        assert_eq!(explicit.layers.len(), implicit.layers.len() + 1);
        let a = build_and_check(&explicit, 5);
        let b = build_and_check(&implicit, 5);
        assert!(a == b, "spec {i}: an explicit flatten changed the blob");
    }
}

mod batchnorm_and_global_avgpool {
    //! `batchnorm` and `global_avgpool` layers: where a batchnorm may stand (errors name the key and
    //! line), and folding, which must not change what the float model computes: the burn network with
    //! its batchnorms (inference mode, running statistics) and the runtime's f32 blob, where each
    //! batchnorm is folded into the conv2d or dense layer before it, give the same logits.

    use super::colour_images;
    use mnistc::lower;
    use mnistc::spec::{InvalidKind, Layer, ModelSpec};
    use mnistc::train::{self, Device, LayerKind, TrainedModel};

    const NET: &str = r#"name = "bn"
[[layers]]
type = "conv2d"
filters = 6
kernel = 3
padding = "same"

[[layers]]
type = "batchnorm"
activation = "relu"

[[layers]]
type = "maxpool2d"
size = 2

[[layers]]
type = "conv2d"
filters = 8
kernel = [3, 2]
stride = 2

[[layers]]
type = "batchnorm"
epsilon = 0.001
activation = "relu6"

[[layers]]
type = "global_avgpool"

[[layers]]
type = "dense"
units = 12

[[layers]]
type = "batchnorm"

[[layers]]
type = "dense"
units = 10

[data]
dataset = "cifar-10"

[quantize]
precision = "f32"
"#;

    #[test]
    fn the_layer_before_a_batchnorm_defaults_to_no_activation() {
        let spec = ModelSpec::parse(NET, "bn").unwrap();
        let kinds: Vec<&str> = spec.layers.iter().map(|l| l.layer.type_name()).collect();
        assert_eq!(kinds[..3], ["conv2d", "batchnorm", "maxpool2d"]);
        assert!(matches!(spec.layers[0].layer, Layer::Conv2d { activation: mnistc::spec::Activation::None, .. }));
        assert!(matches!(spec.layers[6].layer, Layer::Dense { activation: mnistc::spec::Activation::None, .. }));
        assert!(matches!(
            spec.layers[4].layer,
            Layer::BatchNorm { epsilon, momentum, activation: mnistc::spec::Activation::Relu6 } if epsilon == 0.001 && momentum == 0.1
        ));
        // Parameters: γ and β per channel; a global average pool keeps the channels.
        let shapes = spec.shapes().unwrap();
        assert_eq!(shapes[1].params, 12);
        assert_eq!(shapes[5].output.hwc(), (1, 1, 8));
    }

    #[test]
    fn a_batchnorm_must_follow_a_conv_or_dense_layer_without_activation() {
        let first =
            NET.replacen("type = \"conv2d\"\nfilters = 6\nkernel = 3\npadding = \"same\"\n\n[[layers]]\n", "", 1);
        let e = ModelSpec::parse(&first, "bn").unwrap_err();
        assert_eq!(e.kind(), Some(InvalidKind::Inconsistent));
        assert!(e.to_string().contains("is the first layer"), "{e}");
        assert_eq!((e.line(), e.key()), (Some(2), Some("layers[0].type")), "{e}");

        let after_pool = NET
            .replace("type = \"global_avgpool\"\n", "type = \"global_avgpool\"\n\n[[layers]]\ntype = \"batchnorm\"\n");
        let e = ModelSpec::parse(&after_pool, "bn").unwrap_err();
        assert!(e.to_string().contains("but this one follows a global_avgpool layer"), "{e}");
        assert_eq!(e.key(), Some("layers[6].type"), "{e}");

        let activated = NET.replacen("padding = \"same\"\n", "padding = \"same\"\nactivation = \"relu\"\n", 1);
        let e = ModelSpec::parse(&activated, "bn").unwrap_err();
        assert_eq!((e.line(), e.key()), (Some(7), Some("layers[0].activation")), "{e}");
        assert!(e.to_string().contains("put `activation = \"relu\"` on the batchnorm"), "{e}");

        let flat =
            NET.replacen("type = \"global_avgpool\"", "type = \"flatten\"\n\n[[layers]]\ntype = \"global_avgpool\"", 1);
        let e = ModelSpec::parse(&flat, "bn").unwrap_err();
        assert!(e.to_string().contains("global_avgpool needs a spatial input"), "{e}");
    }

    #[test]
    fn folding_batchnorms_leaves_the_float_outputs_unchanged() {
        let spec = ModelSpec::parse(NET, "bn").unwrap();
        let model = TrainedModel::seeded(&spec, 3).unwrap();
        assert_eq!(model.layers.iter().filter(|l| l.kind == LayerKind::BatchNorm).count(), 3);
        let images = colour_images(16, 5);
        // The network as trained: batchnorms as layers of their own.
        let burn = train::predict_logits(&model, &images, Device::Cpu).unwrap();
        // The lowered model: four ops (conv, conv with the global average pool fused, dense, dense),
        // the batchnorms folded into the weights.
        let plan = lower::fuse_pools(lower::float_plan(&model, [0; 32]).unwrap());
        assert_eq!(plan.ops.len(), 4);
        let (worst, largest) = super::float_blob_against(&plan, &images, &burn.values);
        assert!(largest > 0.1, "the logits are too small to compare: {largest}");
        assert!(worst <= 1e-4 * largest.max(1.0), "folded and unfolded differ by {worst} (logits up to {largest})");
    }
}

mod residual {
    //! The shipped MLPerf Tiny ResNet-8 (`models/cifar-resnet8.toml`): the burn network, which runs
    //! the graph with its adds and batchnorms, and the runtime's f32 blob, where each batchnorm is
    //! folded and each add reads its shortcut from the arena, give the same logits; the int8 blob
    //! deploys (arena and op count as planned) and is bit-exact with tract on every op.

    use mnistc::lower;
    use mnistc::pipeline;
    use mnistc::spec::ModelSpec;
    use mnistc::train::{self, Device, TrainedModel};
    use mnistc::verify::check::check;
    use mnistc_suite::workspace_root;

    use super::colour_images;

    fn resnet8() -> (ModelSpec, TrainedModel) {
        let spec = ModelSpec::from_path(&workspace_root().join("models/cifar-resnet8.toml")).unwrap();
        let model = TrainedModel::seeded(&spec, 8).unwrap();
        (spec, model)
    }

    #[test]
    fn the_graph_runs_the_same_in_burn_and_on_the_runtime() {
        let (_, model) = resnet8();
        let images = colour_images(4, 1);
        let burn = train::predict_logits(&model, &images, Device::Cpu).unwrap();
        let plan = lower::fuse_pools(lower::float_plan(&model, [0; 32]).unwrap());
        // Stem, then per stack (a 1x1 shortcut +) two convs and an add; the global average pool
        // stays an op of its own (it reads an add, not a conv); dense.
        let kinds: Vec<&str> = plan.ops.iter().map(|o| o.kind.name()).collect();
        #[rustfmt::skip]
        assert_eq!(kinds, [
            "conv2d",
            "conv2d", "conv2d", "add",
            "conv2d", "conv2d", "conv2d", "add",
            "conv2d", "conv2d", "conv2d", "add",
            "avgpool2d", "dense",
        ]);
        assert_eq!(plan.ops[3].inputs, [3, 1], "stack 1 adds its input (the stem) back");
        assert_eq!(plan.ops[7].inputs, [7, 5], "stack 2 adds its shortcut conv's output");
        let (worst, largest) = super::float_blob_against(&plan, &images, &burn.values);
        assert!(largest > 0.1, "the logits are too small to compare: {largest}");
        assert!(worst <= 1e-4 * largest.max(1.0), "burn and the runtime differ by {worst} (logits up to {largest})");
    }

    #[test]
    fn the_int8_resnet8_deploys_and_matches_tract_on_every_op() {
        let (spec, model) = resnet8();
        let deployed = pipeline::deploy(&spec, &model, &colour_images(32, 2), &colour_images(8, 3), [1; 32]).unwrap();
        let blob = deployed.blob.bytes();
        let device = deployed.blob.model();
        // Each stack's add is fused into the main path's last conv, which writes the sum over
        // the other operand (the stem; the shortcut convs' outputs): 11 ops.
        assert_eq!(device.op_count(), 11);
        assert_eq!(deployed.plan.ops.iter().filter(|o| o.residual).count(), 3);
        // The largest moment: stack 1's convs, with the stem's 32x32x16 output kept for the
        // sum (written over it in place) and the branch's 32x32x16 tensor (2 x 16 KiB), plus a
        // conv's im2col scratch: under MLPerf Tiny's TFLite Micro arena (55,984 B) by 40 %.
        let arena = device.arena_size();
        assert!((2 * 16_384..34_000).contains(&arena), "arena {arena}");
        let onnx = mnistc::export::onnx::export(&deployed.plan).unwrap();
        let images = colour_images(3, 4);
        let report = check(blob, &onnx, &images.pixels, true).unwrap();
        assert!(report.passed, "{}", serde_json::to_string_pretty(&report).unwrap());
        assert_eq!(report.max_lsb_diff, 0);
        assert!(report.layers.iter().all(|l| l.max_lsb_diff == 0));
    }
}

/// `[head] type = "svm"` on the digits CNN (seeded weights) through the build's path: the SVM
/// head is fitted on the features the runtime computes for the training split, and the f32 blob
/// with the head folded into its last dense layer gives linfa's decision values (scaler, PCA,
/// one SVM per class) of the same features; the int8 blob of it is bit-exact with tract.
#[test]
fn a_folded_svm_head_is_linfas_decision_function_on_the_runtimes_features() {
    use mnistc::spec::{HeadSpec, Precision};
    use mnistc::train::svm_head;
    let digits = std::fs::read_to_string(mnistc_suite::workspace_root().join("models/digits.toml")).unwrap();
    let text = format!("{digits}\n[head]\ntype = \"svm\"\npca = 12\nsamples = 200\nc = [0.1, 1.0]\n");
    let mut spec = parse(&text, "<digits with an svm head>").unwrap();
    spec.quantize.precision = Precision::F32;
    let HeadSpec::Svm(head) = spec.head.clone() else { panic!("{:?}", spec.head) };
    let model = TrainedModel::seeded(&spec, 5).unwrap();
    let (train, eval) = (images(300, 41), images(12, 42));
    let softmax = mnistc::lower::float_plan(&model, [4; 32]).unwrap();
    let mut plan = softmax.clone();
    let fitted = svm_head::fit(&head, &spec, &mut plan, &train).unwrap();
    // 300 images, 5 % of each class held out (1.5 of 30, rounded to 2): 200 of the other 280
    // fitted, C chosen on the 20 held out.
    let r = &fitted.report;
    assert_eq!((r.features, r.pca, r.samples, r.validation_samples), (1600, 12, 200, 20));
    assert_eq!(r.validation_from, "validation split");
    assert_eq!(r.trials.iter().map(|t| t.c).collect::<Vec<_>>(), [0.1, 1.0]);
    // Only the last dense layer changed, and kept its shape.
    assert_eq!(plan.ops.len(), softmax.ops.len());
    assert_eq!(plan.ops[..plan.ops.len() - 1], softmax.ops[..softmax.ops.len() - 1]);
    assert_ne!(plan.ops.last(), softmax.ops.last());

    let features = svm_head::penultimate_features(&softmax, &eval).unwrap();
    let linfa = fitted.pipeline.decision(&features);
    let deployed = pipeline::deploy_float(&spec, plan.clone(), &train, &eval).unwrap();
    let blob = deployed.blob.model();
    let mut arena = vec![0u128; blob.arena_size().div_ceil(16)];
    for (i, image) in eval.pixels.chunks(784).enumerate() {
        let mut out = [0.0f32; 10];
        blob.run(mnistc_runtime::Input::Pixels(image), bytemuck::cast_slice_mut(&mut arena), &mut out).unwrap();
        for (k, (&got, &want)) in out.iter().zip(&linfa[i]).enumerate() {
            assert!(
                (f64::from(got) - want).abs() <= 1e-3 * (1.0 + want.abs()),
                "image {i} class {k}: blob {got} vs linfa {want}"
            );
        }
    }

    // Without a validation split, C is chosen on training images outside the sample, or on the
    // sample itself when it holds every training image.
    let mut no_split = spec.clone();
    no_split.data.validation = 0.0;
    let report = |samples: usize| {
        let head = mnistc::spec::SvmHeadSpec { samples, ..head.clone() };
        svm_head::fit(&head, &no_split, &mut softmax.clone(), &train).unwrap().report
    };
    let outside = report(200);
    assert_eq!((outside.samples, outside.validation_samples), (200, 100));
    assert_eq!(outside.validation_from, "training images outside the sample");
    let all = report(300);
    assert_eq!((all.samples, all.validation_samples, all.validation_from), (300, 300, "the fitted sample"));

    spec.quantize.precision = Precision::Int8;
    let int8 = pipeline::deploy_float(&spec, plan, &eval, &eval).unwrap();
    let onnx = onnx::export(&int8.plan).unwrap();
    let report = check::check(int8.blob.bytes(), &onnx, &eval.pixels, true).unwrap();
    assert!(report.passed && report.max_lsb_diff == 0, "{report:?}");
}

/// An `[ensemble]` of three digits CNNs (seeded weights, one per member seed) through the
/// build's path: the f32 ensemble blob's logits are the mean of the members' own f32 blobs'
/// logits, the int8 ensemble blob (one arena for all members) is bit-exact with tract on every
/// op, and its logits are its members' int8 logits summed, within one rounding per add.
#[test]
fn an_ensemble_blob_is_the_mean_of_its_members_and_matches_tract() {
    use mnistc::lower::plan::Precision as PlanPrecision;
    use mnistc::spec::Precision;
    let digits = std::fs::read_to_string(mnistc_suite::workspace_root().join("models/digits.toml")).unwrap();
    let int8 = parse(&format!("{digits}\n[ensemble]\nmembers = 3\n"), "<digits ensemble>").unwrap();
    let f32_spec = {
        let mut s = int8.clone();
        s.quantize.precision = Precision::F32;
        s
    };
    let members = f32_spec.members();
    let models: Vec<TrainedModel> = members.iter().map(|m| TrainedModel::seeded(m, m.train.seed).unwrap()).collect();
    let refs: Vec<&TrainedModel> = models.iter().collect();
    let (calibration, eval) = (images(16, 21), images(8, 22));

    let float = pipeline::float_plan(&f32_spec, &refs, [3; 32], &calibration).unwrap().0;
    let ensemble = pipeline::deploy_float(&f32_spec, float.clone(), &calibration, &eval).unwrap();
    assert_eq!(ensemble.plan.precision, PlanPrecision::F32);
    let alone: Vec<pipeline::Deployed> = members
        .iter()
        .zip(&models)
        .map(|(m, model)| pipeline::deploy(m, model, &calibration, &eval, [3; 32]).unwrap())
        .collect();
    // One member's ops three times, plus two adds; the arena is one member's and two logit
    // vectors, not three members'.
    assert_eq!(ensemble.plan.ops.len(), 3 * alone[0].plan.ops.len() + 2);
    assert!(ensemble.blob.footprint().arena_bytes < 2 * alone[0].blob.footprint().arena_bytes);
    let logits = |blob: &mnistc::lower::emit::Blob, image: &[u8]| {
        let model = blob.model();
        let mut arena = vec![0u8; model.arena_size() + 16];
        let at = arena.as_ptr().align_offset(16);
        let mut out = vec![0.0f32; 10];
        model.run(mnistc_runtime::Input::Pixels(image), &mut arena[at..], &mut out).unwrap();
        out
    };
    for image in eval.pixels.chunks(784) {
        let got = logits(&ensemble.blob, image);
        let each: Vec<Vec<f32>> = alone.iter().map(|d| logits(&d.blob, image)).collect();
        let mean: Vec<f32> = (0..10).map(|c| each.iter().map(|l| l[c]).sum::<f32>() / 3.0).collect();
        for (g, m) in got.iter().zip(&mean) {
            assert!((g - m).abs() <= 1e-4 * (1.0 + m.abs()), "ensemble {got:?} vs mean {mean:?}");
        }
    }

    // Calibrated on the images it runs (no logit is clipped at the int8 range).
    let deployed = pipeline::deploy_float(&int8, float, &eval, &eval).unwrap();
    let onnx = onnx::export(&deployed.plan).unwrap();
    let report = check::check(deployed.blob.bytes(), &onnx, &eval.pixels, true).unwrap();
    assert!(report.passed && report.max_lsb_diff == 0, "{report:?}");
    // The int8 adds sum the members' int8 logits (each already carrying its 1/3) with one
    // rounding to the sum's scale per add: the blob's logits are within those roundings of the
    // members' dequantized logits' sum, as the runtime computes them inside the same blob.
    let adds: Vec<usize> = (0..deployed.plan.ops.len()).filter(|&i| deployed.plan.ops[i].inputs.len() == 2).collect();
    assert_eq!(adds.len(), 2);
    let member_ops = [
        deployed.plan.ops[adds[0]].inputs[0] - 1,
        deployed.plan.ops[adds[0]].inputs[1] - 1,
        deployed.plan.ops[adds[1]].inputs[1] - 1,
    ];
    let step = |i: usize| deployed.plan.ops[i].quant.as_ref().unwrap().output.scale;
    let tolerance = step(adds[0]) / 2.0 + step(adds[1]) / 2.0 + 1e-5;
    let model = deployed.blob.model();
    let mut arena = vec![0u8; model.arena_size()];
    for image in eval.pixels.chunks(784) {
        let mut member_logits = vec![vec![0.0f32; 10]; 3];
        let logits = model
            .run_observed(mnistc_runtime::Input::Pixels(image), &mut arena, |op, out| {
                if let Some(m) = member_ops.iter().position(|&o| o == op) {
                    out.write_f32(&mut member_logits[m]);
                }
            })
            .unwrap();
        for c in 0..10 {
            let sum: f32 = member_logits.iter().map(|l| l[c]).sum();
            assert!((logits.value(c) - sum).abs() <= tolerance, "class {c}: {} vs {sum}", logits.value(c));
        }
    }
}
