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

#[cfg(test)]
mod tests {
    use super::*;

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
