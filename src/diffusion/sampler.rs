//! Reverse diffusion: DDPM ancestral sampling over all T steps, DDIM over a subset with
//! stochasticity η, or the multistep DPM-Solver++(2M) over a subset. All are written as one
//! update, `x_prev = a·x̂₀ + a′·x̂₀(previous step) + b·x_t + σ·z`, whose
//! coefficients come from the host schedule, so the loop enqueues device work only and the
//! caller reads the result back once at the end. Gaussian noise is drawn by the host RNG, which
//! makes a seeded run identical on every backend.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::denoiser::Denoiser;
use super::schedule::Schedule;
use crate::error::{G2dError, Result};
use crate::rng::G2dRng;

/// Which sampler, and how many denoiser evaluations it makes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SamplerConfig {
    /// DDPM ancestral sampling over every timestep.
    Ddpm,
    /// DDIM over `steps` evenly spaced timesteps; η = 0 is deterministic, η = 1 with all
    /// steps is DDPM.
    Ddim { steps: usize, eta: f64 },
    /// DPM-Solver++(2M) over `steps` evenly spaced timesteps: deterministic, second order,
    /// reusing the previous step's x̂₀ (no extra denoiser evaluation).
    #[serde(rename = "dpm-solver++")]
    DpmSolver { steps: usize },
}

/// DDIM-5, the fewest steps of `.ci/sampler-study`'s whose guard acceptance and median
/// validation accuracy stay within noise of DDIM-50's (intervals overlap) on the default
/// configuration, full MNIST and the embedded slice alike.
impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig::Ddim {
            steps: SamplerConfig::DEFAULT_STEPS,
            eta: 0.0,
        }
    }
}

impl SamplerConfig {
    /// DDIM's and DPM-Solver++'s steps when none are given.
    pub const DEFAULT_STEPS: usize = 5;

    /// Parses `ddpm`, `ddim` or `dpm-solver++` with its options (η is DDIM's alone;
    /// [`Self::DEFAULT_STEPS`] when no steps are given).
    pub fn parse(kind: &str, steps: Option<usize>, eta: Option<f64>) -> Result<Self> {
        let steps = steps.unwrap_or(Self::DEFAULT_STEPS);
        let sampler = match kind {
            "ddpm" => SamplerConfig::Ddpm,
            "dpm-solver++" if eta.is_some_and(|e| e != 0.0) => {
                return Err(G2dError::config(
                    "eta",
                    "DPM-Solver++ is deterministic; η applies to DDIM only",
                ))
            }
            "dpm-solver++" => SamplerConfig::DpmSolver { steps },
            "ddim" => SamplerConfig::Ddim {
                steps,
                eta: eta.unwrap_or(0.0),
            },
            other => {
                return Err(G2dError::config(
                    "sampler",
                    format!("expected ddpm, ddim or dpm-solver++, got {other:?}"),
                ))
            }
        };
        sampler.check(None)?;
        Ok(sampler)
    }

    /// Rejects a sampler no schedule of `timesteps` can run as asked: DDIM and DPM-Solver++
    /// need 1 to T steps (more would be silently clamped), DDIM η in [0, 1].
    pub fn validate(&self, timesteps: usize) -> Result<()> {
        self.check(Some(timesteps))
    }

