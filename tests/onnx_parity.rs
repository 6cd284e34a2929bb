//! ONNX export vs the runtime, with tract-onnx as the oracle.
//!
//! Every plan is written both as a blob (run by `mnistc-runtime`) and as ONNX (run by tract), and
//! [`mnistc::verify::check::check`] compares the two on the same pixels: int8 bit for bit on every output
//! element and, per layer, on every op's output; f32/f16 within `1e-5 + 1e-4·|tract|`.

use mnistc::export::onnx::{self, INPUT_NAME, INPUT_Q_NAME, OUTPUT_NAME, OnnxError, op_output_name};
use mnistc::lower::emit::{self, AlignedBytes};
use mnistc::lower::plan::{Plan, PoolKind, Precision, Shape, Weights};
use mnistc::spec::Activation;
use mnistc::verify::check::{CheckError, CheckReport, check};
use mnistc::verify::tract::{Feed, TractError, TractModel, Values, nhwc_to_nchw};
use mnistc_runtime::{Input, Model};
use mnistc_suite::{
    Layer, conv, dense, depthwise, depthwise_plan, every_op_plan, output_len, pool, random_pixels, random_plan,
    with_uniform_weight_scales,
};
use proptest::prelude::*;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;

const PRECISIONS: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Int8];
/// The only node types of int8 graphs: integer ops plus the input/output conversions.
const INT8_NODE_TYPES: [&str; 7] =
    ["QuantizeLinear", "QLinearConv", "Clip", "MaxPool", "DequantizeLinear", "Transpose", "Flatten"];

fn blob_and_onnx(plan: &Plan) -> (Vec<u8>, Vec<u8>) {
    (emit::write(plan).expect("the plan writes as a blob").to_vec(), onnx::export(plan).expect("the plan exports"))
}

/// Asserts that `report` is a pass by the rules of its precision, on every layer.
fn assert_parity(report: &CheckReport, precision: Precision, what: &str) {
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    assert_eq!(report.top1_agreement, 1.0, "{what} ({precision:?}): top-1 differs\n{json}");
    if precision == Precision::Int8 {
        assert_eq!(report.max_lsb_diff, 0, "{what}: int8 logits differ\n{json}");
        assert_eq!(report.max_abs_diff, 0.0, "{what}: dequantized logits differ\n{json}");
        for l in &report.layers {
            assert_eq!(l.max_lsb_diff, 0, "{what}: int8 output of {} differs\n{json}", l.name);
        }
    }
    assert!(
        report.layers.iter().all(|l| l.passed && l.mismatches == 0),
        "{what} ({precision:?}): a layer differs\n{json}"
    );
    assert!(report.first_divergence.is_none(), "{what} ({precision:?})\n{json}");
    assert!(report.passed, "{what} ({precision:?}): not passed\n{json}");
}

/// Distinct logit vectors the runtime produces on `images` (to make sure a test is not vacuous).
fn distinct_outputs(blob: &[u8], images: &[u8]) -> usize {
    let aligned = AlignedBytes::from(blob);
    let model = Model::from_bytes(aligned.as_bytes()).unwrap();
    let mut arena = AlignedBytes::from(vec![0u8; model.arena_size()].as_slice());
    let mut out = vec![0f32; model.output_len()];
    let mut seen: Vec<Vec<u32>> = Vec::new();
    for px in images.chunks_exact(model.input_len()) {
        model.run(Input::Pixels(px), arena.as_bytes_mut(), &mut out).unwrap();
        let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
        if !seen.contains(&bits) {
            seen.push(bits);
        }
    }
    seen.len()
}

// ---------------------------------------------------------------------------------------------
// Random layer stacks.

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![Just(Activation::None), Just(Activation::Relu), Just(Activation::Relu6)]
}

/// Pools with rectangular and overlapping (stride < size) windows.
fn pool_layer() -> impl Strategy<Value = Layer> {
    (any::<bool>(), 1..=3usize, 1..=3usize, 1..=3usize, 1..=3usize)
        .prop_map(|(max, sh, sw, th, tw)| pool(if max { PoolKind::Max } else { PoolKind::Avg }, [sh, sw], [th, tw]))
}

/// A convolution, half the time followed by a pool (which the plan fuses into it).
fn conv_block() -> impl Strategy<Value = Vec<Layer>> {
    (
        1..=4usize,
        1..=4usize,
        1..=4usize,
        1..=2usize,
        1..=2usize,
        any::<bool>(),
        activation(),
        proptest::option::of(pool_layer()),
    )
        .prop_map(|(filters, kh, kw, sh, sw, same, activation, pool)| {
            std::iter::once(conv(filters, [kh, kw], [sh, sw], same, activation)).chain(pool).collect()
        })
}

