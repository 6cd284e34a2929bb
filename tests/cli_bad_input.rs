//! Every command, every file argument, every kind of bad file: a table.
//!
//! Each row is one file argument of one command (the model of `build`, the blob of `eval`, the
//! PNG of `predict`, an IDX file in the data directory of `train`, ...). Each column is one kind
//! of bad file: missing, empty, a directory, truncated, random bytes, the wrong kind of file,
//! and the hostile ones for that kind of file (an IDX header claiming 2³¹ images or 10⁶×10⁶
//! pixels, a gzip or PNG decompression bomb, a deeply nested or 100 MB TOML). Every cell must:
//! - exit with code 2 (bad input), without a panic;
//! - print one line, `error: ...`, naming the file;
//! - attempt no allocation above [`MAX_ALLOCATION`] (a counting global allocator watches);
//! - leave the output directory as it was: the previous output file untouched, no partial or
//!   temporary file.
//!
//! Each row is also run once with good files, which must succeed, so a row cannot pass because
//! its command fails for some unrelated reason.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use mnistc::data::Rng;
use mnistc_suite::{data_dir, mnistc, workspace_root};

/// The largest single allocation any bad input may cause. The biggest legitimate one here is
/// the MNIST training images (47 MB).
const MAX_ALLOCATION: usize = 256 << 20;

/// The system allocator, recording the largest request and refusing absurd ones (which aborts
/// the test binary instead of swapping the machine to death).
struct Watch;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s contract;
// refusing a request (returning null) is allowed by that contract.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        if layout.size() > 4 * MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        if layout.size() > 4 * MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        if new_size > 4 * MAX_ALLOCATION {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` with `layout`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watch = Watch;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// What kind of file an argument expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Toml,
    Blob,
    Png,
    Idx,
    Onnx,
}

/// One row: a command with one file argument to spoil.
struct Row {
    name: &'static str,
    kind: Kind,
    /// The command line, with `{}` where the file under test goes.
    args: Vec<String>,
    /// Where the file under test goes. For data-directory rows, a path inside a private copy of
    /// the data directory; otherwise a fresh path in the scratch directory.
    target: PathBuf,
    /// A good file of this kind (copied to `target` for the good run).
    good: PathBuf,
    /// The command writes here (checked to be untouched when it fails).
    output: Option<PathBuf>,
}

