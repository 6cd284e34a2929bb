//! The pipeline of `mnistc build`, stage by stage:
//!
//! 1. [`lower::budget::estimate`]: `[target]` budgets from the architecture alone, before training;
//! 2. [`train_or_reuse`]: train with burn, or reuse the training cache (every member of an
//!    `[ensemble]` in turn);
//! 3. [`deploy`] = [`lower_trained`] (float plan — with an SVM head fitted on the trained
//!    features ([`train::svm_head`]) for `[head] type = "svm"`, and an ensemble's members' plans
//!    made one by [`float_plan`] — → calibration and int8 quantization → conv/pool fusion) → [`emit::write`]
//!    (arena plan and blob, once) → [`verify::on_device`] (the blob run by the runtime on the
//!    evaluation images);
//! 4. [`export::onnx`] of the same plan and [`report::inspect`] of the same blob.
//!
//! [`build`] runs them all and returns a [`Built`] that the CLI ([`crate::cli::build`]) only
//! writes and prints; `mnistc search` scores each trial with [`deploy`]; `mnistc train` calls
//! [`train_and_evaluate`].

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::{self, DataDir, DataError, FileDigest, Images, Split};
use crate::export::{self, onnx::OnnxError};
use crate::lower::budget::{self, EstimateError, Footprint, Overrun};
use crate::lower::emit::{self, Blob, BlobError};
use crate::lower::plan::{Plan, Precision};
use crate::lower::{self, LowerError};
use crate::quantize::{self, CalibrationError, QuantizeError};
use crate::report::mistakes::{self, Mistakes};
use crate::report::{self, inspect::Inspection, metrics::Evaluation};
use crate::spec::{HeadSpec, ModelSpec};
use crate::train::cache::Cache;
use crate::train::svm_head::{self, HeadError, SvmHeadReport};
use crate::train::{self, Checkpoint, Device, History, TrainError, TrainOptions};
use crate::verify::{self, on_device::OnDeviceError};

/// How many of the most confident mistakes a build report shows.
pub const MISTAKES: usize = 20;

/// How to build.
pub struct BuildOptions<'a> {
    /// Where the data sets are.
    pub data: DataDir,
    /// Where to train.
    pub device: Device,
    /// Training cache (`None`: always train, store nothing).
    pub cache: Option<Cache>,
    /// Progress bar and per-epoch lines during training.
    pub progress: bool,
    /// Wait for the device between training phases, for exact phase times on a GPU
    /// ([`crate::train::TrainOptions::profile`]).
    pub profile: bool,
    /// Stop a training after this many epochs of this run, its state saved in the cache, with
    /// [`crate::train::TrainError::Paused`] (needs the cache).
    pub pause_after: Option<usize>,
    /// Where to log what happens (stderr for the CLI).
    pub log: &'a mut dyn Write,
}

/// How the trained weights were obtained.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainingInfo {
    /// Reused from the cache instead of training.
    pub cached: bool,
    /// The cache entry (read or written).
    pub cache_path: Option<PathBuf>,
    /// The training key (SHA-256).
    pub key: String,
    /// Epochs trained.
    pub epochs: usize,
    /// Wall time of the training (of the original run when cached), seconds.
    pub seconds: f64,
    /// Mean seconds per epoch.
    pub mean_epoch_seconds: f64,
}

/// One network of an `[ensemble]`, as the build trained and evaluated it.
#[derive(Debug, Clone)]
pub struct MemberReport {
    /// The member's `[train]` seed.
    pub seed: u64,
    /// How its weights were obtained.
    pub training: TrainingInfo,
    /// The member alone, float, on the test set.
    pub float_eval: Evaluation,
}

