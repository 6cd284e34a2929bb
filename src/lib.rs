//! Test and benchmark fixtures of the mnistc workspace (not published).
//!
//! [`random_plan`] builds a valid [`Plan`] of any stack of `model.toml` layers
//! ([`mnistc::spec::Layer`], lowered op by op with the compiler's own [`lower::layer_op`] and
//! fused with [`lower::fuse_pools`]) with seeded random weights and, for int8, random but
//! consistent quantization parameters (scales chained op to op, requantization computed the way
//! the compiler does), so tests can write blobs exactly as the compiler will. Unlike a
//! `model.toml`, a stack may have any input shape, end in a spatial op, or put a spatial op after
//! a dense one (on its `1x1xn` output): plans the runtime and the ONNX export must handle.

pub use mnistc::data::Rng;
use mnistc::lower::plan::{
    Activation, Bias, OpKind, OpQuant, Plan, PlanOp, PoolKind, Precision, QParams, Shape, Weights,
};
use mnistc::lower::{self, fuse_pools};
use mnistc::quantize::{avg_pool_requant, requant_spec};
pub use mnistc::spec::Layer;
use mnistc::spec::{self, Padding};

/// The workspace root (for data and model paths in tests).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The data directory tests use: `MNISTC_DATA` if set, else `../shared/data` beside the checkout
/// if it is there, else the cache's data folder (where `mnistc data fetch` puts them). Tests never
/// download.
pub fn data_dir() -> std::path::PathBuf {
    match std::env::var_os("MNISTC_DATA") {
        Some(d) if !d.is_empty() => {
            let p = std::path::PathBuf::from(d);
            if p.is_absolute() { p } else { workspace_root().join(p) }
        }
        _ => {
            let shared = workspace_root().join("../shared/data");
            if shared.is_dir() { shared } else { mnistc::cache_dir::data() }
        }
    }
}

/// The models made by other tools (`.tflite`, `.onnx`) for import tests: `MNISTC_MODELS` if set,
/// else `models/` beside the data directory ([`data_dir`]: `../shared/models`).
pub fn models_dir() -> std::path::PathBuf {
    match std::env::var_os("MNISTC_MODELS") {
        Some(d) if !d.is_empty() => std::path::PathBuf::from(d),
        _ => data_dir().join("../models"),
    }
}

/// Runs the `mnistc` command line in-process: `(exit code, stdout, stderr)`.
pub fn mnistc(args: &[&str]) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("mnistc").chain(args.iter().copied());
    let code = mnistc::cli::run(argv, &mut out, &mut err);
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

/// A conv2d layer: `same` or `valid` padding.
pub fn conv(filters: usize, kernel: [usize; 2], stride: [usize; 2], same: bool, activation: spec::Activation) -> Layer {
    let padding = if same { Padding::Same } else { Padding::Valid };
    Layer::Conv2d { filters, kernel, stride, padding, activation }
}

/// A max or average pool layer.
pub fn pool(kind: PoolKind, size: [usize; 2], stride: [usize; 2]) -> Layer {
    match kind {
        PoolKind::Max => Layer::MaxPool2d { size, stride },
        PoolKind::Avg => Layer::AvgPool2d { size, stride },
    }
}

/// A depthwise conv2d layer (channel multiplier 1): `same` or `valid` padding.
pub fn depthwise(kernel: [usize; 2], stride: [usize; 2], same: bool, activation: spec::Activation) -> Layer {
    let padding = if same { Padding::Same } else { Padding::Valid };
    Layer::DepthwiseConv2d { kernel, stride, padding, activation }
}

/// A dense layer.
pub fn dense(units: usize, activation: spec::Activation) -> Layer {
    Layer::Dense { units, activation }
}

/// Seeded He-uniform weights (bound `sqrt(6 / fan_in)`) and small biases for `layer` on `shape`
/// (none for a layer without weights).
fn random_params(layer: &Layer, shape: Shape, rng: &mut Rng) -> (Vec<f32>, Vec<f32>) {
    match lower::weight_shape(layer, shape) {
        Some((out, fan_in)) => {
            let bound = (6.0 / fan_in as f32).sqrt();
            let weights = (0..out * fan_in).map(|_| rng.uniform(-bound, bound)).collect();
            (weights, (0..out).map(|_| rng.uniform(-0.1, 0.1)).collect())
        }
        None => (vec![], vec![]),
    }
}

/// The unfused float ops of a layer stack on `input` (seeded He-uniform weights), or `None` if a
/// layer does not fit its input.
pub fn float_ops(layers: &[Layer], input: Shape, rng: &mut Rng) -> Option<Vec<PlanOp>> {
    let mut shape = input;
    let mut ops = Vec::new();
    for layer in layers {
        let (weights, bias) = random_params(layer, shape, rng);
        if let Some(mut op) = lower::layer_op(layer, shape, weights, bias).ok()? {
            shape = op.output;
            op.inputs = vec![ops.len()];
            ops.push(op);
        }
    }
    Some(ops)
}

/// The number of values the stack produces on `input` (its logits), if it fits.
pub fn output_len(layers: &[Layer], input: Shape) -> Option<usize> {
    Some(float_ops(layers, input, &mut Rng::new(0))?.last()?.output.len())
}

