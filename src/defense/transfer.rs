//! Transfer of white-box attacks: adversarial examples crafted on θ_orig (FGSM or PGD) are
//! evaluated on θ_orig itself, on the collected checkpoints, on guard-accepted models generated
//! with λ = 0 (p-diff) and with the run's λ, and on targets retrained from other seeds. Success
//! rate counts only inputs the evaluated model classifies correctly when clean.

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::attacks::{craft, LinfAttack};
use crate::classifier::{images_tensor, labels_tensor, Classifier};
use crate::data::{Images, Splits};
use crate::error::Result;
use crate::generate::{generate_accepted, predict, G2dModel, Guard};
use crate::metrics::{accuracy, l1_distance, Summary};
use crate::pipeline::collect::train_target;
use crate::pipeline::progress::bar;
use crate::pipeline::run::{lambda_tag, Run};
use crate::rng::G2dRng;

/// One group of models attacked with the same examples.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferRow {
    pub models: String,
    /// λ of the bundle, for rows of generated models.
    #[serde(default)]
    pub lambda: Option<f32>,
    pub count: usize,
    pub clean_accuracy: Summary,
    /// Fraction of correctly classified clean inputs whose adversarial version is misclassified.
    pub attack_success: Summary,
    /// Absent for retrained targets, whose regenerated tensors are not θ_orig's.
    pub l1_to_original: Option<Summary>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferReport {
    pub attack: LinfAttack,
    pub inputs: usize,
    pub rows: Vec<TransferRow>,
}

struct Scored {
    clean: f64,
    success: f64,
    l1: Option<f64>,
}

fn score(
    model: &Classifier,
    clean: &Images,
    adversarial: &Images,
    l1: Option<f64>,
    device: &Device,
) -> Scored {
    let p_clean = predict(model, clean, device);
    let p_adv = predict(model, adversarial, device);
    let (mut right, mut fooled) = (0usize, 0usize);
    for ((c, a), l) in p_clean.iter().zip(&p_adv).zip(&clean.labels) {
        if c == l {
            right += 1;
            fooled += (a != l) as usize;
        }
    }
    Scored {
        clean: accuracy(&p_clean, &clean.labels),
        success: fooled as f64 / right.max(1) as f64,
        l1,
    }
}

fn row(models: &str, scored: &[Scored]) -> TransferRow {
    let of = |f: fn(&Scored) -> f64| Summary::of(&scored.iter().map(f).collect::<Vec<_>>());
    TransferRow {
        models: models.to_string(),
        lambda: None,
        count: scored.len(),
        clean_accuracy: of(|s| s.clean),
        attack_success: of(|s| s.success),
        l1_to_original: scored
            .iter()
            .map(|s| s.l1)
            .collect::<Option<Vec<f64>>>()
            .filter(|v| !v.is_empty())
            .map(|v| Summary::of(&v)),
    }
}

/// The attacked inputs, clean and crafted on θ_orig, and what the rows are measured against.
struct Attacked<'a> {
    clean: Images,
    adversarial: Images,
    theta_orig: Vec<f32>,
    device: &'a Device,
}

impl Attacked<'_> {
    fn score(&self, model: &Classifier, theta: Option<&[f32]>) -> Scored {
        let l1 = theta.map(|t| l1_distance(t, &self.theta_orig));
        score(model, &self.clean, &self.adversarial, l1, self.device)
    }
}

/// Examples crafted on `original` from the first `inputs` test images.
fn craft_on_original(
    original: &Classifier,
    splits: &Splits,
    attack: &LinfAttack,
    inputs: usize,
    seed: u64,
    device: &Device,
) -> (Images, Images) {
    let clean = splits.test.take(inputs);
    let pixels = craft(
        original,
        images_tensor(&clean.pixels, clean.pixels_per_image(), device),
        labels_tensor(&clean.labels, device),
        attack,
        &mut G2dRng::seeded(seed),
    )
    .into_data()
    .try_to_vec::<f32>()
    .expect("f32 images");
    let adversarial = Images {
        pixels,
        ..clean.clone()
    };
    (clean, adversarial)
}

