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
    let clean = images.clone();
    let mut x = images;
    if attack.random_start {
        let n: usize = x.dims().iter().product();
        let start: Vec<f32> = (0..n)
            .map(|_| (rng.uniform() * 2.0 - 1.0) * attack.epsilon)
            .collect();
        let start = Tensor::<1>::from_floats(start.as_slice(), &x.device()).reshape(x.dims());
        x = (x + start).clamp(0.0, 1.0);
    }
    for _ in 0..attack.steps {
        let grad = ensemble_input_gradient(models, x.clone(), labels.clone());
        x = x + grad.sign() * attack.step_size;
        // Project onto the ε-ball around the clean image, then onto the valid pixel range.
        let lower = clean.clone() - attack.epsilon;
        let upper = clean.clone() + attack.epsilon;
        x = x.max_pair(lower).min_pair(upper).clamp(0.0, 1.0);
    }
    x
}
