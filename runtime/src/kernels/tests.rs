//! One property suite, instantiated per ISA: every fast kernel (conv2d, depthwise conv2d, dense,
//! pools, add, a conv2d with a fused residual add) equals the reference bit for bit
//! on random shapes (odd channel counts, several channel blocks, `k` tails, 1×1, kernel = input,
//! stride > kernel, `same` padding with even kernels, overlapping fused and standalone pools), random weights and
//! extreme values (−128/127, zero points at the ends), both requantization paths.
//!
//! An ISA the machine lacks skips its cases; on x86-64 both ISAs run here, and CI runs the
//! aarch64 and Arm DSP instances under `qemu-aarch64` / `qemu-arm`.

use proptest::prelude::*;

use super::params::{
    AddS8, AvgRequant, ConvGeometry, ConvS8, DenseS8, DepthwiseS8, PoolGeometry, PoolKind, Requantizer, Shape,
    same_pads,
};
use super::{conv2d_s8_scratch_size, dense_s8_scratch_size, reference};
use crate::quant::multiplier_from_scale;

/// A random int8 convolution with everything its kernel needs.
#[derive(Debug, Clone)]
pub(crate) struct ConvCase {
    pub geometry: ConvGeometry,
    pub pool: Option<(PoolKind, PoolGeometry)>,
    pub input: Vec<i8>,
    pub weights: Vec<i8>,
    pub bias: Vec<i32>,
    pub zero_points: [i32; 3],
    pub multipliers: Vec<f32>,
    pub per_channel: bool,
    /// TFLite's arithmetic (Q31 pairs, a dividing average pool), whatever `per_channel` says.
    pub tflite: bool,
    pub pool_scale: f32,
    pub act: (i32, i32),
    /// A fused residual add (used only without a pool) and the residual tensor the output
    /// buffer holds on entry.
    pub residual: Option<(AddS8, Vec<i8>)>,
}

fn extreme_i8() -> impl Strategy<Value = i8> + Clone {
    prop_oneof![4 => any::<i8>(), 1 => Just(-128i8), 1 => Just(127i8), 1 => Just(0i8)]
}

fn zero_point() -> impl Strategy<Value = i32> + Clone {
    prop_oneof![2 => -128i32..=127, 1 => Just(-128), 1 => Just(127)]
}

/// OHWI (`[out][k]`) weights in the blob's packed layout.
fn packed(ohwi: &[i8], k: usize, out: usize) -> Vec<i8> {
    let mut p = vec![0i8; crate::format::packed_len(k, out)];
    crate::format::pack_weights(ohwi, k, out, &mut p).expect("OHWI weights of k·out values");
    p
}

/// Largest multiplier that keeps `|acc · m| < 2^29` (what loading a blob guarantees).
fn max_multiplier(k: usize, bias: &[i32]) -> f32 {
    let bound = k as f64 * 255.0 * 128.0 + bias.iter().map(|b| b.unsigned_abs() as f64).fold(0.0, f64::max);
    ((1u64 << 29) as f64 / bound) as f32
}

/// Mostly a few channels (tails of every block size), sometimes more than one 64-channel block.
fn output_channels() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 1usize..=10, 1 => 11usize..=70]
}

fn geometry() -> impl Strategy<Value = (ConvGeometry, Option<(PoolKind, PoolGeometry)>)> {
    (1usize..=11, 1usize..=11, 1usize..=21, output_channels(), 1usize..=5, 1usize..=5, 1usize..=3, 1usize..=3, any::<bool>())
        .prop_filter_map("kernel larger than the padded input", |(h, w, c, oc, kh, kw, sh, sw, same)| {
            let (pt, pb) = if same { same_pads(h, kh, sh) } else { (0, 0) };
            let (pl, pr) = if same { same_pads(w, kw, sw) } else { (0, 0) };
            (h + pt + pb >= kh && w + pl + pr >= kw).then(|| ConvGeometry {
                input: Shape::new(h, w, c),
                output: Shape::new((h + pt + pb - kh) / sh + 1, (w + pl + pr - kw) / sw + 1, oc),
                kernel_h: kh,
                kernel_w: kw,
                stride_h: sh,
                stride_w: sw,
                pad_top: pt,
                pad_left: pl,
            })
        })
        .prop_flat_map(|g| {
            let o = g.output;
            let pool = prop_oneof![
                2 => Just(None),
                3 => (prop_oneof![Just(PoolKind::Max), Just(PoolKind::Avg)], 1..=o.h.min(3), 1..=o.w.min(3), 1usize..=3, 1usize..=3)
                    .prop_map(move |(kind, ph, pw, sh, sw)| {
                        Some((kind, PoolGeometry {
                            input: o,
                            output: Shape::new((o.h - ph) / sh + 1, (o.w - pw) / sw + 1, o.c),
                            size_h: ph,
                            size_w: pw,
                            stride_h: sh,
                            stride_w: sw,
                        }))
                    }),
            ];
            (Just(g), pool)
        })
}

