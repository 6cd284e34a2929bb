//! Running a validated [`Model`]: input conversion, the op loop over the arena, and the logits.

use crate::error::RunError;
use crate::format::{OpRecord, Precision};
use crate::kernels;
use crate::kernels::params::ParamError;
use crate::model::{Kernel, Model, Op, Region};

/// A model input, `h · w · c` elements in NHWC order.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Raw pixels 0..=255 (what the data sets store). int8 models take `p − 128` exactly; float
    /// models take `p / 255`.
    Pixels(&'a [u8]),
    /// Floats scaled to `[0, 1]` (`pixel / 255`), as the exported ONNX takes them. int8 models
    /// quantize them as `clamp(round_half_even(x · 255) − 128)`.
    F32(&'a [f32]),
    /// An already-quantized int8 input, in the model's input quantization (mnistc's own blobs:
    /// scale 1/255, zero point −128); int8 models only.
    I8(&'a [i8]),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::Pixels(p) => p.len(),
            Input::F32(x) => x.len(),
            Input::I8(q) => q.len(),
        }
    }
}

/// The output of one op, as [`Model::run_observed`] shows it.
#[derive(Debug, Clone, Copy)]
pub enum Activations<'b> {
    /// int8 values with their scale and zero point.
    I8 {
        /// The values, NHWC.
        values: &'b [i8],
        /// Scale (real value = `(q − zero_point) · scale`).
        scale: f32,
        /// Zero point.
        zero_point: i32,
    },
    /// f32 values, NHWC.
    F32(&'b [f32]),
}

/// The logits of one inference, borrowed from the arena.
pub type Logits<'b> = Activations<'b>;

impl Activations<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Activations::I8 { values, .. } => values.len(),
            Activations::F32(v) => v.len(),
        }
    }
    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Value `i` as a real number (int8 values dequantized); 0.0 past the end.
    pub fn value(&self, i: usize) -> f32 {
        match *self {
            Activations::I8 { values, scale, zero_point } => {
                values.get(i).map_or(0.0, |&q| (q as i32 - zero_point) as f32 * scale)
            }
            Activations::F32(v) => v.get(i).copied().unwrap_or(0.0),
        }
    }
    /// Index of the largest value (the first one on ties; 0 when empty). int8 values are compared
    /// as integers (the scale is positive), so no float arithmetic is needed.
    pub fn argmax(&self) -> usize {
        match *self {
            Activations::I8 { values, .. } => argmax(values),
            Activations::F32(v) => argmax(v),
        }
    }
    /// Writes the real values into `out` (as many as fit).
    pub fn write_f32(&self, out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate().take(self.len()) {
            *o = self.value(i);
        }
    }
    /// Writes softmax probabilities into `out` (as many as fit; they sum to 1 over all values).
    pub fn softmax(&self, out: &mut [f32]) {
        let n = self.len();
        let max = (0..n).map(|i| self.value(i)).fold(f32::NEG_INFINITY, f32::max);
        let total: f32 = (0..n).map(|i| libm::expf(self.value(i) - max)).sum();
        for (i, o) in out.iter_mut().enumerate().take(n) {
            *o = libm::expf(self.value(i) - max) / total;
        }
    }
}

fn argmax<T: Copy + PartialOrd>(values: &[T]) -> usize {
    let mut iter = values.iter().enumerate();
    let Some((_, &first)) = iter.next() else { return 0 };
    let (mut best, mut best_value) = (0, first);
    for (i, &v) in iter {
        if v > best_value {
            (best, best_value) = (i, v);
        }
    }
    best
}

