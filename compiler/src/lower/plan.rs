//! The lowered model: the runtime's op sequence with weights in the runtime's layout.
//!
//! This is what the compiler builds from a trained model (float, then quantized) and what
//! [`crate::lower::emit::write`] turns into bytes and [`crate::export::onnx`] into an ONNX graph. Shapes are
//! NHWC; convolution weights are OHWI, dense weights `[out][in]` with `in` in NHWC flatten
//! order — the runtime's tap order. Float weights are written as they are; int8 weights are
//! packed into the runtime's groups of 4 taps when written ([`mnistc_runtime::format::packed_index`]).

use half::f16;
pub use mnistc_runtime::Shape;
pub use mnistc_runtime::format::{Activation, OpKind, Precision};

/// A model as a static plan of runtime ops.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Model name.
    pub name: String,
    /// Data set (`mnist`, `fashion-mnist`).
    pub dataset: String,
    /// Class names, one per logit.
    pub class_names: Vec<String>,
    /// Input shape.
    pub input: Shape,
    /// Precision of weights and activations.
    pub precision: Precision,
    /// int8 logits: their scale and zero point (`None` for float plans).
    pub output_quant: Option<QParams>,
    /// The int8 input's scale and zero point when it is not mnistc's own `pixel − 128`
    /// ([`crate::quantize::INPUT_QPARAMS`]): an imported model's (`None`: the default).
    pub input_quant: Option<QParams>,
    /// SHA-256 of the source spec and data files.
    pub source_hash: [u8; 32],
    /// Ops in execution order.
    pub ops: Vec<PlanOp>,
}

/// A scale and zero point (`real = (q − zero_point) · scale`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
}

/// A pool, standalone or fused onto a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Max or average.
    pub kind: PoolKind,
    /// Window `[h, w]`.
    pub size: [usize; 2],
    /// Stride `[h, w]`.
    pub stride: [usize; 2],
}

pub use mnistc_runtime::kernels::params::PoolKind;

/// One op of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOp {
    /// What the op computes.
    pub kind: OpKind,
    /// What the op reads, as tensor numbers: 0 is the model input, `k + 1` the output of op `k`
    /// (one tensor; two for an add). In a chain, op `i` reads tensor `i`.
    pub inputs: Vec<usize>,
    /// Input shape (of each input: an add's operands have one shape).
    pub input: Shape,
    /// Output shape (after a fused pool).
    pub output: Shape,
    /// Convolution kernel or pool window `[h, w]` (unused by dense).
    pub kernel: [usize; 2],
    /// Stride `[h, w]` (unused by dense).
    pub stride: [usize; 2],
    /// Convolution padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Fused activation (conv, dense).
    pub activation: Activation,
    /// Pool fused onto a convolution's output.
    pub fused_pool: Option<Pool>,
    /// An int8 conv2d with a residual add fused into it: `inputs[1]` is added to the
    /// convolution's output, in place (the op writes over that tensor). `activation`, the
    /// quantization's `output`, clamp and `input2` are then the add's, `conv` the convolution's.
    pub residual: bool,
    /// Weights (none for pools): conv2d OHWI, dense `[out][in]` (inputs in NHWC order), both
    /// packed by the blob writer for int8; depthwise conv2d `[channel][kh][kw]` (the blob
    /// stores it `[kh][kw][channel]`).
    pub weights: Weights,
    /// Bias per output channel (none for pools).
    pub bias: Bias,
    /// int8 quantization (int8 plans only).
    pub quant: Option<OpQuant>,
}

/// Weights of an op.
#[derive(Debug, Clone, PartialEq)]
pub enum Weights {
    /// Pools have none.
    None,
    /// f32 weights.
    F32(Vec<f32>),
    /// f16 weights.
    F16(Vec<f16>),
    /// int8 weights (symmetric per output channel).
    I8(Vec<i8>),
}

/// Bias of an op.
#[derive(Debug, Clone, PartialEq)]
pub enum Bias {
    /// Pools have none.
    None,
    /// f32 bias (f32 and f16 plans).
    F32(Vec<f32>),
    /// int32 bias at scale `s_in · s_w[c]` (int8 plans).
    I32(Vec<i32>),
}

/// How an int8 conv/dense scales its accumulator.
#[derive(Debug, Clone, PartialEq)]
pub enum RequantSpec {
    /// One scale for the op (tract's uniform path).
    Uniform {
        /// Q0.31 multiplier.
        multiplier: i32,
        /// Shift.
        shift: i32,
    },
    /// One f32 multiplier per output channel (tract's per-channel path).
    PerChannel(Vec<f32>),
    /// TFLite's arithmetic: one Q31 `[multiplier, shift]` per output channel
    /// ([`mnistc_runtime::quant::requantize_tflite`]); on an average pool (no multipliers, the
    /// vector empty) TFLite's rounded division.
    Tflite(Vec<[i32; 2]>),
}

