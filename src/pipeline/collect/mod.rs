//! Stage 1, collect: train the target, then keep training only the regenerated tensors and save
//! one checkpoint every `save_every` steps until there are K, as p-diff does. θ_orig, the
//! deployed parameters, is the last checkpoint of the main run (with the vulnerability term,
//! the trained target, and the checkpoints train away from its weaknesses).

mod align;
mod training;

use burn::module::{Module, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{CollectConfig, CollectVulnerability, RunConfig};
use super::progress::bar;
use crate::attacks::LinfAttack;
use crate::classifier::Classifier;
use crate::data::{Images, Splits};
use crate::error::Result;
use crate::generate::predict;
use crate::metrics::accuracy;
use crate::params::{map_named, Manifest, NamedMapper, Scope};
use crate::rng::G2dRng;
use training::{train, train_jointly, Objective};

/// What collection produces.
pub struct Collected {
    /// The deployed classifier (θ_orig in place).
    pub target: Classifier,
    pub info: CollectInfo,
    /// K parameter vectors, one per checkpoint.
    pub checkpoints: Vec<Vec<f32>>,
    pub theta_orig: Vec<f32>,
}

/// Metadata stored with the checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CollectInfo {
    /// The collected classifier (`arch`, `hidden`, `image`, `classes` at the top level).
    #[serde(flatten)]
    pub classifier: crate::classifier::ClassifierConfig,
    pub scope: Scope,
    pub regenerated: Manifest,
    pub fixed: Manifest,
    pub original_val_accuracy: f64,
    pub original_test_accuracy: f64,
    pub seconds: f64,
    /// The state_dict key of each tensor when the target was imported (`collect.init`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_names: Option<crate::params::TorchNames>,
    /// With `collect.align_runs`: the weight-matching rounds each fresh run took to align.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alignment_rounds: Vec<usize>,
}

/// Marks every tensor outside the scope as not requiring gradients, so the optimizer leaves it.
struct FreezeOutside {
    /// The regenerated layers.
    layers: Vec<String>,
}

impl NamedMapper for FreezeOutside {
    fn map_named<const D: usize>(
        &mut self,
        name: &str,
        param: Param<Tensor<D>>,
    ) -> Param<Tensor<D>> {
        if Scope::contains(&self.layers, name) {
            param
        } else {
            param.set_require_grad(false)
        }
    }
}

/// Trains a full target from `seed` as stage 1 does before collecting: what a defender would
/// get by retraining from scratch instead of regenerating (the expensive alternative).
pub fn train_target(
    config: &RunConfig,
    splits: &Splits,
    seed: u64,
    device: &Device,
) -> Result<Classifier> {
    train_from_scratch(config, splits, seed, None, device)
}

/// A target trained as [`train_target`] trains it, but adversarially (see [`train`]): the
/// static robust model a defender could deploy instead of a moving target.
pub fn train_adversarial(
    config: &RunConfig,
    splits: &Splits,
    seed: u64,
    attack: LinfAttack,
    device: &Device,
) -> Result<Classifier> {
    train_from_scratch(config, splits, seed, Some(&attack), device)
}

fn train_from_scratch(
    config: &RunConfig,
    splits: &Splits,
    seed: u64,
    adversarial: Option<&LinfAttack>,
    device: &Device,
) -> Result<Classifier> {
    let c = &config.collect;
    let ad = device.clone().autodiff();
    ad.seed(seed);
    let mut rng = G2dRng::seeded(seed);
    train(
        c.classifier(splits).init(&ad),
        &splits.train,
        c,
        c.lr,
        c.pretrain_steps,
        &mut rng,
        Objective {
            adversarial,
            away: None,
        },
        |_, _| {},
    )
    .map(|m| m.valid())
}

pub fn test_accuracy(model: &Classifier, images: &Images, device: &Device) -> f64 {
    accuracy(&predict(model, images, device), &images.labels)
}

