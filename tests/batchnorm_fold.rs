//! `batchnorm` and `global_avgpool` layers: where a batchnorm may stand (errors name the key and
//! line), and folding, which must not change what the float model computes: the burn network with
//! its batchnorms (inference mode, running statistics) and the runtime's f32 blob, where each
//! batchnorm is folded into the conv2d or dense layer before it, give the same logits.

use mnistc::data::{Images, Rng};
use mnistc::lower::{self, emit};
use mnistc::spec::{InvalidKind, Layer, ModelSpec};
use mnistc::train::{self, Device, LayerKind, TrainedModel};
use mnistc_runtime::{Activations, Input};

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

fn colour_images(n: usize, seed: u64) -> Images {
    let mut rng = Rng::new(seed);
    let pixels = (0..n * 32 * 32 * 3).map(|_| rng.below(256) as u8).collect();
    Images { n, height: 32, width: 32, channels: 3, pixels, labels: vec![0; n] }
}

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
    let first = NET.replacen("type = \"conv2d\"\nfilters = 6\nkernel = 3\npadding = \"same\"\n\n[[layers]]\n", "", 1);
    let e = ModelSpec::parse(&first, "bn").unwrap_err();
    assert_eq!(e.kind(), Some(InvalidKind::Inconsistent));
    assert!(e.to_string().contains("is the first layer"), "{e}");
    assert_eq!((e.line(), e.key()), (Some(2), Some("layers[0].type")), "{e}");

    let after_pool =
        NET.replace("type = \"global_avgpool\"\n", "type = \"global_avgpool\"\n\n[[layers]]\ntype = \"batchnorm\"\n");
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
    let blob = emit::write(&plan).unwrap();
    let device = blob.model();
    let mut arena = vec![0u8; device.arena_size()];
    let mut worst = 0.0f32;
    let mut largest = 0.0f32;
    for (img, expected) in images.pixels.chunks(3072).zip(burn.values.chunks(10)) {
        let Activations::F32(got) = device.run_logits(Input::Pixels(img), &mut arena).unwrap() else {
            panic!("an f32 blob gives f32 logits")
        };
        for (g, e) in got.iter().zip(expected) {
            worst = worst.max((g - e).abs());
            largest = largest.max(e.abs());
        }
    }
    assert!(largest > 0.1, "the logits are too small to compare: {largest}");
    assert!(worst <= 1e-4 * largest.max(1.0), "folded and unfolded differ by {worst} (logits up to {largest})");
}