/// A depthwise convolution (its channels are its input's).
fn depthwise_layer() -> impl Strategy<Value = Layer> {
    (1..=4usize, 1..=4usize, 1..=2usize, 1..=2usize, any::<bool>(), activation())
        .prop_map(|(kh, kw, sh, sw, same, activation)| depthwise([kh, kw], [sh, sw], same, activation))
}

fn spatial() -> impl Strategy<Value = Vec<Layer>> {
    prop_oneof![
        3 => conv_block(),
        1 => pool_layer().prop_map(|p| vec![p]),
        1 => depthwise_layer().prop_map(|d| vec![d]),
    ]
}

fn dense_layer() -> impl Strategy<Value = Layer> {
    (1..=8usize, activation()).prop_map(|(units, activation)| dense(units, activation))
}

/// A spatial op after a dense layer (on its `1x1xn` output): a 1x1 conv or a 1x1 pool.
fn after_dense() -> impl Strategy<Value = Layer> {
    prop_oneof![
        (1..=6usize, activation()).prop_map(|(filters, activation)| conv(filters, [1, 1], [1, 1], false, activation)),
        any::<bool>().prop_map(|max| pool(if max { PoolKind::Max } else { PoolKind::Avg }, [1, 1], [1, 1])),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    input: Shape,
    layers: Vec<Layer>,
    seed: u64,
    /// int8: give every conv/dense one weight scale (tract's uniform requantization path).
    uniform: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (3..=12usize, 3..=12usize, 1..=3usize),
        proptest::collection::vec(spatial(), 0..=3),
        proptest::collection::vec(dense_layer(), 0..=2),
        proptest::option::weighted(0.2, after_dense()),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|((h, w, c), blocks, denses, tail, seed, uniform)| {
            let mut layers: Vec<Layer> = blocks.into_iter().flatten().collect();
            let had_dense = !denses.is_empty();
            layers.extend(denses);
            if let (true, Some(t)) = (had_dense, tail) {
                layers.push(t);
            }
            if layers.is_empty() {
                layers.push(dense(10, Activation::None));
            }
            Case { input: Shape::new(h, w, c), layers, seed, uniform }
        })
}

