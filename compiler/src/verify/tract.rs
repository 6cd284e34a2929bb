//! tract-onnx as the reference runtime for exported models ([`crate::export::onnx`]).
//!
//! [`TractModel::load`] parses ONNX bytes, optionally cuts the graph at the quantized input, selects
//! the outputs to return (the logits and, for per-layer comparisons, named intermediate tensors),
//! optimizes the model once and keeps the runnable plan and its state for every later run.
//!
//! # Why int8 models are fed at `input_q`
//! An exported int8 graph starts with `QuantizeLinear(input, 1/255, −128)`. tract's per-tensor
//! `QuantizeLinear` computes `round(x · (1/s))` where the ONNX spec, onnxruntime and the mnistc
//! runtime compute `round(x / s)`; at a few near-ties the two differ by one step. Parity checks
//! therefore feed [`Feed::Quantized`]: the same int8 tensor (`pixel − 128`) that the runtime
//! receives for [`mnistc_runtime::Input::Pixels`] goes straight into the tensor
//! [`crate::export::onnx::INPUT_Q_NAME`], which becomes the model's input, so both sides start from
//! identical integers and everything after is integer arithmetic.

use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::export::onnx::{INPUT_Q_NAME, OUTPUT_NAME};
use crate::lower::plan::Shape;

/// Where inputs enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The float32 NCHW model input (`pixel / 255`), as the ONNX file declares it.
    Float,
    /// The int8 NCHW quantized input [`INPUT_Q_NAME`] of an int8 graph (`pixel − 128`); the
    /// graph's `QuantizeLinear` is cut away.
    Quantized,
}

/// Why tract could not load or run a model.
#[derive(Debug, thiserror::Error)]
pub enum TractError {
    /// tract rejected the ONNX model (parse, type inference or optimization).
    #[error("tract could not load the ONNX model: {0}")]
    Load(String),
    /// The model has no tensor of that name.
    #[error("the ONNX model has no tensor named `{0}`")]
    UnknownTensor(String),
    /// The model's input is not a static `[1, C, H, W]` tensor.
    #[error("the ONNX model's input is not a static [1, C, H, W] tensor ({0})")]
    InputShape(String),
    /// The input has the wrong element count or type for the feed.
    #[error("the input has {got} {kind} elements; the model takes {expected}")]
    Input {
        /// `f32` or `i8`.
        kind: &'static str,
        /// Elements the model takes.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// tract failed while running.
    #[error("tract failed to run the model: {0}")]
    Run(String),
    /// An output is neither f32 nor i8.
    #[error("output `{name}` has type {datum_type}, expected f32 or i8")]
    OutputType {
        /// Tensor name.
        name: String,
        /// tract's datum type.
        datum_type: String,
    },
}

fn load_err(e: impl std::fmt::Display) -> TractError {
    TractError::Load(format!("{e:#}"))
}

fn run_err(e: impl std::fmt::Display) -> TractError {
    TractError::Run(format!("{e:#}"))
}

/// Values of one output tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// float32 values.
    F32(Vec<f32>),
    /// int8 values.
    I8(Vec<i8>),
}

impl Values {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::I8(v) => v.len(),
        }
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One output of a run: the tensor's name, shape (as tract gives it, NCHW for 4-D tensors) and
/// values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Tensor name in the ONNX graph.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Values,
}

/// A loaded, optimized tract model: built once, run many times.
#[derive(Debug)]
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    state: TypedSimpleState,
    feed: Feed,
    input_shape: [usize; 4],
    outputs: Vec<String>,
}

impl TractModel {
    /// Loads `onnx`, feeding inputs at `feed` and returning the tensors named in `outputs` (in that
    /// order; empty means the model's own output, [`OUTPUT_NAME`]).
    ///
    /// # Errors
    /// [`TractError`] when tract rejects the model or a name is unknown.
    pub fn load(onnx: &[u8], feed: Feed, outputs: &[&str]) -> Result<Self, TractError> {
        let mut model = tract_onnx::onnx().model_for_read(&mut &onnx[..]).map_err(load_err)?;
        let declared = model.input_fact(0).map_err(load_err)?.clone();
        let input_shape = match declared.shape.as_concrete_finite() {
            Ok(Some(s)) if s.len() == 4 && s[0] == 1 => [s[0], s[1], s[2], s[3]],
            _ => return Err(TractError::InputShape(declared.format_dt_shape())),
        };
        if feed == Feed::Quantized {
            let outlet = model
                .find_outlet_label(INPUT_Q_NAME)
                .ok_or_else(|| TractError::UnknownTensor(INPUT_Q_NAME.to_string()))?;
            model.set_input_outlets(&[outlet]).map_err(load_err)?;
            model
                .set_input_fact(0, InferenceFact::dt_shape(i8::datum_type(), input_shape.to_vec()))
                .map_err(load_err)?;
        }
        let outputs: Vec<String> = if outputs.is_empty() {
            vec![OUTPUT_NAME.to_string()]
        } else {
            outputs.iter().map(|s| s.to_string()).collect()
        };
        for name in &outputs {
            if model.find_outlet_label(name).is_none() {
                return Err(TractError::UnknownTensor(name.clone()));
            }
        }
        model.select_outputs_by_name(&outputs).map_err(load_err)?;
        let plan = model.into_optimized().map_err(load_err)?.into_runnable().map_err(load_err)?;
        let state = TypedSimpleState::new(&plan).map_err(load_err)?;
        Ok(Self { plan, state, feed, input_shape, outputs })
    }