/// int8 parameters of an op.
#[derive(Debug, Clone, PartialEq)]
pub struct OpQuant {
    /// The input's scale and zero point (an add's first operand's).
    pub input: QParams,
    /// An add's second operand's scale and zero point (`None` for other ops).
    pub input2: Option<QParams>,
    /// Scale and zero point of the conv/dense result (before a fused pool); equals `output`
    /// unless an average pool is fused.
    pub conv: QParams,
    /// The output's scale and zero point.
    pub output: QParams,
    /// Per-output-channel weight scales (symmetric, zero point 0); empty for pools.
    pub weight_scales: Vec<f32>,
    /// Accumulator scaling of the conv/dense (`None` for pools but a TFLite average pool's,
    /// [`RequantSpec::Tflite`] without multipliers).
    pub requant: Option<RequantSpec>,
    /// Clamp range of the conv/dense output, after the zero point.
    pub act_min: i32,
    /// See `act_min`.
    pub act_max: i32,
    /// Uniform `(multiplier, shift)` of an average pool (standalone or fused).
    pub pool_requant: Option<(i32, i32)>,
}

impl OpQuant {
    /// The parameters of a max pool: its output keeps the input's scale and zero point.
    pub fn max_pool(x: QParams) -> Self {
        Self::pool(x, x, None)
    }

    /// The parameters of an average pool from `x` to `y`, with its `(multiplier, shift)`.
    pub fn avg_pool(x: QParams, y: QParams, requant: (i32, i32)) -> Self {
        Self::pool(x, y, Some(requant))
    }

    fn pool(x: QParams, y: QParams, pool_requant: Option<(i32, i32)>) -> Self {
        OpQuant {
            input: x,
            input2: None,
            conv: x,
            output: y,
            weight_scales: vec![],
            requant: None,
            act_min: -128,
            act_max: 127,
            pool_requant,
        }
    }
}

impl PlanOp {
    /// An op of `kind` from `input` to `output` with nothing else set (no inputs, window,
    /// padding, activation, weights or quantization), for the caller to fill in.
    pub fn bare(kind: OpKind, input: Shape, output: Shape) -> PlanOp {
        PlanOp {
            kind,
            inputs: vec![],
            input,
            output,
            kernel: [0; 2],
            stride: [0; 2],
            pads: [0; 4],
            activation: Activation::None,
            fused_pool: None,
            residual: false,
            weights: Weights::None,
            bias: Bias::None,
            quant: None,
        }
    }

    /// Multiply-accumulates of one inference of this op, counted as Keras-style summaries do: the
    /// whole convolution output times its filter length, inputs times outputs for dense, and
    /// nothing for pools.
    pub fn macs(&self) -> u64 {
        match self.kind {
            OpKind::Conv2d => {
                let conv = self.conv_output();
                (conv.len() * self.kernel[0] * self.kernel[1] * self.input.c) as u64
            }
            OpKind::DepthwiseConv2d => (self.output.len() * self.kernel[0] * self.kernel[1]) as u64,
            OpKind::Dense => (self.input.len() * self.output.c) as u64,
            OpKind::MaxPool2d | OpKind::AvgPool2d | OpKind::Add => 0,
        }
    }

    /// The convolution's own output shape (before a fused pool); the output for other ops.
    pub fn conv_output(&self) -> Shape {
        if self.kind != OpKind::Conv2d {
            return self.output;
        }
        let [pt, pl, pb, pr] = self.pads;
        let h = (self.input.h + pt + pb - self.kernel[0]) / self.stride[0] + 1;
        let w = (self.input.w + pl + pr - self.kernel[1]) / self.stride[1] + 1;
        Shape::new(h, w, self.output.c)
    }

    /// Number of weights plus biases.
    pub fn params(&self) -> usize {
        let w = match &self.weights {
            Weights::None => 0,
            Weights::F32(v) => v.len(),
            Weights::F16(v) => v.len(),
            Weights::I8(v) => v.len(),
        };
        let b = match &self.bias {
            Bias::None => 0,
            Bias::F32(v) => v.len(),
            Bias::I32(v) => v.len(),
        };
        w + b
    }
}

impl Plan {
    /// Total multiply-accumulates of one inference.
    pub fn macs(&self) -> u64 {
        self.ops.iter().map(PlanOp::macs).sum()
    }

    /// Shape of tensor `t` (0: the model input, `k + 1`: op `k`'s output).
    pub fn tensor_shape(&self, t: usize) -> Option<Shape> {
        match t.checked_sub(1) {
            None => Some(self.input),
            Some(k) => self.ops.get(k).map(|op| op.output),
        }
    }

    /// Whether every op reads the output of the op before it (op 0 the model input).
    pub fn is_chain(&self) -> bool {
        self.ops.iter().enumerate().all(|(i, op)| op.inputs == [i])
    }

    /// The last op that reads each tensor (numbered as in [`PlanOp::inputs`]); `None` for a
    /// tensor nobody reads (the logits).
    pub fn last_readers(&self) -> Vec<Option<usize>> {
        let mut last = vec![None; self.ops.len() + 1];
        for (i, op) in self.ops.iter().enumerate() {
            for &t in &op.inputs {
                if let Some(r) = last.get_mut(t) {
                    *r = Some(i);
                }
            }
        }
        last
    }

    /// How many ops read each tensor (numbered as in [`PlanOp::inputs`]).
    pub fn reader_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.ops.len() + 1];
        for op in &self.ops {
            for &t in &op.inputs {
                if let Some(c) = counts.get_mut(t) {
                    *c += 1;
                }
            }
        }
        counts
    }
}