/// Whether a case uses TFLite's arithmetic (one case in three; never without the feature).
fn tflite() -> impl Strategy<Value = bool> {
    prop_oneof![2 => Just(false), 1 => Just(cfg!(feature = "tflite"))]
}

/// The TFLite requantizer of `pairs` (feature `tflite`), else `None`.
fn tflite_requantizer(pairs: &[[i32; 2]]) -> Option<Requantizer<'_>> {
    #[cfg(feature = "tflite")]
    return Some(Requantizer::Tflite(pairs));
    #[cfg(not(feature = "tflite"))]
    {
        let _ = pairs;
        None
    }
}

/// TFLite's Q31 `[multiplier, shift]` of each multiplier.
pub(crate) fn tflite_pairs(multipliers: &[f32]) -> Vec<[i32; 2]> {
    multipliers
        .iter()
        .map(|&m| {
            let (q, s) = crate::quant::tflite_multiplier(m as f64);
            [q, s]
        })
        .collect()
}

pub(crate) fn conv_case() -> impl Strategy<Value = ConvCase> {
    conv_case_with(geometry())
}

/// A grey first layer: one input channel, a square 2x2 to 4x4 kernel, no padding, any stride,
/// up to 70 filters, a fused max pool or none (what the x86-64 first-layer kernel takes, and
/// its neighbours: strides, odd filter counts, more than 64 filters).
fn first_layer_geometry() -> impl Strategy<Value = (ConvGeometry, Option<(PoolKind, PoolGeometry)>)> {
    (2usize..=4, 4usize..=12, 4usize..=12, output_channels(), 1usize..=2, 1usize..=2)
        .prop_filter_map("kernel larger than the input", |(k, h, w, oc, sh, sw)| {
            (k <= h && k <= w).then(|| ConvGeometry {
                input: Shape::new(h, w, 1),
                output: Shape::new((h - k) / sh + 1, (w - k) / sw + 1, oc),
                kernel_h: k,
                kernel_w: k,
                stride_h: sh,
                stride_w: sw,
                pad_top: 0,
                pad_left: 0,
            })
        })
        .prop_flat_map(|g| {
            let o = g.output;
            let pool = prop_oneof![
                1 => Just(None),
                2 => (1..=o.h.min(2), 1..=o.w.min(2), 1usize..=2).prop_map(move |(ph, pw, s)| {
                    Some((PoolKind::Max, PoolGeometry {
                        input: o,
                        output: Shape::new((o.h - ph) / s + 1, (o.w - pw) / s + 1, o.c),
                        size_h: ph,
                        size_w: pw,
                        stride_h: s,
                        stride_w: s,
                    }))
                }),
            ];
            (Just(g), pool)
        })
}

pub(crate) fn first_layer_case() -> impl Strategy<Value = ConvCase> {
    conv_case_with(first_layer_geometry())
}

