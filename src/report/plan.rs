//! What `g2d report` runs: the plan (λ values, scopes, K, noise factors, attacks) and the
//! variants it expands to.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::Ablation;
use crate::attacks::LinfAttack;
use crate::defense::query_attack::QueryAttackPlan;
use crate::params::Scope;
use crate::pipeline::config::RunConfig;

/// What `g2d report` runs beside the base configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportPlan {
    /// The λ ablation on the base variant (0 and the base λ are always added).
    pub lambdas: Vec<f32>,
    /// Regenerated scopes compared with the base's.
    pub scopes: Vec<Scope>,
    /// Values of K compared with the base's.
    pub checkpoint_counts: Vec<usize>,
    /// (input, latent) noise factors of the autoencoder compared with the base's.
    pub noise_factors: Vec<(f32, f32)>,
    /// The transfer attack (crafted on each variant's θ_orig).
    pub transfer: TransferPlan,
    /// SimBA against the θ_orig of the base and scope variants, static and regenerated.
    pub query: QueryAttackPlan,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferPlan {
    pub attack: LinfAttack,
    pub inputs: usize,
    /// Guard-accepted generated models (and checkpoints) attacked per group.
    pub models: usize,
    /// Targets retrained from other seeds (base variant only).
    pub retrained: usize,
}

impl Default for TransferPlan {
    fn default() -> Self {
        Self {
            attack: LinfAttack::pgd(0.1, 40),
            inputs: 500,
            models: 20,
            retrained: 3,
        }
    }
}

impl Default for ReportPlan {
    fn default() -> Self {
        Self {
            lambdas: vec![0.0, 1.0, 2.0, 3.0, 6.0],
            scopes: vec![Scope::Last, Scope::LastTwo, Scope::All],
            checkpoint_counts: vec![50, 100],
            noise_factors: vec![(0.0, 0.0), (0.01, 0.5)],
            transfer: TransferPlan::default(),
            query: QueryAttackPlan {
                epsilon: 0.2,
                budget: 1000,
                every: vec![100, 10, 1],
                per_session: true,
                adaptive: true,
                inputs: 300,
                pool: 20,
            },
        }
    }
}

impl ReportPlan {
    /// The default noise factors as the command line writes them (`INPUT:LATENT`).
    pub fn default_noise_args() -> Vec<String> {
        Self::default()
            .noise_factors
            .iter()
            .map(|(input, latent)| format!("{input}:{latent}"))
            .collect()
    }
}

/// A variant to run: its name, ablation, directory and configuration.
pub(super) struct Spec {
    pub(super) name: String,
    pub(super) ablation: Ablation,
    pub(super) dir: PathBuf,
    pub(super) config: RunConfig,
    pub(super) lambdas: Vec<f32>,
    pub(super) transfer: Option<TransferPlan>,
    pub(super) query: Option<QueryAttackPlan>,
}

/// λ = 0 (p-diff) and `lambda`, once each.
pub fn compared_lambdas(lambda: f32) -> Vec<f32> {
    let mut pair = vec![0.0, lambda];
    pair.dedup();
    pair
}

pub(super) fn specs(dir: &Path, base: &RunConfig, plan: &ReportPlan) -> Vec<Spec> {
    let lambda = base.diffusion.lambda_l1;
    let pair = compared_lambdas(lambda);
    let mut base_lambdas = pair.clone();
    for &l in &plan.lambdas {
        if !base_lambdas.contains(&l) {
            base_lambdas.push(l);
        }
    }
    let mut out = vec![Spec {
        name: "base".into(),
        ablation: Ablation::Base,
        dir: dir.to_path_buf(),
        config: base.clone(),
        lambdas: base_lambdas,
        transfer: Some(plan.transfer.clone()),
        query: Some(plan.query.clone()),
    }];
    let variant = |name: String, ablation, config: RunConfig, attacked: bool| Spec {
        dir: dir.join(format!("ablation-{name}")),
        name,
        ablation,
        config,
        lambdas: pair.clone(),
        transfer: attacked.then(|| TransferPlan {
            retrained: 0,
            ..plan.transfer.clone()
        }),
        query: attacked.then(|| plan.query.clone()),
    };
    for &scope in plan.scopes.iter().filter(|&&s| s != base.collect.scope) {
        let mut c = base.clone();
        c.collect.scope = scope;
        out.push(variant(format!("scope-{scope}"), Ablation::Scope, c, true));
    }
    for &k in plan
        .checkpoint_counts
        .iter()
        .filter(|&&k| k != base.collect.checkpoints)
    {
        // The same stretch of training, sampled by fewer or more checkpoints.
        let mut c = base.clone();
        c.collect.checkpoints = k;
        c.collect.save_every = (base.collect.save_every * base.collect.checkpoints / k).max(1);
        out.push(variant(format!("K-{k}"), Ablation::Checkpoints, c, false));
    }
    let base_noise = (
        base.autoencoder.network.input_noise_factor,
        base.autoencoder.network.latent_noise_factor,
    );
    for &(input, latent) in plan.noise_factors.iter().filter(|&&n| n != base_noise) {
        let mut c = base.clone();
        c.autoencoder.network.input_noise_factor = input;
        c.autoencoder.network.latent_noise_factor = latent;
        out.push(variant(
            format!("noise-{input}-{latent}"),
            Ablation::Noise,
            c,
            false,
        ));
    }
    for s in &mut out {
        s.config.diffusion.lambda_l1 = lambda;
        s.config.diffusion.sweep.clear();
    }
    out
}
