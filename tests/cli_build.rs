//! The build-side commands (`build`, `inspect`, `eval`, `predict`, `check`, `bench`) run
//! in-process: exit codes, files, JSON keys, and the budgets of the reference CNN; the module
//! `cifar` runs them on a colour CIFAR-10 model.

mod build_pictures;

use std::path::Path;
use std::sync::OnceLock;

use mnistc::lower::budget;
use mnistc::spec::ModelSpec;
use mnistc_suite::{data_dir, mnistc, workspace_root};

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A blob built once for these tests: the parity fixture on 1,500 images, one epoch.
fn built() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = workspace_root().join("tests/fixtures/parity.toml");
        let (code, out, err) = mnistc(&[
            "build",
            &path(&model),
            "-o",
            &path(&dir.path().join("p.bin")),
            "--data",
            &path(&data_dir()),
            "--train-limit",
            "1500",
            "--no-cache",
            "--quiet",
            "--json",
            "--emit",
            "c",
        ]);
        assert_eq!(code, 0, "build failed: {err}");
        let report = json(&out);
        for key in ["flash_bytes", "arena_bytes", "macs", "float", "device", "float_accuracy", "device_accuracy"] {
            assert!(report.get(key).is_some(), "build --json lacks `{key}`");
        }
        dir
    })
}

