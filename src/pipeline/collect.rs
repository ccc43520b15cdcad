//! Stage 1, collect: train the target, then keep training only the regenerated tensors and save
//! one checkpoint every `save_every` steps until there are K, as p-diff does. θ_orig, the
//! deployed parameters, is the last checkpoint of the main run.

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{CollectConfig, RunConfig};
use super::progress::bar;
use crate::attacks::{craft, LinfAttack};
use crate::classifier::{cross_entropy, images_tensor, labels_tensor, Classifier};
use crate::data::{Images, Splits};
use crate::error::{G2dError, Result};
use crate::generate::predict;
use crate::metrics::accuracy;
use crate::params::{map_named, Manifest, NamedMapper, Scope};
use crate::rng::G2dRng;

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

/// Trains `model` for `steps` optimizer steps on shuffled mini-batches, calling `after_step`
/// with the step number (from 1) and the model. With `adversarial`, each batch's loss is the
/// mean of the clean cross-entropy and that on examples the attack crafts against the current
/// weights (PGD adversarial training). A loss that is not finite (checked every
/// [`FINITE_CHECK_EVERY`] steps and at the last) stops training with [`G2dError::Diverged`].
#[allow(clippy::too_many_arguments)]
fn train(
    mut model: Classifier,
    train: &Images,
    c: &CollectConfig,
    lr: f64,
    steps: usize,
    rng: &mut G2dRng,
    adversarial: Option<&LinfAttack>,
    mut after_step: impl FnMut(usize, &Classifier),
) -> Result<Classifier> {
    let device = model.devices()[0].clone();
    let mut optim = c.optimizer.init();
    let batch_size = c.batch_size;
    let mut order: Vec<usize> = Vec::new();
    for step in 1..=steps {
        if order.len() < batch_size {
            order = (0..train.len()).collect();
            rng.shuffle(&mut order);
        }
        let idx: Vec<usize> = order.split_off(order.len() - batch_size);
        let batch = train.select(&idx);
        let images = images_tensor(&batch.pixels, batch.pixels_per_image(), &device);
        let labels = labels_tensor(&batch.labels, &device);
        let mut loss = cross_entropy(model.forward(images.clone()), labels.clone());
        if let Some(attack) = adversarial {
            let crafted = craft(
                &model.valid(),
                images.inner(),
                labels.clone().inner(),
                attack,
                rng,
            );
            let adv = cross_entropy(model.forward(Tensor::from_inner(crafted)), labels);
            loss = (loss + adv) / 2.0;
        }
        if step % FINITE_CHECK_EVERY == 0 || step == steps {
            let value = loss.clone().into_scalar::<f32>();
            if !value.is_finite() {
                return Err(G2dError::Diverged {
                    stage: "collect".into(),
                    step,
                    loss: value,
                });
            }
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
        after_step(step, &model);
    }
    Ok(model)
}

/// Steps between two reads of the training loss (each read waits for the device).
const FINITE_CHECK_EVERY: usize = 50;

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
        adversarial,
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
        c.adversarial.as_ref(),
        |_, _| {},
    )
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
        c.adversarial.as_ref(),
        |_, _| pb.inc(1),
    )?;
    pb.finish();
    Ok((model, None))
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

    // K checkpoints spread over `seeds` runs; run 0 continues from the trained target and
    // ends on θ_orig, the others start the regenerated tensors from a fresh initialisation.
    let per_seed = c.checkpoints.div_ceil(c.seeds);
    let pb = bar(c.checkpoints as u64, "collect: saving checkpoints");
    let mut checkpoints: Vec<Vec<f32>> = Vec::with_capacity(c.checkpoints);
    let mut runs: Vec<(usize, Classifier)> = Vec::new();
    for s in (0..c.seeds).rev() {
        let count = per_seed.min(c.checkpoints - checkpoints.len());
        let start = if s == 0 {
            model.clone()
        } else {
            fresh_start(config, splits, &model, &regenerated, s, &mut rng, &ad)?
        };
        let start = start.train();
        let done = train(
            start,
            &splits.train,
            c,
            c.collect_lr,
            count * c.save_every,
            &mut rng,
            c.adversarial.as_ref(),
            |step, m| {
                if step % c.save_every == 0 {
                    checkpoints.push(regenerated.flatten(m));
                    pb.inc(1);
                }
            },
        )?;
        runs.push((s, done));
    }
    pb.finish();

    let target = runs.pop().expect("run 0").1.valid();
    let theta_orig = regenerated.flatten(&target);
    let info = CollectInfo {
        classifier: shape,
        scope: c.scope,
        original_val_accuracy: test_accuracy(&target, &splits.validation, device),
        original_test_accuracy: test_accuracy(&target, &splits.test, device),
        regenerated,
        fixed,
        torch_names,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(Collected {
        target,
        info,
        checkpoints,
        theta_orig,
    })
}
