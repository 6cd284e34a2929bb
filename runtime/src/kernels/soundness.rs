//! Soundness of the safe kernel API: every public kernel, given arguments that do not fit
//! together (short per-channel multipliers, bias, weights, input, output or scratch; zero-sized
//! or overflowing geometries; out-of-range zero points; an add's operands of different
//! lengths), returns a [`ParamError`] without panicking, without reading or writing out of
//! bounds, and without touching the output.
//!
//! Each case runs through the dispatch point ([`super::conv2d_s8`] and friends, whatever ISA is
//! selected) and through every ISA module this machine can run, called directly (so the SIMD
//! paths are exercised on x86-64, and under `qemu-aarch64` / `qemu-arm` in CI).
//!
//! Before this API checked its arguments, `short_per_channel_multipliers_are_rejected` was
//! undefined behaviour on the SIMD paths (AddressSanitizer: a heap-buffer-overflow read of the
//! multipliers in the AVX-512 `requantize`) and an index-out-of-bounds panic on the reference.

use super::params::{
    AddF, AddS8, AvgRequant, ConvF, ConvGeometry, ConvS8, DenseF, DenseS8, ParamError, PoolGeometry, PoolKind,
    Requantizer, Shape,
};
use crate::format::Activation;
use crate::format::packed_len;

/// Half the bits of `usize`: `HALF · HALF` wraps to 0 on 32- and 64-bit targets alike.
const HALF: usize = 1 << (usize::BITS / 2);

/// A 5×5×4 input, 3×3 kernel, `same` padding, 8 output channels (one AVX2 block, two NEON
/// vectors): the SIMD paths take their vector code for every channel.
fn geometry() -> ConvGeometry {
    ConvGeometry {
        input: Shape::new(5, 5, 4),
        output: Shape::new(5, 5, 8),
        kernel_h: 3,
        kernel_w: 3,
        stride_h: 1,
        stride_w: 1,
        pad_top: 1,
        pad_left: 1,
    }
}

/// Buffers for an int8 convolution of `geometry()` with one multiplier per channel.
struct ConvData {
    weights: Vec<i8>,
    bias: Vec<i32>,
    multipliers: Vec<u32>,
    input: Vec<i8>,
}

impl ConvData {
    fn new() -> Self {
        let g = geometry();
        let k = g.filter_len();
        ConvData {
            weights: (0..packed_len(k, 8)).map(|i| (i % 7) as i8 - 3).collect(),
            bias: (0..8).map(|c| c * 100 - 300).collect(),
            multipliers: vec![0.0004f32.to_bits(); 8],
            input: (0..g.input.len()).map(|i| (i * 37 % 256) as u8 as i8).collect(),
        }
    }

    fn op(&self) -> ConvS8<'_> {
        ConvS8 {
            geometry: geometry(),
            input_zero_point: -3,
            requant: Requantizer::PerChannel(&self.multipliers),
            conv_zero_point: 2,
            act_min: -128,
            act_max: 127,
            pool: None,
            residual: None,
            weights: &self.weights,
            bias: &self.bias,
        }
    }
}

