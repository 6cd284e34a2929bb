//! `mnistc summary MODEL.toml [--json]`.

use std::path::PathBuf;

use super::{CliError, Io};
use crate::report::summary::summarize;
use crate::spec::ModelSpec;

/// Arguments of `mnistc summary`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The model description
    #[arg(value_name = "MODEL.toml")]
    pub model: PathBuf,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Runs `mnistc summary`.
///
/// # Errors
/// Exit 2 for an unreadable or invalid model file.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let spec = ModelSpec::from_path(&args.model).map_err(CliError::bad_input)?;
    for w in &spec.warnings {
        let _ = writeln!(io.err, "warning: {w}");
    }
    let summary = summarize(&spec).map_err(CliError::bad_input)?;
    let text = if args.json { format!("{:#}\n", summary.to_json()) } else { summary.render() };
    io.out.write_all(text.as_bytes()).map_err(CliError::failed)
}
