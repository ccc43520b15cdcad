//! Collection's training loop: the loss of one step (clean, adversarial, away from fixed
//! models) and the optimizer steps of one run or of several side by side.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::super::config::{CollectConfig, CollectVulnerability};
use crate::attacks::{craft, craft_ensemble, LinfAttack};
use crate::classifier::{cross_entropy, images_tensor, labels_tensor, Classifier};
use crate::data::Images;
use crate::error::{G2dError, Result};
use crate::rng::G2dRng;

/// What a training step's loss adds to the clean cross-entropy.
#[derive(Clone, Copy, Default)]
pub(super) struct Objective<'a> {
    /// PGD adversarial training: the loss is the mean of the clean cross-entropy and that on
    /// examples this attack crafts against the current weights.
    pub adversarial: Option<&'a LinfAttack>,
    /// Away from fixed models' weaknesses: + weight × the cross-entropy on examples crafted
    /// against their mean loss (θ_orig, and in joint collection the other runs).
    pub away: Option<(&'a [Classifier], &'a CollectVulnerability)>,
}

impl<'a> Objective<'a> {
    pub fn of(c: &'a CollectConfig) -> Self {
        Self {
            adversarial: c.adversarial.as_ref(),
            away: None,
        }
    }

    /// The loss on one batch of `model`.
    fn loss(
        &self,
        model: &Classifier,
        images: Tensor<2>,
        labels: Tensor<1, Int>,
        rng: &mut G2dRng,
    ) -> Tensor<1> {
        let mut loss = cross_entropy(model.forward(images.clone()), labels.clone());
        if let Some(attack) = self.adversarial {
            let crafted = craft(
                &model.valid(),
                images.clone().inner(),
                labels.clone().inner(),
                attack,
                rng,
            );
            let adv = cross_entropy(model.forward(Tensor::from_inner(crafted)), labels.clone());
            loss = (loss + adv) / 2.0;
        }
        if let Some((sources, v)) = self.away {
            let (x, y) = (images.inner(), labels.clone().inner());
            let crafted = craft_ensemble(sources, x, y, &v.attack, rng);
            let away = cross_entropy(model.forward(Tensor::from_inner(crafted)), labels);
            loss = loss + away * v.weight;
        }
        loss
    }
}

/// One model's optimizer and its shuffled pass over the training images.
struct Trainer<'a> {
    data: &'a Images,
    /// Where the models being trained live (autodiff).
    device: Device,
    batch_size: usize,
    lr: f64,
    steps: usize,
    optim: ModuleOptimizer,
    order: Vec<usize>,
}

impl<'a> Trainer<'a> {
    fn new(data: &'a Images, model: &Classifier, c: &CollectConfig, lr: f64, steps: usize) -> Self {
        Self {
            data,
            device: model.devices()[0].clone(),
            batch_size: c.batch_size,
            lr,
            steps,
            optim: c.optimizer.init(),
            order: Vec::new(),
        }
    }

    /// Step `step` (from 1) of `steps`: one optimizer step of `model` on the next mini-batch
    /// with the `objective`'s loss. A loss that is not finite (checked every
    /// [`FINITE_CHECK_EVERY`] steps and at the last) stops training with
    /// [`G2dError::Diverged`].
    fn step(
        &mut self,
        model: Classifier,
        step: usize,
        objective: &Objective,
        rng: &mut G2dRng,
    ) -> Result<Classifier> {
        if self.order.len() < self.batch_size {
            self.order = (0..self.data.len()).collect();
            rng.shuffle(&mut self.order);
        }
        let idx: Vec<usize> = self.order.split_off(self.order.len() - self.batch_size);
        let batch = self.data.select(&idx);
        let images = images_tensor(&batch.pixels, batch.pixels_per_image(), &self.device);
        let labels = labels_tensor(&batch.labels, &self.device);
        let loss = objective.loss(&model, images, labels, rng);
        if step.is_multiple_of(FINITE_CHECK_EVERY) || step == self.steps {
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
        Ok(self.optim.step(self.lr, model, grads))
    }
}

/// Trains `model` for `steps` optimizer steps (see [`Trainer::step`]), calling `after_step`
/// with the step number (from 1) and the model.
#[allow(clippy::too_many_arguments)]
pub(super) fn train(
    mut model: Classifier,
    train: &Images,
    c: &CollectConfig,
    lr: f64,
    steps: usize,
    rng: &mut G2dRng,
    objective: Objective,
    mut after_step: impl FnMut(usize, &Classifier),
) -> Result<Classifier> {
    let mut trainer = Trainer::new(train, &model, c, lr, steps);
    for step in 1..=steps {
        model = trainer.step(model, step, &objective, rng)?;
        after_step(step, &model);
    }
    Ok(model)
}

/// Runs trained side by side from `starts` for `steps` steps at `collect_lr`: at every step
/// each run adds `v.weight` × the cross-entropy on examples crafted against the mean loss of
/// `source` (θ_orig) and the other runs' current weights, so that what fools one run does not
/// fool the others (round-robin diversity). `after_step` gets the run's index, the step and
/// the run's model.
#[allow(clippy::too_many_arguments)]
pub(super) fn train_jointly(
    starts: Vec<Classifier>,
    source: &Classifier,
    v: &CollectVulnerability,
    train: &Images,
    c: &CollectConfig,
    steps: usize,
    rng: &mut G2dRng,
    mut after_step: impl FnMut(usize, usize, &Classifier),
) -> Result<Vec<Classifier>> {
    let mut trainers: Vec<Trainer> = starts
        .iter()
        .map(|start| Trainer::new(train, start, c, c.collect_lr, steps))
        .collect();
    let mut models = starts;
    for step in 1..=steps {
        for run in 0..models.len() {
            let others = models.iter().enumerate().filter(|(o, _)| *o != run);
            let sources: Vec<Classifier> = std::iter::once(source.clone())
                .chain(others.map(|(_, m)| m.valid()))
                .collect();
            let objective = Objective {
                away: Some((&sources, v)),
                ..Objective::of(c)
            };
            models[run] = trainers[run].step(models[run].clone(), step, &objective, rng)?;
            after_step(run, step, &models[run]);
        }
    }
    Ok(models)
}

/// Steps between two reads of the training loss (each read waits for the device).
const FINITE_CHECK_EVERY: usize = 50;