/// The plan of a case: the logits are whatever the last layer produces; a stack that ends in more
/// than 16 values (the blob's class limit) gets a final dense layer of 10 units.
fn case_plan(case: &Case, precision: Precision) -> Option<Plan> {
    let mut layers = case.layers.clone();
    let mut classes = output_len(&layers, case.input)?;
    if classes > 16 {
        layers.push(dense(10, Activation::None));
        classes = 10;
    }
    let plan = random_plan(&layers, case.input, classes, precision, case.seed)?;
    if case.uniform && precision == Precision::Int8 { with_uniform_weight_scales(&plan) } else { Some(plan) }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_global_rejects: 4096, ..ProptestConfig::default() })]

    /// Random stacks in every precision: int8 bit-exact on every op's output, float within
    /// tolerance, per layer.
    #[test]
    fn random_stacks_agree_with_tract_per_layer(case in case()) {
        let plans: Vec<Option<Plan>> = PRECISIONS.iter().map(|&p| case_plan(&case, p)).collect();
        prop_assume!(plans.iter().all(Option::is_some), "the stack does not fit its input");
        let blobs: Vec<_> = plans.iter().flatten().map(emit::write).collect();
        prop_assume!(
            blobs.iter().all(Result::is_ok),
            "the runtime rejects the fixture: {:?}",
            blobs.iter().filter_map(|b| b.as_ref().err()).collect::<Vec<_>>()
        );
        for (plan, blob) in plans.iter().flatten().zip(blobs.into_iter().flatten()) {
            let precision = plan.precision;
            let onnx = onnx::export(plan).expect("a plan that writes as a blob exports");
            if precision == Precision::Int8 {
                for t in node_types(&onnx::model_proto(plan).unwrap()) {
                    prop_assert!(INT8_NODE_TYPES.contains(&t.as_str()), "int8 graph has a {} node", t);
                }
            }
            let images = random_pixels(3, plan.input, case.seed ^ 0x5eed);
            let report = check(blob.bytes(), &onnx, &images, true).expect("the check runs");
            prop_assert_eq!(report.layers.len(), plan.ops.len());
            assert_parity(&report, precision, &format!("{case:?}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed models.

#[test]
fn every_op_plan_passes_the_per_layer_check_in_every_precision() {
    for precision in PRECISIONS {
        let plan = every_op_plan(precision, 3);
        let (blob, onnx) = blob_and_onnx(&plan);
        let images = random_pixels(64, plan.input, 99);
        assert!(distinct_outputs(&blob, &images) > 10, "{precision:?}: the fixture's outputs are degenerate");
        let report = check(&blob, &onnx, &images, true).unwrap();
        assert_eq!(report.images, 64);
        assert_eq!(report.layers.len(), 6);
        let kinds: Vec<&str> = report.layers.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, ["conv2d", "conv2d", "maxpool2d", "avgpool2d", "dense", "dense"]);
        assert_eq!(
            report.layers.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
            (0..6).map(op_output_name).collect::<Vec<_>>()
        );
        assert_parity(&report, precision, "every-op plan");
        if precision == Precision::Int8 {
            assert_eq!(report.max_lsb_diff, 0);
        }
        // Without per-layer the logits alone are compared.
        let report = check(&blob, &onnx, &images, false).unwrap();
        assert!(report.passed && report.layers.is_empty() && report.first_divergence.is_none());
    }
}

#[test]
fn depthwise_plan_passes_the_per_layer_check_in_every_precision() {
    for precision in PRECISIONS {
        let plan = depthwise_plan(precision, 3);
        let (blob, onnx) = blob_and_onnx(&plan);
        let images = random_pixels(64, plan.input, 98);
        assert!(distinct_outputs(&blob, &images) > 10, "{precision:?}: the fixture's outputs are degenerate");
        let report = check(&blob, &onnx, &images, true).unwrap();
        let kinds: Vec<&str> = report.layers.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, ["depthwise_conv2d", "conv2d", "depthwise_conv2d", "dense"]);
        assert_parity(&report, precision, "depthwise plan");
        if precision == Precision::Int8 {
            assert_eq!(report.max_lsb_diff, 0);
            // The depthwise convolutions are grouped QLinearConvs, one group per channel (the
            // plan has no average pool, the other grouped QLinearConv).
            let model = onnx::model_proto(&plan).unwrap();
            let g = model.graph.as_ref().unwrap();
            let groups: Vec<i64> = g
                .node
                .iter()
                .filter(|n| n.op_type == "QLinearConv")
                .map(|n| n.attribute.iter().find(|a| a.name == "group").unwrap().i)
                .collect();
            assert_eq!(groups, [3, 1, 5, 1]);
        }
    }
}

#[test]
fn uniform_requantization_path_agrees_bit_for_bit() {
    let plan = with_uniform_weight_scales(&every_op_plan(Precision::Int8, 4)).unwrap();
    assert!(plan.ops.iter().all(|op| !matches!(
        op.quant.as_ref().and_then(|q| q.requant.as_ref()),
        Some(mnistc::lower::plan::RequantSpec::PerChannel(_))
    )));
    let (blob, onnx) = blob_and_onnx(&plan);
    let images = random_pixels(64, plan.input, 5);
    assert_parity(&check(&blob, &onnx, &images, true).unwrap(), Precision::Int8, "uniform scales");
}

/// The plan's dense weights index NHWC `(h, w, c)`; ONNX flattens NCHW `(c, h, w)`. A conv output
/// of 3x5 with 4 channels (all three sizes different) into a dense layer catches any mix-up.
#[test]
fn dense_weights_are_permuted_from_hwc_to_chw() {
    let layers = [conv(4, [3, 3], [1, 1], false, Activation::None), dense(6, Activation::None)];
    for precision in PRECISIONS {
        let plan = random_plan(&layers, Shape::new(5, 7, 2), 6, precision, 21).unwrap();
        assert_eq!(plan.ops[1].input, Shape::new(3, 5, 4));
        let (blob, onnx) = blob_and_onnx(&plan);
        let images = random_pixels(32, plan.input, 8);
        assert!(distinct_outputs(&blob, &images) > 10);
        assert_parity(&check(&blob, &onnx, &images, true).unwrap(), precision, "conv 3x5x4 -> dense");

        // The check notices a dense layer whose columns are in another order: the blob gets the
        // weights as if `in` were CHW, the ONNX keeps the right ones.
        let mut wrong = plan.clone();
        let s = plan.ops[1].input;
        let permute = |row: usize| {
            let (c, rest) = (row / (s.h * s.w), row % (s.h * s.w));
            s.index(rest / s.w, rest % s.w, c)
        };
        let n = s.len();
        wrong.ops[1].weights = match &plan.ops[1].weights {
            Weights::F32(w) => Weights::F32((0..w.len()).map(|i| w[(i / n) * n + permute(i % n)]).collect()),
            Weights::F16(w) => Weights::F16((0..w.len()).map(|i| w[(i / n) * n + permute(i % n)]).collect()),
            Weights::I8(w) => Weights::I8((0..w.len()).map(|i| w[(i / n) * n + permute(i % n)]).collect()),
            Weights::None => unreachable!(),
        };
        let wrong_blob = emit::write(&wrong).unwrap();
        let report = check(wrong_blob.bytes(), &onnx, &images, true).unwrap();
        assert!(!report.passed, "{precision:?}: a column permutation went unnoticed");
        assert_eq!(report.first_divergence.as_ref().map(|d| d.index), Some(1));
    }
}

/// A model whose last op is spatial (2x2 with 3 channels): the ONNX logits must come out in the
/// runtime's NHWC order.
#[test]
fn spatial_logits_keep_the_runtime_order() {
    let layers = [conv(3, [4, 4], [1, 1], false, Activation::None)];
    for precision in PRECISIONS {
        let plan = random_plan(&layers, Shape::new(5, 5, 1), 12, precision, 2).unwrap();
        assert_eq!(plan.ops[0].output, Shape::new(2, 2, 3));
        let (blob, onnx) = blob_and_onnx(&plan);
        let types = node_types(&onnx::model_proto(&plan).unwrap());
        assert!(types.iter().any(|t| t == "Transpose"), "{types:?}");
        let images = random_pixels(32, plan.input, 4);
        assert_parity(&check(&blob, &onnx, &images, true).unwrap(), precision, "spatial logits");
    }
}

/// int8 activation ranges narrower than `[−128, 127]` (ReLU6 below 127, a ReLU whose zero point is
/// above −128) are exported as int8 `Clip`, which tract runs exactly.
#[test]
fn narrow_int8_clamps_are_exported_as_int8_clip() {
    // A ReLU6 whose 6.0 is below the top of int8 in the fixture.
    let plan = (0..64)
        .map(|seed| every_op_plan(Precision::Int8, seed))
        .find(|p| p.ops[1].quant.as_ref().is_some_and(|q| q.act_max < 127))
        .expect("some seed gives a ReLU6 clamp below 127");
    // And an explicit lower bound on the first op as well.
    let mut plan = plan;
    if let Some(q) = plan.ops[0].quant.as_mut() {
        q.act_min = -90;
        q.act_max = 60;
    }
    let proto = onnx::model_proto(&plan).unwrap();
    let graph = proto.graph.as_ref().unwrap();
    let clips: Vec<&pb::NodeProto> = graph.node.iter().filter(|n| n.op_type == "Clip").collect();
    assert_eq!(clips.len(), 2);
    for clip in &clips {
        assert_eq!(clip.input.len(), 3);
        for bound in &clip.input[1..] {
            let t = initializer(graph, bound);
            assert_eq!((t.data_type, t.dims.len()), (DataType::Int8 as i32, 0));
        }
    }
    let clip0 = initializer(graph, &clips[0].input[1]).raw_data[0] as i8;
    assert_eq!(clip0, -90);
    let (blob, onnx) = blob_and_onnx(&plan);
    let images = random_pixels(64, plan.input, 17);
    let report = check(&blob, &onnx, &images, true).unwrap();
    assert_parity(&report, Precision::Int8, "narrow clamps");
}

/// One int8 weight changed in the blob: the check fails and names the op. (The weight must feed
/// a unit that is alive on these images, not a ReLU that is always off: seed 4 gives one.)
#[test]
fn a_corrupted_int8_weight_is_caught_and_located() {
    let plan = every_op_plan(Precision::Int8, 4);
    let (mut blob, onnx) = blob_and_onnx(&plan);
    let offset = {
        let aligned = AlignedBytes::from(blob.as_slice());
        let model = Model::from_bytes(aligned.as_bytes()).unwrap();
        (model.header().weights_offset + model.ops().nth(4).unwrap().record.weights_offset) as usize
    };
    let w = blob[offset] as i8;
    blob[offset] = (if w >= 0 { w - 100 } else { w + 100 }) as u8;
    emit::reseal(&mut blob);
    let images = random_pixels(64, plan.input, 99);

    let report = check(&blob, &onnx, &images, true).unwrap();
    assert!(!report.passed);
    let first = report.first_divergence.as_ref().expect("a divergence is reported");
    assert_eq!((first.index, first.name.as_str(), first.kind), (4, "op4", "dense"));
    assert!(report.layers[..4].iter().all(|l| l.passed));
    assert!(!report.layers[4].passed && report.layers[4].max_lsb_diff > 0);

    let report = check(&blob, &onnx, &images, false).unwrap();
    assert!(!report.passed && report.max_lsb_diff > 0 && report.max_abs_diff > 0.0);
    assert!(report.layers.is_empty() && report.first_divergence.is_none());
}

/// One f32 weight changed in the blob of a float model: the check fails at that op (seed 4: the
/// weight reads a live input, as above).
#[test]
fn a_corrupted_f32_weight_is_caught_and_located() {
    let plan = every_op_plan(Precision::F32, 4);
    let (mut blob, onnx) = blob_and_onnx(&plan);
    let offset = {
        let aligned = AlignedBytes::from(blob.as_slice());
        let model = Model::from_bytes(aligned.as_bytes()).unwrap();
        (model.header().weights_offset + model.ops().nth(1).unwrap().record.weights_offset) as usize
    };
    let w = f32::from_le_bytes(blob[offset..offset + 4].try_into().unwrap());
    blob[offset..offset + 4].copy_from_slice(&(w + 0.5).to_le_bytes());
    emit::reseal(&mut blob);
    let images = random_pixels(32, plan.input, 1);
    let report = check(&blob, &onnx, &images, true).unwrap();
    assert!(!report.passed);
    assert_eq!(report.first_divergence.as_ref().map(|d| d.index), Some(1));
    assert!(report.layers[0].passed && !report.layers[1].passed);
}

// ---------------------------------------------------------------------------------------------
// Graph structure.

fn node_types(model: &pb::ModelProto) -> Vec<String> {
    model.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.clone()).collect()
}

fn initializer<'a>(graph: &'a pb::GraphProto, name: &str) -> &'a pb::TensorProto {
    graph.initializer.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no initializer {name}"))
}

