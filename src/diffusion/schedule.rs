//! The DDPM noise schedule. It lives on the host as `f64` constants: samplers turn it into
//! per-step scalars, so no schedule value is ever read back from the device.

use burn::prelude::*;

use crate::error::{ensure_range, G2dError, Result};

/// DDPM's linear β schedule.
#[derive(Config, Debug, PartialEq)]
pub struct ScheduleConfig {
    #[config(default = 1000)]
    pub timesteps: usize,
    #[config(default = 1e-4)]
    pub beta_start: f64,
    #[config(default = 2e-2)]
    pub beta_end: f64,
}

impl ScheduleConfig {
    /// 2 to 10,000 timesteps and `0 < beta_start < beta_end < 1`; errors name `prefix.field`.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        ensure_range(&format!("{prefix}.timesteps"), self.timesteps, 2, 10_000)?;
        let (start, end) = (self.beta_start, self.beta_end);
        if !(start > 0.0 && start < end && end < 1.0) {
            return Err(G2dError::config(
                format!("{prefix}.beta_start / beta_end"),
                format!("need 0 < beta_start < beta_end < 1, got {start} and {end}"),
            ));
        }
        Ok(())
    }
}

/// β_t, α_t = 1 − β_t and ᾱ_t = ∏_{s≤t} α_s for t = 0 … T−1.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub betas: Vec<f64>,
    pub alpha_bars: Vec<f64>,
}

impl Schedule {
    pub fn new(config: &ScheduleConfig) -> Schedule {
        let t = config.timesteps;
        let betas: Vec<f64> = (0..t)
            .map(|i| {
                let frac = if t > 1 {
                    i as f64 / (t - 1) as f64
                } else {
                    0.0
                };
                config.beta_start + frac * (config.beta_end - config.beta_start)
            })
            .collect();
        let mut alpha_bars = Vec::with_capacity(t);
        let mut prod = 1.0;
        for b in &betas {
            prod *= 1.0 - b;
            alpha_bars.push(prod);
        }
        Schedule { betas, alpha_bars }
    }

    pub fn timesteps(&self) -> usize {
        self.betas.len()
    }

    /// ᾱ at `t`, with ᾱ_{−1} = 1 (the clean data) for `None`.
    pub fn alpha_bar(&self, t: Option<usize>) -> f64 {
        t.map_or(1.0, |t| self.alpha_bars[t])
    }

    /// Mean coefficients (on x̂₀ and on x_t) and variance of the DDPM posterior
    /// q(x_{t−1} | x_t, x₀).
    pub fn posterior(&self, t: usize) -> (f64, f64, f64) {
        let ab = self.alpha_bars[t];
        let ab_prev = self.alpha_bar(t.checked_sub(1));
        let beta = self.betas[t];
        let coef_x0 = beta * ab_prev.sqrt() / (1.0 - ab);
        let coef_xt = (1.0 - ab_prev) * (1.0 - beta).sqrt() / (1.0 - ab);
        let var = beta * (1.0 - ab_prev) / (1.0 - ab);
        (coef_x0, coef_xt, var)
    }

    /// The DDIM update from `t` to `prev` (Song et al., eq. 12) written, like the DDPM
    /// posterior, as coefficients on x̂₀ and x_t plus a noise scale σ. ε̂ is expressed through
    /// x̂₀ and x_t, so a clipped x̂₀ stays consistent with the ε̂ the update uses.
    pub fn ddim(&self, t: usize, prev: Option<usize>, eta: f64) -> (f64, f64, f64) {
        let ab = self.alpha_bars[t];
        let ab_prev = self.alpha_bar(prev);
        let sigma = eta * ((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev)).sqrt();
        let dir = (1.0 - ab_prev - sigma * sigma).max(0.0).sqrt();
        // x_prev = √ᾱ_prev·x̂₀ + dir·ε̂ + σz, with ε̂ = (x_t − √ᾱ_t·x̂₀)/√(1−ᾱ_t).
        let coef_xt = dir / (1.0 - ab).sqrt();
        let coef_x0 = ab_prev.sqrt() - coef_xt * ab.sqrt();
        (coef_x0, coef_xt, sigma)
    }

    /// λ = log(α/σ) = ½·log(ᾱ/(1−ᾱ)) at `t`, half the log signal-to-noise ratio; +∞ for the
    /// clean data (`None`).
    fn lambda(&self, t: Option<usize>) -> f64 {
        let ab = self.alpha_bar(t);
        0.5 * (ab / (1.0 - ab)).ln()
    }

