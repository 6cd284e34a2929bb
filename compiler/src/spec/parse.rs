//! `model.toml` → [`ModelSpec`]: key-by-key reading with defaults, then whole-model checks.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::{InvalidKind, SpecError};
use super::reader::{Source, Table, Value};
use super::shape;
use super::{
    Activation, Augment, CalibrationMethod, DataSpec, Dataset, EnsembleSpec, HeadSpec, Init, InitSpec, InputRef,
    InputSpec, Layer, LayerSpec, LrSchedule, MAX_MEMBERS, ModelSpec, Optimizer, Padding, Precision, QuantizeSpec,
    SvmHeadSpec, TargetSpec, TrainSpec, default_input,
};

const TOP_KEYS: &[&str] =
    &["name", "input", "layers", "data", "train", "quantize", "target", "init", "ensemble", "head"];
const HEAD_KEYS: &[&str] = &["type", "pca", "samples", "c"];
const ENSEMBLE_KEYS: &[&str] = &["members", "member"];
const INIT_KEYS: &[&str] = &["from", "layers", "freeze"];
const INPUT_KEYS: &[&str] = &["height", "width", "channels", "classes"];
const DATA_KEYS: &[&str] = &["dataset", "validation", "train_limit"];
const TRAIN_KEYS: &[&str] = &[
    "optimizer",
    "learning_rate",
    "momentum",
    "nesterov",
    "weight_decay",
    "batch_size",
    "epochs",
    "seed",
    "init",
    "early_stopping",
    "lr_schedule",
    "augment",
    "label_smoothing",
];
const AUGMENT_KEYS: &[&str] = &["shift", "rotate", "flip"];
const QUANTIZE_KEYS: &[&str] = &["precision", "calibration", "method"];
const TARGET_KEYS: &[&str] = &["flash", "ram", "macs"];

const LAYER_TYPES: &[(&str, &str)] = &[
    ("conv2d", "conv2d"),
    ("depthwise_conv2d", "depthwise_conv2d"),
    ("maxpool2d", "maxpool2d"),
    ("avgpool2d", "avgpool2d"),
    ("dense", "dense"),
    ("dropout", "dropout"),
    ("flatten", "flatten"),
    ("batchnorm", "batchnorm"),
    ("global_avgpool", "global_avgpool"),
    ("add", "add"),
];
const CONV_KEYS: &[&str] =
    &["type", "name", "inputs", "filters", "kernel", "stride", "padding", "activation", "freeze"];
const DEPTHWISE_KEYS: &[&str] = &["type", "name", "inputs", "kernel", "stride", "padding", "activation", "freeze"];
const POOL_KEYS: &[&str] = &["type", "name", "inputs", "size", "stride"];
const DENSE_KEYS: &[&str] = &["type", "name", "inputs", "units", "activation", "freeze"];
const DROPOUT_KEYS: &[&str] = &["type", "name", "inputs", "rate"];
const FLATTEN_KEYS: &[&str] = &["type", "name", "inputs"];
// No `inputs`: a batchnorm normalizes the layer right before it (see `check_batchnorm_follows`).
const BATCHNORM_KEYS: &[&str] = &["type", "name", "epsilon", "momentum", "activation", "freeze"];
const ADD_KEYS: &[&str] = &["type", "name", "inputs", "activation"];
/// The name `inputs` uses for the model's input image.
const MODEL_INPUT: &str = "input";

const ACTIVATIONS: &[(&str, Activation)] =
    &[("relu", Activation::Relu), ("relu6", Activation::Relu6), ("none", Activation::None)];

/// Largest kernel/pool/stride size accepted (a sanity bound, not a hardware limit).
const MAX_WINDOW: usize = 64;

pub(crate) fn parse(text: &str, origin: &str) -> Result<ModelSpec, SpecError> {
    let src = Source::new(origin, text, TOP_KEYS);
    let doc = src.parse(text)?;
    let root = src.root(&doc);
    root.check_keys(TOP_KEYS, "at the top level")?;

    let name = read_name(&root, origin)?;
    let data = read_data(&root)?;
    let input = read_input(&root, data.dataset)?;
    let mut layers = read_layers(&root, &input)?;
    let mut warnings = Vec::new();
    let init = read_init(&root, origin, &mut layers, &mut warnings)?;
    let train = read_train(&root, &input, &data, &mut warnings)?;
    let ensemble = read_ensemble(&root, &train, &input, &data, &mut warnings)?;
    let head = read_head(&root, &input, &layers)?;
    let quantize = read_quantize(&root)?;
    let target = read_target(&root)?;

    Ok(ModelSpec {
        name,
        origin: origin.to_string(),
        input,
        layers,
        data,
        train,
        quantize,
        target,
        init,
        ensemble,
        head,
        warnings,
    })
}

