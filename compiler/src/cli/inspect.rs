//! `mnistc inspect OUT.bin [--json]`.

use std::path::PathBuf;

use super::{CliError, Io, blob_arg};

/// Arguments of `mnistc inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The blob
    #[arg(value_name = "OUT.bin")]
    pub blob: PathBuf,
    /// Print one JSON object (keys include flash_bytes, arena_bytes, macs, ops)
    #[arg(long)]
    pub json: bool,
}

/// Runs `mnistc inspect`.
///
/// # Errors
/// Exit 2 if the blob cannot be read or is malformed.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let bytes = blob_arg::read(&args.blob)?;
    let model = blob_arg::load(&args.blob, &bytes)?;
    let inspection = crate::report::inspect::inspect(&model);
    let text = if args.json {
        format!("{}\n", serde_json::to_string(&inspection).map_err(CliError::failed)?)
    } else {
        inspection.render()
    };
    io.out.write_all(text.as_bytes()).map_err(CliError::failed)
}
