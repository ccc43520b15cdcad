//! The G2D training objective.
//!
//! ```text
//! L = L_diffusion − λ · L_distance + μ_task · L_task + μ_vuln · L_vulnerability
//!       + μ_cross · L_cross
//! L_diffusion = mean ‖ε − ε̂(x_t, t)‖²                       (DDPM's ε-prediction MSE)
//! L_distance  = mean_b w(t_b) · mean_i |D(clip(x̂₀_b))_i − θ̃_orig,i|  (G2D's regulariser)
//! L_task      = mean_b w(t_b) · CE(f(θ_b; x_train), y_train)        (function-space terms,
//! L_vulnerability = mean_b w(t_b) · CE(f(θ_b; x_adv), y_adv)         MLP only)
//! L_cross     = mean_b min(w(t_b), w(t_b−1)) · CE(f(θ_b; x_b−1), y_train)
//! x_b = clip(x_train + ε · sign ∇ₓ CE(f(θ_b; x_train), y_train), 0, 1)   (FGSM on set b, held fixed;
//!       diffusion.cross_attack with k > 1 steps of α: PGD from x_train, kept within ε of it)
//! θ_b = D(clip(x̂₀_b)) · σ_K + μ_K   (de-standardised), f the classifier with θ_b installed
//! x̂₀ = (x_t − √(1−ᾱ_t)·ε̂) / √ᾱ_t
//! w(t) = min(SNR_t, 5),  SNR_t = ᾱ_t / (1 − ᾱ_t)
//! ```
//!
//! D is the frozen decoder (applied after mapping x̂₀ back from the standardised latent space)
//! and θ̃ are parameters standardised per position over the K checkpoints, so the distance is
//! measured in units of the checkpoints' own spread and λ does not depend on the scale of the
//! layer. Both terms are means, which keeps λ comparable across scopes of different sizes.
//!
//! D(x̂₀) stands in for the generated parameters θ_gen: at step t it is the model's estimate of
//! where sampling will end. Through x̂₀ the regulariser's pull on ε̂ grows like 1/SNR_t, so
//! unweighted it would act almost only at high noise, where x̂₀ is mostly clipped noise and the
//! push distorts the start of every trajectory (measured: accuracy collapsed before the distance
//! moved). Weighting each sample by min(SNR_t, 5) (the min-SNR-γ weighting, γ = 5) makes the
//! shift it asks of x̂₀ the same at every timestep up to that cap, so the endpoint moves.
//! x̂₀ is clipped to the range of the training latents before decoding, so the regulariser
//! cannot win by pushing latents off to where the decoder produces garbage; its gain is bounded
//! and accuracy is always reported beside distance. λ = 0 skips the decoder and is exactly
//! p-diff's latent DDPM loss.
//!
//! Parameter distance is not functional distance: L1 grows with no change in function when
//! hidden units are rescaled or permuted. The function-space terms look at what the generated
//! parameters do. The task term holds accuracy in the loss (not only in the guard); the
//! vulnerability term asks each generated model to classify correctly the adversarial examples
//! crafted on θ_orig and on the checkpoints — what fools them must not fool the new model (the
//! idea of ensemble adversarial training). The cross term is for the cross-session attacker,
//! who crafts on one generated model and attacks another: each set of the batch is scored on
//! the examples crafted on its neighbour (b − 1, cyclically), so what fools one sample
//! must not fool the next (the idea of DVERGE's cross-training, on the sampler's own output).
//! The examples are held fixed: the gradient reaches the denoiser through the set that is
//! scored, not through the one that crafted them, and a pair counts as much as its noisier
//! member's weight. All three are weighted per sample like the distance term, and each is
//! skipped, leaving the loss exactly as above, when its weight is 0.

use burn::prelude::*;

use super::denoiser::Denoiser;
use super::sampler::predict_x0;
use super::schedule::Schedule;
use super::LatentSpace;
use crate::attacks::{signed_steps, LinfAttack};
use crate::autoencoder::Decoder;
use crate::functional::FunctionalMlp;

