//! `mnistc search` end to end on real digits, with tiny spaces (one epoch on 1,500 images per
//! trial): the journal, resuming, an interrupted trial, the budget rule and `best.toml`; and a
//! CIFAR-10 space of residual and depthwise-separable blocks through to a built blob.

use std::path::Path;

use mnistc::spec::ModelSpec;
use mnistc_suite::{data_dir, mnistc, workspace_root};

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn fixture(name: &str) -> String {
    path(&workspace_root().join("tests/fixtures").join(name))
}

/// Runs `mnistc search SPACE -o DIR --data ... --json EXTRA...`.
fn search(space: &str, dir: &Path, extra: &[&str]) -> (u8, String, String) {
    let data = path(&data_dir());
    let out = path(dir);
    let mut args = vec!["search", space, "-o", &out, "--data", &data, "--json", "--quiet"];
    args.extend_from_slice(extra);
    mnistc(&args)
}

fn journal_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("journal.jsonl")).unwrap().lines().map(str::to_string).collect()
}

const TRIAL_FIELDS: &[&str] = &[
    "trial",
    "name",
    "status",
    "params",
    "val_accuracy_float",
    "val_accuracy_int8",
    "flash_bytes",
    "arena_bytes",
    "macs",
    "weights",
    "train_seconds",
    "epochs_trained",
    "train_images",
    "validation_images",
    "resampled",
];