/// `[init]`, and the `freeze` flags it sets (`freeze = "all-but-last-N"`); checks that something
/// is left to train.
fn read_init(
    root: &Table<'_, '_>,
    origin: &str,
    layers: &mut [LayerSpec],
    warnings: &mut Vec<String>,
) -> Result<Option<InitSpec>, SpecError> {
    let t = section(root, "init", INIT_KEYS)?;
    let with_params: Vec<usize> = (0..layers.len())
        .filter(|&i| layers[i].layer.has_weights() || matches!(layers[i].layer, Layer::BatchNorm { .. }))
        .collect();
    let weighted: Vec<usize> = (0..layers.len()).filter(|&i| layers[i].layer.has_weights()).collect();
    let init = match &t {
        None => None,
        Some(t) => {
            let v = t.require("from", "the pretrained model: a .tflite, an .onnx or an mnistc checkpoint")?;
            let from = v.str()?;
            if from.is_empty() {
                return Err(v.err(InvalidKind::BadValue, "an empty path; name a .tflite, .onnx or checkpoint file"));
            }
            let mut path = std::path::PathBuf::from(from);
            if path.is_relative()
                && !origin.starts_with('<')
                && let Some(dir) = Path::new(origin).parent()
            {
                path = dir.join(path);
            }
            let count = get_or(Some(t), "layers", None, |v| v.usize(1, with_params.len()).map(Some))?;
            if let Some(v) = t.get("freeze") {
                let text = v.str()?;
                let keep = match text {
                    "none" => None,
                    _ => Some(
                        text.strip_prefix("all-but-last-")
                            .and_then(|n| n.parse::<usize>().ok())
                            .filter(|&n| (1..=weighted.len()).contains(&n))
                            .ok_or_else(|| {
                                v.err(
                                    InvalidKind::BadValue,
                                    format!(
                                        "`{text}`: expected \"none\" or \"all-but-last-N\" with N from 1 to {} (the \
                                         model's conv2d, depthwise_conv2d and dense layers), e.g. \"all-but-last-1\" \
                                         to train only the classifier",
                                        weighted.len()
                                    ),
                                )
                            })?,
                    ),
                };
                if let Some(n) = keep {
                    let frozen = &weighted[..weighted.len() - n];
                    for &i in frozen {
                        layers[i].freeze = true;
                    }
                    // A batchnorm follows the layer it normalizes.
                    for (i, l) in layers.iter_mut().enumerate().skip(1) {
                        if matches!(l.layer, Layer::BatchNorm { .. }) && frozen.contains(&(i - 1)) {
                            l.freeze = true;
                        }
                    }
                }
            }
            Some(InitSpec { from: path, layers: count, line: v.line })
        }
    };
    if with_params.iter().all(|&i| layers[i].freeze) {
        let line = t.as_ref().map_or_else(|| layers.last().map_or(1, |l| l.line_of("freeze")), |t| t.line_of("freeze"));
        let key = if t.as_ref().and_then(|t| t.get("freeze")).is_some() { "init.freeze" } else { "freeze" };
        return Err(root.src.error(
            line,
            key,
            InvalidKind::Inconsistent,
            "every layer with parameters is frozen: nothing would train (leave at least the last dense layer unfrozen)",
        ));
    }
    if init.is_none()
        && let Some(l) = layers.iter().find(|l| l.freeze)
    {
        warnings.push(format!(
            "{origin}:{}: freeze = true without [init] from: the layer keeps its random initial weights",
            l.line_of("freeze")
        ));
    }
    Ok(init)
}

/// `[section]` as a table, or `None` when absent.
fn section<'a, 'i>(root: &Table<'a, 'i>, key: &str, allowed: &[&str]) -> Result<Option<Table<'a, 'i>>, SpecError> {
    match root.get(key) {
        None => Ok(None),
        Some(v) => {
            let t = v.table()?;
            t.check_keys(allowed, &format!("in [{key}]"))?;
            Ok(Some(t))
        }
    }
}

fn read_name(root: &Table<'_, '_>, origin: &str) -> Result<String, SpecError> {
    let (name, line, explicit) = match root.get("name") {
        Some(v) => (v.str()?.to_string(), v.line, true),
        None => {
            let stem = if origin.starts_with('<') {
                "model".to_string()
            } else {
                Path::new(origin).file_stem().map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned())
            };
            (stem, 1, false)
        }
    };
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        let how =
            if explicit { String::new() } else { " (taken from the file name; set `name` explicitly)".to_string() };
        return Err(root.src.error(
            line,
            "name",
            InvalidKind::BadValue,
            format!(
                "`{name}` is not a valid model name{how}; use 1 to 64 ASCII letters, digits, \
                 '-', '_' or '.'"
            ),
        ));
    }
    Ok(name)
}

fn read_data(root: &Table<'_, '_>) -> Result<DataSpec, SpecError> {
    let Some(t) = section(root, "data", DATA_KEYS)? else {
        return Err(root.src.error(
            1,
            "data.dataset",
            InvalidKind::Missing,
            "missing; add a [data] table with dataset = \"mnist\", \"fashion-mnist\" or \"cifar-10\"",
        ));
    };
    let dataset = t.require("dataset", "set it to \"mnist\", \"fashion-mnist\" or \"cifar-10\"")?.choice(&[
        ("mnist", Dataset::Mnist),
        ("fashion-mnist", Dataset::FashionMnist),
        ("cifar-10", Dataset::Cifar10),
    ])?;
    let validation = match t.get("validation") {
        Some(v) => v.float_in(0.0, false, 0.5, false)?,
        None => 0.1,
    };
    let train_limit = match t.get("train_limit") {
        Some(v) => v.usize(0, dataset.train_size())?,
        None => 0,
    };
    if train_limit > 0 && validation > 0.0 {
        let held = (train_limit as f64 * validation).round() as usize;
        if held == 0 || held == train_limit {
            return Err(t.src.error(
                t.line_of("train_limit"),
                "data.train_limit",
                InvalidKind::Inconsistent,
                format!(
                    "{train_limit} images with validation = {validation} leaves no images for \
                     {}; use more images or change data.validation",
                    if held == 0 { "validation" } else { "training" }
                ),
            ));
        }
    }
    Ok(DataSpec { dataset, validation, train_limit })
}

