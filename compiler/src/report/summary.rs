//! `mnistc summary`: a Keras-style table of layers, output shapes, parameters and MACs.

use std::fmt::Write as _;

use serde::Serialize;

use crate::spec::{Activation, InputRef, Layer, LayerShape, ModelSpec, Padding, SpecError};

/// The summary of a model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Model name.
    pub name: String,
    /// Source of the description.
    pub origin: String,
    /// Dataset name.
    pub dataset: String,
    /// `(height, width, channels)` of the input.
    pub input: (usize, usize, usize),
    /// Number of classes.
    pub classes: usize,
    /// Per-layer shapes and costs.
    pub layers: Vec<LayerShape>,
    /// Per layer its `name`, if it has one.
    pub names: Vec<Option<String>>,
    /// Whether every layer reads the one before it (then the table has no graph columns).
    pub chain: bool,
    /// Per layer whether it is frozen (`freeze`).
    pub frozen: Vec<bool>,
    /// `[init] from`, if any.
    pub init_from: Option<String>,
    /// Sum of parameters.
    pub total_params: usize,
    /// Parameters of the layers that are not frozen.
    pub trainable_params: usize,
    /// Sum of MACs.
    pub total_macs: u64,
    /// An `[ensemble]`'s members' seeds, in order (empty for one network).
    pub member_seeds: Vec<u64>,
    /// `[head]`.
    pub head: crate::spec::HeadSpec,
}

