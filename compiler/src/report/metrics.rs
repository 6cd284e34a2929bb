//! Classification metrics like scikit-learn's `accuracy_score`, `confusion_matrix` and
//! `classification_report`: per-class precision, recall, F1 and support, with macro and
//! support-weighted averages.
//!
//! Independent of burn and of how predictions were made, so the float model, the int8 model
//! on the host and the on-device runs are all scored by the same code. A class that is never
//! predicted has precision 0 (scikit-learn's `zero_division=0`), likewise for recall and F1.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Invalid input to [`Evaluation::from_predictions`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Labels and predictions differ in length.
    #[error("{labels} labels but {predictions} predictions")]
    LengthMismatch {
        /// Number of labels.
        labels: usize,
        /// Number of predictions.
        predictions: usize,
    },
    /// No sample at all.
    #[error("no samples to evaluate")]
    Empty,
    /// A label or prediction is not a class index.
    #[error("{what} #{index} is {value}, but there are only {classes} classes")]
    OutOfRange {
        /// `label` or `prediction`.
        what: &'static str,
        /// Sample index.
        index: usize,
        /// The value.
        value: u8,
        /// Number of classes.
        classes: usize,
    },
}

/// Scores of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class index (= label).
    pub class: usize,
    /// Class name (`"7"`, `"Ankle boot"`).
    pub name: String,
    /// TP / (TP + FP), 0 when the class is never predicted.
    pub precision: f64,
    /// TP / (TP + FN), 0 when the class never occurs.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
    /// Number of samples of this class.
    pub support: u64,
}

/// Averaged scores.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    /// Averaged precision.
    pub precision: f64,
    /// Averaged recall.
    pub recall: f64,
    /// Averaged F1.
    pub f1: f64,
    /// Total number of samples.
    pub support: u64,
}

/// The evaluation of a classifier on a labelled set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Number of samples.
    pub samples: u64,
    /// Correct predictions.
    pub correct: u64,
    /// `correct / samples`, in 0..=1.
    pub accuracy: f64,
    /// Class names, index = class.
    pub class_names: Vec<String>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// Per-class scores.
    pub per_class: Vec<ClassMetrics>,
    /// Unweighted mean over classes.
    pub macro_avg: Averages,
    /// Mean over classes weighted by support.
    pub weighted_avg: Averages,
}

impl Evaluation {
    /// Scores `predictions` against `labels`; the number of classes is `class_names.len()`.
    ///
    /// # Errors
    /// If the slices differ in length, are empty, or hold a value ≥ the number of classes.
    pub fn from_predictions(
        labels: &[u8],
        predictions: &[u8],
        class_names: &[String],
    ) -> Result<Evaluation, MetricsError> {
        if labels.len() != predictions.len() {
            return Err(MetricsError::LengthMismatch { labels: labels.len(), predictions: predictions.len() });
        }
        if labels.is_empty() {
            return Err(MetricsError::Empty);
        }
        let k = class_names.len();
        let mut confusion = vec![vec![0u64; k]; k];
        for (index, (&t, &p)) in labels.iter().zip(predictions).enumerate() {
            for (what, value) in [("label", t), ("prediction", p)] {
                if usize::from(value) >= k {
                    return Err(MetricsError::OutOfRange { what, index, value, classes: k });
                }
            }
            confusion[usize::from(t)][usize::from(p)] += 1;
        }
        Ok(Evaluation::from_confusion(confusion, class_names))
    }

