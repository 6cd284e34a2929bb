//! TensorShape inference: per-layer input/output shapes, parameter counts and MACs.
//!
//! Conventions (the same as burn's modules, which the trained weights come from):
//! - conv2d `valid`: out = floor((in - k) / stride) + 1; `same`: out = ceil(in / stride).
//! - pools never pad and floor their output: out = floor((in - size) / stride) + 1.
//! - a dense layer on a spatial input flattens it first (C,H,W order).
//! - MACs count every kernel tap of every output element, padded positions included;
//!   pools, dropout and flatten count 0.

use serde::{Deserialize, Serialize};

use super::{InputRef, InputSpec, Layer, LayerSpec, Padding, default_input};

/// A tensor shape for one image (batch dimension excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TensorShape {
    /// A feature map.
    Spatial {
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
        /// Channels.
        channels: usize,
    },
    /// A feature vector.
    Flat {
        /// Number of features.
        len: usize,
    },
}

impl TensorShape {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match *self {
            TensorShape::Spatial { height, width, channels } => height * width * channels,
            TensorShape::Flat { len } => len,
        }
    }

    /// Whether the shape has no element (never true for a validated model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(height, width, channels)`; a flat vector of `n` is `(1, 1, n)`.
    pub fn hwc(&self) -> (usize, usize, usize) {
        match *self {
            TensorShape::Spatial { height, width, channels } => (height, width, channels),
            TensorShape::Flat { len } => (1, 1, len),
        }
    }

    /// Keras-like rendering: `(26, 26, 32)` or `(1600)`.
    pub fn display(&self) -> String {
        match *self {
            TensorShape::Spatial { height, width, channels } => format!("({height}, {width}, {channels})"),
            TensorShape::Flat { len } => format!("({len})"),
        }
    }
}

/// Shapes and costs of one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerShape {
    /// Index into `ModelSpec::layers`.
    pub index: usize,
    /// The layer.
    pub layer: Layer,
    /// What the layer reads (two sources for an `add`).
    #[serde(default)]
    pub inputs: Vec<InputRef>,
    /// Input shape (of the first input; an `add`'s inputs all have this shape).
    pub input: TensorShape,
    /// Output shape.
    pub output: TensorShape,
    /// Trainable parameters (weights + biases).
    pub params: usize,
    /// Multiply-accumulates per inference.
    pub macs: u64,
}

/// Why a layer does not fit: the layer index, the key to blame and a message.
pub(crate) struct ShapeError {
    pub index: usize,
    pub key: &'static str,
    pub message: String,
}

fn conv_out(input: usize, k: usize, stride: usize, padding: Padding) -> Option<usize> {
    match padding {
        Padding::Valid => (input >= k).then(|| (input - k) / stride + 1),
        Padding::Same => Some(input.div_ceil(stride)),
    }
}

/// The output size of a convolution window on an `h × w` input, or why the kernel does not fit.
fn conv_window(
    h: usize,
    w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: Padding,
) -> Result<(usize, usize), String> {
    match (conv_out(h, kernel[0], stride[0], padding), conv_out(w, kernel[1], stride[1], padding)) {
        (Some(oh), Some(ow)) => Ok((oh, ow)),
        _ => Err(format!(
            "{}x{} does not fit the {h}x{w} input of this layer (with padding = \"valid\" the kernel \
             must be at most {h}x{w}; use a smaller kernel or padding = \"same\")",
            kernel[0], kernel[1]
        )),
    }
}

/// How a shape error names a layer's input: `the model input` or `layers[3] ("stack1")`.
pub(crate) fn describe_input(layers: &[LayerSpec], source: InputRef) -> String {
    match source {
        InputRef::Input => "the model input".to_string(),
        InputRef::Layer(j) => match layers.get(j).and_then(|l| l.name.as_deref()) {
            Some(name) => format!("layers[{j}] (\"{name}\")"),
            None => format!("layers[{j}]"),
        },
    }
}

