//! Ranking the trials, the Pareto front (int8 validation accuracy up, flash down, arena down)
//! and the result tables (markdown and CSV).

use std::fmt::Write as _;

use super::journal::{Status, TrialRecord};

/// A trial in the ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked<'a> {
    /// 1-based rank among the trained trials (`None` for over-budget and failed trials).
    pub rank: Option<usize>,
    /// On the Pareto front of the trained trials.
    pub pareto: bool,
    /// The best trial under budget (rank 1).
    pub best: bool,
    /// The trial.
    pub record: &'a TrialRecord,
}

/// Whether `a` dominates `b`: at least as accurate (int8, validation), at most as much flash
/// and arena, and strictly better in one of them.
pub fn dominates(a: &TrialRecord, b: &TrialRecord) -> bool {
    let (Some(x), Some(y)) = (a.val_accuracy_int8, b.val_accuracy_int8) else {
        return false;
    };
    let no_worse = x >= y && a.flash_bytes <= b.flash_bytes && a.arena_bytes <= b.arena_bytes;
    let better = x > y || a.flash_bytes < b.flash_bytes || a.arena_bytes < b.arena_bytes;
    no_worse && better
}

/// For each record: whether it is a trained trial that no other trained trial dominates.
pub fn pareto_front(records: &[TrialRecord]) -> Vec<bool> {
    records
        .iter()
        .map(|r| r.status == Status::Trained && !records.iter().any(|o| o.status == Status::Trained && dominates(o, r)))
        .collect()
}

/// Trained trials first, by int8 validation accuracy (then float accuracy, smaller flash,
/// smaller arena, earlier trial); then failed and over-budget trials in trial order.
pub fn rank(records: &[TrialRecord]) -> Vec<Ranked<'_>> {
    let front = pareto_front(records);
    let mut order: Vec<usize> = (0..records.len()).collect();
    let key = |r: &TrialRecord| match r.status {
        Status::Trained => 0,
        Status::Failed => 1,
        Status::OverBudget => 2,
    };
    order.sort_by(|&i, &j| {
        let (a, b) = (&records[i], &records[j]);
        key(a)
            .cmp(&key(b))
            .then_with(|| b.val_accuracy_int8.unwrap_or(-1.0).total_cmp(&a.val_accuracy_int8.unwrap_or(-1.0)))
            .then_with(|| b.val_accuracy_float.unwrap_or(-1.0).total_cmp(&a.val_accuracy_float.unwrap_or(-1.0)))
            .then(a.flash_bytes.cmp(&b.flash_bytes))
            .then(a.arena_bytes.cmp(&b.arena_bytes))
            .then(a.trial.cmp(&b.trial))
    });
    let mut next_rank = 0;
    order
        .into_iter()
        .map(|i| {
            let record = &records[i];
            let rank = (record.status == Status::Trained).then(|| {
                next_rank += 1;
                next_rank
            });
            Ranked { rank, pareto: front[i], best: rank == Some(1), record }
        })
        .collect()
}

fn percent(v: Option<f64>) -> String {
    v.map(|a| format!("{:.2}", a * 100.0)).unwrap_or_default()
}

fn optimizer_cell(r: &TrialRecord) -> &'static str {
    r.params.optimizer.name()
}