/// The bad files, by kind.
fn bad_files(kind: Kind, good: &[u8], fixtures: &Fixtures) -> Vec<(&'static str, Option<Vec<u8>>)> {
    let mut rng = Rng::new(7);
    let random: Vec<u8> = (0..4096).map(|_| rng.below(256) as u8).collect();
    let mut cases: Vec<(&'static str, Option<Vec<u8>>)> = vec![
        ("empty", Some(Vec::new())),
        ("truncated", Some(truncated(kind, good))),
        ("truncated to 3 bytes", Some(good[..3].to_vec())),
        ("random bytes", Some(random)),
    ];
    let wrong = match kind {
        Kind::Toml => fixtures.blob.clone(),
        Kind::Blob => fixtures.labels_raw.clone(),
        Kind::Png => fixtures.toml.clone(),
        Kind::Idx => fixtures.png.clone(),
        Kind::Onnx => fixtures.blob.clone(),
    };
    cases.push(("the wrong kind of file", Some(wrong)));
    match kind {
        Kind::Toml => {
            cases.push((
                "deeply nested TOML",
                Some(format!("x = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000)).into_bytes()),
            ));
            cases.push((
                "deeply nested inline tables",
                Some(format!("x = {}{}\n", "{a=".repeat(50_000), "}".repeat(50_000)).into_bytes()),
            ));
            let mut huge = b"name = \"huge\"\n".to_vec();
            while huge.len() < 100 << 20 {
                huge.extend_from_slice(b"# a comment line to make the file large, never read as a model\n");
            }
            cases.push(("a 100 MB TOML", Some(huge)));
            cases.push(("invalid UTF-8", Some(b"name = \"\xff\xfe\"\n".to_vec())));
        }
        Kind::Idx => {
            cases.push(("IDX header claiming 2^31 images", Some(idx_images(1 << 31, 28, 28, 0))));
            cases.push(("IDX header claiming 10^6 x 10^6 pixels", Some(idx_images(1, 1_000_000, 1_000_000, 0))));
            cases.push(("IDX header with every size u32::MAX", Some(idx_images(u32::MAX, u32::MAX, u32::MAX, 0))));
            cases.push(("gzip bomb (1 GB of zeros)", Some(fixtures.gzip_bomb.clone())));
            cases.push(("labels file where images are expected", Some(fixtures.labels_raw.clone())));
        }
        Kind::Png => {
            cases.push(("PNG decompression bomb (20000x20000)", Some(fixtures.png_bomb.clone())));
            cases.push(("PNG header claiming 10^6 x 10^6 pixels", Some(png(1_000_000, 1_000_000, &[]))));
            cases.push(("PNG palette of 7 bytes (a panic in png 0.18.1)", Some(PNG_PALETTE_7_BYTES.to_vec())));
        }
        Kind::Blob => {
            // One weight byte changed: only the CRC-32 can tell.
            let mut corrupt = good.to_vec();
            let last = corrupt.len() - 1;
            corrupt[last] ^= 0x55;
            cases.push(("a blob with one byte changed (CRC-32)", Some(corrupt)));
            // A format version from the future (bytes 4..6 of the header).
            let mut future = good.to_vec();
            future[4..6].copy_from_slice(&u16::MAX.to_le_bytes());
            cases.push(("a blob of an unknown format version", Some(future)));
        }
        Kind::Onnx => {}
    }
    cases
}

/// The first half of a good file; a TOML is cut inside its first string, so what is left is
/// not valid TOML (half a TOML can be a valid, shorter one).
fn truncated(kind: Kind, good: &[u8]) -> Vec<u8> {
    match kind {
        Kind::Toml => {
            let quote = good.iter().position(|&b| b == b'"').expect("a TOML fixture with a string");
            good[..quote + 2].to_vec()
        }
        _ => good[..good.len() / 2].to_vec(),
    }
}

/// An IDX images file: the header, then `data` bytes of pixels.
fn idx_images(n: u32, rows: u32, cols: u32, data: usize) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for v in [n, rows, cols] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.resize(16 + data, 0);
    b
}

fn gzip(bytes: impl FnOnce(&mut dyn Write)) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bytes(&mut enc);
    enc.finish().unwrap()
}

/// A 7 × 227 palette PNG whose `PLTE` chunk is 7 bytes, not a multiple of 3, and whose `IDAT`
/// is cut short: `png` 0.18.1 panics expanding its palette (image-rs/image-png#694). Found by
/// the `png` fuzz target (`crash-1e43f798…`, less its two size bytes, with the CRCs the fuzzing
/// build does not check made right, so the release decoder gets as far as the palette).
const PNG_PALETTE_7_BYTES: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x07\0\0\0\xe3\x01\x03\0\0\x01\x04N\xac\x92\
    \0\0\0\x07PLTE\0\0\0\xff\xff\xff\xa5\x8cy\xcf\x1c\0\0\0\x0eIDATx\x9cc``DBT\x02\0\0_\xff\x09";

