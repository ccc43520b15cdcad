//! Stage 5, the numbers G2D is judged by: accuracy, distances to θ_orig, and p-diff's similarity
//! (intersection over union of the wrong predictions). All host-side, on read-back values.

use serde::{Deserialize, Serialize};

/// Mean absolute difference per parameter, ‖a − b‖₁ / n: comparable across scopes of any size.
pub fn l1_distance(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() as f64)
        .sum::<f64>()
        / a.len() as f64
}

/// Root-mean-square difference per parameter, ‖a − b‖₂ / √n.
pub fn l2_distance(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    (a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64)
        .sqrt()
}

/// Fraction of `predictions` equal to `labels`.
pub fn accuracy(predictions: &[u8], labels: &[u8]) -> f64 {
    assert_eq!(predictions.len(), labels.len());
    let right = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    right as f64 / labels.len().max(1) as f64
}

/// p-diff's similarity of two models: |wrong(a) ∩ wrong(b)| / |wrong(a) ∪ wrong(b)|.
pub fn wrong_iou(a: &[u8], b: &[u8], labels: &[u8]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for ((pa, pb), l) in a.iter().zip(b).zip(labels) {
        let (wa, wb) = (pa != l, pb != l);
        inter += (wa && wb) as usize;
        union += (wa || wb) as usize;
    }
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Fraction of inputs on which two models predict the same class.
pub fn agreement(a: &[u8], b: &[u8]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// A success rate `k / n` with its 95% Wilson score interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub successes: usize,
    pub n: usize,
    /// `successes / n` (0 when n = 0).
    pub rate: f64,
    /// Wilson's 95% interval for the underlying probability.
    pub ci95: [f64; 2],
}

impl Rate {
    /// z of a two-sided 95% interval.
    const Z: f64 = 1.959_963_984_540_054;

    pub fn wilson(successes: usize, n: usize) -> Rate {
        assert!(successes <= n, "{successes} successes out of {n}");
        if n == 0 {
            return Rate {
                successes,
                n,
                rate: 0.0,
                ci95: [0.0, 1.0],
            };
        }
        let (k, n_f, z) = (successes as f64, n as f64, Self::Z);
        let p = k / n_f;
        let denom = 1.0 + z * z / n_f;
        let center = (p + z * z / (2.0 * n_f)) / denom;
        let half = z / denom * (p * (1.0 - p) / n_f + z * z / (4.0 * n_f * n_f)).sqrt();
        Rate {
            successes,
            n,
            rate: p,
            ci95: [(center - half).max(0.0), (center + half).min(1.0)],
        }
    }

    /// Pools the counts of several rates.
    pub fn pooled(rates: &[Rate]) -> Rate {
        Rate::wilson(
            rates.iter().map(|r| r.successes).sum(),
            rates.iter().map(|r| r.n).sum(),
        )
    }

    /// `12.3% [10.1, 14.8]`.
    pub fn display_pct(&self) -> String {
        format!(
            "{:.1}% [{:.1}, {:.1}]",
            self.rate * 100.0,
            self.ci95[0] * 100.0,
            self.ci95[1] * 100.0
        )
    }
}

/// Best / mean / median / min of a set of figures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub best: f64,
    pub mean: f64,
    pub median: f64,
    pub min: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Summary {
        assert!(!values.is_empty(), "summary of nothing");
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Summary {
            best: sorted[n - 1],
            mean: sorted.iter().sum::<f64>() / n as f64,
            median,
            min: sorted[0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_per_parameter() {
        assert_eq!(l1_distance(&[0.0, 0.0], &[1.0, -3.0]), 2.0);
        assert!((l2_distance(&[0.0, 0.0], &[3.0, 4.0]) - (12.5f64).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn wrong_prediction_iou_counts_shared_mistakes() {
        let labels = [0, 1, 2, 3];
        let a = [0, 0, 0, 3]; // wrong on 1, 2
        let b = [0, 0, 2, 0]; // wrong on 1, 3
        assert!((wrong_iou(&a, &b, &labels) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(wrong_iou(&labels, &labels, &labels), 1.0);
        assert_eq!(accuracy(&a, &labels), 0.5);
        assert_eq!(agreement(&a, &b), 0.5);
    }

    #[test]
    fn summary_has_median_of_even_sets() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.best, s.mean, s.median, s.min), (4.0, 2.5, 2.5, 1.0));
    }

    #[test]
    fn wilson_interval_matches_known_counts() {
        let close = |r: Rate, lo: f64, hi: f64| {
            assert!(
                (r.ci95[0] - lo).abs() < 1e-4 && (r.ci95[1] - hi).abs() < 1e-4,
                "{r:?} vs [{lo}, {hi}]"
            );
        };
        close(Rate::wilson(80, 100), 0.7112, 0.8666);
        close(Rate::wilson(5, 10), 0.2366, 0.7634);
        close(Rate::wilson(0, 10), 0.0, 0.2775);
        close(Rate::wilson(10, 10), 0.7225, 1.0);
        assert_eq!(Rate::wilson(0, 0).ci95, [0.0, 1.0]);
        let pooled = Rate::pooled(&[Rate::wilson(3, 10), Rate::wilson(77, 90)]);
        assert_eq!((pooled.successes, pooled.n, pooled.rate), (80, 100, 0.8));
    }
}
