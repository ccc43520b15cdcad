//! Stage 3, train the latent diffusion model with the G2D loss
//! (`crate::diffusion::loss`), keeping an exponential moving average of the denoiser's
//! weights, which is what generation uses.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{DiffusionTraining, RunConfig};
use super::progress::bar;
use super::train_autoencoder::batch_tensor;
use crate::attacks::{craft, LinfAttack};
use crate::autoencoder::Decoder;
use crate::classifier::{images_tensor, labels_tensor, Classifier};
use crate::data::Images;
use crate::diffusion::denoiser::{Denoiser, DenoiserConfig};
use crate::diffusion::loss::{g2d_loss, FunctionBatch, FunctionTerms, Regularizer};
use crate::diffusion::sampler::noise;
use crate::diffusion::schedule::Schedule;
use crate::diffusion::LatentSpace;
use crate::error::{G2dError, Result};
use crate::functional::FunctionalMlp;
use crate::normalize::{minus, Normalizer};
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
    /// The function-space terms over the last logged batch; absent when off.
    #[serde(default)]
    pub final_task: Option<f64>,
    #[serde(default)]
    pub final_vulnerability: Option<f64>,
    #[serde(default)]
    pub final_cross: Option<f64>,
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
    /// θ_orig standardised: one row, or with `autoencoder.centre_runs` one per run (relative
    /// to that run's mean, as its latents are).
    pub theta_orig: &'a [Vec<f32>],
    /// Latents per run (they come run by run): with one row per run above, latent `i` belongs
    /// to run `i / per_run`.
    pub per_run: usize,
    /// What the function-space terms need, when their weights are not 0.
    pub function: Option<FunctionData<'a>>,
}

/// The function-space terms' inputs: the classifier batched over parameter sets, the
/// normalisation that maps decoded vectors back to parameters, clean training images and the
/// bank of adversarial examples.
pub struct FunctionData<'a> {
    pub classifier: FunctionalMlp,
    pub param_norm: &'a Normalizer,
    /// Each run's mean, added back after the standardisation (empty: none).
    pub centres: &'a [Vec<f32>],
    pub train: &'a Images,
    pub bank: Images,
}

impl FunctionData<'_> {
    fn terms(&self, t: &DiffusionTraining, device: &Device) -> FunctionTerms<'_> {
        FunctionTerms {
            task_weight: t.task_weight,
            vulnerability_weight: t.vulnerability_weight,
            cross_weight: t.cross_weight,
            cross_attack: t.cross_attack,
            classifier: &self.classifier,
            param_mean: self.param_means(device),
            param_std: row(&self.param_norm.std, device),
        }
    }

    /// The standardisation's mean, `[1, param_len]`, or with run centres each run's mean plus
    /// it, `[runs, param_len]` (the training loop picks a row per latent).
    fn param_means(&self, device: &Device) -> Tensor<2> {
        let mean = row(&self.param_norm.mean, device);
        match self.centres.is_empty() {
            true => mean,
            false => rows(self.centres, device) + mean,
        }
    }

    /// A random batch of `n` clean and `n` adversarial images.
    fn batch(&self, n: usize, rng: &mut G2dRng, device: &Device) -> FunctionBatch {
        let pick = |images: &Images, rng: &mut G2dRng| {
            let idx: Vec<usize> = (0..n).map(|_| rng.below(images.len())).collect();
            let b = images.select(&idx);
            (
                images_tensor(&b.pixels, b.pixels_per_image(), device),
                labels_tensor(&b.labels, device),
            )
        };
        FunctionBatch {
            clean: pick(self.train, rng),
            adversarial: pick(&self.bank, rng),
        }
    }
}

/// `size` training images turned adversarial by `attack`, crafted in equal chunks on θ_orig
/// (even chunks) and on checkpoints spread over the collection (odd chunks).
pub fn vulnerability_bank(
    original: &Classifier,
    checkpoints: &[Classifier],
    train: &Images,
    size: usize,
    attack: &LinfAttack,
    seed: u64,
) -> Images {
    let device = original.devices()[0].clone();
    let mut rng = G2dRng::seeded(seed);
    let images = train.take(size);
    let chunks = 8usize;
    let per = images.len().div_ceil(chunks).max(1);
    let mut pixels = Vec::with_capacity(images.pixels.len());
    for (c, start) in (0..images.len()).step_by(per).enumerate() {
        let idx: Vec<usize> = (start..(start + per).min(images.len())).collect();
        let part = images.select(&idx);
        let source = if c % 2 == 0 || checkpoints.is_empty() {
            original
        } else {
            &checkpoints[(c / 2) % checkpoints.len()]
        };
        let crafted = craft(
            source,
            images_tensor(&part.pixels, part.pixels_per_image(), &device),
            labels_tensor(&part.labels, &device),
            attack,
            &mut rng,
        );
        pixels.extend(crafted.into_data().iter::<f32>());
    }
    Images { pixels, ..images }
}