fn check_trained_line(line: &str, trial: u64) -> serde_json::Value {
    let v = json(line);
    for key in TRIAL_FIELDS {
        assert!(v.get(key).is_some(), "journal line lacks `{key}`: {line}");
    }
    assert_eq!(v["trial"], trial);
    assert_eq!(v["status"], "trained");
    for key in ["val_accuracy_float", "val_accuracy_int8"] {
        let a = v[key].as_f64().unwrap();
        assert!(a > 0.2 && a <= 1.0, "{key} = {a}");
    }
    for key in ["flash_bytes", "arena_bytes", "macs", "weights"] {
        assert!(v[key].as_u64().unwrap() > 0, "{key} is 0");
    }
    assert!(v["train_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(v["epochs_trained"], 1);
    // 1,500 images with 10 % of every class held out for validation (rounded per class).
    let (val, train) = (v["validation_images"].as_u64().unwrap(), v["train_images"].as_u64().unwrap());
    assert_eq!(val + train, 1500);
    assert!((140..=160).contains(&val), "{val} validation images");
    let params = &v["params"];
    for key in ["conv", "dense", "dropout", "optimizer", "learning_rate", "batch_size", "epochs"] {
        assert!(params.get(key).is_some(), "params lack `{key}`");
    }
    v
}

#[test]
fn journal_resume_interrupted_trial_and_best_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("run");
    let space = fixture("search-tiny.toml");

    // Two trials (the space's `trials`), both trained and journaled.
    let (code, out, err) = search(&space, &d, &[]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["trained_this_run"], 2);
    assert_eq!(report["reused"], 0);
    assert_eq!(report["trials"].as_array().unwrap().len(), 2);
    let first = journal_lines(&d);
    assert_eq!(first.len(), 3, "header + 2 trials");
    let header = json(&first[0]);
    assert_eq!(header["journal"], "mnistc-search");
    assert!(header["fingerprint"].as_str().unwrap().len() == 64);
    check_trained_line(&first[1], 1);
    check_trained_line(&first[2], 2);
    assert_ne!(json(&first[1])["params"], json(&first[2])["params"], "sampling repeated a candidate");
    for f in ["results.md", "results.csv", "best.toml"] {
        assert!(d.join(f).is_file(), "{f} missing");
    }

    // --trials 3: the two trials are kept byte for byte and exactly one more is trained.
    let (code, out, err) = search(&space, &d, &["--trials", "3"]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["reused"], 2);
    assert_eq!(report["trained_this_run"], 1);
    let second = journal_lines(&d);
    assert_eq!(second.len(), 4);
    assert_eq!(second[..3], first[..]);
    let third = check_trained_line(&second[3], 3);

    // Nothing left to do: nothing is trained again.
    let (code, out, err) = search(&space, &d, &["--trials", "3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["trained_this_run"], 0);
    assert_eq!(journal_lines(&d), second);

    // An interrupted write (a torn last line) is dropped and that trial redone, identically
    // (training is deterministic), while the other lines stay as they were.
    let journal = d.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, &text[..text.len() - 40]).unwrap();
    let (code, out, err) = search(&space, &d, &["--trials", "3"]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["dropped_incomplete_line"], true);
    assert_eq!(report["trained_this_run"], 1);
    let redone = journal_lines(&d);
    assert_eq!(redone.len(), 4);
    assert_eq!(redone[..3], second[..3]);
    let again = check_trained_line(&redone[3], 3);
    for key in ["params", "val_accuracy_float", "val_accuracy_int8", "flash_bytes", "arena_bytes", "macs"] {
        assert_eq!(again[key], third[key], "redone trial differs in `{key}`");
    }

    // A trial that died before its line was written is simply redone.
    std::fs::write(&journal, redone[..3].iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let (code, out, err) = search(&space, &d, &["--trials", "3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["trained_this_run"], 1);
    assert_eq!(journal_lines(&d).len(), 4);

    // Another seed or other epochs would mix incomparable trials: refused, journal untouched.
    let before = std::fs::read_to_string(&journal).unwrap();
    let (code, _, err) = search(&space, &d, &["--seed", "99"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("different search") && err.contains("seed"), "{err}");
    let (code, _, err) = search(&space, &d, &["--epochs", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("changed: [space] epochs"), "{err}");
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), before);

    // The tables rank by int8 validation accuracy and mark the best and the Pareto front.
    let (_, out, _) = search(&space, &d, &["--trials", "3"]);
    let report = json(&out);
    let ranked = report["trials"].as_array().unwrap();
    let accs: Vec<f64> = ranked.iter().map(|t| t["val_accuracy_int8"].as_f64().unwrap()).collect();
    assert!(accs.windows(2).all(|w| w[0] >= w[1]), "not ranked: {accs:?}");
    assert_eq!(ranked[0]["rank"], 1);
    assert_eq!(ranked[0]["best"], true);
    assert_eq!(ranked[0]["pareto"], true, "the most accurate trial is always on the front");
    let best_trial = report["best"]["trial"].as_u64().unwrap();
    assert_eq!(ranked[0]["trial"], best_trial);
    let md = std::fs::read_to_string(d.join("results.md")).unwrap();
    assert!(md.contains("| 1 | t00") && md.contains("**best**"), "{md}");
    // The two pictures, linked from results.md and named in the report.
    for (name, size) in [("pareto.png", (800, 560)), ("params.png", (1050, 820))] {
        let png = image::open(d.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((png.width(), png.height()), size, "{name}");
        assert!(md.contains(&format!("]({name})")), "results.md does not show {name}");
        let key = name.replace('.', "_");
        assert_eq!(report["files"][&key], d.join(name).display().to_string());
    }
    let csv = std::fs::read_to_string(d.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.starts_with("rank,trial,name,status,pareto,best,val_accuracy_int8,"));

    // best.toml is the best trial's model, valid as is, and `mnistc build` builds it.
    let best = d.join("best.toml");
    let spec = ModelSpec::from_path(&best).unwrap();
    assert_eq!(spec.name, format!("tiny-t{best_trial:03}"));
    assert_eq!(spec.train.seed, 3, "trials train with the search seed");
    let record = &ranked[0];
    assert_eq!(spec.train.batch_size as u64, record["params"]["batch_size"].as_u64().unwrap());
    let data = path(&data_dir());
    let blob = path(&d.join("best.bin"));
    let (code, out, err) = mnistc(&[
        "build",
        &path(&best),
        "-o",
        &blob,
        "--data",
        &data,
        "--train-limit",
        "1500",
        "--epochs",
        "1",
        "--no-cache",
        "--quiet",
        "--json",
    ]);
    assert_eq!(code, 0, "build of best.toml failed: {err}");
    let built = json(&out);
    assert_eq!(built["arena_bytes"], record["arena_bytes"], "the arena depends on the architecture only");
    assert!(built["device_accuracy"].as_f64().unwrap() > 0.5);
}

#[test]
fn over_budget_candidates_are_recorded_without_training_and_never_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out, err) = search(&fixture("search-budget.toml"), d, &[]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["trained_this_run"], 2);
    assert_eq!(report["over_budget_this_run"], 2);

    let lines = journal_lines(d);
    assert_eq!(lines.len(), 5);
    for line in &lines[1..] {
        let t = json(line);
        let filters = t["params"]["conv"][0]["filters"].as_u64().unwrap();
        let flash = t["flash_bytes"].as_u64().unwrap();
        if filters == 48 {
            assert_eq!(t["status"], "over_budget", "{line}");
            assert!(flash > 20_000);
            assert_eq!(t["over_budget"], serde_json::json!(["flash"]));
            assert!(t["val_accuracy_int8"].is_null() && t["val_accuracy_float"].is_null());
            assert_eq!(t["train_seconds"], 0.0);
            assert_eq!(t["epochs_trained"], 0);
            assert_eq!(t["train_images"], 0);
        } else {
            assert_eq!(t["status"], "trained", "{line}");
            assert!(flash <= 20_000);
            assert!(t["val_accuracy_int8"].as_f64().unwrap() > 0.2);
        }
    }
    // The best is a trained 2-filter candidate, even when over-budget ones might score higher.
    let best = &report["best"];
    assert!(best["flash_bytes"].as_u64().unwrap() <= 20_000);
    let spec = ModelSpec::from_path(&d.join("best.toml")).unwrap();
    assert!(matches!(spec.layers[0].layer, mnistc::spec::Layer::Conv2d { filters: 2, .. }));
    assert_eq!(spec.target.flash, Some(20_000), "best.toml carries the budgets");
    for t in report["trials"].as_array().unwrap() {
        if t["status"] == "over_budget" {
            assert_eq!(t["best"], false);
            assert_eq!(t["pareto"], false);
            assert!(t["rank"].is_null());
        }
    }

    // The space has four candidates: asking for more stops there, without training anything.
    let (code, out, err) = search(&fixture("search-budget.toml"), d, &["--trials", "6"]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["exhausted"], true);
    assert_eq!(report["trials_done"], 4);
    assert_eq!(report["trained_this_run"], 0);
}

#[test]
fn no_trial_under_budget_exits_1_but_keeps_the_journal_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("impossible.toml");
    let base = workspace_root().join("tests/fixtures/search-base.toml");
    std::fs::write(
        &space,
        format!(
            "base = {:?}\ntrials = 3\ntrain_limit = 1500\n\n[space]\nconv_layers = 1\nfilters = [2, 4, 8]\nkernel = 3\n\
             dense_layers = 0\n\n[target]\nflash = 100\n",
            path(&base)
        ),
    )
    .unwrap();
    let d = dir.path().join("out");
    let (code, out, err) = search(&path(&space), &d, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no trial fits the budgets"), "{err}");
    let report = json(&out);
    assert!(report["best"].is_null());
    assert_eq!(report["over_budget"], 3);
    assert_eq!(report["trained_this_run"], 0);
    assert_eq!(journal_lines(&d).len(), 4);
    assert!(d.join("results.md").is_file() && d.join("results.csv").is_file());
    assert!(!d.join("best.toml").exists());
    let md = std::fs::read_to_string(d.join("results.md")).unwrap();
    assert!(md.contains("no trial fits the budgets"), "{md}");
}

/// `--trials N` asks for N trained candidates: over-budget draws are recorded in the journal but
/// do not use up a trial (issue 11: `--trials 2` ended with "no trial fits the budgets" when the
/// first two draws were over budget).
#[test]
fn trials_count_trained_candidates_not_over_budget_draws() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out, err) = search(&fixture("search-budget.toml"), d, &["--trials", "2"]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["trained"], 2, "{report}");
    assert_eq!(report["trained_this_run"], 2);
    assert_eq!(report["exhausted"], false);
    assert_eq!(report["draw_limit_reached"], false);
    let over = report["over_budget"].as_u64().unwrap();
    assert_eq!(report["trials_done"].as_u64().unwrap(), 2 + over, "over-budget draws stay in the journal");
    assert_eq!(journal_lines(d).len() as u64, 1 + 2 + over);
}

/// A space of residual and depthwise-separable blocks on CIFAR-10: the trials train, and the
/// best candidate (a graph when it has a residual block) builds into a blob that runs.
#[test]
fn cifar_space_with_residual_and_separable_blocks_trains_and_its_best_builds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out, err) = search(&fixture("search-cifar-tiny.toml"), d, &[]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["trained_this_run"], 2, "{out}");
    for line in journal_lines(d).iter().skip(1) {
        let t = json(line);
        assert_eq!(t["status"], "trained", "{line}");
        let blocks = t["params"]["conv"].as_array().unwrap();
        assert!(blocks.iter().all(|b| b["block"] == "separable" || b["block"] == "residual"), "{line}");
        assert_eq!(t["params"]["batchnorm"], true);
        assert_eq!(t["params"]["head"], "global_avgpool");
    }
    let best = d.join("best.toml");
    let spec = ModelSpec::from_path(&best).unwrap();
    assert_eq!(spec.input.channels, 3);
    let blob = path(&d.join("best.bin"));
    let data = path(&data_dir());
    let args = ["build", &path(&best), "-o", &blob, "--data", &data, "--train-limit", "400", "--epochs", "1"];
    let (code, out, err) = mnistc(&[&args[..], &["--no-cache", "--quiet", "--json"]].concat());
    assert_eq!(code, 0, "build of best.toml failed: {err}");
    let built = json(&out);
    assert!(built["device_accuracy"].as_f64().unwrap() > 0.0);
    assert_eq!(built["arena_bytes"], report["best"]["arena_bytes"], "{out}");
}