/// Run `s > 0` of collection: the regenerated tensors re-initialised from seed + s, trained as
/// long as the target was before any of its checkpoints count.
fn fresh_start(
    config: &RunConfig,
    splits: &Splits,
    model: &Classifier,
    regenerated: &Manifest,
    s: usize,
    rng: &mut G2dRng,
    ad: &Device,
) -> Result<Classifier> {
    let c = &config.collect;
    ad.seed(config.seed + s as u64);
    let theta = regenerated.flatten(&c.classifier(splits).init(ad));
    let fresh = regenerated.unflatten(model.clone(), &theta)?.train();
    train(
        fresh,
        &splits.train,
        c,
        c.lr,
        c.pretrain_steps,
        rng,
        Objective::of(c),
        |_, _| {},
    )
}

/// With `collect.align_runs`, `fresh` (a run trained from its own initialisation) with its
/// hidden units permuted to match the target's ([`align::align`]): the same function, in the
/// target's unit order, so that its checkpoints lie near the target's in parameter space.
/// The rounds weight matching took are added to `rounds`.
fn aligned(
    config: &RunConfig,
    target: &Classifier,
    fresh: Classifier,
    rounds: &mut Vec<usize>,
) -> Result<Classifier> {
    if !config.collect.align_runs {
        return Ok(fresh);
    }
    let (model, took) = align::align(target, fresh)?;
    rounds.push(took);
    Ok(model)
}

/// The target before collection: imported from `collect.init` (with each tensor's PyTorch
/// name), or trained from a fresh initialisation for `pretrain_steps`.
fn target(
    c: &CollectConfig,
    shape: &crate::classifier::ClassifierConfig,
    splits: &Splits,
    rng: &mut G2dRng,
    ad: &Device,
) -> Result<(Classifier, Option<crate::params::TorchNames>)> {
    if let Some(path) = &c.init {
        let tensors = crate::torch::read_safetensors(path)?;
        let (model, names) = crate::torch::import(path, &tensors, shape, ad)?;
        return Ok((model, Some(names)));
    }
    let pb = bar(c.pretrain_steps as u64, "collect: training the target");
    let model = train(
        shape.init(ad),
        &splits.train,
        c,
        c.lr,
        c.pretrain_steps,
        rng,
        Objective::of(c),
        |_, _| pb.inc(1),
    )?;
    pb.finish();
    Ok((model, None))
}

/// Whether training step `step` (from 1) saves a checkpoint: every `every` steps after the
/// first `warmup`.
fn saves(step: usize, warmup: usize, every: usize) -> bool {
    step > warmup && (step - warmup).is_multiple_of(every)
}

/// The runs' starting points, run `seeds − 1` first and run 0 (the trained target) last.
fn starts(
    config: &RunConfig,
    splits: &Splits,
    model: &Classifier,
    regenerated: &Manifest,
    rng: &mut G2dRng,
    ad: &Device,
    alignment_rounds: &mut Vec<usize>,
) -> Result<Vec<Classifier>> {
    let mut starts = Vec::with_capacity(config.collect.seeds);
    for s in (0..config.collect.seeds).rev() {
        let start = match s {
            0 => model.clone(),
            _ => {
                let fresh = fresh_start(config, splits, model, regenerated, s, rng, ad)?;
                aligned(config, model, fresh, alignment_rounds)?
            }
        };
        starts.push(start.train());
    }
    Ok(starts)
}

/// K checkpoints spread over `seeds` runs trained one after the other (see [`starts`]):
/// `save` turns a model into its checkpoint. Returns them with run 0's final model (θ_orig
/// without the vulnerability term; with it, each run first trains `warmup_steps` away from
/// θ_orig).
fn one_by_one(
    model: &Classifier,
    mut fresh: impl FnMut(&mut G2dRng, usize) -> Result<Classifier>,
    objective: Objective,
    splits: &Splits,
    c: &CollectConfig,
    rng: &mut G2dRng,
    save: &mut impl FnMut(&Classifier) -> Vec<f32>,
) -> Result<(Vec<Vec<f32>>, Classifier)> {
    let warmup = c.vulnerability.as_ref().map_or(0, |v| v.warmup_steps);
    let per_seed = c.per_run();
    let mut checkpoints: Vec<Vec<f32>> = Vec::with_capacity(c.checkpoints);
    let mut end = None;
    for s in (0..c.seeds).rev() {
        let count = per_seed.min(c.checkpoints - checkpoints.len());
        let start = if s == 0 {
            model.clone()
        } else {
            fresh(rng, s)?
        };
        let done = train(
            start.train(),
            &splits.train,
            c,
            c.collect_lr,
            warmup + count * c.save_every,
            rng,
            objective,
            |step, m| {
                if saves(step, warmup, c.save_every) {
                    checkpoints.push(save(m));
                }
            },
        )?;
        end = Some(done);
    }
    Ok((checkpoints, end.expect("run 0").valid()))
}

