//! The build report, as JSON (`OUT.report.json`, also `mnistc build --json`), as readable
//! markdown (`OUT.report.md`, with its pictures beside it) and as one self-contained HTML page
//! (`OUT.report.html`, pictures inlined): summary, training curves, float and on-device
//! accuracy, confusion matrix and heat map, classification report, the most confident
//! mistakes, flash and arena bytes, MACs.

use std::path::Path;

use serde_json::{Value, json};

use crate::pipeline::Built;
use crate::report::confusion_map::ConfusionMap;
use crate::report::curves::Curves;
use crate::report::inspect::Inspection;
use crate::report::metrics::Evaluation;
use crate::report::mistakes::MistakeGrid;
use crate::report::picture::{self, PictureError};
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
    /// This report as one HTML page.
    pub report_html: &'a Path,
    /// The training curves as PNG.
    pub curves_png: &'a Path,
    /// The training curves as SVG.
    pub curves_svg: &'a Path,
    /// The on-device confusion matrix as a heat map (PNG).
    pub confusion_png: &'a Path,
    /// The most confident mistakes (PNG).
    pub mistakes_png: &'a Path,
}

/// The pictures of a build, rendered.
pub struct Pictures {
    /// Training curves, PNG.
    pub curves_png: Vec<u8>,
    /// Training curves, SVG.
    pub curves_svg: String,
    /// Confusion heat map, PNG.
    pub confusion_png: Vec<u8>,
    /// Most confident mistakes, PNG.
    pub mistakes_png: Vec<u8>,
}

impl Pictures {
    /// Draws the pictures of `built`.
    ///
    /// # Errors
    /// [`PictureError`] if one cannot be drawn.
    pub fn render(built: &Built) -> Result<Pictures, PictureError> {
        let name = &built.spec.name;
        let curves = Curves { title: name, history: &built.history };
        let title = format!("{name}: on-device confusion matrix (test set)");
        let confusion = ConfusionMap { title: &title, eval: &built.device_eval };
        let title = format!("{name}: the {} most confident mistakes on the test set", built.mistakes.list.len());
        let grid =
            MistakeGrid { title: &title, mistakes: &built.mistakes, class_names: &built.device_eval.class_names };
        Ok(Pictures {
            curves_png: picture::png(&curves)?,
            curves_svg: picture::svg(&curves)?,
            confusion_png: picture::png(&confusion)?,
            mistakes_png: picture::png(&grid)?,
        })
    }
}

/// The file name of `path` (pictures are linked relative to the report beside them).
fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
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
        "members": built.members.iter().map(|m| json!({
            "seed": m.seed,
            "float_accuracy": m.float_eval.accuracy,
            "training": m.training,
        })).collect::<Vec<_>>(),
        "head": head_json(built),
        "history": built.history,
        "mistakes": built.mistakes.list,
        "calibration": {
            "method": spec.quantize.method,
            "images": built.calibration_images,
        },
        "target": spec.target,
        "summary": summary::summarize(spec).map(|s| s.to_json()).unwrap_or(Value::Null),
        "plan": inspection,
    })
}

/// `{"type": "softmax"}`, or the SVM head's fits and the softmax head's float accuracy.
fn head_json(built: &Built) -> Value {
    match &built.head {
        None => json!({ "type": "softmax" }),
        Some(h) => json!({
            "type": "svm",
            "fits": h.svm,
            "softmax_float_accuracy": h.softmax_float_eval.as_ref().map(|e| e.accuracy),
            "svm_float_accuracy": built.float_eval.accuracy,
        }),
    }
}

/// The SVM head's section: a paragraph and one row per C tried (per network of an ensemble).
fn head_section(built: &Built) -> Option<(String, Vec<Vec<String>>)> {
    let h = built.head.as_ref()?;
    let first = h.svm.first()?;
    let softmax = h.softmax_float_eval.as_ref().map_or_else(String::new, |e| {
        format!(" The trained softmax head it replaces scores {} (float) on the same test set.", pct(e.accuracy))
    });
    let text = format!(
        "The last dense layer is an SVM head: the {} features of the last hidden layer ({} of them vary \
         enough to be fitted on; the others get weight 0), standardized, reduced to {} principal components and classified by one linear SVM per class (one-vs-rest, linfa), \
         fitted on {} training images, C chosen on {} images of the {}; the three steps are one affine map, \
         folded into the dense layer (the same shape: no extra flash or time). SVM head: {} float, {} on \
         device.{softmax}",
        first.features,
        first.kept_features,
        first.pca,
        first.samples,
        first.validation_samples,
        first.validation_from,
        pct(built.float_eval.accuracy),
        pct(built.device_eval.accuracy),
    );
    let rows = h
        .svm
        .iter()
        .enumerate()
        .flat_map(|(m, fit)| {
            fit.trials.iter().map(move |t| {
                vec![
                    (m + 1).to_string(),
                    format!("{}", t.c),
                    pct(t.validation_accuracy),
                    t.support_vectors.to_string(),
                    format!("{:.1} s", t.seconds),
                    if t.c == fit.c { "deployed".into() } else { String::new() },
                ]
            })
        })
        .collect();
    Some((text, rows))
}