fn read_input(root: &Table<'_, '_>, dataset: Dataset) -> Result<InputSpec, SpecError> {
    let (h, w, c, k) = dataset.image_shape_and_classes();
    let mut input = InputSpec { height: h, width: w, channels: c, classes: k };
    let Some(t) = section(root, "input", INPUT_KEYS)? else {
        return Ok(input);
    };
    let fields: [(&str, usize, &mut usize); 4] = [
        ("height", h, &mut input.height),
        ("width", w, &mut input.width),
        ("channels", c, &mut input.channels),
        ("classes", k, &mut input.classes),
    ];
    for (key, expected, slot) in fields {
        if let Some(v) = t.get(key) {
            let got = v.usize(1, 65_536)?;
            if got != expected {
                return Err(v.err(
                    InvalidKind::Inconsistent,
                    format!(
                        "{got} does not match the {} dataset, whose images are {h}x{w}x{c} with \
                         {k} classes; set {key} = {expected} (or leave it out)",
                        dataset.name()
                    ),
                ));
            }
            *slot = got;
        }
    }
    Ok(input)
}

fn key_lines(t: &Table<'_, '_>, keys: &[&str]) -> BTreeMap<String, usize> {
    keys.iter().filter_map(|k| t.get(k).map(|v| (k.to_string(), v.line))).collect()
}

fn read_activation(t: &Table<'_, '_>, default: Activation) -> Result<Activation, SpecError> {
    t.get("activation").map_or(Ok(default), |v| v.choice(ACTIVATIONS))
}

/// `kernel`, `stride`, `padding` and `activation` of a conv2d or depthwise_conv2d layer (its
/// activation defaults to none when a batchnorm follows, else to ReLU).
fn read_conv_window(
    t: &Table<'_, '_>,
    before_batchnorm: bool,
) -> Result<([usize; 2], [usize; 2], Padding, Activation), SpecError> {
    let kernel = t.require("kernel", "an integer or [height, width], e.g. 3")?.pair(1, MAX_WINDOW)?;
    let stride = opt_pair(t, "stride", [1, 1])?;
    let padding = t
        .get("padding")
        .map_or(Ok(Padding::Valid), |v| v.choice(&[("valid", Padding::Valid), ("same", Padding::Same)]))?;
    let activation = read_activation(t, if before_batchnorm { Activation::None } else { Activation::Relu })?;
    Ok((kernel, stride, padding, activation))
}

