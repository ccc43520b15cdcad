//! What a defender could deploy, as populations of models: G2D's generated sets (and p-diff's,
//! λ = 0), and the baselines a sceptic tries first — θ_orig plus Gaussian noise at the same
//! L1, rotation among the K checkpoints, independently retrained models, a PGD-adversarially
//! trained static model, and θ_orig itself. Every moving population passes the same guard.

use serde::{Deserialize, Serialize};

use crate::attacks::LinfAttack;
use crate::classifier::Classifier;
use crate::data::Splits;
use crate::error::Result;
use crate::generate::{generate_host, G2dModel, Guard};
use crate::metrics::l1_distance;
use crate::pipeline::collect::{train_adversarial, train_target};
use crate::pipeline::run::{lambda_tag, Run};
use crate::rng::G2dRng;

/// What kind of defence a population stands for (the `kind` of `summary.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodKind {
    /// G2D with λ > 0 (and any function-space terms).
    G2d,
    /// The same latent diffusion with λ = 0.
    PDiff,
    /// θ_orig plus i.i.d. Gaussian noise scaled to G2D's mean L1.
    Noise,
    /// Rotation among the collected checkpoints.
    Checkpoints,
    /// Whole models retrained from other seeds.
    Retrained,
    /// One PGD-adversarially trained model, served to everyone.
    AdversarialTraining,
    /// θ_orig, served to everyone.
    Static,
}

/// Models a defender serves, and the fresh models an attacker holding the same public recipe
/// would draw for an expectation-over-transformation attack (T3).
pub struct Population {
    pub name: String,
    pub kind: MethodKind,
    pub lambda: Option<f32>,
    /// The models served (attacks are scored on these).
    pub targets: Vec<Classifier>,
    /// Their regenerated parameters, where the method shares θ_orig's layout.
    pub thetas: Vec<Vec<f32>>,
    /// Disjoint from `targets`; empty means leave-one-out over the targets (retrained models)
    /// or, for a single static model, the model itself.
    pub attacker_pool: Vec<Classifier>,
    /// Candidates the guard accepted, of those drawn.
    pub accepted_fraction: f64,
}

impl Population {
    /// One model served to every session.
    fn single(name: &str, kind: MethodKind, model: Classifier) -> Population {
        Population {
            name: name.to_string(),
            kind,
            lambda: None,
            targets: vec![model],
            thetas: Vec::new(),
            attacker_pool: Vec::new(),
            accepted_fraction: 1.0,
        }
    }

    pub fn is_static(&self) -> bool {
        self.targets.len() == 1 && self.attacker_pool.is_empty()
    }
}

/// How many models each population holds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PopulationSizes {
    /// Models served and attacked per moving method.
    pub targets: usize,
    /// m, the models the EOT attacker averages over.
    pub eot_models: usize,
    /// Whole models retrained from other seeds (the attacker's pool is leave-one-out).
    pub retrained: usize,
    /// Per adversarially trained run, whole models retrained adversarially from other seeds
    /// with that run's attack (0: none, the default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub robust_retrained: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Default for PopulationSizes {
    fn default() -> Self {
        Self {
            targets: 8,
            eot_models: 8,
            retrained: 4,
            robust_retrained: 0,
        }
    }
}

/// Parameter sets with the classifier that carries each.
type Candidates = Vec<(Vec<f32>, Classifier)>;

/// Draws candidates from `draw` (in rounds of `want`) until `want` pass the guard or `tries`
/// rounds are spent; returns the accepted (θ, model) pairs and the accepted fraction.
fn accepted_by_guard(
    guard: &Guard,
    original_accuracy: f32,
    want: usize,
    tries: usize,
    mut draw: impl FnMut(usize) -> Result<Candidates>,
) -> Result<(Candidates, f64)> {
    let (mut kept, mut drawn, mut accepted) = (Vec::new(), 0usize, 0usize);
    for _ in 0..tries {
        if kept.len() >= want {
            break;
        }
        for (theta, model) in draw(want)? {
            drawn += 1;
            if guard.accepts_model(&model, original_accuracy) {
                accepted += 1;
                if kept.len() < want {
                    kept.push((theta, model));
                }
            }
        }
    }
    let fraction = accepted as f64 / drawn.max(1) as f64;
    Ok((kept, fraction))
}