/// The same with the vulnerability term and several runs, trained side by side
/// ([`train_jointly`]); the checkpoints keep the runs' order, cut to K.
fn jointly(
    starts: Vec<Classifier>,
    source: &Classifier,
    v: &CollectVulnerability,
    splits: &Splits,
    c: &CollectConfig,
    rng: &mut G2dRng,
    save: &mut impl FnMut(&Classifier) -> Vec<f32>,
) -> Result<(Vec<Vec<f32>>, Classifier)> {
    let mut runs = vec![Vec::new(); starts.len()];
    let steps = v.warmup_steps + c.per_run() * c.save_every;
    let ends = train_jointly(starts, source, v, &splits.train, c, steps, rng, {
        |run, step, m| {
            if saves(step, v.warmup_steps, c.save_every) {
                runs[run].push(save(m));
            }
        }
    })?;
    let mut all = runs.concat();
    all.truncate(c.checkpoints);
    Ok((all, ends.into_iter().last().expect("run 0").valid()))
}

/// Runs stage 1.
pub fn collect(config: &RunConfig, splits: &Splits, device: &Device) -> Result<Collected> {
    let started = std::time::Instant::now();
    let c = &config.collect;
    let shape = c.classifier(splits);
    shape.validate("collect.hidden")?;
    let ad = device.clone().autodiff();
    ad.seed(config.seed);
    let mut rng = G2dRng::seeded(config.seed);

    let (model, torch_names) = target(c, &shape, splits, &mut rng, &ad)?;

    let regenerated = Manifest::regenerated(&model, c.scope);
    let fixed = Manifest::fixed(&model, c.scope);
    let freeze = FreezeOutside {
        layers: c.scope.layers(&model),
    };
    let model = map_named(model, freeze);

    let source = model.valid();
    let pb = bar(c.checkpoints as u64, "collect: saving checkpoints");
    let mut save = |m: &Classifier| {
        pb.inc(1);
        regenerated.flatten(m)
    };
    let mut alignment_rounds = Vec::new();
    let (checkpoints, end) = match &c.vulnerability {
        Some(v) if c.seeds > 1 => {
            let starts = match v.from_target {
                true => vec![model.clone().train(); c.seeds],
                false => starts(
                    config,
                    splits,
                    &model,
                    &regenerated,
                    &mut rng,
                    &ad,
                    &mut alignment_rounds,
                )?,
            };
            jointly(starts, &source, v, splits, c, &mut rng, &mut save)?
        }
        _ => {
            let sources = std::slice::from_ref(&source);
            let objective = Objective {
                away: c.vulnerability.as_ref().map(|v| (sources, v)),
                ..Objective::of(c)
            };
            let fresh = |rng: &mut G2dRng, s| {
                let fresh = fresh_start(config, splits, &model, &regenerated, s, rng, &ad)?;
                aligned(config, &model, fresh, &mut alignment_rounds)
            };
            one_by_one(&model, fresh, objective, splits, c, &mut rng, &mut save)?
        }
    };
    pb.finish();

    let target = match c.vulnerability {
        Some(_) => source,
        None => end,
    };
    let theta_orig = regenerated.flatten(&target);
    let info = CollectInfo {
        classifier: shape,
        scope: c.scope,
        original_val_accuracy: test_accuracy(&target, &splits.validation, device),
        original_test_accuracy: test_accuracy(&target, &splits.test, device),
        regenerated,
        fixed,
        torch_names,
        alignment_rounds,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(Collected {
        target,
        info,
        checkpoints,
        theta_orig,
    })
}