/// Everything a build produced.
pub struct Built {
    /// The spec (overrides applied).
    pub spec: ModelSpec,
    /// The lowered plan written to the blob.
    pub plan: Plan,
    /// The blob.
    pub blob: Blob,
    /// The same plan as ONNX.
    pub onnx: Vec<u8>,
    /// What the blob holds, read back through the runtime.
    pub inspection: Inspection,
    /// Flash, arena, MACs.
    pub footprint: Footprint,
    /// Float model on the test set.
    pub float_eval: Evaluation,
    /// The blob run by the runtime on the test set.
    pub device_eval: Evaluation,
    /// The test images the blob gets wrong with the highest confidence ([`MISTAKES`] at most).
    pub mistakes: Mistakes,
    /// How the weights were obtained (an ensemble's first member's).
    pub training: TrainingInfo,
    /// An `[ensemble]`'s members, each alone (empty for a single network).
    pub members: Vec<MemberReport>,
    /// The per-epoch record of the training (of the original run when cached; an ensemble's
    /// first member's).
    pub history: History,
    /// Calibration images (int8 only).
    pub calibration_images: usize,
    /// `[head] type = "svm"`: how each network's SVM head was fitted (one per ensemble member),
    /// and the trained softmax head's float accuracy beside it; `None` for the softmax head.
    pub head: Option<HeadReport>,
}