/// Every `len / models`-th checkpoint but θ_orig.
fn checkpoints_row(
    run: &Run,
    main: &G2dModel,
    at: &Attacked,
    models: usize,
) -> Result<TransferRow> {
    let checkpoints = run.load_target()?.rows("checkpoints")?;
    let step = (checkpoints.len() / models).max(1);
    let scored: Vec<Scored> = checkpoints
        .iter()
        .step_by(step)
        .filter(|c| **c != at.theta_orig)
        .map(|c| Ok(at.score(&main.with_theta(c)?, Some(c))))
        .collect::<Result<_>>()?;
    Ok(row("K checkpoints", &scored))
}

/// Guard-accepted models generated from the bundle of λ, if that bundle exists.
fn generated_row(
    run: &Run,
    splits: &Splits,
    lambda: f32,
    at: &Attacked,
    models: usize,
) -> Result<Option<TransferRow>> {
    let path = run.bundle_path(lambda);
    if !Path::new(&path).is_file() {
        return Ok(None);
    }
    let model = G2dModel::from_bundle(&run.load_own_bundle(lambda)?, at.device)?;
    let guard = Guard::new(
        &splits.validation,
        run.config.generate.guard_delta,
        at.device,
    );
    let original_val = guard.accuracy(&model.original).into_scalar::<f32>();
    let pb = bar(models as u64, &format!("transfer λ={}", lambda_tag(lambda)));
    let accepted = generate_accepted(
        &model,
        &guard,
        original_val,
        models,
        &run.config.generate.sampler,
        G2dRng::seeded(run.config.seed + 6),
    )?;
    pb.inc(models as u64);
    let scored: Vec<Scored> = accepted
        .iter()
        .map(|(theta, candidate)| at.score(candidate, Some(theta)))
        .collect();
    pb.finish_and_clear();
    Ok((!scored.is_empty()).then(|| TransferRow {
        lambda: Some(lambda),
        ..row(
            &format!("generated, guard-accepted, λ = {}", lambda_tag(lambda)),
            &scored,
        )
    }))
}

/// Runs the transfer evaluation on θ_orig, the checkpoints, the bundles of `lambdas` (those
/// that exist) and `retrained` targets trained from other seeds.
pub fn transfer(
    run: &Run,
    splits: &Splits,
    attack: LinfAttack,
    inputs: usize,
    models: usize,
    lambdas: &[f32],
    retrained: usize,
) -> Result<TransferReport> {
    let device = &run.device;
    let main_bundle = run.load_own_bundle(run.config.diffusion.lambda_l1)?;
    let main = G2dModel::from_bundle(&main_bundle, device)?;
    let seed = run.config.seed + 5;
    let (clean, adversarial) =
        craft_on_original(&main.original, splits, &attack, inputs, seed, device);
    let at = Attacked {
        clean,
        adversarial,
        theta_orig: main.theta_orig.clone(),
        device,
    };
    let mut rows = vec![row(
        "θ_orig (white box)",
        &[at.score(&main.original, Some(&at.theta_orig))],
    )];
    rows.push(checkpoints_row(run, &main, &at, models)?);
    for &lambda in lambdas {
        rows.extend(generated_row(run, splits, lambda, &at, models)?);
    }
    let retrained: Vec<Scored> = (1..=retrained as u64)
        .map(|i| {
            let m = train_target(&run.config, splits, run.config.seed + 1000 + i, device)?;
            Ok(at.score(&m, None))
        })
        .collect::<Result<_>>()?;
    if !retrained.is_empty() {
        rows.push(row("retrained from other seeds (all layers)", &retrained));
    }
    Ok(TransferReport {
        attack,
        inputs: at.clean.len(),
        rows,
    })
}

pub fn table(report: &TransferReport) -> String {
    let a = &report.attack;
    let mut out = format!(
        "Attack: L∞ ε = {}, {} step(s) of {}, random start: {}; crafted on θ_orig over {} test images.\n\n| models | n | clean acc. mean (%) | attack success mean / min / max (%) | L1 to θ_orig (mean) |\n|---|---|---|---|---|\n",
        a.epsilon, a.steps, a.step_size, a.random_start, report.inputs
    );
    for r in &report.rows {
        out += &format!(
            "| {} | {} | {:.2} | {:.1} / {:.1} / {:.1} | {} |\n",
            r.models,
            r.count,
            r.clean_accuracy.mean * 100.0,
            r.attack_success.mean * 100.0,
            r.attack_success.min * 100.0,
            r.attack_success.best * 100.0,
            r.l1_to_original
                .map_or("–".to_string(), |l| format!("{:.5}", l.mean))
        );
    }
    out
}