/// A random plan of `layers` on `input` in `precision`, seeded, with every pool that follows a
/// convolution fused into it; `None` if the stack does not fit or does not end in `classes`
/// outputs.
pub fn random_plan(layers: &[Layer], input: Shape, classes: usize, precision: Precision, seed: u64) -> Option<Plan> {
    let mut rng = Rng::new(seed);
    let ops = float_ops(layers, input, &mut rng)?;
    if ops.last()?.output.len() != classes {
        return None;
    }
    let mut plan = Plan {
        name: format!("random-{seed}"),
        dataset: "mnist".into(),
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        input,
        precision: Precision::F32,
        output_quant: None,
        input_quant: None,
        source_hash: [7; 32],
        ops,
    };
    match precision {
        Precision::F32 => {}
        Precision::F16 => plan = lower::to_f16(plan),
        Precision::Int8 => quantize_randomly(&mut plan, &mut rng)?,
    }
    Some(fuse_pools(plan))
}

/// Gives every op of an unfused f32 plan random but consistent int8 parameters (each op's input
/// quantization is that of the tensor it reads).
fn quantize_randomly(plan: &mut Plan, rng: &mut Rng) -> Option<()> {
    let mut tensors = vec![QParams { scale: 1.0 / 255.0, zero_point: -128 }];
    for op in &mut plan.ops {
        let operand = |k: usize| op.inputs.get(k).and_then(|&t| tensors.get(t).copied());
        let x = operand(0)?;
        let q = if op.kind == OpKind::Add {
            let b = operand(1)?;
            let range = mnistc::quantize::Range { lo: rng.uniform(-2.0, -0.5), hi: rng.uniform(0.5, 2.0) };
            mnistc::quantize::add_quant(op.activation, x, b, range)
        } else {
            random_quant(op, x, rng)?
        };
        tensors.push(q.output);
        op.quant = Some(q);
    }
    plan.output_quant = tensors.last().copied();
    plan.precision = Precision::Int8;
    Some(())
}

/// Output quantization for an activation: ReLU outputs start at the zero point −128.
fn random_out(activation: Activation, rng: &mut Rng) -> QParams {
    match activation {
        Activation::Relu | Activation::Relu6 => QParams { scale: rng.uniform(0.005, 0.05), zero_point: -128 },
        Activation::None => QParams { scale: rng.uniform(0.01, 0.1), zero_point: rng.int_in(-30, 30) as i32 },
    }
}

/// Quantizes one float op in place (weights, bias) and returns its parameters.
fn random_quant(op: &mut PlanOp, x: QParams, rng: &mut Rng) -> Option<OpQuant> {
    match op.kind {
        OpKind::MaxPool2d => Some(OpQuant::max_pool(x)),
        OpKind::Add => None,
        OpKind::AvgPool2d => {
            let out = QParams { scale: x.scale * rng.uniform(0.8, 1.2), zero_point: x.zero_point };
            Some(OpQuant::avg_pool(x, out, avg_pool_requant(op.kernel[0] * op.kernel[1], x.scale, out.scale).ok()?))
        }
        OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::Dense => {
            let (Weights::F32(w), Bias::F32(b)) = (&op.weights, &op.bias) else { return None };
            let channels = b.len();
            let per = w.len() / channels;
            let mut scales = Vec::with_capacity(channels);
            let mut wq = Vec::with_capacity(w.len());
            for c in 0..channels {
                let row = &w[c * per..(c + 1) * per];
                let max = row.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-8);
                let s = max / 127.0;
                scales.push(s);
                wq.extend(row.iter().map(|v| (v / s).round().clamp(-127.0, 127.0) as i8));
            }
            let bq: Vec<i32> = b.iter().zip(&scales).map(|(v, s)| (v / (x.scale * s)).round() as i32).collect();
            let conv = random_out(op.activation, rng);
            let (act_min, act_max) = match op.activation {
                Activation::Relu6 => (-128, (6.0 / conv.scale).round().min(255.0) as i32 - 128),
                _ => (-128, 127),
            };
            op.weights = Weights::I8(wq);
            op.bias = Bias::I32(bq);
            Some(OpQuant {
                input: x,
                input2: None,
                conv,
                output: conv,
                requant: Some(requant_spec(x.scale, &scales, conv.scale).ok()?),
                weight_scales: scales,
                act_min,
                act_max,
                pool_requant: None,
            })
        }
    }
}

/// A small int8/f16/f32 model exercising every op but the depthwise convolution (see
/// [`depthwise_plan`]): conv (same padding, fused max pool), conv (valid, fused avg pool),
/// standalone pools and two dense layers, on an 11x9x2 input.
pub fn every_op_plan(precision: Precision, seed: u64) -> Plan {
    use spec::Activation::{None as Linear, Relu, Relu6};
    let layers = [
        conv(3, [3, 2], [1, 1], true, Relu),
        pool(PoolKind::Max, [2, 2], [2, 2]),
        conv(4, [2, 2], [1, 1], false, Relu6),
        pool(PoolKind::Avg, [2, 2], [1, 1]),
        pool(PoolKind::Max, [2, 1], [1, 1]),
        pool(PoolKind::Avg, [1, 1], [1, 1]),
        dense(7, Relu),
        dense(10, Linear),
    ];
    match random_plan(&layers, Shape::new(11, 9, 2), 10, precision, seed) {
        Some(plan) => plan,
        None => unreachable!("the every-op stack fits its 11x9x2 input"),
    }
}

