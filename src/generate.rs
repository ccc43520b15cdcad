//! Stage 4, generation and guard: random noise → reverse diffusion → decoder → new parameters
//! (plus one collection run's mean, drawn at random, where the bundle keeps them), inserted into
//! the classifier only if the guard accepts them. The same code runs in the CLI and in the
//! browser; only the readback (sync natively, async on wasm) is the caller's.

use burn::prelude::*;

use crate::autoencoder::Decoder;
use crate::bundle::Bundle;
use crate::classifier::{images_tensor, labels_tensor, Classifier};
use crate::data::Images;
use crate::diffusion::denoiser::Denoiser;
use crate::diffusion::sampler::{ReverseDiffusion, SamplerConfig};
use crate::diffusion::schedule::Schedule;
use crate::diffusion::LatentSpace;
use crate::error::Result;
use crate::params::Manifest;
use crate::rng::G2dRng;

/// Everything needed to regenerate parameters, on one device.
pub struct G2dModel {
    pub bundle_meta: crate::bundle::BundleMeta,
    pub device: Device,
    pub denoiser: Denoiser,
    pub decoder: Decoder,
    pub latent_space: LatentSpace,
    pub schedule: Schedule,
    /// Parameter normalisation as `[1, param_len]` tensors.
    param_mean: Tensor<2>,
    param_std: Tensor<2>,
    /// The collection runs' means, `[runs, param_len]`, when the bundle has them.
    param_centres: Option<Tensor<2>>,
    pub theta_orig: Vec<f32>,
    /// The deployed classifier (fixed weights + θ_orig).
    pub original: Classifier,
}

impl G2dModel {
    /// Builds the networks of a validated bundle on `device`.
    pub fn from_bundle(bundle: &Bundle, device: &Device) -> Result<G2dModel> {
        let meta = &bundle.meta;
        let ae = &meta.autoencoder;
        let decoder = ae.init_decoder(device);
        let decoder = Manifest::full(&decoder).unflatten(decoder, &bundle.decoder)?;
        let denoiser = meta.denoiser.init(device);
        let denoiser = Manifest::full(&denoiser).unflatten(denoiser, &bundle.denoiser)?;
        let classifier = meta.classifier.init(device);
        let classifier = meta.fixed.unflatten(classifier, &bundle.fixed)?;
        let original = meta.regenerated.unflatten(classifier, &bundle.theta_orig)?;
        let row = |v: &[f32]| Tensor::<1>::from_floats(v, device).unsqueeze_dim::<2>(0);
        let runs = bundle.run_centre_count()?;
        Ok(G2dModel {
            latent_space: LatentSpace::new(
                &bundle.latent_norm,
                ae.latent_channels,
                ae.latent_len(),
                device,
            ),
            schedule: Schedule::new(&meta.schedule),
            param_mean: row(&bundle.param_norm.mean),
            param_std: row(&bundle.param_norm.std),
            param_centres: (runs > 0).then(|| {
                Tensor::<1>::from_floats(bundle.param_centres.as_slice(), device)
                    .reshape([runs, bundle.theta_orig.len()])
            }),
            theta_orig: bundle.theta_orig.clone(),
            bundle_meta: meta.clone(),
            device: device.clone(),
            denoiser,
            decoder,
            original,
        })
    }