#[test]
fn build_writes_the_blob_onnx_and_reports() {
    let dir = built().path();
    let pictures = ["p.report.html", "p.curves.png", "p.curves.svg", "p.confusion.png", "p.mistakes.png"];
    for f in ["p.bin", "p.onnx", "p.report.json", "p.report.md", "p.h", "p.c"].into_iter().chain(pictures) {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let report = json(&std::fs::read_to_string(dir.join("p.report.json")).unwrap());
    assert_eq!(report["flash_bytes"].as_u64().unwrap(), std::fs::metadata(dir.join("p.bin")).unwrap().len());
    let md = std::fs::read_to_string(dir.join("p.report.md")).unwrap();
    for needle in ["on-device test accuracy", "Confusion matrix", "precision", "arena (RAM)"] {
        assert!(md.contains(needle), "report.md lacks `{needle}`");
    }
    // No temporary files left behind by the atomic writes.
    assert!(std::fs::read_dir(dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')));
}

#[test]
fn build_draws_curves_heat_map_and_mistakes_from_the_reported_numbers() {
    let test = mnistc::data::load(
        &mnistc::data::DataDir::new(data_dir()),
        mnistc::data::Dataset::Mnist,
        mnistc::data::Split::Test,
    )
    .unwrap();
    build_pictures::check(built().path(), "p", &test);
}

/// The values of a float32 or uint8 `.npy` file written by `mnistc features`, and its shape.
fn npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{}", path.display());
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    let shape = &header[header.find("'shape': (").unwrap() + 10..];
    let shape: Vec<usize> = shape[..shape.find(')').unwrap()]
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().parse().unwrap())
        .collect();
    let data = &bytes[10 + len..];
    let values: Vec<f64> = if header.contains("'<f4'") {
        data.chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect()
    } else {
        data.iter().map(|&b| b as f64).collect()
    };
    assert_eq!(values.len(), shape.iter().product::<usize>());
    (shape, values)
}

#[test]
fn features_of_the_last_op_are_the_blobs_logits_and_csv_equals_npy() {
    let dir = built().path();
    let blob = std::fs::read(dir.join("p.bin")).unwrap();
    let model = mnistc_runtime::Model::from_bytes(&blob).unwrap();
    let last = (model.op_count() - 1).to_string();
    let out = dir.join("feat");
    let (code, stdout, err) = mnistc(&[
        "features",
        &path(&dir.join("p.bin")),
        "--layer",
        &last,
        "-o",
        &path(&out),
        "--data",
        &path(&data_dir()),
        "--limit",
        "40",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let report = json(&stdout);
    assert_eq!(report["features"], 10);
    let test = mnistc::data::load(
        &mnistc::data::DataDir::new(data_dir()),
        mnistc::data::Dataset::Mnist,
        mnistc::data::Split::Test,
    )
    .unwrap()
    .head(40);
    let (shape, values) = npy(&dir.join("feat.test.npy"));
    assert_eq!(shape, [40, 10]);
    for i in 0..40 {
        let logits = mnistc::verify::on_device::logits(&model, test.image(i)).unwrap();
        let got: Vec<f32> = values[i * 10..][..10].iter().map(|&v| v as f32).collect();
        assert_eq!(got, logits, "image {i}");
    }
    let (shape, labels) = npy(&dir.join("feat.test.labels.npy"));
    assert_eq!(shape, [40]);
    assert_eq!(labels, test.labels.iter().map(|&l| l as f64).collect::<Vec<_>>());
    let csv = std::fs::read_to_string(dir.join("feat.test.csv")).unwrap();
    // CSV holds each float's shortest round-trip decimal: parsed as f32 it is the same value.
    let rows: Vec<Vec<f32>> = csv.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 40);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0] as f64, labels[i]);
        assert_eq!(row[1..], values[i * 10..][..10].iter().map(|&v| v as f32).collect::<Vec<_>>());
    }
    // By default the penultimate op: the input of the last one, as many values as it reads.
    let (code, stdout, err) = mnistc(&[
        "features",
        &path(&dir.join("p.bin")),
        "-o",
        &path(&out),
        "--data",
        &path(&data_dir()),
        "--limit",
        "5",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let penultimate = model.ops().nth(model.op_count() - 2).unwrap();
    assert_eq!(json(&stdout)["features"], penultimate.output.len);
}

/// The `const uint8_t` / `int8_t` values of the C array `name` in `source`.
fn c_array(source: &str, name: &str) -> Vec<i64> {
    let start = source.find(&format!("{name}[")).unwrap_or_else(|| panic!("no array `{name}`"));
    let body = &source[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find("};").unwrap()];
    body.split(|c: char| c == ',' || c == '{' || c == '}' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| t.strip_prefix("0x").map_or_else(|| t.parse().unwrap(), |h| i64::from_str_radix(h, 16).unwrap()))
        .collect()
}

#[test]
fn export_c_writes_the_blob_its_sizes_and_test_vectors() {
    let dir = built().path();
    let blob = std::fs::read(dir.join("p.bin")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("digits-test");
    let (code, stdout, err) = mnistc(&[
        "export-c",
        &path(&dir.join("p.bin")),
        "-o",
        &path(&base),
        "--test-images",
        "3",
        "--data",
        &path(&data_dir()),
    ]);
    assert_eq!(code, 0, "export-c failed: {err}");
    assert!(stdout.contains("digits-test.h") && stdout.contains("digits-test.c"), "{stdout}");
    let h = std::fs::read_to_string(out.path().join("digits-test.h")).unwrap();
    let c = std::fs::read_to_string(out.path().join("digits-test.c")).unwrap();

    // The blob round-trips, aligned, with the sizes a C project needs.
    let bytes: Vec<u8> = c_array(&c, "digits_test_blob").into_iter().map(|b| b as u8).collect();
    assert_eq!(bytes, blob);
    assert!(c.contains("_Alignas(16) const uint8_t digits_test_blob[DIGITS_TEST_BLOB_SIZE]"));
    assert!(c.contains("#include \"digits-test.h\""));
    let aligned = mnistc::lower::emit::AlignedBytes::from(blob.as_slice());
    let model = mnistc_runtime::Model::from_bytes(aligned.as_bytes()).unwrap();
    for define in [
        format!("#define DIGITS_TEST_BLOB_SIZE {}u", blob.len()),
        format!("#define DIGITS_TEST_ARENA_SIZE {}u", model.arena_size()),
        "#define DIGITS_TEST_INPUT_H 28u".to_string(),
        "#define DIGITS_TEST_INPUT_C 1u".to_string(),
        format!("#define DIGITS_TEST_CLASSES {}u", model.output_len()),
        "#define DIGITS_TEST_TEST_COUNT 3u".to_string(),
    ] {
        assert!(h.contains(&define), "digits-test.h lacks `{define}`");
    }

    // The test vectors: the first test images, their labels, the runtime's logits for them.
    let test = mnistc::data::load(
        &mnistc::data::DataDir::new(data_dir()),
        mnistc::data::Dataset::Mnist,
        mnistc::data::Split::Test,
    )
    .unwrap()
    .head(3);
    let pixels: Vec<u8> = c_array(&c, "digits_test_test_pixels").into_iter().map(|b| b as u8).collect();
    assert_eq!(pixels, test.pixels);
    let labels: Vec<u8> = c_array(&c, "digits_test_test_labels").into_iter().map(|b| b as u8).collect();
    assert_eq!(labels, test.labels);
    let mut arena = vec![0u8; model.arena_size()];
    let mut want = Vec::new();
    for i in 0..3 {
        match model.run_logits(mnistc_runtime::Input::Pixels(test.image(i)), &mut arena).unwrap() {
            mnistc_runtime::Activations::I8 { values, .. } => want.extend(values.iter().map(|&v| i64::from(v))),
            mnistc_runtime::Activations::F32(_) => panic!("an int8 blob"),
        }
    }
    assert_eq!(c_array(&c, "digits_test_test_logits"), want);

    // A C compiler takes both files without a warning (when the machine has one).
    if std::process::Command::new("cc").arg("--version").output().is_ok() {
        let status = std::process::Command::new("cc")
            .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-std=c11", "-pedantic"])
            .arg(out.path().join("digits-test.c"))
            .status()
            .unwrap();
        assert!(status.success(), "cc rejected the generated C");
    }

    // A name that is not a C identifier is refused, and nothing is written.
    let bad = out.path().join("other");
    let (code, _, err) = mnistc(&["export-c", &path(&dir.join("p.bin")), "-o", &path(&bad), "--name", "9lives"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a C identifier"), "{err}");
    assert!(!out.path().join("other.h").exists() && !out.path().join("other.c").exists());
}

#[test]
fn inspect_eval_predict_check_and_bench_read_the_blob() {
    let dir = built().path();
    let blob = path(&dir.join("p.bin"));
    let data = path(&data_dir());

    let (code, out, err) = mnistc(&["inspect", &blob, "--json"]);
    assert_eq!(code, 0, "{err}");
    let inspect = json(&out);
    assert_eq!(inspect["flash_bytes"].as_u64().unwrap(), std::fs::metadata(dir.join("p.bin")).unwrap().len());
    assert!(inspect["arena_bytes"].as_u64().unwrap() > 0);
    assert_eq!(inspect["ops"].as_array().unwrap().len(), 4);
    assert_eq!(inspect["ops"][0]["op"], "conv2d+maxpool2d");
    assert_eq!(inspect["ops"][1]["op"], "conv2d+avgpool2d");

    let (code, out, err) = mnistc(&["eval", &blob, "--data", &data, "--limit", "500", "--json"]);
    assert_eq!(code, 0, "{err}");
    let eval = json(&out);
    assert_eq!(eval["images"], 500);
    assert!(eval["test_accuracy"].as_f64().unwrap() > 0.7);
    assert_eq!(eval["confusion"].as_array().unwrap().len(), 10);
    assert_eq!(eval["per_class"].as_array().unwrap().len(), 10);
    let total: u64 = eval["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 500);

    let idx = path(&data_dir().join("mnist/t10k-images-idx3-ubyte.gz"));
    let (code, out, err) = mnistc(&["predict", &blob, "--idx", &idx, "--limit", "3", "--json"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(json).collect();
    assert_eq!(lines.len(), 3);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["index"], i);
        assert_eq!(l["scores"].as_array().unwrap().len(), 10);
        let class = l["class"].as_u64().unwrap() as usize;
        assert_eq!(l["name"], class.to_string());
        let scores: Vec<f64> = l["scores"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(scores.iter().all(|&s| s <= scores[class]));
    }

    let (code, out, err) = mnistc(&["check", &blob, "--data", &data, "--limit", "200", "--per-layer", "--json"]);
    assert_eq!(code, 0, "{err}");
    let check = json(&out);
    assert_eq!(check["passed"], true);
    assert_eq!(check["images"], 200);
    assert_eq!(check["top1_agreement"], 1.0);
    assert_eq!(check["max_lsb_diff"], 0);

    let (code, out, err) = mnistc(&["bench", &blob, "--runs", "20", "--json"]);
    assert_eq!(code, 0, "{err}");
    let bench = json(&out);
    for key in ["runtime_us", "runtime_scalar_us", "tract_us", "macs"] {
        assert!(bench[key].as_f64().is_some_and(|v| v > 0.0), "bench lacks `{key}`: {bench}");
    }
}

#[test]
fn predict_converts_any_png_to_a_light_on_dark_input() {
    let dir = built().path();
    let blob = path(&dir.join("p.bin"));
    // A dark "1" on a light, coloured, 56x40 background: grey, resized, inverted.
    let png = dir.join("one.png");
    let img = image::RgbImage::from_fn(40, 56, |x, y| {
        if (18..23).contains(&x) && (8..48).contains(&y) {
            image::Rgb([20, 20, 30])
        } else {
            image::Rgb([240, 235, 220])
        }
    });
    img.save(&png).unwrap();
    let (code, out, err) = mnistc(&["predict", &blob, &path(&png), "--json"]);
    assert_eq!(code, 0, "{err}");
    let line = json(&out);
    assert_eq!(line["class"], 1, "a vertical bar should read as a 1: {line}");
    let (code, _, err) = mnistc(&["predict", &blob, &path(&dir.join("missing.png"))]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.png"), "{err}");
}

#[test]
fn malformed_blobs_and_budgets_fail_with_clear_messages() {
    let dir = built().path();
    let mut bytes = std::fs::read(dir.join("p.bin")).unwrap();
    bytes.truncate(bytes.len() - 7);
    let bad = dir.join("bad.bin");
    std::fs::write(&bad, &bytes).unwrap();
    for cmd in ["inspect", "eval", "bench"] {
        let (code, _, err) = mnistc(&[cmd, &path(&bad)]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("not a valid mnistc blob") && err.contains("truncated"), "{cmd}: {err}");
    }

    // A flash budget the architecture cannot meet fails before any training.
    let spec = std::fs::read_to_string(workspace_root().join("tests/fixtures/parity.toml")).unwrap();
    let tight = dir.join("tight.toml");
    std::fs::write(&tight, format!("{spec}\n[target]\nflash = 4000\nram = 100000\n")).unwrap();
    let started = std::time::Instant::now();
    let out_bin = dir.join("tight.bin");
    let (code, _, err) =
        mnistc(&["build", &path(&tight), "-o", &path(&out_bin), "--data", &path(&data_dir()), "--no-cache"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("target.flash") && err.contains("over the budget of 4000 bytes"), "{err}");
    assert!(started.elapsed().as_secs() < 20, "the budget check should come before training");
    assert!(!out_bin.exists());

    let (code, _, err) = mnistc(&["build", &path(&dir.join("nope.toml")), "-o", &path(&out_bin)]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn the_reference_cnn_fits_its_arena_and_overhead_bars() {
    let spec = ModelSpec::from_path(&workspace_root().join("models/digits.toml")).unwrap();
    let fp = budget::estimate(&spec).unwrap();
    assert_eq!(fp.macs, 2_440_960);
    // TFLite Micro needs a 30,464-byte arena for this CNN; the fused plan needs at most 10 KB.
    assert!(fp.arena_bytes <= 10 * 1024, "arena {}", fp.arena_bytes);
    // Everything but int8 weights and int32 biases (34,826 parameters): at most 2 KB.
    let weights_and_biases = (9 * 32 + 32 * 4) + (288 * 64 + 64 * 4) + (1600 * 10 + 10 * 4);
    assert!(fp.flash_bytes - weights_and_biases <= 2048, "overhead {}", fp.flash_bytes - weights_and_biases);
}

#[test]
fn build_reuses_the_training_that_train_stored_in_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let model = path(&workspace_root().join("tests/fixtures/parity.toml"));
    let data = path(&data_dir());
    let common = ["--data", &data, "--train-limit", "800", "--epochs", "1", "--seed", "1234"];
    let ckpt = path(&dir.path().join("t.ckpt"));
    let mut train = vec!["train", &model, "-o", &ckpt, "--quiet"];
    train.extend_from_slice(&common);
    let (code, _, err) = mnistc(&train);
    assert_eq!(code, 0, "{err}");
    let blob = path(&dir.path().join("b.bin"));
    let mut build = vec!["build", &model, "-o", &blob];
    build.extend_from_slice(&common);
    let (code, _, err) = mnistc(&build);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("reusing the training cached in"), "{err}");
    assert!(!err.contains("training parity"), "{err}");
}

/// The shipped models (search spaces aside), sorted by name.
fn shipped_models() -> Vec<(std::path::PathBuf, String)> {
    let mut models: Vec<_> = std::fs::read_dir(workspace_root().join("models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        // Search spaces name a `base`; they are not models.
        .filter(|p| !std::fs::read_to_string(p).unwrap().lines().any(|l| l.starts_with("base = ")))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (p, name)
        })
        .collect();
    models.sort();
    models
}

#[test]
fn every_shipped_model_is_built_by_one_of_the_two_tests_below() {
    let names: Vec<String> = shipped_models().into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        names,
        [
            "cifar-dscnn",
            "cifar-resnet8",
            "cifar-transfer",
            "digits-ensemble",
            "digits-svm",
            "digits",
            "fashion-mlp",
            "fashion-svm",
            "fashion",
            "mlp"
        ]
    );
}

// Two tests, so that the test harness's two threads build them side by side.
#[test]
fn every_shipped_cifar_model_builds_and_checks() {
    build_and_check_shipped(|name| name.starts_with("cifar"));
}

#[test]
fn every_shipped_mnist_model_builds_and_checks() {
    build_and_check_shipped(|name| !name.starts_with("cifar"));
}

/// Every model shipped in `models/` that `which` names builds (briefly trained) and its blob passes `check` against
/// tract: a spec that validates must deploy, the MLPs with their explicit `flatten` included, and
/// the CIFAR-10 depthwise-separable CNN, ResNet-8 and the transfer model (its `[init] from`
/// reads `../shared/models/vww_96_float.tflite` beside the checkout) (whose 600 images and one epoch teach them nothing:
/// only the digit models' accuracy is asserted).
fn build_and_check_shipped(which: impl Fn(&str) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    for (model, name) in shipped_models().iter().filter(|(_, n)| which(n)) {
        let out = dir.path().join(format!("{name}.bin"));
        let (code, stdout, err) = mnistc(&[
            "build",
            &path(model),
            "-o",
            &path(&out),
            "--data",
            &path(&data_dir()),
            "--train-limit",
            "600",
            "--epochs",
            "1",
            "--no-cache",
            "--quiet",
            "--json",
        ]);
        assert_eq!(code, 0, "{name}: build failed: {err}");
        let report = json(&stdout);
        if !name.starts_with("cifar") {
            assert!(report["device_accuracy"].as_f64().unwrap() > 0.3, "{name}: {report}");
        }
        if name.ends_with("-svm") {
            // The SVM head replaced the last dense layer: fitted on the training split's features
            // (600 images, 5 % held out for C), every C of the file tried.
            let head = &report["head"];
            assert_eq!(head["type"], "svm", "{name}: {head}");
            let fit = &head["fits"][0];
            assert_eq!((fit["samples"].as_u64(), fit["pca"].as_u64()), (Some(570), Some(128)), "{name}: {fit}");
            assert_eq!(fit["validation_from"], "validation split");
            assert_eq!(fit["trials"].as_array().unwrap().len(), 3, "{name}: {fit}");
            assert_eq!(head["svm_float_accuracy"], report["float_accuracy"]);
            assert!(head["softmax_float_accuracy"].as_f64().unwrap() > 0.0, "{name}: {head}");
        } else {
            assert_eq!(report["head"]["type"], "softmax", "{name}");
        }
        let (code, stdout, err) =
            mnistc(&["check", &path(&out), "--data", &path(&data_dir()), "--limit", "50", "--per-layer", "--json"]);
        assert_eq!(code, 0, "{name}: check failed: {err}");
        assert_eq!(json(&stdout)["passed"], true, "{name}");
    }
}

mod cifar {
    //! CIFAR-10 end to end through the command line: a small colour residual CNN with batchnorms,
    //! an identity shortcut and a global average pool (`tests/fixtures/cifar-residual.toml`)
    //! trained for two epochs on 5,000 images with the CIFAR augmentation, lowered to int8
    //! (batchnorms folded, pools fused where a conv feeds them alone, the add reading the block's
    //! input three ops back), run by the runtime, bit-exact with tract layer by layer, and
    //! classifying a colour PNG exactly as it classifies the same pixels from the test batch.

    use std::path::Path;
    use std::sync::OnceLock;

    use mnistc::data::{self, DataDir, Dataset, Split};
    use mnistc_suite::{data_dir, mnistc, workspace_root};

    fn path(p: &Path) -> String {
        p.display().to_string()
    }

    fn json(s: &str) -> serde_json::Value {
        serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
    }

    /// The blob, built once for these tests, and its build report.
    fn built() -> &'static (tempfile::TempDir, serde_json::Value) {
        static BUILT: OnceLock<(tempfile::TempDir, serde_json::Value)> = OnceLock::new();
        BUILT.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let model = workspace_root().join("tests/fixtures/cifar-residual.toml");
            let (code, out, err) = mnistc(&[
                "build",
                &path(&model),
                "-o",
                &path(&dir.path().join("c.bin")),
                "--data",
                &path(&data_dir()),
                "--no-cache",
                "--quiet",
                "--json",
            ]);
            assert_eq!(code, 0, "build failed: {err}");
            let report = json(&out);
            (dir, report)
        })
    }

    fn test_set() -> &'static data::Images {
        static TEST: OnceLock<data::Images> = OnceLock::new();
        TEST.get_or_init(|| data::load(&DataDir::new(data_dir()), Dataset::Cifar10, Split::Test).unwrap())
    }

    #[test]
    fn the_mistakes_picture_shows_the_colour_pixels() {
        super::build_pictures::check(built().0.path(), "c", test_set());
    }

    #[test]
    fn the_cifar_test_batch_loads_as_colour_images() {
        let test = test_set();
        assert_eq!(test.shape(), (32, 32, 3));
        assert_eq!((test.n, test.pixels.len()), (10_000, 10_000 * 3072));
        assert_eq!(test.class_counts(10), vec![1000; 10]);
        // Not grey: the channels of a pixel differ somewhere in (nearly) every image.
        let colourful =
            (0..test.n).filter(|&i| test.image(i).chunks_exact(3).any(|p| p[0] != p[1] || p[1] != p[2])).count();
        assert!(colourful > 9_800, "{colourful}");
    }

    #[test]
    fn a_colour_cnn_trains_deploys_and_beats_chance() {
        let (dir, report) = built();
        let float = report["float_accuracy"].as_f64().unwrap();
        let device = report["device_accuracy"].as_f64().unwrap();
        // Two epochs on 4,500 images: far from good, far above the 10 % of guessing.
        assert!(float > 0.25 && device > 0.25, "float {float}, int8 {device}");
        assert!((float - device).abs() < 0.03, "int8 lost too much: float {float}, int8 {device}");
        let blob = std::fs::read(dir.path().join("c.bin")).unwrap();
        let aligned = mnistc::lower::emit::AlignedBytes::from(blob.as_slice());
        let model = mnistc_runtime::Model::from_bytes(aligned.as_bytes()).unwrap();
        let shape = model.input_shape();
        assert_eq!((shape.h, shape.w, shape.c), (32, 32, 3));
        assert_eq!(model.dataset(), "cifar-10");
        assert_eq!(model.class_name(3), "cat");
        // The batchnorms are folded, the first max pool and the global average pool fused, and
        // the add fused into the conv before it: conv (+ max pool), conv, conv + add (of op 0's
        // output, written over it in place), max pool, conv (+ global average pool), dense.
        let kinds: Vec<u8> = model.ops().map(|op| op.record.kind).collect();
        assert_eq!(kinds, [1, 1, 1, 2, 1, 4]);
        let ops: Vec<_> = model.ops().collect();
        assert_eq!(ops[2].record.flags, mnistc_runtime::format::FLAG_RESIDUAL);
        assert_eq!(ops[2].input.offset, ops[1].output.offset);
        assert_eq!(ops[2].input2.offset, ops[0].output.offset);
        assert_eq!(ops[2].output, ops[2].input2);
        let (code, out, err) = mnistc(&["inspect", &path(&dir.path().join("c.bin"))]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("conv2d+add") && out.contains("op1 + op0"), "{out}");
        // `eval` on the full test batch reproduces the build's number.
        let (code, out, err) =
            mnistc(&["eval", &path(&dir.path().join("c.bin")), "--data", &path(&data_dir()), "--json"]);
        assert_eq!(code, 0, "{err}");
        let eval = json(&out);
        assert_eq!(eval["dataset"], "cifar-10");
        assert_eq!(eval["images"].as_u64(), Some(10_000));
        assert_eq!(eval["correct"].as_f64().unwrap() / 10_000.0, device);
    }

    #[test]
    fn int8_is_bit_exact_with_tract_on_colour_images_layer_by_layer() {
        let (dir, _) = built();
        let (code, out, err) = mnistc(&[
            "check",
            &path(&dir.path().join("c.bin")),
            "--data",
            &path(&data_dir()),
            "--limit",
            "200",
            "--per-layer",
            "--json",
        ]);
        assert_eq!(code, 0, "{err}\n{out}");
        let r = json(&out);
        assert_eq!(r["passed"], true, "{r}");
        assert_eq!(r["max_lsb_diff"].as_u64(), Some(0), "{r}");
        assert_eq!(r["images"].as_u64(), Some(200), "{r}");
    }

    #[test]
    fn predict_classifies_a_colour_png_as_the_same_pixels_from_the_batch() {
        let (dir, _) = built();
        let blob = path(&dir.path().join("c.bin"));
        let test = test_set();
        let png_dir = tempfile::tempdir().unwrap();
        let mut pngs = Vec::new();
        for i in 0..4 {
            let img = image::RgbImage::from_raw(32, 32, test.image(i).to_vec()).unwrap();
            let p = png_dir.path().join(format!("{i}.png"));
            img.save(&p).unwrap();
            pngs.push(path(&p));
        }
        let mut args = vec!["predict", &blob, "--json"];
        args.extend(pngs.iter().map(String::as_str));
        let (code, from_png, err) = mnistc(&args);
        assert_eq!(code, 0, "{err}");
        let batch = data_dir().join("cifar-10/test_batch.bin.gz");
        let (code, from_batch, err) = mnistc(&["predict", &blob, "--cifar", &path(&batch), "--limit", "4", "--json"]);
        assert_eq!(code, 0, "{err}");
        let scores = |out: &str| -> Vec<serde_json::Value> { out.lines().map(|l| json(l)["scores"].clone()).collect() };
        assert_eq!(scores(&from_png).len(), 4);
        assert_eq!(scores(&from_png), scores(&from_batch));
        // A grey IDX file does not fit a colour model: a clear error, exit 2.
        let idx = data_dir().join("mnist/t10k-images-idx3-ubyte.gz");
        let (code, _, err) = mnistc(&["predict", &blob, "--idx", &path(&idx)]);
        assert_eq!(code, 2);
        assert!(err.contains("images are 28x28x1 (height x width x channels), the model takes 32x32x3"), "{err}");
    }
}

/// An `[ensemble]` end to end through the command line: the parity CNN with three members (the
/// third with its own learning rate) trains, deploys as one blob, and `summary`, `inspect`,
/// `eval`, `check` (bit-exact with tract) and `bench` take it; `train` asks which member.
#[test]
fn an_ensemble_builds_into_one_blob_that_every_command_reads() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(workspace_root().join("tests/fixtures/parity.toml")).unwrap();
    let model = dir.path().join("ens.toml");
    std::fs::write(
        &model,
        format!("{text}\n[ensemble]\nmembers = 3\n[[ensemble.member]]\n[[ensemble.member]]\nlearning_rate = 0.003\n"),
    )
    .unwrap();
    let (model, data) = (path(&model), path(&data_dir()));

    let (code, out, err) = mnistc(&["summary", &model]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Ensemble:     3 networks as above (seeds 7, 8, 9)"), "{out}");

    let blob = path(&dir.path().join("ens.bin"));
    let common = ["--data", &data, "--train-limit", "800", "--epochs", "1", "--no-cache", "--quiet"];
    let mut build = vec!["build", &model, "-o", &blob, "--json"];
    build.extend_from_slice(&common);
    let (code, out, err) = mnistc(&build);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    let members = report["members"].as_array().unwrap();
    let seeds: Vec<u64> = members.iter().map(|m| m["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, [7, 8, 9]);
    assert!(members.iter().all(|m| m["float_accuracy"].as_f64().unwrap() > 0.3), "{report}");
    assert!(report["device_accuracy"].as_f64().unwrap() > 0.3, "{report}");
    let md = std::fs::read_to_string(dir.path().join("ens.report.md")).unwrap();
    assert!(md.contains("## Ensemble members") && md.contains("| 3 | 9 |"), "{md}");

    let (code, out, err) = mnistc(&["inspect", &blob, "--json"]);
    assert_eq!(code, 0, "{err}");
    let ops = json(&out)["ops"].as_array().unwrap().clone();
    assert_eq!(ops.len(), 3 * 4 + 2, "three members of four ops and two adds");
    assert_eq!(ops.iter().filter(|op| op["op"] == "add").count(), 2, "{ops:?}");
    let (code, out, err) = mnistc(&["eval", &blob, "--data", &data, "--limit", "300", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(json(&out)["test_accuracy"].as_f64().unwrap() > 0.3);
    let (code, out, err) = mnistc(&["check", &blob, "--data", &data, "--limit", "100", "--per-layer", "--json"]);
    assert_eq!(code, 0, "{err}");
    let check = json(&out);
    assert_eq!((check["passed"].as_bool(), check["max_lsb_diff"].as_u64()), (Some(true), Some(0)), "{check}");
    let (code, out, err) = mnistc(&["bench", &blob, "--runs", "5", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(json(&out)["runtime_us"].as_f64().is_some_and(|us| us > 0.0));

    // Too many ops for one blob: refused before any training, with the count and the limit.
    let resnet = path(&workspace_root().join("models/cifar-resnet8.toml"));
    let (code, _, err) = mnistc(&["build", &resnet, "-o", &blob, "--members", "3", "--data", &data]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ops; the runtime holds at most 32") && !err.contains("training"), "{err}");

    // A checkpoint holds one network: `train` needs --member (checked before any training).
    let ckpt = path(&dir.path().join("m.ckpt"));
    let (code, _, err) = mnistc(&["train", &model, "-o", &ckpt, "--data", &data]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--member K (1 to 3)") && err.contains("ens.toml"), "{err}");
    let (code, _, err) = mnistc(&["train", &model, "-o", &ckpt, "--data", &data, "--member", "4"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("members 1 to 3"), "{err}");
}