/// A grey 8-bit PNG of `width × height` whose IDAT is the zlib stream `idat` (left empty: one
/// that decodes to nothing).
fn png(width: u32, height: u32, idat: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Good files of every kind, and the large hostile ones (made once).
struct Fixtures {
    dir: tempfile::TempDir,
    toml: Vec<u8>,
    blob: Vec<u8>,
    png: Vec<u8>,
    labels_raw: Vec<u8>,
    gzip_bomb: Vec<u8>,
    png_bomb: Vec<u8>,
}

/// A tiny model, so the good runs are quick.
const MODEL: &str = "name = \"tiny\"\n\
[[layers]]\ntype = \"conv2d\"\nfilters = 2\nkernel = 3\nstride = 2\n\
[[layers]]\ntype = \"maxpool2d\"\nsize = 2\n\
[[layers]]\ntype = \"dense\"\nunits = 10\n\
[data]\ndataset = \"mnist\"\n\
[train]\nepochs = 1\n";

fn fixtures() -> Fixtures {
    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("good.toml");
    std::fs::write(&toml_path, MODEL).unwrap();
    let blob_path = dir.path().join("good.bin");
    let (code, _, err) = mnistc(&[
        "build",
        &s(&toml_path),
        "-o",
        &s(&blob_path),
        "--data",
        &s(&data_dir()),
        "--train-limit",
        "300",
        "--no-cache",
        "--quiet",
    ]);
    assert_eq!(code, 0, "building the good blob failed: {err}");
    let mut png_bytes = Vec::new();
    let img = image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * 9 + y * 3) % 256) as u8]));
    img.write_to(&mut std::io::Cursor::new(&mut png_bytes), image::ImageFormat::Png).unwrap();
    let labels_raw = mnistc::data::read_file(&data_dir().join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    // 1 GiB of zeros behind a header that claims one 28x28 image: a reader that trusts the
    // stream instead of the header inflates all of it.
    let gzip_bomb = gzip(|w| {
        w.write_all(&idx_images(1, 28, 28, 28 * 28)).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            w.write_all(&zeros).unwrap();
        }
    });
    // A valid 20000 x 20000 grey PNG of zeros: 400 MB decoded, 400 KB on disk.
    let side = 20_000u32;
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; side as usize + 1];
    for _ in 0..side {
        zlib.write_all(&row).unwrap();
    }
    let png_bomb = png(side, side, &zlib.finish().unwrap());
    Fixtures {
        toml: MODEL.as_bytes().to_vec(),
        blob: std::fs::read(&blob_path).unwrap(),
        png: png_bytes,
        labels_raw,
        gzip_bomb,
        png_bomb,
        dir,
    }
}

/// A private data directory: links to the real MNIST files, one of which a row replaces.
fn data_copy(root: &Path) -> PathBuf {
    let mnist = root.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for f in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    {
        let link = mnist.join(format!("{f}.gz"));
        if !link.exists() {
            std::os::unix::fs::symlink(data_dir().join(format!("mnist/{f}.gz")), &link).unwrap();
        }
    }
    mnist
}

