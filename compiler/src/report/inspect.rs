//! What a blob holds, read back through the runtime: the layer plan with shapes, quantization
//! parameters in brief, MACs, flash and arena bytes (`mnistc inspect`, and the reports).

use mnistc_runtime::format::{FusedPool, OpKind, Precision, Requant};
use mnistc_runtime::model::Kernel;
use mnistc_runtime::{Model, Shape};
use serde::Serialize;

/// One op of a blob's plan.
#[derive(Debug, Clone, Serialize)]
pub struct OpInfo {
    /// Index in the plan.
    pub index: usize,
    /// `conv2d`, `maxpool2d`, `avgpool2d`, `dense`, with a fused pool as `conv2d+maxpool2d`.
    pub op: String,
    /// Input `[h, w, c]`.
    pub input: [usize; 3],
    /// Output `[h, w, c]`.
    pub output: [usize; 3],
    /// Kernel or window `[h, w]` (none for dense).
    pub kernel: Option<[usize; 2]>,
    /// Stride `[h, w]`.
    pub stride: Option<[usize; 2]>,
    /// Padding `[top, left, bottom, right]`.
    pub padding: Option<[usize; 4]>,
    /// Fused pool `(window, stride)`.
    pub pool: Option<[usize; 4]>,
    /// Fused activation.
    pub activation: String,
    /// Weights plus biases.
    pub params: usize,
    /// Multiply-accumulates (whole convolution output × filter length; dense in × out).
    pub macs: u64,
    /// Bytes of weights, biases and multipliers in the blob.
    pub weight_bytes: usize,
    /// int8: requantization path (`uniform`, `per-channel`, `tflite`) or none.
    pub requant: Option<String>,
    /// int8: input scale and zero point.
    pub input_quant: Option<(f32, i32)>,
    /// int8: output scale and zero point.
    pub output_quant: Option<(f32, i32)>,
    /// Arena offsets `[input, output]`.
    pub arena: [usize; 2],
    /// What the op reads: `input` (the image) or `op{j}` (op j's output), two for an add.
    pub reads: Vec<String>,
}

/// A blob's contents.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Model name.
    pub name: String,
    /// Data set.
    pub dataset: String,
    /// `f32`, `f16` or `int8`.
    pub precision: String,
    /// Input `[h, w, c]`.
    pub input: [usize; 3],
    /// Class names.
    pub classes: Vec<String>,
    /// The plan.
    pub ops: Vec<OpInfo>,
    /// Blob bytes.
    pub flash_bytes: usize,
    /// Arena bytes.
    pub arena_bytes: usize,
    /// Total MACs.
    pub macs: u64,
    /// Total weights plus biases.
    pub params: usize,
    /// Bytes of int8 weights and int32 biases (or float weights and biases), one per parameter.
    pub weight_bytes: usize,
    /// Everything else: header, metadata, plan records, per-channel multipliers, the zero taps
    /// that pad int8 filters to groups of 4, alignment.
    pub overhead_bytes: usize,
    /// SHA-256 of the source spec and data (hex).
    pub source_hash: String,
}

fn hwc(s: Shape) -> [usize; 3] {
    [s.h, s.w, s.c]
}