fn conv_case_with(
    geometry: impl Strategy<Value = (ConvGeometry, Option<(PoolKind, PoolGeometry)>)>,
) -> impl Strategy<Value = ConvCase> {
    geometry.prop_flat_map(|(g, pool)| {
        let k = g.filter_len();
        let residual = if pool.is_some() {
            Just(None).boxed()
        } else {
            proptest::option::of(
                (add_case_params(), prop::collection::vec(extreme_i8(), g.output.len())).prop_map(|(p, r)| (p, r)),
            )
            .boxed()
        };
        (
            Just((g, pool)),
            residual,
            prop::collection::vec(extreme_i8(), g.input.len()),
            prop::collection::vec(extreme_i8(), g.output.c * k),
            prop::collection::vec(-200_000i32..200_000, g.output.c),
            (zero_point(), zero_point(), zero_point()),
            prop::collection::vec(0.001f32..1.0, g.output.c),
            any::<bool>(),
            (0.2f32..1.5, -128i32..=127, -128i32..=127),
            tflite(),
        )
            .prop_map(
                |(
                    (geometry, pool),
                    residual,
                    input,
                    weights,
                    bias,
                    zps,
                    fractions,
                    per_channel,
                    (pool_scale, a, b),
                    tflite,
                )| {
                    let top = max_multiplier(geometry.filter_len(), &bias);
                    ConvCase {
                        geometry,
                        pool,
                        input,
                        weights: packed(&weights, geometry.filter_len(), geometry.output.c),
                        zero_points: [zps.0, zps.1, zps.2],
                        multipliers: fractions.iter().map(|f| f * top).collect(),
                        bias,
                        per_channel,
                        tflite: tflite && residual.is_none(),
                        pool_scale,
                        act: (a.min(b), a.max(b)),
                        residual,
                    }
                },
            )
    })
}

