//! `mnistc features MODEL --layer NAME|INDEX -o OUT [--data DIR] [--limit N] [--json]`: one
//! layer's activations for the training and test images, as `.npy` and `.csv`
//! ([`crate::export::features`]).

use std::path::{Path, PathBuf};

use super::common::{DataArgs, check_output_path};
use super::{CliError, Io, blob_arg};
use crate::data::{self, Dataset, Images, Split};
use crate::export::features::{self, Features};
use crate::report::summary;
use crate::spec::ModelSpec;
use crate::train::checkpoint::{MAGIC, side_path};
use crate::train::{Checkpoint, Device};

/// Arguments of `mnistc features`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Writes OUT.train.npy (float32, [images, features]), OUT.train.labels.npy (uint8, [images]) and \
OUT.train.csv (label,f0,f1,...), and the same for test, each atomically. From a checkpoint (mnistc train) the float \
network's layer, feature maps in C,H,W order; from a blob its op output, dequantized, in H,W,C order.\n\
Exit codes: 0 written, 1 a file could not be written, 2 bad input."
)]
pub struct Args {
    /// A checkpoint (`mnistc train -o M.ckpt`) or a blob (`mnistc build -o OUT.bin`)
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The layer: its index (`mnistc summary` for a checkpoint, `mnistc inspect` for a blob) or,
    /// in a checkpoint, its `name` [default: the penultimate layer, the input of the last one]
    #[arg(long, value_name = "NAME|INDEX")]
    pub layer: Option<String>,
    /// Output path prefix
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Only the first N images of each set
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Print what was written as one JSON object
    #[arg(long)]
    pub json: bool,
}

/// The layer `arg` names among `count` layers (`name_of(i)`: a layer's name, if any); by
/// default the penultimate one.
fn layer_index(
    arg: Option<&str>,
    count: usize,
    name_of: impl Fn(usize) -> Option<String>,
    what: &str,
) -> Result<usize, CliError> {
    let Some(arg) = arg else {
        return count.checked_sub(2).ok_or_else(|| {
            CliError::bad_input(format!("--layer: the {what} has one layer only; it has no penultimate layer"))
        });
    };
    if let Ok(i) = arg.parse::<usize>() {
        return if i < count {
            Ok(i)
        } else {
            Err(CliError::bad_input(format!("--layer {i}: the {what} has layers 0 to {}", count.saturating_sub(1))))
        };
    }
    let names: Vec<String> = (0..count).filter_map(&name_of).collect();
    (0..count).find(|&i| name_of(i).as_deref() == Some(arg)).ok_or_else(|| {
        let known = if names.is_empty() {
            "no named layers".to_string()
        } else {
            format!("named layers: {}", names.join(", "))
        };
        CliError::bad_input(format!("--layer {arg}: no layer of the {what} has that index or name ({known})"))
    })
}

/// The sets, each cut to `limit` images.
fn sets(args: &Args, dataset: Dataset, io: &mut Io<'_>) -> Result<[(Split, Images); 2], CliError> {
    let dir = args.data.with_dataset(dataset, io.err)?;
    let load = |split| -> Result<Images, CliError> {
        let images = data::load(&dir, dataset, split).map_err(CliError::bad_input)?;
        Ok(match args.limit {
            Some(n) => images.head(n as usize),
            None => images,
        })
    };
    Ok([(Split::Train, load(Split::Train)?), (Split::Test, load(Split::Test)?)])
}

/// Runs `mnistc features`.
///
/// # Errors
/// Exit 2 for a bad model, layer or data, 1 when a file cannot be written.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    check_output_path(&args.output, "features")?;
    let bytes = blob_arg::read(&args.model)?;
    let (layer, description, order, per_split): (usize, String, &str, Vec<(Split, Features)>) =
        if bytes.as_bytes().starts_with(MAGIC.as_slice()) {
            let checkpoint = Checkpoint::load(&args.model).map_err(CliError::bad_input)?;
            let spec: &ModelSpec = &checkpoint.model.spec;
            let layer =
                layer_index(args.layer.as_deref(), spec.layers.len(), |i| spec.layers[i].name.clone(), "model")?;
            let description = summary::describe(&spec.layers[layer].layer);
            let mut out = Vec::new();
            for (split, images) in sets(&args, spec.data.dataset, io)? {
                let f = features::from_checkpoint(&checkpoint.model, layer, &images, Device::Cpu)
                    .map_err(|e| CliError::bad_input(e.to_string()))?;
                out.push((split, f));
            }
            (layer, description, "C,H,W", out)
        } else {
            let model = blob_arg::load(&args.model, &bytes)?;
            let layer = layer_index(args.layer.as_deref(), model.op_count(), |_| None, "blob")?;
            let description = crate::report::inspect::inspect(&model)
                .ops
                .get(layer)
                .map(|op| format!("{} {}x{}x{}", op.op, op.output[0], op.output[1], op.output[2]))
                .unwrap_or_default();
            let mut out = Vec::new();
            for (split, images) in sets(&args, blob_arg::dataset(&model)?, io)? {
                let f = features::from_blob(&model, layer, &images).map_err(CliError::bad_input)?;
                out.push((split, f));
            }
            (layer, description, "H,W,C", out)
        };

    let mut written: Vec<PathBuf> = Vec::new();
    let mut sets_json = serde_json::Map::new();
    for (split, f) in &per_split {
        let name = match split {
            Split::Train => "train",
            Split::Test => "test",
        };
        let files = [
            (side_path(&args.output, &format!(".{name}.npy")), f.npy()),
            (side_path(&args.output, &format!(".{name}.labels.npy")), f.labels_npy()),
            (side_path(&args.output, &format!(".{name}.csv")), f.csv().into_bytes()),
        ];
        for (path, bytes) in &files {
            write(path, bytes)?;
            written.push(path.clone());
        }
        sets_json.insert(
            name.into(),
            serde_json::json!({ "images": f.len(), "features": f.dim, "npy": files[0].0, "labels_npy": files[1].0, "csv": files[2].0 }),
        );
    }
    let dim = per_split.first().map_or(0, |(_, f)| f.dim);
    if args.json {
        let json = serde_json::json!({
            "model": args.model,
            "layer": layer,
            "description": description,
            "order": order,
            "features": dim,
            "sets": sets_json,
        });
        writeln!(io.out, "{json}").map_err(CliError::failed)?;
    } else {
        let counts: Vec<String> =
            per_split.iter().map(|(s, f)| format!("{} {:?}", f.len(), s).to_lowercase()).collect();
        writeln!(
            io.out,
            "layer {layer} ({description}): {dim} features ({order} order) for {} images",
            counts.join(" and ")
        )
        .map_err(CliError::failed)?;
        for path in &written {
            writeln!(io.out, "wrote {}", path.display()).map_err(CliError::failed)?;
        }
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    crate::atomic::write(path, bytes).map_err(|e| CliError::failed(format!("{}: {e}", path.display())))
}
