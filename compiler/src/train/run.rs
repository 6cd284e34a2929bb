//! The training loop.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use burn::tensor::Distribution;

use super::augment::augment_into;
use super::batch::{self, image_tensor, label_tensor};
use super::error::TrainError;
use super::model::Net;
use super::profile::{PhaseClock, Phases};
use super::progress::EpochProgress;
use super::resume::{Best, ResumeState};
use super::schedule::Scheduler;
use super::{EpochRecord, History, TrainOptions, TrainedModel, optim};
use crate::data::{Images, Rng, prepare_training};
use crate::spec::{Layer, ModelSpec};

/// Batches between two reads of the running loss and accuracy from the device (for the progress
/// bar and the divergence check).
const SYNC_EVERY: usize = 32;

/// burn-flex keeps its RNG in a process-wide global: one training at a time per process.
static TRAIN_LOCK: Mutex<()> = Mutex::new(());

/// Checks that `images` fit the model's input and classes.
pub(crate) fn check_images(spec: &ModelSpec, images: &Images) -> Result<(), TrainError> {
    let expected = (spec.input.height, spec.input.width, spec.input.channels);
    let got = (images.height, images.width, images.channels);
    if got != expected {
        return Err(TrainError::InputMismatch { expected, got });
    }
    if let Some((index, &label)) =
        images.labels.iter().enumerate().find(|&(_, &l)| usize::from(l) >= spec.input.classes)
    {
        return Err(TrainError::LabelOutOfRange { index, label, classes: spec.input.classes });
    }
    Ok(())
}

/// Draws, and drops, the dropout masks of `epochs` epochs of `n` images in batches of
/// `batch_size`: what the finished epochs took from burn's device RNG, so that a resumed run
/// draws the masks an uninterrupted run draws next.
///
/// burn's dropout draws one `Bernoulli(1 - rate)` value per element of its input (a layer with
/// rate 0 draws nothing), layer by layer in forward order, batch after batch; nothing else in an
/// epoch draws from the device RNG (shuffling and augmentation use mnistc's own generators,
/// which the saved state restores). On the CPU backend a tensor of `k` values takes `k`
/// consecutive draws whatever its shape, so a flat tensor of the same size takes the same.
fn skip_dropout_masks(
    spec: &ModelSpec,
    n: usize,
    batch_size: usize,
    epochs: usize,
    device: &burn::tensor::Device,
) -> Result<(), TrainError> {
    let masks: Vec<(usize, f64)> = spec
        .shapes()?
        .iter()
        .filter_map(|s| match s.layer {
            Layer::Dropout { rate } if rate > 0.0 => Some((s.output.len(), 1.0 - rate)),
            _ => None,
        })
        .collect();
    if masks.is_empty() {
        return Ok(());
    }
    for _ in 0..epochs {
        for start in (0..n).step_by(batch_size.max(1)) {
            let b = batch_size.min(n - start);
            for &(len, keep) in &masks {
                drop(Tensor::<1>::random([b * len], Distribution::Bernoulli(keep), device));
            }
        }
    }
    Ok(())
}

/// The network and optimizer of a saved state, loaded over freshly built ones.
fn restore(state: &ResumeState, net: &Net, optimizer: ModuleOptimizer) -> Result<(Net, ModuleOptimizer), String> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(state.net.clone())).map_err(|e| e.to_string())?;
    let net = net.clone().try_load_record(record).map_err(|e| e.to_string())?.refreeze();
    let optimizer = optimizer.from_bytes(Bytes::from_bytes_vec(state.optimizer.clone())).map_err(|e| e.to_string())?;
    Ok((net, optimizer))
}

/// burn's records of the network and optimizer, as bytes.
fn records(net: &Net, optimizer: &ModuleOptimizer) -> Result<(Vec<u8>, Vec<u8>), TrainError> {
    let save = |e: burn::store::RecordError| TrainError::SaveState(e.to_string());
    Ok((net.clone().into_record().into_bytes().map_err(save)?.to_vec(), optimizer.into_bytes().map_err(save)?.to_vec()))
}