/// γ of the min-SNR weighting of the distance term.
pub const SNR_CAP: f64 = 5.0;

/// Everything the regulariser needs besides the batch.
pub struct Regularizer<'a> {
    pub lambda_l1: f32,
    pub decoder: &'a Decoder,
    pub latent_space: &'a LatentSpace,
    /// θ_orig standardised, `[1, param_len]`; with run centres (`autoencoder.centre_runs`)
    /// one row per latent of the batch, each relative to that latent's run.
    pub theta_orig: Tensor<2>,
    pub clip: f32,
    /// The function-space terms; `None` (or both weights 0) leaves them out.
    pub function: Option<FunctionTerms<'a>>,
}

/// The weights of the function-space terms and what they need besides the batch.
pub struct FunctionTerms<'a> {
    /// μ_task, on the cross-entropy of a clean training batch.
    pub task_weight: f32,
    /// μ_vuln, on the cross-entropy of adversarial examples crafted on θ_orig and the
    /// checkpoints.
    pub vulnerability_weight: f32,
    /// μ_cross, on the cross-entropy of each set on the examples crafted on its neighbour.
    pub cross_weight: f32,
    /// The attack that crafts those examples from the clean images (never a random start).
    pub cross_attack: LinfAttack,
    pub classifier: &'a FunctionalMlp,
    /// Per-position mean and standard deviation of θ over the K checkpoints, `[1, param_len]`;
    /// with run centres the mean is one row per latent of the batch, its run's mean added.
    pub param_mean: Tensor<2>,
    pub param_std: Tensor<2>,
}

impl FunctionTerms<'_> {
    fn active(&self) -> bool {
        self.task_weight != 0.0 || self.vulnerability_weight != 0.0 || self.cross_weight != 0.0
    }
}

/// Images and labels the function-space terms see this step.
pub struct FunctionBatch {
    pub clean: (Tensor<2>, Tensor<1, Int>),
    pub adversarial: (Tensor<2>, Tensor<1, Int>),
}

/// The loss terms of one batch.
pub struct G2dLoss {
    pub total: Tensor<1>,
    pub diffusion: Tensor<1>,
    /// `None` when λ = 0 (nothing is decoded).
    pub distance: Option<Tensor<1>>,
    /// `None` when the function-space terms are off.
    pub task: Option<Tensor<1>>,
    pub vulnerability: Option<Tensor<1>>,
    pub cross: Option<Tensor<1>>,
}

/// The function-space terms of the decoded parameters `theta_gen` (standardised,
/// `[batch, param_len]`), weighted per sample; each `None` when its weight is 0.
fn function_terms(
    f: &FunctionTerms,
    b: &FunctionBatch,
    theta_gen: Tensor<2>,
    weight: Tensor<1>,
) -> [Option<Tensor<1>>; 3] {
    let theta = theta_gen * f.param_std.clone() + f.param_mean.clone();
    let term = |(images, labels): &(Tensor<2>, Tensor<1, Int>)| {
        let ce = f
            .classifier
            .cross_entropy(theta.clone(), images.clone(), labels.clone()); // [batch]
        (ce * weight.clone()).mean()
    };
    [
        (f.task_weight != 0.0).then(|| term(&b.clean)),
        (f.vulnerability_weight != 0.0).then(|| term(&b.adversarial)),
        (f.cross_weight != 0.0).then(|| cross_term(f, &b.clean, theta.clone(), weight.clone())),
    ]
}

/// L_cross: set b's cross-entropy on the examples crafted on set b − 1 (cyclically).
fn cross_term(
    f: &FunctionTerms,
    (images, labels): &(Tensor<2>, Tensor<1, Int>),
    theta: Tensor<2>,
    weight: Tensor<1>,
) -> Tensor<1> {
    let [sets, _] = theta.dims();
    let crafted = craft_each(f, theta.clone().detach(), images.clone(), labels.clone()); // [sets, n, 784]: row b crafted on set b
    let shift = |x: Tensor<3>| match sets {
        1 => x,
        _ => Tensor::cat(
            vec![x.clone().narrow(0, sets - 1, 1), x.narrow(0, 0, sets - 1)],
            0,
        ),
    };
    let ce = f
        .classifier
        .cross_entropy_each(theta, shift(crafted), labels.clone()); // [sets]
    let previous = shift(weight.clone().reshape([sets, 1, 1])).reshape([sets]);
    (ce * weight.min_pair(previous)).mean()
}

