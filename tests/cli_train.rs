//! The `mnistc` command line, run in-process through `mnistc::cli::run`: exit codes, stdout
//! and stderr of `summary` and `train`, including the `--json` report.

use mnistc::train::{Checkpoint, Device};
use mnistc_suite::{data_dir, mnistc, workspace_root};

fn model(name: &str) -> String {
    workspace_root().join("models").join(name).display().to_string()
}

#[test]
fn summary_prints_a_keras_style_table() {
    let (code, out, err) = mnistc(&["summary", &model("digits.toml")]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "conv2d 32 3x3 valid, relu",
        "(26, 26, 32)",
        "18,496",
        "2,230,272",
        "(5, 5, 64)",
        "dense 10",
        "Total params: 34,826",
        "Total MACs:   2,440,960",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    let (code, out, _) = mnistc(&["summary", "--json", &model("fashion.toml")]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_params"], 50_186);
    assert_eq!(v["layers"][5]["type"], "dense");
    assert_eq!(v["layers"][5]["input"]["channels"], 64);
    assert_eq!(v["dataset"], "fashion-mnist");
}

#[test]
fn bad_input_exits_2_with_the_reason_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[data]\ndataset = \"mnist\"\n[[layers]]\ntype = \"conv2d\"\nfilters = 8\nkernel = 40\n[[layers]]\ntype = \"dense\"\nunits = 10\n",
    )
    .unwrap();
    let (code, out, err) = mnistc(&["summary", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("bad.toml:6: layers[0].kernel: 40x40 does not fit the 28x28 input"), "{err}");
    assert!(err.starts_with("error: "), "{err}");

    let (code, _, err) = mnistc(&["summary", "/nonexistent/m.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read model file /nonexistent/m.toml"), "{err}");

    let out_path = dir.path().join("x.ckpt");
    let out_str = out_path.to_str().unwrap();
    let (code, _, err) = mnistc(&["train", bad.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 2, "{err}");

    // Usage errors: clap's message, exit 2.
    for args in [
        vec!["frobnicate"],
        vec!["train", &model("digits.toml")],
        vec!["train", &model("digits.toml"), "-o", out_str, "--epochs", "0"],
        vec!["train", &model("digits.toml"), "-o", out_str, "--device", "tpu"],
        vec!["summary", &model("digits.toml"), "--bogus"],
    ] {
        let (code, _, err) = mnistc(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
    }
    let (code, out, _) = mnistc(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("summary") && out.contains("train"), "{out}");
    let (code, out, _) = mnistc(&["train", "--help"]);
    assert_eq!(code, 0);
    for flag in ["--data", "--epochs", "--train-limit", "--seed", "--device", "--json"] {
        assert!(out.contains(flag), "{flag} missing from\n{out}");
    }
}

#[test]
fn train_reports_missing_data_output_dirs_and_cuda_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("d.ckpt");
    let empty = dir.path().join("nodata");
    let (code, _, err) =
        mnistc(&["train", &model("digits.toml"), "-o", ckpt.to_str().unwrap(), "--data", empty.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing mnist files"), "{err}");
    assert!(err.contains("train-images-idx3-ubyte(.gz)"), "{err}");
    assert!(err.contains("chosen by the --data option"), "{err}");
    assert!(!ckpt.exists());

    let (code, _, err) =
        mnistc(&["train", &model("digits.toml"), "-o", dir.path().join("no/such/dir/d.ckpt").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");

    if !Device::Cuda.is_compiled_in() {
        let (code, _, err) =
            mnistc(&["train", &model("digits.toml"), "-o", ckpt.to_str().unwrap(), "--device", "cuda"]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("built without CUDA support"), "{err}");
    }
}

#[test]
fn train_json_report_has_metrics_history_and_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("mlp.ckpt");
    let data = data_dir();
    let (code, out, err) = mnistc(&[
        "train",
        &model("mlp.toml"),
        "-o",
        ckpt.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--train-limit",
        "3000",
        "--seed",
        "3",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let acc = v["test_accuracy"].as_f64().unwrap();
    // One short epoch of the full recipe: the floors are asserted in train_small.rs; here only
    // that the report is consistent and better than chance.
    assert!((0.3..=1.0).contains(&acc), "{acc}");
    let confusion = v["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion.iter().flat_map(|r| r.as_array().unwrap()).map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(total, 10_000);
    let diagonal: u64 = (0..10).map(|i| confusion[i][i].as_u64().unwrap()).sum();
    assert!((diagonal as f64 / 10_000.0 - acc).abs() < 1e-12);
    let per_class = v["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 10);
    for (i, c) in per_class.iter().enumerate() {
        assert_eq!(c["class"], i);
        assert_eq!(c["name"], i.to_string());
        for k in ["precision", "recall", "f1"] {
            assert!((0.0..=1.0).contains(&c[k].as_f64().unwrap()));
        }
    }
    assert_eq!(per_class[1]["support"], 1135);
    assert_eq!(v["macro_avg"]["support"], 10_000);
    assert!(v["weighted_avg"]["f1"].as_f64().unwrap() > 0.2);
    let epochs = v["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 1);
    assert!(epochs[0]["train_loss"].as_f64().unwrap() > 0.0);
    assert!(epochs[0]["val_accuracy"].as_f64().unwrap() > 0.3);
    assert_eq!(v["seed"], 3);
    assert_eq!(v["train_images"].as_u64().unwrap() + v["validation_images"].as_u64().unwrap(), 3000);

    let loaded = Checkpoint::load(&ckpt).unwrap();
    assert_eq!(loaded.model.spec.train.epochs, 1);
    assert_eq!(loaded.model.spec.data.train_limit, 3000);
    assert_eq!(loaded.test.as_ref().unwrap().accuracy, acc);
    assert!(dir.path().join("mlp.ckpt.history.csv").exists());
    // The training curves beside the checkpoint, named in the report.
    let png = image::open(dir.path().join("mlp.ckpt.curves.png")).expect("the curves decode");
    assert_eq!((png.width(), png.height()), (960, 400));
    assert_eq!(v["files"]["curves_png"], dir.path().join("mlp.ckpt.curves.png").display().to_string());
    let svg = std::fs::read_to_string(dir.path().join("mlp.ckpt.curves.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("\nvalidation\n</text>"));

    // `features` reads the float network: its last layer gives the float model's logits, the
    // default (penultimate) layer the 128 values that layer reads.
    let test = mnistc::data::load(
        &mnistc::data::DataDir::new(data.clone()),
        mnistc::data::Dataset::Mnist,
        mnistc::data::Split::Test,
    )
    .unwrap()
    .head(25);
    let logits = mnistc::train::predict_logits(&loaded.model, &test, Device::Cpu).unwrap();
    let feat = dir.path().join("f");
    let last = (loaded.model.spec.layers.len() - 1).to_string();
    let args = ["features", ckpt.to_str().unwrap(), "-o", feat.to_str().unwrap(), "--data", data.to_str().unwrap()];
    let (code, out, err) = mnistc(&[&args[..], &["--limit", "25", "--layer", &last, "--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((report["features"].as_u64(), report["order"].as_str()), (Some(10), Some("C,H,W")));
    let npy = std::fs::read(dir.path().join("f.test.npy")).unwrap();
    let start = 10 + u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let values: Vec<f32> = npy[start..].chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(values.len(), logits.values.len());
    for (i, (a, b)) in values.iter().zip(&logits.values).enumerate() {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "value {i}: {a} != {b}");
    }
    let (code, out, err) = mnistc(&[&args[..], &["--limit", "3", "--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["features"], 128);
    assert_eq!(report["sets"]["train"]["images"], 3);
}

/// `--pause-after`: the training stops with exit 3 and its state in the cache; the same command
/// continues it and writes the checkpoint an uninterrupted run writes; without a cache the flag
/// is refused.
#[test]
fn train_pause_after_stops_and_the_same_command_continues() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir();
    let run = |out: &std::path::Path, extra: &[&str]| {
        let (m, o, d) = (model("mlp.toml"), out.display().to_string(), data.display().to_string());
        let mut args = vec!["train", "-q", &m, "-o", &o, "--data", &d];
        args.extend_from_slice(&["--epochs", "2", "--train-limit", "400", "--seed", "41"]);
        args.extend_from_slice(extra);
        mnistc(&args)
    };
    // A state left by an earlier, interrupted run of this test would be resumed: start clean.
    let spec = mnistc::spec::ModelSpec::from_path(std::path::Path::new(&model("mlp.toml")))
        .unwrap()
        .with_overrides(&mnistc::spec::Overrides { epochs: Some(2), train_limit: Some(400), seed: Some(41) })
        .unwrap();
    let digests = mnistc::data::file_digests(&mnistc::data::DataDir::new(data.clone()), spec.data.dataset).unwrap();
    let cache = mnistc::train::cache::Cache::from_env();
    let state = cache.resume_path(&mnistc::train::cache::Cache::key(&spec, &digests));
    let _ = std::fs::remove_file(&state);

    let whole = dir.path().join("whole.ckpt");
    let (code, _, err) = run(&whole, &["--no-cache"]);
    assert_eq!(code, 0, "{err}");
    let sliced = dir.path().join("sliced.ckpt");
    let (code, _, err) = run(&sliced, &["--pause-after", "1"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("paused after epoch 1 of 2") && err.contains("run the same command again"), "{err}");
    assert!(state.exists() && !sliced.exists());
    let (code, _, err) = run(&sliced, &["--pause-after", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(!state.exists());
    let (a, b) = (Checkpoint::load(&whole).unwrap(), Checkpoint::load(&sliced).unwrap());
    assert_eq!(a.model.layers, b.model.layers);
    assert_eq!(a.test, b.test);

    let (code, _, err) = run(&sliced, &["--pause-after", "1", "--no-cache"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--pause-after") && err.contains("--no-cache"), "{err}");
}

/// `--profile`: every phase of the loop is timed, the phases fit in the epoch, and the text
/// report prints the table.
#[test]
fn train_profile_breaks_the_epoch_into_phases() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("d.ckpt");
    let data = data_dir();
    let args = |json: bool| {
        let mut a = vec![
            "train".to_string(),
            model("digits.toml"),
            "-o".into(),
            ckpt.display().to_string(),
            "--data".into(),
            data.display().to_string(),
            "--epochs".into(),
            "2".into(),
            "--train-limit".into(),
            "800".into(),
            "--quiet".into(),
            "--profile".into(),
        ];
        if json {
            a.push("--json".into());
        }
        a
    };
    let owned = args(true);
    let (code, out, err) = mnistc(&owned.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let p = &v["profile"];
    assert_eq!(p["epochs"], 2);
    assert_eq!(p["train_images"], v["train_images"]);
    let epoch = p["epoch_seconds"].as_f64().unwrap();
    let mut sum = p["other_seconds"].as_f64().unwrap();
    for phase in ["data", "forward", "backward", "optimizer", "metrics", "validation"] {
        let s = p["phases"][phase].as_f64().unwrap();
        assert!(s > 0.0, "{phase}: {p}");
        sum += s;
    }
    // The phases and the rest make up the epoch (`other` is never negative).
    assert!((sum - epoch).abs() < 1e-6 * epoch.max(1.0), "{sum} vs {epoch}: {p}");
    // Training dominates an epoch of a CNN: forward + backward + optimizer over half of it.
    let training: f64 = ["forward", "backward", "optimizer"].iter().map(|k| p["phases"][k].as_f64().unwrap()).sum();
    assert!(training > 0.5 * epoch, "{p}");
    assert!(p["images_per_second"].as_f64().unwrap() > 0.0);
    // Each epoch's record keeps its own phases.
    assert!(v["epochs"][1]["phases"]["backward"].as_f64().unwrap() > 0.0);

    let owned = args(false);
    let (code, out, err) = mnistc(&owned.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    for needle in ["profile: mean of 2 epoch(s), 759 training images each", "  backward ", "training images/s"] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
}

#[test]
fn fashion_reports_use_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("f.ckpt");
    let data = data_dir();
    let (code, out, err) = mnistc(&[
        "train",
        &model("fashion-mlp.toml"),
        "-o",
        ckpt.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--train-limit",
        "2000",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "--quiet printed: {err}");
    for needle in [
        "float test accuracy:",
        "confusion matrix (rows = true class, columns = predicted):",
        "0 T-shirt/top",
        "9 Ankle boot",
        "precision",
        "macro avg",
        "weighted avg",
        "checkpoint: ",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    assert!(ckpt.exists());
}
