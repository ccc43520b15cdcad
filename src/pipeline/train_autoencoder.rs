//! Stage 2, train the parameter autoencoder on the K standardised checkpoints, with p-diff's
//! noise on the input and on the latent, MSE loss. With `autoencoder.centre_runs` each
//! checkpoint is first taken relative to its collection run's mean (the runs' means go into the
//! bundle; generation adds one back). Afterwards the clean latents of the
//! checkpoints are standardised per position: that is the space the diffusion model learns.

use std::borrow::Cow;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::progress::bar;
use crate::autoencoder::{blend_noise, AutoencoderConfig, Decoder, Encoder};
use crate::diffusion::sampler::noise;
use crate::error::{G2dError, Result};
use crate::normalize::{minus, run_centres, Normalizer};
use crate::rng::G2dRng;

/// What stage 2 produces.
pub struct TrainedAutoencoder {
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub info: AutoencoderInfo,
    pub param_norm: Normalizer,
    /// With `centre_runs`, each run's mean `[runs][param_len]`, which the standardised vectors
    /// are taken relative to; empty otherwise.
    pub param_centres: Vec<Vec<f32>>,
    pub latent_norm: Normalizer,
    /// Standardised latents of the K checkpoints, `[K][latent_size]`.
    pub latents: Vec<Vec<f32>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AutoencoderInfo {
    pub config: AutoencoderConfig,
    /// Final training loss (noisy input) and clean reconstruction MSE, both standardised.
    pub final_loss: f64,
    pub reconstruction_mse: f64,
    /// Largest |value| among the standardised latents, times a 10% margin: x̂₀'s bound.
    pub latent_clip: f32,
    /// Collection runs the checkpoints were centred on (`autoencoder.centre_runs`); 0: none.
    #[serde(default)]
    pub run_centres: usize,
    pub seconds: f64,
}

impl AutoencoderInfo {
    /// " (each of N runs centred on its mean)" where the checkpoints were, else nothing.
    pub fn centring(&self) -> String {
        match self.run_centres {
            0 => String::new(),
            n => format!(", each of {n} runs centred on its mean"),
        }
    }
}

/// Rows `idx` of equal-length vectors as a `[idx.len(), len]` tensor.
pub(super) fn batch_tensor(rows: &[Vec<f32>], idx: &[usize], device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = idx.iter().flat_map(|&i| rows[i].iter().copied()).collect();
    Tensor::<1>::from_floats(flat.as_slice(), device).reshape([idx.len(), rows[0].len()])
}

/// The trained autoencoder's view of the checkpoints: reconstruction error, the latents
/// standardised per position, and the clip range of the standardised latents.
struct Encoded {
    reconstruction_mse: f64,
    latent_norm: Normalizer,
    latents: Vec<Vec<f32>>,
    latent_clip: f32,
}

fn encode_all(
    encoder: &Encoder,
    decoder: &Decoder,
    rows: &[Vec<f32>],
    ae: &AutoencoderConfig,
    device: &Device,
) -> Encoded {
    let all: Vec<usize> = (0..rows.len()).collect();
    let x = batch_tensor(rows, &all, device);
    let z = encoder.forward(x.clone());
    let reconstruction_mse = (decoder.forward(z.clone()) - x)
        .powi_scalar(2)
        .mean()
        .into_scalar::<f32>() as f64;
    let raw: Vec<f32> = z.into_data().try_to_vec::<f32>().expect("f32 latents");
    let raw_rows: Vec<Vec<f32>> = raw.chunks(ae.latent_size()).map(<[f32]>::to_vec).collect();
    let latent_norm = Normalizer::fit(&raw_rows);
    let latents: Vec<Vec<f32>> = raw_rows.iter().map(|r| latent_norm.normalize(r)).collect();
    let latent_clip = latents.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs())) * 1.1;
    Encoded {
        reconstruction_mse,
        latent_norm,
        latents,
        latent_clip,
    }
}

