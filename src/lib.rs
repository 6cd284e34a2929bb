//! Test and benchmark fixtures of the mnistc workspace (not published).
//!
//! [`random_plan`] builds a valid [`Plan`] of any layer stack with seeded random weights and, for
//! int8, random but consistent quantization parameters (scales chained op to op, requantization
//! computed the way the compiler does), so tests can write blobs exactly as the compiler will.

use half::f16;
use mnistc::plan::{
    Activation, Bias, OpKind, OpQuant, Plan, PlanOp, Pool, PoolKind, Precision, QParams, Shape, Weights,
};
use mnistc::quantize::{avg_pool_requant, requant_spec};

/// The workspace root (for data and model paths in tests).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The data directory tests use: `MNISTC_DATA` if set, else `../shared/data` beside the checkout.
pub fn data_dir() -> std::path::PathBuf {
    match std::env::var_os("MNISTC_DATA") {
        Some(d) => {
            let p = std::path::PathBuf::from(d);
            if p.is_absolute() { p } else { workspace_root().join(p) }
        }
        None => workspace_root().join("../shared/data"),
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

/// A layer of a random model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Convolution with optional fused pool.
    Conv {
        /// Output channels.
        filters: usize,
        /// Kernel `[h, w]`.
        kernel: [usize; 2],
        /// Stride `[h, w]`.
        stride: [usize; 2],
        /// TF-style `same` padding (else `valid`).
        same: bool,
        /// Activation.
        activation: Activation,
        /// Pool fused onto the output.
        pool: Option<Pool>,
    },
    /// A standalone pool.
    Pool(Pool),
    /// Dense layer.
    Dense {
        /// Outputs.
        units: usize,
        /// Activation.
        activation: Activation,
    },
}

/// splitmix64: a small deterministic generator for fixture values.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform integer in `[lo, hi]`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }
}

