//! Stage 5, evaluate: generate N parameter sets, pass each through the guard (validation split),
//! and report test accuracy (never used to select), acceptance, distances to θ_orig beside the
//! spread of the K checkpoints, and p-diff's wrong-prediction IoU.

use serde::{Deserialize, Serialize};

use super::progress::bar;
use crate::data::Splits;
use crate::diffusion::sampler::SamplerConfig;
use crate::error::Result;
use crate::generate::{generate_host, predict, G2dModel, Guard};
use crate::metrics::{accuracy, agreement, l1_distance, l2_distance, wrong_iou, Summary};
use crate::rng::G2dRng;

/// Everything `g2d evaluate` reports; the keys are a stable interface for scripts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluation {
    pub lambda: f32,
    pub n_generated: usize,
    pub sampler: SamplerConfig,
    pub original_val_accuracy: f64,
    pub original_test_accuracy: f64,
    /// Over all N generated models, accepted or not.
    pub generated_test_accuracy: Summary,
    pub generated_val_accuracy: Summary,
    pub accepted_fraction: f64,
    /// Over the guard-accepted models only (absent when none was accepted).
    pub accepted_test_accuracy: Option<Summary>,
    /// Per-parameter mean absolute difference to θ_orig.
    pub l1_to_original: Summary,
    /// Per-parameter root-mean-square difference to θ_orig.
    pub l2_to_original: Summary,
    /// The same L1 for the K collected checkpoints (θ_orig itself left out), for scale.
    pub checkpoint_l1_to_original: Option<Summary>,
    /// Test accuracy of the K checkpoints, for scale.
    pub checkpoint_test_accuracy: Option<Summary>,
    /// p-diff's similarity: IoU of the test inputs each model gets wrong with θ_orig's.
    pub wrong_iou_with_original: Summary,
    /// Fraction of test inputs on which a model predicts what θ_orig predicts.
    pub agreement_with_original: Summary,
    /// Sampling and decoding time per generated model, in milliseconds.
    pub generation_ms_per_model: f64,
    pub seconds: f64,
    /// Each generated model, in generation order (the report's scatter and histogram).
    #[serde(default)]
    pub models: Vec<ModelScore>,
}

/// One generated model's scores.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelScore {
    pub test_accuracy: f64,
    pub val_accuracy: f64,
    pub accepted: bool,
    pub l1_to_original: f64,
}

/// Generates `count` parameter sets from `model` and evaluates them.
pub fn evaluate(
    model: &G2dModel,
    splits: &Splits,
    checkpoints: Option<&[Vec<f32>]>,
    count: usize,
    sampler: &SamplerConfig,
    guard_delta: f32,
    rng: G2dRng,
) -> Result<(Evaluation, Vec<Vec<f32>>)> {
    let started = std::time::Instant::now();
    let device = &model.device;
    let guard = Guard::new(&splits.validation, guard_delta, device);
    let orig_val = accuracy(
        &predict(&model.original, &splits.validation, device),
        &splits.validation.labels,
    );
    let orig_test_pred = predict(&model.original, &splits.test, device);
    let orig_test = accuracy(&orig_test_pred, &splits.test.labels);

    let gen_started = std::time::Instant::now();
    let thetas = generate_host(model, count, sampler, rng)?;
    let generation_ms = gen_started.elapsed().as_secs_f64() * 1000.0 / count as f64;

    let (models, l2, iou, agree) =
        score_models(model, &thetas, splits, &guard, orig_val, &orig_test_pred)?;
    let scores = |f: fn(&ModelScore) -> f64| models.iter().map(f).collect::<Vec<_>>();
    let accepted_test: Vec<f64> = models
        .iter()
        .filter(|m| m.accepted)
        .map(|m| m.test_accuracy)
        .collect();
    let (checkpoint_acc, checkpoint_l1) = match checkpoints {
        Some(cs) => {
            let (acc, l1) = checkpoint_scale(model, cs, splits)?;
            (Some(acc), Some(l1))
        }
        None => (None, None),
    };
    Ok((
        Evaluation {
            lambda: model.bundle_meta.lambda_l1,
            n_generated: count,
            sampler: *sampler,
            original_val_accuracy: orig_val,
            original_test_accuracy: orig_test,
            generated_test_accuracy: Summary::of(&scores(|m| m.test_accuracy)),
            generated_val_accuracy: Summary::of(&scores(|m| m.val_accuracy)),
            accepted_fraction: accepted_test.len() as f64 / count as f64,
            accepted_test_accuracy: (!accepted_test.is_empty())
                .then(|| Summary::of(&accepted_test)),
            l1_to_original: Summary::of(&scores(|m| m.l1_to_original)),
            l2_to_original: Summary::of(&l2),
            checkpoint_l1_to_original: checkpoint_l1,
            checkpoint_test_accuracy: checkpoint_acc,
            wrong_iou_with_original: Summary::of(&iou),
            agreement_with_original: Summary::of(&agree),
            generation_ms_per_model: generation_ms,
            seconds: started.elapsed().as_secs_f64(),
            models,
        },
        thetas,
    ))
}

