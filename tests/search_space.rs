//! The search-space file: the shipped spaces load, and mistakes exit 2 naming the file, the line,
//! the key and what is allowed (no training involved).

use std::path::Path;

use mnistc::search::SearchSpace;
use mnistc::spec::InvalidKind;
use mnistc_suite::{data_dir, mnistc, workspace_root};

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Writes `text` as `bad.toml` beside a copy of the test base model and runs `mnistc search` on it.
fn run_space(text: &str) -> (u8, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(workspace_root().join("tests/fixtures/search-base.toml"), dir.path().join("base.toml")).unwrap();
    let space = dir.path().join("bad.toml");
    std::fs::write(&space, text).unwrap();
    let (code, out, err) = mnistc(&[
        "search",
        &path(&space),
        "-o",
        &path(&dir.path().join("out")),
        "--data",
        &path(&data_dir()),
        "--quiet",
    ]);
    assert!(out.is_empty(), "nothing on stdout for bad input: {out}");
    assert!(!dir.path().join("out/journal.jsonl").exists(), "bad input must not start a journal: {text}\n{err}");
    (code, err)
}

const GOOD: &str = "base = \"base.toml\"\ntrials = 2\n\n[space]\nconv_layers = [1, 2]\nfilters = [4, 8]\nkernel = [3, 5]\n\
                    dense_layers = [0, 1]\nunits = { min = 16, max = 64, step = 16 }\n";