fn read_layers(root: &Table<'_, '_>, input: &InputSpec) -> Result<Vec<LayerSpec>, SpecError> {
    let tables =
        root.require("layers", "describe the network with [[layers]] tables (see models/README.md)")?.tables()?;
    if tables.is_empty() {
        return Err(root.src.error(
            root.line_of("layers"),
            "layers",
            InvalidKind::BadValue,
            "the model needs at least one layer (the last one a dense layer with input.classes \
             units)",
        ));
    }
    let type_of = |i: usize| tables.get(i).and_then(|t| t.get("type")).and_then(|v| v.str().ok());
    let last_dense = (0..tables.len()).rposition(|i| type_of(i) == Some("dense"));
    let names = read_layer_names(&tables)?;

    let mut layers = Vec::with_capacity(tables.len());
    for (i, t) in tables.iter().enumerate() {
        let kind = t
            .require(
                "type",
                "one of conv2d, depthwise_conv2d, maxpool2d, avgpool2d, global_avgpool, dense, batchnorm, add, \
                 dropout, flatten",
            )?
            .choice(LAYER_TYPES)?;
        if kind == "batchnorm"
            && let Some(v) = t.get("inputs")
        {
            return Err(v.err(
                InvalidKind::Inconsistent,
                "a batchnorm normalizes the layer right before it (it is folded into that layer's weights), \
                 so it takes no `inputs`; put the batchnorm right after the layer it normalizes",
            ));
        }
        // A layer normalized by the next one defaults to no activation: the batchnorm carries it.
        let before_batchnorm = type_of(i + 1) == Some("batchnorm");
        let (layer, keys) = match kind {
            "conv2d" => {
                t.check_keys(CONV_KEYS, "for a conv2d layer")?;
                let filters = t.require("filters", "the number of output channels, e.g. 32")?.usize(1, 4096)?;
                let (kernel, stride, padding, activation) = read_conv_window(t, before_batchnorm)?;
                let layer = Layer::Conv2d { filters, kernel, stride, padding, activation };
                (layer, CONV_KEYS)
            }
            "depthwise_conv2d" => {
                t.check_keys(DEPTHWISE_KEYS, "for a depthwise_conv2d layer")?;
                let (kernel, stride, padding, activation) = read_conv_window(t, before_batchnorm)?;
                (Layer::DepthwiseConv2d { kernel, stride, padding, activation }, DEPTHWISE_KEYS)
            }
            "maxpool2d" | "avgpool2d" => {
                t.check_keys(POOL_KEYS, &format!("for a {kind} layer"))?;
                let size = t
                    .require("size", "the pooling window, an integer or [height, width], e.g. 2")?
                    .pair(1, MAX_WINDOW)?;
                let stride = opt_pair(t, "stride", size)?;
                let layer = if kind == "maxpool2d" {
                    Layer::MaxPool2d { size, stride }
                } else {
                    Layer::AvgPool2d { size, stride }
                };
                (layer, POOL_KEYS)
            }
            "dense" => {
                t.check_keys(DENSE_KEYS, "for a dense layer")?;
                let units = t.require("units", "the number of outputs, e.g. 10")?.usize(1, 1 << 20)?;
                let is_last = Some(i) == last_dense;
                let plain = is_last || before_batchnorm;
                let activation = read_activation(t, if plain { Activation::None } else { Activation::Relu })?;
                (Layer::Dense { units, activation }, DENSE_KEYS)
            }
            "dropout" => {
                t.check_keys(DROPOUT_KEYS, "for a dropout layer")?;
                let rate = t
                    .require("rate", "the probability of dropping an element, e.g. 0.5")?
                    .float_in(0.0, false, 1.0, true)?;
                (Layer::Dropout { rate }, DROPOUT_KEYS)
            }
            "batchnorm" => {
                t.check_keys(BATCHNORM_KEYS, "for a batchnorm layer")?;
                let epsilon = get_or(Some(t), "epsilon", 1e-5, |v| v.float_in(0.0, false, 1.0, true))?;
                let momentum = get_or(Some(t), "momentum", 0.1, |v| v.float_in(0.0, false, 1.0, true))?;
                let activation = read_activation(t, Activation::None)?;
                check_batchnorm_follows(&tables, &layers, i)?;
                (Layer::BatchNorm { epsilon, momentum, activation }, BATCHNORM_KEYS)
            }
            "global_avgpool" => {
                t.check_keys(FLATTEN_KEYS, "for a global_avgpool layer")?;
                (Layer::GlobalAvgPool, FLATTEN_KEYS)
            }
            "add" => {
                t.check_keys(ADD_KEYS, "for an add layer")?;
                (Layer::Add { activation: read_activation(t, Activation::None)? }, ADD_KEYS)
            }
            _ => {
                t.check_keys(FLATTEN_KEYS, "for a flatten layer")?;
                (Layer::Flatten, FLATTEN_KEYS)
            }
        };
        let inputs = read_inputs(t, i, kind == "add", &names)?;
        let name = names.iter().find(|(_, (j, _))| *j == i).map(|(n, _)| n.clone());
        let freeze = get_or(Some(t), "freeze", false, |v| v.bool())?;
        layers.push(LayerSpec { layer, name, inputs, freeze, line: t.line, key_lines: key_lines(t, keys) });
    }

    // Whole-model checks, in file order: the graph, shapes, then the classifier head.
    check_graph(&tables, &layers)?;
    if let Err(e) = shape::infer(input, &layers) {
        let t = &tables[e.index];
        return Err(t.src.error(t.line_of(e.key), t.key_path(e.key), InvalidKind::Inconsistent, e.message));
    }
    let last = tables.len() - 1;
    let t = &tables[last];
    match layers[last].layer {
        Layer::Dense { units, activation } => {
            if units != input.classes {
                return Err(t.src.error(
                    t.line_of("units"),
                    t.key_path("units"),
                    InvalidKind::Inconsistent,
                    format!(
                        "the last dense layer produces the logits and must have input.classes = \
                         {} units, not {units}",
                        input.classes
                    ),
                ));
            }
            if activation != Activation::None {
                return Err(t.src.error(
                    t.line_of("activation"),
                    t.key_path("activation"),
                    InvalidKind::Inconsistent,
                    format!(
                        "the last dense layer produces the logits; its activation must be \
                         \"none\", not \"{}\" (softmax is part of the loss)",
                        activation.name()
                    ),
                ));
            }
        }
        other => {
            return Err(t.src.error(
                t.line,
                t.key_path("type"),
                InvalidKind::Inconsistent,
                format!(
                    "the last layer must be a dense layer with input.classes = {} units (the \
                     logits), not {}",
                    input.classes,
                    other.type_name()
                ),
            ));
        }
    }
    Ok(layers)
}

/// The `name` of every layer: `name → (layer index, line)`; names are unique, not `input`, and
/// made of ASCII letters, digits, `-`, `_` and `.`.
fn read_layer_names(tables: &[Table<'_, '_>]) -> Result<BTreeMap<String, (usize, usize)>, SpecError> {
    let mut names: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, t) in tables.iter().enumerate() {
        let Some(v) = t.get("name") else { continue };
        let name = v.str()?;
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(v.err(
                InvalidKind::BadValue,
                format!("`{name}` is not a valid layer name; use 1 to 64 ASCII letters, digits, '-', '_' or '.'"),
            ));
        }
        if name == MODEL_INPUT {
            return Err(v.err(
                InvalidKind::BadValue,
                "`input` names the model's input image in `inputs`; choose another name for this layer",
            ));
        }
        if let Some(&(j, line)) = names.get(name) {
            return Err(v.err(
                InvalidKind::Inconsistent,
                format!("the name `{name}` is already used by layers[{j}] (line {line}); layer names must be unique"),
            ));
        }
        names.insert(name.to_string(), (i, v.line));
    }
    Ok(names)
}

