//! `g2d bench`: how long regenerating parameter sets takes (sampling, decoding, one
//! readback), per backend, sampler and batch. Figures are printed, never asserted.

use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use serde_json::json;

use crate::backend::{cpu_device, BackendKind};
use crate::diffusion::sampler::SamplerConfig;
use crate::error::Result;
use crate::generate::{generate_host, G2dModel};
use crate::pipeline::run::load_bundle;
use crate::rng::G2dRng;

/// One batched regeneration of `batch` sets, read back to the host.
fn regenerate(model: &G2dModel, sampler: &SamplerConfig, batch: usize, seed: u64) -> Vec<Vec<f32>> {
    generate_host(model, batch, sampler, G2dRng::seeded(seed)).expect("finite parameters")
}

/// Median and mean milliseconds of `repeats` regenerations after one warm-up.
fn time(model: &G2dModel, sampler: &SamplerConfig, batch: usize, repeats: usize) -> (f64, f64) {
    regenerate(model, sampler, batch, 0);
    let mut ms: Vec<f64> = (0..repeats)
        .map(|i| {
            let t = Instant::now();
            regenerate(model, sampler, batch, i as u64 + 1);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms.iter().sum::<f64>() / ms.len() as f64)
}

/// The devices timed: both CPU backends when none is named (ndarray is measured to justify
/// the choice of flex, not used), else the named one, on the device the run already holds
/// (a wgpu runtime initialises once per process).
fn devices(named: Option<(BackendKind, Device)>) -> Vec<(&'static str, Device)> {
    match named {
        #[allow(deprecated)]
        None => vec![
            (BackendKind::Cpu.label(), cpu_device()),
            ("ndarray", Device::ndarray()),
        ],
        Some((kind, device)) => vec![(kind.label(), device)],
    }
}

pub fn bench(
    bundle_path: &Path,
    named: Option<(BackendKind, Device)>,
    repeats: usize,
    json: bool,
) -> Result<()> {
    let bundle = load_bundle(bundle_path)?;
    let backends = devices(named);
    let samplers = [
        (
            "DDIM-50",
            SamplerConfig::Ddim {
                steps: 50,
                eta: 0.0,
            },
            repeats,
        ),
        (
            "DDIM-5",
            SamplerConfig::Ddim { steps: 5, eta: 0.0 },
            repeats,
        ),
        (
            "DDIM-10",
            SamplerConfig::Ddim {
                steps: 10,
                eta: 0.0,
            },
            repeats,
        ),
        (
            "DPM-Solver++-10",
            SamplerConfig::DpmSolver { steps: 10 },
            repeats,
        ),
        ("DDPM-1000", SamplerConfig::Ddpm, repeats.div_ceil(10)),
    ];
    // One set, and the browser's default batch of candidates (DEFAULT_CANDIDATES, src/web).
    let batches = [1, 8];
    let mut rows = Vec::new();
    if !json {
        println!(
            "bundle {} ({} parameters, latent {}×{})\n\n| backend | sampler | batch | median ms | mean ms | runs |\n|---|---|---|---|---|---|",
            bundle_path.display(),
            bundle.theta_orig.len(),
            bundle.meta.autoencoder.latent_channels,
            bundle.meta.autoencoder.latent_len()
        );
    }
    for (name, device) in &backends {
        let model = G2dModel::from_bundle(&bundle, device)?;
        for (sampler_name, sampler, n) in &samplers {
            for batch in batches {
                let (median, mean) = time(&model, sampler, batch, *n);
                if !json {
                    println!(
                        "| {name} | {sampler_name} | {batch} | {median:.1} | {mean:.1} | {n} |"
                    );
                }
                rows.push(
                    json!({"backend": name, "sampler": sampler_name, "batch": batch,
                    "median_ms": median, "mean_ms": mean, "runs": n}),
                );
            }
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