fn split_pool(
    mut kept: Candidates,
    targets: usize,
) -> (Vec<Vec<f32>>, Vec<Classifier>, Vec<Classifier>) {
    let pool: Vec<Classifier> = kept
        .split_off(targets.min(kept.len()))
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    let (thetas, models) = kept.into_iter().unzip();
    (thetas, models, pool)
}

/// Guard-accepted sets generated from the bundle of λ; `None` when that bundle is missing.
pub fn generated(
    run: &Run,
    lambda: f32,
    guard: &Guard,
    sizes: &PopulationSizes,
    seed: u64,
) -> Result<Option<Population>> {
    let path = run.bundle_path(lambda);
    if !path.is_file() {
        return Ok(None);
    }
    let model = G2dModel::from_bundle(&run.load_own_bundle(lambda)?, &run.device)?;
    let original = guard.accuracy(&model.original).into_scalar::<f32>();
    let sampler = run.config.generate.sampler;
    let mut rng = G2dRng::seeded(seed);
    let want = sizes.targets + sizes.eot_models;
    let (kept, accepted_fraction) = accepted_by_guard(guard, original, want, 4, |n| {
        generate_host(&model, n, &sampler, G2dRng::seeded(rng.next_seed()))?
            .into_iter()
            .map(|theta| Ok((theta.clone(), model.with_theta(&theta)?)))
            .collect()
    })?;
    let (thetas, targets, attacker_pool) = split_pool(kept, sizes.targets);
    let d = &run.config.diffusion;
    let (kind, name) = match (lambda == 0.0, d.function_terms_at(lambda)) {
        (true, false) => (MethodKind::PDiff, "p-diff (λ = 0)".to_string()),
        (_, false) => (
            MethodKind::G2d,
            format!("g2d-lambda-{}", lambda_tag(lambda)),
        ),
        (_, true) => {
            let mut name = format!(
                "g2d-lambda-{}-task-{}-vuln-{}",
                lambda_tag(lambda),
                d.task_weight,
                d.vulnerability_weight
            );
            if d.cross_weight != 0.0 {
                name += &format!("-cross-{}", d.cross_weight);
            }
            (MethodKind::G2d, name)
        }
    };
    Ok(Some(Population {
        name,
        kind,
        lambda: Some(lambda),
        targets,
        thetas,
        attacker_pool,
        accepted_fraction,
    }))
}

/// θ_orig plus i.i.d. Gaussian noise whose expected |·| per parameter is `l1`
/// (σ = l1·√(π/2)), through the same guard.
pub fn noise(
    main: &G2dModel,
    l1: f64,
    guard: &Guard,
    sizes: &PopulationSizes,
    seed: u64,
) -> Result<Population> {
    let sigma = (l1 * (std::f64::consts::PI / 2.0).sqrt()) as f32;
    let original = guard.accuracy(&main.original).into_scalar::<f32>();
    let mut rng = G2dRng::seeded(seed);
    let want = sizes.targets + sizes.eot_models;
    let (kept, accepted_fraction) = accepted_by_guard(guard, original, want, 4, |n| {
        (0..n)
            .map(|_| {
                let theta: Vec<f32> = main
                    .theta_orig
                    .iter()
                    .zip(rng.normal_vec(main.theta_orig.len()))
                    .map(|(t, z)| t + sigma * z)
                    .collect();
                Ok((theta.clone(), main.with_theta(&theta)?))
            })
            .collect()
    })?;
    let (thetas, targets, attacker_pool) = split_pool(kept, sizes.targets);
    Ok(Population {
        name: format!("noise at G2D's L1 ({l1:.5})"),
        kind: MethodKind::Noise,
        lambda: None,
        targets,
        thetas,
        attacker_pool,
        accepted_fraction,
    })
}

