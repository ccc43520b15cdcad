//! The threat-model study (`g2d threat`): every G2D configuration of the given runs, beside the
//! baselines, under the four attackers of [`super::threat`], on validation images (which select
//! the recommended configuration) and on test images (which only report).
//!
//! Per run: its generated populations (each λ with a bundle), θ_orig plus noise at the run's
//! G2D L1, and its checkpoint rotation. Once, from the first run's data and recipe: whole models
//! retrained from other seeds, a PGD-adversarially trained static model and θ_orig itself.

use serde::{Deserialize, Serialize};

use super::populations::{self, MethodKind, Population, PopulationSizes};
use super::threat::{attack_population, AttackRates, AttackSet};
use crate::attacks::LinfAttack;
use crate::classifier::Classifier;
use crate::data::{Images, Splits};
use crate::error::{G2dError, Result};
use crate::generate::{predict, G2dModel, Guard};
use crate::metrics::{accuracy, l1_distance, Summary};
use crate::pipeline::progress::bar;
use crate::pipeline::run::Run;

/// What `g2d threat` runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreatPlan {
    /// L∞ radii; 0.1 is the headline.
    pub epsilons: Vec<f32>,
    pub pgd_steps: usize,
    /// Images attacked, from the start of the validation and of the test split.
    pub inputs: usize,
    pub sizes: PopulationSizes,
    /// The static robust baseline's training attack.
    pub adversarial_training: LinfAttack,
    /// Serve checkpoint rotation's checkpoints in a seeded random order (the default), so that
    /// T2's pairs (each served model scored on the next) come from anywhere in the collection,
    /// as G2D's independent draws do; otherwise in trajectory order, where neighbours mostly
    /// share a run. A report written before the setting ran in trajectory order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shuffle_rotation: bool,
}

impl Default for ThreatPlan {
    fn default() -> Self {
        Self {
            epsilons: vec![0.05, 0.1],
            pgd_steps: 40,
            inputs: 500,
            sizes: PopulationSizes::default(),
            adversarial_training: LinfAttack::pgd(0.1, 7),
            shuffle_rotation: true,
        }
    }
}

/// The ε the summary and the ranking use.
pub const HEADLINE_EPSILON: f32 = 0.1;

/// Each generated set's L1 to its nearest checkpoint, beside the checkpoints' own
/// nearest-neighbour L1: generated sets much closer than that are copies.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Memorisation {
    pub generated_to_nearest_checkpoint: Summary,
    pub checkpoint_to_nearest_other: Summary,
}

/// One population's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodResult {
    pub name: String,
    pub kind: MethodKind,
    /// The run directory the population came from.
    pub run: String,
    pub lambda: Option<f32>,
    pub models: usize,
    pub median_test_accuracy: f64,
    pub median_val_accuracy: f64,
    /// θ_orig's accuracy in the same run.
    pub original_test_accuracy: f64,
    pub original_val_accuracy: f64,
    pub accepted_fraction: f64,
    pub l1_to_original: Option<f64>,
    /// Attacks on validation images (selection).
    pub validation: Vec<AttackRates>,
    /// Attacks on test images (reporting).
    pub test: Vec<AttackRates>,
    pub memorisation: Option<Memorisation>,
}

impl MethodResult {
    /// The test-image rates at ε.
    pub fn test_at(&self, epsilon: f32) -> Option<&AttackRates> {
        self.test.iter().find(|r| r.epsilon == epsilon)
    }

    fn validation_at(&self, epsilon: f32) -> Option<&AttackRates> {
        self.validation.iter().find(|r| r.epsilon == epsilon)
    }
}

/// Everything `g2d threat` measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThreatStudy {
    pub command: String,
    pub dataset: String,
    pub plan: ThreatPlan,
    pub methods: Vec<MethodResult>,
    /// Populations (generated, or noise at their L1) the guard accepted no model of, so
    /// nothing to serve or attack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unserved: Vec<String>,
    /// The G2D population the validation rule picks.
    pub recommended: Option<String>,
    pub rule: String,
    pub seconds: f64,
}

