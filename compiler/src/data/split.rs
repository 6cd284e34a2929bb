//! Deterministic stratified subsets and validation hold-outs.

use super::{Images, Rng};
use crate::spec::DataSpec;

/// Picks `n` of the indices `0..labels.len()` so that every class keeps its share
/// (largest-remainder rounding, ties to the lower class), at random within each class.
/// The result is sorted. `n >= labels.len()` returns every index.
pub fn stratified_sample(labels: &[u8], classes: usize, n: usize, rng: &mut Rng) -> Vec<usize> {
    let total = labels.len();
    if n >= total {
        return (0..total).collect();
    }
    let by_class = group_by_class(labels, classes);
    // Quota per class: floor of the exact share, then hand out the remainder to the classes
    // with the largest fractional parts.
    let mut quotas: Vec<usize> = by_class.iter().map(|c| c.len() * n / total).collect();
    let mut remainders: Vec<(usize, usize)> =
        by_class.iter().enumerate().map(|(k, c)| (c.len() * n % total, k)).collect();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let missing = n - quotas.iter().sum::<usize>();
    for &(_, k) in remainders.iter().take(missing) {
        quotas[k] += 1;
    }
    let mut chosen = Vec::with_capacity(n);
    for (mut members, quota) in by_class.into_iter().zip(quotas) {
        rng.shuffle(&mut members);
        chosen.extend_from_slice(&members[..quota.min(members.len())]);
    }
    chosen.sort_unstable();
    chosen
}

/// Splits `0..labels.len()` into `(train, validation)`, holding out `round(fraction * count)`
/// images of every class, chosen at random within the class. Both lists are sorted.
pub fn stratified_split(labels: &[u8], classes: usize, fraction: f64, rng: &mut Rng) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::with_capacity(labels.len());
    let mut validation = Vec::new();
    for mut members in group_by_class(labels, classes) {
        rng.shuffle(&mut members);
        let held = ((members.len() as f64 * fraction).round() as usize).min(members.len());
        validation.extend_from_slice(&members[..held]);
        train.extend_from_slice(&members[held..]);
    }
    train.sort_unstable();
    validation.sort_unstable();
    (train, validation)
}

fn group_by_class(labels: &[u8], classes: usize) -> Vec<Vec<usize>> {
    let mut by_class = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(c) = by_class.get_mut(usize::from(l)) {
            c.push(i);
        }
    }
    by_class
}

/// The images a training run uses.
#[derive(Clone, Debug)]
pub struct TrainingSplit {
    /// Images the optimizer sees.
    pub train: Images,
    /// Held-out images for validation loss/accuracy (none when `validation = 0`).
    pub validation: Option<Images>,
}

/// Applies `[data]` to the full training set: first `train_limit` (stratified, 0 = all), then
/// the stratified validation hold-out. Deterministic given `seed`; the limit and the split use
/// their own random streams.
pub fn prepare_training(images: &Images, data: &DataSpec, classes: usize, seed: u64) -> TrainingSplit {
    let limited;
    let pool = if data.train_limit > 0 && data.train_limit < images.n {
        let idx =
            stratified_sample(&images.labels, classes, data.train_limit, &mut Rng::for_stream(seed, "train_limit"));
        limited = images.subset(&idx);
        &limited
    } else {
        images
    };
    if data.validation <= 0.0 {
        return TrainingSplit { train: pool.clone(), validation: None };
    }
    let (train, validation) =
        stratified_split(&pool.labels, classes, data.validation, &mut Rng::for_stream(seed, "validation"));
    TrainingSplit { train: pool.subset(&train), validation: (!validation.is_empty()).then(|| pool.subset(&validation)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<u8> {
        // 100 of class 0, 60 of class 1, 20 of class 2, 20 of class 3, interleaved.
        let mut l = Vec::new();
        for i in 0..200u32 {
            l.push(match i % 10 {
                0..=4 => 0,
                5..=7 => 1,
                8 => 2,
                _ => 3,
            });
        }
        l
    }

    #[test]
    fn sample_keeps_class_shares_and_is_deterministic() {
        let l = labels();
        let a = stratified_sample(&l, 4, 20, &mut Rng::new(1));
        let b = stratified_sample(&l, 4, 20, &mut Rng::new(1));
        assert_eq!(a, b);
        assert_eq!(a.len(), 20);
        let mut counts = [0; 4];
        for &i in &a {
            counts[l[i] as usize] += 1;
        }
        assert_eq!(counts, [10, 6, 2, 2]);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        let c = stratified_sample(&l, 4, 20, &mut Rng::new(2));
        assert_ne!(a, c);
    }

    #[test]
    fn split_holds_out_each_class() {
        let l = labels();
        let (train, val) = stratified_split(&l, 4, 0.1, &mut Rng::new(5));
        assert_eq!(train.len() + val.len(), l.len());
        let mut counts = [0; 4];
        for &i in &val {
            counts[l[i] as usize] += 1;
        }
        assert_eq!(counts, [10, 6, 2, 2]);
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..l.len()).collect::<Vec<_>>());
    }
}
