//! Drawing candidates from a search space: deterministic for a seed, without repeats, resampling
//! draws whose layers do not fit their input.

use std::collections::HashSet;

use super::{BlockChoice, Candidate, ConvParams, Params, SearchSpace};
use crate::data::Rng;
use crate::lower::budget;
use crate::search::candidate;
use crate::spec::{InvalidKind, ModelSpec, Padding, SpecError};

/// Consecutive draws that give no new, valid candidate before the space counts as exhausted.
const MAX_FUTILE_DRAWS: usize = 20_000;

impl SearchSpace {
    /// A deterministic sampler over this space.
    pub fn sampler(&self) -> Sampler<'_> {
        Sampler {
            space: self,
            rng: Rng::for_stream(self.seed, "search"),
            seen: HashSet::new(),
            drawn: 0,
            total_resampled: 0,
            total_repeats: 0,
        }
    }
}

/// Draws candidates in a fixed order given the seed: the same space and seed always give the
/// same sequence, so a resumed search continues where it stopped.
pub struct Sampler<'a> {
    space: &'a SearchSpace,
    rng: Rng,
    seen: HashSet<String>,
    drawn: usize,
    /// Draws whose layers did not fit, so far.
    pub total_resampled: usize,
    /// Draws that repeated an earlier candidate, so far.
    pub total_repeats: usize,
}

impl Sampler<'_> {
    /// The next new candidate that fits its input, or `None` when the space is exhausted
    /// (20,000 draws in a row gave nothing new).
    ///
    /// # Errors
    /// [`SpecError`] if a candidate is invalid for another reason than its shapes (a space the
    /// loader should have rejected).
    pub fn next_candidate(&mut self) -> Result<Option<Candidate>, SpecError> {
        let (mut resampled, mut repeats) = (0, 0);
        for _ in 0..MAX_FUTILE_DRAWS {
            let params = self.draw();
            let key = serde_json::to_string(&params).unwrap_or_default();
            if !self.seen.insert(key) {
                repeats += 1;
                self.total_repeats += 1;
                continue;
            }
            let trial = self.drawn + 1;
            let name = format!("{}-t{trial:03}", self.space.name);
            let text = candidate::render(self.space, &name, &params);
            let spec = match ModelSpec::parse(&text, &format!("<candidate {name}>")) {
                Ok(spec) => spec,
                Err(e)
                    if e.kind() == Some(InvalidKind::Inconsistent)
                        && e.key().is_some_and(|k| k.starts_with("layers")) =>
                {
                    resampled += 1;
                    self.total_resampled += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Ok(footprint) = budget::estimate(&spec) else {
                // Fits its input but not the blob format (e.g. a dimension too large): resample.
                resampled += 1;
                self.total_resampled += 1;
                continue;
            };
            self.drawn = trial;
            return Ok(Some(Candidate { trial, name, params, text, spec, footprint, resampled, repeats }));
        }
        Ok(None)
    }

    fn draw(&mut self) -> Params {
        let d = &self.space.dims;
        let rng = &mut self.rng;
        let conv_layers = d.conv_layers.pick(rng);
        let conv = (0..conv_layers)
            .map(|_| {
                let mut c = ConvParams {
                    filters: d.filters.pick(rng),
                    kernel: d.kernel.pick(rng),
                    stride: d.stride.pick(rng),
                    padding: d.padding.pick(rng),
                    pool: d.pool.pick(rng),
                    block: d.block.pick_varied(rng),
                };
                if c.block == BlockChoice::Residual {
                    c.padding = Padding::Same;
                }
                c
            })
            .collect();
        let dense_layers = d.dense_layers.pick(rng);
        let dense = (0..dense_layers).map(|_| d.units.pick(rng)).collect();
        Params {
            conv,
            dense,
            dropout: d.dropout.pick(rng),
            optimizer: d.optimizer.pick(rng),
            learning_rate: d.learning_rate.pick(rng),
            batch_size: d.batch_size.pick(rng),
            epochs: d.epochs.pick(rng),
            batchnorm: d.batchnorm.pick_varied(rng),
            head: d.head.pick_varied(rng),
        }
    }
}
