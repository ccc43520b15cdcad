//! `g2d bench --train`: milliseconds per optimiser step of the autoencoder and of the diffusion
//! model (λ = 0 and the run's λ), on the run's backend and configuration. Figures are printed,
//! never asserted.
//!
//! The steps are the pipeline's own (`train_autoencoder`, `train_diffusion`), run on K synthetic
//! checkpoints shaped like the bundle's regenerated tensors (θ_orig plus small noise): a step's
//! cost depends on the shapes, not on the values. The function-space terms are left out (they
//! need the run's images); each stage runs once untimed first, so kernel compilation and
//! allocation warm-up are not counted.

use std::path::Path;

use serde_json::json;

use crate::bundle::Bundle;
use crate::error::Result;
use crate::pipeline::config::RunConfig;
use crate::pipeline::run::{load_bundle, Run};
use crate::pipeline::train_autoencoder::{train_autoencoder, TrainedAutoencoder};
use crate::pipeline::train_diffusion::{train_diffusion, DiffusionData};
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
    c.diffusion.task_weight = 0.0;
    c.diffusion.vulnerability_weight = 0.0;
    c
}

/// Milliseconds per diffusion step at `lambda`.
fn diffusion_ms(
    config: &RunConfig,
    ae: &TrainedAutoencoder,
    theta_orig: &[f32],
    lambda: f32,
    run: &Run,
) -> Result<f64> {
    let data = DiffusionData {
        latents: &ae.latents,
        latent_shape: [ae.info.config.latent_channels, ae.info.config.latent_len()],
        latent_norm: &ae.latent_norm,
        latent_clip: ae.info.latent_clip,
        decoder: &ae.decoder,
        theta_orig,
        function: None,
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
    let theta_orig = ae.param_norm.normalize(&bundle.theta_orig);
    let lambda = config.diffusion.lambda_l1;
    let mut rows = vec![("autoencoder".to_string(), ae_ms)];
    for l in [0.0, lambda] {
        let ms = diffusion_ms(&config, &ae, &theta_orig, l, run)?;
        rows.push((format!("diffusion, λ = {l}"), ms));
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
    let batches = [
        config.autoencoder.batch_size,
        config.diffusion.batch_size,
        config.diffusion.batch_size,
    ];
    for ((stage, ms), batch) in rows.iter().zip(batches) {
        println!("| {stage} | {batch} | {ms:.1} |");
    }
    Ok(())
}