/// Per generated model: its scores, L2 to θ_orig, wrong-prediction IoU and agreement with
/// θ_orig's test predictions.
#[allow(clippy::type_complexity)]
fn score_models(
    model: &G2dModel,
    thetas: &[Vec<f32>],
    splits: &Splits,
    guard: &Guard,
    orig_val: f64,
    orig_test_pred: &[u8],
) -> Result<(Vec<ModelScore>, Vec<f64>, Vec<f64>, Vec<f64>)> {
    let device = &model.device;
    let pb = bar(
        thetas.len() as u64,
        &format!("evaluate λ={}", model.bundle_meta.lambda_l1),
    );
    let (mut models, mut l2, mut iou, mut agree) = (vec![], vec![], vec![], vec![]);
    for theta in thetas {
        let candidate = model.with_theta(theta)?;
        let v = guard.accuracy(&candidate).into_scalar::<f32>();
        let pred = predict(&candidate, &splits.test, device);
        models.push(ModelScore {
            test_accuracy: accuracy(&pred, &splits.test.labels),
            val_accuracy: v as f64,
            accepted: guard.accepts(v, orig_val as f32),
            l1_to_original: l1_distance(theta, &model.theta_orig),
        });
        l2.push(l2_distance(theta, &model.theta_orig));
        iou.push(wrong_iou(&pred, orig_test_pred, &splits.test.labels));
        agree.push(agreement(&pred, orig_test_pred));
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok((models, l2, iou, agree))
}

/// The checkpoints' test accuracy, and their L1 to θ_orig (θ_orig itself left out): the scale
/// generated models are read against.
fn checkpoint_scale(
    model: &G2dModel,
    checkpoints: &[Vec<f32>],
    splits: &Splits,
) -> Result<(Summary, Summary)> {
    let mut accs = Vec::with_capacity(checkpoints.len());
    for c in checkpoints {
        accs.push(accuracy(
            &predict(&model.with_theta(c)?, &splits.test, &model.device),
            &splits.test.labels,
        ));
    }
    let others: Vec<f64> = checkpoints
        .iter()
        .map(|c| l1_distance(c, &model.theta_orig))
        .filter(|d| *d > 0.0)
        .collect();
    Ok((Summary::of(&accs), Summary::of(&others)))
}

/// The evaluation table, as Markdown.
pub fn table(rows: &[(&str, &Evaluation)]) -> String {
    let pct = |v: f64| format!("{:.2}", v * 100.0);
    let mut out = String::from(
        "| model | test acc. best / mean / median / min (%) | accepted | accepted min (%) | L1 to θ_orig (mean) | L2 (mean) | wrong-IoU (mean) |\n|---|---|---|---|---|---|---|\n",
    );
    if let Some((_, e)) = rows.first() {
        out += &format!(
            "| original θ_orig | {} | – | – | 0 | 0 | 1 |\n",
            pct(e.original_test_accuracy)
        );
        if let (Some(c), Some(a)) = (&e.checkpoint_l1_to_original, &e.checkpoint_test_accuracy) {
            out += &format!(
                "| K checkpoints (for scale) | {} / {} / {} / {} | – | – | {:.5} | – | – |\n",
                pct(a.best),
                pct(a.mean),
                pct(a.median),
                pct(a.min),
                c.mean
            );
        }
    }
    for (name, e) in rows {
        let g = &e.generated_test_accuracy;
        out += &format!(
            "| {name} (λ = {}) | {} / {} / {} / {} | {:.0}% | {} | {:.5} | {:.5} | {:.3} |\n",
            e.lambda,
            pct(g.best),
            pct(g.mean),
            pct(g.median),
            pct(g.min),
            e.accepted_fraction * 100.0,
            e.accepted_test_accuracy.map_or("–".into(), |a| pct(a.min)),
            e.l1_to_original.mean,
            e.l2_to_original.mean,
            e.wrong_iou_with_original.mean,
        );
    }
    out
}
