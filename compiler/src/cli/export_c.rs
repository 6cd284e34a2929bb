//! `mnistc export-c OUT.bin -o DIR/NAME [--name ID] [--test-images N] [--data DIR]`.

use std::path::{Path, PathBuf};

use super::common::{DataArgs, check_output_path};
use super::{CliError, Io, blob_arg};
use crate::data::{self, Split};
use crate::export::c::{self, TestImages};

/// Arguments of `mnistc export-c`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Writes DIR/NAME.h and DIR/NAME.c atomically: the blob as a 16-byte-aligned \
`const uint8_t NAME_blob[]`, `#define NAME_ARENA_SIZE`, `NAME_INPUT_H/W/C/LEN`, `NAME_CLASSES`, \
`NAME_INT8` and `NAME_class_names[]`; with --test-images also `NAME_test_pixels`, `NAME_test_labels` \
and `NAME_test_logits` (the host runtime's int8 logits) for a board to check itself.\n\
Use it with the C API in runtime-c/ (include/mnistc.h). Exit codes: 0 written, 2 bad input.")]
pub struct Args {
    /// The blob
    #[arg(value_name = "OUT.bin")]
    pub blob: PathBuf,
    /// Where to write: DIR/NAME gives DIR/NAME.h and DIR/NAME.c
    #[arg(short, long, value_name = "DIR/NAME")]
    pub output: PathBuf,
    /// The C identifier prefix [default: NAME, as an identifier: `digits-int8` → `digits_int8`]
    #[arg(long, value_name = "ID")]
    pub name: Option<String>,
    /// Also embed the first N test images of the blob's data set, their labels and the host's logits
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub test_images: Option<u64>,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Runs `mnistc export-c`.
///
/// # Errors
/// Exit 2 for a bad blob, name, output path or missing data.
pub fn run(args: Args, io: &mut Io<'_>) -> Result<(), CliError> {
    let bytes = blob_arg::read(&args.blob)?;
    let model = blob_arg::load(&args.blob, &bytes)?;
    let test = match args.test_images {
        Some(n) => {
            let dataset = blob_arg::dataset(&model)?;
            let dir = args.data.with_dataset(dataset, io.err)?;
            Some(data::load(&dir, dataset, Split::Test).map_err(CliError::bad_input)?.head(n as usize))
        }
        None => None,
    };
    let test = test.as_ref().map(|t| TestImages { pixels: &t.pixels, labels: &t.labels });
    let written = write(&args.output, args.name.as_deref(), bytes.as_bytes(), &model, test)?;
    writeln!(io.out, "wrote {}, {}", written.0.display(), written.1.display()).map_err(CliError::failed)
}

/// Writes `BASE.h` and `BASE.c` (atomically) for a loaded blob; `name` defaults to BASE's file
/// name as an identifier. Returns the two paths.
///
/// # Errors
/// Exit 2 for a bad output path, name or test images; 1 if a file cannot be written.
pub fn write(
    base: &Path,
    name: Option<&str>,
    blob: &[u8],
    model: &mnistc_runtime::Model<'_>,
    test: Option<TestImages<'_>>,
) -> Result<(PathBuf, PathBuf), CliError> {
    check_output_path(base, "C source (DIR/NAME)")?;
    let stem = base.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = name.map_or_else(|| c::identifier(&stem), str::to_string);
    let header_file = format!("{stem}.h");
    let source = c::c_source(&name, &header_file, blob, model, test)
        .map_err(|e| CliError::bad_input(format!("{}: {e}", base.display())))?;
    let (h, c) = (with_suffix(base, ".h"), with_suffix(base, ".c"));
    for (path, text) in [(&h, &source.header), (&c, &source.source)] {
        crate::atomic::write(path, text.as_bytes())
            .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
    }
    Ok((h, c))
}

/// `base` with `suffix` appended to its file name (`out/digits` → `out/digits.h`).
fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    base.with_file_name(name)
}
