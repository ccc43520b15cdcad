//! `g2d bench`: how long regenerating one parameter set takes (sampling, decoding, one
//! readback), per sampler and CPU backend. Figures are printed, never asserted.

use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use serde_json::json;

use crate::diffusion::sampler::SamplerConfig;
use crate::error::Result;
use crate::generate::{generate_host, G2dModel};
use crate::pipeline::run::load_bundle;
use crate::rng::G2dRng;

fn regenerate_once(model: &G2dModel, sampler: &SamplerConfig, seed: u64) -> Vec<f32> {
    generate_host(model, 1, sampler, G2dRng::seeded(seed))
        .expect("finite parameters")
        .remove(0)
}

/// Median and mean milliseconds of `repeats` regenerations after one warm-up.
fn time(model: &G2dModel, sampler: &SamplerConfig, repeats: usize) -> (f64, f64) {
    regenerate_once(model, sampler, 0);
    let mut ms: Vec<f64> = (0..repeats)
        .map(|i| {
            let t = Instant::now();
            regenerate_once(model, sampler, i as u64 + 1);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms.iter().sum::<f64>() / ms.len() as f64)
}

pub fn bench(bundle_path: &Path, repeats: usize, json: bool) -> Result<()> {
    let bundle = load_bundle(bundle_path)?;
    #[allow(deprecated)] // ndarray is measured to justify the choice of flex, not used.
    let backends = [
        ("flex (cpu)", Device::flex()),
        ("ndarray", Device::ndarray()),
    ];
    let samplers = [
        (
            "DDIM-50",
            SamplerConfig::Ddim {
                steps: 50,
                eta: 0.0,
            },
            repeats,
        ),
        ("DDPM-1000", SamplerConfig::Ddpm, repeats.div_ceil(10)),
    ];
    let mut rows = Vec::new();
    if !json {
        println!(
            "bundle {} ({} parameters, latent {}×{})\n\n| backend | sampler | median ms | mean ms | runs |\n|---|---|---|---|---|",
            bundle_path.display(),
            bundle.theta_orig.len(),
            bundle.meta.autoencoder.latent_channels,
            bundle.meta.autoencoder.latent_len()
        );
    }
    for (name, device) in &backends {
        let model = G2dModel::from_bundle(&bundle, device)?;
        for (sampler_name, sampler, n) in &samplers {
            let (median, mean) = time(&model, sampler, *n);
            if !json {
                println!("| {name} | {sampler_name} | {median:.1} | {mean:.1} | {n} |");
            }
            rows.push(json!({"backend": name, "sampler": sampler_name, "median_ms": median, "mean_ms": mean, "runs": n}));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"regeneration": rows})).expect("json")
        );
    }
    Ok(())
}
