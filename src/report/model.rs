//! What the report holds: one [`Variant`] per trained configuration, the [`Report`] over all
//! of them and its [`Recommendation`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::plan::{compared_lambdas, ReportPlan, TransferPlan};
use super::rank::Recommendation;
use crate::defense::query_attack::{Attacker, Policy, QueryAttackPlan, QueryAttackReport};
use crate::defense::transfer::TransferReport;
use crate::pipeline::config::RunConfig;
use crate::pipeline::evaluate::{Evaluation, ModelScore};

/// Which ablation a variant belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ablation {
    Base,
    Scope,
    Checkpoints,
    Noise,
}

/// One trained and evaluated configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Variant {
    pub name: String,
    pub ablation: Ablation,
    pub dir: PathBuf,
    pub config: RunConfig,
    /// What this variant ran (its part of the plan); a change re-runs it.
    pub lambdas: Vec<f32>,
    pub transfer_plan: Option<TransferPlan>,
    pub query_plan: Option<QueryAttackPlan>,
    /// Regenerated parameters and the autoencoder's fold.
    pub regenerated: usize,
    pub fold: usize,
    pub reconstruction_mse: f64,
    /// One evaluation per λ, in `lambdas` order.
    pub evaluations: Vec<Evaluation>,
    pub transfer: Option<TransferReport>,
    /// SimBA against pools of each λ.
    pub query: Vec<QueryAttackReport>,
    /// Wall-clock time of collection, training and evaluation.
    pub train_seconds: f64,
    /// Wall-clock time of the transfer attack and of the query attacks (each as last run).
    pub transfer_seconds: f64,
    pub query_seconds: f64,
}

impl Variant {
    /// What this variant costs from scratch.
    pub fn seconds(&self) -> f64 {
        self.train_seconds + self.transfer_seconds + self.query_seconds
    }

    pub fn evaluation(&self, lambda: f32) -> Option<&Evaluation> {
        self.evaluations.iter().find(|e| e.lambda == lambda)
    }

    /// Mean PGD success on the guard-accepted generated models of λ.
    pub fn transfer_success(&self, lambda: f32) -> Option<f64> {
        let t = self.transfer.as_ref()?;
        t.rows
            .iter()
            .find(|r| r.lambda == Some(lambda))
            .map(|r| r.attack_success.mean)
    }

    /// SimBA's success within the budget against the pool of λ rotated every N queries, for
    /// the smallest N of the plan (the defender's strongest rotation).
    pub fn query_success(&self, lambda: f32) -> Option<f64> {
        self.query_success_by(lambda, Attacker::Simba)
    }

    /// The same for a given attacker.
    pub fn query_success_by(&self, lambda: f32, attacker: Attacker) -> Option<f64> {
        let q = self.query.iter().find(|q| q.lambda == lambda)?;
        q.rows
            .iter()
            .filter(|r| r.attacker == attacker)
            .filter_map(|r| match r.policy {
                Policy::EveryN(n) => Some((n, r.success_rate)),
                _ => None,
            })
            .min_by_key(|&(n, _)| n)
            .map(|(_, s)| s)
    }

    /// PGD success on θ_orig itself (white box).
    pub fn white_box_success(&self) -> Option<f64> {
        Some(self.transfer.as_ref()?.rows.first()?.attack_success.mean)
    }

    /// Mean PGD success on the retrained targets.
    pub fn retrained_success(&self) -> Option<f64> {
        let t = self.transfer.as_ref()?;
        t.rows
            .iter()
            .find(|r| r.models.starts_with("retrained"))
            .map(|r| r.attack_success.mean)
    }
}

/// Everything the report shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The command that wrote it.
    pub command: String,
    pub data: String,
    pub base_lambda: f32,
    pub plan: ReportPlan,
    /// The base first, then the variants in plan order.
    pub variants: Vec<Variant>,
    pub recommendation: Option<Recommendation>,
    pub seconds: f64,
}

impl Report {
    pub fn base(&self) -> &Variant {
        &self.variants[0]
    }

    /// λ = 0 (p-diff) and the base λ, the pair every variant trains.
    pub fn compared_lambdas(&self) -> Vec<f32> {
        compared_lambdas(self.base_lambda)
    }

    pub fn original_test_accuracy(&self) -> f64 {
        self.base()
            .evaluations
            .first()
            .map_or(f64::NAN, |e| e.original_test_accuracy)
    }
}

/// Per-model scores of the base variant's λ, for plots.
pub fn scores(report: &Report, lambda: f32) -> &[ModelScore] {
    report
        .base()
        .evaluation(lambda)
        .map_or(&[], |e| e.models.as_slice())
}