/// Rotation among the collected checkpoints (θ_orig left out): targets and the attacker's pool
/// interleave along the trajectory. The targets are served in that order, or with
/// `shuffle = Some(seed)` in a random order drawn from it (T2 scores each on the next).
pub fn checkpoints(
    all: &[Vec<f32>],
    main: &G2dModel,
    sizes: &PopulationSizes,
    shuffle: Option<u64>,
) -> Result<Population> {
    let others: Vec<&Vec<f32>> = all.iter().filter(|c| **c != main.theta_orig).collect();
    let want = (sizes.targets + sizes.eot_models).min(others.len());
    let step = (others.len() / want.max(1)).max(1);
    let picked: Vec<&Vec<f32>> = others.into_iter().step_by(step).take(want).collect();
    let (mut thetas, mut targets, mut attacker_pool) = (Vec::new(), Vec::new(), Vec::new());
    for (i, theta) in picked.into_iter().enumerate() {
        let model = main.with_theta(theta)?;
        if i % 2 == 0 && targets.len() < sizes.targets || attacker_pool.len() >= sizes.eot_models {
            thetas.push(theta.clone());
            targets.push(model);
        } else {
            attacker_pool.push(model);
        }
    }
    let mut name = "checkpoint rotation".to_string();
    if let Some(seed) = shuffle {
        let mut served: Vec<(Classifier, Vec<f32>)> = targets.into_iter().zip(thetas).collect();
        G2dRng::seeded(seed).shuffle(&mut served);
        (targets, thetas) = served.into_iter().unzip();
        name += " (shuffled)";
    }
    Ok(Population {
        name,
        kind: MethodKind::Checkpoints,
        lambda: None,
        targets,
        thetas,
        attacker_pool,
        accepted_fraction: 1.0,
    })
}

/// `count` whole models trained from other seeds, as stage 1 trains the run's target: plainly,
/// or with `adversarial` as a robust run's target was (independent robust models, the most
/// diverse moving target at that robustness a generator could hope to serve).
pub fn retrained(
    run: &Run,
    splits: &Splits,
    count: usize,
    adversarial: Option<LinfAttack>,
) -> Result<Population> {
    let targets = (1..=count as u64)
        .map(|i| {
            let seed = run.config.seed + 1000 + i;
            match adversarial {
                None => train_target(&run.config, splits, seed, &run.device),
                Some(attack) => train_adversarial(&run.config, splits, seed, attack, &run.device),
            }
        })
        .collect::<Result<_>>()?;
    Ok(Population {
        name: match adversarial {
            None => "retrained (all layers)".into(),
            Some(a) => format!(
                "retrained adversarially (all layers, PGD-{}, ε = {})",
                a.steps, a.epsilon
            ),
        },
        kind: MethodKind::Retrained,
        lambda: None,
        targets,
        thetas: Vec::new(),
        attacker_pool: Vec::new(),
        accepted_fraction: 1.0,
    })
}

/// One model adversarially trained with `attack` (half clean, half adversarial loss), as long
/// as the target was: the static alternative to a moving target.
pub fn adversarially_trained(run: &Run, splits: &Splits, attack: LinfAttack) -> Result<Population> {
    let model = train_adversarial(
        &run.config,
        splits,
        run.config.seed + 2000,
        attack,
        &run.device,
    )?;
    Ok(Population::single(
        &format!(
            "adversarial training (PGD-{}, ε = {})",
            attack.steps, attack.epsilon
        ),
        MethodKind::AdversarialTraining,
        model,
    ))
}

/// θ_orig itself, static.
pub fn original(main: &G2dModel) -> Population {
    let mut p = Population::single("θ_orig (static)", MethodKind::Static, main.original.clone());
    p.thetas = vec![main.theta_orig.clone()];
    p
}

/// Mean L1 of a population's parameter sets to θ_orig.
pub fn mean_l1(population: &Population, theta_orig: &[f32]) -> Option<f64> {
    (!population.thetas.is_empty()).then(|| {
        population
            .thetas
            .iter()
            .map(|t| l1_distance(t, theta_orig))
            .sum::<f64>()
            / population.thetas.len() as f64
    })
}
