//! Host side of the firmware: the linker script, the model blob, and the test data it checks.
//!
//! Reads the blob (`digits.bin`, or `$MNISTC_BLOB`), validates it with the host runtime, takes the
//! first [`IMAGES`] test images and labels of the blob's data set from `$MNISTC_DATA` (the first
//! [`CIFAR_IMAGES`] for CIFAR-10, whose colour images are 4 times larger), and runs them on the
//! host to get the int8 logits the board must reproduce byte for byte. An imported model whose
//! input is not pixels (the MLPerf keyword-spotting model's MFCC features) gets [`IMAGES`] random
//! int8 inputs instead, the SplitMix64 stream of `tests/import_tflite.rs` (so its first 300
//! parity inputs), and no labels. All of it goes to `OUT_DIR` for `include_bytes!`: nothing
//! derived from the data set is committed.

use std::env;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use mnistc_runtime::kernels::{self, Isa};
use mnistc_runtime::{Input, Logits, Model, OpKind, Precision};

/// How many test images the firmware runs (the first ones of the test split).
const IMAGES: usize = 300;
/// How many for CIFAR-10 (3,072 bytes each: 100 keep the firmware inside 1 MiB of flash).
const CIFAR_IMAGES: usize = 100;

/// The command that writes the default blob, from the repository root.
const BUILD_BLOB: &str = "cargo build -p mnistc && \
    target/debug/mnistc build models/digits.toml -o firmware/digits.bin --train-limit 2000 --epochs 1";