pub(crate) fn run(spec: &ModelSpec, train_set: &Images, opts: &TrainOptions<'_>) -> Result<TrainedModel, TrainError> {
    check_images(spec, train_set)?;
    let t = &spec.train;
    let classes = spec.input.classes;
    let split = prepare_training(train_set, &spec.data, classes, t.seed);
    let data = &split.train;
    if data.n == 0 {
        return Err(TrainError::EmptyTrainingSet);
    }
    let plain = opts.device.burn_device()?;

    let _guard = TRAIN_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let run_start = Instant::now();
    let device = plain.clone().autodiff();
    device.seed(t.seed);
    let mut net = match super::pretrained::load(spec)? {
        Some(layers) => Net::from_pretrained(spec, &layers, &device)?,
        None => Net::init(spec, &device)?,
    };
    let mut optimizer = optim::build(t);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing((t.label_smoothing > 0.0).then_some(t.label_smoothing as f32))
        .init(&device);

    let (h, w, c) = (data.height, data.width, data.channels);
    let hw = data.image_len();
    let steps = data.n.div_ceil(t.batch_size);
    let mut scheduler = Scheduler::new(t.learning_rate, t.lr_schedule, t.epochs, steps);
    let mut order: Vec<usize> = (0..data.n).collect();
    let mut shuffle_rng = Rng::for_stream(t.seed, "shuffle");
    let mut augment_rng = Rng::for_stream(t.seed, "augment");
    let mut pixels = vec![0u8; t.batch_size.min(data.n) * hw];
    let mut labels = Vec::with_capacity(t.batch_size);

    let mut history = History {
        train_images: data.n,
        validation_images: split.validation.as_ref().map_or(0, |v| v.n),
        device: opts.device.name().to_string(),
        ..History::default()
    };
    let mut best: Option<Best> = None;
    let mut since_best = 0;
    let mut first_epoch = 0;
    let mut seconds_before = 0.0;
    if let Some(path) = opts.resume {
        let loaded = ResumeState::load(path, spec, data.n)
            .map_err(|e| e.to_string())
            .and_then(|s| s.map(|s| restore(&s, &net, optim::build(t)).map(|r| (s, r))).transpose());
        match loaded {
            Ok(Some((state, (n, o)))) => {
                (net, optimizer) = (n, o);
                scheduler.restore(&state.scheduler);
                shuffle_rng = Rng::from_state(state.shuffle_rng);
                augment_rng = Rng::from_state(state.augment_rng);
                order = state.order;
                best = state.best;
                since_best = state.since_best;
                first_epoch = state.epochs_done;
                skip_dropout_masks(spec, data.n, t.batch_size, first_epoch, &device)?;
                seconds_before = state.history.seconds;
                history = state.history;
                if opts.verbose {
                    eprintln!("resuming after epoch {first_epoch} of {} (state in {})", t.epochs, path.display());
                }
            }
            Ok(None) => {}
            Err(e) => {
                if opts.verbose {
                    eprintln!("warning: not resuming ({e}): training from the first epoch");
                }
            }
        }
    }
    let start_epoch = if history.stopped_early { t.epochs } else { first_epoch };

    for epoch in start_epoch..t.epochs {
        let epoch_start = Instant::now();
        shuffle_rng.shuffle(&mut order);
        let progress = EpochProgress::new(opts.progress, opts.verbose, (epoch + 1, t.epochs), steps, &history);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0u64, 0usize);
        let mut pending: Option<(Tensor<1>, Tensor<1, Int>)> = None;
        let mut pending_images = 0usize;
        let first_lr = scheduler.lr(epoch, 0);
        let mut phases = Phases::default();
        let mut clock = PhaseClock::new(opts.profile.then(|| device.clone()));
        for (step, chunk) in order.chunks(t.batch_size).enumerate() {
            let lr = scheduler.lr(epoch, step);
            let b = chunk.len();
            labels.clear();
            for (j, &i) in chunk.iter().enumerate() {
                let out = &mut pixels[j * hw..(j + 1) * hw];
                if t.augment.is_enabled() {
                    augment_into(data.image(i), (h, w, c), &t.augment, &mut augment_rng, out);
                } else {
                    out.copy_from_slice(data.image(i));
                }
                labels.push(data.labels[i]);
            }
            let x = image_tensor(&pixels[..b * hw], b, (h, w, c), &device);
            let y = label_tensor(&labels, &device);
            clock.mark(&mut phases.data);
            let logits = net.forward(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            // Loss and hits stay on the device and are read back every SYNC_EVERY batches: no
            // per-batch host round trip to stall a GPU.
            let batch_loss = loss.clone().detach().mul_scalar(b as f32);
            let batch_hits = logits.argmax(1).reshape([b]).equal(y).int().sum();
            pending = Some(match pending.take() {
                None => (batch_loss, batch_hits),
                Some((l, hits)) => (l.add(batch_loss), hits.add(batch_hits)),
            });
            pending_images += b;
            clock.mark(&mut phases.forward);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            clock.mark(&mut phases.backward);
            net = optimizer.step(lr, net, grads);
            clock.mark(&mut phases.optimizer);

            if (step + 1) % SYNC_EVERY == 0 || step + 1 == steps {
                if let Some((l, hits)) = pending.take() {
                    let total = l.into_scalar::<f32>();
                    if !total.is_finite() {
                        return Err(TrainError::Diverged {
                            epoch: epoch + 1,
                            batch: step + 1,
                            loss: total,
                            learning_rate: lr,
                        });
                    }
                    loss_sum += f64::from(total);
                    correct += hits.into_scalar::<i64>().max(0) as u64;
                    seen += pending_images;
                    pending_images = 0;
                }
                progress.update(step + 1, loss_sum / seen.max(1) as f64, correct as f64 / seen.max(1) as f64);
                clock.mark(&mut phases.metrics);
            }
        }

        let (val_loss, val_accuracy) = match &split.validation {
            Some(v) => {
                let inference = net.valid();
                let logits = batch::logits(&inference, v, &plain)?;
                let (l, a) = batch::loss_and_accuracy(&logits, &v.labels, classes);
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        clock.mark(&mut phases.validation);
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_accuracy,
            learning_rate: first_lr,
            seconds: epoch_start.elapsed().as_secs_f64(),
            phases,
        };
        progress.finish(&epoch_line(&record, t.epochs));
        history.epochs.push(record);
        scheduler.end_epoch(val_loss);

        if let Some(loss) = val_loss {
            if best.as_ref().is_none_or(|b| loss < b.loss) {
                // Keep a copy of the weights only when they may be restored.
                let layers = if t.early_stopping > 0 { Some(net.valid().export()?) } else { None };
                best = Some(Best { loss, epoch: epoch + 1, layers });
                since_best = 0;
            } else {
                since_best += 1;
            }
        }
        let stop_early = t.early_stopping > 0 && since_best >= t.early_stopping && epoch + 1 < t.epochs;
        history.stopped_early = stop_early;
        if let Some(path) = opts.resume {
            history.seconds = seconds_before + run_start.elapsed().as_secs_f64();
            let (net_record, optimizer_record) = records(&net, &optimizer)?;
            let state = ResumeState {
                training_key: spec.training_key_json(),
                train_images: data.n,
                epochs_done: epoch + 1,
                history: history.clone(),
                scheduler: scheduler.state(),
                shuffle_rng: shuffle_rng.state(),
                augment_rng: augment_rng.state(),
                order: order.clone(),
                best: best.clone(),
                since_best,
                net: net_record,
                optimizer: optimizer_record,
            };
            state.save(path, spec).map_err(|e| TrainError::SaveState(e.to_string()))?;
            let paused = opts.pause_after.is_some_and(|n| epoch + 1 - first_epoch >= n);
            if paused && !stop_early && epoch + 1 < t.epochs {
                return Err(TrainError::Paused { epochs_done: epoch + 1, epochs: t.epochs, path: path.to_path_buf() });
            }
        }
        if stop_early {
            if opts.verbose {
                eprintln!("early stopping: no validation-loss improvement for {since_best} epochs");
            }
            break;
        }
    }

    history.best_epoch = best.as_ref().map(|b| b.epoch);
    let layers = match best {
        Some(Best { epoch, layers: Some(layers), .. }) => {
            history.restored_best = true;
            if opts.verbose && epoch != history.epochs.len() {
                eprintln!("restoring the weights of epoch {epoch} (lowest validation loss)");
            }
            layers
        }
        _ => net.valid().export()?,
    };
    history.seconds = seconds_before + run_start.elapsed().as_secs_f64();
    if let Some(path) = opts.resume {
        // The run is over: a later run with the same key starts afresh (or is served by the cache).
        let _ = std::fs::remove_file(path);
    }
    Ok(TrainedModel { spec: spec.clone(), layers, history })
}

fn epoch_line(r: &EpochRecord, epochs: usize) -> String {
    let mut line = format!("epoch {}/{epochs}: loss {:.4} acc {:.2}%", r.epoch, r.train_loss, r.train_accuracy * 100.0);
    if let (Some(l), Some(a)) = (r.val_loss, r.val_accuracy) {
        line.push_str(&format!(" | val loss {l:.4} acc {:.2}%", a * 100.0));
    }
    line.push_str(&format!(" | lr {:.2e} | {:.1} s", r.learning_rate, r.seconds));
    line
}
