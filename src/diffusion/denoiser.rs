//! The ε-prediction network: a 1D convolutional residual stack over the latent, conditioned on
//! each sample's own timestep (p-diff broadcast the first sample's timestep to the whole batch).

use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d};
use burn::prelude::*;
use burn::tensor::activation::silu;

use crate::error::{ensure_range, G2dError, Result};

#[derive(Config, Debug, PartialEq)]
pub struct DenoiserConfig {
    pub latent_channels: usize,
    #[config(default = 64)]
    pub channels: usize,
    #[config(default = 2)]
    pub blocks: usize,
    #[config(default = 64)]
    pub time_dim: usize,
}

impl DenoiserConfig {
    /// Range-checks every field before any network is built (at most about 13 million
    /// weights): 1 to 256 latent channels, 1 to 512 channels, 0 to 8 residual blocks, an even
    /// time embedding of 2 to 1,024. Errors name `prefix.field`.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let field = |name: &str| format!("{prefix}.{name}");
        ensure_range(&field("latent_channels"), self.latent_channels, 1, 256)?;
        ensure_range(&field("channels"), self.channels, 1, 512)?;
        ensure_range(&field("blocks"), self.blocks, 0, 8)?;
        ensure_range(&field("time_dim"), self.time_dim, 2, 1024)?;
        if !self.time_dim.is_multiple_of(2) {
            return Err(G2dError::config(
                field("time_dim"),
                format!(
                    "must be even (sine and cosine halves), got {}",
                    self.time_dim
                ),
            ));
        }
        Ok(())
    }

    pub fn init(&self, device: &Device) -> Denoiser {
        let conv = |c_in, c_out| {
            Conv1dConfig::new(c_in, c_out, 3)
                .with_padding(PaddingConfig1d::Explicit(1, 1))
                .init(device)
        };
        Denoiser {
            conv_in: conv(self.latent_channels, self.channels),
            time_in: LinearConfig::new(self.time_dim, self.channels).init(device),
            time_out: LinearConfig::new(self.channels, self.channels).init(device),
            blocks: (0..self.blocks)
                .map(|_| ResBlock {
                    conv1: conv(self.channels, self.channels),
                    conv2: conv(self.channels, self.channels),
                    time: LinearConfig::new(self.channels, self.channels).init(device),
                })
                .collect(),
            conv_out: conv(self.channels, self.latent_channels),
            time_dim: self.time_dim,
        }
    }
}

#[derive(Module, Debug)]
pub struct ResBlock {
    conv1: Conv1d,
    conv2: Conv1d,
    time: Linear,
}

impl ResBlock {
    /// # Shapes
    ///   - x [batch, channels, len], time [batch, channels] → [batch, channels, len]
    fn forward(&self, x: Tensor<3>, time: Tensor<2>) -> Tensor<3> {
        let h = self.conv1.forward(silu(x.clone()));
        let h = h + self.time.forward(time).unsqueeze_dim::<3>(2); // timestep per sample
        let h = self.conv2.forward(silu(h));
        x + h
    }
}

#[derive(Module, Debug)]
pub struct Denoiser {
    conv_in: Conv1d,
    time_in: Linear,
    time_out: Linear,
    blocks: Vec<ResBlock>,
    conv_out: Conv1d,
    time_dim: usize,
}

impl Denoiser {
    /// Predicts the noise ε in `x_t`.
    ///
    /// # Shapes
    ///   - x_t [batch, latent_channels, len], t [batch] (timestep indices as floats)
    ///   - output [batch, latent_channels, len]
    pub fn forward(&self, x_t: Tensor<3>, t: Tensor<1>) -> Tensor<3> {
        let time = timestep_embedding(t, self.time_dim); // [batch, time_dim]
        let time = self.time_out.forward(silu(self.time_in.forward(time))); // [batch, channels]
        let time = silu(time);
        let mut h = self.conv_in.forward(x_t); // [batch, channels, len]
        for block in &self.blocks {
            h = block.forward(h, time.clone());
        }
        self.conv_out.forward(silu(h))
    }
}

/// Transformer-style sinusoidal embedding of each sample's timestep.
///
/// # Shapes
///   - t [batch] → [batch, dim]
pub fn timestep_embedding(t: Tensor<1>, dim: usize) -> Tensor<2> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10_000f32.ln()) * i as f32 / half as f32).exp())
        .collect();
    let freqs = Tensor::<1>::from_floats(freqs.as_slice(), &t.device()).unsqueeze_dim::<2>(0); // [1, half]
    let args = t.unsqueeze_dim::<2>(1) * freqs; // [batch, half]
    Tensor::cat(vec![args.clone().sin(), args.cos()], 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;

    #[test]
    fn each_sample_is_conditioned_on_its_own_timestep_only() {
        let device = cpu_device();
        let denoiser = DenoiserConfig::new(4)
            .with_channels(8)
            .with_time_dim(8)
            .init(&device);
        let x = Tensor::<3>::random([3, 4, 6], burn::tensor::Distribution::Default, &device);
        let rows = |t: [f32; 3]| {
            let out = denoiser.forward(x.clone(), Tensor::<1>::from_floats(t, &device));
            (0..3)
                .map(|b| {
                    out.clone()
                        .narrow(0, b, 1)
                        .into_data()
                        .try_to_vec::<f32>()
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        let before = rows([10.0, 500.0, 990.0]);
        let after = rows([10.0, 20.0, 990.0]);
        assert_eq!(before[0], after[0], "sample 0 kept its timestep");
        assert_eq!(before[2], after[2], "sample 2 kept its timestep");
        assert_ne!(
            before[1], after[1],
            "sample 1's timestep changed its output"
        );
    }
}
