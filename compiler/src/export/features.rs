//! The activations of one layer for every image of a set (`mnistc features`), for people who
//! analyse a network's features elsewhere: NumPy `.npy` (float32 `[images, features]`, and the
//! labels as uint8 `[images]`) and CSV (`label,f0,f1,...`).
//!
//! From a checkpoint the float network's layer is read (feature maps in C,H,W order, PyTorch's
//! and burn's); from a blob, the runtime's op output, dequantized (H,W,C order, the runtime's).
//!
//! The `.npy` header is written here: the format is one fixed magic, a version and a Python
//! dict literal (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>); the
//! crates that write it pull in a Python-literal parser for reading, which this never does.

use mnistc_runtime::{Input, Model, RunError};

use crate::data::Images;

/// One layer's activations for a set of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// Values per image.
    pub dim: usize,
    /// `images × dim` values, image-major.
    pub values: Vec<f32>,
    /// The images' labels.
    pub labels: Vec<u8>,
}

impl Features {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The values as a float32 `.npy` file of shape `[images, dim]`.
    pub fn npy(&self) -> Vec<u8> {
        let mut out = npy_header("<f4", &[self.len(), self.dim]);
        out.extend(self.values.iter().flat_map(|v| v.to_le_bytes()));
        out
    }

    /// The labels as a uint8 `.npy` file of shape `[images]`.
    pub fn labels_npy(&self) -> Vec<u8> {
        let mut out = npy_header("|u1", &[self.len()]);
        out.extend_from_slice(&self.labels);
        out
    }

    /// The features as CSV: a header `label,f0,...`, then one row per image (shortest
    /// round-trip decimal of each float).
    pub fn csv(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::from("label");
        for i in 0..self.dim {
            let _ = write!(s, ",f{i}");
        }
        s.push('\n');
        for (label, row) in self.labels.iter().zip(self.values.chunks(self.dim.max(1))) {
            let _ = write!(s, "{label}");
            for v in row {
                let _ = write!(s, ",{v}");
            }
            s.push('\n');
        }
        s
    }
}

/// A version 1.0 `.npy` header for a C-order array of `descr` with `shape`, padded with spaces
/// and a newline so the data starts at a multiple of 64 bytes.
fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = 6 + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((dict.len() as u16).to_le_bytes());
    out.extend(dict.as_bytes());
    out
}

/// The output of op `op` of a blob for every image, dequantized.
///
/// # Errors
/// [`RunError`] if the images do not fit the model.
pub fn from_blob(model: &Model<'_>, op: usize, images: &Images) -> Result<Features, RunError> {
    let mut arena = vec![0u128; model.arena_size().div_ceil(16)];
    let mut values = Vec::new();
    let mut dim = 0;
    for i in 0..images.n {
        model.run_observed(Input::Pixels(images.image(i)), bytemuck::cast_slice_mut(&mut arena), |k, out| {
            if k == op {
                dim = out.len();
                values.extend((0..out.len()).map(|j| out.value(j)));
            }
        })?;
    }
    Ok(Features { dim, values, labels: images.labels.clone() })
}

/// The output of layer `layer` of a trained float network for every image.
///
/// # Errors
/// [`crate::train::TrainError`] if the network cannot run on the images.
#[cfg(feature = "train")]
pub fn from_checkpoint(
    model: &crate::train::TrainedModel,
    layer: usize,
    images: &Images,
    device: crate::train::Device,
) -> Result<Features, crate::train::TrainError> {
    let mut values = Vec::new();
    let mut dim = 0;
    crate::train::for_each_layer_output(model, images, device, |k, batch, n| {
        if k == layer {
            dim = batch.len() / n.max(1);
            values.extend_from_slice(batch);
        }
    })?;
    Ok(Features { dim, values, labels: images.labels.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_files_have_numpys_header_and_alignment() {
        let f = Features { dim: 3, values: vec![1.0, -2.5, 0.0, 4.0, 5.0, 6.0], labels: vec![7, 1] };
        let npy = f.npy();
        assert_eq!(&npy[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&npy[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), "{header}");
        assert!(header.ends_with('\n'));
        let data: Vec<f32> =
            npy[10 + header_len..].chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        assert_eq!(data, f.values);
        let labels = f.labels_npy();
        let header_len = u16::from_le_bytes([labels[8], labels[9]]) as usize;
        assert!(std::str::from_utf8(&labels[10..10 + header_len]).unwrap().contains("'descr': '|u1'"));
        assert!(std::str::from_utf8(&labels[10..10 + header_len]).unwrap().contains("'shape': (2,)"));
        assert_eq!(&labels[10 + header_len..], &[7, 1]);
        assert_eq!(f.csv(), "label,f0,f1,f2\n7,1,-2.5,0\n1,4,5,6\n");
    }
}
