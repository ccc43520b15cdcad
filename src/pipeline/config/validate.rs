//! The range checks a run configuration passes before any stage runs: flags and config files
//! alike, with errors that name the setting.

use super::{CollectVulnerability, RunConfig};
use crate::bundle::MAX_RUN_CENTRES;
use crate::error::{G2dError, Result};

impl CollectVulnerability {
    fn validate(&self) -> Result<()> {
        self.attack.validate("collect.vulnerability.attack")?;
        if !(self.weight > 0.0 && self.weight.is_finite()) {
            return Err(G2dError::config(
                "collect.vulnerability.weight",
                format!("must be a finite weight > 0, got {}", self.weight),
            ));
        }
        if self.warmup_steps > 1_000_000 {
            return Err(G2dError::config(
                "collect.vulnerability.warmup_steps",
                "must be at most 1,000,000",
            ));
        }
        Ok(())
    }
}

impl RunConfig {
    /// Counts that must be at least 1.
    fn validate_counts(&self) -> Result<()> {
        let positive = [
            ("collect.batch_size", self.collect.batch_size),
            ("collect.pretrain_steps", self.collect.pretrain_steps),
            ("collect.checkpoints", self.collect.checkpoints),
            ("collect.save_every", self.collect.save_every),
            ("collect.seeds", self.collect.seeds),
            ("autoencoder.steps", self.autoencoder.steps),
            ("autoencoder.batch_size", self.autoencoder.batch_size),
            ("diffusion.steps", self.diffusion.steps),
            ("diffusion.batch_size", self.diffusion.batch_size),
            ("diffusion.function_batch", self.diffusion.function_batch),
            (
                "diffusion.vulnerability_bank",
                self.diffusion.vulnerability_bank,
            ),
            ("generate.count", self.generate.count),
            (
                "data.bundle_validation_size",
                self.data.bundle_validation_size,
            ),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(G2dError::config(field, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// Rejects settings no stage can run with.
    pub fn validate(&self) -> Result<()> {
        self.validate_counts()?;
        if self.collect.checkpoints < 2 {
            return Err(G2dError::config(
                "collect.checkpoints",
                "K must be at least 2",
            ));
        }
        self.collect.network().validate_settings("collect.hidden")?;
        if self.collect.align_runs {
            if self.collect.arch != crate::classifier::Arch::Mlp
                || self.collect.scope != crate::params::Scope::All
            {
                return Err(G2dError::config(
                    "collect.align_runs",
                    "aligns hidden units of the whole MLP: needs arch mlp and scope all",
                ));
            }
            let fresh_runs = self.collect.seeds > 1
                && self
                    .collect
                    .vulnerability
                    .as_ref()
                    .is_none_or(|v| !v.from_target);
            if !fresh_runs {
                return Err(G2dError::config(
                    "collect.align_runs",
                    "aligns runs trained from their own initialisation: needs collect.seeds > 1 \
                     and, with the vulnerability term, from_target false (--seeds-from-target false)",
                ));
            }
        }
        if self.collect.seeds > self.collect.checkpoints {
            return Err(G2dError::config(
                "collect.seeds",
                "more seeds than checkpoints",
            ));
        }
        if self.centres_runs() {
            let (k, seeds, per_run) = (
                self.collect.checkpoints,
                self.collect.seeds,
                self.collect.per_run(),
            );
            // Runs hold per_run checkpoints each, the last what is left: a run of one checkpoint
            // would serve near copies of it, and K too small for every seed leaves runs empty.
            let last = k.saturating_sub((seeds - 1) * per_run);
            if last < 2 || seeds > MAX_RUN_CENTRES {
                return Err(G2dError::config(
                    "autoencoder.centre_runs",
                    format!(
                        "centres each collection run on its mean: needs every run to hold at \
                         least 2 checkpoints and at most {MAX_RUN_CENTRES} runs (here K = {k} \
                         over {seeds} runs of {per_run}, the last {last}; a K that is a multiple \
                         of the runs, or `--centre-runs false`)"
                    ),
                ));
            }
        }
        // The network settings: the same checks a bundle's metadata gets (θ's length is not
        // known before collection, so one parameter stands in for it).
        self.autoencoder.model(1).validate("autoencoder.network")?;
        self.diffusion
            .denoiser(self.autoencoder.network.latent_channels)
            .validate("diffusion.denoiser")?;
        if !(self.diffusion.lambda_l1 >= 0.0 && self.diffusion.lambda_l1.is_finite()) {
            return Err(G2dError::config(
                "diffusion.lambda_l1",
                "must be a finite λ ≥ 0",
            ));
        }
        for (field, w) in [
            ("diffusion.task_weight", self.diffusion.task_weight),
            (
                "diffusion.vulnerability_weight",
                self.diffusion.vulnerability_weight,
            ),
            ("diffusion.cross_weight", self.diffusion.cross_weight),
        ] {
            if !(w >= 0.0 && w.is_finite()) {
                return Err(G2dError::config(
                    field,
                    format!("must be a finite weight ≥ 0, got {w}"),
                ));
            }
        }
        for (field, lr) in [
            ("collect.lr", self.collect.lr),
            ("collect.collect_lr", self.collect.collect_lr),
            ("autoencoder.lr", self.autoencoder.lr),
            ("diffusion.lr", self.diffusion.lr),
        ] {
            if !(lr > 0.0 && lr.is_finite()) {
                return Err(G2dError::config(
                    field,
                    format!("must be a finite learning rate > 0, got {lr}"),
                ));
            }
        }
        if let Some(attack) = &self.collect.adversarial {
            attack.validate("collect.adversarial")?;
        }
        if let Some(v) = &self.collect.vulnerability {
            v.validate()?;
        }
        self.diffusion
            .vulnerability_attack
            .validate("diffusion.vulnerability_attack")?;
        self.diffusion
            .cross_attack
            .validate("diffusion.cross_attack")?;
        if self.diffusion.cross_attack.random_start {
            return Err(G2dError::config(
                "diffusion.cross_attack.random_start",
                "must be false: the cross term crafts each set's examples from the clean images",
            ));
        }
        if self.diffusion.cross_weight != 0.0 && self.diffusion.batch_size < 2 {
            return Err(G2dError::config(
                "diffusion.cross_weight",
                "the cross term pairs the sets of a batch: diffusion.batch_size must be ≥ 2",
            ));
        }
        if self.diffusion.function_terms() && self.collect.arch != crate::classifier::Arch::Mlp {
            return Err(G2dError::config(
                "diffusion.task_weight / diffusion.vulnerability_weight / diffusion.cross_weight",
                "the function-space terms need the MLP (collect.arch mlp)",
            ));
        }
        if !(0.0..1.0).contains(&self.diffusion.ema_decay) {
            return Err(G2dError::config(
                "diffusion.ema_decay",
                "must lie in [0, 1)",
            ));
        }
        self.validate_generation()
    }

    /// The schedule, the sampler against it, and the guard's tolerance.
    fn validate_generation(&self) -> Result<()> {
        let s = &self.diffusion.schedule;
        s.validate("diffusion.schedule")?;
        self.generate
            .sampler
            .validate(s.timesteps)
            .map_err(|e| G2dError::config("generate.sampler", e.to_string()))?;
        let delta = self.generate.guard_delta;
        if !(0.0..=1.0).contains(&delta) {
            return Err(G2dError::config(
                "generate.guard_delta",
                format!("must lie in [0, 1] (a fraction of accuracy), got {delta}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::sampler::SamplerConfig;

    fn refused(edit: impl Fn(&mut RunConfig), field: &str) {
        let mut c = RunConfig::default();
        edit(&mut c);
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains(field),
            "expected an error naming {field}, got {err}"
        );
    }

    #[test]
    fn out_of_range_settings_are_refused_naming_the_field() {
        assert!(RunConfig::default().validate().is_ok());
        refused(
            |c| {
                c.generate.sampler = SamplerConfig::Ddim {
                    steps: 5000,
                    eta: 0.0,
                }
            },
            "generate.sampler",
        );
        refused(
            |c| c.generate.sampler = SamplerConfig::Ddim { steps: 0, eta: 0.0 },
            "generate.sampler",
        );
        refused(
            |c| {
                c.generate.sampler = SamplerConfig::Ddim {
                    steps: 50,
                    eta: 7.0,
                }
            },
            "generate.sampler",
        );
        // One checkpoint a run leaves nothing to learn (in every run, in the last, or none at
        // all in the last); more runs than a bundle may hold.
        for (checkpoints, seeds) in [(4, 4), (10, 4), (5, 4), (200, 100)] {
            refused(
                move |c| {
                    c.autoencoder.centre_runs = true;
                    c.collect.checkpoints = checkpoints;
                    c.collect.seeds = seeds;
                },
                "autoencoder.centre_runs",
            );
        }
        // Nothing to align: every run starts from the target, or there is one.
        refused(
            |c| {
                c.collect.align_runs = true;
                c.collect.vulnerability.as_mut().unwrap().from_target = true;
            },
            "collect.align_runs",
        );
        refused(
            |c| {
                c.collect.align_runs = true;
                c.collect.seeds = 1;
            },
            "collect.align_runs",
        );
        refused(
            |c| {
                c.collect.align_runs = true;
                c.collect.vulnerability.as_mut().unwrap().from_target = false;
                c.collect.scope = crate::params::Scope::LastTwo;
            },
            "collect.align_runs",
        );
        let mut aligned = RunConfig::default();
        aligned.collect.align_runs = true;
        assert!(aligned.validate().is_ok());
        // One run has nothing to centre: the default's centring is then off, not refused.
        let mut one_run = RunConfig::default();
        one_run.collect.seeds = 1;
        assert!(one_run.validate().is_ok() && !one_run.centres_runs());
        assert!(RunConfig::default().centres_runs());
        refused(|c| c.generate.guard_delta = -5.0, "generate.guard_delta");
        refused(|c| c.generate.guard_delta = 5.0, "generate.guard_delta");
        refused(|c| c.diffusion.schedule.beta_end = 2.0, "beta_end");
        refused(
            |c| c.diffusion.task_weight = f32::NAN,
            "diffusion.task_weight",
        );
        refused(
            |c| {
                c.diffusion.vulnerability_weight = 1.0;
                c.collect.arch = crate::classifier::Arch::Cnn;
            },
            "need the MLP",
        );
        refused(
            |c| c.diffusion.cross_weight = -1.0,
            "diffusion.cross_weight",
        );
        refused(
            |c| c.diffusion.cross_attack.epsilon = 1.5,
            "diffusion.cross_attack.epsilon",
        );
        refused(
            |c| c.diffusion.cross_attack.steps = 0,
            "diffusion.cross_attack.steps",
        );
        refused(
            |c| c.diffusion.cross_attack.random_start = true,
            "diffusion.cross_attack.random_start",
        );
        refused(
            |c| {
                c.diffusion.cross_weight = 0.5;
                c.diffusion.batch_size = 1;
            },
            "batch_size must be ≥ 2",
        );
        let away = |weight| Some(super::super::CollectVulnerability::new(weight));
        refused(
            |c| c.collect.vulnerability = away(f32::NAN),
            "collect.vulnerability.weight",
        );
        refused(
            |c| c.collect.vulnerability = away(0.0),
            "collect.vulnerability.weight",
        );
        refused(
            |c| {
                c.collect.vulnerability = away(1.0);
                c.collect.vulnerability.as_mut().unwrap().attack.epsilon = 2.0;
            },
            "collect.vulnerability.attack",
        );
    }
}
