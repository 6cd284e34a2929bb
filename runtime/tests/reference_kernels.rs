//! The reference kernels against independent naive formulations.
//!
//! Float: f64 loops over an explicitly padded input. int8: exact i64 sums over an input padded
//! with its zero point, requantized with the straightforward f32 (per-channel) or exact rational
//! (uniform) formulation of tract's arithmetic, never with the runtime's `quant` module. A fused
//! conv→pool is checked against the naive conv followed by the naive pool.

use half::f16;
use mnistc_runtime::format::Activation;
use mnistc_runtime::kernels::params::{
    AvgRequant, ConvF, ConvGeometry, ConvS8, DenseF, DenseS8, PoolGeometry, PoolKind, Requantizer, Shape, same_pads,
};
use mnistc_runtime::kernels::reference;
use mnistc_runtime::quant::multiplier_from_scale;
#[cfg(feature = "tflite")]
use mnistc_runtime::quant::tflite_multiplier;
use proptest::prelude::*;

// ---------- naive formulations ----------

/// `input` padded on every side (`pads = [top, left, bottom, right]`) with `fill`.
fn pad<T: Copy>(input: &[T], s: Shape, pads: [usize; 4], fill: T) -> (Vec<T>, Shape) {
    let ps = Shape::new(s.h + pads[0] + pads[2], s.w + pads[1] + pads[3], s.c);
    let mut out = vec![fill; ps.len()];
    for y in 0..s.h {
        for x in 0..s.w {
            for c in 0..s.c {
                out[ps.index(y + pads[0], x + pads[1], c)] = input[s.index(y, x, c)];
            }
        }
    }
    (out, ps)
}

/// Valid cross-correlation of a padded input, folding `term(acc, x, w)` over each window.
fn naive_conv<T: Copy, A: Copy>(
    input: &[T],
    s: Shape,
    weights: &[i64],
    (out_c, k, stride): (usize, [usize; 2], [usize; 2]),
    zero: A,
    term: impl Fn(A, T, i64) -> A,
) -> (Vec<A>, Shape) {
    let oh = (s.h - k[0]) / stride[0] + 1;
    let ow = (s.w - k[1]) / stride[1] + 1;
    let os = Shape::new(oh, ow, out_c);
    let mut out = vec![zero; os.len()];
    for oy in 0..oh {
        for ox in 0..ow {
            for oc in 0..out_c {
                let mut acc = zero;
                for ky in 0..k[0] {
                    for kx in 0..k[1] {
                        for ic in 0..s.c {
                            let x = input[s.index(oy * stride[0] + ky, ox * stride[1] + kx, ic)];
                            let w = weights[((oc * k[0] + ky) * k[1] + kx) * s.c + ic];
                            acc = term(acc, x, w);
                        }
                    }
                }
                out[os.index(oy, ox, oc)] = acc;
            }
        }
    }
    (out, os)
}

fn naive_pool<T: Copy>(
    input: &[T],
    s: Shape,
    size: [usize; 2],
    stride: [usize; 2],
    f: impl Fn(&[T]) -> T,
) -> (Vec<T>, Shape) {
    let os = Shape::new((s.h - size[0]) / stride[0] + 1, (s.w - size[1]) / stride[1] + 1, s.c);
    let mut out = Vec::with_capacity(os.len());
    for py in 0..os.h {
        for px in 0..os.w {
            for c in 0..s.c {
                let mut window = Vec::new();
                for dy in 0..size[0] {
                    for dx in 0..size[1] {
                        window.push(input[s.index(py * stride[0] + dy, px * stride[1] + dx, c)]);
                    }
                }
                out.push(f(&window));
            }
        }
    }
    (out, os)
}

fn act_f64(x: f64, a: Activation) -> f64 {
    match a {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Relu6 => x.clamp(0.0, 6.0),
    }
}

/// tract's per-channel path in plain f32.
fn per_channel_f32(acc: i64, m: f32) -> i64 {
    let b = acc as i32 as f32;
    ((b.abs() * m).round_ties_even() * b.signum()) as i32 as i64
}

