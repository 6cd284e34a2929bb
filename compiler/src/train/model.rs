//! The burn network built from a [`ModelSpec`]: one block per spec layer, in order.
//!
//! Blocks are real burn modules (`Conv2d`, `MaxPool2d`, `AvgPool2d`, `Linear`, `BatchNorm`,
//! `Dropout`) with the activation applied after conv2d/dense/batchnorm blocks; a global average
//! pool is an `AvgPool2d` over the whole feature map. A batchnorm uses the batch's statistics
//! (and updates its running ones) on an autodiff device, its running statistics otherwise. Block `i` is `spec.layers[i]`, so weights
//! map back to the spec by index. Inputs are NCHW `[batch, channels, height, width]`; a dense
//! block on a 4-D input flattens it with `flatten(1, 3)` (C,H,W order).

use burn::module::{Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::activation::{relu, relu6};

use super::error::TrainError;
use super::{LayerKind, TrainedLayer};
use crate::spec::{Activation, Init, InputRef, Layer, ModelSpec, Padding};

/// A conv2d (or depthwise conv2d: groups = channels) layer and its activation.
#[derive(Module, Debug)]
pub(crate) struct ConvBlock {
    conv: Conv2d,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    depthwise: bool,
}

/// A dense layer and its activation.
#[derive(Module, Debug)]
pub(crate) struct DenseBlock {
    linear: Linear,
    #[module(skip)]
    activation: Activation,
}

/// A batch normalization and its activation.
#[derive(Module, Debug)]
pub(crate) struct NormBlock {
    norm: BatchNorm,
    #[module(skip)]
    activation: Activation,
}

/// A residual sum and its activation (no parameters).
#[derive(Module, Debug)]
pub(crate) struct AddBlock {
    #[module(skip)]
    activation: Activation,
}

/// An explicit flatten (no parameters).
#[derive(Module, Debug, Default)]
pub(crate) struct FlattenBlock;

/// One spec layer.
#[derive(Module, Debug)]
pub(crate) enum Block {
    Conv(ConvBlock),
    MaxPool(MaxPool2d),
    AvgPool(AvgPool2d),
    Dense(DenseBlock),
    Dropout(Dropout),
    Flatten(FlattenBlock),
    Norm(NormBlock),
    Add(AddBlock),
}

/// The whole network: one block per spec layer, run in order, each on the outputs its layer
/// names as `inputs`.
#[derive(Module, Debug)]
pub(crate) struct Net {
    blocks: Vec<Block>,
    /// Per block, what it reads: 0 is the model input, `j + 1` the output of block `j`.
    #[module(skip)]
    sources: Vec<Vec<usize>>,
    /// Per tensor (numbered as in `sources`), the last block that reads it: after that block it
    /// is dropped (the logits, read by nobody, live to the end).
    #[module(skip)]
    last_reader: Vec<usize>,
    /// Per block, whether it is frozen (`freeze` in the spec): no gradients, and a batchnorm
    /// normalizes with its running statistics and leaves them as they are.
    #[module(skip)]
    frozen: Vec<bool>,
}

/// A callback receiving `(layer index, layer output)`.
type Observer<'a> = dyn FnMut(usize, &Tensor<2>) + 'a;

/// Activations between blocks: still spatial, or already flattened.
#[derive(Clone)]
enum Act {
    Spatial(Tensor<4>),
    Flat(Tensor<2>),
}

impl Act {
    fn flat(self) -> Tensor<2> {
        match self {
            Act::Spatial(t) => t.flatten(1, 3),
            Act::Flat(t) => t,
        }
    }
}

fn activate<const D: usize>(x: Tensor<D>, a: Activation) -> Tensor<D> {
    match a {
        Activation::None => x,
        Activation::Relu => relu(x),
        Activation::Relu6 => relu6(x),
    }
}

fn initializer(init: Init) -> Initializer {
    match init {
        Init::He => Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: false },
        Init::Glorot => Initializer::XavierUniform { gain: 1.0 },
    }
}

/// Weights for one layer, as they will be installed.
pub(crate) struct LayerWeights<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
}

impl Net {
    /// A freshly initialized network (weights drawn from the device's seeded RNG in layer
    /// order, biases zero).
    pub fn init(spec: &ModelSpec, device: &Device) -> Result<Net, TrainError> {
        Net::build(spec, device, None, false)
    }