/// Examples crafted on each set (held fixed) by `cross_attack` from the clean `images`
/// (`[n, 784]`). → `[sets, n, 784]`
fn craft_each(
    f: &FunctionTerms,
    theta: Tensor<2>,
    images: Tensor<2>,
    labels: Tensor<1, Int>,
) -> Tensor<3> {
    let clean = images.unsqueeze_dim::<3>(0);
    signed_steps(clean.clone(), clean, &f.cross_attack, |x| {
        f.classifier
            .input_gradient(theta.clone(), x, labels.clone())
    })
    .detach()
}

/// Computes the G2D loss for clean latents `z0` `[batch, channels, len]` at timesteps `t` with
/// noise `eps` of the same shape; `batch` feeds the function-space terms when they are on.
pub fn g2d_loss(
    denoiser: &Denoiser,
    schedule: &Schedule,
    z0: Tensor<3>,
    t: &[usize],
    eps: Tensor<3>,
    regularizer: &Regularizer,
    function_batch: Option<&FunctionBatch>,
) -> G2dLoss {
    let device = z0.device();
    let batch = t.len();
    let per_sample = |f: &dyn Fn(f64) -> f64| {
        let v: Vec<f32> = t
            .iter()
            .map(|&t| f(schedule.alpha_bars[t]) as f32)
            .collect();
        Tensor::<1>::from_floats(v.as_slice(), &device).reshape([batch, 1, 1])
    };
    let sqrt_ab = per_sample(&|ab| ab.sqrt());
    let weight = per_sample(&|ab| (ab / (1.0 - ab)).min(SNR_CAP)).reshape([batch, 1]);
    let sqrt_1m_ab = per_sample(&|ab| (1.0 - ab).sqrt());
    let x_t = z0 * sqrt_ab.clone() + eps.clone() * sqrt_1m_ab.clone();

    let t_in: Vec<f32> = t.iter().map(|&t| t as f32).collect();
    let eps_hat = denoiser.forward(
        x_t.clone(),
        Tensor::<1>::from_floats(t_in.as_slice(), &device),
    );
    let diffusion = (eps_hat.clone() - eps).powi_scalar(2).mean();

    let function = regularizer
        .function
        .as_ref()
        .filter(|f| f.active())
        .zip(function_batch);
    if regularizer.lambda_l1 == 0.0 && function.is_none() {
        return G2dLoss {
            total: diffusion.clone(),
            diffusion,
            distance: None,
            task: None,
            vulnerability: None,
            cross: None,
        };
    }
    let x0 =
        predict_x0(x_t, eps_hat, sqrt_ab, sqrt_1m_ab).clamp(-regularizer.clip, regularizer.clip);
    let theta_gen = regularizer
        .decoder
        .forward(regularizer.latent_space.to_latent(x0)); // [batch, param_len]
    let mut total = diffusion.clone();
    let mut distance = None;
    if regularizer.lambda_l1 != 0.0 {
        let per_sample = (theta_gen.clone() - regularizer.theta_orig.clone())
            .abs()
            .mean_dim(1); // [batch, 1]
        let d = (per_sample * weight.clone()).mean();
        total = total - d.clone() * regularizer.lambda_l1;
        distance = Some(d);
    }
    let [mut task, mut vulnerability, mut cross] = [None, None, None];
    if let Some((f, b)) = function {
        let terms = function_terms(f, b, theta_gen, weight.reshape([batch]));
        let weights = [f.task_weight, f.vulnerability_weight, f.cross_weight];
        for (term, w) in terms.iter().zip(weights) {
            if let Some(l) = term {
                total = total + l.clone() * w;
            }
        }
        [task, vulnerability, cross] = terms;
    }
    G2dLoss {
        total,
        diffusion,
        distance,
        task,
        vulnerability,
        cross,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoencoder::AutoencoderConfig;
    use crate::backend::cpu_device;
    use crate::diffusion::denoiser::DenoiserConfig;
    use crate::diffusion::schedule::ScheduleConfig;
    use crate::normalize::Normalizer;

    #[test]
    fn lambda_zero_is_exactly_the_epsilon_mse() {
        let device = cpu_device();
        let ae = AutoencoderConfig::new(64).with_channels(vec![8]);
        let (channels, len) = (ae.latent_channels, ae.latent_len());
        let decoder = ae.init_decoder(&device);
        let latent_norm = Normalizer {
            mean: vec![0.0; ae.latent_size()],
            std: vec![1.0; ae.latent_size()],
        };
        let latent_space = LatentSpace::new(&latent_norm, channels, len, &device);
        let denoiser = DenoiserConfig::new(channels)
            .with_channels(8)
            .with_time_dim(8)
            .init(&device);
        let schedule = Schedule::new(&ScheduleConfig::new().with_timesteps(50));
        let z0 = Tensor::<3>::random(
            [3, channels, len],
            burn::tensor::Distribution::Default,
            &device,
        );
        let eps = Tensor::<3>::random(
            [3, channels, len],
            burn::tensor::Distribution::Default,
            &device,
        );
        let t = [0usize, 17, 49];
        let regularizer = Regularizer {
            lambda_l1: 0.0,
            decoder: &decoder,
            latent_space: &latent_space,
            theta_orig: Tensor::zeros([1, 64], &device),
            clip: 3.0,
            function: None,
        };
        let loss = g2d_loss(
            &denoiser,
            &schedule,
            z0.clone(),
            &t,
            eps.clone(),
            &regularizer,
            None,
        );
        assert!(loss.distance.is_none(), "λ = 0 decodes nothing");

        // DDPM's forward process and ε-MSE, written out sample by sample.
        let mut x_t = Vec::new();
        for (b, &tb) in t.iter().enumerate() {
            let ab = schedule.alpha_bars[tb];
            let z = z0.clone().narrow(0, b, 1);
            let e = eps.clone().narrow(0, b, 1);
            x_t.push(z * (ab.sqrt() as f32) + e * ((1.0 - ab).sqrt() as f32));
        }
        let t_in = Tensor::<1>::from_floats([0.0, 17.0, 49.0], &device);
        let eps_hat = denoiser.forward(Tensor::cat(x_t, 0), t_in);
        let mse = (eps_hat - eps).powi_scalar(2).mean().into_scalar::<f32>();
        let total = loss.total.into_scalar::<f32>();
        assert_eq!(total, loss.diffusion.into_scalar::<f32>());
        assert!((total - mse).abs() <= 1e-6 * mse.abs(), "{total} vs {mse}");
    }

    /// A tiny MLP-scope setup: decoder, latent space, denoiser and the function-space pieces.
    struct Setup {
        decoder: Decoder,
        latent_space: LatentSpace,
        classifier: FunctionalMlp,
        param_len: usize,
        shape: [usize; 2],
    }

    fn setup() -> Setup {
        use crate::classifier::{Arch, Classifier};
        use crate::params::{Manifest, Scope};
        let device = cpu_device();
        let mlp = Classifier::new(Arch::Mlp, &device);
        let manifest = Manifest::regenerated(&mlp, Scope::Last);
        let ae = AutoencoderConfig::new(manifest.len()).with_channels(vec![8]);
        let latent_norm = Normalizer {
            mean: vec![0.0; ae.latent_size()],
            std: vec![1.0; ae.latent_size()],
        };
        let shape = [ae.latent_channels, ae.latent_len()];
        Setup {
            decoder: ae.init_decoder(&device),
            latent_space: LatentSpace::new(&latent_norm, shape[0], shape[1], &device),
            classifier: FunctionalMlp::new(Arch::Mlp, &mlp, &manifest).unwrap(),
            param_len: manifest.len(),
            shape,
        }
    }

    /// The loss of a fixed batch; `weights` = (μ_task, μ_vuln, μ_cross), `None` builds no terms
    /// at all.
    fn loss_with(
        s: &Setup,
        denoiser: &Denoiser,
        weights: Option<(f32, f32, f32)>,
        lambda: f32,
    ) -> G2dLoss {
        let device = denoiser.devices()[0].clone();
        let [c, l] = s.shape;
        let schedule = Schedule::new(&ScheduleConfig::new().with_timesteps(50));
        let z0 =
            Tensor::<1>::from_floats(vec![0.3; 2 * c * l].as_slice(), &device).reshape([2, c, l]);
        let eps =
            Tensor::<1>::from_floats(vec![-0.2; 2 * c * l].as_slice(), &device).reshape([2, c, l]);
        let images =
            Tensor::<1>::from_floats(vec![0.5; 3 * 784].as_slice(), &device).reshape([3, 784]);
        let labels = Tensor::<1, Int>::from_ints([1, 2, 3], &device);
        let batch = FunctionBatch {
            clean: (images.clone(), labels.clone()),
            adversarial: (images * 0.5, labels),
        };
        let regularizer = Regularizer {
            lambda_l1: lambda,
            decoder: &s.decoder,
            latent_space: &s.latent_space,
            theta_orig: Tensor::zeros([1, s.param_len], &device),
            clip: 3.0,
            function: weights.map(|(task, vuln, cross)| FunctionTerms {
                task_weight: task,
                vulnerability_weight: vuln,
                cross_weight: cross,
                cross_attack: LinfAttack::fgsm(0.1),
                classifier: &s.classifier,
                param_mean: Tensor::zeros([1, s.param_len], &device),
                param_std: Tensor::ones([1, s.param_len], &device),
            }),
        };
        g2d_loss(
            denoiser,
            &schedule,
            z0,
            &[3, 40],
            eps,
            &regularizer,
            Some(&batch),
        )
    }

    #[test]
    fn function_terms_at_zero_weight_leave_the_loss_exactly_as_before() {
        let s = setup();
        let denoiser = DenoiserConfig::new(s.shape[0])
            .with_channels(8)
            .with_time_dim(8)
            .init(&cpu_device());
        for lambda in [0.0, 2.0] {
            let zero = loss_with(&s, &denoiser, Some((0.0, 0.0, 0.0)), lambda);
            assert!(zero.task.is_none() && zero.vulnerability.is_none() && zero.cross.is_none());
            let without = loss_with(&s, &denoiser, None, lambda);
            assert_eq!(
                zero.total.into_scalar::<f32>(),
                without.total.into_scalar::<f32>()
            );
        }
        let on = loss_with(&s, &denoiser, Some((1.0, 0.5, 0.25)), 0.0);
        let (task, vuln) = (on.task.unwrap(), on.vulnerability.unwrap());
        let want = on.diffusion.into_scalar::<f32>()
            + task.into_scalar::<f32>()
            + 0.5 * vuln.into_scalar::<f32>()
            + 0.25 * on.cross.unwrap().into_scalar::<f32>();
        assert!((on.total.into_scalar::<f32>() - want).abs() < 1e-5);
    }

    #[test]
    fn function_terms_reach_the_denoiser_weights() {
        use burn::module::Module;
        let s = setup();
        let ad = cpu_device().autodiff();
        let denoiser = DenoiserConfig::new(s.shape[0])
            .with_channels(8)
            .with_time_dim(8)
            .init(&ad);
        let s = Setup {
            decoder: s.decoder.to_device(&ad).no_grad(),
            latent_space: LatentSpace::new(
                &Normalizer {
                    mean: vec![0.0; s.shape[0] * s.shape[1]],
                    std: vec![1.0; s.shape[0] * s.shape[1]],
                },
                s.shape[0],
                s.shape[1],
                &ad,
            ),
            ..s
        };
        // Each term alone: its gradient must move the denoiser.
        for (name, weights) in [("task", (1.0, 0.0, 0.0)), ("cross", (0.0, 0.0, 1.0))] {
            let loss = loss_with(&s, &denoiser, Some(weights), 0.0);
            let term = match name {
                "task" => loss.task,
                _ => loss.cross,
            };
            let grads = term.unwrap().backward();
            let mut total = GradNorm {
                grads: &grads,
                norm: 0.0,
            };
            denoiser.visit(&mut total);
            assert!(
                total.norm > 0.0,
                "the {name} term has no gradient w.r.t. the denoiser"
            );
        }
    }

    #[test]
    fn the_cross_term_scores_each_set_on_its_neighbours_fgsm_and_pgd_examples() {
        use crate::classifier::{Arch, Classifier};
        use crate::params::{Manifest, Scope};
        use burn::tensor::activation::log_softmax;
        let device = cpu_device();
        let base = Classifier::new(Arch::Mlp, &device);
        let manifest = Manifest::regenerated(&base, Scope::All);
        let models: Vec<Classifier> = (0..3)
            .map(|_| Classifier::new(Arch::Mlp, &device))
            .collect();
        let sets: Vec<Vec<f32>> = models.iter().map(|m| manifest.flatten(m)).collect();
        let theta = Tensor::<1>::from_floats(sets.concat().as_slice(), &device)
            .reshape([3, manifest.len()]);
        let images = Tensor::<2>::random([5, 784], burn::tensor::Distribution::Default, &device);
        let labels = Tensor::<1, Int>::from_ints([2, 0, 9, 4, 4], &device);
        let classifier = FunctionalMlp::new(Arch::Mlp, &base, &manifest).unwrap();
        let weight = Tensor::<1>::from_floats([1.0, 0.5, 2.0], &device);

        // Written out with the classifiers: set b on the examples crafted on set b − 1, by
        // `steps` signed-gradient steps (one of ε: FGSM) kept within ε of the clean images.
        let ce = |m: &Classifier, x: Tensor<2>| {
            let picked = log_softmax(m.forward(x), 1).gather(1, labels.clone().reshape([5, 1]));
            -picked.mean().into_scalar::<f32>()
        };
        let craft = |m: &Classifier, steps: usize| {
            let step = if steps == 1 { 0.1 } else { 0.25 / steps as f32 };
            let mut x = images.clone();
            for _ in 0..steps {
                let g = m.input_gradient(x.clone(), labels.clone()).sign();
                x = (x + g * step)
                    .max_pair(images.clone() - 0.1)
                    .min_pair(images.clone() + 0.1)
                    .clamp(0.0, 1.0);
            }
            x
        };
        for steps in [1, 3] {
            let terms = FunctionTerms {
                task_weight: 0.0,
                vulnerability_weight: 0.0,
                cross_weight: 1.0,
                cross_attack: LinfAttack {
                    epsilon: 0.1,
                    step_size: if steps == 1 { 0.1 } else { 0.25 / steps as f32 },
                    steps,
                    random_start: false,
                },
                classifier: &classifier,
                param_mean: Tensor::zeros([1, manifest.len()], &device),
                param_std: Tensor::ones([1, manifest.len()], &device),
            };
            let batch = (images.clone(), labels.clone());
            let got =
                cross_term(&terms, &batch, theta.clone(), weight.clone()).into_scalar::<f32>();
            // Set b's weight is min(w_b, w_{b−1}): min(1, 2), min(0.5, 1), min(2, 0.5).
            let want = [(0, 2, 1.0), (1, 0, 0.5), (2, 1, 0.5)]
                .iter()
                .map(|&(b, from, w)| w * ce(&models[b], craft(&models[from], steps)))
                .sum::<f32>()
                / 3.0;
            assert!(
                (got - want).abs() <= 1e-4 * want.abs(),
                "{steps} steps: {got} vs {want}"
            );
        }
    }

    /// Σ|∂L/∂w| over a module's weights.
    struct GradNorm<'a> {
        grads: &'a burn::tensor::Gradients,
        norm: f32,
    }

    impl burn::module::ModuleVisitor for GradNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if let Some(g) = param.val().grad(self.grads) {
                self.norm += g.abs().sum().into_scalar::<f32>();
            }
        }
    }
}