/// tract's uniform path as an exact rational rounded half to even.
fn uniform_exact(acc: i64, multiplier: i32, shift: i32) -> i64 {
    let num = acc as i128 * multiplier as i128;
    let den = 1i128 << (31 + shift);
    let (q, r) = (num.div_euclid(den), num.rem_euclid(den));
    (if 2 * r > den || (2 * r == den && q & 1 == 1) { q + 1 } else { q }) as i64
}

/// OHWI (`[out][k]`) int8 weights in the blob's packed layout, which the int8 kernels read.
fn pack(ohwi: &[i8], k: usize, out: usize) -> Vec<i8> {
    let mut p = vec![0i8; mnistc_runtime::format::packed_len(k, out)];
    mnistc_runtime::format::pack_weights(ohwi, k, out, &mut p).expect("OHWI weights of k·out values");
    p
}

fn finish(v: i64, zp: i32, min: i32, max: i32) -> i8 {
    (v + zp as i64).clamp(min as i64, max as i64) as i8
}

// ---------- random cases ----------

#[derive(Debug, Clone)]
struct ConvCase {
    input: Shape,
    out_c: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    pool: Option<(PoolKind, [usize; 2], [usize; 2])>,
}

impl ConvCase {
    fn geometry(&self) -> ConvGeometry {
        let oh = (self.input.h + self.pads[0] + self.pads[2] - self.kernel[0]) / self.stride[0] + 1;
        let ow = (self.input.w + self.pads[1] + self.pads[3] - self.kernel[1]) / self.stride[1] + 1;
        ConvGeometry {
            input: self.input,
            output: Shape::new(oh, ow, self.out_c),
            kernel_h: self.kernel[0],
            kernel_w: self.kernel[1],
            stride_h: self.stride[0],
            stride_w: self.stride[1],
            pad_top: self.pads[0],
            pad_left: self.pads[1],
        }
    }
    fn pool_geometry(&self) -> Option<(PoolKind, PoolGeometry)> {
        let conv = self.geometry().output;
        self.pool.map(|(kind, size, stride)| {
            (
                kind,
                PoolGeometry {
                    input: conv,
                    output: Shape::new((conv.h - size[0]) / stride[0] + 1, (conv.w - size[1]) / stride[1] + 1, conv.c),
                    size_h: size[0],
                    size_w: size[1],
                    stride_h: stride[0],
                    stride_w: stride[1],
                },
            )
        })
    }
    fn out_shape(&self) -> Shape {
        self.pool_geometry().map_or(self.geometry().output, |(_, p)| p.output)
    }
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    let (n, k) = (max_dim(9), max_dim(5));
    (1usize..=n, 1usize..=n, 1usize..=k, 1usize..=k, 1usize..=k, 1usize..=k, 1usize..=4, 1usize..=4, any::<bool>())
        .prop_filter_map("kernel larger than the padded input", |(h, w, c, oc, kh, kw, sh, sw, same)| {
            let pads = if same {
                let (t, b) = same_pads(h, kh, sh);
                let (l, r) = same_pads(w, kw, sw);
                [t, l, b, r]
            } else {
                [0; 4]
            };
            (h + pads[0] + pads[2] >= kh && w + pads[1] + pads[3] >= kw).then_some(ConvCase {
                input: Shape::new(h, w, c),
                out_c: oc,
                kernel: [kh, kw],
                stride: [sh, sw],
                pads,
                pool: None,
            })
        })
        .prop_flat_map(|case| {
            let conv = case.geometry().output;
            let pool = prop_oneof![
                Just(None),
                (
                    prop_oneof![Just(PoolKind::Max), Just(PoolKind::Avg)],
                    1..=conv.h.min(3),
                    1..=conv.w.min(3),
                    1usize..=3,
                    1usize..=3
                )
                    .prop_map(|(k, ph, pw, sh, sw)| Some((k, [ph, pw], [sh, sw]))),
            ];
            (Just(case), pool).prop_map(|(mut case, pool)| {
                case.pool = pool;
                case
            })
        })
}

