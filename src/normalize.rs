//! Per-position normalisation of vectors (parameters, latents). p-diff fed raw parameters and
//! let latents grow to ~100, which is where its whole-network generation collapsed; G2D works on
//! standardised vectors on both sides of the autoencoder.

use serde::{Deserialize, Serialize};

/// Per-position mean and standard deviation of a set of vectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalizer {
    /// Fits on `rows` vectors of equal length. A position whose spread is tiny gets the floor
    /// `1e-2 × median spread`, so that it is not blown up into noise.
    pub fn fit(rows: &[Vec<f32>]) -> Normalizer {
        let n = rows.len() as f64;
        let d = rows[0].len();
        let mut mean = vec![0.0f64; d];
        for r in rows {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += v as f64 / n;
            }
        }
        let mut var = vec![0.0f64; d];
        for r in rows {
            for ((s, &v), m) in var.iter_mut().zip(r).zip(&mean) {
                *s += (v as f64 - m).powi(2) / n;
            }
        }
        let mut std: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
        let mut sorted = std.clone();
        sorted.sort_by(f64::total_cmp);
        let floor = (sorted[d / 2] * 1e-2).max(1e-8);
        for s in &mut std {
            *s = s.max(floor);
        }
        Normalizer {
            mean: mean.into_iter().map(|v| v as f32).collect(),
            std: std.into_iter().map(|v| v as f32).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.mean.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    pub fn normalize(&self, x: &[f32]) -> Vec<f32> {
        x.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }

    /// Inverse of [`normalize`](Self::normalize) on a batch of row-major vectors.
    pub fn denormalize(&self, x: &[f32]) -> Vec<f32> {
        x.iter()
            .zip(self.mean.iter().zip(&self.std).cycle())
            .map(|(v, (m, s))| v * s + m)
            .collect()
    }
}

/// The mean of each collection run's checkpoints, for runs trained apart (`autoencoder.centre_runs`):
/// `rows` come run by run, `per_run` at a time (the last run may hold fewer).
pub fn run_centres(rows: &[Vec<f32>], per_run: usize) -> Vec<Vec<f32>> {
    rows.chunks(per_run.max(1))
        .map(|run| {
            let n = run.len() as f64;
            let mut mean = vec![0.0f64; run[0].len()];
            for r in run {
                for (m, &v) in mean.iter_mut().zip(r) {
                    *m += v as f64 / n;
                }
            }
            mean.into_iter().map(|v| v as f32).collect()
        })
        .collect()
}

/// `row − centre`, position by position.
pub fn minus(row: &[f32], centre: &[f32]) -> Vec<f32> {
    row.iter().zip(centre).map(|(v, c)| v - c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_centres_average_each_run_and_the_short_last_one() {
        let rows = vec![vec![1.0, 0.0], vec![3.0, 2.0], vec![10.0, -4.0]];
        let centres = run_centres(&rows, 2);
        assert_eq!(centres, vec![vec![2.0, 1.0], vec![10.0, -4.0]]);
        assert_eq!(minus(&rows[1], &centres[0]), vec![1.0, 1.0]);
    }

    #[test]
    fn normalize_then_denormalize_is_identity_and_standardises() {
        let rows = vec![
            vec![1.0, 10.0, 5.0],
            vec![3.0, 30.0, 5.0],
            vec![2.0, 20.0, 5.0],
        ];
        let n = Normalizer::fit(&rows);
        let z = n.normalize(&rows[1]);
        assert!((z[0] - 1.2247).abs() < 1e-3 && (z[1] - 1.2247).abs() < 1e-3);
        assert!(
            z[2].abs() < 1e-6,
            "a constant position maps to 0, not to noise"
        );
        let back = n.denormalize(&z);
        for (a, b) in back.iter().zip(&rows[1]) {
            assert!((a - b).abs() < 1e-4);
        }
    }
}