    /// Starts sampling `count` latents.
    pub fn sample(
        &self,
        count: usize,
        sampler: &SamplerConfig,
        rng: G2dRng,
    ) -> ReverseDiffusion<'_> {
        let ae = &self.bundle_meta.autoencoder;
        ReverseDiffusion::new(
            &self.denoiser,
            sampler.plan(&self.schedule),
            [count, ae.latent_channels, ae.latent_len()],
            self.bundle_meta.latent_clip,
            rng,
            &self.device,
        )
    }

    /// The run centre each of `count` sets will add, drawn uniformly from `rng` (nothing is
    /// drawn, and the list is empty, when the bundle has no centres).
    pub fn draw_centres(&self, count: usize, rng: &mut G2dRng) -> Vec<usize> {
        match &self.param_centres {
            Some(c) => (0..count).map(|_| rng.below(c.dims()[0])).collect(),
            None => Vec::new(),
        }
    }

    /// Decodes sampled latents (standardised space) to parameter vectors, each plus its run
    /// centre from [`draw_centres`](Self::draw_centres) where the bundle has centres.
    ///
    /// # Shapes
    ///   - z0 [count, latent_channels, latent_len] → θ [count, param_len]
    pub fn decode(&self, z0: Tensor<3>, centres: &[usize]) -> Tensor<2> {
        let theta = self.decoder.forward(self.latent_space.to_latent(z0));
        let theta = theta * self.param_std.clone() + self.param_mean.clone();
        match &self.param_centres {
            Some(c) => {
                assert_eq!(
                    centres.len(),
                    theta.dims()[0],
                    "one drawn run centre per decoded set (G2dModel::draw_centres)"
                );
                let picked: Vec<i64> = centres.iter().map(|&r| r as i64).collect();
                let picked = Tensor::<1, Int>::from_ints(picked.as_slice(), &self.device);
                theta + c.clone().select(0, picked)
            }
            None => theta,
        }
    }

    /// The classifier with `theta` (still on the device) in place of θ_orig.
    pub fn candidate(&self, theta: Tensor<1>) -> Result<Classifier> {
        self.bundle_meta
            .regenerated
            .unflatten_device(self.original.clone(), theta)
    }

    /// The classifier with a host vector in place of θ_orig.
    pub fn with_theta(&self, theta: &[f32]) -> Result<Classifier> {
        self.bundle_meta
            .regenerated
            .unflatten(self.original.clone(), theta)
    }
}

/// The guard: a candidate is installed only if its accuracy on the validation split is at least
/// the original's minus `delta`. The test split never takes part.
pub struct Guard {
    images: Tensor<2>,
    labels: Tensor<1, Int>,
    pub delta: f32,
}

impl Guard {
    pub fn new(validation: &Images, delta: f32, device: &Device) -> Guard {
        Guard {
            images: images_tensor(&validation.pixels, validation.pixels_per_image(), device),
            labels: labels_tensor(&validation.labels, device),
            delta,
        }
    }

    /// Validation accuracy of `model` as a one-element tensor (not yet read back).
    pub fn accuracy(&self, model: &Classifier) -> Tensor<1> {
        let predictions = model
            .forward(self.images.clone())
            .argmax(1)
            .flatten::<1>(0, 1);
        let [n] = self.labels.dims();
        predictions.equal(self.labels.clone()).float().sum() / n as f32
    }

    /// The bundle's own guard: its validation images and its δ.
    pub fn of_bundle(bundle: &Bundle, device: &Device) -> Guard {
        Guard::new(&bundle.validation, bundle.meta.guard_delta, device)
    }

    pub fn accepts(&self, accuracy: f32, original_accuracy: f32) -> bool {
        Guard::within(self.delta, accuracy, original_accuracy)
    }

    /// Whether `model`'s validation accuracy passes (native, synchronous readback).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn accepts_model(&self, model: &Classifier, original_accuracy: f32) -> bool {
        self.accepts(self.accuracy(model).into_scalar::<f32>(), original_accuracy)
    }

    /// The acceptance rule, for a tolerance other than this guard's (the JS API's per-call
    /// `guardDelta`, validated to lie in [0, 1]).
    pub fn within(delta: f32, accuracy: f32, original_accuracy: f32) -> bool {
        accuracy.is_finite() && accuracy >= original_accuracy - delta
    }
}

/// How many candidates one regenerate() call samples when not told (B), and the guard check at
/// export that chose it: the bundle's own sampler and guard (its validation slice, its δ) on
/// `sampled` fresh candidates, of which `accepted` passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Candidates {
    pub count: usize,
    pub sampled: usize,
    pub accepted: usize,
}

impl Candidates {
    /// Candidates sampled at export to choose B.
    pub const SAMPLED: usize = 100;
    /// The largest B: a regenerate() call's upper bound.
    pub const MAX: usize = 64;
    /// The most often a call may install nothing.
    pub const MISS: f64 = 0.01;

    /// The fewest candidates B with which a call installs nothing with probability ≤
    /// [`Self::MISS`], for an acceptance rate at the lower end of the check's 95% Wilson
    /// interval: (1 − p_low)^B ≤ 1%. At most [`Self::MAX`] (a guard that accepted nothing).
    pub fn from_check(accepted: usize, sampled: usize) -> Candidates {
        let low = crate::metrics::Rate::wilson(accepted, sampled).ci95[0];
        let count = (1..=Self::MAX)
            .find(|&b| (1.0 - low).powi(b as i32) <= Self::MISS)
            .unwrap_or(Self::MAX);
        Candidates {
            count,
            sampled,
            accepted,
        }
    }

