//! `mnistc build MODEL.toml -o OUT.bin [--data DIR] [--epochs N] [--train-limit N] [--seed N]
//! [--device cpu|cuda] [--pause-after N] [--json]`.

use std::path::{Path, PathBuf};

use super::common::{PauseArgs, TrainingArgs, check_output_path};
use super::{CliError, Io};
use crate::pipeline;
use crate::report::{self, Files};

/// Arguments of `mnistc build`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Writes OUT.bin atomically and beside it OUT.onnx, OUT.report.json and OUT.report.md.\n\
The training is cached (key: the spec without [quantize]/[target], the overrides, the data files' \
SHA-256 and the mnistc version) in $MNISTC_CACHE, else $XDG_CACHE_HOME/mnistc, else ~/.cache/mnistc. \
A training saves its state there after every epoch: run the same command again after an interruption \
(or --pause-after) and it continues from the last finished epoch, with the bytes of an uninterrupted run.\n\
Exit codes: 0 built, 1 a [target] budget is exceeded or a check failed, 2 bad input, 3 paused by --pause-after.")]
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
    let spec = args.training.spec(&args.model, io.err)?;
    let device = args.training.device()?;
    check_output_path(&args.output, "blob")?;
    let files = (
        args.output.clone(),
        sibling(&args.output, "onnx"),
        sibling(&args.output, "report.json"),
        sibling(&args.output, "report.md"),
    );

    let mut opts = args.training.build_options(device, args.no_cache, args.quiet, io.err);
    args.pause.apply(&mut opts, "--no-cache")?;
    let built = pipeline::build(&spec, &mut opts).map_err(CliError::from)?;
    let inspection = &built.inspection;
    let paths = Files { blob: &files.0, onnx: &files.1, report_json: &files.2, report_md: &files.3 };
    let json = report::to_json(&built, inspection, &paths);
    let md = report::to_markdown(&built, inspection, &paths);
    let write = |path: &Path, bytes: &[u8]| {
        crate::atomic::write(path, bytes).map_err(|e| CliError::failed(format!("{}: {e}", path.display())))
    };
    write(&files.0, built.blob.bytes())?;
    write(&files.1, &built.onnx)?;
    write(&files.2, serde_json::to_string_pretty(&json).unwrap_or_default().as_bytes())?;
    write(&files.3, md.as_bytes())?;
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
             flash {} bytes, arena {} bytes, {} MACs\nwrote {}, {}, {}, {}\n",
            spec.name,
            inspection.precision,
            100.0 * built.float_eval.accuracy,
            100.0 * built.device_eval.accuracy,
            inspection.flash_bytes,
            inspection.arena_bytes,
            inspection.macs,
            files.0.display(),
            files.1.display(),
            files.2.display(),
            files.3.display(),
        );
        io.out.write_all(text.as_bytes()).map_err(CliError::failed)?;
        for path in &extra {
            writeln!(io.out, "wrote {}", path.display()).map_err(CliError::failed)?;
        }
    }
    Ok(())
}
