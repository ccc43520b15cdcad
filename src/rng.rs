//! Host-side randomness. Every random number the sampler uses is drawn here and uploaded, so
//! that one seed gives the same parameters on every backend (CPU, WebGPU) and platform.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A seeded generator of uniform and Gaussian numbers.
pub struct G2dRng {
    inner: StdRng,
}

impl G2dRng {
    pub fn seeded(seed: u64) -> Self {
        Self {
            inner: StdRng::seed_from_u64(seed),
        }
    }

    /// A generator seeded from the operating system, or the browser's crypto RNG on wasm.
    pub fn from_entropy() -> Self {
        let seed = getrandom::u64().expect("no entropy source (crypto.getRandomValues)");
        Self::seeded(seed)
    }

    /// A fresh seed for a child generator, so that stages do not share streams.
    pub fn next_seed(&mut self) -> u64 {
        self.inner.random()
    }

    pub fn uniform(&mut self) -> f32 {
        self.inner.random()
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.inner.random_range(0..n)
    }

    /// `n` standard normal samples (Box–Muller on the host RNG).
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            // 1 - u keeps the logarithm finite.
            let u1 = 1.0 - self.inner.random::<f64>();
            let u2 = self.inner.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let phi = std::f64::consts::TAU * u2;
            out.push((r * phi.cos()) as f32);
            out.push((r * phi.sin()) as f32);
        }
        out.truncate(n);
        out
    }

    /// Fisher–Yates shuffle of `items`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.inner.random_range(0..=i);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_stream() {
        let a = G2dRng::seeded(7).normal_vec(33);
        let b = G2dRng::seeded(7).normal_vec(33);
        assert_eq!(a, b);
        assert_ne!(a, G2dRng::seeded(8).normal_vec(33));
    }

    #[test]
    fn normal_samples_have_unit_moments() {
        let x = G2dRng::seeded(1).normal_vec(200_000);
        let mean = x.iter().sum::<f32>() / x.len() as f32;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / x.len() as f32;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