/// The resolved `inputs` of layer `i`: by default the layer before it (the model input for the
/// first layer); an `add` names two inputs, or one, which is then added to the layer before it.
fn read_inputs(
    t: &Table<'_, '_>,
    i: usize,
    is_add: bool,
    names: &BTreeMap<String, (usize, usize)>,
) -> Result<Vec<InputRef>, SpecError> {
    let Some(v) = t.get("inputs") else {
        if is_add {
            return Err(t.src.error(
                t.line,
                t.key_path("inputs"),
                InvalidKind::Missing,
                "missing; an add sums two layers' outputs: name them, e.g. inputs = [\"block1\", \"shortcut1\"] \
                 (or name one, which is added to the layer right before the add)",
            ));
        }
        return Ok(vec![default_input(i)]);
    };
    let single = matches!(v.raw(), toml::de::DeValue::String(_));
    let items = if single { vec![v] } else { v.items()? };
    let wanted = if is_add { "two layer names (or one, added to the layer before)" } else { "one layer name" };
    if items.len() > if is_add { 2 } else { 1 } {
        return Err(t.src.error(
            t.line_of("inputs"),
            t.key_path("inputs"),
            InvalidKind::BadValue,
            format!("{} inputs given; this layer takes {wanted}", items.len()),
        ));
    }
    let mut out = Vec::with_capacity(2);
    if is_add && items.len() == 1 {
        out.push(default_input(i));
    }
    for item in &items {
        let name = item.str()?;
        if name == MODEL_INPUT {
            out.push(InputRef::Input);
            continue;
        }
        let Some(&(j, _)) = names.get(name) else {
            let known: Vec<&str> = names.keys().map(String::as_str).collect();
            let hint =
                super::reader::closest(name, &known).map(|s| format!("did you mean `{s}`? ")).unwrap_or_default();
            let listed = if known.is_empty() {
                "no layer has a `name` yet".to_string()
            } else {
                format!("named layers: {}", known.join(", "))
            };
            return Err(item.err(
                InvalidKind::BadValue,
                format!("no layer is named `{name}`; {hint}{listed} (and `input` for the model input)"),
            ));
        };
        out.push(InputRef::Layer(j));
    }
    Ok(out)
}

/// The graph rules: every input comes from an earlier layer (a later one would be a cycle or
/// an order the network cannot run in), every layer's output is used (the last layer's gives the
/// logits), and nothing but its batchnorm reads a layer that a batchnorm normalizes.
fn check_graph(tables: &[Table<'_, '_>], layers: &[LayerSpec]) -> Result<(), SpecError> {
    let inputs_line = |i: usize| tables[i].line_of("inputs");
    let label = |j: usize| match &layers[j].name {
        Some(n) => format!("`{n}` (layers[{j}])"),
        None => format!("layers[{j}]"),
    };
    for (i, l) in layers.iter().enumerate() {
        for &source in &l.inputs {
            let InputRef::Layer(j) = source else { continue };
            if j < i {
                continue;
            }
            let t = &tables[i];
            let message = match cycle_through(layers, j, i) {
                Some(path) => {
                    let path: Vec<String> = path.iter().map(|&k| label(k)).collect();
                    format!(
                        "the inputs form a cycle: {}; a network must not feed a layer's output back into it",
                        path.join(" -> ")
                    )
                }
                None => format!(
                    "{} comes after this layer; a layer can only read layers above it in the file \
                     (move it up)",
                    label(j)
                ),
            };
            return Err(t.src.error(inputs_line(i), t.key_path("inputs"), InvalidKind::Inconsistent, message));
        }
    }
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); layers.len()];
    for (i, l) in layers.iter().enumerate() {
        for &source in &l.inputs {
            if let InputRef::Layer(j) = source {
                readers[j].push(i);
            }
        }
    }
    for (j, r) in readers.iter().enumerate() {
        if j + 1 < layers.len() && r.is_empty() {
            let t = &tables[j];
            return Err(t.src.error(
                t.line,
                t.key_path("type"),
                InvalidKind::Inconsistent,
                format!(
                    "the output of {} is never used: the layer after it reads other `inputs`; \
                     name this layer in a later layer's `inputs`, or remove it",
                    label(j)
                ),
            ));
        }
        let normalized = layers.get(j + 1).is_some_and(|n| matches!(n.layer, Layer::BatchNorm { .. }));
        if normalized && let Some(&other) = r.iter().find(|&&k| k != j + 1) {
            let t = &tables[other];
            return Err(t.src.error(
                inputs_line(other),
                t.key_path("inputs"),
                InvalidKind::Inconsistent,
                format!(
                    "{} is normalized by the batchnorm after it (folded into its weights), so its raw \
                     output does not exist on the device; read the batchnorm instead (give it a `name`)",
                    label(j)
                ),
            ));
        }
    }
    Ok(())
}

/// A path `from → … → to → from` through the inputs of `layers` when `to` is reachable from
/// `from` by following inputs (a cycle, since `to` reads `from`), else `None`.
fn cycle_through(layers: &[LayerSpec], from: usize, to: usize) -> Option<Vec<usize>> {
    let mut stack = vec![(from, vec![from])];
    let mut seen = vec![false; layers.len()];
    while let Some((k, path)) = stack.pop() {
        if k == to {
            let mut cycle = path;
            cycle.push(from);
            return Some(cycle.into_iter().rev().collect());
        }
        if std::mem::replace(&mut seen[k], true) {
            continue;
        }
        for &source in &layers[k].inputs {
            if let InputRef::Layer(j) = source {
                let mut next = path.clone();
                next.push(j);
                stack.push((j, next));
            }
        }
    }
    None
}