pub fn train_diffusion(
    config: &RunConfig,
    lambda_l1: f32,
    data: &DiffusionData,
    device: &Device,
) -> Result<TrainedDiffusion> {
    let started = std::time::Instant::now();
    let t = &config.diffusion;
    let [channels, len] = data.latent_shape;
    let denoiser_config = t.denoiser(channels);
    let schedule = Schedule::new(&t.schedule);
    let ad = device.clone().autodiff();
    // The same seed for every λ: runs differ only by the regulariser.
    ad.seed(config.seed + 2);
    let mut rng = G2dRng::seeded(config.seed + 2);
    let mut denoiser = denoiser_config.init(&ad);
    let mut ema = denoiser.valid();
    let mut optim = t.optimizer.init();

    // The frozen decoder joins the graph so gradients reach x̂₀, but its weights never change.
    let decoder = data.decoder.clone().to_device(&ad).no_grad();
    let latent_space = LatentSpace::new(data.latent_norm, channels, len, &ad);
    let mut regularizer = Regularizer {
        lambda_l1,
        decoder: &decoder,
        latent_space: &latent_space,
        theta_orig: rows(data.theta_orig, &ad),
        clip: data.latent_clip,
        function: data.function.as_ref().map(|f| f.terms(t, &ad)),
    };
    // With run centres, θ_orig and the mean are per run: each step takes its latents' rows.
    let centred = data.theta_orig.len() > 1;
    let (theta_orig, param_means) = (
        regularizer.theta_orig.clone(),
        regularizer.function.as_ref().map(|f| f.param_mean.clone()),
    );

    let pb = bar(t.steps as u64, &format!("train-diffusion λ={lambda_l1}"));
    let mut last = Logged::default();
    for step in 0..t.steps {
        let (z0, picked) = latent_batch(data, t.batch_size, &mut rng, &ad);
        if centred {
            let runs: Vec<i64> = picked.iter().map(|&i| (i / data.per_run) as i64).collect();
            let runs = Tensor::<1, Int>::from_ints(runs.as_slice(), &ad);
            regularizer.theta_orig = theta_orig.clone().select(0, runs.clone());
            if let (Some(f), Some(means)) = (regularizer.function.as_mut(), &param_means) {
                f.param_mean = means.clone().select(0, runs);
            }
        }
        let timesteps: Vec<usize> = (0..t.batch_size)
            .map(|_| rng.below(schedule.timesteps()))
            .collect();
        let eps = noise(&mut rng, [t.batch_size, channels, len], &ad);
        let batch = data
            .function
            .as_ref()
            .map(|f| f.batch(t.function_batch, &mut rng, &ad));
        let loss = g2d_loss(
            &denoiser,
            &schedule,
            z0,
            &timesteps,
            eps,
            &regularizer,
            batch.as_ref(),
        );
        if step % 100 == 0 || step + 1 == t.steps {
            last = Logged::of(&loss);
            last.ensure_finite(lambda_l1, step)?;
            pb.set_message(last.message(lambda_l1));
        }
        let grads = GradientsParams::from_grads(loss.total.backward(), &denoiser);
        denoiser = optim.step(t.lr, denoiser, grads);
        ema = ema_update(ema, &denoiser.valid(), t.ema_decay);
        pb.inc(1);
    }
    pb.finish();
    Ok(TrainedDiffusion {
        denoiser: ema,
        info: DiffusionInfo {
            config: denoiser_config,
            lambda_l1,
            final_diffusion_loss: last.mse,
            final_distance: last.distance,
            final_task: last.task,
            final_vulnerability: last.vulnerability,
            final_cross: last.cross,
            seconds: started.elapsed().as_secs_f64(),
        },
    })
}