/// TF-style `same` padding of one dimension: `(before, after)`, the extra pixel after.
pub fn same_pads(n: usize, k: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

fn pooled(s: Shape, p: &Pool) -> Option<Shape> {
    (s.h >= p.size[0] && s.w >= p.size[1])
        .then(|| Shape::new((s.h - p.size[0]) / p.stride[0] + 1, (s.w - p.size[1]) / p.stride[1] + 1, s.c))
}

/// The float ops of a layer stack on `input`, or `None` if a layer does not fit its input.
/// Weights are seeded He-uniform; the last op must produce the logits.
pub fn float_ops(layers: &[Layer], input: Shape, rng: &mut Rng) -> Option<Vec<PlanOp>> {
    let mut shape = input;
    let mut ops = Vec::new();
    for layer in layers {
        let op = match *layer {
            Layer::Conv { filters, kernel, stride, same, activation, pool } => {
                let pads = if same {
                    let (t, b) = same_pads(shape.h, kernel[0], stride[0]);
                    let (l, r) = same_pads(shape.w, kernel[1], stride[1]);
                    [t, l, b, r]
                } else {
                    [0; 4]
                };
                if shape.h + pads[0] + pads[2] < kernel[0] || shape.w + pads[1] + pads[3] < kernel[1] {
                    return None;
                }
                let conv = Shape::new(
                    (shape.h + pads[0] + pads[2] - kernel[0]) / stride[0] + 1,
                    (shape.w + pads[1] + pads[3] - kernel[1]) / stride[1] + 1,
                    filters,
                );
                let output = match &pool {
                    Some(p) => pooled(conv, p)?,
                    None => conv,
                };
                let fan_in = kernel[0] * kernel[1] * shape.c;
                let bound = (6.0 / fan_in as f32).sqrt();
                let weights = (0..filters * fan_in).map(|_| rng.range(-bound, bound)).collect();
                let bias = (0..filters).map(|_| rng.range(-0.1, 0.1)).collect();
                PlanOp {
                    kind: OpKind::Conv2d,
                    input: shape,
                    output,
                    kernel,
                    stride,
                    pads,
                    activation,
                    fused_pool: pool,
                    weights: Weights::F32(weights),
                    bias: Bias::F32(bias),
                    quant: None,
                }
            }
            Layer::Pool(p) => PlanOp {
                kind: if p.kind == PoolKind::Max { OpKind::MaxPool2d } else { OpKind::AvgPool2d },
                input: shape,
                output: pooled(shape, &p)?,
                kernel: p.size,
                stride: p.stride,
                pads: [0; 4],
                activation: Activation::None,
                fused_pool: None,
                weights: Weights::None,
                bias: Bias::None,
                quant: None,
            },
            Layer::Dense { units, activation } => {
                let fan_in = shape.len();
                let bound = (6.0 / fan_in as f32).sqrt();
                PlanOp {
                    kind: OpKind::Dense,
                    input: shape,
                    output: Shape::new(1, 1, units),
                    kernel: [0; 2],
                    stride: [0; 2],
                    pads: [0; 4],
                    activation,
                    fused_pool: None,
                    weights: Weights::F32((0..units * fan_in).map(|_| rng.range(-bound, bound)).collect()),
                    bias: Bias::F32((0..units).map(|_| rng.range(-0.1, 0.1)).collect()),
                    quant: None,
                }
            }
        };
        shape = op.output;
        ops.push(op);
    }
    Some(ops)
}

/// A random plan of `layers` on `input` in `precision`, seeded; `None` if the stack does not fit
/// or does not end in `classes` outputs.
pub fn random_plan(layers: &[Layer], input: Shape, classes: usize, precision: Precision, seed: u64) -> Option<Plan> {
    let mut rng = Rng::new(seed);
    let mut ops = float_ops(layers, input, &mut rng)?;
    if ops.last()?.output.len() != classes {
        return None;
    }
    let mut output_quant = None;
    match precision {
        Precision::F32 => {}
        Precision::F16 => {
            for op in &mut ops {
                if let Weights::F32(w) = &op.weights {
                    op.weights = Weights::F16(w.iter().map(|&v| f16::from_f32(v)).collect());
                }
            }
        }
        Precision::Int8 => {
            let mut x = QParams { scale: 1.0 / 255.0, zero_point: -128 };
            for op in &mut ops {
                let q = random_quant(op, x, &mut rng)?;
                x = q.output;
                op.quant = Some(q);
            }
            output_quant = Some(x);
        }
    }
    Some(Plan {
        name: format!("random-{seed}"),
        dataset: "mnist".into(),
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        input,
        precision,
        output_quant,
        source_hash: [7; 32],
        ops,
    })
}

/// Output quantization for an activation: ReLU outputs start at the zero point −128.
fn random_out(activation: Activation, rng: &mut Rng) -> QParams {
    match activation {
        Activation::Relu | Activation::Relu6 => QParams { scale: rng.range(0.005, 0.05), zero_point: -128 },
        Activation::None => QParams { scale: rng.range(0.01, 0.1), zero_point: rng.int(-30, 30) as i32 },
    }
}

/// Quantizes one float op in place (weights, bias) and returns its parameters.
fn random_quant(op: &mut PlanOp, x: QParams, rng: &mut Rng) -> Option<OpQuant> {
    match op.kind {
        OpKind::MaxPool2d => Some(OpQuant::max_pool(x)),
        OpKind::AvgPool2d => {
            let out = QParams { scale: x.scale * rng.range(0.8, 1.2), zero_point: x.zero_point };
            Some(OpQuant {
                input: x,
                conv: x,
                output: out,
                weight_scales: vec![],
                requant: None,
                act_min: -128,
                act_max: 127,
                pool_requant: Some(avg_pool_requant(op.kernel[0] * op.kernel[1], x.scale, out.scale).ok()?),
            })
        }
        OpKind::Conv2d | OpKind::Dense => {
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
            let (output, pool_requant) = match op.fused_pool {
                Some(Pool { kind: PoolKind::Avg, size, .. }) => {
                    let out = QParams { scale: conv.scale * rng.range(0.8, 1.2), zero_point: conv.zero_point };
                    (out, Some(avg_pool_requant(size[0] * size[1], conv.scale, out.scale).ok()?))
                }
                _ => (conv, None),
            };
            let (act_min, act_max) = match op.activation {
                Activation::Relu6 => (-128, (6.0 / conv.scale).round().min(255.0) as i32 - 128),
                _ => (-128, 127),
            };
            op.weights = Weights::I8(wq);
            op.bias = Bias::I32(bq);
            Some(OpQuant {
                input: x,
                conv,
                output,
                requant: Some(requant_spec(x.scale, &scales, conv.scale).ok()?),
                weight_scales: scales,
                act_min,
                act_max,
                pool_requant,
            })
        }
    }
}

/// A small int8/f16/f32 model exercising every op: conv (same padding, fused max pool),
/// conv (valid, fused avg pool), standalone pools and two dense layers, on an 11x9x2 input.
pub fn every_op_plan(precision: Precision, seed: u64) -> Plan {
    let pool = |kind, s| Pool { kind, size: [s, s], stride: [s, s] };
    let layers = [
        Layer::Conv {
            filters: 3,
            kernel: [3, 2],
            stride: [1, 1],
            same: true,
            activation: Activation::Relu,
            pool: Some(pool(PoolKind::Max, 2)),
        },
        Layer::Conv {
            filters: 4,
            kernel: [2, 2],
            stride: [1, 1],
            same: false,
            activation: Activation::Relu6,
            pool: Some(Pool { kind: PoolKind::Avg, size: [2, 2], stride: [1, 1] }),
        },
        Layer::Pool(Pool { kind: PoolKind::Max, size: [2, 1], stride: [1, 1] }),
        Layer::Pool(Pool { kind: PoolKind::Avg, size: [1, 1], stride: [1, 1] }),
        Layer::Dense { units: 7, activation: Activation::Relu },
        Layer::Dense { units: 10, activation: Activation::None },
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