    /// The one range check behind [`Self::parse`] (T not known yet) and [`Self::validate`].
    fn check(&self, timesteps: Option<usize>) -> Result<()> {
        let (label, steps) = match *self {
            SamplerConfig::Ddpm => return Ok(()),
            SamplerConfig::DpmSolver { steps } => ("DPM-Solver++", steps),
            SamplerConfig::Ddim { steps, eta } => {
                if !(0.0..=1.0).contains(&eta) {
                    return Err(G2dError::config(
                        "eta",
                        format!("must lie in [0, 1], got {eta}"),
                    ));
                }
                ("DDIM", steps)
            }
        };
        match timesteps {
            None if steps == 0 => Err(G2dError::config(
                "steps",
                format!("{label} needs at least one step"),
            )),
            Some(t) if !(1..=t).contains(&steps) => Err(G2dError::config(
                "steps",
                format!("{label} needs 1 to {t} steps (the schedule's T), got {steps}"),
            )),
            _ => Ok(()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            SamplerConfig::Ddpm => "ddpm",
            SamplerConfig::Ddim { .. } => "ddim",
            SamplerConfig::DpmSolver { .. } => "dpm-solver++",
        }
    }

    /// The host-side coefficients of every step, highest timestep first.
    pub fn plan(&self, schedule: &Schedule) -> Vec<Step> {
        let ts: Vec<usize> = match self {
            SamplerConfig::Ddpm => (0..schedule.timesteps()).rev().collect(),
            SamplerConfig::Ddim { steps, .. } | SamplerConfig::DpmSolver { steps } => {
                schedule.ddim_timesteps(*steps)
            }
        };
        ts.iter()
            .enumerate()
            .map(|(i, &t)| {
                let prev = ts.get(i + 1).copied();
                let before = i.checked_sub(1).map(|j| ts[j]);
                let (coef_x0, coef_x0_before, coef_xt, sigma) = match self {
                    SamplerConfig::Ddpm => {
                        let (a, b, var) = schedule.posterior(t);
                        (a, 0.0, b, var.sqrt())
                    }
                    SamplerConfig::Ddim { eta, .. } => {
                        let (a, b, sigma) = schedule.ddim(t, prev, *eta);
                        (a, 0.0, b, sigma)
                    }
                    SamplerConfig::DpmSolver { .. } => {
                        let (a, a_before, b) = schedule.dpm_solver_2m(before, t, prev);
                        (a, a_before, b, 0.0)
                    }
                };
                let ab = schedule.alpha_bars[t];
                Step {
                    t,
                    sqrt_alpha_bar: ab.sqrt() as f32,
                    sqrt_one_minus_alpha_bar: (1.0 - ab).sqrt() as f32,
                    coef_x0: coef_x0 as f32,
                    coef_x0_before: coef_x0_before as f32,
                    coef_xt: coef_xt as f32,
                    sigma: sigma as f32,
                }
            })
            .collect()
    }
}

/// One reverse step's constants.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub t: usize,
    pub sqrt_alpha_bar: f32,
    pub sqrt_one_minus_alpha_bar: f32,
    pub coef_x0: f32,
    /// On the previous step's x̂₀ (DPM-Solver++ only; 0 elsewhere).
    pub coef_x0_before: f32,
    pub coef_xt: f32,
    pub sigma: f32,
}

/// A reverse-diffusion run that its driver advances one step at a time: natively in a plain
/// loop, in the browser with an `await` between steps so the page stays responsive and a
/// worker can cancel.
pub struct ReverseDiffusion<'a> {
    denoiser: &'a Denoiser,
    steps: Vec<Step>,
    done: usize,
    x: Tensor<3>,
    /// The previous step's x̂₀, kept for a multistep solver.
    x0_before: Option<Tensor<3>>,
    clip: f32,
    rng: G2dRng,
}

impl<'a> ReverseDiffusion<'a> {
    /// Starts from x_T ~ N(0, I) of shape `[batch, channels, len]`. `clip` bounds x̂₀ to the
    /// range the standardised training latents occupy.
    pub fn new(
        denoiser: &'a Denoiser,
        steps: Vec<Step>,
        shape: [usize; 3],
        clip: f32,
        mut rng: G2dRng,
        device: &Device,
    ) -> Self {
        let x = noise(&mut rng, shape, device);
        Self {
            denoiser,
            steps,
            done: 0,
            x,
            x0_before: None,
            clip,
            rng,
        }
    }

    pub fn total(&self) -> usize {
        self.steps.len()
    }

    pub fn done(&self) -> usize {
        self.done
    }

    pub fn is_finished(&self) -> bool {
        self.done == self.steps.len()
    }