    /// Samples [`Self::SAMPLED`] candidates from a validated bundle with its sampler and checks
    /// each with its guard (native).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn measure(bundle: &Bundle, device: &Device, rng: G2dRng) -> Result<Candidates> {
        let model = G2dModel::from_bundle(bundle, device)?;
        let guard = Guard::of_bundle(bundle, device);
        let original = guard.accuracy(&model.original).into_scalar::<f32>();
        let sampler = bundle.meta.sampler;
        // Counted batch by batch: nothing sampled is kept.
        let mut accepted = 0;
        generate_batches(
            &model,
            Self::SAMPLED,
            &sampler,
            rng,
            BATCH_FLOATS,
            |theta| {
                accepted += guard.accepts_model(&model.with_theta(&theta)?, original) as usize;
                Ok(())
            },
        )?;
        Ok(Self::from_check(accepted, Self::SAMPLED))
    }
}

/// The most parameter values one sampling batch decodes at once (64 Mi floats, 256 MB): a
/// model of 4M parameters samples 16 sets per batch, G2D's own MLP all 100 of an export's
/// check in one.
pub const BATCH_FLOATS: usize = 1 << 26;

/// Samples `count` parameter vectors and reads them back (native, synchronous readback), each
/// checked for finiteness.
#[cfg(not(target_arch = "wasm32"))]
pub fn generate_host(
    model: &G2dModel,
    count: usize,
    sampler: &SamplerConfig,
    rng: G2dRng,
) -> Result<Vec<Vec<f32>>> {
    let mut thetas = Vec::with_capacity(count);
    generate_batches(model, count, sampler, rng, BATCH_FLOATS, |theta| {
        thetas.push(theta);
        Ok(())
    })?;
    Ok(thetas)
}

/// Samples `count` parameter vectors in batches of at most `max_floats` values (at least one
/// set a batch) and hands each, checked for finiteness, to `each` in order (native). One batch
/// draws from `rng` itself (the run centres, where the bundle has them, then the samples), so it
/// draws what one unbatched call would; with several, batch i draws from
/// `G2dRng::seeded(rng.next_seed())`.
#[cfg(not(target_arch = "wasm32"))]
pub fn generate_batches(
    model: &G2dModel,
    count: usize,
    sampler: &SamplerConfig,
    mut rng: G2dRng,
    max_floats: usize,
    mut each: impl FnMut(Vec<f32>) -> Result<()>,
) -> Result<()> {
    let len = model.theta_orig.len();
    let per_batch = (max_floats / len.max(1)).max(1);
    let mut batch = |n: usize, mut rng: G2dRng| -> Result<()> {
        let centres = model.draw_centres(n, &mut rng);
        let z0 = model.sample(n, sampler, rng).run();
        let thetas = model
            .decode(z0, &centres)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 parameters");
        crate::error::ensure_finite("generated parameters", &thetas)?;
        thetas
            .chunks(len)
            .try_for_each(|theta| each(theta.to_vec()))
    };
    if count <= per_batch {
        return batch(count, rng);
    }
    let mut left = count;
    while left > 0 {
        let n = left.min(per_batch);
        batch(n, G2dRng::seeded(rng.next_seed()))?;
        left -= n;
    }
    Ok(())
}

/// Samples `count` parameter sets and keeps those the guard accepts, each with the classifier
/// that carries it (native).
#[cfg(not(target_arch = "wasm32"))]
pub fn generate_accepted(
    model: &G2dModel,
    guard: &Guard,
    original_accuracy: f32,
    count: usize,
    sampler: &SamplerConfig,
    rng: G2dRng,
) -> Result<Vec<(Vec<f32>, Classifier)>> {
    let mut accepted = Vec::new();
    generate_batches(model, count, sampler, rng, BATCH_FLOATS, |theta| {
        let candidate = model.with_theta(&theta)?;
        if guard.accepts_model(&candidate, original_accuracy) {
            accepted.push((theta, candidate));
        }
        Ok(())
    })?;
    Ok(accepted)
}

/// Predicted classes of `model` on host images (native, synchronous readback).
#[cfg(not(target_arch = "wasm32"))]
pub fn predict(model: &Classifier, images: &Images, device: &Device) -> Vec<u8> {
    let mut out = Vec::with_capacity(images.len());
    let p = images.pixels_per_image();
    for chunk in images.pixels.chunks(2048 * p) {
        let logits = model.forward(images_tensor(chunk, p, device));
        let classes = logits.argmax(1).into_data();
        out.extend(classes.iter::<i64>().map(|c| c as u8));
    }
    out
}
