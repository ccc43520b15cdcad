//! Shared test helpers: a small, valid bundle made from freshly initialised networks, a bundle
//! file taken apart and put back together (as an editor of the file could), and an empty
//! scratch directory.

#![allow(dead_code)]

#[cfg(not(target_arch = "wasm32"))]
pub mod torch;

use g2d::autoencoder::AutoencoderConfig;
use g2d::backend::cpu_device;
use g2d::bundle::{sha256_hex, Bundle, BundleMeta, Precision};
use g2d::classifier::{Arch, ClassifierConfig};
use g2d::data::Images;
use g2d::diffusion::denoiser::DenoiserConfig;
use g2d::diffusion::sampler::SamplerConfig;
use g2d::diffusion::schedule::ScheduleConfig;
use g2d::normalize::Normalizer;
use g2d::params::{Manifest, Scope};
use g2d::rng::G2dRng;

/// An empty directory `g2d-NAME-PID` under the system's temporary directory.
#[cfg(not(target_arch = "wasm32"))]
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("g2d-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A bundle whose networks are untrained but whose every section is consistent.
pub fn small_bundle() -> Bundle {
    small_bundle_of(ClassifierConfig::new(Arch::Mlp), Scope::Last)
}

/// The same for another classifier and scope.
pub fn small_bundle_of(shape: ClassifierConfig, scope: Scope) -> Bundle {
    let device = cpu_device();
    let classifier = shape.init(&device);
    let regenerated = Manifest::regenerated(&classifier, scope);
    let fixed = Manifest::fixed(&classifier, scope);
    let ae = AutoencoderConfig::new(regenerated.len()).with_channels(vec![8]);
    let decoder = ae.init_decoder(&device);
    let denoiser_config = DenoiserConfig::new(ae.latent_channels)
        .with_channels(8)
        .with_blocks(1)
        .with_time_dim(8);
    let denoiser = denoiser_config.init(&device);
    let theta_orig = regenerated.flatten(&classifier);
    let mut rng = G2dRng::seeded(3);
    let validation = Images {
        pixels: (0..20 * shape.inputs())
            .map(|_| (rng.below(256) as f32) / 255.0)
            .collect(),
        labels: (0..20).map(|i| (i % shape.classes) as u8).collect(),
        channels: shape.channels,
        rows: shape.image[0],
        cols: shape.image[1],
    };
    Bundle {
        precision: Precision::F32,
        meta: BundleMeta {
            classifier: shape.clone(),
            scope,
            dataset: "test".into(),
            regenerated: regenerated.clone(),
            fixed: fixed.clone(),
            autoencoder: ae.clone(),
            denoiser: denoiser_config,
            schedule: ScheduleConfig::new().with_timesteps(50),
            sampler: SamplerConfig::Ddim { steps: 5, eta: 0.0 },
            lambda_l1: 0.0,
            guard_delta: 0.01,
            candidates: None,
            latent_clip: 3.0,
            theta_orig_sha256: sha256_hex(&theta_orig),
            training: serde_json::json!({"test": true}),
            torch_names: None,
            sections: Vec::new(),
        },
        decoder: Manifest::full(&decoder).flatten(&decoder),
        denoiser: Manifest::full(&denoiser).flatten(&denoiser),
        fixed: fixed.flatten(&classifier),
        param_norm: Normalizer {
            mean: theta_orig.clone(),
            std: vec![0.01; theta_orig.len()],
        },
        param_centres: Vec::new(),
        latent_norm: Normalizer {
            mean: vec![0.0; ae.latent_size()],
            std: vec![1.0; ae.latent_size()],
        },
        theta_orig,
        validation,
    }
}

/// `config`'s network with every parameter drawn from `G2dRng::seeded(seed)` (N(0, 0.1²)):
/// the same network on every run, whatever the backend's global generator did before, so a
/// tiny network's ReLUs cannot all happen to be dead.
pub fn seeded_network(
    config: &ClassifierConfig,
    seed: u64,
    device: &burn::prelude::Device,
) -> g2d::classifier::Classifier {
    let model = config.init(device);
    let manifest = Manifest::full(&model);
    let theta: Vec<f32> = G2dRng::seeded(seed)
        .normal_vec(manifest.len())
        .into_iter()
        .map(|v| 0.1 * v)
        .collect();
    manifest.unflatten(model, &theta).unwrap()
}

/// A CNN of non-square kernels, strides and paddings, a padded overlapping pool before the
/// ReLU (negative values, which the padding must not beat) and a non-square pool, on 14×11
/// images; 4 classes.
pub fn odd_cnn() -> ClassifierConfig {
    let layers = serde_json::from_value(serde_json::json!([
        {"type": "conv2d", "out_channels": 4, "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 0]},
        {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 5, "kernel_size": [2, 3]},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": [1, 2]},
        {"type": "flatten"},
        {"type": "linear", "out_features": 4}
    ]))
    .unwrap();
    ClassifierConfig {
        layers: Some(layers),
        ..ClassifierConfig::new(Arch::Cnn).with_data([14, 11], 4)
    }
}

/// A CNN with what G2D's own lacks: stride, padding, a stride that drops a row (14 rows, 11
/// columns), overlapping pooling windows, flattening, two linear layers; 4 classes.
pub fn strided_cnn() -> ClassifierConfig {
    let layers = serde_json::from_value(serde_json::json!([
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2, "stride": 1},
        {"type": "conv2d", "out_channels": 5, "kernel_size": 2},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "linear", "out_features": 6},
        {"type": "relu"},
        {"type": "linear", "out_features": 4}
    ]))
    .unwrap();
    ClassifierConfig {
        layers: Some(layers),
        ..ClassifierConfig::new(Arch::Cnn).with_data([14, 11], 4)
    }
}

/// Recomputes a bundle file's trailing SHA-256, as anyone can.
pub fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    if bytes.len() >= 32 {
        let body = bytes.len() - 32;
        let digest = Sha256::digest(&bytes[..body]);
        bytes[body..].copy_from_slice(&digest);
    }
    bytes
}

/// A well-framed bundle file's metadata (JSON) and section data.
pub fn unframe(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let meta_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let meta = serde_json::from_slice(&bytes[28..28 + meta_len]).unwrap();
    (meta, bytes[28 + meta_len..bytes.len() - 32].to_vec())
}

/// A bundle file of this format version with `meta` and `data`, sealed.
pub fn frame(meta: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(meta).unwrap();
    let mut out = g2d::bundle::MAGIC.to_vec();
    out.extend_from_slice(&g2d::bundle::FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    out.extend_from_slice(&[0; 32]);
    reseal(out)
}