    /// Enqueues one denoising step on the device.
    pub fn step(&mut self) {
        let s = self.steps[self.done];
        let x = self.x.clone();
        let [batch, _, _] = x.dims();
        let device = x.device();
        let t = Tensor::<1>::full([batch], s.t as f32, &device);
        let eps = self.denoiser.forward(x.clone(), t);
        let x0 = predict_x0(x.clone(), eps, s.sqrt_alpha_bar, s.sqrt_one_minus_alpha_bar)
            .clamp(-self.clip, self.clip);
        let before = self.x0_before.take();
        let mut next = x0.clone() * s.coef_x0 + x * s.coef_xt;
        if s.coef_x0_before != 0.0 {
            let before = before.expect("the previous step kept its x̂₀");
            next = next + before * s.coef_x0_before;
        }
        // Keep x̂₀ only for a multistep solver's next step.
        if self
            .steps
            .get(self.done + 1)
            .is_some_and(|n| n.coef_x0_before != 0.0)
        {
            self.x0_before = Some(x0);
        }
        if s.sigma > 0.0 {
            next = next + noise(&mut self.rng, self.x.dims(), &device) * s.sigma;
        }
        self.x = next;
        self.done += 1;
    }

    /// Runs the remaining steps.
    pub fn run(mut self) -> Tensor<3> {
        while !self.is_finished() {
            self.step();
        }
        self.x
    }

    /// The sample x₀ (standardised latent space).
    pub fn finish(self) -> Tensor<3> {
        assert!(self.is_finished(), "finish called before the last step");
        self.x
    }
}

/// x̂₀ = (x_t − √(1−ᾱ_t)·ε̂) / √ᾱ_t.
pub fn predict_x0<const D: usize>(
    x_t: Tensor<D>,
    eps: Tensor<D>,
    sqrt_alpha_bar: impl Into<ScaleLike<D>>,
    sqrt_one_minus_alpha_bar: impl Into<ScaleLike<D>>,
) -> Tensor<D> {
    let num = match sqrt_one_minus_alpha_bar.into() {
        ScaleLike::Scalar(s) => x_t - eps * s,
        ScaleLike::Tensor(s) => x_t - eps * s,
    };
    match sqrt_alpha_bar.into() {
        ScaleLike::Scalar(s) => num / s,
        ScaleLike::Tensor(s) => num / s,
    }
}

/// A per-run scalar (sampling) or a per-sample tensor broadcast over the batch (training).
#[allow(clippy::large_enum_variant)] // short-lived argument, never stored
pub enum ScaleLike<const D: usize> {
    Scalar(f32),
    Tensor(Tensor<D>),
}

impl<const D: usize> From<f32> for ScaleLike<D> {
    fn from(v: f32) -> Self {
        ScaleLike::Scalar(v)
    }
}

impl<const D: usize> From<Tensor<D>> for ScaleLike<D> {
    fn from(v: Tensor<D>) -> Self {
        ScaleLike::Tensor(v)
    }
}

/// Standard normal noise of `shape`, drawn on the host and uploaded.
pub fn noise<const D: usize>(rng: &mut G2dRng, shape: [usize; D], device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::<1>::from_floats(rng.normal_vec(n).as_slice(), device).reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::SamplerConfig;

    fn refused(result: crate::error::Result<impl std::fmt::Debug>, says: &str) {
        let err = result.unwrap_err().to_string();
        assert!(err.contains(says), "expected {says:?}, got {err}");
    }

    #[test]
    fn parse_and_validate_refuse_what_no_schedule_runs() {
        assert_eq!(
            SamplerConfig::parse("ddim", None, None).unwrap(),
            SamplerConfig::default()
        );
        assert_eq!(
            SamplerConfig::parse("dpm-solver++", Some(10), Some(0.0)).unwrap(),
            SamplerConfig::DpmSolver { steps: 10 }
        );
        refused(
            SamplerConfig::parse("ddim", Some(0), None),
            "DDIM needs at least one step",
        );
        refused(
            SamplerConfig::parse("dpm-solver++", Some(0), None),
            "DPM-Solver++ needs at least one step",
        );
        refused(SamplerConfig::parse("ddim", None, Some(1.5)), "[0, 1]");
        refused(
            SamplerConfig::parse("dpm-solver++", None, Some(0.5)),
            "DDIM only",
        );
        refused(SamplerConfig::parse("euler", None, None), "expected ddpm");
        let over = SamplerConfig::DpmSolver { steps: 11 };
        refused(over.validate(10), "1 to 10 steps");
        assert!(over.validate(11).is_ok());
        assert!(SamplerConfig::Ddpm.validate(10).is_ok());
    }
}
