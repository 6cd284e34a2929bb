//! The IDX reader and the data directory, on the real data sets and on real malformed files
//! (truncated, corrupt, wrong magic, mismatched counts, bad labels, missing files).

use std::fs;
use std::path::{Path, PathBuf};

use mnistc::data::{self, DataDir, DataError, Dataset, Images, Rng, Split, prepare_training, stratified_sample};
use mnistc::spec::DataSpec;

/// `MNISTC_DATA` (relative paths taken from the workspace root), else `../shared/data`.
fn data_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("MNISTC_DATA") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("../shared/data"),
    }
}

fn gunzip(path: &Path) -> Vec<u8> {
    data::read_file(path).unwrap()
}

/// A data directory holding raw (uncompressed) copies of MNIST's test files, to be mangled.
fn raw_test_copy() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnist");
    fs::create_dir(&dir).unwrap();
    let src = data_root().join("mnist");
    let images = dir.join("t10k-images-idx3-ubyte");
    let labels = dir.join("t10k-labels-idx1-ubyte");
    fs::write(&images, gunzip(&src.join("t10k-images-idx3-ubyte.gz"))).unwrap();
    fs::write(&labels, gunzip(&src.join("t10k-labels-idx1-ubyte.gz"))).unwrap();
    (tmp, images, labels)
}

fn load_test(root: &Path) -> Result<Images, DataError> {
    data::load(&DataDir::new(root), Dataset::Mnist, Split::Test)
}

#[test]
fn loads_the_real_test_sets_gzipped_or_raw() {
    let root = data_root();
    let gz = load_test(&root).unwrap();
    assert_eq!((gz.n, gz.height, gz.width), (10_000, 28, 28));
    assert_eq!(gz.pixels.len(), 10_000 * 784);
    assert_eq!(gz.class_counts(10), vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    let (tmp, _, _) = raw_test_copy();
    assert_eq!(load_test(tmp.path()).unwrap(), gz);

    let fashion = data::load(&DataDir::new(&root), Dataset::FashionMnist, Split::Test).unwrap();
    assert_eq!(fashion.n, 10_000);
    assert_eq!(fashion.class_counts(10), vec![1000; 10]);
    assert_eq!(Dataset::FashionMnist.class_names()[0], "T-shirt/top");
    assert_eq!(Dataset::FashionMnist.class_names()[9], "Ankle boot");
    assert_eq!(Dataset::Mnist.class_names()[7], "7");
}

#[test]
fn digests_are_of_the_uncompressed_files() {
    let digests = data::file_digests(&DataDir::new(data_root()), Dataset::Mnist).unwrap();
    let names: Vec<&str> = digests.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(
        names,
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    );
    // Published in shared/data/README.md.
    assert_eq!(digests[2].sha256, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7");
    assert_eq!(digests[1].sha256, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5");
}

#[test]
fn missing_files_say_which_where_and_how() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("mnist")).unwrap();
    let (_keep, _, labels) = raw_test_copy();
    fs::copy(&labels, tmp.path().join("mnist/t10k-labels-idx1-ubyte")).unwrap();
    let err = load_test(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, DataError::Missing { ref missing, .. } if missing == &["t10k-images-idx3-ubyte(.gz)"]),
        "{msg}"
    );
    assert!(msg.contains(&tmp.path().join("mnist").display().to_string()), "{msg}");
    assert!(msg.contains("chosen by the --data option"), "{msg}");
    assert!(msg.contains("train-images-idx3-ubyte, train-labels-idx1-ubyte"), "{msg}");
    assert!(msg.contains("MNISTC_DATA"), "{msg}");
    assert!(msg.contains("mnistc data fetch mnist --data"), "{msg}");

    let err = data::load(&DataDir::new(tmp.path()), Dataset::FashionMnist, Split::Train).unwrap_err();
    assert!(err.to_string().contains("zalandoresearch/fashion-mnist"), "{err}");
    assert!(matches!(err, DataError::Missing { ref missing, .. } if missing.len() == 2), "{err}");
}

#[test]
fn data_dir_resolution_order() {
    let flag = DataDir::resolve(Some(Path::new("/x")));
    assert_eq!(flag.root, PathBuf::from("/x"));
    assert_eq!(flag.source, data::DataDirSource::Flag);
    // Without a flag it is $MNISTC_DATA or ./data; both are legitimate in a test run.
    let auto = DataDir::resolve(None);
    match std::env::var_os("MNISTC_DATA") {
        Some(v) if !v.is_empty() => {
            assert_eq!(auto.root, PathBuf::from(v));
            assert_eq!(auto.source, data::DataDirSource::Env);
        }
        _ => {
            assert_eq!(auto.root, PathBuf::from("data"));
            assert_eq!(auto.source, data::DataDirSource::Default);
        }
    }
}

