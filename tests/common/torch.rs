//! Helpers of the PyTorch interchange tests: the fixtures, the CLI, a tiny run.

use std::path::{Path, PathBuf};
use std::process::Command;

use g2d::torch::TorchTensor;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch")
        .join(name)
}

pub fn sorted(mut tensors: Vec<TorchTensor>) -> Vec<TorchTensor> {
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    tensors
}

pub fn g2d(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_g2d"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "g2d {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Samples the run's bundle and writes θ_orig and the accepted sets as state_dicts under
/// `dir/sets`, which it returns.
pub fn export(run: &str, dir: &Path) -> PathBuf {
    let out = dir.join("sets");
    let args = ["--run", run, "generate", "--out-safetensors"];
    g2d(&[&args[..], &[out.to_str().unwrap()]].concat());
    out
}

/// Stages small enough that a whole pipeline takes about a second.
pub const TINY_RUN: &str = r#"{"collect": {"checkpoints": 4, "save_every": 1, "vulnerability": null, "adversarial": null,
                "seeds": 1, "pretrain_steps": 2000},
    "autoencoder": {"steps": 5, "batch_size": 4, "network": {"channels": [8]}},
    "diffusion": {"steps": 5, "batch_size": 4, "baseline": false, "lambda_l1": 0.5,
                  "denoiser": {"channels": 8, "time_dim": 8}},
    "generate": {"count": 2, "guard_delta": 1.0}}"#;