#[test]
fn shipped_spaces_load() {
    for name in ["search.toml", "search-fashion.toml"] {
        let space = SearchSpace::from_path(&workspace_root().join("models").join(name)).unwrap();
        assert!(space.trials >= 20, "{name}");
        assert_eq!(space.target.flash, Some(65_536), "{name}");
        assert_eq!(space.dims.filters.0, vec![32, 48, 64, 80, 96, 112, 128]);
        assert_eq!(space.dims.units.0, vec![32, 64, 96, 128, 160, 192, 224, 256]);
        assert_eq!(space.dims.kernel.0, vec![3, 5]);
        // The first candidates are valid models that fit their input.
        let mut sampler = space.sampler();
        for _ in 0..10 {
            let c = sampler.next_candidate().unwrap().unwrap();
            assert!(c.spec.total_macs().unwrap() > 0);
        }
    }
    let digits = SearchSpace::from_path(&workspace_root().join("models/search.toml")).unwrap();
    assert_eq!(digits.target.ram, Some(16_384));
    // The CIFAR-10 space draws all three block kinds; residual candidates are graphs.
    let cifar = SearchSpace::from_path(&workspace_root().join("models/search-cifar.toml")).unwrap();
    assert_eq!(cifar.target.flash, Some(98_304));
    let mut sampler = cifar.sampler();
    let mut kinds = std::collections::HashSet::new();
    let mut graphs = 0;
    for _ in 0..30 {
        let c = sampler.next_candidate().unwrap().unwrap();
        assert_eq!(c.spec.input.channels, 3);
        kinds.extend(c.params.conv.iter().map(|b| b.block));
        if !c.spec.is_chain() {
            graphs += 1;
            assert!(c.text.contains("type = \"add\""), "{}", c.text);
        }
        assert!(c.text.contains("type = \"global_avgpool\"") && c.text.contains("type = \"batchnorm\""));
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(graphs > 0);
    let narrow = SearchSpace::from_path(&workspace_root().join("models/search-fashion-cnn.toml")).unwrap();
    assert_eq!(narrow.dims.conv_layers.0, vec![2, 3]);
    let mut sampler = narrow.sampler();
    let first = sampler.next_candidate().unwrap().unwrap();
    assert_eq!(first.spec.data.dataset, mnistc::spec::Dataset::FashionMnist);
}

#[test]
fn bad_space_files_exit_2_naming_key_and_line() {
    let cases: &[(&str, &str)] = &[
        // Unknown key in [space], with the allowed keys.
        (
            "base = \"base.toml\"\n\n[space]\nconv_layers = 1\nfilter = [8]\n",
            "bad.toml:5: space.filter: unknown key in [space]; did you mean `filters`? allowed keys: conv_layers, filters",
        ),
        // A value out of range inside a list.
        (
            "base = \"base.toml\"\n\n[space]\nconv_layers = 1\nfilters = 8\nkernel = [3, 0]\ndense_layers = 0\n",
            "bad.toml:6: space.kernel[1]: 0 is out of range; allowed: 1..=64",
        ),
        // A choice that does not exist.
        (
            "base = \"base.toml\"\n\n[space]\nconv_layers = 0\ndense_layers = 0\noptimizer = [\"adam\", \"rmsprop\"]\n",
            "bad.toml:6: space.optimizer[1]: `rmsprop` is not allowed; use one of: adam, adamw, sgd, sgd-nesterov",
        ),
        // Ranges of numbers need a step.
        (
            "base = \"base.toml\"\n\n[space]\nconv_layers = 0\ndense_layers = 0\ndropout = { min = 0.1, max = 0.3 }\n",
            "bad.toml:6: space.dropout.step: missing",
        ),
        // Duplicates.
        (
            "base = \"base.toml\"\n\n[space]\nconv_layers = 1\nfilters = [8, 8]\nkernel = 3\ndense_layers = 0\n",
            "bad.toml:5: space.filters: 8 is listed twice",
        ),
        // Per-layer choices are required when such layers can be drawn.
        (
            "base = \"base.toml\"\n\n[space]\nconv_layers = [0, 1]\nkernel = 3\ndense_layers = 0\n",
            "space.filters: missing",
        ),
        // Unknown top-level key.
        (
            "base = \"base.toml\"\ntrails = 3\n\n[space]\nconv_layers = 0\ndense_layers = 0\n",
            "bad.toml:2: trails: unknown key",
        ),
        // No base, a base that does not exist.
        ("[space]\nconv_layers = 0\ndense_layers = 0\n", "bad.toml:1: base: missing"),
        (
            "base = \"nope.toml\"\n[space]\nconv_layers = 0\ndense_layers = 0\n",
            "bad.toml:1: base: cannot read the base model",
        ),
        // Wrong type, a range the wrong way round, a bad budget.
        (
            "base = \"base.toml\"\n\n[space]\nconv_layers = \"two\"\ndense_layers = 0\n",
            "bad.toml:4: space.conv_layers: expected",
        ),
        (
            "base = \"base.toml\"\n\n[space]\nconv_layers = 0\ndense_layers = 1\nunits = { min = 64, max = 32 }\n",
            "bad.toml:6: space.units: min = 64 is larger than max = 32",
        ),
        (
            "base = \"base.toml\"\n\n[space]\nconv_layers = 0\ndense_layers = 0\n\n[target]\nflash = 0\n",
            "bad.toml:8: target.flash: 0 is out of range",
        ),
        // Too few images per trial to hold out a validation split.
        (
            "base = \"base.toml\"\ntrain_limit = 4\n\n[space]\nconv_layers = 0\ndense_layers = 0\n",
            "bad.toml:2: train_limit: 4 images with the base's data.validation = 0.1 leaves no images for validation",
        ),
        // ... also when every class rounds its share down to nothing (checked on the data, before any journal).
        (
            "base = \"base.toml\"\ntrain_limit = 5\n\n[space]\nconv_layers = 0\ndense_layers = 0\n",
            "5 training images per trial with the base's data.validation = 0.1 leave no validation images",
        ),
        // Invalid TOML.
        ("base = \"base.toml\"\n[space\n", "invalid TOML"),
    ];
    for (text, expected) in cases {
        let (code, err) = run_space(text);
        assert_eq!(code, 2, "{text}\n{err}");
        assert!(err.contains(expected), "for\n{text}\nexpected `{expected}` in: {err}");
    }
    // And a good space passes the same checks (it is not bad input).
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(workspace_root().join("tests/fixtures/search-base.toml"), dir.path().join("base.toml")).unwrap();
    std::fs::write(dir.path().join("good.toml"), GOOD).unwrap();
    let space = SearchSpace::from_path(&dir.path().join("good.toml")).unwrap();
    assert_eq!(space.dims.units.0, vec![16, 32, 48, 64]);
    assert_eq!(space.name, "good");
}

#[test]
fn errors_carry_kind_key_and_line_for_callers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(workspace_root().join("tests/fixtures/search-base.toml"), dir.path().join("base.toml")).unwrap();
    let p = dir.path().join("s.toml");
    std::fs::write(
        &p,
        "base = \"base.toml\"\n\n[space]\nconv_layers = 1\nfilters = 8\nkernel = 3\ndense_layers = 0\npool = \"min\"\n",
    )
    .unwrap();
    let e = SearchSpace::from_path(&p).unwrap_err();
    assert_eq!(e.kind(), Some(InvalidKind::BadValue));
    assert_eq!(e.key(), Some("space.pool"));
    assert_eq!(e.line(), Some(8));
    assert!(e.to_string().contains("use one of: max, avg, none"), "{e}");

    // An error in the base model names the base model's own file and line.
    std::fs::write(
        dir.path().join("base.toml"),
        "[[layers]]\ntype = \"dense\"\nunits = 10\n\n[data]\ndataset = \"mnist\"\nvalidation = 2\n",
    )
    .unwrap();
    let e = SearchSpace::from_path(&p).unwrap_err();
    assert!(e.to_string().contains("base.toml:7: data.validation"), "{e}");

    // Trials are scored on the validation split: a base without one is refused.
    std::fs::write(
        dir.path().join("base.toml"),
        "[[layers]]\ntype = \"dense\"\nunits = 10\n\n[data]\ndataset = \"mnist\"\nvalidation = 0\n",
    )
    .unwrap();
    let e = SearchSpace::from_path(&p).unwrap_err();
    assert_eq!(e.key(), Some("base"));
    assert!(e.to_string().contains("data.validation = 0"), "{e}");
}