    /// A network carrying the given trained weights (no random draw).
    pub fn from_trained(spec: &ModelSpec, layers: &[TrainedLayer], device: &Device) -> Result<Net, TrainError> {
        Net::build(spec, device, Some(layers), false)
    }

    /// A fresh network whose first layers carry pretrained weights (`[init] from`: `layers`
    /// name the spec layers they initialize, in order); the others are initialized as
    /// [`Net::init`] does.
    pub fn from_pretrained(spec: &ModelSpec, layers: &[TrainedLayer], device: &Device) -> Result<Net, TrainError> {
        Net::build(spec, device, Some(layers), true)
    }

    /// Freezes the spec's frozen blocks again (after loading a record over the network).
    pub fn refreeze(mut self) -> Net {
        for (block, &frozen) in self.blocks.iter_mut().zip(&self.frozen) {
            if frozen {
                *block = block.clone().freeze();
            }
        }
        self
    }

    fn build(
        spec: &ModelSpec,
        device: &Device,
        trained: Option<&[TrainedLayer]>,
        partial: bool,
    ) -> Result<Net, TrainError> {
        let shapes = spec.shapes()?;
        let init = initializer(spec.train.init);
        let mut blocks = Vec::with_capacity(spec.layers.len());
        let mut trained_iter = trained.map(|t| t.iter().peekable());
        for (index, (layer_spec, shape)) in spec.layers.iter().zip(&shapes).enumerate() {
            let mut next_weights = |kind: LayerKind, w_shape: Vec<usize>, b_len: usize| {
                let Some(iter) = trained_iter.as_mut() else {
                    return Ok(None);
                };
                // Pretrained weights cover a prefix of the layers; the rest start fresh.
                if partial && iter.peek().is_none_or(|t| t.spec_index != index) {
                    return Ok(None);
                }
                let t = iter
                    .next()
                    .ok_or(TrainError::WeightsMismatch { detail: format!("no weights for layer {index}") })?;
                if t.spec_index != index
                    || t.kind != kind
                    || t.weight_shape != w_shape
                    || t.weight.len() != w_shape.iter().product::<usize>()
                    || t.bias.len() != b_len
                {
                    return Err(TrainError::WeightsMismatch {
                        detail: format!(
                            "layer {index} expects a {kind:?} weight of shape {w_shape:?} and \
                             {b_len} biases; got layer {} {:?} {:?} with {} biases",
                            t.spec_index,
                            t.kind,
                            t.weight_shape,
                            t.bias.len()
                        ),
                    });
                }
                Ok(Some(LayerWeights { weight: &t.weight, bias: &t.bias }))
            };
            let block = match layer_spec.layer {
                Layer::Conv2d { kernel, stride, padding, activation, .. }
                | Layer::DepthwiseConv2d { kernel, stride, padding, activation } => {
                    // A depthwise convolution is burn's grouped one with a group per channel.
                    let cin = shape.input.hwc().2;
                    let depthwise = matches!(layer_spec.layer, Layer::DepthwiseConv2d { .. });
                    let (cout, groups, kind) = match layer_spec.layer {
                        Layer::Conv2d { filters, .. } => (filters, 1, LayerKind::Conv2d),
                        _ => (cin, cin, LayerKind::DepthwiseConv2d),
                    };
                    let mut conv = Conv2dConfig::new([cin, cout], kernel)
                        .with_groups(groups)
                        .with_stride(stride)
                        .with_padding(match padding {
                            Padding::Valid => PaddingConfig2d::Valid,
                            Padding::Same => PaddingConfig2d::Same,
                        })
                        .with_initializer(init.clone())
                        .init(device);
                    let w_shape = vec![cout, cin / groups, kernel[0], kernel[1]];
                    match next_weights(kind, w_shape.clone(), cout)? {
                        Some(w) => {
                            conv.weight = param(w.weight, w_shape, device);
                            conv.bias = Some(param(w.bias, vec![cout], device));
                        }
                        None => {
                            // Draw now so the RNG order is the layer order.
                            let _ = conv.weight.val();
                            conv.bias = Some(Param::from_tensor(Tensor::zeros([cout], device)));
                        }
                    }
                    Block::Conv(ConvBlock { conv, activation, depthwise })
                }
                Layer::MaxPool2d { size, stride } => Block::MaxPool(
                    MaxPool2dConfig::new(size)
                        .with_strides(stride)
                        .with_padding(PaddingConfig2d::Valid)
                        .with_ceil_mode(false)
                        .init(),
                ),
                Layer::AvgPool2d { size, stride } => Block::AvgPool(
                    AvgPool2dConfig::new(size)
                        .with_strides(stride)
                        .with_padding(PaddingConfig2d::Valid)
                        .with_ceil_mode(false)
                        .init(),
                ),
                Layer::Dense { units, activation } => {
                    let d_in = shape.input.len();
                    let mut linear = LinearConfig::new(d_in, units).with_initializer(init.clone()).init(device);
                    let w_shape = vec![d_in, units];
                    match next_weights(LayerKind::Dense, w_shape.clone(), units)? {
                        Some(w) => {
                            linear.weight = param(w.weight, w_shape, device);
                            linear.bias = Some(param(w.bias, vec![units], device));
                        }
                        None => {
                            let _ = linear.weight.val();
                            linear.bias = Some(Param::from_tensor(Tensor::zeros([units], device)));
                        }
                    }
                    Block::Dense(DenseBlock { linear, activation })
                }
                Layer::GlobalAvgPool => {
                    let (h, w, _) = shape.input.hwc();
                    Block::AvgPool(
                        AvgPool2dConfig::new([h, w])
                            .with_strides([h, w])
                            .with_padding(PaddingConfig2d::Valid)
                            .with_ceil_mode(false)
                            .init(),
                    )
                }
                Layer::BatchNorm { epsilon, momentum, activation } => {
                    let c = shape.input.hwc().2;
                    let mut norm = BatchNormConfig::new(c).with_epsilon(epsilon).with_momentum(momentum).init(device);
                    // No random draw: gamma starts at 1, beta at 0, the statistics at 0 and 1.
                    if let Some(w) = next_weights(LayerKind::BatchNorm, vec![4, c], 0)? {
                        let row = |r: usize| &w.weight[r * c..(r + 1) * c];
                        norm.gamma = param(row(0), vec![c], device);
                        norm.beta = param(row(1), vec![c], device);
                        norm.running_mean = RunningState::new(tensor(row(2), vec![c], device));
                        norm.running_var = RunningState::new(tensor(row(3), vec![c], device));
                    }
                    Block::Norm(NormBlock { norm, activation })
                }
                Layer::Dropout { rate } => Block::Dropout(DropoutConfig::new(rate).init()),
                Layer::Flatten => Block::Flatten(FlattenBlock),
                Layer::Add { activation } => Block::Add(AddBlock { activation }),
            };
            blocks.push(if layer_spec.freeze { block.freeze() } else { block });
        }
        let sources: Vec<Vec<usize>> = (0..blocks.len())
            .map(|i| {
                spec.inputs_of(i)
                    .iter()
                    .map(|s| match s {
                        InputRef::Input => 0,
                        InputRef::Layer(j) => j + 1,
                    })
                    .collect()
            })
            .collect();
        let mut last_reader = vec![blocks.len(); blocks.len() + 1];
        for (i, s) in sources.iter().enumerate() {
            for &t in s {
                last_reader[t] = i;
            }
        }
        if let Some(mut rest) = trained_iter
            && let Some(extra) = rest.next()
        {
            return Err(TrainError::WeightsMismatch {
                detail: format!(
                    "unexpected weights for layer {} (the model has no more weighted layers)",
                    extra.spec_index
                ),
            });
        }
        let frozen = spec.layers.iter().map(|l| l.freeze).collect();
        Ok(Net { blocks, sources, last_reader, frozen })
    }