/// Summarizes a model.
///
/// # Errors
/// Only for a spec modified into an inconsistent state after parsing.
pub fn summarize(spec: &ModelSpec) -> Result<Summary, SpecError> {
    let layers = spec.shapes()?;
    Ok(Summary {
        name: spec.name.clone(),
        origin: spec.origin.clone(),
        dataset: spec.data.dataset.name().to_string(),
        input: (spec.input.height, spec.input.width, spec.input.channels),
        classes: spec.input.classes,
        total_params: layers.iter().map(|l| l.params).sum(),
        trainable_params: layers.iter().zip(&spec.layers).filter(|(_, s)| !s.freeze).map(|(l, _)| l.params).sum(),
        frozen: spec.layers.iter().map(|l| l.freeze).collect(),
        init_from: spec.init.as_ref().map(|i| i.from.display().to_string()),
        total_macs: layers.iter().map(|l| l.macs).sum(),
        layers,
        names: spec.layers.iter().map(|l| l.name.clone()).collect(),
        chain: spec.is_chain(),
        member_seeds: spec.ensemble.as_ref().map_or_else(Vec::new, |e| e.members.iter().map(|m| m.seed).collect()),
        head: spec.head.clone(),
    })
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pair(p: [usize; 2]) -> String {
    format!("{}x{}", p[0], p[1])
}

fn act(a: Activation) -> String {
    match a {
        Activation::None => String::new(),
        other => format!(", {}", other.name()),
    }
}

/// Short description of a layer: `conv2d 32 3x3 valid, relu`.
pub fn describe(layer: &Layer) -> String {
    match *layer {
        Layer::Conv2d { filters, kernel, stride, padding, activation } => {
            let stride = if stride == [1, 1] { String::new() } else { format!("/{}", pair(stride)) };
            let padding = match padding {
                Padding::Valid => "valid",
                Padding::Same => "same",
            };
            format!("conv2d {filters} {}{stride} {padding}{}", pair(kernel), act(activation))
        }
        Layer::DepthwiseConv2d { kernel, stride, padding, activation } => {
            let stride = if stride == [1, 1] { String::new() } else { format!("/{}", pair(stride)) };
            let padding = match padding {
                Padding::Valid => "valid",
                Padding::Same => "same",
            };
            format!("depthwise_conv2d {}{stride} {padding}{}", pair(kernel), act(activation))
        }
        Layer::MaxPool2d { size, stride } | Layer::AvgPool2d { size, stride } => {
            format!("{} {}/{}", layer.type_name(), pair(size), pair(stride))
        }
        Layer::Dense { units, activation } => format!("dense {units}{}", act(activation)),
        Layer::Dropout { rate } => format!("dropout {rate}"),
        Layer::Flatten => "flatten".to_string(),
        Layer::BatchNorm { activation, .. } => format!("batchnorm{}", act(activation)),
        Layer::GlobalAvgPool => "global_avgpool".to_string(),
        Layer::Add { activation } => format!("add{}", act(activation)),
    }
}

impl Summary {
    /// How the table names a layer's input: `input`, the layer's name, or `#j`.
    fn source_label(&self, source: InputRef) -> String {
        match source {
            InputRef::Input => "input".to_string(),
            InputRef::Layer(j) => match self.names.get(j).and_then(Option::as_deref) {
                Some(name) => name.to_string(),
                None => format!("#{j}"),
            },
        }
    }

    /// The table as text. A graph (a model with an `add` or `inputs`) gets two more columns:
    /// each layer's name and what it is connected to (its inputs), as Keras shows functional
    /// models.
    pub fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .layers
            .iter()
            .map(|l| {
                let mut row = vec![l.index.to_string()];
                if !self.chain {
                    row.push(self.names.get(l.index).cloned().flatten().unwrap_or_default());
                }
                let frozen = if self.frozen.get(l.index) == Some(&true) { " (frozen)" } else { "" };
                let text = format!("{}{frozen}", describe(&l.layer));
                row.extend([text, l.output.display(), thousands(l.params as u64), thousands(l.macs)]);
                if !self.chain {
                    let inputs: Vec<String> = l.inputs.iter().map(|&s| self.source_label(s)).collect();
                    row.push(inputs.join(", "));
                }
                row
            })
            .collect();
        let mut head = vec!["#", "Layer", "Output shape", "Params", "MACs"];
        // Numbers right-aligned, text left.
        let mut right = vec![true, false, false, true, true];
        if !self.chain {
            head.insert(1, "Name");
            right.insert(1, false);
            head.push("Connected to");
            right.push(false);
        }
        let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        let total_w = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
        let line = |out: &mut String, r: &[String]| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .zip(&right)
                .map(|((c, &w), &right)| if right { format!("{c:>w$}") } else { format!("{c:<w$}") })
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        };
        let (h, w, c) = self.input;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Model: {} ({}), dataset {}, input ({h}, {w}, {c}), {} classes",
            self.name, self.origin, self.dataset, self.classes
        );
        let _ = writeln!(out, "{}", "=".repeat(total_w));
        line(&mut out, &head.iter().map(|h| h.to_string()).collect::<Vec<_>>());
        let _ = writeln!(out, "{}", "-".repeat(total_w));
        for r in &rows {
            line(&mut out, r);
        }
        let _ = writeln!(out, "{}", "=".repeat(total_w));
        let p = self.total_params as f64;
        let _ = writeln!(
            out,
            "Total params: {} ({:.1} KiB as f32, {:.1} KiB as int8)",
            thousands(self.total_params as u64),
            p * 4.0 / 1024.0,
            p / 1024.0
        );
        if self.trainable_params != self.total_params {
            let _ = writeln!(out, "Trainable:    {}", thousands(self.trainable_params as u64));
        }
        if let Some(from) = &self.init_from {
            let _ = writeln!(out, "Starts from:  {from}");
        }
        let _ = writeln!(out, "Total MACs:   {}", thousands(self.total_macs));
        if let crate::spec::HeadSpec::Svm(h) = &self.head {
            let cs: Vec<String> = h.c.iter().map(f64::to_string).collect();
            let _ = writeln!(
                out,
                "Head:         SVM in place of the last dense layer: standardization, PCA {}, linear SVM per \
                 class (C from {}), fitted on {} training images' features",
                h.pca,
                cs.join(", "),
                h.samples
            );
        }
        let n = self.member_seeds.len();
        if n > 1 {
            let seeds: Vec<String> = self.member_seeds.iter().map(u64::to_string).collect();
            let _ = writeln!(
                out,
                "Ensemble:     {n} networks as above (seeds {}), logits averaged: {} params, {} MACs \
                 and {} adds of {} logits in all",
                seeds.join(", "),
                thousands((n * self.total_params) as u64),
                thousands(n as u64 * self.total_macs),
                n - 1,
                self.classes
            );
        }
        out
    }

    /// The summary as JSON (`layers[]` with `index`, `name` (or null), `type`, `description`,
    /// `inputs` (`"input"` or a layer index), `input`, `output`, `params`, `macs`;
    /// `total_params`, `total_macs`).
    pub fn to_json(&self) -> serde_json::Value {
        let layers: Vec<serde_json::Value> = self
            .layers
            .iter()
            .map(|l| {
                let inputs: Vec<serde_json::Value> = l
                    .inputs
                    .iter()
                    .map(|s| match s {
                        InputRef::Input => serde_json::json!("input"),
                        InputRef::Layer(j) => serde_json::json!(j),
                    })
                    .collect();
                serde_json::json!({
                    "index": l.index,
                    "name": self.names.get(l.index).cloned().flatten(),
                    "inputs": inputs,
                    "type": l.layer.type_name(),
                    "description": describe(&l.layer),
                    "frozen": self.frozen.get(l.index) == Some(&true),
                    "layer": l.layer,
                    "input": l.input,
                    "output": l.output,
                    "params": l.params,
                    "macs": l.macs,
                })
            })
            .collect();
        serde_json::json!({
            "name": self.name,
            "origin": self.origin,
            "dataset": self.dataset,
            "input": { "height": self.input.0, "width": self.input.1, "channels": self.input.2 },
            "classes": self.classes,
            "layers": layers,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "init_from": self.init_from,
            "total_macs": self.total_macs,
            "head": self.head,
            "ensemble": (self.member_seeds.len() > 1).then(|| serde_json::json!({
                "members": self.member_seeds.len(),
                "seeds": self.member_seeds,
                "total_params": self.member_seeds.len() * self.total_params,
                "total_macs": self.member_seeds.len() as u64 * self.total_macs,
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(2_440_960), "2,440,960");
    }
}