type ConvFn = fn(&ConvS8<'_>, &[i8], &mut [i8], &mut [u8]) -> Result<(), ParamError>;
type DenseFn = fn(&DenseS8<'_>, &[i8], &mut [i8], &mut [u8]) -> Result<(), ParamError>;
type MaxFn = fn(&PoolGeometry, &[i8], &mut [i8]) -> Result<(), ParamError>;
type AvgFn = fn(&PoolGeometry, &AvgRequant, &[i8], &mut [i8]) -> Result<(), ParamError>;

/// One implementation of the int8 kernels: its name and entry points.
struct Impl {
    name: &'static str,
    conv: ConvFn,
    dense: DenseFn,
    maxpool: MaxFn,
    avgpool: AvgFn,
}

/// An `Impl` for an ISA module, if this machine can run it.
#[allow(unused_macros)] // with `force-scalar` or under Miri no ISA module is compiled or run
macro_rules! isa_impl {
    ($isa:expr, $m:path) => {{
        use $m as m;
        $isa.is_available().then(|| Impl {
            name: $isa.name(),
            // SAFETY (each): the ISA is available (checked just above); the functions check
            // every other argument themselves.
            conv: |op, x, y, s| unsafe { m::conv2d_s8(op, x, y, s) },
            dense: |op, x, y, s| unsafe { m::dense_s8(op, x, y, s) },
            maxpool: |p, x, y| unsafe { m::maxpool2d_s8(p, x, y) },
            avgpool: |p, q, x, y| unsafe { m::avgpool2d_s8(p, q, x, y) },
        })
    }};
}

/// The dispatch point, then every ISA module this machine can run.
fn impls() -> Vec<Impl> {
    #[allow(unused_mut)]
    let mut all = vec![Impl {
        name: "dispatch",
        conv: super::conv2d_s8,
        dense: super::dense_s8,
        maxpool: super::maxpool2d_s8,
        avgpool: super::avgpool2d_s8,
    }];
    #[cfg(all(target_arch = "x86_64", not(feature = "force-scalar"), not(miri)))]
    all.extend(isa_impl!(super::Isa::Avx2, super::arch::x86_64::avx2));
    #[cfg(all(target_arch = "x86_64", not(feature = "force-scalar"), not(miri)))]
    all.extend(isa_impl!(super::Isa::AvxVnni, super::arch::x86_64::avx_vnni));
    #[cfg(all(target_arch = "x86_64", not(feature = "force-scalar"), not(miri)))]
    all.extend(isa_impl!(super::Isa::Avx512Vnni, super::arch::x86_64::avx512));
    #[cfg(all(target_arch = "aarch64", not(feature = "force-scalar"), not(miri)))]
    all.extend(isa_impl!(super::Isa::NeonDot, super::arch::aarch64::neon));
    #[cfg(all(mnistc_arm_dsp, not(feature = "force-scalar"), not(miri)))]
    all.extend(isa_impl!(super::Isa::ArmDsp, super::arch::arm::dsp));
    all
}

/// Runs `op` through every implementation with buffers of the given lengths; each must return
/// `want` and leave the output untouched when it is an error.
fn expect_conv(op: &ConvS8<'_>, input: &[i8], output_len: usize, scratch_len: usize, want: Result<(), ParamError>) {
    for imp in impls() {
        let mut output = vec![0x55i8; output_len];
        let mut scratch = vec![0u8; scratch_len];
        let got = (imp.conv)(op, input, &mut output, &mut scratch);
        assert_eq!(got, want, "{}", imp.name);
        if got.is_err() {
            assert!(output.iter().all(|&v| v == 0x55), "{}: output written on error", imp.name);
        }
    }
}

/// [`expect_conv`] with the input, output and scratch the op's geometry asks for.
fn expect_conv_err(op: &ConvS8<'_>, want: ParamError) {
    let input = vec![1i8; op.geometry.input.len().min(1 << 16)];
    expect_conv(op, &input, op.output_len().min(1 << 16), op.scratch_size().min(1 << 16), Err(want));
}

#[test]
fn a_valid_conv_runs_the_same_everywhere() {
    let d = ConvData::new();
    let op = d.op();
    let mut want = vec![0i8; op.output_len()];
    super::reference::conv2d_s8(&op, &d.input, &mut want);
    for imp in impls() {
        let mut output = vec![0i8; op.output_len()];
        let mut scratch = vec![0u8; op.scratch_size()];
        assert_eq!((imp.conv)(&op, &d.input, &mut output, &mut scratch), Ok(()), "{}", imp.name);
        assert_eq!(output, want, "{}", imp.name);
    }
}

/// The example: 8 output channels but fewer per-channel multipliers. On the code before
/// the checks, the SIMD `requantize` loaded 8 multipliers past the end of a 1-element slice.
#[test]
fn short_per_channel_multipliers_are_rejected() {
    let d = ConvData::new();
    for n in [0, 1, 7] {
        let op = ConvS8 { requant: Requantizer::PerChannel(&d.multipliers[..n]), ..d.op() };
        expect_conv_err(&op, ParamError::Requant);
    }
    let long = vec![0.0004f32.to_bits(); 9];
    expect_conv_err(&ConvS8 { requant: Requantizer::PerChannel(&long), ..d.op() }, ParamError::Requant);
}

#[test]
fn short_or_long_bias_and_weights_are_rejected() {
    let d = ConvData::new();
    for n in [0, 1, 7, 9] {
        let bias = vec![0i32; n];
        expect_conv_err(&ConvS8 { bias: &bias, ..d.op() }, ParamError::Bias);
    }
    let short = &d.weights[..d.weights.len() - 1];
    expect_conv_err(&ConvS8 { weights: short, ..d.op() }, ParamError::Weights);
    expect_conv_err(&ConvS8 { weights: &[], ..d.op() }, ParamError::Weights);
    // OHWI length (9·4·8 = 288) instead of the packed one: equal here, so use 3 input channels.
    let g = ConvGeometry { input: Shape::new(5, 5, 3), ..geometry() };
    let ohwi = vec![0i8; g.filter_len() * 8];
    expect_conv_err(&ConvS8 { geometry: g, weights: &ohwi, ..d.op() }, ParamError::Weights);
}

#[test]
fn short_input_output_and_scratch_are_rejected() {
    let d = ConvData::new();
    let op = d.op();
    let (out, scratch) = (op.output_len(), op.scratch_size());
    expect_conv(&op, &d.input[..d.input.len() - 1], out, scratch, Err(ParamError::Input));
    expect_conv(&op, &[], out, scratch, Err(ParamError::Input));
    expect_conv(&op, &d.input, out - 1, scratch, Err(ParamError::Output));
    expect_conv(&op, &d.input, 0, scratch, Err(ParamError::Output));
    expect_conv(&op, &d.input, out + 1, scratch, Err(ParamError::Output));
    expect_conv(&op, &d.input, out, scratch - 1, Err(ParamError::Scratch));
    expect_conv(&op, &d.input, out, 0, Err(ParamError::Scratch));
}

#[test]
fn zero_sized_conv_geometries_are_rejected() {
    let d = ConvData::new();
    let g = geometry();
    for geometry in [
        ConvGeometry { input: Shape::new(0, 5, 4), ..g },
        ConvGeometry { input: Shape::new(5, 5, 0), ..g },
        ConvGeometry { output: Shape::new(5, 0, 8), ..g },
        ConvGeometry { kernel_h: 0, ..g },
        ConvGeometry { kernel_w: 0, ..g },
        ConvGeometry { stride_h: 0, ..g },
        ConvGeometry { stride_w: 0, ..g },
    ] {
        expect_conv_err(&ConvS8 { geometry, ..d.op() }, ParamError::Empty);
    }
    // No output channel: nothing to compute, and nothing to index the multipliers with.
    let geometry = ConvGeometry { output: Shape::new(5, 5, 0), ..g };
    expect_conv(&ConvS8 { geometry, bias: &[], weights: &[], ..d.op() }, &d.input, 0, 64, Err(ParamError::Empty));
}

#[test]
fn overflowing_conv_geometries_are_rejected() {
    let d = ConvData::new();
    let g = geometry();
    // Products that wrap to 0 (or to a small number) in usize must not match empty buffers.
    for geometry in [
        ConvGeometry { input: Shape::new(HALF, HALF, 1), ..g },
        ConvGeometry { input: Shape::new(HALF, HALF, 4), ..g },
        ConvGeometry { output: Shape::new(HALF, HALF, 8), ..g },
        ConvGeometry { kernel_h: HALF, kernel_w: HALF, ..g },
        ConvGeometry { input: Shape::new(usize::MAX, 1, 1), ..g },
        ConvGeometry { output: Shape::new(usize::MAX, 1, 8), ..g },
        ConvGeometry { output: Shape::new(3, 3, 8), stride_h: usize::MAX, ..g },
        ConvGeometry { input: Shape::new(5, 5, 4), kernel_w: usize::MAX, ..g },
    ] {
        let op = ConvS8 { geometry, ..d.op() };
        expect_conv(&op, &[], 0, 0, Err(ParamError::Overflow));
        expect_conv(&op, &d.input, 200, 4096, Err(ParamError::Overflow));
    }
}

#[test]
fn out_of_range_quantization_is_rejected() {
    let d = ConvData::new();
    for op in [
        ConvS8 { input_zero_point: i32::MAX, ..d.op() },
        ConvS8 { input_zero_point: -129, ..d.op() },
        ConvS8 { conv_zero_point: 128, ..d.op() },
        ConvS8 { act_min: 5, act_max: 4, ..d.op() },
        ConvS8 { act_min: -1000, ..d.op() },
    ] {
        expect_conv_err(&op, ParamError::QuantRange);
    }
    let bias = vec![i32::MAX; 8];
    expect_conv_err(&ConvS8 { bias: &bias, ..d.op() }, ParamError::Accumulator);
}

#[test]
fn mismatched_fused_pools_are_rejected() {
    let d = ConvData::new();
    let o = geometry().output;
    let pool = PoolGeometry { input: o, output: Shape::new(2, 2, 8), size_h: 2, size_w: 2, stride_h: 2, stride_w: 2 };
    let avg = AvgRequant { input_zero_point: 0, multiplier: 1 << 30, shift: 0, output_zero_point: 0 };
    let ok = ConvS8 { pool: Some((PoolKind::Max, pool, avg)), ..d.op() };
    expect_conv(&ok, &d.input, 2 * 2 * 8, ok.scratch_size(), Ok(()));
    for (p, want) in [
        (PoolGeometry { input: Shape::new(4, 5, 8), ..pool }, ParamError::Geometry),
        (PoolGeometry { output: Shape::new(3, 2, 8), ..pool }, ParamError::Geometry),
        (PoolGeometry { output: Shape::new(2, 2, 7), ..pool }, ParamError::Geometry),
        (PoolGeometry { size_h: 6, ..pool }, ParamError::Geometry),
        (PoolGeometry { stride_w: 0, ..pool }, ParamError::Empty),
        (PoolGeometry { stride_w: usize::MAX, ..pool }, ParamError::Overflow),
    ] {
        for kind in [PoolKind::Max, PoolKind::Avg] {
            expect_conv(&ConvS8 { pool: Some((kind, p, avg)), ..d.op() }, &d.input, 32, 4096, Err(want));
        }
    }
    let bad = AvgRequant { input_zero_point: i32::MIN, ..avg };
    expect_conv(
        &ConvS8 { pool: Some((PoolKind::Avg, pool, bad)), ..d.op() },
        &d.input,
        32,
        4096,
        Err(ParamError::QuantRange),
    );
}

/// Buffers for an int8 dense layer of 37 inputs and 8 outputs.
struct DenseData {
    weights: Vec<i8>,
    bias: Vec<i32>,
    multipliers: Vec<u32>,
    input: Vec<i8>,
}

impl DenseData {
    fn new() -> Self {
        DenseData {
            weights: (0..packed_len(37, 8)).map(|i| (i % 5) as i8 - 2).collect(),
            bias: vec![10; 8],
            multipliers: vec![0.001f32.to_bits(); 8],
            input: (0..37).map(|i| i as i8 * 3).collect(),
        }
    }

    fn op(&self) -> DenseS8<'_> {
        DenseS8 {
            input_len: 37,
            output_len: 8,
            input_zero_point: 1,
            requant: Requantizer::PerChannel(&self.multipliers),
            output_zero_point: 0,
            act_min: -128,
            act_max: 127,
            weights: &self.weights,
            bias: &self.bias,
        }
    }
}

fn expect_dense(op: &DenseS8<'_>, input: &[i8], output_len: usize, scratch_len: usize, want: Result<(), ParamError>) {
    for imp in impls() {
        let mut output = vec![0x55i8; output_len];
        let mut scratch = vec![0u8; scratch_len];
        let got = (imp.dense)(op, input, &mut output, &mut scratch);
        assert_eq!(got, want, "{}", imp.name);
        if got.is_err() {
            assert!(output.iter().all(|&v| v == 0x55), "{}: output written on error", imp.name);
        }
    }
}

#[test]
fn dense_s8_rejects_what_does_not_fit() {
    let d = DenseData::new();
    let op = d.op();
    let s = op.scratch_size();
    expect_dense(&op, &d.input, 8, s, Ok(()));
    for n in [0, 1, 7] {
        let short = DenseS8 { requant: Requantizer::PerChannel(&d.multipliers[..n]), ..d.op() };
        expect_dense(&short, &d.input, 8, s, Err(ParamError::Requant));
        expect_dense(&DenseS8 { bias: &d.bias[..n], ..d.op() }, &d.input, 8, s, Err(ParamError::Bias));
    }
    expect_dense(&DenseS8 { weights: &d.weights[1..], ..d.op() }, &d.input, 8, s, Err(ParamError::Weights));
    expect_dense(&op, &d.input[1..], 8, s, Err(ParamError::Input));
    expect_dense(&op, &d.input, 7, s, Err(ParamError::Output));
    expect_dense(&op, &d.input, 8, s - 1, Err(ParamError::Scratch));
    expect_dense(&DenseS8 { input_len: 0, ..d.op() }, &[], 8, s, Err(ParamError::Empty));
    expect_dense(&DenseS8 { output_len: 0, ..d.op() }, &d.input, 0, s, Err(ParamError::Empty));
    // 37 · (usize::MAX / 4 + 1) wraps: must not be taken for some small weight count.
    let huge = DenseS8 { output_len: usize::MAX / 4 + 1, ..d.op() };
    expect_dense(&huge, &d.input, 8, s, Err(ParamError::Overflow));
    let huge = DenseS8 { input_len: usize::MAX, ..d.op() };
    expect_dense(&huge, &d.input, 8, s, Err(ParamError::Overflow));
    expect_dense(&DenseS8 { input_zero_point: 300, ..d.op() }, &d.input, 8, s, Err(ParamError::QuantRange));
}

fn pool_geometry() -> PoolGeometry {
    PoolGeometry {
        input: Shape::new(6, 5, 3),
        output: Shape::new(3, 2, 3),
        size_h: 2,
        size_w: 2,
        stride_h: 2,
        stride_w: 2,
    }
}

#[test]
fn int8_pools_reject_what_does_not_fit() {
    let p = pool_geometry();
    let q = AvgRequant { input_zero_point: -1, multiplier: 1 << 30, shift: 1, output_zero_point: 3 };
    let input = vec![7i8; p.input.len()];
    for imp in impls() {
        let run = |p: &PoolGeometry, q: &AvgRequant, input: &[i8], out: usize| {
            let mut a = vec![0x55i8; out];
            let mut b = vec![0x55i8; out];
            let results = ((imp.maxpool)(p, input, &mut a), (imp.avgpool)(p, q, input, &mut b));
            if results.0.is_err() {
                assert!(a.iter().all(|&v| v == 0x55), "{}", imp.name);
            }
            if results.1.is_err() {
                assert!(b.iter().all(|&v| v == 0x55), "{}", imp.name);
            }
            results
        };
        let both = |e| (Err(e), Err(e));
        assert_eq!(run(&p, &q, &input, 18), (Ok(()), Ok(())), "{}", imp.name);
        assert_eq!(run(&p, &q, &input[1..], 18), both(ParamError::Input), "{}", imp.name);
        assert_eq!(run(&p, &q, &input, 17), both(ParamError::Output), "{}", imp.name);
        assert_eq!(run(&p, &q, &[], 0), both(ParamError::Input), "{}", imp.name);
        for (g, want) in [
            (PoolGeometry { size_h: 3, ..p }, ParamError::Geometry),
            (PoolGeometry { output: Shape::new(3, 2, 4), ..p }, ParamError::Geometry),
            (PoolGeometry { output: Shape::new(4, 2, 3), ..p }, ParamError::Geometry),
            (PoolGeometry { stride_h: 0, ..p }, ParamError::Empty),
            (PoolGeometry { size_w: 0, ..p }, ParamError::Empty),
            (PoolGeometry { input: Shape::new(HALF, HALF, 3), ..p }, ParamError::Overflow),
            (PoolGeometry { stride_h: usize::MAX, ..p }, ParamError::Overflow),
        ] {
            assert_eq!(run(&g, &q, &input, 18), both(want), "{} {g:?}", imp.name);
        }
        let bad = AvgRequant { input_zero_point: i32::MIN, ..q };
        assert_eq!(run(&p, &bad, &input, 18), (Ok(()), Err(ParamError::QuantRange)), "{}", imp.name);
    }
}

#[test]
fn float_kernels_reject_what_does_not_fit() {
    let g = ConvGeometry { input: Shape::new(4, 4, 2), output: Shape::new(4, 4, 3), ..geometry() };
    let weights = vec![0.5f32; 3 * g.filter_len()];
    let bias = vec![0.25f32; 3];
    let input = vec![1.0f32; g.input.len()];
    let op = ConvF { geometry: g, activation: Activation::Relu, pool: None, weights: &weights, bias: &bias };
    let conv = |op: &ConvF<'_, f32>, input: &[f32], out: usize| {
        let mut output = vec![-1.0f32; out];
        let r = super::conv2d_f(op, input, &mut output, &mut []);
        if r.is_err() {
            assert!(output.iter().all(|&v| v == -1.0));
        }
        r
    };
    assert_eq!(conv(&op, &input, 48), Ok(()));
    assert_eq!(conv(&ConvF { bias: &bias[..2], ..op }, &input, 48), Err(ParamError::Bias));
    assert_eq!(conv(&ConvF { weights: &weights[1..], ..op }, &input, 48), Err(ParamError::Weights));
    assert_eq!(conv(&op, &input[1..], 48), Err(ParamError::Input));
    assert_eq!(conv(&op, &input, 47), Err(ParamError::Output));
    let wrap = ConvGeometry { input: Shape::new(HALF, HALF, 2), ..g };
    assert_eq!(conv(&ConvF { geometry: wrap, ..op }, &[], 0), Err(ParamError::Overflow));
    let pool =
        PoolGeometry { input: g.output, output: Shape::new(2, 2, 3), size_h: 2, size_w: 2, stride_h: 2, stride_w: 2 };
    assert_eq!(conv(&ConvF { pool: Some((PoolKind::Avg, pool)), ..op }, &input, 12), Ok(()));
    let bad = PoolGeometry { size_h: 4, ..pool };
    assert_eq!(conv(&ConvF { pool: Some((PoolKind::Max, bad)), ..op }, &input, 12), Err(ParamError::Geometry));

    let dw = vec![0.5f32; 6];
    let dense = DenseF { input_len: 3, output_len: 2, activation: Activation::None, weights: &dw, bias: &bias[..2] };
    let run_dense = |op: &DenseF<'_, f32>, input: &[f32], out: usize| {
        let mut output = vec![-1.0f32; out];
        super::dense_f(op, input, &mut output)
    };
    assert_eq!(run_dense(&dense, &[1.0; 3], 2), Ok(()));
    assert_eq!(run_dense(&DenseF { weights: &dw[1..], ..dense }, &[1.0; 3], 2), Err(ParamError::Weights));
    assert_eq!(run_dense(&DenseF { bias: &bias, ..dense }, &[1.0; 3], 2), Err(ParamError::Bias));
    assert_eq!(run_dense(&dense, &[1.0; 2], 2), Err(ParamError::Input));
    assert_eq!(run_dense(&dense, &[1.0; 3], 3), Err(ParamError::Output));
    let huge = DenseF { input_len: HALF, output_len: HALF, ..dense };
    assert_eq!(run_dense(&huge, &[], 0), Err(ParamError::Overflow));

    let p = pool_geometry();
    let x = vec![0.5f32; p.input.len()];
    let mut y = vec![0f32; 18];
    assert_eq!(super::maxpool2d_f32(&p, &x, &mut y), Ok(()));
    assert_eq!(super::avgpool2d_f32(&p, &x, &mut y), Ok(()));
    assert_eq!(super::maxpool2d_f32(&p, &x[1..], &mut y), Err(ParamError::Input));
    assert_eq!(super::avgpool2d_f32(&p, &x, &mut y[1..]), Err(ParamError::Output));
    let g = PoolGeometry { size_w: 9, ..p };
    assert_eq!(super::maxpool2d_f32(&g, &x, &mut y), Err(ParamError::Geometry));
    assert_eq!(super::avgpool2d_f32(&g, &x, &mut y), Err(ParamError::Geometry));
}

