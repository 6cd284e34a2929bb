//! A candidate's `model.toml` text: the base model with the sampled layers and training
//! hyper-parameters, every key written out (canonical form). Parsing it with
//! [`ModelSpec::parse`](crate::spec::ModelSpec::parse) validates the candidate, and the same text
//! becomes `best.toml`.

use std::fmt::Write as _;

use super::space::{OptimizerChoice, Params, PoolChoice, SearchSpace};
use crate::spec::{CalibrationMethod, Init, LrSchedule, Padding, Precision};

/// A float as TOML: the shortest text that reads back to the same `f64`, always with a `.` or
/// an exponent so that it stays a float.
pub fn float(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains(['.', 'e', 'E']) { s } else { format!("{s}.0") }
}

/// The model description of candidate `name` with `params`. Epochs and `train_limit` are the
/// base's (the full training `best.toml` asks for); a trial overrides them.
pub fn render(space: &SearchSpace, name: &str, params: &Params) -> String {
    let base = &space.base;
    let mut s = String::new();
    // `writeln!` into a String cannot fail.
    let _ = writeln!(s, "name = \"{name}\"");
    let _ = writeln!(
        s,
        "\n[input]\nheight = {}\nwidth = {}\nchannels = {}\nclasses = {}",
        base.input.height, base.input.width, base.input.channels, base.input.classes
    );
    for conv in &params.conv {
        let padding = match conv.padding {
            Padding::Valid => "valid",
            Padding::Same => "same",
        };
        let _ = writeln!(
            s,
            "\n[[layers]]\ntype = \"conv2d\"\nfilters = {}\nkernel = {}\nstride = {}\npadding = \"{padding}\"\n\
             activation = \"relu\"",
            conv.filters, conv.kernel, conv.stride
        );
        match conv.pool {
            PoolChoice::Max => s.push_str("\n[[layers]]\ntype = \"maxpool2d\"\nsize = 2\n"),
            PoolChoice::Avg => s.push_str("\n[[layers]]\ntype = \"avgpool2d\"\nsize = 2\n"),
            PoolChoice::None => {}
        }
    }
    let dropout = |s: &mut String| {
        if params.dropout > 0.0 {
            let _ = writeln!(s, "\n[[layers]]\ntype = \"dropout\"\nrate = {}", float(params.dropout));
        }
    };
    if !params.conv.is_empty() {
        dropout(&mut s);
    } else {
        s.push_str("\n[[layers]]\ntype = \"flatten\"\n");
    }
    for units in &params.dense {
        let _ = writeln!(s, "\n[[layers]]\ntype = \"dense\"\nunits = {units}\nactivation = \"relu\"");
        dropout(&mut s);
    }
    let _ = writeln!(s, "\n[[layers]]\ntype = \"dense\"\nunits = {}\nactivation = \"none\"", base.input.classes);

    let _ = writeln!(
        s,
        "\n[data]\ndataset = \"{}\"\nvalidation = {}\ntrain_limit = {}",
        base.data.dataset.name(),
        float(base.data.validation),
        base.data.train_limit
    );

    let t = &base.train;
    let (optimizer, nesterov) = match params.optimizer {
        OptimizerChoice::Adam => ("adam", false),
        OptimizerChoice::Adamw => ("adamw", false),
        OptimizerChoice::Sgd => ("sgd", false),
        OptimizerChoice::SgdNesterov => ("sgd", true),
    };
    let init = match t.init {
        Init::He => "he",
        Init::Glorot => "glorot",
    };
    let schedule = match t.lr_schedule {
        LrSchedule::None => "\"none\"".to_string(),
        LrSchedule::Step { step_size, gamma } => {
            format!("{{ type = \"step\", step_size = {step_size}, gamma = {} }}", float(gamma))
        }
        LrSchedule::Plateau { patience, factor, min_lr } => format!(
            "{{ type = \"plateau\", patience = {patience}, factor = {}, min_lr = {} }}",
            float(factor),
            float(min_lr)
        ),
        LrSchedule::Cosine { min_lr } => format!("{{ type = \"cosine\", min_lr = {} }}", float(min_lr)),
    };
    let _ = writeln!(
        s,
        "\n[train]\noptimizer = \"{optimizer}\"\nlearning_rate = {}\nmomentum = {}\nnesterov = {nesterov}\n\
         weight_decay = {}\nbatch_size = {}\nepochs = {}\nseed = {}\ninit = \"{init}\"\nearly_stopping = {}\n\
         lr_schedule = {schedule}\naugment = {{ shift = {}, rotate = {} }}\nlabel_smoothing = {}",
        float(params.learning_rate),
        float(t.momentum),
        float(t.weight_decay),
        params.batch_size,
        t.epochs,
        space.seed,
        t.early_stopping,
        t.augment.shift,
        float(t.augment.rotate),
        float(t.label_smoothing),
    );

    let q = &base.quantize;
    let precision = match q.precision {
        Precision::Int8 => "int8",
        Precision::F16 => "f16",
        Precision::F32 => "f32",
    };
    let method = match q.method {
        CalibrationMethod::MinMax => "minmax",
        CalibrationMethod::Percentile => "percentile",
        CalibrationMethod::Mse => "mse",
    };
    let _ = writeln!(
        s,
        "\n[quantize]\nprecision = \"{precision}\"\ncalibration = {}\nmethod = \"{method}\"",
        q.calibration
    );

    let target = &space.target;
    if target.flash.is_some() || target.ram.is_some() || target.macs.is_some() {
        s.push_str("\n[target]\n");
        for (key, value) in [("flash", target.flash), ("ram", target.ram), ("macs", target.macs)] {
            if let Some(v) = value {
                let _ = writeln!(s, "{key} = {v}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::float;

    #[test]
    fn floats_stay_floats_and_round_trip() {
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(0.001), "0.001");
        assert_eq!(float(1e-5), "1e-5");
        for v in [0.1, 0.25, 1e-5, 0.002, 8.0, 1.0 / 3.0] {
            let back: f64 = float(v).parse().unwrap();
            assert_eq!(back, v);
        }
    }
}