fn extreme_i8() -> impl Strategy<Value = i8> + Clone {
    prop_oneof![3 => any::<i8>(), 1 => Just(-128i8), 1 => Just(127i8), 1 => Just(0i8)]
}

fn zero_point() -> impl Strategy<Value = i32> + Clone {
    prop_oneof![2 => -128i32..=127, 1 => Just(-128), 1 => Just(127), 1 => Just(0)]
}

fn activation() -> impl Strategy<Value = Activation> + Clone {
    prop_oneof![Just(Activation::None), Just(Activation::Relu), Just(Activation::Relu6)]
}

/// A shape bound: `n`, or at most 4 under Miri, which interprets each multiply-accumulate of the
/// kernels and their f64 / i64 oracles ~1000x slower than native code.
const fn max_dim(n: usize) -> usize {
    if cfg!(miri) && n > 4 { 4 } else { n }
}

/// A length bound: `n`, or at most 8 under Miri, where generating thousands of random values
/// (one value tree each) takes minutes.
const fn max_len(n: usize) -> usize {
    if cfg!(miri) && n > 8 { 8 } else { n }
}

fn f32_value() -> impl Strategy<Value = f32> + Clone {
    prop_oneof![4 => -2.0f32..2.0, 1 => Just(0.0f32), 1 => -300.0f32..300.0]
}

// ---------- float ----------

fn check_conv_f<W: mnistc_runtime::kernels::params::FloatWeight>(
    case: &ConvCase,
    act: Activation,
    input: &[f32],
    weights: &[W],
    bias: &[f32],
) -> Result<(), TestCaseError> {
    let op = ConvF { geometry: case.geometry(), activation: act, pool: case.pool_geometry(), weights, bias };
    let mut got = vec![0f32; case.out_shape().len()];
    reference::conv2d_f(&op, input, &mut got);

    let w64: Vec<f64> = weights.iter().map(|w| w.to_f32() as f64).collect();
    let (padded, ps) = pad(input, case.input, case.pads, 0.0f32);
    // Conv as (value, magnitude) pairs so the tolerance scales with the terms' sizes.
    let idx: Vec<i64> = (0..w64.len() as i64).collect();
    let (conv, cs) =
        naive_conv(&padded, ps, &idx, (case.out_c, case.kernel, case.stride), (0.0f64, 0.0f64), |(v, m), x, wi| {
            let t = x as f64 * w64[wi as usize];
            (v + t, m + t.abs())
        });
    let conv: Vec<(f64, f64)> = conv
        .iter()
        .enumerate()
        .map(|(i, &(v, m))| {
            let b = bias[i % case.out_c] as f64;
            (act_f64(v + b, act), m + b.abs())
        })
        .collect();
    let want: Vec<(f64, f64)> = match case.pool {
        None => conv,
        Some((kind, size, stride)) => {
            naive_pool(&conv, cs, size, stride, |w| match kind {
                PoolKind::Max => *w.iter().max_by(|a, b| a.0.total_cmp(&b.0)).unwrap(),
                PoolKind::Avg => {
                    let n = w.len() as f64;
                    (w.iter().map(|v| v.0).sum::<f64>() / n, w.iter().map(|v| v.1).sum::<f64>() / n)
                }
            })
            .0
        }
    };
    prop_assert_eq!(got.len(), want.len());
    for (i, (g, (w, mag))) in got.iter().zip(&want).enumerate() {
        let tol = 1e-5 * (1.0 + mag);
        prop_assert!((*g as f64 - w).abs() <= tol, "element {}: got {} want {} (tol {})", i, g, w, tol);
    }
    Ok(())
}

fn float_conv_inputs() -> impl Strategy<Value = (ConvCase, Vec<f32>, Vec<f32>, Vec<f32>)> {
    conv_case().prop_flat_map(|case| {
        let g = case.geometry();
        (
            Just(case.clone()),
            prop::collection::vec(f32_value(), case.input.len()),
            prop::collection::vec(f32_value(), g.output.c * g.filter_len()),
            prop::collection::vec(f32_value(), g.output.c),
        )
    })
}

