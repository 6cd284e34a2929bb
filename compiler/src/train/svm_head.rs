//! The SVM head (`[head] type = "svm"`): after the network has trained, a linear SVM per class
//! (one-vs-rest) is fitted on the features of its last hidden layer, standardized and reduced by
//! PCA, and deployed in place of the network's last dense layer. The fitting is linfa's:
//! linfa-preprocessing's standard scaler, linfa-reduction's PCA and linfa-svm's SMO solver with
//! a linear kernel.
//!
//! Standardization `s = (x − μ) ⊙ σ⁻¹`, the projection `z = (s − m) Vᵀ` and each class's
//! decision value `d_k = w_k · z − ρ_k` are affine, so together they are one affine map
//! `d = A x + b`: a dense layer of the same shape as the one it replaces (classes × features),
//! so the head costs no flash and no time on the device beyond the softmax head's. `A` and `b`
//! are read off linfa's own decision function, evaluated at `x = 0` (`b`) and at each unit
//! vector (`A`'s columns, minus `b`), so the folded layer is linfa's pipeline whatever its
//! internals.
//!
//! The features are the float plan's, run by the runtime (an f32 blob): exactly what the last
//! dense op reads, in its input order (NHWC flatten), so the folded weights are in the runtime's
//! layout as they are. The SVMs are fitted on a stratified sample of the training split
//! (`samples`; SMO's dense kernel matrix grows with its square), and C is chosen on the
//! validation split (`[data] validation`), or on training images outside the sample when there
//! is none.

use linfa::dataset::DatasetBase;
use linfa::traits::{Fit, Predict, Transformer};
use linfa_preprocessing::linear_scaling::LinearScaler;
use linfa_reduction::Pca;
use linfa_svm::Svm;
use mnistc_runtime::RunError;
use ndarray::{Array1, Array2, ArrayView2};
use serde::Serialize;

use crate::data::{Images, Rng, prepare_training, stratified_sample};
use crate::export::features::{self, Features};
use crate::lower::emit::{self, BlobError};
use crate::lower::plan::{Activation, Bias, OpKind, Plan, Precision, Weights};
use crate::spec::{ModelSpec, SvmHeadSpec};

/// SMO's stopping tolerance (on the maximal violating pair's gradients): libsvm's default.
/// linfa's own, 1e-7, makes a fit on a few thousand images take minutes at C ≥ 1. (linfa's
/// shrinking, libsvm's other speed-up, overflows a `usize` in linfa-svm 0.8.1's `do_shrinking`,
/// so it stays off.)
const SMO_TOLERANCE: f64 = 1e-3;

/// How an SVM head was fitted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SvmHeadReport {
    /// Features of the last hidden layer (the SVMs' input before PCA).
    pub features: usize,
    /// Features that vary enough to be fitted on ([`MIN_STD_RATIO`]); the others get weight 0.
    pub kept_features: usize,
    /// Principal components kept.
    pub pca: usize,
    /// Training images the SVMs were fitted on.
    pub samples: usize,
    /// Images C was chosen on.
    pub validation_samples: usize,
    /// Where those images come from: `validation split`, `training images outside the sample`
    /// or `the fitted sample` (a training set too small for anything else).
    pub validation_from: &'static str,
    /// Every C tried, in the spec's order.
    pub trials: Vec<CTrial>,
    /// The C deployed (the first with the best validation accuracy).
    pub c: f64,
}

/// One C value's fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CTrial {
    /// The SVMs' C.
    pub c: f64,
    /// One-vs-rest accuracy on the validation images (arg-max of the decision values).
    pub validation_accuracy: f64,
    /// Support vectors, summed over the classes' SVMs.
    pub support_vectors: usize,
    /// Wall time of the C's fits and validation.
    pub seconds: f64,
}

