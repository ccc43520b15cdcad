//! Stage 3, train the latent diffusion model with the G2D loss
//! (`crate::diffusion::loss`), keeping an exponential moving average of the denoiser's
//! weights, which is what generation uses.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::progress::bar;
use crate::autoencoder::Decoder;
use crate::diffusion::denoiser::{Denoiser, DenoiserConfig};
use crate::diffusion::loss::{g2d_loss, Regularizer};
use crate::diffusion::sampler::noise;
use crate::diffusion::schedule::Schedule;
use crate::diffusion::LatentSpace;
use crate::normalize::Normalizer;
use crate::rng::G2dRng;

/// What stage 3 produces.
pub struct TrainedDiffusion {
    /// EMA weights.
    pub denoiser: Denoiser,
    pub info: DiffusionInfo,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DiffusionInfo {
    pub config: DenoiserConfig,
    pub lambda_l1: f32,
    pub final_diffusion_loss: f64,
    /// Mean of L_distance over the last logged batch (standardised units); absent for λ = 0.
    pub final_distance: Option<f64>,
    pub seconds: f64,
}

/// Inputs shared by every diffusion run of a pipeline.
pub struct DiffusionData<'a> {
    /// Standardised latents `[K][latent_size]`.
    pub latents: &'a [Vec<f32>],
    pub latent_shape: [usize; 2],
    pub latent_norm: &'a Normalizer,
    pub latent_clip: f32,
    pub decoder: &'a Decoder,
    /// θ_orig standardised.
    pub theta_orig: &'a [f32],
}

pub fn train_diffusion(
    config: &RunConfig,
    lambda_l1: f32,
    data: &DiffusionData,
    device: &Device,
) -> TrainedDiffusion {
    let started = std::time::Instant::now();
    let t = &config.diffusion;
    let [channels, len] = data.latent_shape;
    let denoiser_config = DenoiserConfig::new(channels)
        .with_channels(t.channels)
        .with_blocks(t.blocks)
        .with_time_dim(t.time_dim);
    let schedule = Schedule::new(&t.schedule);
    let ad = device.clone().autodiff();
    // The same seed for every λ: runs differ only by the regulariser.
    ad.seed(config.seed + 2);
    let mut rng = G2dRng::seeded(config.seed + 2);
    let mut denoiser = denoiser_config.init(&ad);
    let mut ema = denoiser.valid();
    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();

    // The frozen decoder joins the graph so gradients reach x̂₀, but its weights never change.
    let decoder = data.decoder.clone().to_device(&ad).no_grad();
    let latent_space = LatentSpace::new(data.latent_norm, channels, len, &ad);
    let regularizer = Regularizer {
        lambda_l1,
        decoder: &decoder,
        latent_space: &latent_space,
        theta_orig: Tensor::<1>::from_floats(data.theta_orig, &ad).unsqueeze_dim::<2>(0),
        clip: data.latent_clip,
    };

    let pb = bar(t.steps as u64, &format!("train-diffusion λ={lambda_l1}"));
    let (mut last_mse, mut last_dist) = (f64::NAN, None);
    for step in 0..t.steps {
        let idx: Vec<usize> = (0..t.batch_size)
            .map(|_| rng.below(data.latents.len()))
            .collect();
        let flat: Vec<f32> = idx
            .iter()
            .flat_map(|&i| data.latents[i].iter().copied())
            .collect();
        let z0 =
            Tensor::<1>::from_floats(flat.as_slice(), &ad).reshape([t.batch_size, channels, len]);
        let timesteps: Vec<usize> = (0..t.batch_size)
            .map(|_| rng.below(schedule.timesteps()))
            .collect();
        let eps = noise(&mut rng, [t.batch_size, channels, len], &ad);
        let loss = g2d_loss(&denoiser, &schedule, z0, &timesteps, eps, &regularizer);
        if step % 100 == 0 || step + 1 == t.steps {
            last_mse = loss.diffusion.clone().into_scalar::<f32>() as f64;
            last_dist = loss.distance.clone().map(|d| d.into_scalar::<f32>() as f64);
            pb.set_message(match last_dist {
                Some(d) => format!("diffusion λ={lambda_l1}: mse {last_mse:.3} L1 {d:.3}"),
                None => format!("diffusion λ={lambda_l1}: mse {last_mse:.3}"),
            });
        }
        let grads = GradientsParams::from_grads(loss.total.backward(), &denoiser);
        denoiser = optim.step(t.lr, denoiser, grads);
        ema = ema_update(ema, &denoiser.valid(), t.ema_decay);
        pb.inc(1);
    }
    pb.finish();
    TrainedDiffusion {
        denoiser: ema,
        info: DiffusionInfo {
            config: denoiser_config,
            lambda_l1,
            final_diffusion_loss: last_mse,
            final_distance: last_dist,
            seconds: started.elapsed().as_secs_f64(),
        },
    }
}

/// `ema ← decay·ema + (1 − decay)·model`, tensor by tensor, on the device.
pub fn ema_update<M: Module>(ema: M, model: &M, decay: f64) -> M {
    let mut values = Values(Vec::new());
    model.visit(&mut values);
    let mut blend = Blend {
        values: values.0.into_iter(),
        decay: decay as f32,
    };
    ema.map(&mut blend)
}

/// Rank-erased copies of a module's float tensors, in visiting order.
struct Values(Vec<Tensor<1>>);

impl ModuleVisitor for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().flatten::<1>(0, D - 1));
    }
}

struct Blend {
    values: std::vec::IntoIter<Tensor<1>>,
    decay: f32,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let source = self.values.next().expect("modules of the same structure");
        let decay = self.decay;
        param.map(|old| {
            let shape = old.dims();
            old * decay + source.reshape(shape) * (1.0 - decay)
        })
    }
}
