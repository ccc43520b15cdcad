//! Stage 3, latent diffusion: the DDPM noise schedule (host constants), the 1D convolutional
//! ε-denoiser, the G2D loss (diffusion MSE minus λ times the L1 distance of the decoded estimate
//! to θ_orig) and the samplers (DDPM ancestral, DDIM).

pub mod denoiser;
pub mod loss;
pub mod sampler;
pub mod schedule;

use burn::prelude::*;

use crate::normalize::Normalizer;

/// The latent normalisation as device tensors, to move between the autoencoder's latent space and
/// the standardised space the diffusion model works in.
#[derive(Clone, Debug)]
pub struct LatentSpace {
    mean: Tensor<3>,
    std: Tensor<3>,
}

impl LatentSpace {
    /// `normalizer` is over flattened latents `[channels × len]`.
    pub fn new(normalizer: &Normalizer, channels: usize, len: usize, device: &Device) -> Self {
        let t = |v: &[f32]| Tensor::<1>::from_floats(v, device).reshape([1, channels, len]);
        Self {
            mean: t(&normalizer.mean),
            std: t(&normalizer.std),
        }
    }

    /// Standardised diffusion space → autoencoder latent.
    pub fn to_latent(&self, z: Tensor<3>) -> Tensor<3> {
        z * self.std.clone() + self.mean.clone()
    }

    /// Autoencoder latent → standardised diffusion space.
    pub fn from_latent(&self, latent: Tensor<3>) -> Tensor<3> {
        (latent - self.mean.clone()) / self.std.clone()
    }
}