#[test]
fn truncated_and_corrupt_files_name_the_file_and_the_problem() {
    // Truncated raw images: the header promises 10000 images.
    let (tmp, images, _) = raw_test_copy();
    let bytes = fs::read(&images).unwrap();
    fs::write(&images, &bytes[..bytes.len() - 100]).unwrap();
    let err = load_test(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Length { expected: 7_840_000, found: 7_839_900, .. }), "{msg}");
    assert!(msg.contains("t10k-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains("10000 images of 28x28"), "{msg}");
    assert!(msg.contains("truncated"), "{msg}");

    // Trailing garbage.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 5]);
    fs::write(&images, &longer).unwrap();
    let msg = load_test(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("unexpected bytes"), "{msg}");

    // A truncated gzip stream.
    let gz = fs::read(data_root().join("mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    fs::remove_file(&images).unwrap();
    let gz_path = images.with_extension("gz");
    let gz_path = gz_path.with_file_name("t10k-images-idx3-ubyte.gz");
    fs::write(&gz_path, &gz[..gz.len() / 2]).unwrap();
    let err = load_test(tmp.path()).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");
    assert!(err.to_string().contains("t10k-images-idx3-ubyte.gz"), "{err}");

    // A header cut short.
    fs::remove_file(&gz_path).unwrap();
    fs::write(&images, &bytes[..10]).unwrap();
    let msg = load_test(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("the header needs 16 bytes but the file has only 10"), "{msg}");
}

#[test]
fn wrong_magic_counts_sizes_and_labels() {
    let (tmp, images, labels) = raw_test_copy();
    let image_bytes = fs::read(&images).unwrap();
    let label_bytes = fs::read(&labels).unwrap();

    // The labels file where the images file should be.
    fs::write(&images, &label_bytes).unwrap();
    let err = load_test(tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::BadHeader { what: "images", .. }), "{msg}");
    assert!(msg.contains("magic number is 0x00000801 (this is a labels file), expected 0x00000803"), "{msg}");

    // Not an IDX file at all.
    fs::write(&images, b"hello, world, this is text").unwrap();
    let msg = load_test(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("magic number is 0x68656c6c"), "{msg}");

    // Fewer labels than images (a consistent 9999-label file).
    fs::write(&images, &image_bytes).unwrap();
    let mut short = label_bytes[..label_bytes.len() - 1].to_vec();
    short[4..8].copy_from_slice(&9_999u32.to_be_bytes());
    fs::write(&labels, &short).unwrap();
    let err = load_test(tmp.path()).unwrap_err();
    assert!(matches!(err, DataError::CountMismatch { images: 10_000, labels: 9_999, .. }), "{err}");

    // A label that is not a digit.
    let mut bad = label_bytes.clone();
    bad[8 + 42] = 10;
    fs::write(&labels, &bad).unwrap();
    let err = load_test(tmp.path()).unwrap_err();
    assert!(matches!(err, DataError::BadLabel { index: 42, label: 10, classes: 10, .. }), "{err}");
    assert!(err.to_string().contains("t10k-labels-idx1-ubyte"), "{err}");

    // 27 rows instead of 28 (with a consistent length).
    let n = 10usize;
    let mut small = Vec::new();
    small.extend_from_slice(&0x0803u32.to_be_bytes());
    small.extend_from_slice(&(n as u32).to_be_bytes());
    small.extend_from_slice(&27u32.to_be_bytes());
    small.extend_from_slice(&28u32.to_be_bytes());
    small.extend(std::iter::repeat_n(0u8, n * 27 * 28));
    fs::write(&images, &small).unwrap();
    let msg = load_test(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("images are 27x28, but mnist images are 28x28"), "{msg}");

    // A gzip file works whatever its name says (the content decides).
    let gz = fs::read(data_root().join("mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    fs::write(&images, gz).unwrap();
    fs::write(&labels, &label_bytes).unwrap();
    assert_eq!(load_test(tmp.path()).unwrap().n, 10_000);
}

#[test]
fn train_limit_and_validation_are_stratified_and_deterministic() {
    let test = load_test(&data_root()).unwrap();
    let spec = DataSpec { dataset: Dataset::Mnist, validation: 0.1, train_limit: 3000 };
    let a = prepare_training(&test, &spec, 10, 42);
    let b = prepare_training(&test, &spec, 10, 42);
    let c = prepare_training(&test, &spec, 10, 43);
    let val = a.validation.as_ref().unwrap();
    assert_eq!(a.train.n + val.n, 3000);
    assert_eq!(a.train, b.train);
    assert_eq!(a.validation, b.validation);
    assert_ne!(a.train, c.train);
    // Every class keeps its share of the 10,000 (±1 from rounding) in the limited set, and 10%
    // of each class goes to validation.
    let full = test.class_counts(10);
    let limited: Vec<usize> = a.train.class_counts(10).iter().zip(val.class_counts(10)).map(|(t, v)| t + v).collect();
    for (k, (&f, &l)) in full.iter().zip(&limited).enumerate() {
        let share = f as f64 * 3000.0 / 10_000.0;
        assert!((l as f64 - share).abs() <= 1.0, "class {k}: {l} vs {share}");
        let v = val.class_counts(10)[k] as f64;
        assert!((v - l as f64 * 0.1).abs() <= 0.5, "class {k}: {v} of {l}");
    }
    // No image is in both sets.
    let idx = stratified_sample(&test.labels, 10, 3000, &mut Rng::for_stream(42, "train_limit"));
    assert_eq!(idx.len(), 3000);

    let no_val = DataSpec { validation: 0.0, train_limit: 0, ..spec };
    let all = prepare_training(&test, &no_val, 10, 1);
    assert_eq!(all.train, test);
    assert!(all.validation.is_none());
}
