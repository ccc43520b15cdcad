//! The G2D training objective.
//!
//! ```text
//! L = L_diffusion − λ · L_distance
//! L_diffusion = mean ‖ε − ε̂(x_t, t)‖²                       (DDPM's ε-prediction MSE)
//! L_distance  = mean_b w(t_b) · mean_i |D(clip(x̂₀_b))_i − θ̃_orig,i|  (G2D's regulariser)
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

use burn::prelude::*;

use super::denoiser::Denoiser;
use super::sampler::predict_x0;
use super::schedule::Schedule;
use super::LatentSpace;
use crate::autoencoder::Decoder;

/// γ of the min-SNR weighting of the distance term.
pub const SNR_CAP: f64 = 5.0;

/// Everything the regulariser needs besides the batch.
pub struct Regularizer<'a> {
    pub lambda_l1: f32,
    pub decoder: &'a Decoder,
    pub latent_space: &'a LatentSpace,
    /// θ_orig standardised, `[1, param_len]`.
    pub theta_orig: Tensor<2>,
    pub clip: f32,
}

/// The loss terms of one batch.
pub struct G2dLoss {
    pub total: Tensor<1>,
    pub diffusion: Tensor<1>,
    /// `None` when λ = 0 (nothing is decoded).
    pub distance: Option<Tensor<1>>,
}

/// Computes the G2D loss for clean latents `z0` `[batch, channels, len]` at timesteps `t` with
/// noise `eps` of the same shape.
pub fn g2d_loss(
    denoiser: &Denoiser,
    schedule: &Schedule,
    z0: Tensor<3>,
    t: &[usize],
    eps: Tensor<3>,
    regularizer: &Regularizer,
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

    if regularizer.lambda_l1 == 0.0 {
        return G2dLoss {
            total: diffusion.clone(),
            diffusion,
            distance: None,
        };
    }
    let x0 =
        predict_x0(x_t, eps_hat, sqrt_ab, sqrt_1m_ab).clamp(-regularizer.clip, regularizer.clip);
    let theta_gen = regularizer
        .decoder
        .forward(regularizer.latent_space.to_latent(x0)); // [batch, param_len]
    let per_sample_distance = (theta_gen - regularizer.theta_orig.clone())
        .abs()
        .mean_dim(1); // [batch, 1]
    let distance = (per_sample_distance * weight).mean();
    G2dLoss {
        total: diffusion.clone() - distance.clone() * regularizer.lambda_l1,
        diffusion,
        distance: Some(distance),
    }
}
