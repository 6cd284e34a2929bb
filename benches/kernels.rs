//! Per-op and whole-model latency of the digits CNN (int8, batch 1, one thread): the runtime with
//! every kernel implementation this machine has (the reference included, at opt-level 3), and
//! tract-onnx on the exported ONNX; and the int8 depthwise convolution of a depthwise-separable
//! CIFAR-10 network's first block (3x3, `same`, 32x32x16) on every implementation; and the
//! residual add of a ResNet-8 stack (32x32x16, int8), as an op of its own and fused into the 3x3
//! conv before it.
//!
//! ```text
//! cargo bench --bench kernels                 # everything
//! cargo bench --bench kernels -- digits/      # whole model only
//! cargo bench --bench kernels -- depthwise/   # the depthwise kernel only
//! cargo bench --bench kernels -- add/         # the residual add, alone and fused
//! ```
//!
//! The weights are seeded random (timings do not depend on them), so no data set is needed;
//! `mnistc bench OUT.bin` times a trained blob the same way in one process.

use criterion::{Criterion, criterion_group, criterion_main};
use mnistc::lower::plan::{PoolKind, Precision, Shape};
use mnistc::spec::Activation;
use mnistc::verify::tract::{Feed, TractModel};
use mnistc_runtime::Input;
use mnistc_runtime::kernels::{self, Isa};
use mnistc_runtime::model::Kernel;
use mnistc_suite::{Layer, conv, dense, depthwise, pool, random_plan};

/// The reference CNN of `models/digits.toml`: Conv32-Pool-Conv64-Pool-Dense10 (dropout vanishes).
fn digits_layers() -> Vec<Layer> {
    let pool = || pool(PoolKind::Max, [2, 2], [2, 2]);
    let conv = |filters| conv(filters, [3, 3], [1, 1], false, Activation::Relu);
    vec![conv(32), pool(), conv(64), pool(), dense(10, Activation::None)]
}

