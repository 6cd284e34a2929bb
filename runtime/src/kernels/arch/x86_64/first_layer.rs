//! A grey image's first convolution on the `vpdpbusd` ISAs (AVX-512 VNNI, AVX-VNNI): a square
//! 2x2, 3x3 or 4x4 kernel over one input channel, no padding, at most 4 vectors of output
//! channels, plain or with a fused max pool.
//!
//! The shared driver spends most of such a layer outside the multiplications: a 9-byte patch
//! per output pixel copied to memory and read back as 4-byte groups, the weights and biases
//! loaded again for every 4 pixels, and its bookkeeping per call (the digits CNN's first layer
//! took 9.8 µs of a 20.8 µs inference with AVX-512). Here each pixel's taps are gathered in
//! registers (one 4-byte load per kernel row, [`driver::pack_rows`]), flipped to `x + 128`, and
//! broadcast group by group into `vpdpbusd` against weight vectors loaded once per call; a pool
//! window's accumulators are reduced by `max` in registers and requantized once per pooled pixel
//! by the ISA's [`Micro::requantize`]. Equal to the reference bit for bit, like the driver (same
//! effective bias, same requantization).

use crate::format::TAP_GROUP;
use crate::kernels::driver::{self, MAX_BLOCK, Micro};
use crate::kernels::params::{ConvS8, ParamError, PoolKind};

/// The vector operations the kernel needs, on `LANES` i32 lanes.
pub(super) trait Dot {
    /// A vector of i32 lanes.
    type V: Copy;
    /// Lanes per vector.
    const LANES: usize;
    /// The lanes `j < n` of `p` (the others zero, not read).
    ///
    /// # Safety
    /// The ISA; `p + j` readable for `j < min(n, LANES)`.
    unsafe fn load(p: *const i32, n: usize) -> Self::V;
    /// `x` in every lane.
    ///
    /// # Safety
    /// The ISA.
    unsafe fn splat(x: i32) -> Self::V;
    /// `acc + Σ_4 u8(x) · i8(w)` per lane.
    ///
    /// # Safety
    /// The ISA.
    unsafe fn dot(acc: Self::V, x: Self::V, w: Self::V) -> Self::V;
    /// Lane-wise signed max.
    ///
    /// # Safety
    /// The ISA.
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// Stores all lanes at `p`.
    ///
    /// # Safety
    /// The ISA; `p .. p + LANES` writable.
    unsafe fn store(p: *mut i32, v: Self::V);
}

/// Whether [`conv2d_s8`] takes this op: a supported kernel, no padding on any side, no residual add, no
/// average pool, and `out <= 4·D::LANES` (and the driver's block).
fn handles<D: Dot>(op: &ConvS8<'_>) -> bool {
    let g = &op.geometry;
    g.input.c == 1
        && g.kernel_h == g.kernel_w
        && (2..=4).contains(&g.kernel_h)
        && g.pad_top == 0
        && g.pad_left == 0
        // No padding after the input either: every output's field lies inside it.
        && g.output.h.saturating_sub(1).saturating_mul(g.stride_h).saturating_add(g.kernel_h) <= g.input.h
        && g.output.w.saturating_sub(1).saturating_mul(g.stride_w).saturating_add(g.kernel_w) <= g.input.w
        && g.output.c <= (4 * D::LANES).min(MAX_BLOCK)
        && op.residual.is_none()
        && !matches!(op.pool, Some((PoolKind::Avg, ..)))
}