const HEAD_COLUMNS: [&str; 6] = ["network", "C", "validation accuracy", "support vectors", "fit time", ""];

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
    if !built.members.is_empty() {
        s.push_str(&format!(
            "## Ensemble members\n\nThe blob runs the {} networks one after another and averages their \
             logits; each alone, float, on the test set (the curves below are member 1's):\n\n\
             | member | seed | float test accuracy | training |\n|---:|---:|---:|---|\n",
            built.members.len()
        ));
        for row in member_rows(built) {
            s.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        s.push('\n');
    }
    if let Some((text, rows)) = head_section(built) {
        s.push_str(&format!(
            "## SVM head\n\n{text}\n\n| {} |\n|---:|---:|---:|---:|---:|---|\n",
            HEAD_COLUMNS.join(" | ")
        ));
        for row in rows {
            s.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        s.push('\n');
    }
    s.push_str(&format!("## Training curves\n\n![training curves]({})\n\n", file_name(files.curves_png)));
    s.push_str(&format!("## Lowered plan\n\n```\n{}```\n\n## Accuracy\n\n", inspection.render()));
    s.push_str(&evaluation_md("Float model", &built.float_eval));
    s.push_str(&evaluation_md("On device (the blob, run by mnistc-runtime)", &built.device_eval));
    s.push_str(&format!("![on-device confusion matrix]({})\n\n", file_name(files.confusion_png)));
    s.push_str(&format!(
        "## The most confident mistakes\n\n![the most confident mistakes]({})\n\n{}",
        file_name(files.mistakes_png),
        mistakes_md(built)
    ));
    s
}

/// One row per ensemble member: member, seed, float test accuracy, training.
fn member_rows(built: &Built) -> Vec<Vec<String>> {
    built
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let t = &m.training;
            let cached = if t.cached { " (reused from the cache)" } else { "" };
            let training = format!("{} epochs, {:.1} s{cached}", t.epochs, t.seconds);
            vec![(i + 1).to_string(), m.seed.to_string(), pct(m.float_eval.accuracy), training]
        })
        .collect()
}

/// The mistakes as a table.
fn mistakes_md(built: &Built) -> String {
    let names = &built.device_eval.class_names;
    let name = |c: u8| names.get(c as usize).cloned().unwrap_or_else(|| c.to_string());
    let mut s = String::from("| test image | true | predicted | confidence |\n|---:|---|---|---:|\n");
    for m in &built.mistakes.list {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} % |\n",
            m.index,
            name(m.label),
            name(m.predicted),
            100.0 * m.confidence
        ));
    }
    s.push('\n');
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn png_img(alt: &str, png: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
        escape(alt),
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// The report as one HTML page that needs no other file: the pictures are inlined.
pub fn to_html(built: &Built, inspection: &Inspection, pictures: &Pictures) -> String {
    let spec = &built.spec;
    let pre = |text: &str| format!("<pre>{}</pre>\n", escape(text));
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}: build report</title>\n\
         <style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}\
         td,th{{padding:2px 10px;text-align:left}}pre{{background:#f6f6f6;padding:8px;overflow:auto}}\
         img{{max-width:100%}}</style></head><body>\n<h1>{0}: build report</h1>\n<table>\n",
        escape(&spec.name)
    );
    let rows = [
        ("model", spec.origin.clone()),
        ("data set", spec.data.dataset.name().to_string()),
        ("precision", inspection.precision.to_string()),
        ("float test accuracy", pct(built.float_eval.accuracy)),
        ("on-device test accuracy", pct(built.device_eval.accuracy)),
        ("flash (blob)", format!("{} bytes", inspection.flash_bytes)),
        ("arena (RAM)", format!("{} bytes", inspection.arena_bytes)),
        ("MACs per inference", inspection.macs.to_string()),
        ("parameters", inspection.params.to_string()),
        ("training", format!("{} epochs, {:.1} s", built.training.epochs, built.training.seconds)),
    ];
    for (k, v) in rows {
        s.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), escape(&v)));
    }
    s.push_str("</table>\n<h2>Training curves</h2>\n");
    s.push_str(&pictures.curves_svg.replacen("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", "", 1));
    if let Ok(summary) = summary::summarize(spec) {
        s.push_str(&format!("<h2>Model</h2>\n{}", pre(&summary.render())));
    }
    if !built.members.is_empty() {
        s.push_str(
            "<h2>Ensemble members</h2>\n<table>\n<tr><th>member</th><th>seed</th><th>float test accuracy</th>\
             <th>training</th></tr>\n",
        );
        for row in member_rows(built) {
            let cells: Vec<String> = row.iter().map(|c| format!("<td>{}</td>", escape(c))).collect();
            s.push_str(&format!("<tr>{}</tr>\n", cells.concat()));
        }
        s.push_str("</table>\n");
    }
    if let Some((text, rows)) = head_section(built) {
        let th: Vec<String> = HEAD_COLUMNS.iter().map(|c| format!("<th>{c}</th>")).collect();
        s.push_str(&format!("<h2>SVM head</h2>\n<p>{}</p>\n<table>\n<tr>{}</tr>\n", escape(&text), th.concat()));
        for row in rows {
            let cells: Vec<String> = row.iter().map(|c| format!("<td>{}</td>", escape(c))).collect();
            s.push_str(&format!("<tr>{}</tr>\n", cells.concat()));
        }
        s.push_str("</table>\n");
    }
    s.push_str(&format!("<h2>Lowered plan</h2>\n{}<h2>Accuracy</h2>\n", pre(&inspection.render())));
    for (title, e) in
        [("Float model", &built.float_eval), ("On device (the blob, run by mnistc-runtime)", &built.device_eval)]
    {
        s.push_str(&format!(
            "<h3>{}: {} ({} of {})</h3>\n{}{}",
            escape(title),
            pct(e.accuracy),
            e.correct,
            e.samples,
            pre(&e.render_confusion()),
            pre(&e.render_report())
        ));
    }
    s.push_str(&png_img("on-device confusion matrix", &pictures.confusion_png));
    s.push_str("\n<h2>The most confident mistakes</h2>\n");
    s.push_str(&png_img("the most confident mistakes", &pictures.mistakes_png));
    s.push_str("\n</body></html>\n");
    s
}