fn bench(c: &mut Criterion) {
    let plan = random_plan(&digits_layers(), Shape::new(28, 28, 1), 10, Precision::Int8, 1).expect("digits fits");
    let blob = mnistc::lower::emit::write(&plan).expect("writes");
    let model = blob.model();
    let onnx = mnistc::export::onnx::export(&plan).expect("exports");
    let pixels = mnistc::verify::bench::pattern(784);
    let mut arena = vec![0u128; model.arena_size().div_ceil(16)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_available()).collect();

    let mut g = c.benchmark_group("digits");
    for &isa in &isas {
        kernels::set_isa(Some(isa));
        g.bench_function(format!("runtime/{}", isa.name()), |b| {
            b.iter(|| model.run_logits(Input::Pixels(std::hint::black_box(&pixels)), arena).map(|l| l.argmax()))
        });
    }
    kernels::set_isa(None);
    let mut tract = TractModel::load(&onnx, Feed::Float, &[]).expect("tract loads the export");
    let input: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    g.bench_function("tract", |b| b.iter(|| tract.run_f32(std::hint::black_box(&input)).map(|o| o.len())));
    g.finish();

    // Each op on the input the previous op produced.
    let mut inputs: Vec<Vec<i8>> = vec![pixels.iter().map(|&p| (p as i16 - 128) as i8).collect()];
    model
        .run_observed(Input::Pixels(&pixels), arena, |_, out| {
            if let mnistc_runtime::Activations::I8 { values, .. } = out {
                inputs.push(values.to_vec());
            }
        })
        .expect("runs");
    let names = ["conv1+pool", "conv2+pool", "dense"];
    let mut g = c.benchmark_group("ops");
    for (i, op) in model.ops().enumerate() {
        let mut output = vec![0i8; op.output.len];
        let mut scratch = vec![0u8; op.scratch.len];
        for &isa in &isas {
            kernels::set_isa(Some(isa));
            g.bench_function(format!("{}/{}", names[i], isa.name()), |b| {
                b.iter(|| match &op.kernel {
                    Kernel::ConvS8(k) => kernels::conv2d_s8(k, &inputs[i], &mut output, &mut scratch),
                    Kernel::DenseS8(k) => kernels::dense_s8(k, &inputs[i], &mut output, &mut scratch),
                    _ => unreachable!("the digits CNN has only conv and dense ops"),
                })
            });
        }
    }
    kernels::set_isa(None);
    g.finish();

    // The depthwise convolution of a DS-CNN's first block on 32x32x16.
    let layers = [depthwise([3, 3], [1, 1], true, Activation::Relu), dense(10, Activation::None)];
    let plan = random_plan(&layers, Shape::new(32, 32, 16), 10, Precision::Int8, 2).expect("fits");
    let blob = mnistc::lower::emit::write(&plan).expect("writes");
    let model = blob.model();
    let input: Vec<i8> = mnistc::verify::bench::pattern(32 * 32 * 16).iter().map(|&p| (p as i16 - 128) as i8).collect();
    let Some(Kernel::DepthwiseS8(k)) = model.ops().next().map(|op| op.kernel) else {
        unreachable!("the first op is the depthwise convolution")
    };
    let mut output = vec![0i8; 32 * 32 * 16];
    let mut g = c.benchmark_group("depthwise");
    for &isa in &isas {
        kernels::set_isa(Some(isa));
        g.bench_function(format!("3x3-32x32x16/{}", isa.name()), |b| {
            b.iter(|| kernels::depthwise_conv2d_s8(&k, std::hint::black_box(&input), &mut output))
        });
    }
    kernels::set_isa(None);
    g.finish();

    // ResNet-8's first stack (32x32x16): its int8 add as an op, and the conv 3x3 (`same`) that
    // carries it when fused (`residual_plan`'s first add, at ResNet-8's size).
    let plan = residual_stack(32, 16);
    let blob = mnistc::lower::emit::write(&plan).expect("writes");
    let model = blob.model();
    let n = 32 * 32 * 16;
    let input: Vec<i8> = mnistc::verify::bench::pattern(n).iter().map(|&p| (p as i16 - 128) as i8).collect();
    let ops: Vec<_> = model.ops().collect();
    let (Some(Kernel::ConvS8(fused)), Some(plain)) = (ops.get(2).map(|op| op.kernel), ops.get(1).map(|op| op.kernel))
    else {
        unreachable!("op 2 is the conv with the fused add")
    };
    let Kernel::ConvS8(plain) = plain else { unreachable!("op 1 is a plain conv") };
    let add = fused.residual.expect("the conv carries the add");
    let mut output = vec![0i8; n];
    let mut scratch = vec![0u8; fused.scratch_size()];
    let mut g = c.benchmark_group("add");
    for &isa in &isas {
        kernels::set_isa(Some(isa));
        g.bench_function(format!("32x32x16/{}", isa.name()), |b| {
            b.iter(|| kernels::add_s8(&add, std::hint::black_box(&input), &input, &mut output))
        });
        g.bench_function(format!("conv3x3-32x32x16/{}", isa.name()), |b| {
            b.iter(|| kernels::conv2d_s8(&plain, std::hint::black_box(&input), &mut output, &mut scratch))
        });
        g.bench_function(format!("conv3x3+add-32x32x16/{}", isa.name()), |b| {
            b.iter(|| kernels::conv2d_s8(&fused, std::hint::black_box(&input), &mut output, &mut scratch))
        });
    }
    kernels::set_isa(None);
    g.finish();
}

/// An int8 plan with one ResNet stack on an `h x h x c` input: conv 3x3 (ReLU), conv 3x3, conv
/// 3x3 added to the first conv's output (fused), dense 10.
fn residual_stack(h: usize, c: usize) -> mnistc::lower::plan::Plan {
    let spec = format!(
        "name = \"stack\"\n[input]\nheight = 32\nwidth = 32\nchannels = 3\nclasses = 10\n\
         [[layers]]\ntype = \"conv2d\"\nfilters = {c}\nkernel = 3\npadding = \"same\"\nname = \"a\"\n\
         [[layers]]\ntype = \"conv2d\"\nfilters = {c}\nkernel = 3\npadding = \"same\"\n\
         [[layers]]\ntype = \"conv2d\"\nfilters = {c}\nkernel = 3\npadding = \"same\"\nactivation = \"none\"\n\
         [[layers]]\ntype = \"add\"\ninputs = \"a\"\nactivation = \"relu\"\n\
         [[layers]]\ntype = \"dense\"\nunits = 10\n[data]\ndataset = \"cifar-10\"\n"
    );
    assert_eq!(h, 32, "CIFAR-10 images are 32x32");
    let spec = mnistc::spec::ModelSpec::parse(&spec, "stack").expect("the stack parses");
    let model = mnistc::train::TrainedModel::seeded(&spec, 3).expect("seeded weights");
    let images = mnistc::data::Images {
        n: 8,
        height: 32,
        width: 32,
        channels: 3,
        pixels: mnistc::verify::bench::pattern(8 * 32 * 32 * 3),
        labels: vec![0; 8],
    };
    let (plan, _) = mnistc::pipeline::lower_trained(&spec, &model, &images, [0; 32]).expect("lowers");
    plan
}

criterion_group!(benches, bench);
criterion_main!(benches);