type Vecs<T> = (Vec<T>, Vec<T>, Vec<T>);

fn vectors<S: Strategy + Clone>(s: S, lens: [usize; 3]) -> impl Strategy<Value = Vecs<S::Value>>
where
    S::Value: std::fmt::Debug,
{
    (
        prop::collection::vec(s.clone(), lens[0]),
        prop::collection::vec(s.clone(), lens[1]),
        prop::collection::vec(s, lens[2]),
    )
}

proptest! {
    // Under Miri (interpreted, ~1000x slower) a few cases still run every kernel path once.
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 400 }))]

    #[test]
    fn conv2d_f32_matches_f64((case, input, weights, bias) in float_conv_inputs(), act in activation()) {
        check_conv_f(&case, act, &input, &weights, &bias)?;
    }

    #[test]
    fn conv2d_f16_weights_match_f64((case, input, weights, bias) in float_conv_inputs(), act in activation()) {
        let weights: Vec<f16> = weights.iter().map(|&w| f16::from_f32(w)).collect();
        check_conv_f(&case, act, &input, &weights, &bias)?;
    }

    #[test]
    fn dense_f32_matches_f64(
        (n_in, n_out, (input, weights, bias)) in (1usize..max_len(300), 1usize..max_len(12))
            .prop_flat_map(|(i, o)| (Just(i), Just(o), vectors(f32_value(), [i, i * o, o]))),
        act in activation(),
    ) {
        let op = DenseF { input_len: n_in, output_len: n_out, activation: act, weights: &weights, bias: &bias };
        let mut got = vec![0f32; n_out];
        reference::dense_f(&op, &input, &mut got);
        for o in 0..n_out {
            let terms: Vec<f64> = (0..n_in).map(|i| input[i] as f64 * weights[o * n_in + i] as f64).collect();
            let want = act_f64(bias[o] as f64 + terms.iter().sum::<f64>(), act);
            let tol = 1e-5 * (1.0 + bias[o].abs() as f64 + terms.iter().map(|t| t.abs()).sum::<f64>());
            prop_assert!((got[o] as f64 - want).abs() <= tol, "output {}: got {} want {}", o, got[o], want);
        }
    }

    #[test]
    fn pools_f32_match_f64(
        (s, k, st, input) in (1usize..max_dim(10), 1usize..max_dim(10), 1usize..5, 1usize..4, 1usize..4, 1usize..4, 1usize..4)
            .prop_filter("window larger than the input", |(h, w, _, kh, kw, _, _)| kh <= h && kw <= w)
            .prop_flat_map(|(h, w, c, kh, kw, sh, sw)| {
                (Just(Shape::new(h, w, c)), Just([kh, kw]), Just([sh, sw]), prop::collection::vec(f32_value(), h * w * c))
            }),
    ) {
        let (max, os) = naive_pool(&input, s, k, st, |v| v.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        let wide: Vec<f64> = input.iter().map(|&v| v as f64).collect();
        let (avg, _) = naive_pool(&wide, s, k, st, |v| v.iter().sum::<f64>() / v.len() as f64);
        let p = PoolGeometry { input: s, output: os, size_h: k[0], size_w: k[1], stride_h: st[0], stride_w: st[1] };
        let mut got = vec![0f32; os.len()];
        reference::maxpool2d_f32(&p, &input, &mut got);
        prop_assert_eq!(&got, &max);
        reference::avgpool2d_f32(&p, &input, &mut got);
        for (g, w) in got.iter().zip(&avg) {
            prop_assert!((*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs() * 4.0));
        }
    }
}

// ---------- int8 ----------

fn multiplier() -> impl Strategy<Value = f32> + Clone {
    prop_oneof![1e-5f32..0.05, 0.05f32..1.0, (1u32..64).prop_map(|k| k as f32 / 64.0)]
}

#[derive(Debug, Clone)]
struct S8Case {
    case: ConvCase,
    input: Vec<i8>,
    weights: Vec<i8>,
    bias: Vec<i32>,
    in_zp: i32,
    conv_zp: i32,
    out_zp: i32,
    per_channel: Option<Vec<f32>>,
    uniform: f32,
    pool_scale: f32,
    act: (i32, i32),
}