/// A batchnorm is folded into the conv2d, depthwise_conv2d or dense layer right before it, which must therefore
/// have no activation of its own (the batchnorm's is applied after the folded layer).
fn check_batchnorm_follows(tables: &[Table<'_, '_>], layers: &[LayerSpec], i: usize) -> Result<(), SpecError> {
    let t = &tables[i];
    let problem = match layers.last().map(|l| l.layer) {
        Some(
            Layer::Conv2d { activation: Activation::None, .. }
            | Layer::DepthwiseConv2d { activation: Activation::None, .. }
            | Layer::Dense { activation: Activation::None, .. },
        ) => {
            return Ok(());
        }
        Some(
            Layer::Conv2d { activation, .. }
            | Layer::DepthwiseConv2d { activation, .. }
            | Layer::Dense { activation, .. },
        ) => {
            let p = &tables[i - 1];
            return Err(p.src.error(
                p.line_of("activation"),
                p.key_path("activation"),
                InvalidKind::Inconsistent,
                format!(
                    "this layer is followed by a batchnorm, which is folded into its weights, so its \
                     activation must be \"none\", not \"{}\"; put `activation = \"{}\"` on the batchnorm",
                    activation.name(),
                    activation.name()
                ),
            ));
        }
        Some(other) => format!("follows a {} layer", other.type_name()),
        None => "is the first layer".to_string(),
    };
    Err(t.src.error(
        t.line,
        t.key_path("type"),
        InvalidKind::Inconsistent,
        format!(
            "a batchnorm must come right after a conv2d, depthwise_conv2d or dense layer (it is \
             folded into that layer's weights at lowering), but this one {problem}"
        ),
    ))
}

fn opt_pair(t: &Table<'_, '_>, key: &str, default: [usize; 2]) -> Result<[usize; 2], SpecError> {
    t.get(key).map_or(Ok(default), |v| v.pair(1, MAX_WINDOW))
}

fn get_or<T>(
    t: Option<&Table<'_, '_>>,
    key: &str,
    default: T,
    read: impl FnOnce(&Value<'_, '_>) -> Result<T, SpecError>,
) -> Result<T, SpecError> {
    match t.and_then(|t| t.get(key)) {
        Some(v) => read(&v),
        None => Ok(default),
    }
}

fn read_train(
    root: &Table<'_, '_>,
    input: &InputSpec,
    data: &DataSpec,
    warnings: &mut Vec<String>,
) -> Result<TrainSpec, SpecError> {
    let t = section(root, "train", TRAIN_KEYS)?;
    read_train_keys(root.src, t.as_ref(), "train", &TRAIN_DEFAULTS, input, data, warnings)
}

/// `[train]` when the file has none of its keys.
const TRAIN_DEFAULTS: TrainSpec = TrainSpec {
    optimizer: Optimizer::Adam,
    learning_rate: 1e-3,
    momentum: 0.9,
    nesterov: false,
    weight_decay: 0.0,
    batch_size: 128,
    epochs: 10,
    seed: 42,
    init: Init::He,
    early_stopping: 0,
    lr_schedule: LrSchedule::None,
    augment: Augment { shift: 0, rotate: 0.0, flip: false },
    label_smoothing: 0.0,
};

