//! A score-based black-box attack (SimBA, pixel basis: Guo et al. 2019) against a live model
//! that is either static or regenerated every N queries. The attacker sees only the class
//! probabilities; each query counts against a fixed budget.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use crate::classifier::{images_tensor, Classifier};
use crate::data::{Images, Splits};
use crate::error::Result;
use crate::generate::{generate_accepted, predict, G2dModel, Guard};
use crate::metrics::Summary;
use crate::pipeline::progress::bar;
use crate::pipeline::run::Run;
use crate::rng::G2dRng;

/// When the defender swaps in new weights.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Policy {
    Static,
    /// A fresh accepted parameter set for each attack session (here: each attacked image),
    /// fixed within it.
    PerSession,
    /// A fresh accepted parameter set after every `n` queries.
    EveryN(usize),
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Static => write!(f, "static θ_orig"),
            Policy::PerSession => write!(f, "regenerated per session"),
            Policy::EveryN(1) => write!(f, "regenerated every query"),
            Policy::EveryN(n) => write!(f, "regenerated every {n} queries"),
        }
    }
}

/// How the attacker compares scores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Attacker {
    /// SimBA as published: a candidate is kept when its score beats the best one seen so far
    /// (which a rotation may have produced on other weights).
    #[default]
    Simba,
    /// Adaptive to rotation: re-queries the current image right before each candidate, so both
    /// scores come from the same weights unless a rotation falls between the two queries.
    /// Costs twice the queries.
    SimbaPaired,
}

impl std::fmt::Display for Attacker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attacker::Simba => write!(f, "SimBA"),
            Attacker::SimbaPaired => write!(f, "SimBA, paired queries (adaptive)"),
        }
    }
}

/// The model an attacker queries. A rotation serves a parameter set drawn at random from the
/// rest of the pool, so the attacker cannot count its way back to weights it has seen.
struct LiveModel<'a> {
    pool: &'a [Classifier],
    policy: Policy,
    current: usize,
    queries: usize,
    draws: G2dRng,
    device: Device,
}

impl LiveModel<'_> {
    fn probabilities(&mut self, image: &[f32]) -> Vec<f32> {
        if let Policy::EveryN(n) = self.policy {
            if self.queries > 0 && self.queries.is_multiple_of(n) {
                self.rotate();
            }
        }
        self.queries += 1;
        let logits =
            self.pool[self.current].forward(images_tensor(image, image.len(), &self.device));
        softmax(logits, 1)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32")
    }

    /// A new attacker session begins.
    fn new_session(&mut self) {
        if self.policy == Policy::PerSession && self.queries > 0 {
            self.rotate();
        }
    }

    /// Any parameter set but the current one, uniformly.
    fn rotate(&mut self) {
        if self.pool.len() > 1 {
            let next = self.draws.below(self.pool.len() - 1);
            self.current = next + usize::from(next >= self.current);
        }
    }
}

fn predicted(p: &[f32]) -> usize {
    (0..p.len())
        .max_by(|&a, &b| p[a].total_cmp(&p[b]))
        .unwrap_or(0)
}

/// Runs SimBA on one image; returns the queries it took to fool the model, if it did.
fn simba(
    model: &mut LiveModel,
    attacker: Attacker,
    image: &[f32],
    label: usize,
    (epsilon, budget): (f32, usize),
    rng: &mut G2dRng,
) -> Option<usize> {
    let mut x = image.to_vec();
    let mut best = model.probabilities(&x)[label];
    let mut order: Vec<usize> = (0..image.len()).collect();
    rng.shuffle(&mut order);
    let start = model.queries - 1;
    for &pixel in order.iter().cycle() {
        for step in [epsilon, -epsilon] {
            if model.queries - start >= budget {
                return None;
            }
            let mut candidate = x.clone();
            candidate[pixel] = (candidate[pixel] + step).clamp(0.0, 1.0);
            if candidate[pixel] == x[pixel] {
                continue;
            }
            if attacker == Attacker::SimbaPaired {
                let current = model.probabilities(&x);
                if predicted(&current) != label {
                    return Some(model.queries - start);
                }
                best = current[label];
                if model.queries - start >= budget {
                    return None;
                }
            }
            let p = model.probabilities(&candidate);
            if predicted(&p) != label {
                return Some(model.queries - start);
            }
            if p[label] < best {
                best = p[label];
                x = candidate;
                break;
            }
        }
    }
    None
}