/// The convolution of the module docs, or `None` when the op is not one it takes (the caller
/// uses the shared driver then). Checks its arguments first, like every kernel.
///
/// # Safety
/// The ISA of `D` and `M` (the same one) must be available.
#[inline(always)]
pub(super) unsafe fn conv2d_s8<D: Dot, M: Micro>(
    op: &ConvS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Option<Result<(), ParamError>> {
    if !handles::<D>(op) {
        return None;
    }
    if let Err(e) = crate::kernels::check_conv2d_s8(op, input, output, scratch) {
        return Some(Err(e));
    }
    let nv = op.geometry.output.c.div_ceil(D::LANES);
    // SAFETY: the caller's contract; `handles` bounds `nv <= 4` and the kernel size.
    Some(unsafe {
        match (op.geometry.kernel_h, nv) {
            (2, 1) => run::<D, M, 2, 1>(op, input, output, scratch),
            (2, 2) => run::<D, M, 2, 2>(op, input, output, scratch),
            (2, 3) => run::<D, M, 2, 3>(op, input, output, scratch),
            (2, _) => run::<D, M, 2, 4>(op, input, output, scratch),
            (3, 1) => run::<D, M, 3, 1>(op, input, output, scratch),
            (3, 2) => run::<D, M, 3, 2>(op, input, output, scratch),
            (3, 3) => run::<D, M, 3, 3>(op, input, output, scratch),
            (3, _) => run::<D, M, 3, 4>(op, input, output, scratch),
            (_, 1) => run::<D, M, 4, 1>(op, input, output, scratch),
            (_, 2) => run::<D, M, 4, 2>(op, input, output, scratch),
            (_, 3) => run::<D, M, 4, 3>(op, input, output, scratch),
            (_, _) => run::<D, M, 4, 4>(op, input, output, scratch),
        }
    })
}

/// A `K`x`K` kernel, `NV` vectors of channels (`out <= NV·LANES`).
///
/// # Safety
/// As [`conv2d_s8`], after [`handles`] and the argument check.
#[inline(always)]
unsafe fn run<D: Dot, M: Micro, const K: usize, const NV: usize>(
    op: &ConvS8<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [u8],
) -> Result<(), ParamError> {
    let g = &op.geometry;
    let out = g.output.c;
    let groups = (K * K).div_ceil(TAP_GROUP);
    let Some((eff, _)) = driver::carve(scratch, out) else { return Err(ParamError::Scratch) };
    if op.weights.len() != groups * TAP_GROUP * out || out > NV * D::LANES {
        return Err(ParamError::Scratch);
    }
    // SAFETY: the ISA is available; `eff` holds `out` values and the weights `groups·4·out`
    // bytes (checked above).
    unsafe { driver::effective_bias::<M>(op.weights, out, op.bias, op.input_zero_point, eff) };
    let eff: &[i32] = eff;
    // `x + 128` for the K·K taps, zero past them (their weights are zero too).
    let flips = (u128::MAX >> (128 - 8 * K * K)) & u128::from_le_bytes([0x80; 16]);
    // SAFETY: the ISA is available; every load reads the lanes `j < out − v·LANES` of channel
    // vector `v`: biases `eff[..out]`, and per group `g < groups` the words `g·out .. g·out + out`
    // of the packed weights (in bounds: checked above).
    let (bias, weights) = unsafe {
        let mut bias = [D::splat(0); NV];
        let mut weights = [[D::splat(0); NV]; 4];
        for v in 0..NV {
            let lanes = out - (v * D::LANES).min(out);
            bias[v] = D::load(eff.as_ptr().add(v * D::LANES), lanes);
            for (gi, w) in weights.iter_mut().enumerate().take(groups) {
                w[v] = D::load(op.weights.as_ptr().cast::<i32>().add(gi * out + v * D::LANES), lanes);
            }
        }
        (bias, weights)
    };
    let stride = g.input.w;
    let at = |oy: usize, ox: usize| oy * g.stride_h * stride + ox * g.stride_w;
    let mut block = [0i32; MAX_BLOCK];
    match op.pool {
        None => {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    let to = g.output.index(oy, ox, 0);
                    // SAFETY: the ISA is available (the caller's contract).
                    let a = unsafe { pixel::<D, K, NV>(input, at(oy, ox), stride, flips, &bias, &weights) };
                    let (Some(a), Some(dst)) = (a, output.get_mut(to..to + out)) else {
                        return Err(ParamError::Output);
                    };
                    // SAFETY: as above; `dst` holds `out` values.
                    unsafe { finish::<D, M, NV>(a, &mut block, op, dst) };
                }
            }
        }
        Some((_, pg, _)) => {
            for py in 0..pg.output.h {
                for px in 0..pg.output.w {
                    // Requantization is non-decreasing (positive multipliers, checked at load):
                    // the max accumulator gives the max value.
                    let mut best: Option<[D::V; NV]> = None;
                    for dy in 0..pg.size_h {
                        for dx in 0..pg.size_w {
                            let from = at(py * pg.stride_h + dy, px * pg.stride_w + dx);
                            // SAFETY: the ISA is available (the caller's contract).
                            let a = unsafe { pixel::<D, K, NV>(input, from, stride, flips, &bias, &weights) };
                            let Some(a) = a else { return Err(ParamError::Input) };
                            best = Some(match best {
                                None => a,
                                // SAFETY: the ISA; register arithmetic.
                                Some(mut m) => unsafe {
                                    for v in 0..NV {
                                        m[v] = D::max(m[v], a[v]);
                                    }
                                    m
                                },
                            });
                        }
                    }
                    let to = pg.output.index(py, px, 0);
                    let (Some(m), Some(dst)) = (best, output.get_mut(to..to + out)) else {
                        return Err(ParamError::Output);
                    };
                    // SAFETY: the ISA is available; `dst` holds `out` values.
                    unsafe { finish::<D, M, NV>(m, &mut block, op, dst) };
                }
            }
        }
    }
    Ok(())
}