/// The `[train]` keys of `t` (the `[train]` table, or an `[[ensemble.member]]`, named `path` in
/// messages), each missing one taken from `base`.
fn read_train_keys(
    src: &Source<'_>,
    t: Option<&Table<'_, '_>>,
    path: &str,
    base: &TrainSpec,
    input: &InputSpec,
    data: &DataSpec,
    warnings: &mut Vec<String>,
) -> Result<TrainSpec, SpecError> {
    let optimizer = get_or(t, "optimizer", base.optimizer, |v| {
        v.choice(&[("adam", Optimizer::Adam), ("adamw", Optimizer::Adamw), ("sgd", Optimizer::Sgd)])
    })?;
    let learning_rate = get_or(t, "learning_rate", base.learning_rate, |v| v.float_in(0.0, true, 10.0, false))?;
    let momentum = get_or(t, "momentum", base.momentum, |v| v.float_in(0.0, false, 1.0, true))?;
    let nesterov = get_or(t, "nesterov", base.nesterov, |v| v.bool())?;
    let weight_decay = get_or(t, "weight_decay", base.weight_decay, |v| v.float_in(0.0, false, 1.0, false))?;
    let batch_size = get_or(t, "batch_size", base.batch_size, |v| v.usize(1, 65_536))?;
    let epochs = get_or(t, "epochs", base.epochs, |v| v.usize(1, 100_000))?;
    let seed = get_or(t, "seed", base.seed, |v| v.uint(0, i64::MAX as u64))?;
    let init = get_or(t, "init", base.init, |v| v.choice(&[("he", Init::He), ("glorot", Init::Glorot)]))?;
    let early_stopping = get_or(t, "early_stopping", base.early_stopping, |v| v.usize(0, 100_000))?;
    let label_smoothing = get_or(t, "label_smoothing", base.label_smoothing, |v| v.float_in(0.0, false, 1.0, true))?;
    let lr_schedule = match t.and_then(|t| t.get("lr_schedule")) {
        None => base.lr_schedule,
        Some(v) => read_schedule(&v, learning_rate)?,
    };
    let augment = match t.and_then(|t| t.get("augment")) {
        None => base.augment,
        Some(v) => {
            let a = v.table()?;
            a.check_keys(AUGMENT_KEYS, &format!("in {path}.augment"))?;
            let max_shift = input.height.min(input.width) / 2;
            let shift = get_or(Some(&a), "shift", 0, |v| v.usize(0, max_shift))?;
            let rotate = get_or(Some(&a), "rotate", 0.0, |v| v.float_in(0.0, false, 180.0, false))?;
            let flip = get_or(Some(&a), "flip", false, |v| v.bool())?;
            Augment { shift, rotate, flip }
        }
    };

    // Cross-key checks.
    let line = |key: &str| t.map_or(1, |t| t.line_of(key));
    if optimizer == Optimizer::Sgd && nesterov && momentum == 0.0 {
        return Err(src.error(
            line("nesterov"),
            format!("{path}.nesterov"),
            InvalidKind::Inconsistent,
            format!("Nesterov momentum needs {path}.momentum > 0"),
        ));
    }
    if optimizer != Optimizer::Sgd && nesterov {
        warnings.push(format!(
            "{}:{}: {path}.nesterov has no effect with optimizer = \"{}\" (sgd only)",
            src.origin,
            line("nesterov"),
            if optimizer == Optimizer::Adam { "adam" } else { "adamw" }
        ));
    }
    if data.validation == 0.0 {
        if early_stopping > 0 {
            return Err(src.error(
                line("early_stopping"),
                format!("{path}.early_stopping"),
                InvalidKind::Inconsistent,
                "early stopping watches the validation loss; set data.validation > 0 or \
                 early_stopping = 0",
            ));
        }
        if matches!(lr_schedule, LrSchedule::Plateau { .. }) {
            return Err(src.error(
                line("lr_schedule"),
                format!("{path}.lr_schedule"),
                InvalidKind::Inconsistent,
                "the plateau schedule watches the validation loss; set data.validation > 0 or \
                 use another schedule",
            ));
        }
    }
    Ok(TrainSpec {
        optimizer,
        learning_rate,
        momentum,
        nesterov,
        weight_decay,
        batch_size,
        epochs,
        seed,
        init,
        early_stopping,
        lr_schedule,
        augment,
        label_smoothing,
    })
}

/// `[ensemble]`: `members = N` networks; member `i` (from 0) trains with `[train]` and
/// `seed = train.seed + i`, the `[[ensemble.member]]` tables (at most `N − 1`) overriding
/// `[train]` keys of members 2, 3, … in order.
fn read_ensemble(
    root: &Table<'_, '_>,
    train: &TrainSpec,
    input: &InputSpec,
    data: &DataSpec,
    warnings: &mut Vec<String>,
) -> Result<Option<EnsembleSpec>, SpecError> {
    let Some(t) = section(root, "ensemble", ENSEMBLE_KEYS)? else { return Ok(None) };
    let n = t.require("members", &format!("the number of networks, 2 to {MAX_MEMBERS}"))?.usize(2, MAX_MEMBERS)?;
    let tables = match t.get("member") {
        None => Vec::new(),
        Some(v) => v.tables()?,
    };
    if tables.len() >= n {
        return Err(root.src.error(
            t.line_of("member"),
            "ensemble.member",
            InvalidKind::Inconsistent,
            format!(
                "{} [[ensemble.member]] tables for members = {n}: they describe members 2 to {n} \
                 (the first member is [train] itself), so at most {}",
                tables.len(),
                n - 1
            ),
        ));
    }
    let mut members = vec![*train];
    for i in 1..n {
        let base = train.member(i);
        let member = match tables.get(i - 1) {
            None => base,
            Some(m) => {
                m.check_keys(TRAIN_KEYS, "in an [[ensemble.member]] (the keys of [train])")?;
                read_train_keys(
                    root.src,
                    Some(m),
                    &format!("ensemble.member[{}]", i - 1),
                    &base,
                    input,
                    data,
                    warnings,
                )?
            }
        };
        members.push(member);
    }
    Ok(Some(EnsembleSpec { members }))
}

/// Most training images an SVM head is fitted on: its SMO solver holds a dense
/// `samples × samples` f64 kernel matrix (800 MB at this bound).
pub(crate) const MAX_SVM_SAMPLES: usize = 10_000;