pub fn train_autoencoder(
    config: &RunConfig,
    checkpoints: &[Vec<f32>],
    device: &Device,
) -> Result<TrainedAutoencoder> {
    let started = std::time::Instant::now();
    let t = &config.autoencoder;
    let ae = t.model(checkpoints[0].len());
    let per_run = config.collect.per_run();
    let param_centres = match config.centres_runs() {
        true => run_centres(checkpoints, per_run),
        false => Vec::new(),
    };
    let centred: Cow<[Vec<f32>]> = match config.centres_runs() {
        true => (checkpoints.iter().enumerate())
            .map(|(i, c)| minus(c, &param_centres[i / per_run]))
            .collect(),
        false => Cow::Borrowed(checkpoints),
    };
    let param_norm = Normalizer::fit(&centred);
    let rows: Vec<Vec<f32>> = centred.iter().map(|c| param_norm.normalize(c)).collect();

    let ad = device.clone().autodiff();
    ad.seed(config.seed + 1);
    let mut rng = G2dRng::seeded(config.seed + 1);
    let mut encoder = ae.init_encoder(&ad);
    let mut decoder = ae.init_decoder(&ad);
    let mut opt_enc = t.optimizer.init();
    let mut opt_dec = t.optimizer.init();
    let pb = bar(t.steps as u64, "train-ae: autoencoder");
    let mut last_loss = f64::NAN;
    for step in 0..t.steps {
        let idx: Vec<usize> = (0..t.batch_size).map(|_| rng.below(rows.len())).collect();
        let x = batch_tensor(&rows, &idx, &ad);
        let x_noisy = blend_noise(
            x.clone(),
            noise(&mut rng, x.dims(), &ad),
            ae.input_noise_factor,
        );
        let z = encoder.forward(x_noisy);
        let z_noisy = blend_noise(
            z.clone(),
            noise(&mut rng, z.dims(), &ad),
            ae.latent_noise_factor,
        );
        let loss = (decoder.forward(z_noisy) - x).powi_scalar(2).mean();
        if step % 100 == 0 || step + 1 == t.steps {
            last_loss = loss.clone().into_scalar::<f32>() as f64;
            if !last_loss.is_finite() {
                return Err(G2dError::Diverged {
                    stage: "train-ae".into(),
                    step,
                    loss: last_loss as f32,
                });
            }
            pb.set_message(format!("train-ae: loss {last_loss:.4}"));
            if std::env::var_os("G2D_DEBUG").is_some() {
                eprintln!("step {step} loss {last_loss:.4}");
            }
        }
        let mut grads = loss.backward();
        let g_enc = GradientsParams::from_module(&mut grads, &encoder);
        let g_dec = GradientsParams::from_module(&mut grads, &decoder);
        encoder = opt_enc.step(t.lr, encoder, g_enc);
        decoder = opt_dec.step(t.lr, decoder, g_dec);
        pb.inc(1);
    }
    pb.finish();

    let (encoder, decoder) = (encoder.valid(), decoder.valid());
    let encoded = encode_all(&encoder, &decoder, &rows, &ae, device);
    Ok(TrainedAutoencoder {
        info: AutoencoderInfo {
            config: ae,
            final_loss: last_loss,
            reconstruction_mse: encoded.reconstruction_mse,
            latent_clip: encoded.latent_clip,
            run_centres: param_centres.len(),
            seconds: started.elapsed().as_secs_f64(),
        },
        encoder,
        decoder,
        param_norm,
        param_centres,
        latent_norm: encoded.latent_norm,
        latents: encoded.latents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;

    /// Two runs of three checkpoints, far apart: centred, the autoencoder sees only the spread
    /// within each run, and the centres are the runs' means.
    #[test]
    fn centred_runs_standardise_the_spread_within_each_run() {
        let mut config = RunConfig::default();
        config.collect.checkpoints = 6;
        config.collect.seeds = 2;
        config.autoencoder.steps = 2;
        config.autoencoder.batch_size = 2;
        let run = |base: f32| -> Vec<Vec<f32>> {
            (0..3)
                .map(|k| {
                    (0..64)
                        .map(|j| base + 0.01 * (k as f32) * (j as f32).sin())
                        .collect()
                })
                .collect()
        };
        let checkpoints = [run(1.0), run(-1.0)].concat();
        let device = cpu_device();
        config.autoencoder.centre_runs = true;
        let centred = train_autoencoder(&config, &checkpoints, &device).unwrap();
        assert_eq!(centred.param_centres.len(), 2);
        assert_eq!(centred.info.run_centres, 2);
        for (centre, base) in centred.param_centres.iter().zip([1.0, -1.0]) {
            assert!(centre.iter().all(|c| (c - base).abs() < 0.02), "{centre:?}");
        }
        // The within-run spread is 0.01·k·sin j: centred, the standard deviation is that
        // spread's, not the runs' distance (1 on either side of 0).
        assert!(centred.param_norm.std.iter().all(|&s| s < 0.02));
        config.autoencoder.centre_runs = false;
        let plain = train_autoencoder(&config, &checkpoints, &device).unwrap();
        assert!(plain.param_centres.is_empty());
        assert!(plain.param_norm.std.iter().all(|&s| s > 0.9));
    }
}