/// Selection on validation data only: among G2D populations whose median validation accuracy
/// is within 0.5 pt of the first run's θ_orig (the undefended model a user starts from) and
/// whose guard accepts ≥ 90% of candidates, the lowest T1 + T2 success at ε = 0.1 on validation
/// images. If none qualifies, the accuracy bound comes first: the G2D population with the
/// highest median validation accuracy (a defence that costs more than the bound is not
/// recommended for its attack figures).
pub const RULE: &str = "on validation images and accuracy only: among g2d populations with median validation accuracy within 0.5 pt of the first run's θ_orig (the undefended model) and guard acceptance ≥ 90%, the lowest T1 + T2 PGD success at ε = 0.1; when none qualifies, the g2d population with the highest median validation accuracy";

/// The population [`RULE`] picks; `reference_val` is the first run's θ_orig's validation
/// accuracy.
pub fn recommend(methods: &[MethodResult], reference_val: f64) -> Option<String> {
    let g2d: Vec<&MethodResult> = methods
        .iter()
        .filter(|m| m.kind == MethodKind::G2d)
        .collect();
    let score = |m: &&&MethodResult| {
        m.validation_at(HEADLINE_EPSILON)
            .map_or(f64::INFINITY, |r| r.t1.rate + r.t2.rate)
    };
    let qualifies = |m: &&&MethodResult| {
        m.median_val_accuracy >= reference_val - 0.005 && m.accepted_fraction >= 0.9
    };
    g2d.iter()
        .filter(qualifies)
        .min_by(|a, b| score(a).total_cmp(&score(b)))
        .or_else(|| {
            g2d.iter()
                .max_by(|a, b| a.median_val_accuracy.total_cmp(&b.median_val_accuracy))
        })
        .map(|m| m.name.clone())
}

impl ThreatStudy {
    /// Applies today's [`RULE`] to the stored measurements (a re-rendered report picks as a
    /// fresh study would); the first method is the first run's, whose θ_orig is the reference.
    pub fn reselect(&mut self) {
        if let Some(first) = self.methods.first() {
            self.recommended = recommend(&self.methods, first.original_val_accuracy);
            self.rule = RULE.to_string();
        }
    }
}

/// A run's θ_orig, data, checkpoints and attack images, shared by the populations measured on
/// it and read or computed once.
struct RunContext<'a> {
    run: &'a Run,
    splits: Splits,
    main: G2dModel,
    guard: Guard,
    validation: AttackSet<'a>,
    test: AttackSet<'a>,
    /// θ_orig's accuracy on the validation and the test split.
    original_accuracy: (f64, f64),
    checkpoints: Vec<Vec<f32>>,
    /// Each checkpoint's L1 to its nearest other checkpoint (the memorisation check's scale).
    checkpoint_spacing: Summary,
}