/// Describes a loaded blob.
pub fn inspect(model: &Model<'_>) -> Inspection {
    let precision = model.precision();
    let mut ops = Vec::new();
    let mut weights_and_biases = 0;
    let mut outputs: Vec<usize> = Vec::new();
    for (index, op) in model.ops().enumerate() {
        let r = op.record;
        // The tensor at an offset is the latest earlier op's output written there, else the
        // image (the runtime's own rule, checked at load).
        let source = |offset: usize| match outputs.iter().rposition(|&o| o == offset) {
            Some(j) => format!("op{j}"),
            None => "input".to_string(),
        };
        let mut reads = vec![source(op.input.offset)];
        if op.input2.len > 0 {
            reads.push(source(op.input2.offset));
        }
        outputs.push(op.output.offset);
        let kind = OpKind::from_u8(r.kind);
        let mut name = kind.map_or("?", |k| k.name()).to_string();
        name.push_str(FusedPool::from_u8(r.pool).map_or("", FusedPool::suffix));
        if r.flags & mnistc_runtime::format::FLAG_RESIDUAL != 0 {
            name.push_str("+add");
        }
        // (weights, biases, MACs); int8 weights are stored padded to groups of 4 taps, so count
        // them from the geometry.
        let (weights, biases, macs) = match &op.kernel {
            Kernel::ConvF32(k) => (k.geometry.filter_len() * k.geometry.output.c, k.bias.len(), k.geometry.macs()),
            Kernel::ConvF16(k) => (k.geometry.filter_len() * k.geometry.output.c, k.bias.len(), k.geometry.macs()),
            Kernel::ConvS8(k) => (k.geometry.filter_len() * k.geometry.output.c, k.bias.len(), k.geometry.macs()),
            Kernel::DepthwiseF32(k) => depthwise_counts(&k.geometry, k.bias.len()),
            Kernel::DepthwiseF16(k) => depthwise_counts(&k.geometry, k.bias.len()),
            Kernel::DepthwiseS8(k) => depthwise_counts(&k.geometry, k.bias.len()),
            Kernel::DenseF32(k) => (k.input_len * k.output_len, k.bias.len(), k.input_len * k.output_len),
            Kernel::DenseF16(k) => (k.input_len * k.output_len, k.bias.len(), k.input_len * k.output_len),
            Kernel::DenseS8(k) => (k.input_len * k.output_len, k.bias.len(), k.input_len * k.output_len),
            _ => (0, 0, 0),
        };
        let (params, macs) = (weights + biases, macs as u64);
        weights_and_biases += weights * precision.weight_size() + biases * precision.bias_size();
        let spatial =
            matches!(kind, Some(OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::MaxPool2d | OpKind::AvgPool2d));
        let int8 = precision == Precision::Int8;
        ops.push(OpInfo {
            index,
            op: name,
            input: [r.in_h as usize, r.in_w as usize, r.in_c as usize],
            output: [r.out_h as usize, r.out_w as usize, r.out_c as usize],
            kernel: spatial.then_some([r.kernel_h as usize, r.kernel_w as usize]),
            stride: spatial.then_some([r.stride_h as usize, r.stride_w as usize]),
            padding: (kind == Some(OpKind::Conv2d))
                .then_some([r.pad_top, r.pad_left, r.pad_bottom, r.pad_right].map(|p| p as usize)),
            pool: (r.pool != 0).then_some([r.pool_h, r.pool_w, r.pool_stride_h, r.pool_stride_w].map(|p| p as usize)),
            activation: mnistc_runtime::Activation::from_u8(r.activation).map_or("?", |a| a.name()).to_string(),
            params,
            macs,
            weight_bytes: (r.weights_len + r.bias_len + r.quant_len) as usize,
            requant: match Requant::from_u8(r.requant) {
                Some(Requant::Uniform) => Some("uniform".into()),
                Some(Requant::PerChannel) => Some("per-channel".into()),
                Some(Requant::Tflite) => Some("tflite".into()),
                _ => None,
            },
            input_quant: int8.then_some((r.input_scale, r.input_zero_point)),
            output_quant: int8.then_some((r.output_scale, r.output_zero_point)),
            arena: [op.input.offset, op.output.offset],
            reads,
        });
    }
    let flash_bytes = model.bytes().len();
    Inspection {
        name: model.name().to_string(),
        dataset: model.dataset().to_string(),
        precision: precision.name().to_string(),
        input: hwc(model.input_shape()),
        classes: (0..model.output_len()).map(|i| model.class_name(i).to_string()).collect(),
        macs: ops.iter().map(|o| o.macs).sum(),
        params: ops.iter().map(|o| o.params).sum(),
        ops,
        flash_bytes,
        arena_bytes: model.arena_size(),
        weight_bytes: weights_and_biases,
        overhead_bytes: flash_bytes - weights_and_biases,
        source_hash: crate::data::hex(&model.meta().source_hash),
    }
}

impl Inspection {
    /// Whether some op reads something other than the op before it (a graph: the table then
    /// shows what each op reads).
    pub fn is_graph(&self) -> bool {
        self.ops.iter().enumerate().any(|(i, o)| {
            let previous = if i == 0 { "input".to_string() } else { format!("op{}", i - 1) };
            o.reads != [previous]
        })
    }

    /// A readable table of the plan and the totals.
    pub fn render(&self) -> String {
        let graph = self.is_graph();
        let mut s = format!(
            "{} ({}, {}), input {}x{}x{}, {} classes\n\n",
            self.name,
            self.dataset,
            self.precision,
            self.input[0],
            self.input[1],
            self.input[2],
            self.classes.len()
        );
        s.push_str(&format!(
            "{:<3} {:<20} {:<13} {:<13} {:<16} {:<7} {:>8} {:>10} {:<12} {}{}\n",
            "#",
            "op",
            "input",
            "output",
            "kernel/stride",
            "act",
            "params",
            "MACs",
            "requant",
            "quant (in -> out)",
            if graph { "  reads" } else { "" }
        ));
        for o in &self.ops {
            let shape = |v: [usize; 3]| format!("{}x{}x{}", v[0], v[1], v[2]);
            let ks = match (o.kernel, o.stride) {
                (Some(k), Some(st)) => format!("{}x{} /{}x{}", k[0], k[1], st[0], st[1]),
                _ => "-".into(),
            };
            let quant = match (o.input_quant, o.output_quant) {
                (Some((si, zi)), Some((so, zo))) => format!("{si:.5}@{zi} -> {so:.5}@{zo}"),
                _ => "-".into(),
            };
            let reads = if graph { format!("  {}", o.reads.join(" + ")) } else { String::new() };
            s.push_str(&format!(
                "{:<3} {:<20} {:<13} {:<13} {:<16} {:<7} {:>8} {:>10} {:<12} {}{}\n",
                o.index,
                o.op,
                shape(o.input),
                shape(o.output),
                ks,
                o.activation,
                o.params,
                o.macs,
                o.requant.as_deref().unwrap_or("-"),
                quant,
                reads
            ));
        }
        s.push_str(&format!(
            "\nflash (blob): {} bytes ({} weights and biases, {} overhead)\narena (ram):  {} bytes\nMACs:         {}\nparams:       {}\n",
            self.flash_bytes, self.weight_bytes, self.overhead_bytes, self.arena_bytes, self.macs, self.params
        ));
        s
    }
}

/// `(weights, biases, MACs)` of a depthwise convolution: one `kh × kw` filter per channel.
fn depthwise_counts(g: &mnistc_runtime::kernels::params::ConvGeometry, biases: usize) -> (usize, usize, usize) {
    let taps = g.kernel_h * g.kernel_w;
    (taps * g.input.c, biases, g.output.len() * taps)
}