/// `(elem_type, dims)` of a value info.
fn type_of(v: &pb::ValueInfoProto) -> (i32, Vec<i64>) {
    let Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(t)), .. }) = &v.r#type else {
        panic!("{} has no tensor type", v.name)
    };
    let dims = t
        .shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| match d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => v,
            _ => panic!("symbolic dim"),
        })
        .collect();
    (t.elem_type, dims)
}

fn nchw(s: Shape) -> Vec<i64> {
    vec![1, s.c as i64, s.h as i64, s.w as i64]
}

fn assert_interface(plan: &Plan, model: &pb::ModelProto) {
    assert_eq!(model.ir_version, 8);
    assert_eq!(model.opset_import.len(), 1);
    assert_eq!((model.opset_import[0].domain.as_str(), model.opset_import[0].version), ("", 13));
    assert_eq!(model.producer_name, "mnistc");
    let g = model.graph.as_ref().unwrap();
    assert_eq!(g.input.len(), 1);
    assert_eq!(g.input[0].name, INPUT_NAME);
    assert_eq!(type_of(&g.input[0]), (DataType::Float as i32, nchw(plan.input)));
    assert_eq!(g.output.len(), 1);
    assert_eq!(g.output[0].name, OUTPUT_NAME);
    let classes = plan.ops.last().unwrap().output.len() as i64;
    assert_eq!(type_of(&g.output[0]), (DataType::Float as i32, vec![1, classes]));
    // Every op's output is computed by exactly one node and typed in value_info.
    for i in 0..plan.ops.len() {
        let name = op_output_name(i);
        assert_eq!(g.node.iter().filter(|n| n.output.contains(&name)).count(), 1, "{name}");
        assert!(g.value_info.iter().any(|v| v.name == name), "{name} has no value_info");
    }
    // Node names are unique and every node input is defined before use.
    let mut defined: Vec<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    defined.push(INPUT_NAME.into());
    for n in &g.node {
        for i in &n.input {
            assert!(defined.contains(i), "{} reads undefined {i}", n.name);
        }
        defined.extend(n.output.iter().cloned());
    }
    let mut names: Vec<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), g.node.len(), "node names are unique");
}