/// The ranking as a markdown table (with a legend line above it).
pub fn markdown(ranked: &[Ranked<'_>]) -> String {
    let mut s = String::from(
        "| rank | trial | Pareto | val int8 % | val float % | flash B | arena B | MACs | weights | conv layers | dense \
         | dropout | optimizer | lr | batch | epochs | train s | status |\n\
         |---:|---|:---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|---:|---:|---:|---:|---|\n",
    );
    for r in ranked {
        let t = r.record;
        let status = match t.status {
            Status::Trained if r.best => "**best**".to_string(),
            Status::Trained => "trained".to_string(),
            Status::OverBudget => format!("over budget ({})", t.over_budget.join(", ")),
            Status::Failed => format!("failed: {}", t.error.as_deref().unwrap_or("?")).replace('|', "/"),
        };
        let conv = t.params.conv_summary();
        let dense = t.params.dense_summary();
        // `writeln!` into a String cannot fail.
        let _ = writeln!(
            s,
            "| {} | t{:03} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {status} |",
            r.rank.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            t.trial,
            if r.pareto { "*" } else { "" },
            percent(t.val_accuracy_int8),
            percent(t.val_accuracy_float),
            t.flash_bytes,
            t.arena_bytes,
            t.macs,
            t.weights,
            if conv.is_empty() { "-".to_string() } else { conv },
            if dense.is_empty() { "-".to_string() } else { dense },
            t.params.dropout,
            optimizer_cell(t),
            t.params.learning_rate,
            t.params.batch_size,
            t.params.epochs,
            if t.status == Status::OverBudget { String::new() } else { format!("{:.1}", t.train_seconds) },
        );
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

/// The ranking as CSV, one row per trial. `conv` lists the conv layers as
/// `filters:kernel:stride:padding:pool` separated by `|`; `dense_units` the hidden dense
/// layers separated by `|`.
pub fn csv(ranked: &[Ranked<'_>]) -> String {
    let mut s = String::from(
        "rank,trial,name,status,pareto,best,val_accuracy_int8,val_accuracy_float,flash_bytes,arena_bytes,macs,weights,\
         conv_layers,conv,dense_layers,dense_units,dropout,optimizer,learning_rate,batch_size,epochs,train_seconds,\
         over_budget,error\n",
    );
    for r in ranked {
        let t = r.record;
        let p = &t.params;
        let conv: Vec<String> = p
            .conv
            .iter()
            .map(|c| {
                let padding = if c.padding == crate::spec::Padding::Same { "same" } else { "valid" };
                let pool = match c.pool {
                    super::space::PoolChoice::Max => "max",
                    super::space::PoolChoice::Avg => "avg",
                    super::space::PoolChoice::None => "none",
                };
                format!("{}:{}:{}:{padding}:{pool}", c.filters, c.kernel, c.stride)
            })
            .collect();
        let dense: Vec<String> = p.dense.iter().map(usize::to_string).collect();
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.rank.map(|n| n.to_string()).unwrap_or_default(),
            t.trial,
            csv_field(&t.name),
            t.status.name(),
            r.pareto,
            r.best,
            opt(t.val_accuracy_int8),
            opt(t.val_accuracy_float),
            t.flash_bytes,
            t.arena_bytes,
            t.macs,
            t.weights,
            p.conv.len(),
            conv.join("|"),
            p.dense.len(),
            dense.join("|"),
            p.dropout,
            p.optimizer.name(),
            p.learning_rate,
            p.batch_size,
            p.epochs,
            t.train_seconds,
            t.over_budget.join("|"),
            csv_field(t.error.as_deref().unwrap_or("")),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::space::{OptimizerChoice, Params};

    fn record(trial: usize, acc: Option<f64>, flash: u64, arena: u64) -> TrialRecord {
        TrialRecord {
            trial,
            name: format!("s-t{trial:03}"),
            status: if acc.is_some() { Status::Trained } else { Status::OverBudget },
            params: Params {
                conv: vec![],
                dense: vec![],
                dropout: 0.0,
                optimizer: OptimizerChoice::Adam,
                learning_rate: 1e-3,
                batch_size: 32,
                epochs: 1,
                batchnorm: false,
                head: Default::default(),
            },
            val_accuracy_float: acc,
            val_accuracy_int8: acc,
            flash_bytes: flash,
            arena_bytes: arena,
            macs: 0,
            weights: 0,
            over_budget: if acc.is_some() { vec![] } else { vec!["flash".into()] },
            error: None,
            epochs_trained: 1,
            train_images: 1,
            validation_images: 1,
            train_seconds: 0.0,
            seconds: 0.0,
            resampled: 0,
            repeats: 0,
        }
    }

    #[test]
    fn front_and_ranking() {
        let records = vec![
            record(1, Some(0.90), 1000, 500), // dominated by 3
            record(2, Some(0.95), 5000, 500), // most accurate
            record(3, Some(0.92), 900, 400),  // small and fairly accurate
            record(4, None, 100, 100),        // over budget: never on the front
            record(5, Some(0.92), 900, 400),  // ties with 3: neither dominates
        ];
        assert_eq!(pareto_front(&records), vec![false, true, true, false, true]);
        let ranked = rank(&records);
        let order: Vec<usize> = ranked.iter().map(|r| r.record.trial).collect();
        assert_eq!(order, vec![2, 3, 5, 1, 4]);
        assert!(ranked[0].best && !ranked[1].best);
        assert_eq!(ranked[4].rank, None);
        let md = markdown(&ranked);
        assert_eq!(md.lines().count(), 2 + records.len());
        assert!(md.contains("over budget (flash)"));
        let csv = csv(&ranked);
        assert_eq!(csv.lines().count(), 1 + records.len());
        assert!(csv.lines().nth(1).unwrap().starts_with("1,2,s-t002,trained,true,true,"));
    }
}