/// One policy's outcome against one attacker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryAttackRow {
    pub policy: Policy,
    #[serde(default)]
    pub attacker: Attacker,
    pub attacked: usize,
    pub success_rate: f64,
    /// Queries to success, over the successful attacks (absent when none succeeded).
    pub queries_to_success: Option<Summary>,
    /// Per attacked image, the queries it took to fool the model (`None`: not within budget).
    #[serde(default)]
    pub outcomes: Vec<Option<usize>>,
}

impl QueryAttackRow {
    /// Fraction of the attacked images fooled within `queries` queries.
    pub fn success_within(&self, queries: usize) -> f64 {
        let fooled = self
            .outcomes
            .iter()
            .filter(|q| q.is_some_and(|q| q <= queries))
            .count();
        fooled as f64 / self.attacked.max(1) as f64
    }
}

/// What `g2d query-attack` runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryAttackPlan {
    /// SimBA's per-pixel step.
    pub epsilon: f32,
    /// Queries allowed per image.
    pub budget: usize,
    /// Regeneration periods N compared with the static model.
    pub every: Vec<usize>,
    /// Also serve each session (attacked image) its own parameter set.
    #[serde(default)]
    pub per_session: bool,
    /// Also run the rotation-aware attacker ([`Attacker::SimbaPaired`]) against every policy.
    #[serde(default)]
    pub adaptive: bool,
    /// Test images attacked (ones θ_orig classifies correctly).
    pub inputs: usize,
    /// Guard-accepted parameter sets the defender rotates through.
    pub pool: usize,
}

/// `g2d query-attack`'s result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryAttackReport {
    pub epsilon: f32,
    pub budget: usize,
    /// λ of the bundle the regenerated models come from.
    pub lambda: f32,
    /// θ_orig and the accepted regenerations the defender rotates through.
    pub pool: usize,
    pub rows: Vec<QueryAttackRow>,
}

/// SimBA against the run's θ_orig served statically and regenerated every N queries (each of
/// `plan.every`) from a pool of guard-accepted parameter sets of the λ bundle.
pub fn attack_run(
    run: &Run,
    splits: &Splits,
    lambda: f32,
    plan: &QueryAttackPlan,
) -> Result<QueryAttackReport> {
    let bundle = run.load_own_bundle(lambda)?;
    let model = G2dModel::from_bundle(&bundle, &run.device)?;
    let guard = Guard::new(
        &splits.validation,
        run.config.generate.guard_delta,
        &run.device,
    );
    let original = guard.accuracy(&model.original).into_scalar::<f32>();
    // The deployed model first, then the accepted regenerations the defender rotates through.
    let mut pool = vec![model.original.clone()];
    let accepted = generate_accepted(
        &model,
        &guard,
        original,
        plan.pool,
        &run.config.generate.sampler,
        G2dRng::seeded(run.config.seed + 7),
    )?;
    pool.extend(accepted.into_iter().map(|(_, candidate)| candidate));
    let predictions = predict(&model.original, &splits.test, &run.device);
    let correct: Vec<usize> = (0..splits.test.len())
        .filter(|&i| predictions[i] == splits.test.labels[i])
        .take(plan.inputs)
        .collect();
    let images = splits.test.select(&correct);
    let mut policies = vec![Policy::Static];
    if plan.per_session {
        policies.push(Policy::PerSession);
    }
    policies.extend(
        plan.every
            .iter()
            .filter(|&&n| n > 0)
            .map(|&n| Policy::EveryN(n)),
    );
    let mut attackers = vec![Attacker::Simba];
    if plan.adaptive {
        attackers.push(Attacker::SimbaPaired);
    }
    let settings: Vec<(Policy, Attacker)> = attackers
        .iter()
        .flat_map(|&a| policies.iter().map(move |&p| (p, a)))
        .collect();
    let rows = query_attack(
        &pool,
        &images,
        &settings,
        plan.epsilon,
        plan.budget,
        run.config.seed + 8,
        &run.device,
    );
    Ok(QueryAttackReport {
        epsilon: plan.epsilon,
        budget: plan.budget,
        lambda,
        pool: pool.len(),
        rows,
    })
}

