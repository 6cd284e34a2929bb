//! A candidate's `model.toml` text: the base model with the sampled layers and training
//! hyper-parameters, every key written out (canonical form). Parsing it with
//! [`ModelSpec::parse`](crate::spec::ModelSpec::parse) validates the candidate, and the same text
//! becomes `best.toml`.

use serde::Serialize;

use super::space::{BlockChoice, ConvParams, HeadChoice, OptimizerChoice, Params, PoolChoice, SearchSpace};
use crate::spec::{CalibrationMethod, Init, LrSchedule, Padding, Precision, TargetSpec};

/// A `model.toml` as written by the search: every key, in the order of `models/README.md`.
#[derive(Serialize)]
struct ModelToml<'a> {
    name: &'a str,
    input: InputToml,
    layers: Vec<NamedLayer>,
    data: DataToml<'a>,
    train: TrainToml,
    quantize: QuantizeToml,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<TargetSpec>,
}

#[derive(Serialize)]
struct InputToml {
    height: usize,
    width: usize,
    channels: usize,
    classes: usize,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LayerToml {
    Conv2d { filters: usize, kernel: usize, stride: usize, padding: &'static str, activation: &'static str },
    DepthwiseConv2d { kernel: usize, stride: usize, padding: &'static str, activation: &'static str },
    Batchnorm { activation: &'static str },
    Add { activation: &'static str },
    Maxpool2d { size: usize },
    Avgpool2d { size: usize },
    GlobalAvgpool,
    Dropout { rate: f64 },
    Flatten,
    Dense { units: usize, activation: &'static str },
}

/// A layer with the graph keys a residual block needs (a chain writes neither).
#[derive(Serialize)]
struct NamedLayer {
    #[serde(flatten)]
    layer: LayerToml,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    inputs: Vec<String>,
}

impl From<LayerToml> for NamedLayer {
    fn from(layer: LayerToml) -> Self {
        NamedLayer { layer, name: None, inputs: Vec::new() }
    }
}

/// The layers of a candidate's conv part (and head), tracking what a residual block needs.
struct ConvStack {
    layers: Vec<NamedLayer>,
    batchnorm: bool,
    channels: usize,
}

impl ConvStack {
    /// A conv-like layer made by `make(activation)` with `activation` after it, or with a
    /// batchnorm (carrying the activation and the name) after it when the candidate has them.
    fn unit(
        &mut self,
        make: impl Fn(&'static str) -> LayerToml,
        activation: &'static str,
        name: Option<String>,
        inputs: Vec<String>,
    ) {
        if self.batchnorm {
            self.layers.push(NamedLayer { layer: make("none"), name: None, inputs });
            self.layers.push(NamedLayer { layer: LayerToml::Batchnorm { activation }, name, inputs: Vec::new() });
        } else {
            self.layers.push(NamedLayer { layer: make(activation), name, inputs });
        }
    }

    /// The name of the last layer's output, naming it `fallback` if it has none ("input" before
    /// any layer).
    fn name_last(&mut self, fallback: String) -> String {
        match self.layers.last_mut() {
            None => "input".to_string(),
            Some(l) => l.name.get_or_insert(fallback).clone(),
        }
    }

    fn block(&mut self, i: usize, c: &ConvParams) {
        let padding = match c.padding {
            Padding::Valid => "valid",
            Padding::Same => "same",
        };
        let (filters, kernel, stride) = (c.filters, c.kernel, c.stride);
        match c.block {
            BlockChoice::Conv => self.unit(
                |a| LayerToml::Conv2d { filters, kernel, stride, padding, activation: a },
                "relu",
                None,
                vec![],
            ),
            BlockChoice::Separable => {
                self.unit(
                    |a| LayerToml::DepthwiseConv2d { kernel, stride, padding, activation: a },
                    "relu",
                    None,
                    vec![],
                );
                let pointwise =
                    |a| LayerToml::Conv2d { filters, kernel: 1, stride: 1, padding: "valid", activation: a };
                self.unit(pointwise, "relu", None, vec![]);
            }
            BlockChoice::Residual => {
                let input = self.name_last(format!("b{i}_in"));
                let conv = |k: usize, s: usize| {
                    move |a| LayerToml::Conv2d { filters, kernel: k, stride: s, padding: "same", activation: a }
                };
                // The shortcut first, as models/cifar-resnet8.toml does: its output waits for the
                // add while the main path runs, and the block's input is freed sooner.
                let (shortcut, main_inputs) = if stride != 1 || self.channels != filters {
                    let name = format!("b{i}_shortcut");
                    self.unit(conv(1, stride), "none", Some(name.clone()), vec![input.clone()]);
                    (name, vec![input])
                } else {
                    (input, vec![])
                };
                self.unit(conv(kernel, stride), "relu", None, main_inputs);
                let main = format!("b{i}_main");
                self.unit(conv(kernel, 1), "none", Some(main.clone()), vec![]);
                let add = LayerToml::Add { activation: "relu" };
                self.layers.push(NamedLayer { layer: add, name: None, inputs: vec![main, shortcut] });
            }
        }
        self.channels = filters;
        match c.pool {
            PoolChoice::Max => self.layers.push(LayerToml::Maxpool2d { size: 2 }.into()),
            PoolChoice::Avg => self.layers.push(LayerToml::Avgpool2d { size: 2 }.into()),
            PoolChoice::None => {}
        }
    }
}

#[derive(Serialize)]
struct DataToml<'a> {
    dataset: &'a str,
    validation: f64,
    train_limit: usize,
}

#[derive(Serialize)]
struct TrainToml {
    optimizer: &'static str,
    learning_rate: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    batch_size: usize,
    epochs: usize,
    seed: u64,
    init: &'static str,
    early_stopping: usize,
    label_smoothing: f64,
    lr_schedule: ScheduleToml,
    augment: AugmentToml,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ScheduleToml {
    Off(&'static str),
    /// The spec's own serialization: `{ type = "...", ... }` with the keys of `models/README.md`.
    On(LrSchedule),
}

#[derive(Serialize)]
struct AugmentToml {
    shift: usize,
    rotate: f64,
    flip: bool,
}

#[derive(Serialize)]
struct QuantizeToml {
    precision: &'static str,
    calibration: usize,
    method: &'static str,
}

/// The model description of candidate `name` with `params`. Epochs and `train_limit` are the
/// base's (the full training `best.toml` asks for); a trial overrides them.
pub fn render(space: &SearchSpace, name: &str, params: &Params) -> String {
    let base = &space.base;
    let classes = base.input.classes;
    let mut stack = ConvStack { layers: Vec::new(), batchnorm: params.batchnorm, channels: base.input.channels };
    for (i, conv) in params.conv.iter().enumerate() {
        stack.block(i, conv);
    }
    let mut layers = stack.layers;
    let dropout = |layers: &mut Vec<NamedLayer>| {
        if params.dropout > 0.0 {
            layers.push(LayerToml::Dropout { rate: params.dropout }.into());
        }
    };
    if params.conv.is_empty() {
        layers.push(LayerToml::Flatten.into());
    } else {
        if params.head == HeadChoice::GlobalAvgpool {
            layers.push(LayerToml::GlobalAvgpool.into());
        }
        dropout(&mut layers);
    }
    for &units in &params.dense {
        layers.push(LayerToml::Dense { units, activation: "relu" }.into());
        dropout(&mut layers);
    }
    layers.push(LayerToml::Dense { units: classes, activation: "none" }.into());

    let t = &base.train;
    let (optimizer, nesterov) = match params.optimizer {
        OptimizerChoice::Adam => ("adam", false),
        OptimizerChoice::Adamw => ("adamw", false),
        OptimizerChoice::Sgd => ("sgd", false),
        OptimizerChoice::SgdNesterov => ("sgd", true),
    };
    let lr_schedule = match t.lr_schedule {
        LrSchedule::None => ScheduleToml::Off("none"),
        other => ScheduleToml::On(other),
    };
    let q = &base.quantize;
    let target = &space.target;
    let file = ModelToml {
        name,
        input: InputToml { height: base.input.height, width: base.input.width, channels: base.input.channels, classes },
        layers,
        data: DataToml {
            dataset: base.data.dataset.name(),
            validation: base.data.validation,
            train_limit: base.data.train_limit,
        },
        train: TrainToml {
            optimizer,
            learning_rate: params.learning_rate,
            momentum: t.momentum,
            nesterov,
            weight_decay: t.weight_decay,
            batch_size: params.batch_size,
            epochs: t.epochs,
            seed: space.seed,
            init: match t.init {
                Init::He => "he",
                Init::Glorot => "glorot",
            },
            early_stopping: t.early_stopping,
            label_smoothing: t.label_smoothing,
            lr_schedule,
            augment: AugmentToml { shift: t.augment.shift, rotate: t.augment.rotate, flip: t.augment.flip },
        },
        quantize: QuantizeToml {
            precision: match q.precision {
                Precision::Int8 => "int8",
                Precision::F16 => "f16",
                Precision::F32 => "f32",
            },
            calibration: q.calibration,
            method: match q.method {
                CalibrationMethod::MinMax => "minmax",
                CalibrationMethod::Percentile => "percentile",
                CalibrationMethod::Mse => "mse",
            },
        },
        target: (target.flash.is_some() || target.ram.is_some() || target.macs.is_some()).then_some(*target),
    };
    // Every field is a plain string, number, bool, table or array of tables: serializing cannot
    // fail.
    toml::to_string(&file).unwrap_or_default()
}
