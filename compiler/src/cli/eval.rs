//! `mnistc eval OUT.bin [--data DIR] [--limit N] [--json]`.

use std::path::PathBuf;

use super::common::DataArgs;
use super::{CliError, Io, blob_arg};
use crate::data::{self, Split};

/// Arguments of `mnistc eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The blob
    #[arg(value_name = "OUT.bin")]
    pub blob: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Evaluate only the first N test images
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Print one JSON object (keys as `mnistc train --json`: test_accuracy, confusion, per_class, ...)
    #[arg(long)]
    pub json: bool,
}

/// Runs `mnistc eval`: the blob, run by the runtime, over its data set's test images.
///
/// # Errors
/// Exit 2 for a bad blob or missing data.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let bytes = blob_arg::read(&args.blob)?;
    let model = blob_arg::load(&args.blob, &bytes)?;
    let dataset = blob_arg::dataset(&model)?;
    let dir = args.data.with_dataset(dataset, io.err)?;
    let mut test = data::load(&dir, dataset, Split::Test).map_err(CliError::bad_input)?;
    if let Some(limit) = args.limit {
        test = test.head(limit as usize);
    }
    let start = std::time::Instant::now();
    let eval = crate::verify::on_device::evaluate(&model, &test).map_err(CliError::bad_input)?;
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let mut json = eval.to_json();
        if let Some(obj) = json.as_object_mut() {
            obj.insert("model".into(), model.name().into());
            obj.insert("dataset".into(), dataset.name().into());
            obj.insert("precision".into(), model.precision().name().into());
            obj.insert("images".into(), test.n.into());
            obj.insert("seconds".into(), seconds.into());
        }
        writeln!(io.out, "{json}").map_err(CliError::failed)
    } else {
        let text = format!(
            "{} ({}, {}) on {} {} test images, run by mnistc-runtime in {:.1} s\n{}",
            model.name(),
            dataset.name(),
            model.precision().name(),
            test.n,
            dataset.name(),
            seconds,
            eval.render()
        );
        io.out.write_all(text.as_bytes()).map_err(CliError::failed)
    }
}