impl Model<'_> {
    /// Runs one inference and writes the (dequantized) logits into `output`; returns the class
    /// with the highest logit.
    ///
    /// `arena` needs [`Model::arena_size`] bytes (at a multiple of 4 for float models; a
    /// [`crate::Aligned`] buffer always is).
    ///
    /// # Errors
    /// [`RunError`] when the input, output or arena do not fit the model. A model that loaded
    /// runs without any other failure.
    pub fn run(&self, input: Input<'_>, arena: &mut [u8], output: &mut [f32]) -> Result<usize, RunError> {
        if output.len() != self.output_len() {
            return Err(RunError::OutputLength { expected: self.output_len(), got: output.len() });
        }
        let logits = self.run_logits(input, arena)?;
        logits.write_f32(output);
        Ok(logits.argmax())
    }

    /// Runs one inference on raw `u8` pixels and returns the class; the logits stay in the arena.
    ///
    /// # Errors
    /// As [`Model::run`].
    pub fn classify(&self, pixels: &[u8], arena: &mut [u8]) -> Result<usize, RunError> {
        Ok(self.run_logits(Input::Pixels(pixels), arena)?.argmax())
    }

    /// Runs one inference and returns the logits as the last op left them in the arena (int8
    /// with their scale and zero point, or f32).
    ///
    /// # Errors
    /// As [`Model::run`].
    pub fn run_logits<'b>(&self, input: Input<'_>, arena: &'b mut [u8]) -> Result<Logits<'b>, RunError> {
        self.run_observed(input, arena, |_, _| {})
    }

    /// Like [`Model::run_logits`], and calls `observe(op_index, output)` after every op (for
    /// per-layer comparisons and calibration).
    ///
    /// # Errors
    /// As [`Model::run`].
    #[inline(never)]
    pub fn run_observed<'b>(
        &self,
        input: Input<'_>,
        arena: &'b mut [u8],
        mut observe: impl FnMut(usize, Activations<'_>),
    ) -> Result<Logits<'b>, RunError> {
        let expected = self.input_len();
        if input.len() != expected {
            return Err(RunError::InputLength { expected, got: input.len() });
        }
        let needed = self.arena_size();
        if arena.len() < needed {
            return Err(RunError::ArenaTooSmall { needed, got: arena.len() });
        }
        let too_small = RunError::ArenaTooSmall { needed, got: arena.len() };
        let arena = arena.get_mut(..needed).ok_or(too_small)?;
        let float = self.precision() != Precision::Int8;
        if float && !(arena.as_ptr() as usize).is_multiple_of(4) {
            return Err(RunError::ArenaMisaligned);
        }
        // Every region lies inside the arena (checked at load): the `ok_or`s below never fail.
        let mut ops = self.ops();
        let mut last: Option<(Region, &OpRecord)> = None;
        let mut index = 0;
        loop {
            // Borrowed where it was decoded, not moved out: one op on the stack (firmware).
            let decoded = ops.try_next();
            let op = match &decoded {
                None => break,
                Some(Ok(op)) => op,
                Some(Err(e)) => return Err(RunError::Op(*e)),
            };
            if index == 0 {
                if !self.takes_pixels() && !matches!(input, Input::I8(_)) {
                    return Err(RunError::InputKind);
                }
                write_input(input, float, region_mut(arena, op.input).ok_or(too_small)?)?;
            }
            run_op(op, arena).ok_or(too_small)??;
            observe(index, self.view(op.record, region(arena, op.output).ok_or(too_small)?)?);
            last = Some((op.output, op.record));
            index += 1;
        }
        let Some((output, record)) = last else {
            return Err(too_small); // never: a model has at least one op
        };
        let arena: &'b [u8] = arena;
        self.view(record, region(arena, output).ok_or(too_small)?)
    }

    fn view<'b>(&self, record: &OpRecord, bytes: &'b [u8]) -> Result<Activations<'b>, RunError> {
        Ok(if self.precision() == Precision::Int8 {
            Activations::I8 {
                values: bytemuck::cast_slice(bytes),
                scale: record.output_scale,
                zero_point: record.output_zero_point,
            }
        } else {
            Activations::F32(f32s(bytes)?)
        })
    }
}

fn f32s(bytes: &[u8]) -> Result<&[f32], RunError> {
    bytemuck::try_cast_slice(bytes).map_err(|_| RunError::ArenaMisaligned)
}

fn f32s_mut(bytes: &mut [u8]) -> Result<&mut [f32], RunError> {
    bytemuck::try_cast_slice_mut(bytes).map_err(|_| RunError::ArenaMisaligned)
}

