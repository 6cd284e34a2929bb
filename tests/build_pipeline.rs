//! `mnistc build` end to end on real digits: a small CNN (same padding, rectangular kernel,
//! fused conv→max pool, fused conv→average pool, two dense layers) trained for one epoch on a
//! few thousand images, lowered in all three precisions, and checked against tract-onnx.

use std::sync::OnceLock;

use mnistc::data::{self, DataDir, Split};
use mnistc::lower::arena;
use mnistc::lower::emit::AlignedBytes;
use mnistc::lower::plan::{OpKind, Pool, PoolKind, Precision, RequantSpec};
use mnistc::pipeline::{self, BuildOptions, Built};
use mnistc::spec::ModelSpec;
use mnistc::train::Device;
use mnistc::train::cache::Cache;
use mnistc::verify::check;
use mnistc_suite::{data_dir, workspace_root};

fn spec() -> ModelSpec {
    ModelSpec::from_path(&workspace_root().join("tests/fixtures/parity.toml")).unwrap()
}

fn build_with(spec: &ModelSpec, cache: &Cache) -> Built {
    let mut log = Vec::new();
    let mut opts = BuildOptions {
        data: DataDir::new(data_dir()),
        device: Device::Cpu,
        cache: Some(cache.clone()),
        progress: false,
        profile: false,
        pause_after: None,
        log: &mut log,
    };
    pipeline::build(spec, &mut opts).unwrap()
}

/// One trained build shared by the tests of this file (training takes a few seconds).
fn built() -> &'static (Built, tempfile::TempDir) {
    static BUILT: OnceLock<(Built, tempfile::TempDir)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let built = build_with(&spec(), &Cache::new(dir.path()));
        (built, dir)
    })
}

fn test_images(n: usize) -> Vec<u8> {
    let test = data::load(&DataDir::new(data_dir()), data::Dataset::Mnist, Split::Test).unwrap();
    test.head(n).pixels
}

#[test]
fn the_int8_build_is_accurate_small_and_covers_every_lowering() {
    let (b, _) = built();
    assert!(!b.training.cached);
    assert!(b.float_eval.accuracy > 0.85, "float accuracy {}", b.float_eval.accuracy);
    assert!(b.device_eval.accuracy > 0.85, "on-device accuracy {}", b.device_eval.accuracy);
    assert!(
        (b.float_eval.accuracy - b.device_eval.accuracy).abs() < 0.02,
        "int8 lost too much: float {} device {}",
        b.float_eval.accuracy,
        b.device_eval.accuracy
    );
    assert_eq!(b.device_eval.samples, 10_000);
    let ops = &b.plan.ops;
    let kinds: Vec<OpKind> = ops.iter().map(|o| o.kind).collect();
    assert_eq!(kinds, [OpKind::Conv2d, OpKind::Conv2d, OpKind::Dense, OpKind::Dense]);
    assert_eq!(ops[0].pads, [1, 1, 1, 1]);
    assert_eq!(ops[0].fused_pool, Some(Pool { kind: PoolKind::Max, size: [2, 2], stride: [2, 2] }));
    assert_eq!(ops[1].kernel, [3, 2]);
    assert_eq!(ops[1].fused_pool, Some(Pool { kind: PoolKind::Avg, size: [2, 2], stride: [2, 2] }));
    assert!(
        ops.iter()
            .any(|o| matches!(o.quant.as_ref().and_then(|q| q.requant.as_ref()), Some(RequantSpec::PerChannel(_))))
    );
    // The arena holds the largest pair of live buffers (plus scratch), not every tensor.
    let all_tensors: u64 = 784 + ops.iter().map(|o| o.output.len() as u64).sum::<u64>();
    assert!(b.footprint.arena_bytes < all_tensors + 2048);
    assert_eq!(b.footprint.flash_bytes, b.blob.bytes().len() as u64);
}

#[test]
fn int8_is_bit_exact_with_tract_on_real_digits_layer_by_layer() {
    let (b, _) = built();
    let onnx = mnistc::export::onnx::export(&b.plan).unwrap();
    let report = check::check(b.blob.bytes(), &onnx, &test_images(1000), true).unwrap();
    assert!(report.passed, "{report:?}");
    assert_eq!(report.images, 1000);
    assert_eq!(report.top1_agreement, 1.0);
    assert_eq!(report.max_lsb_diff, 0);
    assert_eq!(report.layers.len(), b.plan.ops.len());
    assert!(report.layers.iter().all(|l| l.mismatches == 0));
}

#[test]
fn float_and_f16_lowerings_agree_with_tract_and_with_the_float_model() {
    let (b, dir) = built();
    let cache = Cache::new(dir.path());
    for precision in ["f32", "f16"] {
        let mut spec = spec();
        spec.quantize.precision =
            if precision == "f32" { mnistc::spec::Precision::F32 } else { mnistc::spec::Precision::F16 };
        let built = build_with(&spec, &cache);
        assert!(built.training.cached, "{precision}: the training should come from the cache");
        let expected = if precision == "f32" { Precision::F32 } else { Precision::F16 };
        assert_eq!(built.plan.precision, expected);
        // f32 on the device is the float model up to summation order; f16 weights lose a little.
        assert!(
            (built.device_eval.accuracy - b.float_eval.accuracy).abs() < 0.005,
            "{precision}: {}",
            built.device_eval.accuracy
        );
        let onnx = mnistc::export::onnx::export(&built.plan).unwrap();
        let report = check::check(built.blob.bytes(), &onnx, &test_images(300), true).unwrap();
        assert!(report.passed, "{precision}: {report:?}");
        assert!(report.max_abs_diff < 1e-3, "{precision}: {}", report.max_abs_diff);
    }
}

#[test]
fn same_spec_data_and_seed_give_the_same_bytes_cached_or_not() {
    let (b, dir) = built();
    let again = build_with(&spec(), &Cache::new(dir.path()));
    assert!(again.training.cached);
    assert_eq!(again.blob, b.blob);
    // A fresh training (new cache) reproduces the weights bit for bit on the CPU.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = build_with(&spec(), &Cache::new(fresh_dir.path()));
    assert!(!fresh.training.cached);
    assert_eq!(fresh.blob, b.blob);
    // The blob loads and states its own arena size.
    let aligned = AlignedBytes::from(b.blob.bytes());
    let model = mnistc_runtime::Model::from_bytes(aligned.as_bytes()).unwrap();
    assert_eq!(model.arena_size() as u64, b.footprint.arena_bytes);
    assert_eq!(arena::plan_arena(&b.plan).size as u64, b.footprint.arena_bytes);
    // The ONNX of the build is the export of its plan, and its inspection that of its blob.
    assert_eq!(b.onnx, mnistc::export::onnx::export(&b.plan).unwrap());
    assert_eq!(b.inspection.arena_bytes as u64, b.footprint.arena_bytes);
}
