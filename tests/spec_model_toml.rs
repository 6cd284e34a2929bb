//! `model.toml` parsing, validation, shape inference, overrides and training keys, with real
//! malformed inputs: every error must name the key path, the line and what is allowed.

use std::path::Path;

use mnistc::spec::{
    Activation, Dataset, InvalidKind, Layer, LrSchedule, ModelSpec, Optimizer, Overrides, Padding, Precision,
    SpecError, TensorShape,
};

const MODELS: &[&str] = &["digits", "mlp", "fashion", "fashion-mlp", "cifar-transfer"];

fn model_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(format!("{name}.toml"))
}

/// A valid model with `layers` spliced in (so line numbers are predictable: the first layer
/// table starts on line 9).
fn with_layers(layers: &str) -> String {
    format!(
        "name = \"t\"\n\
         [input]\n\
         height = 28\n\
         width = 28\n\
         channels = 1\n\
         classes = 10\n\
         [data]\n\
         dataset = \"mnist\"\n\
         {layers}"
    )
}

fn invalid(text: &str) -> (usize, String, InvalidKind, String) {
    match ModelSpec::parse(text, "models/x.toml") {
        Err(e @ SpecError::Invalid { .. }) => {
            let shown = e.to_string();
            match e {
                SpecError::Invalid { line, key, kind, .. } => (line, key, kind, shown),
                _ => unreachable!(),
            }
        }
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn shipped_models_parse_and_digits_has_the_reference_architecture() {
    for name in MODELS {
        let spec = ModelSpec::from_path(&model_path(name)).unwrap_or_else(|e| panic!("models/{name}.toml: {e}"));
        assert_eq!(spec.name, *name);
        assert!(spec.warnings.is_empty(), "{name}: {:?}", spec.warnings);
        let shapes = spec.shapes().unwrap();
        assert_eq!(shapes.last().unwrap().output, TensorShape::Flat { len: 10 });
    }
    let digits = ModelSpec::from_path(&model_path("digits")).unwrap();
    let layers: Vec<Layer> = digits.layers.iter().map(|l| l.layer).collect();
    assert_eq!(
        layers,
        vec![
            Layer::Conv2d {
                filters: 32,
                kernel: [3, 3],
                stride: [1, 1],
                padding: Padding::Valid,
                activation: Activation::Relu
            },
            Layer::MaxPool2d { size: [2, 2], stride: [2, 2] },
            Layer::Conv2d {
                filters: 64,
                kernel: [3, 3],
                stride: [1, 1],
                padding: Padding::Valid,
                activation: Activation::Relu
            },
            Layer::MaxPool2d { size: [2, 2], stride: [2, 2] },
            Layer::Dropout { rate: 0.5 },
            Layer::Dense { units: 10, activation: Activation::None },
        ]
    );
    assert_eq!(digits.total_params().unwrap(), 34_826);
    assert_eq!(digits.total_macs().unwrap(), 2_440_960);
    let shapes = digits.shapes().unwrap();
    let outs: Vec<(usize, usize, usize)> = shapes.iter().map(|s| s.output.hwc()).collect();
    assert_eq!(outs, vec![(26, 26, 32), (13, 13, 32), (11, 11, 64), (5, 5, 64), (5, 5, 64), (1, 1, 10)]);
    assert_eq!(shapes[2].macs, 11 * 11 * 64 * 3 * 3 * 32);
    assert_eq!(shapes[5].params, 1600 * 10 + 10);
}

#[test]
fn defaults_are_filled_in() {
    let spec = ModelSpec::parse(
        "[data]\ndataset = \"fashion-mnist\"\n\
         [[layers]]\ntype = \"conv2d\"\nfilters = 4\nkernel = [3, 5]\n\
         [[layers]]\ntype = \"avgpool2d\"\nsize = [2, 3]\n\
         [[layers]]\ntype = \"dense\"\nunits = 16\n\
         [[layers]]\ntype = \"dense\"\nunits = 10\n",
        "some/dir/my-model.toml",
    )
    .unwrap();
    assert_eq!(spec.name, "my-model");
    assert_eq!(spec.data.dataset, Dataset::FashionMnist);
    assert_eq!(spec.data.validation, 0.1);
    assert_eq!(spec.data.train_limit, 0);
    assert_eq!((spec.input.height, spec.input.width, spec.input.classes), (28, 28, 10));
    assert_eq!(
        spec.layers[0].layer,
        Layer::Conv2d {
            filters: 4,
            kernel: [3, 5],
            stride: [1, 1],
            padding: Padding::Valid,
            activation: Activation::Relu
        }
    );
    assert_eq!(spec.layers[1].layer, Layer::AvgPool2d { size: [2, 3], stride: [2, 3] });
    // Hidden dense layers default to relu, the last one to none (logits).
    assert_eq!(spec.layers[2].layer, Layer::Dense { units: 16, activation: Activation::Relu });
    assert_eq!(spec.layers[3].layer, Layer::Dense { units: 10, activation: Activation::None });
    assert_eq!(spec.train.optimizer, Optimizer::Adam);
    assert_eq!(spec.train.learning_rate, 0.001);
    assert_eq!(spec.train.batch_size, 128);
    assert_eq!(spec.train.seed, 42);
    assert_eq!(spec.train.lr_schedule, LrSchedule::None);
    assert!(!spec.train.augment.is_enabled());
    assert_eq!(spec.quantize.precision, Precision::Int8);
    assert_eq!(spec.quantize.calibration, 1000);
    assert_eq!(spec.target.flash, None);
    // 26x24x4 conv, then a 2x3 pool floors to 13x8.
    let shapes = spec.shapes().unwrap();
    assert_eq!(shapes[1].output.hwc(), (13, 8, 4));
    assert_eq!(shapes[2].params, 13 * 8 * 4 * 16 + 16);
    assert_eq!(spec.layers[0].line, 3);
    assert_eq!(spec.layers[0].line_of("kernel"), 6);
}

#[test]
fn the_issue_example_parses() {
    let text = r#"
name = "digits"                 # optional; defaults to the file stem

[input]
height = 28
width = 28
channels = 1
classes = 10

[[layers]]                      # in order; a flatten before the first dense is implicit
type = "conv2d"
filters = 32
kernel = 3
stride = 1
padding = "valid"
activation = "relu"

[[layers]]
type = "maxpool2d"
size = 2
stride = 2

[[layers]]
type = "dropout"
rate = 0.5

[[layers]]
type = "dense"
units = 10
activation = "none"

[data]
dataset = "mnist"
validation = 0.1
train_limit = 0

[train]
optimizer = "adam"
learning_rate = 0.001
momentum = 0.9
nesterov = false
weight_decay = 0.0
batch_size = 128
epochs = 15
seed = 42
init = "he"
early_stopping = 0
lr_schedule = "none"
augment = { shift = 0, rotate = 0.0 }

[quantize]
precision = "int8"
calibration = 1000
method = "minmax"

[target]
flash = 262144
ram = 65536
macs = 5000000
"#;
    let spec = ModelSpec::parse(text, "example.toml").unwrap();
    assert_eq!(spec.train.epochs, 15);
    assert_eq!(spec.target.macs, Some(5_000_000));
    assert_eq!(spec.total_params().unwrap(), 320 + 13 * 13 * 32 * 10 + 10);
}

#[test]
fn same_padding_strides_and_inline_layer_arrays() {
    let spec = ModelSpec::parse(
        &format!(
            "{}[data]\ndataset = \"mnist\"\n",
            "layers = [\n\
             { type = \"conv2d\", filters = 8, kernel = 3, stride = 2, padding = \"same\", activation = \"relu6\" },\n\
             { type = \"conv2d\", filters = 8, kernel = 5, padding = \"same\" },\n\
             { type = \"maxpool2d\", size = 3, stride = 2 },\n\
             { type = \"flatten\" },\n\
             { type = \"dense\", units = 10 },\n\
             ]\n",
        ),
        "inline.toml",
    )
    .unwrap();
    let shapes = spec.shapes().unwrap();
    assert_eq!(shapes[0].output.hwc(), (14, 14, 8)); // ceil(28 / 2)
    assert_eq!(shapes[1].output.hwc(), (14, 14, 8));
    assert_eq!(shapes[1].macs, 14 * 14 * 8 * 5 * 5 * 8);
    assert_eq!(shapes[2].output.hwc(), (6, 6, 8)); // floor((14 - 3) / 2) + 1
    assert_eq!(shapes[3].output, TensorShape::Flat { len: 288 });
    assert_eq!(shapes[4].params, 2890);
}

#[test]
fn kernel_that_does_not_fit_names_key_line_and_sizes() {
    let text = with_layers(
        "[[layers]]\ntype = \"conv2d\"\nfilters = 8\nkernel = 5\n\
         [[layers]]\ntype = \"maxpool2d\"\nsize = 2\n\
         [[layers]]\ntype = \"conv2d\"\nfilters = 8\nkernel = 9\n\
         [[layers]]\ntype = \"conv2d\"\nfilters = 8\nkernel = 30\n\
         [[layers]]\ntype = \"dense\"\nunits = 10\n",
    );
    let (line, key, kind, shown) = invalid(&text);
    assert_eq!(key, "layers[3].kernel");
    assert_eq!(kind, InvalidKind::Inconsistent);
    assert_eq!(line, 23);
    assert!(
        shown.starts_with("models/x.toml:23: layers[3].kernel: 30x30 does not fit the 4x4 input of this layer"),
        "{shown}"
    );
}

#[test]
fn unknown_keys_are_errors_with_line_and_allowed_keys() {
    let text = with_layers(
        "[[layers]]\ntype = \"conv2d\"\nfilters = 8\nkernal = 3\n\
         [[layers]]\ntype = \"dense\"\nunits = 10\n",
    );
    let (line, key, kind, shown) = invalid(&text);
    assert_eq!((line, key.as_str(), kind), (12, "layers[0].kernal", InvalidKind::UnknownKey));
    assert!(shown.contains("did you mean `kernel`?"), "{shown}");
    assert!(shown.contains("type, name, inputs, filters, kernel, stride, padding, activation"), "{shown}");

    let (line, key, _, shown) =
        invalid(&format!("{}\n[trian]\nepochs = 3\n", with_layers("[[layers]]\ntype = \"dense\"\nunits = 10\n")));
    assert_eq!((line, key.as_str()), (13, "trian"));
    assert!(shown.contains("did you mean `train`?"), "{shown}");

    // A key of another layer type.
    let (_, key, kind, shown) = invalid(&with_layers("[[layers]]\ntype = \"dense\"\nunits = 10\nfilters = 3\n"));
    assert_eq!((key.as_str(), kind), ("layers[0].filters", InvalidKind::UnknownKey));
    assert!(shown.contains("for a dense layer"), "{shown}");

    let (_, key, _, _) = invalid(&format!(
        "{}[train]\naugment = {{ shift = 1, zoom = 2 }}\n",
        with_layers("[[layers]]\ntype = \"dense\"\nunits = 10\n")
    ));
    assert_eq!(key, "train.augment.zoom");
}

#[test]
fn wrong_types_and_values_say_what_is_allowed() {
    let dense = "[[layers]]\ntype = \"dense\"\nunits = 10\n";
    let cases: &[(&str, &str, InvalidKind, &str)] = &[
        (
            "[[layers]]\ntype = \"conv2d\"\nfilters = 8\nkernel = \"3\"\n",
            "layers[0].kernel",
            InvalidKind::WrongType,
            "expected an integer or [height, width], found a string",
        ),
        (
            "[[layers]]\ntype = \"conv2d\"\nfilters = 8\nkernel = [3, 3, 3]\n",
            "layers[0].kernel",
            InvalidKind::BadValue,
            "array of 3 elements",
        ),
        (
            "[[layers]]\ntype = \"conv2d\"\nfilters = 0\nkernel = 3\n",
            "layers[0].filters",
            InvalidKind::BadValue,
            "allowed: 1..=4096",
        ),
        (
            "[[layers]]\ntype = \"conv2d\"\nfilters = 8\nkernel = 3\npadding = \"full\"\n",
            "layers[0].padding",
            InvalidKind::BadValue,
            "`full` is not allowed; use one of: valid, same",
        ),
        (
            "[[layers]]\ntype = \"conv3d\"\n",
            "layers[0].type",
            InvalidKind::BadValue,
            "conv2d, maxpool2d, avgpool2d, dense, dropout, flatten",
        ),
        ("[[layers]]\ntype = \"dropout\"\nrate = 1.0\n", "layers[0].rate", InvalidKind::BadValue, "allowed: [0, 1)"),
        ("[[layers]]\ntype = \"conv2d\"\nkernel = 3\n", "layers[0].filters", InvalidKind::Missing, "missing"),
    ];
    for (layers, want_key, want_kind, want_text) in cases {
        let (_, key, kind, shown) = invalid(&with_layers(&format!("{layers}{dense}")));
        assert_eq!((key.as_str(), kind), (*want_key, *want_kind), "{shown}");
        assert!(shown.contains(want_text), "{shown}");
    }

    let train_cases: &[(&str, &str, &str)] = &[
        ("optimizer = \"rmsprop\"", "train.optimizer", "use one of: adam, adamw, sgd"),
        ("learning_rate = 0", "train.learning_rate", "allowed: (0, 10]"),
        ("learning_rate = \"fast\"", "train.learning_rate", "expected a number"),
        ("batch_size = -1", "train.batch_size", "allowed: 1..=65536"),
        ("init = \"lecun\"", "train.init", "use one of: he, glorot"),
        ("lr_schedule = \"exp\"", "train.lr_schedule", "none, step, plateau, cosine, one_cycle"),
        ("lr_schedule = { type = \"step\", patience = 2 }", "train.lr_schedule.patience", "type, step_size, gamma"),
        ("lr_schedule = { type = \"cosine\", min_lr = 0.5 }", "train.lr_schedule.min_lr", "allowed: [0, 0.001]"),
        ("lr_schedule = { type = \"cosine\", warmup = -1 }", "train.lr_schedule.warmup", "allowed: 0..=100000"),
        ("lr_schedule = { type = \"one_cycle\", pct_start = 1.0 }", "train.lr_schedule.pct_start", "allowed: (0, 1)"),
        ("lr_schedule = { type = \"one_cycle\", div_factor = 0.5 }", "train.lr_schedule.div_factor", "allowed: [1, "),
        (
            "lr_schedule = { type = \"one_cycle\", min_lr = 0.1 }",
            "train.lr_schedule.min_lr",
            "type, pct_start, div_factor, final_div_factor",
        ),
        ("augment = { shift = 15 }", "train.augment.shift", "allowed: 0..=14"),
        ("augment = { rotate = 200 }", "train.augment.rotate", "allowed: [0, 180]"),
        ("nesterov = \"yes\"", "train.nesterov", "expected true or false"),
    ];
    for (line, want_key, want_text) in train_cases {
        let (l, key, _, shown) = invalid(&format!("{}[train]\n{line}\n", with_layers(dense)));
        assert_eq!(key, *want_key, "{shown}");
        assert_eq!(l, 13, "{shown}");
        assert!(shown.contains(want_text), "{shown}");
    }
    let schedules = [
        (
            "lr_schedule = \"one_cycle\"",
            LrSchedule::OneCycle { pct_start: 0.3, div_factor: 25.0, final_div_factor: 1e4 },
        ),
        ("lr_schedule = { type = \"cosine\", warmup = 2 }", LrSchedule::Cosine { min_lr: 0.0, warmup: 2 }),
    ];
    for (line, want) in schedules {
        let spec = ModelSpec::parse(&format!("{}[train]\n{line}\n", with_layers(dense)), "t.toml").unwrap();
        assert_eq!(spec.train.lr_schedule, want);
    }
    let quantize_cases: &[(&str, &str, &str)] = &[
        ("[quantize]\nprecision = \"int4\"", "quantize.precision", "int8, f16, f32"),
        ("[quantize]\nmethod = \"kl\"", "quantize.method", "minmax, percentile, mse"),
        ("[quantize]\ncalibration = 0", "quantize.calibration", "allowed: 1..="),
        ("[target]\nflash = 0", "target.flash", "allowed: 1..="),
        ("[target]\nrom = 3", "target.rom", "flash, ram, macs"),
        ("[data]\nvalidation = 0.9", "data.validation", "allowed: [0, 0.5]"),
    ];
    for (section, want_key, want_text) in quantize_cases {
        let text = if section.starts_with("[data]") {
            format!(
                "[[layers]]\ntype = \"dense\"\nunits = 10\n[data]\ndataset = \"mnist\"\n{}\n",
                &section["[data]\n".len()..]
            )
        } else {
            format!("{}{section}\n", with_layers(dense))
        };
        let (_, key, _, shown) = invalid(&text);
        assert_eq!(key, *want_key, "{shown}");
        assert!(shown.contains(want_text), "{shown}");
    }
}

#[test]
fn classifier_head_and_layer_order_are_checked() {
    let (line, key, kind, shown) =
        invalid(&with_layers("[[layers]]\ntype = \"dense\"\nunits = 64\n[[layers]]\ntype = \"dense\"\nunits = 12\n"));
    assert_eq!((line, key.as_str(), kind), (14, "layers[1].units", InvalidKind::Inconsistent));
    assert!(shown.contains("input.classes = 10 units, not 12"), "{shown}");

    let (_, key, _, shown) = invalid(&with_layers("[[layers]]\ntype = \"dense\"\nunits = 10\nactivation = \"relu\"\n"));
    assert_eq!(key, "layers[0].activation");
    assert!(shown.contains("must be \"none\""), "{shown}");

    let (_, key, _, shown) =
        invalid(&with_layers("[[layers]]\ntype = \"dense\"\nunits = 10\n[[layers]]\ntype = \"dropout\"\nrate = 0.1\n"));
    assert_eq!(key, "layers[1].type");
    assert!(shown.contains("the last layer must be a dense layer"), "{shown}");

    let (_, key, _, shown) = invalid(&with_layers(
        "[[layers]]\ntype = \"dense\"\nunits = 32\n[[layers]]\ntype = \"conv2d\"\nfilters = 2\nkernel = 1\n[[layers]]\ntype = \"dense\"\nunits = 10\n",
    ));
    assert_eq!(key, "layers[1].type");
    assert!(shown.contains("needs a spatial input"), "{shown}");

    let (_, key, _, _) = invalid(&with_layers(
        "[[layers]]\ntype = \"maxpool2d\"\nsize = 29\n[[layers]]\ntype = \"dense\"\nunits = 10\n",
    ));
    assert_eq!(key, "layers[0].size");

    let (_, key, _, _) = invalid("layers = []\n[data]\ndataset = \"mnist\"\n");
    assert_eq!(key, "layers");
    // A top-level key written after a [table] header belongs to that table: say so.
    let (_, key, _, shown) = invalid(&with_layers("layers = [{ type = \"dense\", units = 10 }]\n"));
    assert_eq!(key, "data.layers");
    assert!(shown.contains("move it above the first [table] header"), "{shown}");
}

#[test]
fn cross_section_checks() {
    let dense = "[[layers]]\ntype = \"dense\"\nunits = 10\n";
    let (_, key, _, shown) = invalid(&format!("[input]\nheight = 32\n[data]\ndataset = \"mnist\"\n{dense}"));
    assert_eq!(key, "input.height");
    assert!(shown.contains("28x28x1 with 10 classes"), "{shown}");

    let (_, key, _, shown) =
        invalid(&format!("[data]\ndataset = \"mnist\"\nvalidation = 0\n{dense}[train]\nearly_stopping = 3\n"));
    assert_eq!(key, "train.early_stopping");
    assert!(shown.contains("data.validation > 0"), "{shown}");

    let (_, key, _, _) =
        invalid(&format!("[data]\ndataset = \"mnist\"\nvalidation = 0\n{dense}[train]\nlr_schedule = \"plateau\"\n"));
    assert_eq!(key, "train.lr_schedule");

    let (_, key, _, _) =
        invalid(&format!("{}[train]\noptimizer = \"sgd\"\nmomentum = 0\nnesterov = true\n", with_layers(dense)));
    assert_eq!(key, "train.nesterov");

    let (_, key, _, _) = invalid(&format!("[data]\ndataset = \"cifar\"\n{dense}"));
    assert_eq!(key, "data.dataset");
    let (_, key, kind, _) = invalid(dense);
    assert_eq!((key.as_str(), kind), ("data.dataset", InvalidKind::Missing));

    // Adam ignores Nesterov: a warning, not an error.
    let spec = ModelSpec::parse(&format!("{}[train]\nnesterov = true\n", with_layers(dense)), "w.toml").unwrap();
    assert_eq!(spec.warnings.len(), 1);
    assert!(spec.warnings[0].contains("train.nesterov has no effect"));
}

#[test]
fn syntax_errors_and_unreadable_files() {
    let err = ModelSpec::parse("[data]\ndataset = \"mnist\n", "bad.toml").unwrap_err();
    assert!(matches!(err, SpecError::Syntax { line: 2, .. }), "{err:?}");
    assert!(err.to_string().starts_with("bad.toml:2:"), "{err}");

    let err = ModelSpec::from_path(Path::new("/nonexistent/model.toml")).unwrap_err();
    assert!(matches!(err, SpecError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/model.toml"));

    let err = ModelSpec::parse(&with_layers("[[layers]]\ntype = \"dense\"\nunits = 10\n"), "<string>");
    assert!(err.is_ok());
    let (_, key, _, _) =
        invalid("name = \"has space\"\n[data]\ndataset = \"mnist\"\n[[layers]]\ntype = \"dense\"\nunits = 10\n");
    assert_eq!(key, "name");
}

#[test]
fn overrides_and_training_key() {
    let spec = ModelSpec::from_path(&model_path("digits")).unwrap();
    let o = spec.with_overrides(&Overrides { epochs: Some(1), train_limit: Some(3000), seed: Some(7) }).unwrap();
    assert_eq!((o.train.epochs, o.data.train_limit, o.train.seed), (1, 3000, 7));
    assert_eq!(spec.with_overrides(&Overrides::default()).unwrap(), spec);
    let err = spec.with_overrides(&Overrides { epochs: Some(0), ..Overrides::default() }).unwrap_err();
    assert_eq!(err.key(), Some("--epochs"));

    // Stable, canonical, and blind to name / quantize / target / line numbers.
    let key = spec.training_key_json();
    assert_eq!(key, spec.clone().training_key_json());
    assert!(key.starts_with("{\"key_version\":1,\"input\":{\"height\":28"), "{key}");
    let v: serde_json::Value = serde_json::from_str(&key).unwrap();
    assert!(v.get("quantize").is_none() && v.get("target").is_none() && v.get("name").is_none());
    let mut renamed = spec.clone();
    renamed.name = "other".into();
    renamed.quantize.calibration = 5;
    renamed.target.flash = Some(1);
    renamed.layers[0].line = 99;
    assert_eq!(renamed.training_key_json(), key);
    assert_ne!(o.training_key_json(), key);
    let mut lr = spec.clone();
    lr.train.learning_rate *= 2.0;
    assert_ne!(lr.training_key_json(), key);
}

/// Graphs: `name`, `inputs` and `add`, the shipped ResNet-8, and every graph error naming its key
/// and line.
mod graphs {
    use super::*;
    use mnistc::spec::InputRef;

    /// conv "a" (line 9), conv (line 14), add of the two (line 19), then the head.
    const RESIDUAL: &str = "[[layers]]\ntype = \"conv2d\"\nfilters = 4\nkernel = 3\nname = \"a\"\n\
         [[layers]]\ntype = \"conv2d\"\nfilters = 4\nkernel = 3\npadding = \"same\"\n\
         [[layers]]\ntype = \"add\"\ninputs = \"a\"\nactivation = \"relu\"\nname = \"sum\"\n\
         [[layers]]\ntype = \"dense\"\nunits = 10\n";

    #[test]
    fn a_residual_add_resolves_its_inputs_and_shapes() {
        let spec = ModelSpec::parse(&with_layers(RESIDUAL), "x").unwrap();
        assert_eq!(spec.inputs_of(0), [InputRef::Input]);
        assert_eq!(spec.inputs_of(1), [InputRef::Layer(0)]);
        // One name: added to the layer right before the add.
        assert_eq!(spec.inputs_of(2), [InputRef::Layer(1), InputRef::Layer(0)]);
        assert_eq!(spec.layers[2].layer, Layer::Add { activation: Activation::Relu });
        assert_eq!(spec.layers[2].name.as_deref(), Some("sum"));
        assert!(!spec.is_chain());
        let shapes = spec.shapes().unwrap();
        assert_eq!(shapes[2].output, TensorShape::Spatial { height: 26, width: 26, channels: 4 });
        assert_eq!((shapes[2].params, shapes[2].macs), (0, 0));
        // Two names, in either order, and the model input by its reserved name.
        let two = RESIDUAL
            .replace("inputs = \"a\"", "inputs = [\"a\", \"b\"]")
            .replace("padding = \"same\"\n", "padding = \"same\"\nname = \"b\"\n");
        let spec = ModelSpec::parse(&with_layers(&two), "x").unwrap();
        assert_eq!(spec.inputs_of(2), [InputRef::Layer(0), InputRef::Layer(1)]);
        // A chain's training key did not change when graphs came; a graph's names its inputs.
        let chain = ModelSpec::from_path(&model_path("digits")).unwrap();
        assert!(chain.is_chain());
        assert!(!chain.training_key_json().contains("inputs"));
        assert!(
            spec.training_key_json().contains("\"inputs\":[{\"layer\":0},{\"layer\":1}]"),
            "{}",
            spec.training_key_json()
        );
    }

    #[test]
    fn the_shipped_resnet8_is_the_mlperf_tiny_network() {
        let spec = ModelSpec::from_path(&model_path("cifar-resnet8")).unwrap();
        assert_eq!(spec.data.dataset, Dataset::Cifar10);
        let shapes = spec.shapes().unwrap();
        let adds: Vec<usize> = spec
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l.layer, Layer::Add { .. }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(adds.len(), 3);
        let out = |i: usize| shapes[i].output;
        let spatial = |h, c| TensorShape::Spatial { height: h, width: h, channels: c };
        assert_eq!([out(adds[0]), out(adds[1]), out(adds[2])], [spatial(32, 16), spatial(16, 32), spatial(8, 64)]);
        // Identity shortcut in stack 1, 1x1/2 convs in stacks 2 and 3.
        assert_eq!(spec.inputs_of(adds[0])[1], InputRef::Layer(1));
        for &a in &adds[1..] {
            let InputRef::Layer(shortcut) = spec.inputs_of(a)[1] else { panic!() };
            assert!(matches!(
                spec.layers[shortcut].layer,
                Layer::Conv2d { kernel: [1, 1], stride: [2, 2], activation: Activation::None, .. }
            ));
        }
        // Keras counts 78,666 parameters for the reference, its batchnorms' 480 running statistics
        // included; ours leaves those out. MACs: 12.5 M, as MLPerf Tiny quotes.
        assert_eq!(spec.total_params().unwrap(), 78_186);
        assert_eq!(spec.total_macs().unwrap(), 12_501_632);
    }

    #[test]
    fn graph_errors_name_the_key_and_line() {
        let bad = |from: &str, to: &str| invalid(&with_layers(&RESIDUAL.replace(from, to)));
        // Unknown name, with the closest suggested and the names listed.
        let (line, key, kind, msg) = bad("inputs = \"a\"", "inputs = \"sun\"");
        assert_eq!((line, key.as_str(), kind), (21, "layers[2].inputs", InvalidKind::BadValue));
        assert!(msg.contains("no layer is named `sun`; did you mean `sum`? named layers: a, sum"), "{msg}");
        // A later layer that leads back here: a cycle, with its path.
        let (line, key, _, msg) =
            bad("filters = 4\nkernel = 3\npadding", "filters = 4\nkernel = 3\ninputs = \"sum\"\npadding");
        assert_eq!((line, key.as_str()), (18, "layers[1].inputs"));
        assert!(msg.contains("`sum` (layers[2]) -> layers[1] -> `sum` (layers[2])"), "{msg}");
        assert!(msg.contains("the inputs form a cycle"), "{msg}");
        // Mismatched shapes at an add: both named with their shapes.
        let (line, key, kind, msg) = bad("padding = \"same\"\n", "padding = \"valid\"\n");
        assert_eq!((line, key.as_str(), kind), (21, "layers[2].inputs", InvalidKind::Inconsistent));
        assert!(msg.contains("(26, 26, 4)") && msg.contains("(24, 24, 4)"), "{msg}");
        // A duplicate name, the reserved one, and an add without inputs.
        let (line, _, _, msg) = bad("name = \"sum\"", "name = \"a\"");
        assert_eq!(line, 23);
        assert!(msg.contains("already used by layers[0] (line 13)"), "{msg}");
        let (_, _, _, msg) = bad("name = \"sum\"", "name = \"input\"");
        assert!(msg.contains("reserved") || msg.contains("names the model's input"), "{msg}");
        let (line, key, kind, _) = bad("inputs = \"a\"\n", "");
        assert_eq!((line, key.as_str(), kind), (19, "layers[2].inputs", InvalidKind::Missing));
        // Three inputs; a dead branch; inputs on a batchnorm.
        let (_, _, _, msg) = bad("inputs = \"a\"", "inputs = [\"a\", \"a\", \"a\"]");
        assert!(msg.contains("3 inputs given"), "{msg}");
        let (line, key, _, msg) = bad("[[layers]]\ntype = \"dense\"", "[[layers]]\ntype = \"dense\"\ninputs = \"a\"");
        assert_eq!((line, key.as_str()), (19, "layers[2].type"));
        assert!(msg.contains("never used"), "{msg}");
        let (_, key, _, _) = bad(
            "[[layers]]\ntype = \"add\"",
            "[[layers]]\ntype = \"batchnorm\"\ninputs = \"a\"\n[[layers]]\ntype = \"add\"",
        );
        assert_eq!(key, "layers[2].inputs");
    }

    #[test]
    fn a_batchnormed_layer_is_read_through_its_batchnorm() {
        let text = with_layers(
            "[[layers]]\ntype = \"conv2d\"\nfilters = 4\nkernel = 3\nname = \"raw\"\n\
             [[layers]]\ntype = \"batchnorm\"\nname = \"normed\"\n\
             [[layers]]\ntype = \"conv2d\"\nfilters = 4\nkernel = 3\npadding = \"same\"\n\
             [[layers]]\ntype = \"add\"\ninputs = \"raw\"\n\
             [[layers]]\ntype = \"dense\"\nunits = 10\n",
        );
        let (line, key, _, msg) = invalid(&text);
        assert_eq!((line, key.as_str()), (24, "layers[3].inputs"));
        assert!(msg.contains("normalized by the batchnorm"), "{msg}");
        ModelSpec::parse(&text.replace("inputs = \"raw\"", "inputs = \"normed\""), "x").unwrap();
    }
}

#[test]
fn an_ensemble_names_its_members_trainings_and_keeps_the_first_members_key() {
    let digits = std::fs::read_to_string(model_path("digits")).unwrap();
    let single = ModelSpec::parse(&digits, "models/digits.toml").unwrap();
    assert!(single.ensemble.is_none());
    let text = format!(
        "{digits}\n[ensemble]\nmembers = 4\n\n[[ensemble.member]]\nlearning_rate = 0.001\n\n\
         [[ensemble.member]]\nseed = 7\noptimizer = \"sgd\"\n"
    );
    let spec = ModelSpec::parse(&text, "models/digits.toml").unwrap();
    let members = &spec.ensemble.as_ref().unwrap().members;
    assert_eq!(members.len(), 4);
    assert_eq!(members[0], single.train);
    // Member 2: [train] with its own learning rate and the next seed; member 3: its own seed
    // and optimizer; member 4: [train] with seed + 3.
    assert_eq!((members[1].seed, members[1].learning_rate, members[1].optimizer), (43, 0.001, Optimizer::Adam));
    assert_eq!(members[1].lr_schedule, single.train.lr_schedule);
    assert_eq!((members[2].seed, members[2].optimizer, members[2].learning_rate), (7, Optimizer::Sgd, 0.002));
    assert_eq!(members[3], mnistc::spec::TrainSpec { seed: 45, ..single.train });
    // Each member is a spec of its own; the first is the file without [ensemble], so it shares
    // the single network's cached training, while the ensemble's key differs.
    let specs = spec.members();
    assert_eq!(specs.len(), 4);
    assert_eq!(specs[0].training_key_json(), single.training_key_json());
    assert_eq!((specs[0].name.as_str(), specs[3].name.as_str()), ("digits-member1", "digits-member4"));
    assert!(specs.iter().all(|s| s.ensemble.is_none()));
    assert_ne!(spec.training_key_json(), single.training_key_json());
    // --seed moves every member; --members keeps the first members and adds more.
    let moved = spec.with_overrides(&Overrides { seed: Some(100), ..Overrides::default() }).unwrap();
    let seeds: Vec<u64> = moved.ensemble.unwrap().members.iter().map(|m| m.seed).collect();
    assert_eq!(seeds, [100, 101, 102, 103]);
    let five = single.with_members(5);
    let seeds: Vec<u64> = five.ensemble.as_ref().unwrap().members.iter().map(|m| m.seed).collect();
    assert_eq!(seeds, [42, 43, 44, 45, 46]);
    assert_eq!(five.with_members(1), single);
    assert_eq!(spec.with_members(2).ensemble.unwrap().members, members[..2]);
}

#[test]
fn ensemble_errors_name_the_key_and_line() {
    let digits = std::fs::read_to_string(model_path("digits")).unwrap();
    let base = digits.lines().count() + 2; // the [ensemble] header's line
    let (line, key, kind, _) = invalid(&format!("{digits}\n[ensemble]\nmembers = 1\n"));
    assert_eq!((line, key.as_str(), kind), (base + 1, "ensemble.members", InvalidKind::BadValue));
    let (line, key, _, shown) = invalid(&format!("{digits}\n[ensemble]\nmembrs = 3\n"));
    assert_eq!((line, key.as_str()), (base + 1, "ensemble.membrs"));
    assert!(shown.contains("did you mean `members`?"), "{shown}");
    let (_, key, kind, _) = invalid(&format!("{digits}\n[ensemble]\n"));
    assert_eq!((key.as_str(), kind), ("ensemble.members", InvalidKind::Missing));
    let text =
        format!("{digits}\n[ensemble]\nmembers = 2\n[[ensemble.member]]\nseed = 1\n[[ensemble.member]]\nseed = 2\n");
    let (_, key, kind, shown) = invalid(&text);
    assert_eq!((key.as_str(), kind), ("ensemble.member", InvalidKind::Inconsistent));
    assert!(shown.contains("at most 1"), "{shown}");
    let text = format!("{digits}\n[ensemble]\nmembers = 2\n[[ensemble.member]]\nlearning_rat = 0.1\n");
    let (line, key, kind, _) = invalid(&text);
    assert_eq!((line, key.as_str(), kind), (base + 3, "ensemble.member[0].learning_rat", InvalidKind::UnknownKey));
    let text = format!("{digits}\n[ensemble]\nmembers = 2\n[[ensemble.member]]\nepochs = 0\n");
    let (line, key, _, _) = invalid(&text);
    assert_eq!((line, key.as_str()), (base + 3, "ensemble.member[0].epochs"));
}

#[test]
fn an_svm_head_reads_its_keys_and_leaves_the_training_key_alone() {
    use mnistc::spec::{HeadSpec, SvmHeadSpec};
    let digits = std::fs::read_to_string(model_path("digits")).unwrap();
    let single = ModelSpec::parse(&digits, "models/digits.toml").unwrap();
    assert_eq!(single.head, HeadSpec::Softmax);
    let spec = ModelSpec::parse(&format!("{digits}\n[head]\ntype = \"svm\"\n"), "models/digits.toml").unwrap();
    // Defaults: 32 components (of digits' 1,600 features), 4,000 images, four C values.
    assert_eq!(spec.head, HeadSpec::Svm(SvmHeadSpec { pca: 32, samples: 4000, c: vec![0.01, 0.1, 1.0, 10.0] }));
    // The network trains the same with either head: one training key, one cached training.
    assert_eq!(spec.training_key_json(), single.training_key_json());
    let spec =
        ModelSpec::parse(&format!("{digits}\n[head]\ntype = \"svm\"\npca = 1600\nsamples = 500\nc = 0.5\n"), "x")
            .unwrap();
    assert_eq!(spec.head, HeadSpec::Svm(SvmHeadSpec { pca: 1600, samples: 500, c: vec![0.5] }));
    let shipped = ModelSpec::from_path(&model_path("digits-svm")).unwrap();
    assert_eq!(shipped.head, HeadSpec::Svm(SvmHeadSpec { pca: 128, samples: 4000, c: vec![0.001, 0.003, 0.01] }));
    assert_eq!(shipped.training_key_json(), single.training_key_json());
    assert_eq!(
        ModelSpec::parse(&format!("{digits}\n[head]\ntype = \"softmax\"\n"), "x").unwrap().head,
        HeadSpec::Softmax
    );
}

#[test]
fn svm_head_errors_name_the_key_and_line() {
    let digits = std::fs::read_to_string(model_path("digits")).unwrap();
    let base = digits.lines().count() + 2; // the [head] header's line
    let (line, key, kind, shown) = invalid(&format!("{digits}\n[head]\ntype = \"svm\"\npca = 1601\n"));
    assert_eq!((line, key.as_str(), kind), (base + 2, "head.pca", InvalidKind::BadValue));
    assert!(shown.contains("1600"), "{shown}");
    let (line, key, kind, _) = invalid(&format!("{digits}\n[head]\ntype = \"svn\"\n"));
    assert_eq!((line, key.as_str(), kind), (base + 1, "head.type", InvalidKind::BadValue));
    let (_, key, kind, _) = invalid(&format!("{digits}\n[head]\ntype = \"svm\"\nc = [0.1, -1.0]\n"));
    assert_eq!((key.as_str(), kind), ("head.c[1]", InvalidKind::BadValue));
    let (_, key, _, _) = invalid(&format!("{digits}\n[head]\ntype = \"svm\"\nc = []\n"));
    assert_eq!(key, "head.c");
    let (_, key, _, _) = invalid(&format!("{digits}\n[head]\ntype = \"svm\"\nsamples = 20000\n"));
    assert_eq!(key, "head.samples");
    let (_, key, kind, _) = invalid(&format!("{digits}\n[head]\ntype = \"svm\"\nkernel = \"rbf\"\n"));
    assert_eq!((key.as_str(), kind), ("head.kernel", InvalidKind::UnknownKey));
    // The softmax head has no SVM keys.
    let (_, key, _, shown) = invalid(&format!("{digits}\n[head]\npca = 8\n"));
    assert_eq!(key, "head.pca");
    assert!(shown.contains("svm"), "{shown}");
    // The head replaces a dense layer that reads a hidden layer, not the image.
    let one_layer = with_layers("[[layers]]\ntype = \"dense\"\nunits = 10\n[head]\ntype = \"svm\"\n");
    let (_, key, kind, shown) = invalid(&one_layer);
    assert_eq!((key.as_str(), kind), ("head.type", InvalidKind::Inconsistent));
    assert!(shown.contains("reading the output of another layer"), "{shown}");
}