/// Converts the input into the first op's input buffer (of the input's length: checked by the
/// caller; copied by `zip`, which has no length-mismatch panic path).
fn write_input(input: Input<'_>, float: bool, dst: &mut [u8]) -> Result<(), RunError> {
    if float {
        let dst = f32s_mut(dst)?;
        match input {
            Input::Pixels(p) => dst.iter_mut().zip(p).for_each(|(d, &p)| *d = p as f32 / 255.0),
            Input::F32(x) => dst.iter_mut().zip(x).for_each(|(d, &x)| *d = x),
            Input::I8(_) => return Err(RunError::InputKind),
        }
    } else {
        let dst: &mut [i8] = bytemuck::cast_slice_mut(dst);
        match input {
            Input::Pixels(p) => dst.iter_mut().zip(p).for_each(|(d, &p)| *d = (p as i16 - 128) as i8),
            Input::F32(x) => dst.iter_mut().zip(x).for_each(|(d, &x)| *d = quantize_input(x)),
            Input::I8(q) => dst.iter_mut().zip(q).for_each(|(d, &q)| *d = q),
        }
    }
    Ok(())
}

/// `clamp(round_half_even(x · 255) − 128)`: a `[0, 1]` float input as int8 (NaN gives −128).
pub fn quantize_input(x: f32) -> i8 {
    let q = libm::rintf(x * 255.0) - 128.0;
    if q >= 127.0 {
        127
    } else if q >= -128.0 {
        q as i8
    } else {
        -128
    }
}

/// The bytes of `r` in `arena` (`None` past its end).
fn region(arena: &[u8], r: Region) -> Option<&[u8]> {
    arena.get(r.offset..)?.get(..r.len)
}

/// The bytes of `r` in `arena`, mutable (`None` past its end).
fn region_mut(arena: &mut [u8], r: Region) -> Option<&mut [u8]> {
    arena.get_mut(r.offset..)?.get_mut(..r.len)
}