/// The Markdown table of a report.
pub fn table(report: &QueryAttackReport) -> String {
    let attacked = report.rows.first().map_or(0, |r| r.attacked);
    let mut out = format!(
        "SimBA (pixel basis, ε = {}), budget {} queries, {attacked} images θ_orig gets right; pool of {} models (θ_orig + {} accepted regenerations, λ = {}).\n\n| attacker | served model | success within budget (%) | median queries to success |\n|---|---|---|---|\n",
        report.epsilon,
        report.budget,
        report.pool,
        report.pool - 1,
        report.lambda
    );
    for r in &report.rows {
        out += &format!(
            "| {} | {} | {:.1} | {} |\n",
            r.attacker,
            r.policy,
            r.success_rate * 100.0,
            r.queries_to_success
                .map_or("–".into(), |s| format!("{:.0}", s.median))
        );
    }
    out
}

/// Attacks every image of `images` (the caller passes images the original classifies
/// correctly) once per policy, with the same pixel orders.
pub fn query_attack(
    pool: &[Classifier],
    images: &Images,
    settings: &[(Policy, Attacker)],
    epsilon: f32,
    budget: usize,
    seed: u64,
    device: &Device,
) -> Vec<QueryAttackRow> {
    settings
        .iter()
        .map(|&(policy, attacker)| {
            let mut model = LiveModel {
                pool,
                policy,
                current: 0,
                queries: 0,
                draws: G2dRng::seeded(seed ^ 0x5eed),
                device: device.clone(),
            };
            let mut rng = G2dRng::seeded(seed);
            let pb = bar(images.len() as u64, &format!("{attacker} {policy:?}"));
            let (mut queries, mut outcomes) = (Vec::new(), Vec::new());
            for (i, &label) in images.labels.iter().enumerate() {
                let p = images.pixels_per_image();
                let image = &images.pixels[i * p..(i + 1) * p];
                model.new_session();
                let outcome = simba(
                    &mut model,
                    attacker,
                    image,
                    label as usize,
                    (epsilon, budget),
                    &mut rng,
                );
                if let Some(q) = outcome {
                    queries.push(q as f64);
                }
                outcomes.push(outcome);
                pb.inc(1);
            }
            pb.finish_and_clear();
            QueryAttackRow {
                policy,
                attacker,
                attacked: images.len(),
                success_rate: queries.len() as f64 / images.len().max(1) as f64,
                queries_to_success: (!queries.is_empty()).then(|| Summary::of(&queries)),
                outcomes,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;
    use crate::classifier::Arch;
    use crate::params::{Manifest, Scope};

    #[test]
    fn a_rotating_model_serves_new_weights_every_n_queries() {
        let device = cpu_device();
        let pool: Vec<Classifier> = (0..4)
            .map(|_| Classifier::new(Arch::Mlp, &device))
            .collect();
        let weights = |i: usize| Manifest::regenerated(&pool[i], Scope::LastTwo).flatten(&pool[i]);
        let image = vec![0.5; crate::classifier::IMAGE_PIXELS];
        let served = |policy: Policy| {
            let mut live = LiveModel {
                pool: &pool,
                policy,
                current: 0,
                queries: 0,
                draws: G2dRng::seeded(1),
                device: device.clone(),
            };
            (0..9)
                .map(|_| {
                    let p = live.probabilities(&image);
                    (live.current, p)
                })
                .collect::<Vec<_>>()
        };
        let rotating = served(Policy::EveryN(3));
        for (q, pair) in rotating.windows(2).enumerate() {
            let (a, b) = (&pair[0], &pair[1]);
            if (q + 1) % 3 == 0 {
                assert_ne!(weights(a.0), weights(b.0), "query {} rotates", q + 1);
                assert_ne!(a.1, b.1, "and the answers change with the weights");
            } else {
                assert_eq!(a.0, b.0, "query {} keeps the weights", q + 1);
                assert_eq!(a.1, b.1);
            }
        }
        assert!(served(Policy::Static).iter().all(|(i, _)| *i == 0));
    }
}
