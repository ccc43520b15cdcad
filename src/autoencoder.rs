//! Stage 2, the parameter autoencoder: a 1D convolutional encoder/decoder over the normalised
//! parameter vector. Training adds Gaussian noise to its input and to its latent, blended as
//! p-diff does (`x·(1−f) + f·ε`), and minimises the MSE of the reconstruction.

use burn::nn::conv::{Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig};
use burn::nn::PaddingConfig1d;
use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::ops::PadMode;

use crate::error::{ensure_range, Result};

/// Shape of the autoencoder. The vector is zero-padded to a multiple of `fold · 2^stages` and
/// folded into `fold` channels (consecutive parameters side by side, as p-diff folds its input),
/// then each stage halves the length, so the latent is
/// `[latent_channels, padded_len / (fold · 2^stages)]`.
#[derive(Config, Debug, PartialEq)]
pub struct AutoencoderConfig {
    /// Length of the parameter vector θ.
    pub param_len: usize,
    #[config(default = 8)]
    pub fold: usize,
    #[config(default = "vec![32, 64]")]
    pub channels: Vec<usize>,
    #[config(default = 4)]
    pub latent_channels: usize,
    /// p-diff's noise factor on the input parameters.
    #[config(default = 0.001)]
    pub input_noise_factor: f32,
    /// p-diff's noise factor on the latent.
    #[config(default = 0.1)]
    pub latent_noise_factor: f32,
}

/// Bounds [`AutoencoderConfig::validate`] enforces, so that no file can ask for a network of
/// more than about 20 million weights: up to 2²¹ parameters, fold 1 to 4,096, 1 to 6 stages of
/// 1 to 512 channels, 1 to 256 latent channels, noise factors in [0, 1].
pub const MAX_PARAM_LEN: usize = 1 << 21;

impl AutoencoderConfig {
    /// Range-checks every field before any network is built; errors name `prefix.field`.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let field = |name: &str| format!("{prefix}.{name}");
        ensure_range(&field("param_len"), self.param_len, 1, MAX_PARAM_LEN)?;
        ensure_range(&field("fold"), self.fold, 1, 4096)?;
        ensure_range(&field("channels (the stage count)"), self.stages(), 1, 6)?;
        for &c in &self.channels {
            ensure_range(&field("channels"), c, 1, 512)?;
        }
        ensure_range(&field("latent_channels"), self.latent_channels, 1, 256)?;
        ensure_range(
            &field("input_noise_factor"),
            self.input_noise_factor,
            0.0,
            1.0,
        )?;
        ensure_range(
            &field("latent_noise_factor"),
            self.latent_noise_factor,
            0.0,
            1.0,
        )
    }

    pub fn stages(&self) -> usize {
        self.channels.len()
    }

    pub fn padded_len(&self) -> usize {
        let unit = self.fold << self.stages();
        self.param_len.div_ceil(unit) * unit
    }

    pub fn latent_len(&self) -> usize {
        self.padded_len() / (self.fold << self.stages())
    }

    /// Number of values in one latent.
    pub fn latent_size(&self) -> usize {
        self.latent_channels * self.latent_len()
    }

    pub fn init_encoder(&self, device: &Device) -> Encoder {
        let mut downs = Vec::new();
        let mut c_in = self.fold;
        for &c in &self.channels {
            downs.push(
                Conv1dConfig::new(c_in, c, 5)
                    .with_stride(2)
                    .with_padding(PaddingConfig1d::Explicit(2, 2))
                    .init(device),
            );
            c_in = c;
        }
        Encoder {
            downs,
            to_latent: Conv1dConfig::new(c_in, self.latent_channels, 3)
                .with_padding(PaddingConfig1d::Explicit(1, 1))
                .init(device),
            padded_len: self.padded_len(),
            fold: self.fold,
        }
    }

    pub fn init_decoder(&self, device: &Device) -> Decoder {
        let top = *self.channels.last().expect("at least one stage");
        let from_latent = Conv1dConfig::new(self.latent_channels, top, 3)
            .with_padding(PaddingConfig1d::Explicit(1, 1))
            .init(device);
        let mut ups = Vec::new();
        let mut c_in = top;
        for &c in self.channels.iter().rev() {
            // kernel 4, stride 2, padding 1 doubles the length exactly.
            ups.push(
                ConvTranspose1dConfig::new([c_in, c], 4)
                    .with_stride(2)
                    .with_padding(1)
                    .init(device),
            );
            c_in = c;
        }
        Decoder {
            from_latent,
            ups,
            to_params: Conv1dConfig::new(c_in, self.fold, 3)
                .with_padding(PaddingConfig1d::Explicit(1, 1))
                .init(device),
            param_len: self.param_len,
        }
    }
}

#[derive(Module, Debug)]
pub struct Encoder {
    downs: Vec<Conv1d>,
    to_latent: Conv1d,
    padded_len: usize,
    fold: usize,
}

impl Encoder {
    /// # Shapes
    ///   - params [batch, param_len] (normalised) → latent [batch, latent_channels, latent_len]
    pub fn forward(&self, params: Tensor<2>) -> Tensor<3> {
        let [batch, len] = params.dims();
        let x = params.pad([(0, self.padded_len - len)], PadMode::Constant(0.0)); // [batch, padded_len]
        let folded = self.padded_len / self.fold;
        let mut x = x.reshape([batch, folded, self.fold]).swap_dims(1, 2); // [batch, fold, padded_len / fold]
        for conv in &self.downs {
            x = silu(conv.forward(x)); // length halves
        }
        self.to_latent.forward(x)
    }
}

#[derive(Module, Debug)]
pub struct Decoder {
    from_latent: Conv1d,
    ups: Vec<ConvTranspose1d>,
    to_params: Conv1d,
    param_len: usize,
}

impl Decoder {
    /// # Shapes
    ///   - latent [batch, latent_channels, latent_len] → params [batch, param_len] (normalised)
    pub fn forward(&self, latent: Tensor<3>) -> Tensor<2> {
        let mut x = silu(self.from_latent.forward(latent));
        for up in &self.ups {
            x = silu(up.forward(x)); // length doubles
        }
        let x = self.to_params.forward(x); // [batch, fold, padded_len / fold]
        let [batch, fold, folded] = x.dims();
        x.swap_dims(1, 2)
            .reshape([batch, fold * folded]) // unfold
            .slice([0..batch, 0..self.param_len])
    }
}

/// The fold that keeps the folded length at most 512: 8 (p-diff's) for vectors up to 4,096
/// parameters, then the next power of two, so the convolutions' cost stays roughly flat as the
/// regenerated scope grows (the whole MNIST MLP, 52,650 parameters, folds by 128).
pub fn auto_fold(param_len: usize) -> usize {
    param_len.div_ceil(512).next_power_of_two().max(8)
}

/// The p-diff noise blend `x·(1−f) + f·ε`, with `noise` = ε drawn by the caller.
pub fn blend_noise<const D: usize>(x: Tensor<D>, noise: Tensor<D>, factor: f32) -> Tensor<D> {
    x * (1.0 - factor) + noise * factor
}
