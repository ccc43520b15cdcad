//! How the report ranks (scope, λ): the accuracy targets first, then measured attack success.

use serde::{Deserialize, Serialize};

use super::model::{Ablation, Variant};
use crate::defense::query_attack::Attacker;
use crate::pipeline::evaluate::Evaluation;

/// The variant and λ the report ranks first, and why (`reason`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recommendation {
    pub variant: String,
    pub lambda: f32,
    pub median_drop_pt: f64,
    pub transfer_success: Option<f64>,
    pub query_success: Option<f64>,
    pub l1_to_original: f64,
    pub reason: String,
}

/// The accuracy targets of the native pipeline: median within 0.5 pt of θ_orig (the transfer
/// target's cost bound) and every guard-accepted model within 1 pt.
pub fn meets_accuracy_targets(e: &Evaluation) -> bool {
    let floor = e.original_test_accuracy;
    e.generated_test_accuracy.median >= floor - 0.005
        && e.accepted_test_accuracy
            .is_some_and(|a| a.min >= floor - 0.01)
}

/// Transfer successes closer than this count as a tie (they are means over 20 models and a few
/// hundred inputs).
const TRANSFER_TIE: f64 = 0.02;

/// L1 to θ_orig in units of the checkpoints' own spread: comparable across scopes.
pub(super) fn relative_l1(e: &Evaluation) -> f64 {
    e.checkpoint_l1_to_original
        .map_or(f64::NAN, |c| e.l1_to_original.mean / c.mean)
}

/// Mean success of the two SimBA attackers (as published, and adaptive when it ran) against
/// the fastest rotation of λ's pool: the defence the report ranks by.
fn query_defence(v: &Variant, lambda: f32) -> Option<f64> {
    let naive = v.query_success(lambda)?;
    Some(match v.query_success_by(lambda, Attacker::SimbaPaired) {
        Some(adaptive) => (naive + adaptive) / 2.0,
        None => naive,
    })
}

pub(super) fn recommend(variants: &[Variant]) -> Option<Recommendation> {
    let candidates: Vec<(&Variant, &Evaluation)> = variants
        .iter()
        .filter(|v| matches!(v.ablation, Ablation::Base | Ablation::Scope))
        .flat_map(|v| v.evaluations.iter().map(move |e| (v, e)))
        .filter(|(_, e)| meets_accuracy_targets(e))
        .collect();
    let unknown = f64::INFINITY;
    let transfer =
        |(v, e): &&(&Variant, &Evaluation)| v.transfer_success(e.lambda).unwrap_or(unknown);
    let query = |(v, e): &&(&Variant, &Evaluation)| query_defence(v, e.lambda).unwrap_or(unknown);
    let best_transfer = candidates
        .iter()
        .map(|c| transfer(&c))
        .fold(unknown, f64::min);
    let shortlist: Vec<&(&Variant, &Evaluation)> = candidates
        .iter()
        .filter(|c| transfer(c) <= best_transfer + TRANSFER_TIE)
        .collect();
    let (v, e) = shortlist
        .into_iter()
        .min_by(|a, b| query(a).total_cmp(&query(b)))?;
    Some(Recommendation {
        variant: v.name.clone(),
        lambda: e.lambda,
        median_drop_pt: (e.original_test_accuracy - e.generated_test_accuracy.median) * 100.0,
        transfer_success: v.transfer_success(e.lambda),
        query_success: query_defence(v, e.lambda),
        l1_to_original: e.l1_to_original.mean,
        reason: format!(
            "of the (scope, λ) pairs whose median stays within 0.5 pt of θ_orig and whose guard-accepted models all stay within 1 pt, and whose PGD transfer success is within {:.0} pt of the lowest, the one with the lowest SimBA success (mean of the published and the adaptive attacker) under the fastest rotation",
            TRANSFER_TIE * 100.0,
        ),
    })
}