#[test]
fn int8_graph_carries_the_integer_arithmetic() {
    let plan = every_op_plan(Precision::Int8, 3);
    let model = onnx::model_proto(&plan).unwrap();
    assert_interface(&plan, &model);
    let g = model.graph.as_ref().unwrap();
    for t in node_types(&model) {
        assert!(INT8_NODE_TYPES.contains(&t.as_str()), "int8 graph has a {t} node");
    }
    // No float arithmetic on activations: no Conv, Gemm, MatMul, AveragePool, Relu.
    for n in &g.node {
        assert!(!["Conv", "Gemm", "MatMul", "AveragePool", "Relu"].contains(&n.op_type.as_str()));
    }
    // input -> QuantizeLinear -> input_q (int8, 1/255, -128).
    let q = &g.node[0];
    assert_eq!(
        (q.op_type.as_str(), q.input[0].as_str(), q.output[0].as_str()),
        ("QuantizeLinear", INPUT_NAME, INPUT_Q_NAME)
    );
    assert_eq!(initializer(g, &q.input[1]).raw_data, (1.0f32 / 255.0).to_le_bytes());
    assert_eq!(initializer(g, &q.input[2]).raw_data, [0x80]);
    let vi = g.value_info.iter().find(|v| v.name == INPUT_Q_NAME).unwrap();
    assert_eq!(type_of(vi), (DataType::Int8 as i32, nchw(plan.input)));
    // Every op output is int8 NCHW (dense: [1, units, 1, 1]).
    for (i, op) in plan.ops.iter().enumerate() {
        let vi = g.value_info.iter().find(|v| v.name == op_output_name(i)).unwrap();
        assert_eq!(type_of(vi), (DataType::Int8 as i32, nchw(op.output)));
    }
    // QLinearConvs: int8 weights, f32 scales, int8 zero points, int32 bias when present.
    // 2 convs + 2 dense + fused avg pool + standalone avg pool = 6.
    let convs: Vec<&pb::NodeProto> = g.node.iter().filter(|n| n.op_type == "QLinearConv").collect();
    assert_eq!(convs.len(), 6);
    for c in &convs {
        let w = initializer(g, &c.input[3]);
        assert_eq!(w.data_type, DataType::Int8 as i32);
        assert_eq!(w.dims.len(), 4);
        for (slot, dt) in [
            (1, DataType::Float),
            (2, DataType::Int8),
            (4, DataType::Float),
            (5, DataType::Int8),
            (6, DataType::Float),
            (7, DataType::Int8),
        ] {
            assert_eq!(initializer(g, &c.input[slot]).data_type, dt as i32, "{} input {slot}", c.name);
        }
        if c.input.len() == 9 {
            let b = initializer(g, &c.input[8]);
            assert_eq!((b.data_type, b.dims.clone()), (DataType::Int32 as i32, vec![w.dims[0]]));
            // Per-channel weight scales and zero points.
            assert_eq!(initializer(g, &c.input[4]).dims, vec![w.dims[0]]);
            assert!(initializer(g, &c.input[5]).raw_data.iter().all(|&z| z == 0));
        } else {
            // Average pool: depthwise, all-ones weights.
            let group = c.attribute.iter().find(|a| a.name == "group").unwrap().i;
            assert_eq!(group, w.dims[0]);
            assert_eq!(w.dims[1], 1);
            assert!(w.raw_data.iter().all(|&v| v == 1));
            // The weight scale is the runtime's pool multiplier (≈ s_x / (n · s_y)), exactly.
            let index: usize = c.name.trim_start_matches("op").split('.').next().unwrap().parse().unwrap();
            let (m, shift) = plan.ops[index].quant.as_ref().unwrap().pool_requant.unwrap();
            let want = mnistc_runtime::quant::uniform_scale(m, shift);
            assert_eq!(initializer(g, &c.input[4]).raw_data, want.to_le_bytes(), "{}", c.name);
        }
        // The whole requantization rides on the weight scale: input and output scales are 1, so
        // tract folds no product of scales (whose rounding depends on its evaluation order).
        for slot in [1, 6] {
            assert_eq!(initializer(g, &c.input[slot]).raw_data, 1.0f32.to_le_bytes(), "{} input {slot}", c.name);
        }
    }
    // The dense layers are convolutions over their whole input.
    let dense =
        g.node.iter().find(|n| n.op_type == "QLinearConv" && (n.name == "op4" || n.name == "op4.dense")).unwrap();
    let w = initializer(g, &dense.input[3]);
    let s = plan.ops[4].input;
    assert_eq!(w.dims, vec![7, s.c as i64, s.h as i64, s.w as i64]);
    assert_eq!(type_of(g.value_info.iter().find(|v| v.name == "logits.nchw").unwrap()).0, DataType::Float as i32);
}