/// `[head]`: `type = "softmax"` (the default) or `"svm"` with `pca`, `samples` and `c`. An SVM
/// head replaces the last dense layer, which must therefore read a hidden layer's features and
/// have no activation (its scores are the SVMs' affine decision values).
fn read_head(root: &Table<'_, '_>, input: &InputSpec, layers: &[LayerSpec]) -> Result<HeadSpec, SpecError> {
    let Some(t) = section(root, "head", HEAD_KEYS)? else { return Ok(HeadSpec::Softmax) };
    let kind = get_or(Some(&t), "type", "softmax", |v| v.choice(&[("softmax", "softmax"), ("svm", "svm")]))?;
    if kind == "softmax" {
        t.check_keys(&["type"], "for [head] type softmax (pca, samples and c are the svm head's)")?;
        return Ok(HeadSpec::Softmax);
    }
    let shapes = shape::infer(input, layers).map_err(|e| {
        root.src.error(0, format!("layers[{}].{}", e.index, e.key), InvalidKind::Inconsistent, e.message)
    })?;
    let last = layers.len().saturating_sub(1);
    let features = match (layers.last().map(|l| l.layer), shapes.last()) {
        (Some(Layer::Dense { activation: Activation::None, .. }), Some(s)) if last > 0 => s.input.len(),
        _ => {
            return Err(root.src.error(
                t.line_of("type"),
                "head.type",
                InvalidKind::Inconsistent,
                "an svm head replaces the last layer, which must be a dense layer without activation \
                 reading the output of another layer (the features the SVM is fitted on)"
                    .to_string(),
            ));
        }
    };
    let pca = get_or(Some(&t), "pca", features.min(32), |v| v.usize(1, features))?;
    let samples = get_or(Some(&t), "samples", 4000, |v| v.usize(2 * input.classes, MAX_SVM_SAMPLES))?;
    let c = match t.get("c") {
        None => vec![0.01, 0.1, 1.0, 10.0],
        Some(v) if v.float().is_ok() => vec![v.float_in(0.0, true, 1e6, false)?],
        Some(v) => v.items()?.iter().map(|i| i.float_in(0.0, true, 1e6, false)).collect::<Result<_, _>>()?,
    };
    Ok(HeadSpec::Svm(SvmHeadSpec { pca, samples, c }))
}

fn read_schedule(v: &Value<'_, '_>, learning_rate: f64) -> Result<LrSchedule, SpecError> {
    const KINDS: &[(&str, &str)] =
        &[("none", "none"), ("step", "step"), ("plateau", "plateau"), ("cosine", "cosine"), ("one_cycle", "one_cycle")];
    let table = v.table().ok();
    let kind = match &table {
        None => v.choice(KINDS)?,
        Some(t) => t.require("type", "one of none, step, plateau, cosine, one_cycle")?.choice(KINDS)?,
    };
    let t = table.as_ref();
    let min_lr = |t: Option<&Table<'_, '_>>, default: f64| {
        get_or(t, "min_lr", default, |v| {
            let m = v.float_in(0.0, false, learning_rate, false)?;
            Ok(m)
        })
    };
    Ok(match kind {
        "none" => {
            if let Some(t) = t {
                t.check_keys(&["type"], "for lr_schedule type none")?;
            }
            LrSchedule::None
        }
        "step" => {
            if let Some(t) = t {
                t.check_keys(&["type", "step_size", "gamma"], "for lr_schedule type step")?;
            }
            LrSchedule::Step {
                step_size: get_or(t, "step_size", 5, |v| v.usize(1, 100_000))?,
                gamma: get_or(t, "gamma", 0.5, |v| v.float_in(0.0, true, 1.0, false))?,
            }
        }
        "plateau" => {
            if let Some(t) = t {
                t.check_keys(&["type", "patience", "factor", "min_lr"], "for lr_schedule type plateau")?;
            }
            LrSchedule::Plateau {
                patience: get_or(t, "patience", 2, |v| v.usize(1, 100_000))?,
                factor: get_or(t, "factor", 0.5, |v| v.float_in(0.0, true, 1.0, true))?,
                min_lr: min_lr(t, learning_rate.min(1e-6))?,
            }
        }
        "cosine" => {
            if let Some(t) = t {
                t.check_keys(&["type", "min_lr", "warmup"], "for lr_schedule type cosine")?;
            }
            LrSchedule::Cosine { min_lr: min_lr(t, 0.0)?, warmup: get_or(t, "warmup", 0, |v| v.usize(0, 100_000))? }
        }
        _ => {
            if let Some(t) = t {
                t.check_keys(
                    &["type", "pct_start", "div_factor", "final_div_factor"],
                    "for lr_schedule type one_cycle",
                )?;
            }
            LrSchedule::OneCycle {
                pct_start: get_or(t, "pct_start", 0.3, |v| v.float_in(0.0, true, 1.0, true))?,
                div_factor: get_or(t, "div_factor", 25.0, |v| v.float_in(1.0, false, 1e9, false))?,
                final_div_factor: get_or(t, "final_div_factor", 1e4, |v| v.float_in(1.0, false, 1e12, false))?,
            }
        }
    })
}

fn read_quantize(root: &Table<'_, '_>) -> Result<QuantizeSpec, SpecError> {
    let t = section(root, "quantize", QUANTIZE_KEYS)?;
    let t = t.as_ref();
    Ok(QuantizeSpec {
        precision: get_or(t, "precision", Precision::Int8, |v| {
            v.choice(&[("int8", Precision::Int8), ("f16", Precision::F16), ("f32", Precision::F32)])
        })?,
        calibration: get_or(t, "calibration", 1000, |v| v.usize(1, 1_000_000))?,
        method: get_or(t, "method", CalibrationMethod::MinMax, |v| {
            v.choice(&[
                ("minmax", CalibrationMethod::MinMax),
                ("percentile", CalibrationMethod::Percentile),
                ("mse", CalibrationMethod::Mse),
            ])
        })?,
    })
}

fn read_target(root: &Table<'_, '_>) -> Result<TargetSpec, SpecError> {
    let t = section(root, "target", TARGET_KEYS)?;
    let t = t.as_ref();
    let budget = |key: &str| get_or(t, key, None, |v| v.uint(1, i64::MAX as u64).map(Some));
    Ok(TargetSpec { flash: budget("flash")?, ram: budget("ram")?, macs: budget("macs")? })
}
