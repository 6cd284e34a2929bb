//! The build report, as JSON (`OUT.report.json`, also `mnistc build --json`) and as readable
//! markdown (`OUT.report.md`): summary, float and on-device accuracy, confusion matrix,
//! classification report, flash and arena bytes, MACs.

use std::path::Path;

use serde_json::{Value, json};

use crate::pipeline::Built;
use crate::report::inspect::Inspection;
use crate::report::metrics::Evaluation;
use crate::report::summary;

/// The files a build wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Files<'a> {
    /// The blob.
    pub blob: &'a Path,
    /// The ONNX model.
    pub onnx: &'a Path,
    /// This report as JSON.
    pub report_json: &'a Path,
    /// This report as markdown.
    pub report_md: &'a Path,
}

/// The JSON report.
pub fn to_json(built: &Built, inspection: &Inspection, files: &Files<'_>) -> Value {
    let spec = &built.spec;
    json!({
        "model": spec.name,
        "origin": spec.origin,
        "dataset": spec.data.dataset.name(),
        "precision": inspection.precision,
        "files": files,
        "flash_bytes": built.footprint.flash_bytes,
        "arena_bytes": built.footprint.arena_bytes,
        "macs": built.footprint.macs,
        "params": inspection.params,
        "weight_bytes": inspection.weight_bytes,
        "overhead_bytes": inspection.overhead_bytes,
        "float": built.float_eval.to_json(),
        "device": built.device_eval.to_json(),
        "float_accuracy": built.float_eval.accuracy,
        "device_accuracy": built.device_eval.accuracy,
        "accuracy_drop": built.float_eval.accuracy - built.device_eval.accuracy,
        "training": built.training,
        "calibration": {
            "method": spec.quantize.method,
            "images": built.calibration_images,
        },
        "target": spec.target,
        "summary": summary::summarize(spec).map(|s| s.to_json()).unwrap_or(Value::Null),
        "plan": inspection,
    })
}

fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}

fn evaluation_md(title: &str, e: &Evaluation) -> String {
    format!(
        "### {title}: {} ({} of {})\n\nConfusion matrix (rows: true class, columns: predicted):\n\n```\n{}```\n\n```\n{}```\n\n",
        pct(e.accuracy),
        e.correct,
        e.samples,
        e.render_confusion(),
        e.render_report()
    )
}

/// The markdown report.
pub fn to_markdown(built: &Built, inspection: &Inspection, files: &Files<'_>) -> String {
    let spec = &built.spec;
    let t = &built.training;
    let mut s = format!("# {}: build report\n\n", spec.name);
    s.push_str(&format!(
        "| | |\n|---|---|\n| model | `{}` |\n| data set | {} |\n| precision | {} |\n| float test accuracy | {} |\n| on-device test accuracy | {} |\n| flash (blob) | {} bytes ({} weights and biases, {} overhead) |\n| arena (RAM) | {} bytes |\n| MACs per inference | {} |\n| parameters | {} |\n| training | {} epochs, {:.1} s{} |\n| blob | `{}` |\n| ONNX | `{}` |\n\n",
        spec.origin,
        spec.data.dataset.name(),
        inspection.precision,
        pct(built.float_eval.accuracy),
        pct(built.device_eval.accuracy),
        inspection.flash_bytes,
        inspection.weight_bytes,
        inspection.overhead_bytes,
        inspection.arena_bytes,
        inspection.macs,
        inspection.params,
        t.epochs,
        t.seconds,
        if t.cached { " (reused from the cache)" } else { "" },
        files.blob.display(),
        files.onnx.display(),
    ));
    if let Ok(summary) = summary::summarize(spec) {
        s.push_str(&format!("## Model\n\n```\n{}```\n\n", summary.render()));
    }
    s.push_str(&format!("## Lowered plan\n\n```\n{}```\n\n## Accuracy\n\n", inspection.render()));
    s.push_str(&evaluation_md("Float model", &built.float_eval));
    s.push_str(&evaluation_md("On device (the blob, run by mnistc-runtime)", &built.device_eval));
    s
}