impl<'a> RunContext<'a> {
    fn new(run: &'a Run, plan: &ThreatPlan) -> Result<RunContext<'a>> {
        let splits = run.splits()?;
        let lambda = run.config.diffusion.lambda_l1;
        let main = G2dModel::from_bundle(&run.load_own_bundle(lambda)?, &run.device)?;
        let guard = Guard::new(
            &splits.validation,
            run.config.generate.guard_delta,
            &run.device,
        );
        let attacks: Vec<LinfAttack> = plan
            .epsilons
            .iter()
            .map(|&e| LinfAttack::pgd(e, plan.pgd_steps))
            .collect();
        let seed = run.config.seed + 7;
        let set = |images: &Images, s| {
            AttackSet::new(
                &main.original,
                images.take(plan.inputs),
                attacks.clone(),
                s,
                &run.device,
            )
        };
        let (validation, test) = (set(&splits.validation, seed), set(&splits.test, seed + 1));
        let of = |images: &Images| {
            accuracy(
                &predict(&main.original, images, &run.device),
                &images.labels,
            )
        };
        let original_accuracy = (of(&splits.validation), of(&splits.test));
        let checkpoints = run.load_target()?.rows("checkpoints")?;
        let spacing: Vec<f64> = (0..checkpoints.len())
            .map(|i| nearest_l1(&checkpoints, &checkpoints[i], Some(i)))
            .collect();
        Ok(RunContext {
            run,
            splits,
            main,
            guard,
            validation,
            test,
            original_accuracy,
            checkpoints,
            checkpoint_spacing: Summary::of(&spacing),
        })
    }

    fn name(&self) -> String {
        self.run.dir.file_name().map_or_else(
            || self.run.dir.display().to_string(),
            |n| n.to_string_lossy().into(),
        )
    }

    fn accuracy(&self, model: &Classifier, images: &Images) -> f64 {
        accuracy(&predict(model, images, &self.run.device), &images.labels)
    }

    fn measure(&self, population: &Population, seed: u64) -> Result<MethodResult> {
        let pb = bar(1, &format!("threat: {}", population.name));
        let median = |images: &Images| {
            let accs: Vec<f64> = population
                .targets
                .iter()
                .map(|m| self.accuracy(m, images))
                .collect();
            Summary::of(&accs).median
        };
        let result = MethodResult {
            name: population.name.clone(),
            kind: population.kind,
            run: self.name(),
            lambda: population.lambda,
            models: population.targets.len(),
            median_test_accuracy: median(&self.splits.test),
            median_val_accuracy: median(&self.splits.validation),
            original_test_accuracy: self.original_accuracy.1,
            original_val_accuracy: self.original_accuracy.0,
            accepted_fraction: population.accepted_fraction,
            l1_to_original: populations::mean_l1(population, &self.main.theta_orig),
            validation: attack_population(population, &self.validation, seed),
            test: attack_population(population, &self.test, seed + 1),
            memorisation: match population.kind {
                MethodKind::G2d | MethodKind::PDiff => Some(self.memorisation(population)),
                _ => None,
            },
        };
        pb.finish_and_clear();
        Ok(result)
    }

    fn memorisation(&self, population: &Population) -> Memorisation {
        let generated: Vec<f64> = population
            .thetas
            .iter()
            .map(|t| nearest_l1(&self.checkpoints, t, None))
            .collect();
        Memorisation {
            generated_to_nearest_checkpoint: Summary::of(&generated),
            checkpoint_to_nearest_other: self.checkpoint_spacing,
        }
    }
}

/// L1 from `v` to the nearest of `checkpoints` (leaving out index `skip`).
fn nearest_l1(checkpoints: &[Vec<f32>], v: &[f32], skip: Option<usize>) -> f64 {
    checkpoints
        .iter()
        .enumerate()
        .filter(|&(j, _)| Some(j) != skip)
        .map(|(_, c)| l1_distance(v, c))
        .fold(f64::INFINITY, f64::min)
}

/// What the study measured: each population's results, or its name when the guard accepted
/// none of its models (nothing to serve or attack).
#[derive(Default)]
struct Measured {
    methods: Vec<MethodResult>,
    unserved: Vec<String>,
}

impl Measured {
    /// Measures `population` on `ctx`, or names it as unserved; the result when measured.
    fn add(
        &mut self,
        ctx: &RunContext,
        population: &Population,
        seed: u64,
    ) -> Result<Option<&MethodResult>> {
        if population.targets.is_empty() {
            self.unserved.push(population.name.clone());
            return Ok(None);
        }
        self.methods.push(ctx.measure(population, seed)?);
        Ok(self.methods.last())
    }
}

/// Measures every population of every run, then the shared baselines, then picks the
/// recommended G2D population on validation figures.
pub fn study(runs: &[Run], plan: &ThreatPlan, command: String) -> Result<ThreatStudy> {
    let started = std::time::Instant::now();
    let first = runs
        .first()
        .ok_or_else(|| G2dError::config("--runs", "needs at least one run directory"))?;
    if plan.sizes.robust_retrained > 0
        && runs.iter().all(|r| r.config.collect.adversarial.is_none())
    {
        return Err(G2dError::config(
            "--robust-retrained",
            "retrains adversarially trained runs' targets, and no run here was adversarially trained",
        ));
    }
    let mut measured = Measured::default();
    let mut base: Option<RunContext> = None;
    for (r, run) in runs.iter().enumerate() {
        let ctx = RunContext::new(run, plan)?;
        let seed = run.config.seed + 100 * r as u64;
        let lambdas = [0.0, run.config.diffusion.lambda_l1];
        let mut main_l1 = None;
        for (i, &lambda) in lambdas.iter().enumerate() {
            if i == 1 && lambda == 0.0 {
                continue;
            }
            if let Some(mut p) =
                populations::generated(run, lambda, &ctx.guard, &plan.sizes, seed + i as u64)?
            {
                if runs.len() > 1 {
                    p.name = format!("{}/{}", ctx.name(), p.name);
                }
                if let Some(m) = measured.add(&ctx, &p, seed + 10 + i as u64)? {
                    main_l1 = m.l1_to_original.or(main_l1);
                }
            }
        }
        let prefix = if runs.len() > 1 {
            format!("{}/", ctx.name())
        } else {
            String::new()
        };
        if let Some(l1) = main_l1 {
            let mut p = populations::noise(&ctx.main, l1, &ctx.guard, &plan.sizes, seed + 20)?;
            p.name = format!("{prefix}{}", p.name);
            measured.add(&ctx, &p, seed + 21)?;
        }
        let order = plan.shuffle_rotation.then_some(seed + 24);
        let mut p = populations::checkpoints(&ctx.checkpoints, &ctx.main, &plan.sizes, order)?;
        p.name = format!("{prefix}{}", p.name);
        measured.add(&ctx, &p, seed + 22)?;
        if let Some(attack) = &run.config.collect.adversarial {
            // The run's own target, adversarially trained: what it would serve without
            // regeneration.
            let mut p = populations::original(&ctx.main);
            p.name = format!(
                "{prefix}θ_orig (static, adversarially trained: PGD-{}, ε = {})",
                attack.steps, attack.epsilon
            );
            p.kind = MethodKind::AdversarialTraining;
            measured.add(&ctx, &p, seed + 23)?;
            if plan.sizes.robust_retrained > 0 {
                // Robust models as independent as retraining makes them: T1 crafts on this
                // run's θ_orig, T2 and T3 on the other retrained models.
                let mut p = populations::retrained(
                    run,
                    &ctx.splits,
                    plan.sizes.robust_retrained,
                    Some(*attack),
                )?;
                p.name = format!("{prefix}{}", p.name);
                measured.add(&ctx, &p, seed + 24)?;
            }
        }
        if base.is_none() {
            base = Some(ctx);
        }
    }
    let ctx = base.expect("at least one run");
    let shared = [
        populations::retrained(first, &ctx.splits, plan.sizes.retrained, None)?,
        populations::adversarially_trained(first, &ctx.splits, plan.adversarial_training)?,
        populations::original(&ctx.main),
    ];
    for (i, p) in shared.iter().enumerate() {
        measured.add(&ctx, p, first.config.seed + 30 + i as u64)?;
    }
    Ok(ThreatStudy {
        command,
        dataset: ctx.splits.name.clone(),
        plan: plan.clone(),
        recommended: recommend(&measured.methods, ctx.original_accuracy.0),
        methods: measured.methods,
        unserved: measured.unserved,
        rule: RULE.to_string(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g2d(name: &str, val_accuracy: f64, accepted_fraction: f64) -> MethodResult {
        MethodResult {
            name: name.into(),
            kind: MethodKind::G2d,
            run: "run".into(),
            lambda: None,
            models: 8,
            median_test_accuracy: val_accuracy,
            median_val_accuracy: val_accuracy,
            original_test_accuracy: 0.9,
            original_val_accuracy: 0.9,
            accepted_fraction,
            l1_to_original: None,
            validation: Vec::new(),
            test: Vec::new(),
            memorisation: None,
        }
    }

    #[test]
    fn without_a_population_inside_the_bounds_the_rule_keeps_the_most_accurate() {
        // None within 0.5 pt of 90% with ≥ 90% accepted: the most accurate, whatever it
        // accepts or resists.
        let outside = vec![
            g2d("costly", 0.85, 1.0),
            g2d("accurate", 0.88, 0.5),
            g2d("rarely accepted", 0.87, 0.02),
        ];
        assert_eq!(recommend(&outside, 0.9).as_deref(), Some("accurate"));
        // One inside both bounds is picked over any outside.
        let mut with_one = outside.clone();
        with_one.push(g2d("inside", 0.897, 0.95));
        assert_eq!(recommend(&with_one, 0.9).as_deref(), Some("inside"));
    }
}