fn rows(fx: &Fixtures, scratch: &Path) -> Vec<Row> {
    let good = fx.dir.path();
    let (toml, blob, onnx, png) =
        (good.join("good.toml"), good.join("good.bin"), good.join("good.onnx"), good.join("good.png"));
    std::fs::write(&png, &fx.png).unwrap();
    let idx = data_dir().join("mnist/t10k-images-idx3-ubyte.gz");
    let space_base = workspace_root().join("tests/fixtures/search-base.toml");
    let out = scratch.join("out");
    let data = s(&data_dir());
    let t = |name: &str| scratch.join(name);
    let mk = |name: &'static str, kind: Kind, args: &[&str], target: PathBuf, good: &Path, output: Option<PathBuf>| {
        Row { name, kind, args: args.iter().map(|a| a.to_string()).collect(), target, good: good.to_path_buf(), output }
    };
    let out_bin = s(&out.join("model.bin"));
    let out_ckpt = s(&out.join("model.ckpt"));
    let out_search = s(&out.join("search"));
    let limit = ["--train-limit", "100", "--no-cache", "--quiet"];
    let with = |base: &[&str], extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let mut rows = vec![
        mk("summary MODEL.toml", Kind::Toml, &["summary", "{}"], t("m.toml"), &toml, None),
        Row {
            args: with(&["train", "{}", "-o", &out_ckpt, "--data", &data], &limit),
            ..mk("train MODEL.toml", Kind::Toml, &[], t("m.toml"), &toml, Some(out.join("model.ckpt")))
        },
        Row {
            args: with(&["build", "{}", "-o", &out_bin, "--data", &data], &limit),
            ..mk("build MODEL.toml", Kind::Toml, &[], t("m.toml"), &toml, Some(out.join("model.bin")))
        },
        mk("eval OUT.bin", Kind::Blob, &["eval", "{}", "--data", &data, "--limit", "20"], t("b.bin"), &blob, None),
        mk("inspect OUT.bin", Kind::Blob, &["inspect", "{}"], t("b.bin"), &blob, None),
        Row {
            args: with(&["export-c", "{}", "-o", &s(&out.join("model"))], &["--test-images", "2", "--data", &data]),
            ..mk("export-c OUT.bin", Kind::Blob, &[], t("b.bin"), &blob, Some(out.join("model.c")))
        },
        Row {
            args: with(&["features", "{}", "-o", &s(&out.join("feat"))], &["--data", &data, "--limit", "3"]),
            ..mk("features MODEL", Kind::Blob, &[], t("b.bin"), &blob, Some(out.join("feat.test.npy")))
        },
        mk("predict OUT.bin", Kind::Blob, &["predict", "{}", &s(&png)], t("b.bin"), &blob, None),
        mk("predict IMAGE.png", Kind::Png, &["predict", &s(&blob), "{}"], t("i.png"), &png, None),
        mk(
            "predict --idx FILE",
            Kind::Idx,
            &["predict", &s(&blob), "--idx", "{}", "--limit", "3"],
            t("i.idx"),
            &idx,
            None,
        ),
        mk(
            "check OUT.bin",
            Kind::Blob,
            &["check", "{}", "--onnx", &s(&onnx), "--data", &data, "--limit", "5"],
            t("b.bin"),
            &blob,
            None,
        ),
        mk(
            "check --onnx FILE",
            Kind::Onnx,
            &["check", &s(&blob), "--onnx", "{}", "--data", &data, "--limit", "5"],
            t("o.onnx"),
            &onnx,
            None,
        ),
        mk("bench OUT.bin", Kind::Blob, &["bench", "{}", "--onnx", &s(&onnx), "--runs", "2"], t("b.bin"), &blob, None),
        mk(
            "bench --onnx FILE",
            Kind::Onnx,
            &["bench", &s(&blob), "--onnx", "{}", "--runs", "2"],
            t("o.onnx"),
            &onnx,
            None,
        ),
        Row {
            args: with(
                &["search", "{}", "-o", &out_search, "--trials", "1", "--data", &data, "--epochs", "1"],
                &["--train-limit", "100", "--quiet"],
            ),
            ..mk(
                "search SPACE.toml",
                Kind::Toml,
                &[],
                t("space.toml"),
                &workspace_root().join("tests/fixtures/search-tiny.toml"),
                Some(out.join("search")),
            )
        },
    ];
    // The search space names its base model relative to itself.
    std::fs::copy(&space_base, t("search-base.toml")).unwrap();
    // The data directory's files, read by training and by evaluation.
    let data_root = scratch.join("data");
    let mnist = data_copy(&data_root);
    let dr = s(&data_root);
    rows.push(Row {
        args: with(&["build", &s(&toml), "-o", &out_bin, "--data", &dr], &limit),
        ..mk(
            "build: data dir train images",
            Kind::Idx,
            &[],
            mnist.join("train-images-idx3-ubyte.gz"),
            &data_dir().join("mnist/train-images-idx3-ubyte.gz"),
            Some(out.join("model.bin")),
        )
    });
    rows.push(Row {
        args: with(&["train", &s(&toml), "-o", &out_ckpt, "--data", &dr], &limit),
        ..mk(
            "train: data dir train labels",
            Kind::Idx,
            &[],
            mnist.join("train-labels-idx1-ubyte.gz"),
            &data_dir().join("mnist/train-labels-idx1-ubyte.gz"),
            Some(out.join("model.ckpt")),
        )
    });
    rows.push(mk(
        "eval: data dir test images",
        Kind::Idx,
        &["eval", &s(&blob), "--data", &dr, "--limit", "20"],
        mnist.join("t10k-images-idx3-ubyte.gz"),
        &data_dir().join("mnist/t10k-images-idx3-ubyte.gz"),
        None,
    ));
    rows
}