/// Runs `f` on the case's op and returns its output.
pub(crate) fn run_conv(t: &ConvCase, f: impl FnOnce(&ConvS8<'_>, &[i8], &mut [i8], &mut [u8])) -> Vec<i8> {
    let bits: Vec<u32> = t.multipliers.iter().map(|m| m.to_bits()).collect();
    let pairs = tflite_pairs(&t.multipliers);
    let requant = match (t.tflite.then(|| tflite_requantizer(&pairs)).flatten(), t.per_channel) {
        (Some(r), _) => r,
        (None, true) => Requantizer::PerChannel(&bits),
        (None, false) => {
            let (multiplier, shift) = multiplier_from_scale(t.multipliers[0]).unwrap_or((1 << 30, 0));
            Requantizer::Uniform { multiplier, shift }
        }
    };
    let pool = t.pool.map(|(kind, p)| {
        let q = if t.tflite {
            let zp = t.zero_points[1];
            AvgRequant { input_zero_point: zp, multiplier: 0, shift: 0, output_zero_point: zp }
        } else {
            let (multiplier, shift) =
                multiplier_from_scale(t.pool_scale / p.window_len() as f32).unwrap_or((1 << 30, 0));
            AvgRequant { input_zero_point: t.zero_points[1], multiplier, shift, output_zero_point: t.zero_points[2] }
        };
        (kind, p, q)
    });
    let op = ConvS8 {
        geometry: t.geometry,
        input_zero_point: t.zero_points[0],
        requant,
        conv_zero_point: t.zero_points[1],
        act_min: t.act.0,
        act_max: t.act.1,
        pool,
        residual: t.residual.as_ref().map(|(p, _)| *p),
        weights: &t.weights,
        bias: &t.bias,
    };
    let out_len = t.pool.map_or(t.geometry.output.len(), |(_, p)| p.output.len());
    let mut out = match &t.residual {
        Some((_, r)) => r.clone(),
        None => vec![0i8; out_len],
    };
    let mut scratch = vec![0xA5u8; conv2d_s8_scratch_size(&t.geometry, t.pool.map_or(1, |(_, p)| p.window_len()))];
    f(&op, &t.input, &mut out, &mut scratch);
    out
}

/// A random int8 dense layer.
#[derive(Debug, Clone)]
pub(crate) struct DenseCase {
    pub input: Vec<i8>,
    pub weights: Vec<i8>,
    pub bias: Vec<i32>,
    pub zero_points: [i32; 2],
    pub multipliers: Vec<f32>,
    pub per_channel: bool,
    /// TFLite's arithmetic (the multipliers as Q31 pairs), whatever `per_channel` says.
    pub tflite: bool,
}

pub(crate) fn dense_case() -> impl Strategy<Value = DenseCase> {
    (1usize..400, prop_oneof![3 => 1usize..11, 1 => 11usize..140]).prop_flat_map(|(k, n)| {
        (
            prop::collection::vec(extreme_i8(), k),
            prop::collection::vec(extreme_i8(), k * n),
            prop::collection::vec(-200_000i32..200_000, n),
            (zero_point(), zero_point()),
            prop::collection::vec(0.001f32..1.0, n),
            any::<bool>(),
            tflite(),
        )
            .prop_map(|(input, weights, bias, zps, fractions, per_channel, tflite)| {
                let top = max_multiplier(input.len(), &bias);
                DenseCase {
                    weights: packed(&weights, input.len(), bias.len()),
                    input,
                    multipliers: fractions.iter().map(|f| f * top).collect(),
                    bias,
                    zero_points: [zps.0, zps.1],
                    per_channel,
                    tflite,
                }
            })
    })
}

pub(crate) fn run_dense(t: &DenseCase, f: impl FnOnce(&DenseS8<'_>, &[i8], &mut [i8], &mut [u8])) -> Vec<i8> {
    let bits: Vec<u32> = t.multipliers.iter().map(|m| m.to_bits()).collect();
    let pairs = tflite_pairs(&t.multipliers);
    let requant = match (t.tflite.then(|| tflite_requantizer(&pairs)).flatten(), t.per_channel) {
        (Some(r), _) => r,
        (None, true) => Requantizer::PerChannel(&bits),
        (None, false) => {
            let (multiplier, shift) = multiplier_from_scale(t.multipliers[0]).unwrap_or((1 << 30, 0));
            Requantizer::Uniform { multiplier, shift }
        }
    };
    let n = t.bias.len();
    let op = DenseS8 {
        input_len: t.input.len(),
        output_len: n,
        input_zero_point: t.zero_points[0],
        requant,
        output_zero_point: t.zero_points[1],
        act_min: -128,
        act_max: 127,
        weights: &t.weights,
        bias: &t.bias,
    };
    let mut out = vec![0i8; n];
    let mut scratch = vec![0x5Au8; dense_s8_scratch_size(t.input.len(), n)];
    f(&op, &t.input, &mut out, &mut scratch);
    out
}

pub(crate) fn pool_case() -> impl Strategy<Value = (PoolGeometry, Vec<i8>, AvgRequant)> {
    (
        1usize..10,
        1usize..10,
        1usize..80,
        1usize..4,
        1usize..4,
        1usize..4,
        1usize..4,
        zero_point(),
        zero_point(),
        0.3f32..2.0,
        tflite(),
    )
        .prop_filter("window larger than the input", |(h, w, _, kh, kw, ..)| kh <= h && kw <= w)
        .prop_flat_map(|(h, w, c, kh, kw, sh, sw, zi, zo, s, tflite)| {
            let input = Shape::new(h, w, c);
            let g = PoolGeometry {
                input,
                output: Shape::new((h - kh) / sh + 1, (w - kw) / sw + 1, c),
                size_h: kh,
                size_w: kw,
                stride_h: sh,
                stride_w: sw,
            };
            let (multiplier, shift) = multiplier_from_scale(s / (kh * kw) as f32).unwrap_or((1 << 30, 0));
            let q = if tflite {
                AvgRequant { input_zero_point: zi, multiplier: 0, shift: 0, output_zero_point: zi }
            } else {
                AvgRequant { input_zero_point: zi, multiplier, shift, output_zero_point: zo }
            };
            (Just(g), prop::collection::vec(extreme_i8(), input.len()), Just(q))
        })
}

/// A random int8 depthwise convolution: odd channel counts and several blocks, `same` padding
/// with even kernels, stride > kernel, extreme values, both requantization paths.
#[derive(Debug, Clone)]
pub(crate) struct DepthwiseCase {
    pub geometry: ConvGeometry,
    pub input: Vec<i8>,
    pub weights: Vec<i8>,
    pub bias: Vec<i32>,
    pub zero_points: [i32; 2],
    pub multipliers: Vec<f32>,
    pub per_channel: bool,
    /// TFLite's arithmetic, whatever `per_channel` says.
    pub tflite: bool,
    pub act: (i32, i32),
}

pub(crate) fn depthwise_case() -> impl Strategy<Value = DepthwiseCase> {
    (1usize..=9, 1usize..=9, output_channels(), 1usize..=4, 1usize..=4, 1usize..=3, 1usize..=3, any::<bool>())
        .prop_filter_map("kernel larger than the padded input", |(h, w, c, kh, kw, sh, sw, same)| {
            let (pt, pb) = if same { same_pads(h, kh, sh) } else { (0, 0) };
            let (pl, pr) = if same { same_pads(w, kw, sw) } else { (0, 0) };
            let (ph, pw) = (h + pt + pb, w + pl + pr);
            (kh <= ph && kw <= pw).then(|| ConvGeometry {
                input: Shape::new(h, w, c),
                output: Shape::new((ph - kh) / sh + 1, (pw - kw) / sw + 1, c),
                kernel_h: kh,
                kernel_w: kw,
                stride_h: sh,
                stride_w: sw,
                pad_top: pt,
                pad_left: pl,
            })
        })
        .prop_flat_map(|g| {
            let c = g.input.c;
            let taps = g.kernel_h * g.kernel_w;
            (
                Just(g),
                prop::collection::vec(extreme_i8(), g.input.len()),
                prop::collection::vec(extreme_i8(), taps * c),
                prop::collection::vec(-5000i32..5000, c),
                (zero_point(), zero_point()),
                prop::collection::vec(0.05f32..1.0, c),
                any::<bool>(),
                (-128i32..=0, 0i32..=127),
                tflite(),
            )
        })
        .prop_map(|(geometry, input, weights, bias, (zi, zo), scales, per_channel, act, tflite)| {
            let taps = geometry.kernel_h * geometry.kernel_w;
            let m = max_multiplier(taps, &bias);
            let multipliers = scales.iter().map(|s| s * m).collect();
            let act = (act.0.min(zo), act.1.max(zo));
            DepthwiseCase {
                geometry,
                input,
                weights,
                bias,
                zero_points: [zi, zo],
                multipliers,
                per_channel,
                tflite,
                act,
            }
        })
}

/// Runs `f` on the op of a depthwise case and returns its output.
pub(crate) fn run_depthwise(t: &DepthwiseCase, f: impl FnOnce(&DepthwiseS8<'_>, &[i8], &mut [i8])) -> Vec<i8> {
    let bits: Vec<u32> = t.multipliers.iter().map(|m| m.to_bits()).collect();
    let pairs = tflite_pairs(&t.multipliers);
    let requant = if let Some(r) = t.tflite.then(|| tflite_requantizer(&pairs)).flatten() {
        r
    } else if t.per_channel {
        Requantizer::PerChannel(&bits)
    } else {
        let (multiplier, shift) = multiplier_from_scale(t.multipliers[0]).unwrap_or((1 << 30, -1));
        Requantizer::Uniform { multiplier, shift }
    };
    let op = DepthwiseS8 {
        geometry: t.geometry,
        input_zero_point: t.zero_points[0],
        requant,
        output_zero_point: t.zero_points[1],
        act_min: t.act.0,
        act_max: t.act.1,
        weights: &t.weights,
        bias: &t.bias,
    };
    let mut out = vec![0x55u8 as i8; t.geometry.output.len()];
    f(&op, &t.input, &mut out);
    out
}

/// A scale for an add: exact ties (powers of two, where halves occur), ordinary values, and
/// extremes far past what validation accepts (the kernels must still agree).
fn add_scale() -> impl Strategy<Value = f32> + Clone {
    prop_oneof![
        2 => (-3i32..=3).prop_map(|e| 2f32.powi(e)),
        3 => (-12.0f32..2.0).prop_map(|e| 10f32.powf(e)),
        1 => (-40i32..=40).prop_map(|e| 2f32.powi(e) * 1.37),
    ]
}

/// Random add parameters: extreme zero points, scales from [`add_scale`], any clamp range.
fn add_case_params() -> impl Strategy<Value = AddS8> {
    ((zero_point(), add_scale(), zero_point(), add_scale(), add_scale(), zero_point()), (-128i32..=127, -128i32..=127))
        .prop_map(|((za, sa, zb, sb, inv, zo), (lo, hi))| AddS8 {
            a_zero_point: za,
            a_scale: sa,
            b_zero_point: zb,
            b_scale: sb,
            inv_output_scale: inv,
            output_zero_point: zo,
            act_min: lo.min(hi),
            act_max: lo.max(hi),
        })
}

/// A random int8 add: odd lengths, extreme operands and zero points, any clamp range.
pub(crate) fn add_case() -> impl Strategy<Value = (AddS8, Vec<i8>, Vec<i8>)> {
    (1usize..300).prop_flat_map(|n| {
        (add_case_params(), proptest::collection::vec(extreme_i8(), n), proptest::collection::vec(extreme_i8(), n))
    })
}

/// The property suite for one ISA module (`$isa`: its [`super::Isa`], `$m`: its module path).
macro_rules! isa_suite {
    ($name:ident, $isa:expr, $m:path) => {
        mod $name {
            use super::*;
            use $m as isa;

            fn available() -> bool {
                $isa.is_available()
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(256))]

                #[test]
                fn conv2d_s8_equals_reference(t in conv_case()) {
                    if !available() { return Ok(()); }
                    let want = run_conv(&t, |op, x, out, _| reference::conv2d_s8(op, x, out));
                    // SAFETY: the ISA is available (checked above).
                    let got = run_conv(&t, |op, x, out, scratch| unsafe { isa::conv2d_s8(op, x, out, scratch) }.expect("a valid case"));
                    prop_assert_eq!(got, want);
                }

                #[test]
                fn first_layer_conv2d_s8_equals_reference(t in first_layer_case()) {
                    if !available() { return Ok(()); }
                    let want = run_conv(&t, |op, x, out, _| reference::conv2d_s8(op, x, out));
                    // SAFETY: the ISA is available (checked above).
                    let got = run_conv(&t, |op, x, out, scratch| unsafe { isa::conv2d_s8(op, x, out, scratch) }.expect("a valid case"));
                    prop_assert_eq!(got, want);
                }

                #[test]
                fn dense_s8_equals_reference(t in dense_case()) {
                    if !available() { return Ok(()); }
                    let want = run_dense(&t, |op, x, out, _| reference::dense_s8(op, x, out));
                    // SAFETY: the ISA is available (checked above).
                    let got = run_dense(&t, |op, x, out, scratch| unsafe { isa::dense_s8(op, x, out, scratch) }.expect("a valid case"));
                    prop_assert_eq!(got, want);
                }

                #[test]
                fn depthwise_conv2d_s8_equals_reference(t in depthwise_case()) {
                    if !available() { return Ok(()); }
                    let want = run_depthwise(&t, |op, x, out| reference::depthwise_conv2d_s8(op, x, out));
                    // SAFETY: the ISA is available (checked above).
                    let got = run_depthwise(&t, |op, x, out| unsafe { isa::depthwise_conv2d_s8(op, x, out) }.expect("a valid case"));
                    prop_assert_eq!(got, want);
                }

                #[test]
                fn add_s8_equals_reference((p, a, b) in add_case()) {
                    if !available() { return Ok(()); }
                    let mut want = vec![0i8; a.len()];
                    let mut got = vec![1i8; a.len()];
                    reference::add_s8(&p, &a, &b, &mut want);
                    // SAFETY: the ISA is available (checked above).
                    unsafe { isa::add_s8(&p, &a, &b, &mut got) }.expect("a valid case");
                    prop_assert_eq!(got, want);
                }

                #[test]
                fn pools_s8_equal_reference((g, input, q) in pool_case()) {
                    if !available() { return Ok(()); }
                    let mut want = vec![0i8; g.output.len()];
                    let mut got = vec![1i8; g.output.len()];
                    reference::maxpool2d_s8(&g, &input, &mut want);
                    // SAFETY: the ISA is available (checked above).
                    unsafe { isa::maxpool2d_s8(&g, &input, &mut got) }.expect("a valid case");
                    prop_assert_eq!(&got, &want);
                    reference::avgpool2d_s8(&g, &q, &input, &mut want);
                    // SAFETY: as above.
                    unsafe { isa::avgpool2d_s8(&g, &q, &input, &mut got) }.expect("a valid case");
                    prop_assert_eq!(&got, &want);
                }
            }

            #[test]
            fn extreme_case_equals_reference() {
                if !available() {
                    return;
                }
                // Every input and weight at the int8 extremes, zero points at the ends, a
                // `k` of 3·3·21 = 189 (tails for 16- and 64-byte steps), a fused 3x3 pool.
                let g = ConvGeometry {
                    input: Shape::new(7, 6, 21),
                    output: Shape::new(7, 6, 7),
                    kernel_h: 3,
                    kernel_w: 3,
                    stride_h: 1,
                    stride_w: 1,
                    pad_top: 1,
                    pad_left: 1,
                };
                let pool = PoolGeometry {
                    input: g.output,
                    output: Shape::new(3, 2, 7),
                    size_h: 3,
                    size_w: 3,
                    stride_h: 2,
                    stride_w: 2,
                };
                for (x, w, zp) in [(-128i8, -128i8, 127), (127, -128, -128), (-128, 127, 127), (127, 127, -128)] {
                    let t = ConvCase {
                        geometry: g,
                        pool: Some((PoolKind::Avg, pool)),
                        input: vec![x; g.input.len()],
                        weights: packed(&vec![w; 7 * g.filter_len()], g.filter_len(), 7),
                        bias: vec![0; 7],
                        zero_points: [zp, -128, 127],
                        multipliers: vec![0.01; 7],
                        per_channel: true,
                        tflite: false,
                        pool_scale: 1.0,
                        act: (-128, 127),
                        residual: None,
                    };
                    let want = run_conv(&t, |op, x, out, _| reference::conv2d_s8(op, x, out));
                    // SAFETY: the ISA is available (checked above).
                    let got = run_conv(&t, |op, x, out, scratch| unsafe { isa::conv2d_s8(op, x, out, scratch) }.expect("a valid case"));
                    assert_eq!(got, want);
                }
            }

            #[test]
            fn extreme_dense_equals_reference() {
                if !available() {
                    return;
                }
                // A `k` of 1,601 (401 groups of 4 taps: weight sums over many groups, with a
                // tail), every input and weight at the int8 extremes, zero points at the ends,
                // a multiplier that keeps the largest accumulator (255 · 128 · 1,601) inside the
                // int8 range, so that an error in any term shows instead of saturating.
                let (k, n) = (1601, 3);
                for (x, w, zp) in [(-128i8, -128i8, 127), (127, -128, -128), (-128, 127, 127), (127, 127, -128)] {
                    let t = DenseCase {
                        input: vec![x; k],
                        weights: packed(&vec![w; k * n], k, n),
                        bias: vec![0; n],
                        zero_points: [zp, -128],
                        multipliers: vec![2e-6; n],
                        per_channel: true,
                        tflite: false,
                    };
                    let want = run_dense(&t, |op, x, out, _| reference::dense_s8(op, x, out));
                    // SAFETY: the ISA is available (checked above).
                    let got = run_dense(&t, |op, x, out, scratch| unsafe { isa::dense_s8(op, x, out, scratch) }.expect("a valid case"));
                    assert_eq!(got, want);
                }
            }
        }
    };
}

// Not under Miri: it cannot run SIMD intrinsics or `asm!` (the ISAs report themselves
// unavailable there, so every case would be skipped after generating its inputs anyway).
#[cfg(all(target_arch = "x86_64", not(miri)))]
isa_suite!(avx2, super::super::Isa::Avx2, crate::kernels::arch::x86_64::avx2);
#[cfg(all(target_arch = "x86_64", not(miri)))]
isa_suite!(avx_vnni, super::super::Isa::AvxVnni, crate::kernels::arch::x86_64::avx_vnni);
#[cfg(all(target_arch = "x86_64", not(miri)))]
isa_suite!(avx512_vnni, super::super::Isa::Avx512Vnni, crate::kernels::arch::x86_64::avx512);
#[cfg(all(target_arch = "aarch64", not(miri)))]
isa_suite!(neon_dot, super::super::Isa::NeonDot, crate::kernels::arch::aarch64::neon);
#[cfg(all(mnistc_arm_dsp, not(miri)))]
isa_suite!(arm_dsp, super::super::Isa::ArmDsp, crate::kernels::arch::arm::dsp);

#[test]
fn the_selected_isa_is_available_and_switchable() {
    let best = super::best_isa();
    assert!(best.is_available());
    assert!(super::set_isa(Some(super::Isa::Reference)));
    assert_eq!(super::isa(), super::Isa::Reference);
    assert!(super::set_isa(None));
    assert_eq!(super::isa(), best);
    #[cfg(not(target_arch = "aarch64"))]
    assert!(!super::set_isa(Some(super::Isa::NeonDot)));
}

/// CI names the ISA a run must exercise (`MNISTC_EXPECT_ISA=neon-dot` under `qemu-aarch64`,
/// `arm-dsp` under `qemu-arm`, `avx512-vnni` on the x86-64 runners), so that a property suite
/// cannot pass by skipping every case.
#[test]
fn the_expected_isa_is_available() {
    if let Ok(name) = std::env::var("MNISTC_EXPECT_ISA") {
        let isa = super::Isa::ALL.into_iter().find(|i| i.name() == name);
        assert!(isa.is_some_and(super::Isa::is_available), "MNISTC_EXPECT_ISA={name} is not available here");
    }
}