pub(crate) fn infer(input: &InputSpec, layers: &[LayerSpec]) -> Result<Vec<LayerShape>, ShapeError> {
    let model_input = TensorShape::Spatial { height: input.height, width: input.width, channels: input.channels };
    let mut out: Vec<LayerShape> = Vec::with_capacity(layers.len());
    for (index, spec) in layers.iter().enumerate() {
        let layer = spec.layer;
        let err = |key: &'static str, message: String| ShapeError { index, key, message };
        let sources = if spec.inputs.is_empty() { vec![default_input(index)] } else { spec.inputs.clone() };
        let mut source_shapes = Vec::with_capacity(sources.len());
        for &source in &sources {
            source_shapes.push(match source {
                InputRef::Input => model_input,
                InputRef::Layer(j) => match out.get(j) {
                    Some(s) => s.output,
                    None => return Err(err("inputs", format!("layers[{j}] does not come before this layer"))),
                },
            });
        }
        let Some(&shape) = source_shapes.first() else {
            return Err(err("inputs", "the layer has no input".to_string()));
        };
        if let Some(k) = source_shapes.iter().position(|s| *s != shape) {
            return Err(err(
                "inputs",
                format!(
                    "an add needs inputs of one shape, but {} is {} and {} is {}",
                    describe_input(layers, sources[0]),
                    shape.display(),
                    describe_input(layers, sources[k]),
                    source_shapes[k].display()
                ),
            ));
        }
        let spatial = |what: &str| match shape {
            TensorShape::Spatial { height, width, channels } => Ok((height, width, channels)),
            TensorShape::Flat { len } => Err(err(
                "type",
                format!(
                    "{what} needs a spatial input, but the input of this layer is already flat \
                     ({len} features); put it before the first flatten/dense layer"
                ),
            )),
        };
        let (output, params, macs) = match layer {
            Layer::Conv2d { filters, kernel, stride, padding, .. } => {
                let (h, w, c) = spatial("conv2d")?;
                let (oh, ow) = conv_window(h, w, kernel, stride, padding).map_err(|m| err("kernel", m))?;
                let taps = kernel[0] * kernel[1] * c;
                let output = TensorShape::Spatial { height: oh, width: ow, channels: filters };
                (output, taps * filters + filters, (oh * ow * filters) as u64 * taps as u64)
            }
            Layer::DepthwiseConv2d { kernel, stride, padding, .. } => {
                let (h, w, c) = spatial("depthwise_conv2d")?;
                let (oh, ow) = conv_window(h, w, kernel, stride, padding).map_err(|m| err("kernel", m))?;
                let taps = kernel[0] * kernel[1];
                let output = TensorShape::Spatial { height: oh, width: ow, channels: c };
                (output, taps * c + c, (oh * ow * c) as u64 * taps as u64)
            }
            Layer::MaxPool2d { size, stride } | Layer::AvgPool2d { size, stride } => {
                let (h, w, c) = spatial(layer.type_name())?;
                if size[0] > h || size[1] > w {
                    return Err(err(
                        "size",
                        format!(
                            "{}x{} does not fit the {h}x{w} input of this layer (pooling does \
                             not pad; the window must be at most {h}x{w})",
                            size[0], size[1]
                        ),
                    ));
                }
                let output = TensorShape::Spatial {
                    height: (h - size[0]) / stride[0] + 1,
                    width: (w - size[1]) / stride[1] + 1,
                    channels: c,
                };
                (output, 0, 0)
            }
            Layer::Dense { units, .. } => {
                let n = shape.len();
                (TensorShape::Flat { len: units }, n * units + units, (n * units) as u64)
            }
            Layer::Dropout { .. } => (shape, 0, 0),
            // Scale and shift per channel (the running mean and variance are not trained).
            Layer::BatchNorm { .. } => (shape, 2 * shape.hwc().2, 0),
            Layer::GlobalAvgPool => {
                let (h, w, c) = spatial("global_avgpool")?;
                let _ = (h, w);
                (TensorShape::Spatial { height: 1, width: 1, channels: c }, 0, 0)
            }
            Layer::Flatten => {
                spatial("flatten")?;
                (TensorShape::Flat { len: shape.len() }, 0, 0)
            }
            Layer::Add { .. } => (shape, 0, 0),
        };
        out.push(LayerShape { index, layer, inputs: sources, input: shape, output, params, macs });
    }
    Ok(out)
}