/// Runs one row with `file` (None: missing; a directory when `dir`) at its target.
fn run_case(row: &Row, file: Option<&[u8]>, dir: bool) -> (u8, String, String) {
    let _ = std::fs::remove_file(&row.target);
    let _ = std::fs::remove_dir_all(&row.target);
    if dir {
        std::fs::create_dir_all(&row.target).unwrap();
    } else if let Some(bytes) = file {
        std::fs::write(&row.target, bytes).unwrap();
    }
    let args: Vec<String> = row.args.iter().map(|a| a.replace("{}", &s(&row.target))).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    mnistc(&argv)
}

/// A listing of the output directory: every file with its content.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
                all.push((p, Vec::new()));
            } else {
                let bytes = std::fs::read(&p).unwrap();
                all.push((p, bytes));
            }
        }
    }
    all.sort();
    all
}

#[test]
fn every_command_refuses_every_bad_file_cleanly() {
    let fx = fixtures();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    let rows = rows(&fx, scratch.path());
    // The good run of every row must succeed, or the table proves nothing.
    std::fs::create_dir_all(&out).unwrap();
    for row in &rows {
        let good = std::fs::read(&row.good).unwrap();
        let (code, _, err) = run_case(row, Some(&good), false);
        assert_eq!(code, 0, "{}: the good file fails: {err}", row.name);
        if let Some(output) = &row.output {
            assert!(output.exists(), "{}: the good run wrote no {}", row.name, output.display());
        }
    }
    // Previous outputs, which failed runs must leave as they are.
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("search")).unwrap();
    std::fs::write(out.join("model.bin"), b"the previous blob").unwrap();
    std::fs::write(out.join("model.ckpt"), b"the previous checkpoint").unwrap();
    std::fs::write(out.join("search/journal.jsonl"), b"").unwrap();
    let before = snapshot(&out);

    let mut cells = 0;
    let mut failures = Vec::new();
    for row in &rows {
        let good = std::fs::read(&row.good).unwrap();
        let mut cases: Vec<(&str, Option<Vec<u8>>, bool)> = vec![("missing", None, false), ("a directory", None, true)];
        cases.extend(bad_files(row.kind, &good, &fx).into_iter().map(|(n, b)| (n, b, false)));
        for (case, bytes, dir) in cases {
            LARGEST.store(0, Ordering::Relaxed);
            let (code, stdout, err) = run_case(row, bytes.as_deref(), dir);
            let largest = LARGEST.load(Ordering::Relaxed);
            cells += 1;
            let mut problems = Vec::new();
            if code != 2 {
                problems.push(format!("exit code {code}, expected 2"));
            }
            if err.contains("panic") {
                problems.push("panicked".into());
            }
            let first = err.lines().next().unwrap_or("");
            if !first.starts_with("error: ") {
                problems.push("no `error: ` line".into());
            }
            // The file is named by its path; the data-directory rows may name the folder the
            // file is missing from.
            let named = first.contains(&s(&row.target))
                || (case == "missing" || case == "a directory")
                    && row.target.parent().is_some_and(|p| first.contains(&s(p)));
            if !named {
                problems.push("the message does not name the file".into());
            }
            if err.lines().count() != 1 && !first.contains("missing mnist files") {
                problems.push(format!("{} lines of error", err.lines().count()));
            }
            if largest > MAX_ALLOCATION {
                problems.push(format!("allocated {largest} bytes at once"));
            }
            if snapshot(&out) != before {
                problems.push("the output directory changed".into());
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{} / {case}: {}\n    stderr: {}\n    stdout: {}",
                    row.name,
                    problems.join("; "),
                    err.trim(),
                    stdout.chars().take(200).collect::<String>()
                ));
            }
        }
        // Put the good file back: the data-directory rows share one copy of the data.
        let _ = std::fs::remove_file(&row.target);
        let _ = std::fs::remove_dir_all(&row.target);
        std::fs::write(&row.target, &good).unwrap();
    }
    eprintln!("{cells} bad inputs tried across {} command arguments", rows.len());
    assert!(failures.is_empty(), "{} of {cells} cells failed:\n{}", failures.len(), failures.join("\n"));
    assert!(cells >= 150, "only {cells} cells");
}