#[test]
fn float_graphs_use_float_ops() {
    for precision in [Precision::F32, Precision::F16] {
        let plan = every_op_plan(precision, 3);
        let model = onnx::model_proto(&plan).unwrap();
        assert_interface(&plan, &model);
        let types = node_types(&model);
        assert_eq!(types.iter().filter(|t| *t == "Conv").count(), 2);
        assert_eq!(types.iter().filter(|t| *t == "Gemm").count(), 2);
        assert!(!types.iter().any(|t| t.starts_with("QLinear") || t.contains("Quantize")));
        let g = model.graph.as_ref().unwrap();
        for init in &g.initializer {
            assert!(init.data_type != DataType::Float16 as i32, "f16 weights are widened to f32");
        }
        // The dense after a 4-D tensor is Flatten + Gemm(transB = 1); its output is [1, units].
        let gemm = g.node.iter().find(|n| n.op_type == "Gemm").unwrap();
        assert!(gemm.attribute.iter().any(|a| a.name == "transB" && a.i == 1));
        let vi = g.value_info.iter().find(|v| v.name == op_output_name(4)).unwrap();
        assert_eq!(type_of(vi), (DataType::Float as i32, vec![1, 7]));
    }
}

#[test]
fn export_refuses_what_onnx_cannot_express() {
    // A requantization multiplier that is not the one ONNX's scales give.
    let mut plan = every_op_plan(Precision::Int8, 3);
    if let Some(q) = plan.ops[1].quant.as_mut() {
        q.conv.scale *= 1.5;
    }
    let err = onnx::export(&plan).unwrap_err();
    assert!(matches!(err, OnnxError::Op { op: 1, .. }), "{err}");
    assert!(err.to_string().contains("requantization"), "{err}");

    // A max pool that changes the scale.
    let mut plan = every_op_plan(Precision::Int8, 3);
    if let Some(q) = plan.ops[2].quant.as_mut() {
        q.output.scale *= 2.0;
    }
    assert!(matches!(onnx::export(&plan), Err(OnnxError::Op { op: 2, .. })));

    // Shapes that do not chain, weights of the wrong length, an empty plan.
    let mut plan = every_op_plan(Precision::F32, 3);
    plan.ops[3].input.c += 1;
    assert!(matches!(onnx::export(&plan), Err(OnnxError::Op { op: 3, .. })));
    let mut plan = every_op_plan(Precision::F32, 3);
    if let Weights::F32(w) = &mut plan.ops[4].weights {
        w.pop();
    }
    assert!(matches!(onnx::export(&plan), Err(OnnxError::Op { op: 4, .. })));
    let mut plan = every_op_plan(Precision::F32, 3);
    plan.ops.clear();
    assert_eq!(onnx::export(&plan), Err(OnnxError::Empty));
}