/// The adds (reference on every ISA, through the dispatch point): operands and output of one
/// length, zero points and activation range in int8; nothing written otherwise.
#[test]
fn add_kernels_reject_what_does_not_fit() {
    let p = AddS8 {
        a_zero_point: -128,
        a_scale: 0.5,
        b_zero_point: 127,
        b_scale: 0.25,
        inv_output_scale: 2.0,
        output_zero_point: 3,
        act_min: 3,
        act_max: 127,
    };
    let run = |p: &AddS8, a: usize, b: usize, out: usize| {
        let mut output = vec![0x55i8; out];
        let r = super::add_s8(p, &vec![1i8; a], &vec![-1i8; b], &mut output);
        if r.is_err() {
            assert!(output.iter().all(|&v| v == 0x55), "output written on error");
        }
        r
    };
    assert_eq!(run(&p, 5, 5, 5), Ok(()));
    assert_eq!(run(&p, 0, 0, 0), Ok(()));
    assert_eq!(run(&p, 5, 4, 5), Err(ParamError::Input));
    assert_eq!(run(&p, 4, 5, 5), Err(ParamError::Input));
    assert_eq!(run(&p, 5, 5, 4), Err(ParamError::Output));
    assert_eq!(run(&p, 5, 5, 6), Err(ParamError::Output));
    assert_eq!(run(&AddS8 { b_zero_point: 128, ..p }, 5, 5, 5), Err(ParamError::QuantRange));
    assert_eq!(run(&AddS8 { output_zero_point: -129, ..p }, 5, 5, 5), Err(ParamError::QuantRange));
    assert_eq!(run(&AddS8 { act_min: 10, act_max: 9, ..p }, 5, 5, 5), Err(ParamError::QuantRange));
    // Any scales are sound (they only change the values).
    let odd = AddS8 { a_scale: f32::NAN, b_scale: f32::INFINITY, inv_output_scale: -0.0, ..p };
    assert_eq!(run(&odd, 5, 5, 5), Ok(()));

    let f = AddF { activation: Activation::Relu6 };
    let run_f = |a: usize, b: usize, out: usize| {
        let mut output = vec![-1.0f32; out];
        let r = super::add_f32(&f, &vec![4.0f32; a], &vec![3.0f32; b], &mut output);
        if r.is_err() {
            assert!(output.iter().all(|&v| v == -1.0), "output written on error");
        } else {
            assert!(output.iter().all(|&v| v == 6.0));
        }
        r
    };
    assert_eq!(run_f(3, 3, 3), Ok(()));
    assert_eq!(run_f(3, 2, 3), Err(ParamError::Input));
    assert_eq!(run_f(3, 3, 2), Err(ParamError::Output));
}

