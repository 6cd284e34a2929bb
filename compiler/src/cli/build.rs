//! `mnistc build MODEL.toml -o OUT.bin [--data DIR] [--epochs N] [--train-limit N] [--seed N]
//! [--device cpu|cuda] [--pause-after N] [--json]`.

use std::path::{Path, PathBuf};

use super::common::{PauseArgs, TrainingArgs, check_output_path};
use super::{CliError, Io};
use crate::pipeline;
use crate::report::{self, Files, Pictures};
use crate::spec::MAX_MEMBERS;

/// Arguments of `mnistc build`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Writes OUT.bin atomically and beside it OUT.onnx, OUT.report.json, OUT.report.md, OUT.report.html \
(self-contained) and the pictures: OUT.curves.png / .svg (training curves), OUT.confusion.png (heat map) and \
OUT.mistakes.png (the most confident mistakes).\n\
The training is cached (key: the spec without [quantize]/[target], the overrides, the data files' \
SHA-256 and the mnistc version) in $MNISTC_CACHE, else $XDG_CACHE_HOME/mnistc, else ~/.cache/mnistc. \
A training saves its state there after every epoch: run the same command again after an interruption \
(or --pause-after) and it continues from the last finished epoch, with the bytes of an uninterrupted run.\n\
Exit codes: 0 built, 1 a [target] budget is exceeded or a check failed, 2 bad input, 3 paused by --pause-after."
)]
pub struct Args {
    /// The model description
    #[arg(value_name = "MODEL.toml")]
    pub model: PathBuf,
    /// The blob to write
    #[arg(short, long, value_name = "OUT.bin")]
    pub output: PathBuf,
    #[command(flatten)]
    pub training: TrainingArgs,
    #[command(flatten)]
    pub pause: PauseArgs,
    /// Print the report as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
    /// Neither read nor write the training cache
    #[arg(long)]
    pub no_cache: bool,
    /// No progress bar or log lines on stderr
    #[arg(short, long)]
    pub quiet: bool,
    /// Also write the blob in another form: `c` gives OUT.h / OUT.c (as `mnistc export-c`)
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub emit: Vec<Emit>,
    /// Override `[ensemble] members`: train N networks of the model (seeds train.seed, +1, …) and
    /// deploy them as one blob averaging their logits (1: one network)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_MEMBERS as u64))]
    pub members: Option<u64>,
}

/// Extra outputs of `mnistc build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// OUT.h and OUT.c: the blob as C source for the C API (runtime-c/).
    C,
}

/// `OUT` with its extension replaced by `ext` (`digits.bin` → `digits.onnx`).
pub fn sibling(out: &Path, ext: &str) -> PathBuf {
    out.with_extension(ext)
}

/// Runs `mnistc build`.
///
/// # Errors
/// Exit 2 for bad input, 1 when a budget is exceeded.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let mut spec = args.training.spec(&args.model, io.err)?;
    if let Some(n) = args.members {
        spec = spec.with_members(n as usize);
    }
    let device = args.training.device()?;
    check_output_path(&args.output, "blob")?;
    let out = &args.output;
    let names = [
        "onnx",
        "report.json",
        "report.md",
        "report.html",
        "curves.png",
        "curves.svg",
        "confusion.png",
        "mistakes.png",
    ];
    let [onnx, report_json, report_md, report_html, curves_png, curves_svg, confusion_png, mistakes_png] =
        names.map(|ext| sibling(out, ext));

    let mut opts = args.training.build_options(device, args.no_cache, args.quiet, io.err);
    args.pause.apply(&mut opts, "--no-cache")?;
    let built = pipeline::build(&spec, &mut opts).map_err(CliError::from)?;
    let inspection = &built.inspection;
    let paths = Files {
        blob: out,
        onnx: &onnx,
        report_json: &report_json,
        report_md: &report_md,
        report_html: &report_html,
        curves_png: &curves_png,
        curves_svg: &curves_svg,
        confusion_png: &confusion_png,
        mistakes_png: &mistakes_png,
    };
    let pictures = Pictures::render(&built).map_err(CliError::failed)?;
    let json = report::to_json(&built, inspection, &paths);
    let md = report::to_markdown(&built, inspection, &paths);
    let html = report::to_html(&built, inspection, &pictures);
    let write = |path: &Path, bytes: &[u8]| {
        crate::atomic::write(path, bytes).map_err(|e| CliError::failed(format!("{}: {e}", path.display())))
    };
    write(out, built.blob.bytes())?;
    write(&onnx, &built.onnx)?;
    write(&report_json, serde_json::to_string_pretty(&json).unwrap_or_default().as_bytes())?;
    write(&report_md, md.as_bytes())?;
    write(&report_html, html.as_bytes())?;
    write(&curves_png, &pictures.curves_png)?;
    write(&curves_svg, pictures.curves_svg.as_bytes())?;
    write(&confusion_png, &pictures.confusion_png)?;
    write(&mistakes_png, &pictures.mistakes_png)?;
    let mut extra = Vec::new();
    if args.emit.contains(&Emit::C) {
        let model = mnistc_runtime::Model::from_bytes(built.blob.bytes())
            .map_err(|e| CliError::failed(format!("the blob just built does not load: {e}")))?;
        let (h, c) = super::export_c::write(&args.output.with_extension(""), None, built.blob.bytes(), &model, None)?;
        extra.extend([h, c]);
    }

    if args.json {
        writeln!(io.out, "{json}").map_err(CliError::failed)?;
    } else {
        let text = format!(
            "built {} ({}): float test accuracy {:.2} %, on-device {:.2} %\n\
             flash {} bytes, arena {} bytes, {} MACs\nwrote {}, {}, {}, {}, {}\n\
             pictures {}, {}, {}, {}\n",
            spec.name,
            inspection.precision,
            100.0 * built.float_eval.accuracy,
            100.0 * built.device_eval.accuracy,
            inspection.flash_bytes,
            inspection.arena_bytes,
            inspection.macs,
            out.display(),
            onnx.display(),
            report_json.display(),
            report_md.display(),
            report_html.display(),
            curves_png.display(),
            curves_svg.display(),
            confusion_png.display(),
            mistakes_png.display(),
        );
        io.out.write_all(text.as_bytes()).map_err(CliError::failed)?;
        if !built.members.is_empty() {
            let each: Vec<String> =
                built.members.iter().map(|m| format!("{:.2} %", 100.0 * m.float_eval.accuracy)).collect();
            writeln!(io.out, "ensemble of {}: each member alone, float: {}", built.members.len(), each.join(", "))
                .map_err(CliError::failed)?;
        }
        if let Some(head) = &built.head {
            let fits: Vec<String> = head.svm.iter().map(|f| format!("C = {}", f.c)).collect();
            let softmax = head.softmax_float_eval.as_ref().map_or_else(String::new, |e| {
                format!("; the softmax head it replaces, float: {:.2} %", 100.0 * e.accuracy)
            });
            if let Some(first) = head.svm.first() {
                writeln!(
                    io.out,
                    "svm head: {} features, PCA {}, linear SVMs ({}) folded into the last dense layer{softmax}",
                    first.features,
                    first.pca,
                    fits.join(", ")
                )
                .map_err(CliError::failed)?;
            }
        }
        for path in &extra {
            writeln!(io.out, "wrote {}", path.display()).map_err(CliError::failed)?;
        }
    }
    Ok(())
}