fn s8_case() -> impl Strategy<Value = S8Case> {
    conv_case().prop_flat_map(|case| {
        let g = case.geometry();
        let n_w = g.output.c * g.filter_len();
        (
            Just(case.clone()),
            prop::collection::vec(extreme_i8(), case.input.len()),
            prop::collection::vec(extreme_i8(), n_w),
            prop::collection::vec(-100_000i32..100_000, g.output.c),
            (zero_point(), zero_point(), zero_point()),
            prop::option::of(prop::collection::vec(multiplier(), g.output.c)),
            (multiplier(), multiplier()),
            (-128i32..=127, -128i32..=127),
        )
            .prop_map(
                |(case, input, weights, bias, (in_zp, conv_zp, out_zp), per_channel, (uniform, pool_scale), (a, b))| {
                    S8Case {
                        case,
                        input,
                        weights,
                        bias,
                        in_zp,
                        conv_zp,
                        out_zp,
                        per_channel,
                        uniform,
                        pool_scale,
                        act: (a.min(b), a.max(b)),
                    }
                },
            )
    })
}

proptest! {
    // Under Miri (interpreted, ~1000x slower) a few cases still run every kernel path once.
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 600 }))]

    #[test]
    fn conv2d_s8_matches_exact_integer_maths(t in s8_case()) {
        let c = &t.case;
        let (mult, shift) = multiplier_from_scale(t.uniform).unwrap();
        let (pmult, pshift) = multiplier_from_scale(t.pool_scale).unwrap();
        let m_bits: Vec<u32> = t.per_channel.iter().flatten().map(|m| m.to_bits()).collect();
        let requant = match &t.per_channel {
            Some(_) => Requantizer::PerChannel(&m_bits),
            None => Requantizer::Uniform { multiplier: mult, shift },
        };
        let pool = c.pool_geometry().map(|(kind, g)| {
            (kind, g, AvgRequant { input_zero_point: t.conv_zp, multiplier: pmult, shift: pshift, output_zero_point: t.out_zp })
        });
        let packed = pack(&t.weights, c.geometry().filter_len(), c.out_c);
        let op = ConvS8 {
            geometry: c.geometry(),
            input_zero_point: t.in_zp,
            requant,
            conv_zero_point: t.conv_zp,
            act_min: t.act.0,
            act_max: t.act.1,
            pool,
            residual: None,
            weights: &packed,
            bias: &t.bias,
        };
        let mut got = vec![0i8; c.out_shape().len()];
        reference::conv2d_s8(&op, &t.input, &mut got);

        // Naive: pad with the zero point, sum (x - zp)·w exactly, requantize with the plain formulas.
        let w64: Vec<i64> = t.weights.iter().map(|&w| w as i64).collect();
        let (padded, ps) = pad(&t.input, c.input, c.pads, t.in_zp as i8);
        let in_zp = t.in_zp as i64;
        let (acc, cs) = naive_conv(&padded, ps, &w64, (c.out_c, c.kernel, c.stride), 0i64, |acc, x, w| acc + (x as i64 - in_zp) * w);
        let conv: Vec<i8> = acc.iter().enumerate().map(|(i, &a)| {
            let oc = i % c.out_c;
            let a = a + t.bias[oc] as i64;
            let scaled = match &t.per_channel {
                Some(m) => per_channel_f32(a, m[oc]),
                None => uniform_exact(a, mult, shift),
            };
            finish(scaled, t.conv_zp, t.act.0, t.act.1)
        }).collect();
        let want = match c.pool {
            None => conv,
            Some((PoolKind::Max, size, stride)) => naive_pool(&conv, cs, size, stride, |w| *w.iter().max().unwrap()).0,
            Some((PoolKind::Avg, size, stride)) => {
                let wide: Vec<i64> = conv.iter().map(|&v| v as i64).collect();
                naive_pool(&wide, cs, size, stride, |w| {
                    let sum: i64 = w.iter().map(|&v| v - t.conv_zp as i64).sum();
                    finish(uniform_exact(sum, pmult, pshift), t.out_zp, -128, 127) as i64
                }).0.into_iter().map(|v| v as i8).collect()
            }
        };
        prop_assert_eq!(got, want);
    }

    #[test]
    fn dense_s8_matches_exact_integer_maths(
        (n_in, n_out, (input, weights, _), bias, ms) in (1usize..max_len(400), 1usize..max_len(12)).prop_flat_map(|(i, o)| (
            Just(i), Just(o), vectors(extreme_i8(), [i, i * o, 0]),
            prop::collection::vec(-100_000i32..100_000, o), prop::collection::vec(multiplier(), o),
        )),
        in_zp in zero_point(), out_zp in zero_point(), per_channel in any::<bool>(), m in multiplier(),
    ) {
        let m_bits: Vec<u32> = ms.iter().map(|m| m.to_bits()).collect();
        let (mult, shift) = multiplier_from_scale(m).unwrap();
        let requant = if per_channel { Requantizer::PerChannel(&m_bits) } else { Requantizer::Uniform { multiplier: mult, shift } };
        let packed = pack(&weights, n_in, n_out);
        let op = DenseS8 { input_len: n_in, output_len: n_out, input_zero_point: in_zp, requant, output_zero_point: out_zp, act_min: -128, act_max: 127, weights: &packed, bias: &bias };
        let mut got = vec![0i8; n_out];
        reference::dense_s8(&op, &input, &mut got);
        for o in 0..n_out {
            let acc: i64 = bias[o] as i64 + (0..n_in).map(|i| (input[i] as i64 - in_zp as i64) * weights[o * n_in + i] as i64).sum::<i64>();
            let scaled = if per_channel { per_channel_f32(acc, ms[o]) } else { uniform_exact(acc, mult, shift) };
            prop_assert_eq!(got[o], finish(scaled, out_zp, -128, 127), "output {}", o);
        }
    }

    #[test]
    fn pools_s8_match_exact_integer_maths(
        (s, k, st, input) in (1usize..max_dim(10), 1usize..max_dim(10), 1usize..5, 1usize..4, 1usize..4, 1usize..4, 1usize..4)
            .prop_filter("window larger than the input", |(h, w, _, kh, kw, _, _)| kh <= h && kw <= w)
            .prop_flat_map(|(h, w, c, kh, kw, sh, sw)| {
                (Just(Shape::new(h, w, c)), Just([kh, kw]), Just([sh, sw]), prop::collection::vec(extreme_i8(), h * w * c))
            }),
        in_zp in zero_point(), out_zp in zero_point(), m in multiplier(),
    ) {
        let (max, os) = naive_pool(&input, s, k, st, |v| *v.iter().max().unwrap());
        let p = PoolGeometry { input: s, output: os, size_h: k[0], size_w: k[1], stride_h: st[0], stride_w: st[1] };
        let mut got = vec![0i8; os.len()];
        reference::maxpool2d_s8(&p, &input, &mut got);
        prop_assert_eq!(&got, &max);
        let (mult, shift) = multiplier_from_scale(m).unwrap();
        let q = AvgRequant { input_zero_point: in_zp, multiplier: mult, shift, output_zero_point: out_zp };
        reference::avgpool2d_s8(&p, &q, &input, &mut got);
        let wide: Vec<i64> = input.iter().map(|&v| v as i64).collect();
        let (avg, _) = naive_pool(&wide, s, k, st, |v| {
            finish(uniform_exact(v.iter().map(|&x| x - in_zp as i64).sum(), mult, shift), out_zp, -128, 127) as i64
        });
        prop_assert_eq!(got.iter().map(|&v| v as i64).collect::<Vec<_>>(), avg);
    }
}

