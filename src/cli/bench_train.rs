//! `g2d bench --train`: milliseconds per optimiser step of the autoencoder and of the diffusion
//! model (λ = 0 and the run's λ), on the run's backend and configuration. Figures are printed,
//! never asserted.
//!
//! The steps are the pipeline's own (`train_autoencoder`, `train_diffusion`), run on K synthetic
//! checkpoints shaped like the bundle's regenerated tensors (θ_orig plus small noise): a step's
//! cost depends on the shapes, not on the values. The run's λ is timed twice: with the distance
//! term alone, and with the function-space terms the run's configuration turns on (MLP only),
//! which read the bundle's validation images as their training batch and their bank of
//! adversarial examples. Each stage runs once untimed first, so kernel compilation and
//! allocation warm-up are not counted.

use std::path::Path;

use serde_json::json;

use burn::prelude::*;

use crate::bundle::Bundle;
use crate::classifier::Arch;
use crate::error::Result;
use crate::functional::FunctionalMlp;
use crate::normalize::Normalizer;
use crate::pipeline::config::RunConfig;
use crate::pipeline::run::{load_bundle, Run};
use crate::pipeline::train_autoencoder::{train_autoencoder, TrainedAutoencoder};
use crate::pipeline::train_diffusion::{
    standardised_theta_orig, train_diffusion, DiffusionData, FunctionData,
};
use crate::rng::G2dRng;

/// Steps of the untimed warm-up run of each stage.
const WARM_UP_STEPS: usize = 5;

fn synthetic_checkpoints(bundle: &Bundle, k: usize) -> Vec<Vec<f32>> {
    let mut rng = G2dRng::seeded(0);
    (0..k)
        .map(|_| {
            let noise = rng.normal_vec(bundle.theta_orig.len());
            bundle
                .theta_orig
                .iter()
                .zip(noise)
                .map(|(v, n)| v + 0.01 * n)
                .collect()
        })
        .collect()
}

fn with_steps(config: &RunConfig, steps: usize) -> RunConfig {
    let mut c = config.clone();
    c.autoencoder.steps = steps;
    c.diffusion.steps = steps;
    c
}

/// What the function-space terms read, from the bundle alone: its classifier batched over
/// parameter sets, and its validation images as both the training batch and the bank.
fn bundle_function_data<'a>(
    bundle: &'a Bundle,
    param_norm: &'a Normalizer,
    centres: &'a [Vec<f32>],
    device: &Device,
) -> Result<FunctionData<'a>> {
    let meta = &bundle.meta;
    let classifier = meta
        .fixed
        .unflatten(meta.classifier.init(device), &bundle.fixed)?;
    Ok(FunctionData {
        classifier: FunctionalMlp::new(meta.classifier.arch, &classifier, &meta.regenerated)?,
        param_norm,
        centres,
        train: &bundle.validation,
        bank: bundle.validation.clone(),
    })
}

/// Milliseconds per diffusion step at `lambda`, with the function-space terms when `function`
/// is given.
fn diffusion_ms(
    config: &RunConfig,
    ae: &TrainedAutoencoder,
    theta_orig: &[Vec<f32>],
    lambda: f32,
    function: Option<FunctionData>,
    run: &Run,
) -> Result<f64> {
    let data = DiffusionData {
        latents: &ae.latents,
        latent_shape: [ae.info.config.latent_channels, ae.info.config.latent_len()],
        latent_norm: &ae.latent_norm,
        latent_clip: ae.info.latent_clip,
        decoder: &ae.decoder,
        theta_orig,
        per_run: config.collect.per_run(),
        function,
    };
    train_diffusion(
        &with_steps(config, WARM_UP_STEPS),
        lambda,
        &data,
        &run.device,
    )?;
    let info = train_diffusion(config, lambda, &data, &run.device)?;
    Ok(info.info.seconds * 1000.0 / config.diffusion.steps as f64)
}

pub fn bench_train(run: &Run, bundle_path: &Path, steps: usize, json: bool) -> Result<()> {
    let bundle = load_bundle(bundle_path)?;
    let config = with_steps(&run.config, steps);
    let checkpoints = synthetic_checkpoints(&bundle, config.collect.checkpoints);
    train_autoencoder(
        &with_steps(&config, WARM_UP_STEPS),
        &checkpoints,
        &run.device,
    )?;
    let ae = train_autoencoder(&config, &checkpoints, &run.device)?;
    let ae_ms = ae.info.seconds * 1000.0 / steps as f64;
    let theta_orig = standardised_theta_orig(&bundle.theta_orig, &ae.param_norm, &ae.param_centres);
    let lambda = config.diffusion.lambda_l1;
    let mut rows = vec![("autoencoder".to_string(), ae_ms)];
    for l in [0.0, lambda] {
        let ms = diffusion_ms(&config, &ae, &theta_orig, l, None, run)?;
        rows.push((format!("diffusion, λ = {l}"), ms));
    }
    let d = &config.diffusion;
    if d.function_terms_at(lambda) && bundle.meta.classifier.arch == Arch::Mlp {
        let function =
            bundle_function_data(&bundle, &ae.param_norm, &ae.param_centres, &run.device)?;
        let ms = diffusion_ms(&config, &ae, &theta_orig, lambda, Some(function), run)?;
        let terms = [
            ("task", d.task_weight),
            ("vulnerability", d.vulnerability_weight),
            ("cross", d.cross_weight),
        ]
        .iter()
        .filter(|(_, w)| *w != 0.0)
        .map(|(name, w)| format!("{name} ×{w}"))
        .collect::<Vec<_>>()
        .join(", ");
        rows.push((format!("diffusion, λ = {lambda}, {terms}"), ms));
    }
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(stage, ms)| json!({"stage": stage, "ms_per_step": ms}))
            .collect();
        let out = json!({"backend": run.config.backend.label(), "steps": steps, "training": rows});
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        return Ok(());
    }
    println!(
        "{} parameters, K = {}, backend {}, {steps} timed steps per stage after {WARM_UP_STEPS} untimed\n\n| stage | batch | ms per step |\n|---|---:|---:|",
        bundle.theta_orig.len(),
        config.collect.checkpoints,
        run.config.backend.label(),
    );
    for (i, (stage, ms)) in rows.iter().enumerate() {
        let batch = match i {
            0 => config.autoencoder.batch_size,
            _ => config.diffusion.batch_size,
        };
        println!("| {stage} | {batch} | {ms:.1} |");
    }
    Ok(())
}