/// θ_orig standardised as the latents' vectors were: one row, or with run centres one per run,
/// relative to that run's mean ([`DiffusionData::theta_orig`]).
pub fn standardised_theta_orig(
    theta_orig: &[f32],
    param_norm: &Normalizer,
    centres: &[Vec<f32>],
) -> Vec<Vec<f32>> {
    match centres.is_empty() {
        true => vec![param_norm.normalize(theta_orig)],
        false => (centres.iter())
            .map(|c| param_norm.normalize(&minus(theta_orig, c)))
            .collect(),
    }
}

/// `n` training latents drawn with replacement, `[n, channels, len]`, and which they are.
fn latent_batch(
    data: &DiffusionData,
    n: usize,
    rng: &mut G2dRng,
    device: &Device,
) -> (Tensor<3>, Vec<usize>) {
    let [channels, len] = data.latent_shape;
    let picked: Vec<usize> = (0..n).map(|_| rng.below(data.latents.len())).collect();
    let z0 = batch_tensor(data.latents, &picked, device).reshape([n, channels, len]);
    (z0, picked)
}

fn row(values: &[f32], device: &Device) -> Tensor<2> {
    Tensor::<1>::from_floats(values, device).unsqueeze_dim::<2>(0)
}

/// Equal-length vectors as a `[rows, len]` tensor.
fn rows(values: &[Vec<f32>], device: &Device) -> Tensor<2> {
    Tensor::<1>::from_floats(values.concat().as_slice(), device)
        .reshape([values.len(), values[0].len()])
}

/// The loss terms of the last logged batch.
struct Logged {
    mse: f64,
    distance: Option<f64>,
    task: Option<f64>,
    vulnerability: Option<f64>,
    cross: Option<f64>,
}

impl Default for Logged {
    fn default() -> Self {
        Self {
            mse: f64::NAN,
            distance: None,
            task: None,
            vulnerability: None,
            cross: None,
        }
    }
}

impl Logged {
    fn of(loss: &crate::diffusion::loss::G2dLoss) -> Logged {
        let read = |t: &Option<Tensor<1>>| t.clone().map(|v| v.into_scalar::<f32>() as f64);
        Logged {
            mse: loss.diffusion.clone().into_scalar::<f32>() as f64,
            distance: read(&loss.distance),
            task: read(&loss.task),
            vulnerability: read(&loss.vulnerability),
            cross: read(&loss.cross),
        }
    }

    /// Stops training with [`G2dError::Diverged`], naming the first logged term that is not a
    /// finite number.
    fn ensure_finite(&self, lambda_l1: f32, step: usize) -> Result<()> {
        let terms = [
            ("ε-MSE", Some(self.mse)),
            ("L1 distance", self.distance),
            ("task term", self.task),
            ("vulnerability term", self.vulnerability),
            ("cross term", self.cross),
        ];
        match terms
            .into_iter()
            .find_map(|(name, v)| v.filter(|v| !v.is_finite()).map(|v| (name, v)))
        {
            Some((term, loss)) => Err(G2dError::Diverged {
                stage: format!("train-diffusion λ={lambda_l1} ({term})"),
                step,
                loss: loss as f32,
            }),
            None => Ok(()),
        }
    }

    fn message(&self, lambda_l1: f32) -> String {
        let mut m = format!("diffusion λ={lambda_l1}: mse {:.3}", self.mse);
        for (name, v) in [
            ("L1", self.distance),
            ("task", self.task),
            ("vuln", self.vulnerability),
            ("cross", self.cross),
        ] {
            if let Some(v) = v {
                m += &format!(" {name} {v:.3}");
            }
        }
        m
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu_device;
    use crate::params::Manifest;

    #[test]
    fn ema_update_blends_every_tensor_by_the_decay() {
        let device = cpu_device();
        let config = DenoiserConfig::new(4).with_channels(8).with_time_dim(8);
        let (ema, model) = (config.init(&device), config.init(&device));
        let flat = |m: &Denoiser| Manifest::full(m).flatten(m);
        let (e, m) = (flat(&ema), flat(&model));
        let blended = flat(&ema_update(ema.clone(), &model, 0.9));
        assert_eq!(blended.len(), e.len());
        for ((b, e), m) in blended.iter().zip(&e).zip(&m) {
            let want = 0.9 * e + 0.1 * m;
            assert!(
                (b - want).abs() <= 1e-6 * (1.0 + want.abs()),
                "{b} vs {want}"
            );
        }
        assert_eq!(
            flat(&ema_update(ema.clone(), &model, 0.0)),
            m,
            "decay 0 copies"
        );
        assert_eq!(flat(&ema_update(ema, &model, 1.0)), e, "decay 1 keeps");
    }
}