#[cfg(feature = "tflite")]
/// TFLite's requantization as its definition reads, over i128: `(x · 2^left) · m / 2^31` rounded
/// half up (the doubling high multiply's nudge), then `/ 2^right` rounded half away from zero.
fn tflite_exact(acc: i64, m: i32, shift: i32) -> i64 {
    let x = (acc << shift.max(0)) as i128;
    let high = (x * m as i128 + (1 << 30)).div_euclid(1 << 31);
    let right = (-shift).max(0) as u32;
    if right == 0 {
        return high as i64;
    }
    let half = 1i128 << (right - 1);
    (if high >= 0 { (high + half) >> right } else { -((-high + half) >> right) }) as i64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 600 }))]

    #[cfg(feature = "tflite")]
    #[test]
    fn dense_s8_tflite_matches_exact_integer_maths(
        (n_in, n_out, (input, weights, _), bias, ms) in (1usize..max_len(400), 1usize..max_len(12)).prop_flat_map(|(i, o)| (
            Just(i), Just(o), vectors(extreme_i8(), [i, i * o, 0]),
            prop::collection::vec(-100_000i32..100_000, o), prop::collection::vec(multiplier(), o),
        )),
        in_zp in zero_point(), out_zp in zero_point(),
    ) {
        let pairs: Vec<[i32; 2]> = ms.iter().map(|&m| { let (q, s) = tflite_multiplier(m as f64); [q, s] }).collect();
        let packed = pack(&weights, n_in, n_out);
        let op = DenseS8 { input_len: n_in, output_len: n_out, input_zero_point: in_zp, requant: Requantizer::Tflite(&pairs), output_zero_point: out_zp, act_min: -128, act_max: 127, weights: &packed, bias: &bias };
        let mut got = vec![0i8; n_out];
        reference::dense_s8(&op, &input, &mut got);
        for o in 0..n_out {
            let acc: i64 = bias[o] as i64 + (0..n_in).map(|i| (input[i] as i64 - in_zp as i64) * weights[o * n_in + i] as i64).sum::<i64>();
            let [q, s] = pairs[o];
            prop_assert_eq!(got[o], finish(tflite_exact(acc, q, s), out_zp, -128, 127), "output {}", o);
        }
    }

    #[cfg(feature = "tflite")]
    #[test]
    fn avgpool_s8_tflite_divides_and_rounds_half_away_from_zero(
        (s, k, st, input) in (1usize..max_dim(10), 1usize..max_dim(10), 1usize..5, 1usize..4, 1usize..4, 1usize..4, 1usize..4)
            .prop_filter("window larger than the input", |(h, w, _, kh, kw, _, _)| kh <= h && kw <= w)
            .prop_flat_map(|(h, w, c, kh, kw, sh, sw)| {
                (Just(Shape::new(h, w, c)), Just([kh, kw]), Just([sh, sw]), prop::collection::vec(extreme_i8(), h * w * c))
            }),
        zp in zero_point(),
    ) {
        let (_, os) = naive_pool(&input, s, k, st, |v| *v.iter().max().unwrap());
        let p = PoolGeometry { input: s, output: os, size_h: k[0], size_w: k[1], stride_h: st[0], stride_w: st[1] };
        let q = AvgRequant { input_zero_point: zp, multiplier: 0, shift: 0, output_zero_point: zp };
        let mut got = vec![0i8; os.len()];
        reference::avgpool2d_s8(&p, &q, &input, &mut got);
        let wide: Vec<i64> = input.iter().map(|&v| v as i64).collect();
        let (avg, _) = naive_pool(&wide, s, k, st, |v| {
            let mean = v.iter().sum::<i64>() as f64 / v.len() as f64;
            (if mean >= 0.0 { (mean + 0.5).floor() } else { (mean - 0.5).ceil() }) as i64
        });
        prop_assert_eq!(got.iter().map(|&v| v as i64).collect::<Vec<_>>(), avg);
    }
}

#[test]
fn same_padding_with_even_kernel_puts_the_extra_pixel_bottom_right() {
    assert_eq!(same_pads(4, 2, 1), (0, 1));
    assert_eq!(same_pads(5, 4, 2), (1, 2));
    assert_eq!(same_pads(28, 3, 1), (1, 1));
}