    /// Where inputs enter.
    pub fn feed(&self) -> Feed {
        self.feed
    }

    /// The input shape `[1, C, H, W]`.
    pub fn input_shape(&self) -> [usize; 4] {
        self.input_shape
    }

    /// Number of input elements.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Names of the returned outputs, in order.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// The optimized, runnable tract plan (for timing or inspection).
    pub fn plan(&self) -> &Arc<TypedRunnableModel> {
        &self.plan
    }

    /// Runs one float32 NCHW input ([`Feed::Float`]).
    ///
    /// # Errors
    /// [`TractError::Input`] for a wrong length or an int8 feed; [`TractError::Run`] when tract fails.
    pub fn run_f32(&mut self, nchw: &[f32]) -> Result<Vec<Output>, TractError> {
        if self.feed != Feed::Float || nchw.len() != self.input_len() {
            return Err(self.input_error("f32", nchw.len()));
        }
        let t = Tensor::from_shape(&self.input_shape, nchw).map_err(run_err)?;
        self.run(t)
    }

    /// Runs one int8 NCHW input at [`INPUT_Q_NAME`] ([`Feed::Quantized`]).
    ///
    /// # Errors
    /// [`TractError::Input`] for a wrong length or a float feed; [`TractError::Run`] when tract fails.
    pub fn run_i8(&mut self, nchw: &[i8]) -> Result<Vec<Output>, TractError> {
        if self.feed != Feed::Quantized || nchw.len() != self.input_len() {
            return Err(self.input_error("i8", nchw.len()));
        }
        let t = Tensor::from_shape(&self.input_shape, nchw).map_err(run_err)?;
        self.run(t)
    }

    fn input_error(&self, kind: &'static str, got: usize) -> TractError {
        let expected = match (self.feed, kind) {
            (Feed::Float, "f32") | (Feed::Quantized, "i8") => self.input_len(),
            _ => 0,
        };
        TractError::Input { kind, expected, got }
    }

    fn run(&mut self, input: Tensor) -> Result<Vec<Output>, TractError> {
        let values = self.state.run(tvec!(input.into_tvalue())).map_err(run_err)?;
        values
            .iter()
            .zip(&self.outputs)
            .map(|(v, name)| {
                let shape = v.shape().to_vec();
                let values = if v.datum_type() == f32::datum_type() {
                    Values::F32(v.to_plain_array_view::<f32>().map_err(run_err)?.iter().copied().collect())
                } else if v.datum_type() == i8::datum_type() {
                    Values::I8(v.to_plain_array_view::<i8>().map_err(run_err)?.iter().copied().collect())
                } else {
                    return Err(TractError::OutputType {
                        name: name.clone(),
                        datum_type: format!("{:?}", v.datum_type()),
                    });
                };
                Ok(Output { name: name.clone(), shape, values })
            })
            .collect()
    }
}

/// An NHWC tensor (`shape`, no batch) in NCHW order.
pub fn nhwc_to_nchw<T: Copy>(x: &[T], shape: Shape) -> Vec<T> {
    let mut r = Vec::with_capacity(x.len());
    for c in 0..shape.c {
        for y in 0..shape.h {
            for w in 0..shape.w {
                r.push(x[shape.index(y, w, c)]);
            }
        }
    }
    r
}

/// An NCHW tensor of NHWC `shape` (no batch) in NHWC order.
pub fn nchw_to_nhwc<T: Copy>(x: &[T], shape: Shape) -> Vec<T> {
    let mut r = Vec::with_capacity(x.len());
    for y in 0..shape.h {
        for w in 0..shape.w {
            for c in 0..shape.c {
                r.push(x[(c * shape.h + y) * shape.w + w]);
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip() {
        let s = Shape::new(2, 3, 4);
        let x: Vec<usize> = (0..s.len()).collect();
        let nchw = nhwc_to_nchw(&x, s);
        // NHWC element (y=1, x=2, c=3) is NCHW element (3, 1, 2).
        assert_eq!(nchw[(3 * 2 + 1) * 3 + 2], x[s.index(1, 2, 3)]);
        assert_eq!(nchw_to_nhwc(&nchw, s), x);
    }
}