/// The accumulators of the conv output whose field starts at input index `start`: its taps
/// gathered by [`driver::pack_rows`], flipped to `x + 128` (`flips`), broadcast group by group
/// into `vpdpbusd`. `None` if the field leaves the input (never for a checked op). A plain
/// function, not a closure, so that it inlines into the ISA's entry point with its features.
///
/// # Safety
/// The ISA of `D`.
#[inline(always)]
unsafe fn pixel<D: Dot, const K: usize, const NV: usize>(
    input: &[i8],
    start: usize,
    stride: usize,
    flips: u128,
    bias: &[D::V; NV],
    weights: &[[D::V; NV]; 4],
) -> Option<[D::V; NV]> {
    let bits = driver::pack_rows::<K, K>(input, start, stride)? ^ flips;
    let mut a = *bias;
    // A constant trip count (K is), indexed: the loop unrolls and the weights stay in registers.
    #[allow(clippy::needless_range_loop)]
    for gi in 0..(K * K).div_ceil(TAP_GROUP) {
        // SAFETY: the ISA (the caller's contract); register arithmetic.
        unsafe {
            let x = D::splat((bits >> (32 * gi)) as u32 as i32);
            for v in 0..NV {
                a[v] = D::dot(a[v], x, weights[gi][v]);
            }
        }
    }
    Some(a)
}

/// Requantizes the accumulators `a` of `out = dst.len()` channels into `dst` through `block`.
///
/// # Safety
/// The ISA of `D` and `M`; `dst.len() == op.geometry.output.c <= NV·LANES <= MAX_BLOCK`, one
/// multiplier per channel (checked ops).
#[inline(always)]
unsafe fn finish<D: Dot, M: Micro, const NV: usize>(
    a: [D::V; NV],
    block: &mut [i32; MAX_BLOCK],
    op: &ConvS8<'_>,
    dst: &mut [i8],
) {
    for (v, &x) in a.iter().enumerate() {
        // SAFETY: the ISA; v·LANES + LANES <= NV·LANES <= MAX_BLOCK.
        unsafe { D::store(block.as_mut_ptr().add(v * D::LANES), x) };
    }
    let (zp, min, max) = (op.conv_zero_point, op.act_min, op.act_max);
    // SAFETY: the ISA; `dst.len()` accumulators and outputs and as many multipliers.
    unsafe { M::requantize(block, dst.len(), 0, &op.requant, zp, min, max, dst) };
}
