//! Turning images and labels into burn tensors, and batched float inference.

use burn::prelude::*;

use super::error::TrainError;
use super::model::Net;
use crate::data::Images;

/// Images per inference batch.
pub(crate) const INFER_BATCH: usize = 1000;

/// `[n, c, h, w]` tensor of `pixel / 255` from `n` images of `(h, w, c)` interleaved (`HWC`)
/// bytes: the channels become planes, as the network (and ONNX) expect.
pub(crate) fn image_tensor(pixels: &[u8], n: usize, (h, w, c): (usize, usize, usize), device: &Device) -> Tensor<4> {
    let scale = |p: u8| f32::from(p) / 255.0;
    let values: Vec<f32> = if c == 1 {
        pixels.iter().map(|&p| scale(p)).collect()
    } else {
        let mut planar = vec![0.0f32; pixels.len()];
        let plane = h * w;
        for (image, out) in pixels.chunks_exact(plane * c).zip(planar.chunks_exact_mut(plane * c)) {
            for (i, pixel) in image.chunks_exact(c).enumerate() {
                for (ch, &p) in pixel.iter().enumerate() {
                    out[ch * plane + i] = scale(p);
                }
            }
        }
        planar
    };
    Tensor::from_data(TensorData::new(values, [n, c, h, w]), device)
}

/// `[n]` integer tensor of labels.
pub(crate) fn label_tensor(labels: &[u8], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    Tensor::from_data(TensorData::new(values, [labels.len()]), device)
}

/// Reads a float tensor back as `f32`.
pub(crate) fn to_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, TrainError> {
    t.into_data().try_into_vec_as::<f32>().map_err(|e| TrainError::Backend(format!("cannot read a tensor back: {e:?}")))
}

/// Logits of every image, row-major `[n, classes]`, computed in batches on `device` with the
/// network in inference mode (dropout off).
pub(crate) fn logits(net: &Net, images: &Images, device: &Device) -> Result<Vec<f32>, TrainError> {
    let mut out = Vec::new();
    let len = images.image_len();
    let mut start = 0;
    while start < images.n {
        let b = INFER_BATCH.min(images.n - start);
        let x = image_tensor(&images.pixels[start * len..(start + b) * len], b, images.shape(), device);
        out.extend(to_f32(net.forward(x))?);
        start += b;
    }
    Ok(out)
}

/// Mean cross-entropy and accuracy of `[n, classes]` logits against labels (computed in f64).
pub(crate) fn loss_and_accuracy(logits: &[f32], labels: &[u8], classes: usize) -> (f64, f64) {
    if labels.is_empty() || classes == 0 {
        return (0.0, 0.0);
    }
    let mut loss = 0.0;
    let mut correct = 0usize;
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        loss += max + sum.ln() - row[usize::from(label)] as f64;
        if argmax(row) == usize::from(label) {
            correct += 1;
        }
    }
    (loss / labels.len() as f64, correct as f64 / labels.len() as f64)
}

/// Index of the largest value (the first one on ties).
pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