/// An SVM head's fits and what the network's own head scored.
#[derive(Debug, Clone)]
pub struct HeadReport {
    /// Each network's SVM head (one per ensemble member).
    pub svm: Vec<SvmHeadReport>,
    /// The trained network's softmax head, float, on the test set (the SVM head replaces it);
    /// `None` for an ensemble (its members' are in [`Built::members`]).
    pub softmax_float_eval: Option<Evaluation>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec cannot be lowered (budget estimate).
    #[error(transparent)]
    Estimate(#[from] EstimateError),
    /// `[target]` budgets are exceeded (exit code 1).
    #[error("{}", .0.iter().map(|o| o.to_string()).collect::<Vec<_>>().join("; "))]
    Budget(Vec<Overrun>),
    /// Data files are missing or malformed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Lowering failed.
    #[error(transparent)]
    Lower(#[from] LowerError),
    /// Calibration failed.
    #[error(transparent)]
    Calibrate(#[from] CalibrationError),
    /// Quantization failed.
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    /// The plan does not fit the blob format.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Running the blob failed.
    #[error(transparent)]
    OnDevice(#[from] OnDeviceError),
    /// The metrics could not be computed.
    #[error(transparent)]
    Metrics(#[from] crate::report::metrics::MetricsError),
    /// The ONNX export failed.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// The SVM head could not be fitted.
    #[error(transparent)]
    Head(#[from] HeadError),
}

impl BuildError {
    /// Whether the error is the user's input (exit 2) rather than a failed check (exit 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            BuildError::Budget(_) | BuildError::OnDevice(_) | BuildError::Metrics(_) | BuildError::Onnx(_) => false,
            BuildError::Train(e) => e.is_bad_input(),
            _ => true,
        }
    }
}

/// SHA-256 of what the blob was built from: the training-relevant spec, its `[quantize]`
/// section and the data files' digests (not the spec's path, so the same spec anywhere gives
/// the same bytes).
pub fn source_hash(spec: &ModelSpec, digests: &[FileDigest]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(spec.training_key_json().as_bytes());
    h.update(serde_json::to_string(&spec.quantize).unwrap_or_default().as_bytes());
    if !spec.head.is_softmax() {
        h.update(serde_json::to_string(&spec.head).unwrap_or_default().as_bytes());
    }
    for d in digests {
        h.update(d.file.as_bytes());
        h.update(d.sha256.as_bytes());
    }
    h.finalize().into()
}

/// `n` training images spread evenly over the training set (deterministic).
pub fn calibration_images(train_set: &Images, n: usize) -> Images {
    let n = n.clamp(1, train_set.n.max(1));
    let indices: Vec<usize> = (0..n).map(|i| i * train_set.n / n).collect();
    train_set.subset(&indices)
}

/// A trained model as the device gets it.
pub struct Deployed {
    /// The lowered plan written to the blob.
    pub plan: Plan,
    /// Calibration images (int8 only).
    pub calibration_images: usize,
    /// The blob (with its arena plan and footprint).
    pub blob: Blob,
    /// The blob run by the runtime on the evaluation images.
    pub eval: Evaluation,
    /// The blob's prediction for each evaluation image.
    pub predictions: Vec<u8>,
    /// What the blob holds, read back through the same runtime view.
    pub inspection: Inspection,
}

/// Lowers a trained model ([`lower_trained`], calibrated on `train_set`), writes its blob and
/// runs that blob with the runtime on `eval_set`: what `mnistc build` reports and what a search
/// trial scores.
///
/// # Errors
/// [`BuildError`] if lowering, writing, loading or running the blob fails.
pub fn deploy(
    spec: &ModelSpec,
    model: &train::TrainedModel,
    train_set: &Images,
    eval_set: &Images,
    source_hash: [u8; 32],
) -> Result<Deployed, BuildError> {
    deploy_float(spec, lower::float_plan(model, source_hash)?, train_set, eval_set)
}

/// [`deploy`] of an unfused float plan (one network's, or an ensemble's).
///
/// # Errors
/// As [`deploy`].
pub fn deploy_float(
    spec: &ModelSpec,
    float: Plan,
    train_set: &Images,
    eval_set: &Images,
) -> Result<Deployed, BuildError> {
    let (plan, calibration_images) = lower_float(spec, float, train_set)?;
    let blob = emit::write(&plan)?;
    let (eval, predictions, inspection) = {
        let device = blob.model();
        let predictions = verify::on_device::predictions(&device, eval_set)?;
        let names: Vec<String> = (0..device.output_len()).map(|i| device.class_name(i).to_string()).collect();
        let eval = Evaluation::from_predictions(&eval_set.labels, &predictions, &names)?;
        (eval, predictions, report::inspect::inspect(&device))
    };
    Ok(Deployed { plan, calibration_images, blob, eval, predictions, inspection })
}

/// Lowers a trained model to the plan of `spec`'s `[quantize]` precision (fused, ready to write).
/// `spec` may differ from the model's own spec in `name`, `[quantize]` and `[target]` (what the
/// training cache ignores).
///
/// # Errors
/// [`BuildError`] if lowering, calibration or quantization fails.
pub fn lower_trained(
    spec: &ModelSpec,
    model: &train::TrainedModel,
    train_set: &Images,
    source_hash: [u8; 32],
) -> Result<(Plan, usize), BuildError> {
    lower_float(spec, lower::float_plan(model, source_hash)?, train_set)
}

/// The float plan of `models` (one network, or an `[ensemble]`'s members in order, averaged by
/// [`lower::ensemble`](mod@lower::ensemble)), named after `spec`, unfused. With
/// `[head] type = "svm"`, each network's last dense layer is first replaced by its SVM head,
/// fitted on the network's features of `train_set` (its training split); the fits are returned
/// (none for the softmax head).
///
/// # Errors
/// [`BuildError::Lower`] if a model's weights do not match its spec, [`BuildError::Head`] if an
/// SVM head cannot be fitted.
pub fn float_plan(
    spec: &ModelSpec,
    models: &[&train::TrainedModel],
    source_hash: [u8; 32],
    train_set: &Images,
) -> Result<(Plan, Vec<SvmHeadReport>), BuildError> {
    let mut plans = models.iter().map(|m| lower::float_plan(m, source_hash)).collect::<Result<Vec<_>, _>>()?;
    let mut fits = Vec::new();
    if let HeadSpec::Svm(head) = &spec.head {
        for (plan, member) in plans.iter_mut().zip(spec.members()) {
            fits.push(svm_head::fit(head, &member, plan, train_set)?.report);
        }
    }
    let mut plan = if plans.len() == 1 { plans.remove(0) } else { lower::ensemble::ensemble(plans)? };
    plan.name = spec.name.clone();
    Ok((plan, fits))
}

/// Lowers an unfused float plan to `spec`'s `[quantize]` precision, calibrating int8 on
/// `train_set`, and fuses it; also returns the number of calibration images.
fn lower_float(spec: &ModelSpec, mut float: Plan, train_set: &Images) -> Result<(Plan, usize), BuildError> {
    float.name = spec.name.clone();
    Ok(match lower::precision(spec.quantize.precision) {
        Precision::F32 => (lower::fuse(float), 0),
        Precision::F16 => (lower::fuse(lower::to_f16(float)), 0),
        Precision::Int8 => {
            let images = calibration_images(train_set, spec.quantize.calibration);
            let ranges = quantize::calibrate(&float, &images.pixels, spec.quantize.method)?;
            (lower::fuse(quantize::quantize(&float, &ranges)?), images.n)
        }
    })
}

/// Trains `spec` on `train_set`, or reuses the cached training of the same spec and data.
///
/// # Errors
/// [`BuildError::Train`] if training fails.
pub fn train_or_reuse(
    spec: &ModelSpec,
    train_set: &Images,
    digests: &[FileDigest],
    opts: &mut BuildOptions<'_>,
) -> Result<(Checkpoint, TrainingInfo), BuildError> {
    let key = Cache::key(spec, digests);
    let cached = opts.cache.as_ref().and_then(|c| c.load(spec, digests).map(|ckpt| (ckpt, c.path(&key))));
    let (checkpoint, cached, cache_path) = match cached {
        Some((ckpt, path)) => {
            let _ = writeln!(opts.log, "reusing the training cached in {}", path.display());
            (ckpt, true, Some(path))
        }
        None => {
            let _ = writeln!(
                opts.log,
                "training {} on {} for {} epochs on {}",
                spec.name,
                spec.data.dataset.name(),
                spec.train.epochs,
                opts.device
            );
            let resume = opts.cache.as_ref().map(|c| c.resume_path(&key));
            let model = train::train(spec, train_set, &train_options(opts, resume.as_deref()))?;
            let ckpt = Checkpoint::new(model, digests.to_vec(), None);
            let path = store_in_cache(spec, &ckpt, opts);
            (ckpt, false, path)
        }
    };
    let history = &checkpoint.model.history;
    let training = TrainingInfo {
        cached,
        cache_path,
        key,
        epochs: history.epochs.len(),
        seconds: history.seconds,
        mean_epoch_seconds: history.mean_epoch_seconds(),
    };
    Ok((checkpoint, training))
}

/// The training options of a build with `opts`, saving its state after every epoch at `resume`.
fn train_options<'a>(opts: &BuildOptions<'_>, resume: Option<&'a Path>) -> TrainOptions<'a> {
    TrainOptions {
        device: opts.device,
        progress: opts.progress,
        verbose: opts.progress,
        profile: opts.profile,
        resume,
        pause_after: opts.pause_after,
    }
}

/// Stores `checkpoint` in the cache of `opts` (a failure is only a warning in the log).
fn store_in_cache(spec: &ModelSpec, checkpoint: &Checkpoint, opts: &mut BuildOptions<'_>) -> Option<PathBuf> {
    match opts.cache.as_ref()?.store(spec, &checkpoint.data_digests, checkpoint) {
        Ok(p) => Some(p),
        Err(e) => {
            let _ = writeln!(opts.log, "warning: could not store the training in the cache: {e}");
            None
        }
    }
}

/// What `mnistc train` produces: a freshly trained checkpoint and its float test evaluation.
pub struct TrainedRun {
    /// The checkpoint (with the test evaluation).
    pub checkpoint: Checkpoint,
    /// Float accuracy on the test set.
    pub test: Evaluation,
}

/// Trains `spec` (never from the cache), evaluates it on the test set and stores it in the
/// cache of `opts` so that a later build reuses it: `mnistc train`.
///
/// # Errors
/// [`BuildError::Data`] or [`BuildError::Train`].
pub fn train_and_evaluate(spec: &ModelSpec, opts: &mut BuildOptions<'_>) -> Result<TrainedRun, BuildError> {
    let dataset = spec.data.dataset;
    data::download::ensure(&opts.data, dataset, opts.progress, opts.log)?;
    let train_set = data::load(&opts.data, dataset, Split::Train)?;
    let test_set = data::load(&opts.data, dataset, Split::Test)?;
    let digests = data::file_digests(&opts.data, dataset)?;
    let _ = writeln!(
        opts.log,
        "training {} on {} ({} training images{}) for {} epochs on {}",
        spec.name,
        dataset,
        if spec.data.train_limit > 0 { spec.data.train_limit.min(train_set.n) } else { train_set.n },
        if spec.data.validation > 0.0 {
            format!(", {:.0}% held out for validation", spec.data.validation * 100.0)
        } else {
            String::new()
        },
        spec.train.epochs,
        opts.device
    );
    let resume = opts.cache.as_ref().map(|c| c.resume_path(&Cache::key(spec, &digests)));
    let model = train::train(spec, &train_set, &train_options(opts, resume.as_deref()))?;
    let test = train::evaluate(&model, &test_set, opts.device)?;
    let checkpoint = Checkpoint::new(model, digests, Some(test.clone()));
    store_in_cache(spec, &checkpoint, opts);
    Ok(TrainedRun { checkpoint, test })
}

/// Builds `spec`: budgets, training (or the cached training), quantization, blob, evaluations,
/// ONNX and the inspection of the blob.
///
/// # Errors
/// [`BuildError`]; [`BuildError::Budget`] when `[target]` is exceeded (before training when the
/// architecture alone exceeds it).
pub fn build(spec: &ModelSpec, opts: &mut BuildOptions<'_>) -> Result<Built, BuildError> {
    let estimate = budget::estimate(spec)?;
    let over = budget::overruns(&spec.target, &estimate);
    if !over.is_empty() {
        return Err(BuildError::Budget(over));
    }
    let dataset = spec.data.dataset;
    data::download::ensure(&opts.data, dataset, opts.progress, opts.log)?;
    let train_set = data::load(&opts.data, dataset, Split::Train)?;
    let test_set = data::load(&opts.data, dataset, Split::Test)?;
    let digests = data::file_digests(&opts.data, dataset)?;
    let members = spec.members();
    let mut trained = Vec::with_capacity(members.len());
    for member in &members {
        trained.push(train_or_reuse(member, &train_set, &digests, opts)?);
    }
    let hash = source_hash(spec, &digests);
    let models: Vec<&train::TrainedModel> = trained.iter().map(|(c, _)| &c.model).collect();
    let (float, fits) = float_plan(spec, &models, hash, &train_set)?;
    let mut float_evals = Vec::with_capacity(trained.len());
    for (checkpoint, _) in &trained {
        float_evals.push(match &checkpoint.test {
            Some(e) if e.samples as usize == test_set.n => e.clone(),
            _ => train::evaluate(&checkpoint.model, &test_set, opts.device)?,
        });
    }
    let float_eval = if members.len() == 1 && fits.is_empty() {
        float_evals[0].clone()
    } else {
        // The members' averaged logits, or the SVM head's scores, in f32: the float plan, run by
        // the runtime.
        let blob = emit::write(&lower::fuse(float.clone()))?;
        let predictions = verify::on_device::predictions(&blob.model(), &test_set)?;
        Evaluation::from_predictions(&test_set.labels, &predictions, &spec.data.dataset.class_names())?
    };
    let head = (!fits.is_empty())
        .then(|| HeadReport { svm: fits, softmax_float_eval: (members.len() == 1).then(|| float_evals[0].clone()) });
    let members_report = if members.len() == 1 {
        Vec::new()
    } else {
        members
            .iter()
            .zip(&trained)
            .zip(float_evals)
            .map(|((m, (_, info)), float_eval)| MemberReport { seed: m.train.seed, training: info.clone(), float_eval })
            .collect()
    };
    let Deployed { plan, calibration_images, blob, eval: device_eval, predictions, inspection } =
        deploy_float(spec, float, &train_set, &test_set)?;
    let mistakes = mistakes::most_confident(&blob.model(), &test_set, &predictions, MISTAKES)
        .map_err(|e| BuildError::OnDevice(e.into()))?;
    let footprint = blob.footprint();
    let over = budget::overruns(&spec.target, &footprint);
    if !over.is_empty() {
        return Err(BuildError::Budget(over));
    }
    let onnx = export::onnx::export(&plan)?;
    Ok(Built {
        spec: spec.clone(),
        plan,
        blob,
        onnx,
        inspection,
        footprint,
        float_eval,
        device_eval,
        mistakes,
        training: trained[0].1.clone(),
        members: members_report,
        history: trained[0].0.model.history.clone(),
        calibration_images,
        head,
    })
}