/// `n` images of random pixels for an input of `shape` (NHWC, `n · shape.len()` bytes), seeded.
pub fn random_pixels(n: usize, shape: Shape, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..n * shape.len()).map(|_| rng.next_u64() as u8).collect()
}

/// The int8 `plan` with every conv/dense given one weight scale for all its output channels (the
/// first channel's), so that its requantization takes tract's uniform path; the int8 weights and
/// biases are kept. Float plans are returned unchanged; `None` if a multiplier is unusable.
pub fn with_uniform_weight_scales(plan: &Plan) -> Option<Plan> {
    let mut plan = plan.clone();
    for op in &mut plan.ops {
        if let Some(q) = op.quant.as_mut()
            && let Some(&first) = q.weight_scales.first()
        {
            q.weight_scales.iter_mut().for_each(|s| *s = first);
            q.requant = Some(requant_spec(q.input.scale, &q.weight_scales, q.conv.scale).ok()?);
        }
    }
    Some(plan)
}

/// A small int8/f16/f32 depthwise-separable model on a 10x9x3 input: depthwise 3x2 (`same`,
/// stride 1x2, ReLU6), pointwise conv 5 with a fused max pool, depthwise 2x2 (`valid`, no
/// activation), dense 6.
pub fn depthwise_plan(precision: Precision, seed: u64) -> Plan {
    use spec::Activation::{None as Linear, Relu, Relu6};
    let layers = [
        depthwise([3, 2], [1, 2], true, Relu6),
        conv(5, [1, 1], [1, 1], false, Relu),
        pool(PoolKind::Max, [2, 2], [2, 2]),
        depthwise([2, 2], [1, 1], false, Linear),
        dense(6, Linear),
    ];
    match random_plan(&layers, Shape::new(10, 9, 3), 6, precision, seed) {
        Some(plan) => plan,
        None => unreachable!("the depthwise stack fits its 10x9x3 input"),
    }
}

/// A small int8/f16/f32 residual model on an 8x8x3 input, a graph that no chain can express:
/// conv 4 (3x3 `same`, ReLU) → conv 4 (3x3 `same`, ReLU) → conv 4 (3x3 `same`) → add of the last
/// and the first (ReLU); then a 1x1 conv of the sum with a max pool fused into it, and, in
/// parallel, an average pool of the sum itself; their add (no activation), dense 10. Eight ops
/// after pool fusion, two of them adds reading tensors written several ops earlier; in int8 the
/// first add is fused into the conv before it ([`lower::fuse_residual_adds`]: seven ops, the sum
/// written over the first conv's output).
pub fn residual_plan(precision: Precision, seed: u64) -> Plan {
    use spec::Activation::{None as Linear, Relu};
    let mut rng = Rng::new(seed);
    let input = Shape::new(8, 8, 3);
    // (layer, inputs as tensor numbers: 0 the image, k + 1 op k's output)
    let layers: [(Layer, &[usize]); 9] = [
        (conv(4, [3, 3], [1, 1], true, Relu), &[0]),
        (conv(4, [3, 3], [1, 1], true, Relu), &[1]),
        (conv(4, [3, 3], [1, 1], true, Linear), &[2]),
        (Layer::Add { activation: Relu }, &[3, 1]),
        (conv(4, [1, 1], [1, 1], false, Linear), &[4]),
        (pool(PoolKind::Max, [2, 2], [2, 2]), &[5]),
        (pool(PoolKind::Avg, [2, 2], [2, 2]), &[4]),
        (Layer::Add { activation: Linear }, &[6, 7]),
        (dense(10, Linear), &[8]),
    ];
    let mut ops: Vec<PlanOp> = Vec::new();
    for (layer, inputs) in layers {
        let shape = if inputs[0] == 0 { input } else { ops[inputs[0] - 1].output };
        let (weights, bias) = random_params(&layer, shape, &mut rng);
        let Ok(Some(mut op)) = lower::layer_op(&layer, shape, weights, bias) else {
            unreachable!("the residual graph fits its 8x8x3 input")
        };
        op.inputs = inputs.to_vec();
        ops.push(op);
    }
    let mut plan = Plan {
        name: format!("residual-{seed}"),
        dataset: "mnist".into(),
        class_names: (0..10).map(|c| c.to_string()).collect(),
        input,
        precision: Precision::F32,
        output_quant: None,
        input_quant: None,
        source_hash: [9; 32],
        ops,
    };
    match precision {
        Precision::F32 => {}
        Precision::F16 => plan = lower::to_f16(plan),
        Precision::Int8 => {
            if quantize_randomly(&mut plan, &mut rng).is_none() {
                unreachable!("every op of the residual graph quantizes")
            }
        }
    }
    lower::fuse(plan)
}