/// Splits the arena into an op's input (shared), output (mutable) and scratch; `None` if a
/// region lies past the arena's end or two non-empty ones overlap (a validated op's never do).
fn regions<'b>(
    arena: &'b mut [u8],
    input: Region,
    output: Region,
    scratch: Region,
) -> Option<(&'b [u8], &'b mut [u8], &'b mut [u8])> {
    // Carve them in address order (sorted by three compare-and-swaps).
    let [mut p0, mut p1, mut p2] = [(0u8, input), (1, output), (2, scratch)];
    let order = |a: &mut (u8, Region), b: &mut (u8, Region)| {
        if b.1.offset < a.1.offset {
            core::mem::swap(a, b);
        }
    };
    order(&mut p0, &mut p1);
    order(&mut p1, &mut p2);
    order(&mut p0, &mut p1);
    let (mut a, mut b, mut c): (&'b mut [u8], &'b mut [u8], &'b mut [u8]) = (&mut [], &mut [], &mut []);
    let mut rest = arena;
    let mut consumed = 0;
    for (slot, r) in [p0, p1, p2] {
        if r.len == 0 {
            continue; // an empty region (no scratch) may sit anywhere, even inside another
        }
        let skip = r.offset.checked_sub(consumed)?;
        let (_, tail) = core::mem::take(&mut rest).split_at_mut_checked(skip)?;
        let (piece, tail) = tail.split_at_mut_checked(r.len)?;
        match slot {
            0 => a = piece,
            1 => b = piece,
            _ => c = piece,
        }
        consumed = r.end();
        rest = tail;
    }
    Some((a, b, c))
}

/// Splits the arena into an add's two operands (shared; they may be one region, as in `x + x`)
/// and its output (mutable): the arena is cut around the output, and each operand is taken from
/// the side that holds it entirely. `None` if a region lies past the arena's end or an operand
/// overlaps the output (a validated op's never do).
#[cfg(feature = "residual")]
fn add_regions(arena: &mut [u8], a: Region, b: Region, output: Region) -> Option<(&[u8], &[u8], &mut [u8])> {
    let (before, rest) = arena.split_at_mut_checked(output.offset)?;
    let (out, after) = rest.split_at_mut_checked(output.len)?;
    let (before, after): (&[u8], &[u8]) = (before, after);
    let out_end = output.offset.checked_add(output.len)?;
    let operand = |r: Region| -> Option<&[u8]> {
        let end = r.offset.checked_add(r.len)?;
        if end <= output.offset {
            before.get(r.offset..end)
        } else {
            after.get(r.offset.checked_sub(out_end)?..end.checked_sub(out_end)?)
        }
    };
    Some((operand(a)?, operand(b)?, out))
}

/// Runs `op` over `arena`; `None` if its regions do not fit (never, for a validated op).
fn run_op(op: &Op<'_>, arena: &mut [u8]) -> Option<Result<(), RunError>> {
    #[cfg(feature = "residual")]
    if let Kernel::AddS8(_) | Kernel::AddF32(_) = op.kernel {
        let (a, b, output) = add_regions(arena, op.input, op.input2, op.output)?;
        return Some(run_add(op, a, b, output));
    }
    let (input, output, scratch) = regions(arena, op.input, op.output, op.scratch)?;
    Some(run_kernel(op, input, output, scratch))
}

/// Runs an add over its operands `a`, `b` and its `output` (never called with another op, which
/// it would refuse).
#[cfg(feature = "residual")]
#[inline(never)]
fn run_add(op: &Op<'_>, a: &[u8], b: &[u8], output: &mut [u8]) -> Result<(), RunError> {
    let done = match &op.kernel {
        Kernel::AddS8(p) => {
            kernels::add_s8(p, bytemuck::cast_slice(a), bytemuck::cast_slice(b), bytemuck::cast_slice_mut(output))
        }
        #[cfg(feature = "float")]
        Kernel::AddF32(p) => kernels::add_f32(p, f32s(a)?, f32s(b)?, f32s_mut(output)?),
        // Without `float`, `Model::from_bytes` refuses float blobs (as in `run_kernel`).
        #[cfg(not(feature = "float"))]
        Kernel::AddF32(_) => {
            return Err(RunError::Op(crate::error::LoadError::Meta {
                field: "precision",
                problem: crate::error::Problem::NotCompiledIn,
            }));
        }
        _ => Err(ParamError::Input),
    };
    done.map_err(RunError::Kernel)
}

#[inline(never)]
fn run_kernel(op: &Op<'_>, input: &[u8], output: &mut [u8], scratch: &mut [u8]) -> Result<(), RunError> {
    let done = match &op.kernel {
        #[cfg(feature = "float")]
        Kernel::ConvF32(k) => kernels::conv2d_f(k, f32s(input)?, f32s_mut(output)?, scratch),
        #[cfg(feature = "float")]
        Kernel::ConvF16(k) => kernels::conv2d_f(k, f32s(input)?, f32s_mut(output)?, scratch),
        #[cfg(all(feature = "float", feature = "depthwise"))]
        Kernel::DepthwiseF32(k) => kernels::depthwise_conv2d_f(k, f32s(input)?, f32s_mut(output)?),
        #[cfg(all(feature = "float", feature = "depthwise"))]
        Kernel::DepthwiseF16(k) => kernels::depthwise_conv2d_f(k, f32s(input)?, f32s_mut(output)?),
        #[cfg(feature = "float")]
        Kernel::DenseF32(k) => kernels::dense_f(k, f32s(input)?, f32s_mut(output)?),
        #[cfg(feature = "float")]
        Kernel::DenseF16(k) => kernels::dense_f(k, f32s(input)?, f32s_mut(output)?),
        #[cfg(feature = "float")]
        Kernel::MaxPoolF32(p) => kernels::maxpool2d_f32(p, f32s(input)?, f32s_mut(output)?),
        #[cfg(feature = "float")]
        Kernel::AvgPoolF32(p) => kernels::avgpool2d_f32(p, f32s(input)?, f32s_mut(output)?),
        // Without `float`, `Model::from_bytes` refuses float blobs, so no float op reaches here;
        // leaving the float kernels out of this match is what keeps them out of the binary.
        #[cfg(not(feature = "float"))]
        Kernel::ConvF32(_)
        | Kernel::ConvF16(_)
        | Kernel::DenseF32(_)
        | Kernel::DenseF16(_)
        | Kernel::MaxPoolF32(_)
        | Kernel::AvgPoolF32(_) => {
            return Err(RunError::Op(crate::error::LoadError::Meta {
                field: "precision",
                problem: crate::error::Problem::NotCompiledIn,
            }));
        }
        Kernel::ConvS8(k) => {
            kernels::conv2d_s8(k, bytemuck::cast_slice(input), bytemuck::cast_slice_mut(output), scratch)
        }
        #[cfg(feature = "depthwise")]
        Kernel::DepthwiseS8(k) => {
            kernels::depthwise_conv2d_s8(k, bytemuck::cast_slice(input), bytemuck::cast_slice_mut(output))
        }
        // Without `depthwise` (or, for the float ones, `float`), `Model::from_bytes` refuses
        // these ops; leaving them out of this match keeps their kernels out of the binary.
        #[cfg(not(all(feature = "float", feature = "depthwise")))]
        Kernel::DepthwiseF32(_) | Kernel::DepthwiseF16(_) => {
            return Err(RunError::Op(crate::error::LoadError::Op {
                index: 0,
                field: "kind",
                problem: crate::error::Problem::NotCompiledIn,
            }));
        }
        #[cfg(not(feature = "depthwise"))]
        Kernel::DepthwiseS8(_) => {
            return Err(RunError::Op(crate::error::LoadError::Op {
                index: 0,
                field: "kind",
                problem: crate::error::Problem::NotCompiledIn,
            }));
        }
        Kernel::DenseS8(k) => {
            kernels::dense_s8(k, bytemuck::cast_slice(input), bytemuck::cast_slice_mut(output), scratch)
        }
        Kernel::MaxPoolS8(p) => kernels::maxpool2d_s8(p, bytemuck::cast_slice(input), bytemuck::cast_slice_mut(output)),
        Kernel::AvgPoolS8(p, q) => {
            kernels::avgpool2d_s8(p, q, bytemuck::cast_slice(input), bytemuck::cast_slice_mut(output))
        }
        // Adds read two operands: `run_op` runs them with `run_add`, never here. (Without
        // `residual`, `Model::from_bytes` refuses them.)
        Kernel::AddS8(_) | Kernel::AddF32(_) => Err(ParamError::Input),
    };
    // A loaded model passes every kernel check (the loader checks the same and more), so this
    // error is not expected; it is reported rather than trusted away.
    done.map_err(RunError::Kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn at(offset: usize, len: usize) -> Region {
        Region { offset, len }
    }

    #[test]
    fn add_regions_take_each_operand_from_its_side_of_the_output() {
        let mut arena: [u8; 16] = core::array::from_fn(|i| i as u8);
        let (a, b, out) = add_regions(&mut arena, at(0, 4), at(12, 4), at(6, 4)).unwrap();
        assert_eq!((a, b), (&[0, 1, 2, 3][..], &[12, 13, 14, 15][..]));
        out.fill(0xFF);
        // One operand twice, both after the output; operands touching the output's ends.
        let (a, b, out) = add_regions(&mut arena, at(4, 2), at(4, 2), at(0, 4)).unwrap();
        assert_eq!((a, b, &*out), (&[4, 5][..], &[4, 5][..], &[0, 1, 2, 3][..]));
        let (a, b, _) = add_regions(&mut arena, at(10, 6), at(0, 6), at(6, 4)).unwrap();
        assert_eq!((a, b), (&[10, 11, 12, 13, 14, 15][..], &[0, 1, 2, 3, 4, 5][..]));
        assert_eq!(arena[5..11], [5, 0xFF, 0xFF, 0xFF, 0xFF, 10]);
    }

    #[test]
    fn add_regions_refuse_overlaps_and_regions_past_the_arena() {
        let mut arena = [0u8; 16];
        assert!(add_regions(&mut arena, at(0, 7), at(12, 4), at(6, 4)).is_none());
        assert!(add_regions(&mut arena, at(0, 4), at(9, 4), at(6, 4)).is_none());
        assert!(add_regions(&mut arena, at(0, 4), at(7, 1), at(6, 4)).is_none());
        assert!(add_regions(&mut arena, at(0, 4), at(14, 4), at(6, 4)).is_none());
        assert!(add_regions(&mut arena, at(0, 4), at(12, 4), at(14, 4)).is_none());
        assert!(add_regions(&mut arena, at(usize::MAX, 2), at(12, 4), at(6, 4)).is_none());
        assert!(add_regions(&mut arena, at(0, 4), at(12, 4), at(6, usize::MAX)).is_none());
    }
}