    /// Logits `[batch, classes]` for inputs `[batch, channels, height, width]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.run(x, None)
    }

    /// Like [`Net::forward`], calling `observe(layer_index, output)` after every layer with
    /// its output (4-D outputs as `[batch, C*H*W]` in C,H,W order).
    pub fn forward_trace(&self, x: Tensor<4>, mut observe: impl FnMut(usize, &Tensor<2>)) -> Tensor<2> {
        self.run(x, Some(&mut observe))
    }

    fn run(&self, x: Tensor<4>, mut observe: Option<&mut Observer<'_>>) -> Tensor<2> {
        // Tensor 0 is the input, tensor j + 1 block j's output; each is dropped after its last
        // reader (a chain holds one at a time, as before graphs).
        let mut tensors: Vec<Option<Act>> = Vec::with_capacity(self.blocks.len() + 1);
        let mut act = Act::Spatial(x);
        tensors.push(Some(act.clone()));
        for (i, block) in self.blocks.iter().enumerate() {
            let mut take = |t: usize| -> Option<Act> {
                let slot = tensors.get_mut(t)?;
                if self.last_reader.get(t) == Some(&i) { slot.take() } else { slot.clone() }
            };
            let sources = self.sources.get(i).map_or(&[][..], Vec::as_slice);
            let mut inputs = sources.iter().filter_map(|&t| take(t));
            // A validated spec gives every block its inputs (one, two for an add).
            let Some(first) = inputs.next() else { break };
            let second = inputs.next();
            drop(inputs);
            let out = match (block, first) {
                (Block::Add(b), Act::Spatial(t)) => match second {
                    Some(Act::Spatial(u)) => Act::Spatial(activate(t + u, b.activation)),
                    _ => Act::Spatial(t),
                },
                (Block::Add(b), Act::Flat(t)) => match second {
                    Some(Act::Flat(u)) => Act::Flat(activate(t + u, b.activation)),
                    _ => Act::Flat(t),
                },
                (Block::Conv(b), Act::Spatial(t)) => Act::Spatial(activate(b.conv.forward(t), b.activation)),
                (Block::MaxPool(p), Act::Spatial(t)) => Act::Spatial(p.forward(t)),
                (Block::AvgPool(p), Act::Spatial(t)) => Act::Spatial(p.forward(t)),
                (Block::Dense(b), a) => Act::Flat(activate(b.linear.forward(a.flat()), b.activation)),
                (Block::Norm(b), Act::Spatial(t)) => Act::Spatial(activate(b.norm.forward(t), b.activation)),
                (Block::Norm(b), Act::Flat(t)) => Act::Flat(activate(b.norm.forward(t), b.activation)),
                (Block::Dropout(d), Act::Spatial(t)) => Act::Spatial(d.forward(t)),
                (Block::Dropout(d), Act::Flat(t)) => Act::Flat(d.forward(t)),
                (Block::Flatten(_), a) => Act::Flat(a.flat()),
                // A validated spec never puts a spatial layer after a flat one (shape inference
                // rejects it), and `Net` is only built from validated specs.
                (_, a @ Act::Flat(_)) => a,
            };
            if let Some(observe) = observe.as_mut() {
                match &out {
                    Act::Flat(t) => observe(i, t),
                    Act::Spatial(t) => observe(i, &t.clone().flatten(1, 3)),
                }
            }
            tensors.push(Some(out.clone()));
            act = out;
        }
        act.flat()
    }

    /// The weights of every conv2d/dense block and the parameters and running statistics of
    /// every batchnorm, in layer order.
    pub fn export(&self) -> Result<Vec<TrainedLayer>, TrainError> {
        let mut out = Vec::new();
        for (spec_index, block) in self.blocks.iter().enumerate() {
            if let Block::Norm(b) = block {
                let mut weight = Vec::new();
                for t in
                    [b.norm.gamma.val(), b.norm.beta.val(), b.norm.running_mean.value(), b.norm.running_var.value()]
                {
                    weight.extend(read(t)?.0);
                }
                let c = weight.len() / 4;
                out.push(TrainedLayer {
                    spec_index,
                    kind: LayerKind::BatchNorm,
                    weight,
                    weight_shape: vec![4, c],
                    bias: Vec::new(),
                });
                continue;
            }
            let (kind, weight, bias) = match block {
                Block::Conv(b) => (
                    if b.depthwise { LayerKind::DepthwiseConv2d } else { LayerKind::Conv2d },
                    read(b.conv.weight.val())?,
                    b.conv.bias.as_ref().map(|p| read(p.val())).transpose()?,
                ),
                Block::Dense(b) => (
                    LayerKind::Dense,
                    read(b.linear.weight.val())?,
                    b.linear.bias.as_ref().map(|p| read(p.val())).transpose()?,
                ),
                _ => continue,
            };
            let (weight, weight_shape) = weight;
            let bias = bias.map(|(b, _)| b).unwrap_or_default();
            out.push(TrainedLayer { spec_index, kind, weight, weight_shape, bias });
        }
        Ok(out)
    }
}

fn param<const D: usize>(values: &[f32], shape: Vec<usize>, device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(tensor(values, shape, device))
}

fn tensor<const D: usize>(values: &[f32], shape: Vec<usize>, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

fn read<const D: usize>(t: Tensor<D>) -> Result<(Vec<f32>, Vec<usize>), TrainError> {
    let shape = t.dims().to_vec();
    let values = t
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| TrainError::Backend(format!("cannot read weights: {e:?}")))?;
    Ok((values, shape))
}