fn main() {
    if let Err(message) = run() {
        // Fails the build with this message (one line).
        println!("cargo::error={}", message.replace('\n', " "));
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    println!("cargo::rerun-if-changed=build.rs");

    // cortex-m-rt's link.x includes memory.x from the linker's search path.
    println!("cargo::rerun-if-changed=memory.x");
    write(&out, "memory.x", &fs::read(manifest_dir.join("memory.x")).map_err(|e| format!("memory.x: {e}"))?)?;
    println!("cargo::rustc-link-search={}", out.display());
    println!("cargo::rustc-link-arg-bins=--nmagic");
    println!("cargo::rustc-link-arg-bins=-Tlink.x");

    println!("cargo::rerun-if-env-changed=MNISTC_BLOB");
    let blob_path = manifest_dir.join(env::var_os("MNISTC_BLOB").unwrap_or_else(|| "digits.bin".into()));
    println!("cargo::rerun-if-changed={}", blob_path.display());
    let blob = fs::read(&blob_path).map_err(|e| {
        format!(
            "cannot read the model blob {}: {e}. Build it from the repository root with `{BUILD_BLOB}`, \
             or point MNISTC_BLOB at a blob (a relative path starts in firmware/).",
            blob_path.display()
        )
    })?;
    // The runtime reads the blob in place: give it a 16-byte-aligned copy.
    let mut buffer = vec![0u8; blob.len() + 15];
    let start = buffer.as_ptr().align_offset(16);
    let aligned = &mut buffer[start..start + blob.len()];
    aligned.copy_from_slice(&blob);
    let model = Model::from_bytes(aligned).map_err(|e| format!("{}: {e}", blob_path.display()))?;
    if model.precision() != Precision::Int8 {
        return Err(format!(
            "{}: a {} blob; the firmware checks int8 logits, so build an int8 model",
            blob_path.display(),
            model.precision().name()
        ));
    }

    let raw = !model.takes_pixels();
    println!("cargo::rerun-if-env-changed=MNISTC_DATA");
    let data_dir = env::var_os("MNISTC_DATA").map_or_else(|| manifest_dir.join("../data"), PathBuf::from);
    let set_dir = data_dir.join(model.dataset());
    let shape = model.input_shape();
    println!("cargo::rerun-if-env-changed=CARGO_FEATURE_DEPTHWISE");
    let depthwise = model.ops().any(|op| op.record.kind == OpKind::DepthwiseConv2d as u8);
    if depthwise && env::var_os("CARGO_FEATURE_DEPTHWISE").is_none() {
        return Err(format!(
            "{}: the model has depthwise convolutions; build the firmware with `--features depthwise`",
            blob_path.display()
        ));
    }
    println!("cargo::rerun-if-env-changed=CARGO_FEATURE_RESIDUAL");
    let residual = model
        .ops()
        .any(|op| op.record.kind == OpKind::Add as u8 || op.record.flags & mnistc_runtime::format::FLAG_RESIDUAL != 0);
    if residual && env::var_os("CARGO_FEATURE_RESIDUAL").is_none() {
        return Err(format!(
            "{}: the model has adds (residual connections, or an ensemble's mean); build the firmware with \
             `--features residual`",
            blob_path.display()
        ));
    }
    println!("cargo::rerun-if-env-changed=CARGO_FEATURE_TFLITE");
    let tflite = model.ops().any(|op| op.record.requant == mnistc_runtime::format::Requant::Tflite as u8);
    if tflite && env::var_os("CARGO_FEATURE_TFLITE").is_none() {
        return Err(format!(
            "{}: the model uses TFLite's arithmetic (imported from a .tflite); build the firmware with `--features tflite`",
            blob_path.display()
        ));
    }
    let (images, labels) = if raw {
        // No labels: 0xFF is no class.
        (random_inputs(IMAGES, shape.len()), vec![0xFF; IMAGES])
    } else if model.dataset() == "cifar-10" {
        if (shape.h, shape.w, shape.c) != (32, 32, 3) {
            return Err(format!("the model takes {}x{}x{} images; CIFAR-10's are 32x32x3", shape.h, shape.w, shape.c));
        }
        read_cifar(&set_dir.join("test_batch.bin"), CIFAR_IMAGES)?
    } else {
        if shape.c != 1 {
            return Err(format!("the model takes {} channels; the {} images have one", shape.c, model.dataset()));
        }
        (
            read_idx(&set_dir, "t10k-images-idx3-ubyte", 0x0803, &[shape.h, shape.w])?,
            read_idx(&set_dir, "t10k-labels-idx1-ubyte", 0x0801, &[])?,
        )
    };

    // The oracle is the specification (the reference kernels), whatever this machine's CPU offers.
    kernels::set_isa(Some(Isa::Reference));
    let mut arena = vec![0u8; model.arena_size()];
    let mut logits = Vec::with_capacity(labels.len() * model.output_len());
    for image in images.chunks_exact(shape.len()) {
        let features: Vec<i8> = image.iter().map(|&v| v as i8).collect();
        let input = if raw { Input::I8(&features) } else { Input::Pixels(image) };
        match model.run_logits(input, &mut arena) {
            Ok(Logits::I8 { values, .. }) => logits.extend(values.iter().map(|&v| v as u8)),
            Ok(Logits::F32(_)) => return Err("an int8 model returned float logits".into()),
            Err(e) => return Err(format!("the host runtime failed: {e}")),
        }
    }

    write(&out, "raw.bin", &[u8::from(raw)])?;
    write(&out, "model.bin", &blob)?;
    write(&out, "images.bin", &images)?;
    write(&out, "labels.bin", &labels)?;
    write(&out, "logits.bin", &logits)
}

/// `n` int8 inputs of `size` values (as bytes): SplitMix64 from the seed of
/// `scripts/tflm-golden.py --random`, one byte per draw.
fn random_inputs(n: usize, size: usize) -> Vec<u8> {
    let mut state: u64 = 0x6d6e_6973_7463_2121;
    (0..n * size)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Opens `path.gz`, else `path`, decompressing the former.
fn open_maybe_gz(path: &Path) -> Result<(PathBuf, Box<dyn Read>), String> {
    let gz = path.with_extension(format!("{}.gz", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    let open = |p: &Path| File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    if gz.exists() {
        Ok((gz.clone(), Box::new(GzDecoder::new(BufReader::new(open(&gz)?)))))
    } else if path.exists() {
        Ok((path.to_path_buf(), Box::new(BufReader::new(open(path)?))))
    } else {
        println!("cargo::rerun-if-changed={}", gz.display());
        Err(format!("{} not found (nor without .gz): set MNISTC_DATA to the folder that holds cifar-10/", gz.display()))
    }
}

/// The first `n` images (interleaved `HWC`, as the runtime takes them) and labels of a CIFAR-10
/// batch file (records of a label byte and the red, green and blue 32x32 planes).
fn read_cifar(path: &Path, n: usize) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (path, mut reader) = open_maybe_gz(path)?;
    println!("cargo::rerun-if-changed={}", path.display());
    let mut records = vec![0u8; n * 3073];
    reader.read_exact(&mut records).map_err(|e| format!("{}: {e} (fewer than {n} records?)", path.display()))?;
    let mut images = vec![0u8; n * 3072];
    let mut labels = Vec::with_capacity(n);
    for (record, image) in records.chunks_exact(3073).zip(images.chunks_exact_mut(3072)) {
        if record[0] > 9 {
            return Err(format!("{}: label {} is not a CIFAR-10 class", path.display(), record[0]));
        }
        labels.push(record[0]);
        for (c, plane) in record[1..].chunks_exact(1024).enumerate() {
            for (i, &v) in plane.iter().enumerate() {
                image[i * 3 + c] = v;
            }
        }
    }
    Ok((images, labels))
}

/// Reads the first [`IMAGES`] items of the IDX file `dir/name.gz` (else `dir/name`) whose items
/// have the dimensions `item_dims` (`[]` for labels); `magic` is `0x0800 | number of dimensions`.
fn read_idx(dir: &Path, name: &str, magic: u32, item_dims: &[usize]) -> Result<Vec<u8>, String> {
    let gz = dir.join(format!("{name}.gz"));
    let raw = dir.join(name);
    let (path, mut reader): (&Path, Box<dyn Read>) = if gz.exists() {
        (&gz, Box::new(GzDecoder::new(BufReader::new(File::open(&gz).map_err(|e| format!("{}: {e}", gz.display()))?))))
    } else if raw.exists() {
        (&raw, Box::new(BufReader::new(File::open(&raw).map_err(|e| format!("{}: {e}", raw.display()))?)))
    } else {
        println!("cargo::rerun-if-changed={}", gz.display());
        return Err(format!(
            "{} not found (nor without .gz): set MNISTC_DATA to the folder that holds mnist/ and fashion-mnist/",
            gz.display()
        ));
    };
    println!("cargo::rerun-if-changed={}", path.display());
    let fail = |what: String| format!("{}: {what}", path.display());
    let mut word = || -> Result<usize, String> {
        let mut bytes = [0u8; 4];
        reader.read_exact(&mut bytes).map_err(|e| fail(e.to_string()))?;
        Ok(u32::from_be_bytes(bytes) as usize)
    };
    let found = word()?;
    if found != magic as usize {
        return Err(fail(format!("IDX magic {found:#010x}, expected {magic:#010x}")));
    }
    let count = word()?;
    let dims = item_dims.iter().map(|_| word()).collect::<Result<Vec<_>, _>>()?;
    if dims != item_dims {
        return Err(fail(format!("items are {dims:?}, the model takes {item_dims:?}")));
    }
    if count < IMAGES {
        return Err(fail(format!("{count} items, the firmware runs {IMAGES}")));
    }
    let mut items = vec![0u8; IMAGES * item_dims.iter().product::<usize>()];
    reader.read_exact(&mut items).map_err(|e| fail(e.to_string()))?;
    Ok(items)
}