// ---------------------------------------------------------------------------------------------
// The tract wrapper.

/// tract's `QuantizeLinear` multiplies by `1/s` (254.99998 for s = f32(1/255)) where ONNX divides:
/// near-ties differ, which is why int8 checks feed `input_q`. Pixel inputs `p/255` quantize to
/// exactly `p − 128` either way, so the float input path agrees too.
#[test]
fn int8_float_input_agrees_with_the_quantized_feed_on_pixels() {
    let plan = every_op_plan(Precision::Int8, 3);
    let onnx = onnx::export(&plan).unwrap();
    let mut float = TractModel::load(&onnx, Feed::Float, &[INPUT_Q_NAME, OUTPUT_NAME]).unwrap();
    let mut quant = TractModel::load(&onnx, Feed::Quantized, &[OUTPUT_NAME]).unwrap();
    assert_eq!(quant.input_shape(), [1, 2, 11, 9]);
    // Every pixel value occurs.
    let n = plan.input.len();
    let pixels: Vec<u8> = (0..4 * n).map(|i| ((i * 7) % 256) as u8).collect();
    for px in pixels.chunks_exact(n) {
        let x: Vec<f32> = nhwc_to_nchw(px, plan.input).iter().map(|&p| p as f32 / 255.0).collect();
        let q: Vec<i8> = nhwc_to_nchw(px, plan.input).iter().map(|&p| (p as i16 - 128) as i8).collect();
        let a = float.run_f32(&x).unwrap();
        let b = quant.run_i8(&q).unwrap();
        assert_eq!(a[0].values, Values::I8(q.clone()));
        assert_eq!(a[1].values, b[0].values);
    }
    // Near the tie (1 + 0.5)/255 some float rounds one way when divided by s and the other when
    // multiplied by 1/s; tract gives the multiplied one.
    let s = 1.0f32 / 255.0;
    let mid = 1.5f32 / 255.0;
    let x = (-8i32..=8)
        .map(|d| f32::from_bits(mid.to_bits().wrapping_add_signed(d)))
        .find(|x| (x / s).round_ties_even() != (x * (1.0 / s)).round_ties_even())
        .expect("a near-tie where x/s and x*(1/s) round apart");
    let mut probe = TractModel::load(&onnx, Feed::Float, &[INPUT_Q_NAME]).unwrap();
    let mut input = vec![0.0f32; n];
    input[0] = x;
    let out = probe.run_f32(&input).unwrap();
    let Values::I8(q) = &out[0].values else { panic!("input_q is int8") };
    assert_eq!(q[0] as f32, (x * (1.0 / s)).round_ties_even() - 128.0, "tract multiplies by 1/s");
    assert_ne!(q[0] as f32, (x / s).round_ties_even() - 128.0);
}

