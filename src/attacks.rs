//! White-box evasion attacks on the classifier (L∞): FGSM and PGD with a random start. Examples
//! are crafted against one set of weights (θ_orig) and then evaluated on others, which is what a
//! moving target has to survive.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classifier::Classifier;
use crate::error::{ensure_range, Result};
use crate::rng::G2dRng;

/// An L∞ attack's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinfAttack {
    /// Radius of the L∞ ball around the clean image.
    pub epsilon: f32,
    /// Step size α (PGD only).
    pub step_size: f32,
    /// Number of steps; 1 with `step_size = epsilon` and no random start is FGSM.
    pub steps: usize,
    pub random_start: bool,
}

impl LinfAttack {
    /// ε in [0, 1] (pixels live in [0, 1]), a step in (0, 1], 1 to 1,000 steps; errors name
    /// `prefix.field`.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        ensure_range(&format!("{prefix}.epsilon"), self.epsilon, 0.0, 1.0)?;
        ensure_range(&format!("{prefix}.step_size"), self.step_size, 1e-6, 1.0)?;
        ensure_range(&format!("{prefix}.steps"), self.steps, 1, 1000)
    }

    pub fn fgsm(epsilon: f32) -> Self {
        Self {
            epsilon,
            step_size: epsilon,
            steps: 1,
            random_start: false,
        }
    }

    /// PGD with the usual MNIST step size of ε/4 (at least 0.01).
    pub fn pgd(epsilon: f32, steps: usize) -> Self {
        Self {
            epsilon,
            step_size: (epsilon / 4.0).max(0.01),
            steps,
            random_start: true,
        }
    }
}

/// The gradient of the cross-entropy loss with respect to the input images.
///
/// # Shapes
///   - images [batch, 784], labels [batch] → gradient [batch, 784]
pub fn input_gradient(model: &Classifier, images: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<2> {
    ensemble_input_gradient(std::slice::from_ref(model), images, labels)
}

/// The gradient of the mean cross-entropy over `models` with respect to the input images:
/// the expectation-over-transformation gradient of an attacker who holds several models.
/// Each model's gradient comes from its hand-written backward pass
/// ([`Classifier::input_gradient`]), so no autodiff is needed.
///
/// # Shapes
///   - images [batch, 784], labels [batch] → gradient [batch, 784]
pub fn ensemble_input_gradient(
    models: &[Classifier],
    images: Tensor<2>,
    labels: Tensor<1, Int>,
) -> Tensor<2> {
    let grads = models
        .iter()
        .map(|m| m.input_gradient(images.clone(), labels.clone()));
    grads.reduce(|a, b| a + b).expect("at least one model") / models.len() as f32
}

/// Crafts adversarial examples against `model`, staying in the ε-ball and in [0, 1].
pub fn craft(
    model: &Classifier,
    images: Tensor<2>,
    labels: Tensor<1, Int>,
    attack: &LinfAttack,
    rng: &mut G2dRng,
) -> Tensor<2> {
    craft_ensemble(std::slice::from_ref(model), images, labels, attack, rng)
}

/// Crafts adversarial examples against the mean loss of `models` (EOT).
pub fn craft_ensemble(
    models: &[Classifier],
    images: Tensor<2>,
    labels: Tensor<1, Int>,
    attack: &LinfAttack,
    rng: &mut G2dRng,
) -> Tensor<2> {
    let mut start = images.clone();
    if attack.random_start {
        let n: usize = start.dims().iter().product();
        let offsets: Vec<f32> = (0..n)
            .map(|_| (rng.uniform() * 2.0 - 1.0) * attack.epsilon)
            .collect();
        let offsets = Tensor::<1>::from_floats(offsets.as_slice(), &start.device());
        start = (start + offsets.reshape(images.dims())).clamp(0.0, 1.0);
    }
    signed_steps(images, start, attack, |x| {
        ensemble_input_gradient(models, x, labels.clone())
    })
}

/// The loop every attack here runs: from `start` (the clean `images`, or a random start in
/// their ε-ball), `attack.steps` steps of `attack.step_size` along the sign of `gradient`,
/// each projected onto the ε-ball around `images` and onto the pixel range [0, 1]. `images`
/// may be of size 1 where `start` is not (one batch of examples per parameter set, crafted
/// from one clean batch): the ball broadcasts.
pub fn signed_steps<const D: usize>(
    images: Tensor<D>,
    start: Tensor<D>,
    attack: &LinfAttack,
    mut gradient: impl FnMut(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let lower = images.clone() - attack.epsilon;
    let upper = images + attack.epsilon;
    let mut x = start;
    for _ in 0..attack.steps {
        x = x.clone() + gradient(x).sign() * attack.step_size;
        x = x
            .max_pair(lower.clone())
            .min_pair(upper.clone())
            .clamp(0.0, 1.0);
    }
    x
}