#[test]
fn scratch_sizes_saturate_instead_of_overflowing() {
    let g = ConvGeometry { input: Shape::new(1, 1, usize::MAX), ..geometry() };
    assert_eq!(super::conv2d_s8_scratch_size(&g, usize::MAX), usize::MAX);
    assert_eq!(super::dense_s8_scratch_size(usize::MAX, usize::MAX), usize::MAX);
    assert_eq!(super::patch_len(usize::MAX), usize::MAX);
    assert_eq!(Shape::new(HALF, HALF, 1).len(), usize::MAX);
    assert_eq!(Shape::new(HALF, HALF, 1).checked_len(), Err(ParamError::Overflow));
}

#[test]
fn param_errors_display() {
    assert_eq!(
        ParamError::Requant.to_string(),
        "per-channel requantization does not have one multiplier per output channel"
    );
    let e = crate::RunError::Kernel(ParamError::Scratch);
    assert_eq!(e.to_string(), "kernel arguments rejected: scratch buffer too small");
}

#[test]
fn pack_weights_rejects_what_does_not_fit() {
    use crate::format::pack_weights;
    let ohwi: Vec<i8> = (0..15).collect();
    let mut packed = vec![0x55i8; packed_len(5, 3)];
    assert_eq!(pack_weights(&ohwi, 5, 3, &mut packed), Ok(()));
    assert_eq!(&packed[..4], &[0, 1, 2, 3]);
    let mut untouched = vec![0x55i8; packed_len(5, 3)];
    assert_eq!(pack_weights(&ohwi[1..], 5, 3, &mut untouched), Err(ParamError::Weights));
    assert_eq!(pack_weights(&ohwi, 5, 3, &mut untouched[1..]), Err(ParamError::Weights));
    assert_eq!(pack_weights(&ohwi, 3, 5, &mut untouched), Err(ParamError::Weights));
    assert_eq!(pack_weights(&[], HALF, HALF, &mut untouched), Err(ParamError::Overflow));
    assert_eq!(pack_weights(&[], usize::MAX, 1, &mut untouched), Err(ParamError::Overflow));
    assert!(untouched.iter().all(|&v| v == 0x55));
    assert_eq!(pack_weights(&[], 0, 0, &mut []), Ok(()));
    assert_eq!(packed_len(usize::MAX, 2), usize::MAX);
}