/// Why an SVM head could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The float plan does not end with a dense layer the head can replace.
    #[error("svm head: {0}")]
    Plan(String),
    /// The float plan cannot be written as a blob to compute the features.
    #[error("svm head: the features' blob: {0}")]
    Blob(#[from] BlobError),
    /// The runtime failed on a training image.
    #[error("svm head: computing the features: {0}")]
    Run(#[from] RunError),
    /// linfa refused the data (e.g. fewer images than components).
    #[error("svm head: {0}")]
    Fit(String),
}

/// A fitted SVM head: how it was fitted, and linfa's pipeline itself.
pub struct SvmHead {
    /// What the build reports.
    pub report: SvmHeadReport,
    /// The scaler, PCA and SVMs folded into the plan.
    pub pipeline: Pipeline,
}

/// Fits the SVM head of `head` on `member`'s training split of `train_set` and writes it into
/// the last dense layer of `float` (the member's unfused float plan).
///
/// # Errors
/// [`HeadError`] if the plan does not end with a float dense layer reading a hidden layer, or
/// if linfa cannot fit the data.
pub fn fit(head: &SvmHeadSpec, member: &ModelSpec, float: &mut Plan, train_set: &Images) -> Result<SvmHead, HeadError> {
    let classes = member.input.classes;
    let seed = member.train.seed;
    let split = prepare_training(train_set, &member.data, classes, seed);
    let mut rng = Rng::for_stream(seed, "svm_head");
    let fitted = stratified_sample(&split.train.labels, classes, head.samples, &mut rng);
    let (validation, validation_from) = match &split.validation {
        Some(v) => (v.subset(&stratified_sample(&v.labels, classes, head.samples, &mut rng)), "validation split"),
        None => {
            let rest: Vec<usize> = (0..split.train.n).filter(|i| fitted.binary_search(i).is_err()).collect();
            if rest.is_empty() {
                (split.train.subset(&fitted), "the fitted sample")
            } else {
                let labels: Vec<u8> = rest.iter().map(|&i| split.train.labels[i]).collect();
                let picked: Vec<usize> =
                    stratified_sample(&labels, classes, head.samples, &mut rng).into_iter().map(|i| rest[i]).collect();
                (split.train.subset(&picked), "training images outside the sample")
            }
        }
    };
    let fitted = split.train.subset(&fitted);
    let train = penultimate_features(float, &fitted)?;
    let valid = penultimate_features(float, &validation)?;
    let pipeline = Pipeline::fit(&train, head.pca, &head.c, &valid, classes)?;
    let (a, b) = pipeline.affine(train.dim);
    write_last_dense(float, &a, &b)?;
    let report = SvmHeadReport {
        features: train.dim,
        kept_features: pipeline.kept.len(),
        pca: head.pca,
        samples: train.len(),
        validation_samples: valid.len(),
        validation_from,
        trials: pipeline.trials.clone(),
        c: pipeline.c,
    };
    Ok(SvmHead { report, pipeline })
}

/// What the last op of `float` reads, for every image: the features the head is fitted on.
///
/// # Errors
/// [`HeadError`] if `float` does not end with an f32 dense layer reading a hidden layer, or the
/// runtime fails on an image.
pub fn penultimate_features(float: &Plan, images: &Images) -> Result<Features, HeadError> {
    check_last_dense(float)?;
    let fused = crate::lower::fuse(float.clone());
    let op = fused.ops.last().and_then(|last| last.inputs.first()).and_then(|t| t.checked_sub(1));
    let Some(op) = op else {
        return Err(HeadError::Plan("the last dense layer reads the image, not a hidden layer".into()));
    };
    let blob = emit::write(&fused)?;
    Ok(features::from_blob(&blob.model(), op, images)?)
}

/// Checks that `float` is an f32 plan ending with a dense layer without activation.
fn check_last_dense(float: &Plan) -> Result<(), HeadError> {
    match float.ops.last() {
        Some(op)
            if float.precision == Precision::F32
                && op.kind == OpKind::Dense
                && op.activation == Activation::None
                && matches!(op.weights, Weights::F32(_)) =>
        {
            Ok(())
        }
        _ => Err(HeadError::Plan(
            "the float plan must end with an f32 dense layer without activation (the head replaces it)".into(),
        )),
    }
}

/// Replaces the last dense layer's weights (`[class][feature]`) and bias.
fn write_last_dense(float: &mut Plan, a: &[Vec<f32>], b: &[f32]) -> Result<(), HeadError> {
    check_last_dense(float)?;
    let Some(op) = float.ops.last_mut() else { return Err(HeadError::Plan("empty plan".into())) };
    let weights: Vec<f32> = a.iter().flatten().copied().collect();
    match (&op.weights, &op.bias) {
        (Weights::F32(w), Bias::F32(old)) if w.len() == weights.len() && old.len() == b.len() => {
            op.weights = Weights::F32(weights);
            op.bias = Bias::F32(b.to_vec());
            Ok(())
        }
        _ => Err(HeadError::Plan(format!(
            "the last dense layer is not {} classes × {} features",
            b.len(),
            a.first().map_or(0, Vec::len)
        ))),
    }
}

/// Features whose standard deviation on the fitted images is below this fraction of the median
/// feature's are left out (weight 0). Standardization divides by the deviation, so a ReLU unit
/// that fired faintly on one image in a thousand would be scaled up a thousandfold: its weights
/// in the folded layer would dwarf every other weight, and int8's per-channel weight scale, set
/// by the largest, would round the rest to zero (on Fashion-MNIST the int8 blob then classified
/// 10 % of the test set right where the float one had 80 %). The `VarianceThreshold` step of a
/// scikit-learn pipeline, relative to the features' own spread.
pub const MIN_STD_RATIO: f64 = 0.1;

/// Standardization, PCA and one linear SVM per class, fitted by linfa.
pub struct Pipeline {
    /// The features fitted on (indices into the layer's); the others get weight 0.
    pub kept: Vec<usize>,
    scaler: LinearScaler<f64>,
    pca: Pca<f64>,
    svms: Vec<Svm<f64, bool>>,
    /// The C deployed.
    pub c: f64,
    /// Every C tried.
    pub trials: Vec<CTrial>,
}

impl Pipeline {
    /// Fits the scaler and the PCA on `train`, then one SVM per class for each of `cs`, and
    /// keeps the C with the best one-vs-rest accuracy on `valid`.
    ///
    /// # Errors
    /// [`HeadError::Fit`] when linfa refuses the data, or `cs` is empty.
    pub fn fit(
        train: &Features,
        pca: usize,
        cs: &[f64],
        valid: &Features,
        classes: usize,
    ) -> Result<Pipeline, HeadError> {
        let fit_err = |e: &dyn std::fmt::Display| HeadError::Fit(e.to_string());
        let kept = varying_features(train);
        if pca > kept.len() || pca >= train.len() {
            return Err(HeadError::Fit(format!(
                "pca = {pca} needs at least {pca} features that vary on the fitted images ({} of the layer's {} do; \
                 the others are below {MIN_STD_RATIO} of the median feature's standard deviation) and more than \
                 {pca} images ({} given)",
                kept.len(),
                train.dim,
                train.len()
            )));
        }
        let x = records(train, &kept);
        let scaler = LinearScaler::standard().fit(&DatasetBase::from(x.clone())).map_err(|e| fit_err(&e))?;
        let scaled = scaler.transform(x);
        let pca = Pca::params(pca).fit(&DatasetBase::from(scaled.clone())).map_err(|e| fit_err(&e))?;
        let z = pca.predict(&scaled);
        let z_valid = pca.predict(&scaler.transform(records(valid, &kept)));
        let mut best: Option<(f64, Vec<Svm<f64, bool>>)> = None;
        let mut trials = Vec::with_capacity(cs.len());
        for &c in cs {
            let started = std::time::Instant::now();
            let svms = (0..classes)
                .map(|k| {
                    let targets: Array1<bool> = train.labels.iter().map(|&l| usize::from(l) == k).collect();
                    Svm::<f64, bool>::params()
                        .pos_neg_weights(c, c)
                        .linear_kernel()
                        .eps(SMO_TOLERANCE)
                        .fit(&DatasetBase::new(z.view(), targets.view()))
                        .map_err(|e| fit_err(&e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let correct = decisions(&svms, z_valid.view())
                .iter()
                .zip(&valid.labels)
                .filter(|&(d, &l)| argmax(d) == usize::from(l))
                .count();
            let validation_accuracy = correct as f64 / valid.len().max(1) as f64;
            trials.push(CTrial {
                c,
                validation_accuracy,
                support_vectors: svms.iter().map(Svm::nsupport).sum(),
                seconds: started.elapsed().as_secs_f64(),
            });
            if best.as_ref().is_none_or(|(acc, _)| validation_accuracy > *acc) {
                best = Some((validation_accuracy, svms));
            }
        }
        let Some((accuracy, svms)) = best else {
            return Err(HeadError::Fit("no C value to try".into()));
        };
        let c = trials.iter().find(|t| t.validation_accuracy == accuracy).map_or(cs[0], |t| t.c);
        Ok(Pipeline { kept, scaler, pca, svms, c, trials })
    }

    /// linfa's decision values (one per class) of each image's features: scaler, PCA, then
    /// `weighted_sum − rho` of every class's SVM.
    pub fn decision(&self, features: &Features) -> Vec<Vec<f64>> {
        self.decision_of(records(features, &self.kept))
    }

    fn decision_of(&self, x: Array2<f64>) -> Vec<Vec<f64>> {
        let z = self.pca.predict(&self.scaler.transform(x));
        decisions(&self.svms, z.view())
    }

    /// The pipeline as one affine map of the layer's `features`: `A` (`[class][feature]`) and
    /// `b`, from linfa's decision at 0 and at each kept feature's unit vector (0 for the others).
    pub fn affine(&self, features: usize) -> (Vec<Vec<f32>>, Vec<f32>) {
        let n = self.kept.len();
        let mut probes = Array2::<f64>::zeros((n + 1, n));
        for p in 0..n {
            probes[[p + 1, p]] = 1.0;
        }
        let d = self.decision_of(probes);
        let b = &d[0];
        let a = (0..self.svms.len())
            .map(|k| {
                let mut row = vec![0.0f32; features];
                for (p, &j) in self.kept.iter().enumerate() {
                    row[j] = (d[p + 1][k] - b[k]) as f32;
                }
                row
            })
            .collect();
        (a, b.iter().map(|&v| v as f32).collect())
    }
}

/// The decision values of every row of `z` (PCA space) under each class's SVM.
fn decisions(svms: &[Svm<f64, bool>], z: ArrayView2<'_, f64>) -> Vec<Vec<f64>> {
    z.rows().into_iter().map(|row| svms.iter().map(|s| s.weighted_sum(&row) - s.rho).collect()).collect()
}

/// Index of the largest value (the first of equals).
fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// The features whose standard deviation over `f`'s images is at least [`MIN_STD_RATIO`] of the
/// median non-constant feature's (constant ones never are).
fn varying_features(f: &Features) -> Vec<usize> {
    let n = f.len().max(1) as f64;
    let std: Vec<f64> = (0..f.dim)
        .map(|j| {
            let column = || f.values.iter().skip(j).step_by(f.dim.max(1)).map(|&v| f64::from(v));
            let mean = column().sum::<f64>() / n;
            (column().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
        })
        .collect();
    let mut sorted: Vec<f64> = std.iter().copied().filter(|&s| s > 0.0).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    (0..f.dim).filter(|&j| std[j] > 0.0 && std[j] >= MIN_STD_RATIO * median).collect()
}

/// The `kept` features as an `images × kept` f64 matrix.
fn records(f: &Features, kept: &[usize]) -> Array2<f64> {
    Array2::from_shape_fn((f.len(), kept.len()), |(i, p)| f64::from(f.values[i * f.dim + kept[p]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` images of `dim` features: class `k` raises features `k`, `k + classes`, …, plus noise;
    /// the last feature is dead (always 0, as a ReLU unit can be) and the one before it faint
    /// (1e-3 on the first image only).
    fn blobs(n: usize, dim: usize, classes: usize, seed: u64) -> Features {
        let mut rng = Rng::new(seed);
        let mut values = Vec::with_capacity(n * dim);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let k = i % classes;
            labels.push(k as u8);
            for j in 0..dim {
                let signal = if j % classes == k { 1.5 } else { 0.0 };
                values.push(match dim - j {
                    1 => 0.0,
                    2 => f32::from(u8::from(i == 0)) * 1e-3,
                    _ => signal + rng.uniform(0.0, 1.0),
                });
            }
        }
        Features { dim, values, labels }
    }

    #[test]
    fn the_folded_affine_map_is_linfas_decision_function() {
        let (dim, classes) = (12, 3);
        let train = blobs(150, dim, classes, 1);
        let valid = blobs(60, dim, classes, 2);
        let pipeline = Pipeline::fit(&train, 5, &[0.01, 1.0], &valid, classes).unwrap();
        assert_eq!(pipeline.trials.len(), 2);
        assert!(pipeline.trials.iter().any(|t| t.c == pipeline.c));
        let (a, b) = pipeline.affine(dim);
        assert_eq!((a.len(), a[0].len(), b.len()), (classes, dim, classes));
        // The dead and the faint feature are left out: weight 0, not 1/σ-sized.
        assert_eq!(pipeline.kept, (0..dim - 2).collect::<Vec<_>>());
        assert!(a.iter().all(|row| row[dim - 1] == 0.0 && row[dim - 2] == 0.0));
        let largest = a.iter().flatten().fold(0.0f32, |m, w| m.max(w.abs()));
        assert!(largest < 10.0, "{a:?}");
        let test = blobs(40, dim, classes, 3);
        let linfa = pipeline.decision(&test);
        let mut correct = 0;
        for (i, row) in test.values.chunks(dim).enumerate() {
            let folded: Vec<f64> = (0..classes)
                .map(|k| {
                    f64::from(b[k]) + row.iter().zip(&a[k]).map(|(&x, &w)| f64::from(x) * f64::from(w)).sum::<f64>()
                })
                .collect();
            for k in 0..classes {
                let scale = linfa[i][k].abs().max(1.0);
                assert!(
                    (folded[k] - linfa[i][k]).abs() <= 1e-4 * scale,
                    "image {i} class {k}: {folded:?} vs {:?}",
                    linfa[i]
                );
            }
            correct += usize::from(argmax(&folded) == usize::from(test.labels[i]));
        }
        // Separable blobs: the head classifies them, so the comparison above is of a real fit.
        assert!(correct >= 38, "{correct} of 40");
    }

    #[test]
    fn too_many_components_is_an_error_not_a_panic() {
        let train = blobs(20, 4, 2, 1);
        let err = Pipeline::fit(&train, 5, &[1.0], &train, 2).err().unwrap();
        assert!(err.to_string().contains("pca = 5"), "{err}");
    }
}