#[test]
fn tract_wrapper_reports_bad_names_and_inputs() {
    let int8 = onnx::export(&every_op_plan(Precision::Int8, 3)).unwrap();
    let float = onnx::export(&every_op_plan(Precision::F32, 3)).unwrap();
    assert!(
        matches!(TractModel::load(&int8, Feed::Float, &["nope"]), Err(TractError::UnknownTensor(n)) if n == "nope")
    );
    assert!(
        matches!(TractModel::load(&float, Feed::Quantized, &[]), Err(TractError::UnknownTensor(n)) if n == INPUT_Q_NAME)
    );
    assert!(matches!(TractModel::load(b"not onnx", Feed::Float, &[]), Err(TractError::Load(_))));
    let mut m = TractModel::load(&int8, Feed::Quantized, &[]).unwrap();
    assert_eq!(m.output_names(), [OUTPUT_NAME]);
    assert!(matches!(m.run_i8(&[0; 3]), Err(TractError::Input { expected: 198, got: 3, .. })));
    assert!(matches!(m.run_f32(&[0.0; 198]), Err(TractError::Input { .. })));
    let out = m.run_i8(&[0; 198]).unwrap();
    assert_eq!(out[0].shape, [1, 10]);
}

#[test]
fn check_reports_unusable_inputs() {
    let plan = every_op_plan(Precision::Int8, 3);
    let (blob, onnx) = blob_and_onnx(&plan);
    assert!(matches!(check(&blob, &onnx, &[], false), Err(CheckError::NoImages)));
    assert!(matches!(check(&blob, &onnx, &[0; 199], false), Err(CheckError::ImageBytes { per_image: 198, .. })));
    // An ONNX file of another model.
    let other = random_plan(&[dense(10, Activation::None)], Shape::new(4, 4, 1), 10, Precision::Int8, 1).unwrap();
    let other = onnx::export(&other).unwrap();
    let r = check(&blob, &other, &[0; 198], false);
    assert!(matches!(r, Err(CheckError::Mismatch(_))), "{r:?}");
    // A float ONNX for an int8 blob has no quantized input.
    let float = onnx::export(&every_op_plan(Precision::F32, 3)).unwrap();
    let r = check(&blob, &float, &[0; 198], false);
    assert!(matches!(&r, Err(CheckError::Mismatch(m)) if m.contains(INPUT_Q_NAME)), "{r:?}");
    // A float blob against an int8 export: the op outputs are int8 where f32 is expected.
    let float_blob = emit::write(&every_op_plan(Precision::F32, 3)).unwrap();
    let r = check(float_blob.bytes(), &onnx, &[0; 198], true);
    assert!(matches!(r, Err(CheckError::Mismatch(_))), "{r:?}");
    let mut bad = blob.clone();
    bad[20] ^= 1;
    assert!(matches!(check(&bad, &onnx, &[0; 198], false), Err(CheckError::Blob(_))));
}

/// A residual graph (two adds reading tensors written ops earlier, a conv whose pool is fused and
/// a pool that is not): bit-exact with tract in int8 on every op, within tolerance in float; the
/// int8 add is tract's `DequantizeLinear` → `Add` → `QuantizeLinear`.
#[test]
fn residual_plan_passes_the_per_layer_check_in_every_precision() {
    for precision in PRECISIONS {
        let plan = mnistc_suite::residual_plan(precision, 5);
        assert!(!plan.is_chain());
        let (blob, onnx) = blob_and_onnx(&plan);
        let images = random_pixels(64, plan.input, 97);
        assert!(distinct_outputs(&blob, &images) > 10, "{precision:?}: the fixture's outputs are degenerate");
        let report = check(&blob, &onnx, &images, true).unwrap();
        let kinds: Vec<&str> = report.layers.iter().map(|l| l.kind).collect();
        if precision == Precision::Int8 {
            // The first add is fused into the conv before it, writing over its residual.
            assert_eq!(kinds, ["conv2d", "conv2d", "conv2d", "conv2d", "avgpool2d", "add", "dense"]);
            assert!(plan.ops[2].residual && plan.ops[2].inputs == [2, 1]);
        } else {
            assert_eq!(kinds, ["conv2d", "conv2d", "conv2d", "add", "conv2d", "avgpool2d", "add", "dense"]);
        }
        assert_parity(&report, precision, "residual plan");
        let model = onnx::model_proto(&plan).unwrap();
        let adds = node_types(&model).iter().filter(|t| *t == "Add").count();
        assert_eq!(adds, 2);
        if precision == Precision::Int8 {
            // Each add (fused or not) dequantizes its two operands and quantizes its sum.
            let types = node_types(&model);
            assert_eq!(types.iter().filter(|t| *t == "DequantizeLinear").count(), 2 * 2 + 1);
            assert_eq!(types.iter().filter(|t| *t == "QuantizeLinear").count(), 2 + 1);
        }
    }
}