    /// The DPM-Solver++(2M) update from `t` to `prev` (Lu et al. 2022, "DPM-Solver++",
    /// Algorithm 2, multistep, data prediction) as coefficients on x̂₀(t), on x̂₀(`before`)
    /// (the previous step's prediction) and on x_t:
    /// x_prev = (σ_prev/σ_t)·x_t + α_prev(1 − e^{−h})·D, h = λ_prev − λ_t,
    /// D = (1 + 1/2r)·x̂₀(t) − (1/2r)·x̂₀(before), r = (λ_t − λ_before)/h.
    /// First order (D = x̂₀(t), which is DDIM with η = 0) on the first step, which has no
    /// `before`, and on the last, whose step to the clean data has no finite h.
    pub fn dpm_solver_2m(
        &self,
        before: Option<usize>,
        t: usize,
        prev: Option<usize>,
    ) -> (f64, f64, f64) {
        let (ab, ab_prev) = (self.alpha_bars[t], self.alpha_bar(prev));
        let (sigma, sigma_prev) = ((1.0 - ab).sqrt(), (1.0 - ab_prev).sqrt());
        let coef_xt = sigma_prev / sigma;
        // α_prev(1 − e^{−h}) = √ᾱ_prev − σ_prev·√ᾱ_t/σ_t, finite also when prev is the data.
        let coef_d = ab_prev.sqrt() - coef_xt * ab.sqrt();
        match (before, prev) {
            (Some(b), Some(_)) => {
                let h = self.lambda(prev) - self.lambda(Some(t));
                let r = (self.lambda(Some(t)) - self.lambda(Some(b))) / h;
                let k = 1.0 / (2.0 * r);
                (coef_d * (1.0 + k), -coef_d * k, coef_xt)
            }
            _ => (coef_d, 0.0, coef_xt),
        }
    }

    /// `steps` timesteps spread evenly over 0 … T−1, highest first.
    pub fn ddim_timesteps(&self, steps: usize) -> Vec<usize> {
        let t = self.timesteps();
        let steps = steps.clamp(1, t);
        let mut ts: Vec<usize> = (0..steps).map(|i| i * t / steps).collect();
        ts.reverse();
        ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_schedule() -> Schedule {
        Schedule::new(&ScheduleConfig::new())
    }

    #[test]
    fn dpm_solver_2m_is_ddim_at_first_order_and_exact_on_a_constant_prediction() {
        let s = default_schedule();
        let ts = s.ddim_timesteps(10);
        for (i, &t) in ts.iter().enumerate() {
            let prev = ts.get(i + 1).copied();
            let (ddim_x0, ddim_xt, _) = s.ddim(t, prev, 0.0);
            // First order (no previous prediction) is DDIM with η = 0.
            let (x0, before, xt) = s.dpm_solver_2m(None, t, prev);
            assert!((x0 - ddim_x0).abs() < 1e-12 && before == 0.0 && (xt - ddim_xt).abs() < 1e-12);
            // The second-order weights on the two predictions sum to DDIM's, so a prediction
            // that does not change between steps gives the DDIM step.
            if i > 0 {
                let (x0, before, xt) = s.dpm_solver_2m(Some(ts[i - 1]), t, prev);
                assert!((x0 + before - ddim_x0).abs() < 1e-9, "t={t}");
                assert!((xt - ddim_xt).abs() < 1e-12);
                assert_eq!(
                    before != 0.0,
                    prev.is_some(),
                    "second order but on the last step"
                );
            }
        }
    }

    #[test]
    fn alpha_bar_matches_closed_form_product() {
        let s = default_schedule();
        assert_eq!(s.timesteps(), 1000);
        assert!((s.betas[0] - 1e-4).abs() < 1e-15 && (s.betas[999] - 2e-2).abs() < 1e-15);
        // ᾱ_t = ∏ (1 − β_s); in closed form for a linear schedule its log is well approximated
        // by −Σβ_s − Σβ_s²/2, which pins down the accumulation independently.
        for t in [0usize, 10, 500, 999] {
            let sum: f64 = s.betas[..=t].iter().sum();
            let sum_sq: f64 = s.betas[..=t].iter().map(|b| b * b).sum();
            let approx = (-sum - sum_sq / 2.0).exp();
            assert!((s.alpha_bars[t] / approx - 1.0).abs() < 1e-3, "t={t}");
        }
        assert!(
            (s.alpha_bars[999] - 4.036e-5).abs() < 1e-7,
            "{}",
            s.alpha_bars[999]
        );
    }

    #[test]
    fn ddim_with_eta_one_and_all_steps_is_the_ddpm_posterior() {
        let s = default_schedule();
        let ts = s.ddim_timesteps(1000);
        assert_eq!(ts, (0..1000).rev().collect::<Vec<_>>());
        for &t in &ts {
            let (px0, pxt, var) = s.posterior(t);
            let (dx0, dxt, sigma) = s.ddim(t, t.checked_sub(1), 1.0);
            assert!((px0 - dx0).abs() < 1e-9, "t={t}: x̂₀ coef {px0} vs {dx0}");
            assert!((pxt - dxt).abs() < 1e-9, "t={t}: x_t coef {pxt} vs {dxt}");
            assert!((var - sigma * sigma).abs() < 1e-9, "t={t}: variance");
        }
    }

    #[test]
    fn deterministic_ddim_reaches_the_clean_estimate_at_the_last_step() {
        let s = default_schedule();
        let (x0, xt, sigma) = s.ddim(0, None, 0.0);
        assert!((x0 - 1.0).abs() < 1e-12 && xt.abs() < 1e-12 && sigma == 0.0);
        assert_eq!(s.ddim_timesteps(50).len(), 50);
        assert_eq!(s.ddim_timesteps(50)[0], 980);
    }
}
