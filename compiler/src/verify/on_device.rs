//! Running a blob with the runtime on the host, as the device would: predictions and
//! evaluation over a data set (the "on-device" accuracy of reports and `mnistc eval`).

use mnistc_runtime::{Input, Model, RunError};

use crate::data::Images;
use crate::report::metrics::{Evaluation, MetricsError};

/// Why a blob could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum OnDeviceError {
    /// The images do not have the model's input size.
    #[error("the images are {h}x{w} ({len} pixels) but the model takes {expected} values")]
    InputSize {
        /// Image height.
        h: usize,
        /// Image width.
        w: usize,
        /// Pixels per image.
        len: usize,
        /// Values the model takes.
        expected: usize,
    },
    /// The runtime refused to run.
    #[error("the runtime could not run the model: {0}")]
    Run(#[from] RunError),
    /// The labels do not fit the model's classes.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Arena memory at a 16-byte-aligned address (cast to bytes with `bytemuck::cast_slice_mut`).
pub(crate) fn arena(model: &Model<'_>) -> Vec<u128> {
    vec![0u128; model.arena_size().div_ceil(16)]
}

/// The predicted class of every image, computed on all cores.
///
/// # Errors
/// [`OnDeviceError`] if the images do not fit the model.
pub fn predictions(model: &Model<'_>, images: &Images) -> Result<Vec<u8>, OnDeviceError> {
    let len = images.image_len();
    if len != model.input_len() {
        return Err(OnDeviceError::InputSize { h: images.height, w: images.width, len, expected: model.input_len() });
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(images.n.max(1));
    let per = images.n.div_ceil(threads.max(1)).max(1);
    let mut out = vec![0u8; images.n];
    std::thread::scope(|s| -> Result<(), OnDeviceError> {
        let handles: Vec<_> = out
            .chunks_mut(per)
            .zip(images.pixels.chunks(per * len))
            .map(|(preds, pixels)| {
                s.spawn(move || -> Result<(), RunError> {
                    let mut arena = arena(model);
                    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
                    for (p, image) in preds.iter_mut().zip(pixels.chunks_exact(len)) {
                        *p = model.classify(image, bytes)? as u8;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(r) => r?,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// Accuracy, confusion matrix and per-class metrics of the blob on `images`.
///
/// # Errors
/// [`OnDeviceError`] if the images or labels do not fit the model.
pub fn evaluate(model: &Model<'_>, images: &Images) -> Result<Evaluation, OnDeviceError> {
    let preds = predictions(model, images)?;
    let names: Vec<String> = (0..model.output_len()).map(|i| model.class_name(i).to_string()).collect();
    Ok(Evaluation::from_predictions(&images.labels, &preds, &names)?)
}

/// The dequantized logits of one image.
///
/// # Errors
/// [`RunError`] if the image does not fit the model.
pub fn logits(model: &Model<'_>, image: &[u8]) -> Result<Vec<f32>, RunError> {
    logits_of(model, Input::Pixels(image))
}

/// The dequantized logits of one input of any kind ([`Input::I8`] for a model that does not
/// take pixels).
///
/// # Errors
/// [`RunError`] if the input does not fit the model.
pub fn logits_of(model: &Model<'_>, input: Input<'_>) -> Result<Vec<f32>, RunError> {
    let mut arena = arena(model);
    let mut out = vec![0f32; model.output_len()];
    model.run(input, bytemuck::cast_slice_mut(&mut arena), &mut out)?;
    Ok(out)
}