    /// Scores a confusion matrix (`confusion[true][predicted]`), e.g. one summed over shards.
    /// The matrix must be square with `class_names.len()` rows.
    pub fn from_confusion(confusion: Vec<Vec<u64>>, class_names: &[String]) -> Evaluation {
        let k = confusion.len();
        let samples: u64 = confusion.iter().flatten().sum();
        let correct: u64 = (0..k).map(|i| confusion[i].get(i).copied().unwrap_or(0)).sum();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let tp = confusion[c].get(c).copied().unwrap_or(0);
                let support: u64 = confusion[c].iter().sum();
                let predicted: u64 = confusion.iter().map(|row| row.get(c).copied().unwrap_or(0)).sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
                ClassMetrics {
                    class: c,
                    name: class_names.get(c).cloned().unwrap_or_else(|| c.to_string()),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let avg = |weight: &dyn Fn(&ClassMetrics) -> f64| {
            let total: f64 = per_class.iter().map(weight).sum();
            let mean = |f: &dyn Fn(&ClassMetrics) -> f64| {
                if total == 0.0 { 0.0 } else { per_class.iter().map(|m| f(m) * weight(m)).sum::<f64>() / total }
            };
            Averages {
                precision: mean(&|m| m.precision),
                recall: mean(&|m| m.recall),
                f1: mean(&|m| m.f1),
                support: samples,
            }
        };
        let macro_avg = avg(&|_| 1.0);
        let weighted_avg = avg(&|m| m.support as f64);
        Evaluation {
            samples,
            correct,
            accuracy: ratio(correct, samples),
            class_names: class_names.to_vec(),
            confusion,
            per_class,
            macro_avg,
            weighted_avg,
        }
    }

    /// JSON object with the keys `test_accuracy` (0..1), `samples`, `correct`, `confusion`
    /// (rows = true class), `per_class` (list of `{class, name, precision, recall, f1,
    /// support}`), `macro_avg` and `weighted_avg` (`{precision, recall, f1, support}`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "test_accuracy": self.accuracy,
            "samples": self.samples,
            "correct": self.correct,
            "confusion": self.confusion,
            "per_class": self.per_class,
            "macro_avg": self.macro_avg,
            "weighted_avg": self.weighted_avg,
        })
    }

    fn row_label(&self, c: usize) -> String {
        let name = &self.per_class[c].name;
        if *name == c.to_string() { name.clone() } else { format!("{c} {name}") }
    }

    /// The confusion matrix as text (rows = true class, columns = predicted class).
    pub fn render_confusion(&self) -> String {
        let k = self.confusion.len();
        let labels: Vec<String> = (0..k).map(|c| self.row_label(c)).collect();
        let label_w = labels.iter().map(|l| l.len()).max().unwrap_or(0).max(4);
        let max = self.confusion.iter().flatten().copied().max().unwrap_or(0);
        let cell_w = max.to_string().len().max(k.saturating_sub(1).to_string().len()) + 1;
        let mut out = String::from("confusion matrix (rows = true class, columns = predicted):\n");
        let _ = write!(out, "{:label_w$} ", "");
        for c in 0..k {
            let _ = write!(out, "{c:>cell_w$}");
        }
        out.push('\n');
        for (c, row) in self.confusion.iter().enumerate() {
            let _ = write!(out, "{:<label_w$} ", labels[c]);
            for v in row {
                let _ = write!(out, "{v:>cell_w$}");
            }
            out.push('\n');
        }
        out
    }

    /// A scikit-learn style classification report (4 decimals).
    pub fn render_report(&self) -> String {
        let name_w = self.per_class.iter().map(|m| m.name.len()).chain([12]).max().unwrap_or(12);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>name_w$} {:>10} {:>10} {:>10} {:>10}\n",
            "", "precision", "recall", "f1-score", "support"
        );
        for m in &self.per_class {
            let _ = writeln!(
                out,
                "{:>name_w$} {:>10.4} {:>10.4} {:>10.4} {:>10}",
                m.name, m.precision, m.recall, m.f1, m.support
            );
        }
        out.push('\n');
        let _ =
            writeln!(out, "{:>name_w$} {:>10} {:>10} {:>10.4} {:>10}", "accuracy", "", "", self.accuracy, self.samples);
        for (name, a) in [("macro avg", self.macro_avg), ("weighted avg", self.weighted_avg)] {
            let _ = writeln!(
                out,
                "{:>name_w$} {:>10.4} {:>10.4} {:>10.4} {:>10}",
                name, a.precision, a.recall, a.f1, a.support
            );
        }
        out
    }

    /// Accuracy line, confusion matrix and classification report.
    pub fn render(&self) -> String {
        format!(
            "accuracy: {:.2}% ({}/{})\n\n{}\n{}",
            self.accuracy * 100.0,
            self.correct,
            self.samples,
            self.render_confusion(),
            self.render_report()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|c| c.to_string()).collect()
    }

    /// Hand-computed with scikit-learn's definitions (`classification_report(y_true, y_pred)`):
    /// y_true = [0,0,0,1,1,2,2,2,2,2], y_pred = [0,1,0,1,1,2,2,0,2,1]
    #[test]
    fn matches_scikit_learn() {
        let t = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2];
        let p = [0, 1, 0, 1, 1, 2, 2, 0, 2, 1];
        let e = Evaluation::from_predictions(&t, &p, &names(3)).unwrap();
        assert_eq!(e.confusion, vec![vec![2, 1, 0], vec![0, 2, 0], vec![1, 1, 3]]);
        assert!((e.accuracy - 0.7).abs() < 1e-12);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // precision: 2/3, 2/4, 3/3; recall: 2/3, 2/2, 3/5
        assert!(close(e.per_class[0].precision, 2.0 / 3.0));
        assert!(close(e.per_class[1].precision, 0.5));
        assert!(close(e.per_class[2].precision, 1.0));
        assert!(close(e.per_class[2].recall, 0.6));
        assert!(close(e.per_class[1].f1, 2.0 / 3.0));
        assert!(close(e.per_class[2].f1, 0.75));
        assert!(close(e.macro_avg.precision, (2.0 / 3.0 + 0.5 + 1.0) / 3.0));
        assert!(close(e.macro_avg.recall, (2.0 / 3.0 + 1.0 + 0.6) / 3.0));
        assert!(close(e.weighted_avg.f1, (3.0 * (2.0 / 3.0) + 2.0 * (2.0 / 3.0) + 5.0 * 0.75) / 10.0));
        assert_eq!(e.weighted_avg.support, 10);
        let json = e.to_json();
        assert_eq!(json["per_class"][2]["support"], 5);
        assert_eq!(json["confusion"][2][0], 1);
        assert!(e.render().contains("weighted avg"));
    }

    #[test]
    fn never_predicted_class_scores_zero() {
        let e = Evaluation::from_predictions(&[0, 1], &[0, 0], &names(3)).unwrap();
        assert_eq!(e.per_class[1].precision, 0.0);
        assert_eq!(e.per_class[1].f1, 0.0);
        assert_eq!(e.per_class[2].support, 0);
        assert!(e.render_report().contains("0.0000"));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            Evaluation::from_predictions(&[0], &[], &names(2)),
            Err(MetricsError::LengthMismatch { labels: 1, predictions: 0 })
        );
        assert_eq!(Evaluation::from_predictions(&[], &[], &names(2)), Err(MetricsError::Empty));
        assert!(matches!(
            Evaluation::from_predictions(&[0], &[5], &names(2)),
            Err(MetricsError::OutOfRange { what: "prediction", .. })
        ));
    }
}
