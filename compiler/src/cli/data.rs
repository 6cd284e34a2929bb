//! `mnistc data list [--data DIR] [--json]` and
//! `mnistc data fetch NAME… [--data DIR] [--mirror URL] [--force] [--quiet]`.

use std::io::Write;

use super::common::DataArgs;
use super::{CliError, Io};
use crate::data::download::{self, FetchOptions};
use crate::data::sources::{self, FileStatus};
use crate::data::{DataDir, DataDirSource};

/// Arguments of `mnistc data`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// `mnistc data` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DataCommand {
    /// Show every data set mnistc knows: where it is, and whether each file is verified by SHA-256.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Download data sets (mnist, fashion-mnist, cifar-10), verified by SHA-256, into the data
    /// directory when one is named (--data, MNISTC_DATA), else into the cache's data folder.
    Fetch {
        /// Data set names (`all` for every one)
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
        #[command(flatten)]
        data: DataArgs,
        /// A mirror to use instead of the standard ones, serving URL/NAME/FILE.gz (the layout of a
        /// data directory); repeat for several [default: $MNISTC_MIRROR]
        #[arg(long, value_name = "URL")]
        mirror: Vec<String>,
        /// Download again even the files that are present and verified
        #[arg(long)]
        force: bool,
        /// No progress bar and no log lines
        #[arg(long)]
        quiet: bool,
    },
}

/// Runs `mnistc data`.
///
/// # Errors
/// Exit 2 for an unknown data set name; exit 1 when a download fails.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    match args.command {
        DataCommand::List { data, json } => list(&DataDir::resolve(data.data.as_deref()), json, io),
        DataCommand::Fetch { names, data, mirror, force, quiet } => {
            fetch(&names, &DataDir::resolve(data.data.as_deref()), mirror, force, quiet, io)
        }
    }
}

fn list(dir: &DataDir, json: bool, io: &mut Io<'_>) -> Result<(), CliError> {
    let sets = sources::list(dir);
    if json {
        let sets: Vec<serde_json::Value> = sets
            .iter()
            .map(|(source, folder, checks)| {
                serde_json::json!({
                    "name": source.name,
                    "folder": folder,
                    "present": checks.iter().all(|c| c.status != FileStatus::Missing),
                    "verified": checks.iter().all(|c| c.status.is_verified()),
                    "files": checks.iter().map(|c| serde_json::json!({
                        "name": c.name,
                        "path": c.path,
                        "sha256": c.sha256,
                        "status": c.status.describe(),
                        "verified": c.status.is_verified(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let obj = serde_json::json!({
            "data_dir": dir.root,
            "chosen_by": match dir.source {
                DataDirSource::Flag => "--data",
                DataDirSource::Env => "MNISTC_DATA",
                DataDirSource::Default => "default",
            },
            "download_dir": dir.download_target(),
            "datasets": sets,
        });
        return writeln!(io.out, "{obj}").map_err(CliError::failed);
    }
    let mut text = format!(
        "data directory: {}{}\n",
        dir.root.display(),
        match &dir.download_root {
            Some(d) => format!(" (then {}, where missing data sets are downloaded)", d.display()),
            None => String::new(),
        }
    );
    for (source, folder, checks) in &sets {
        let present = checks.iter().filter(|c| c.status != FileStatus::Missing).count();
        let verdict = if present == 0 {
            "missing".to_string()
        } else if checks.iter().all(|c| c.status.is_verified()) {
            "present, verified".to_string()
        } else if present < checks.len() {
            format!("incomplete ({present} of {} files)", checks.len())
        } else {
            "present, NOT all verified".to_string()
        };
        text.push_str(&format!("\n{} — {}\n  {}: {verdict}\n", source.name, source.title, folder.display()));
        if present > 0 {
            for c in checks {
                let file = c.path.as_ref().and_then(|p| p.file_name()).map_or(c.name.into(), |n| n.to_string_lossy());
                text.push_str(&format!("    {file:<28} {}\n", c.status.describe()));
            }
        }
    }
    io.out.write_all(text.as_bytes()).map_err(CliError::failed)
}

fn fetch(
    names: &[String],
    dir: &DataDir,
    mirror: Vec<String>,
    force: bool,
    quiet: bool,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let mut chosen = Vec::new();
    for name in names {
        if name == "all" {
            chosen.extend(sources::SOURCES.iter());
            continue;
        }
        let source = sources::source(name).ok_or_else(|| {
            let known = sources::names();
            let hint = known
                .iter()
                .map(|k| (strsim::levenshtein(k, name), k))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            CliError::bad_input(format!("unknown data set `{name}`{hint}; known: {}, all", known.join(", ")))
        })?;
        chosen.push(source);
    }
    let mirrors = if mirror.is_empty() {
        download::mirrors_from_env()
    } else {
        Some(mirror.iter().map(|m| m.trim_end_matches('/').to_string()).collect())
    };
    let root = dir.download_target().to_path_buf();
    let mut sink = std::io::sink();
    for source in chosen {
        let log: &mut dyn Write = if quiet { &mut sink } else { &mut *io.err };
        let mut opts = FetchOptions { mirrors: mirrors.clone(), force, progress: !quiet, log };
        let fetched = download::fetch(source, &root, &mut opts).map_err(CliError::failed)?;
        writeln!(
            io.out,
            "{}: {} in {} ({} downloaded, {} bytes; {} already verified)",
            source.name,
            if fetched.downloaded.is_empty() { "present and verified" } else { "fetched and verified" },
            root.join(source.name).display(),
            fetched.downloaded.len(),
            fetched.bytes,
            fetched.kept.len()
        )
        .map_err(CliError::failed)?;
    }
    Ok(())
}
