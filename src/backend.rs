//! Where tensors run. The CPU backend is chosen here and nowhere else; burn-wgpu is the GPU
//! backend natively and in the browser (WebGPU), both with the feature `wgpu`.

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

#[cfg(any(feature = "wgpu", not(target_arch = "wasm32")))]
use crate::error::{G2dError, Result};

/// The backends G2D runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's CPU backend (flex: pure Rust, SIMD and threads natively, plain on wasm32).
    Cpu,
    /// burn-wgpu: Vulkan/Metal/DX12 natively, WebGPU in the browser.
    #[serde(alias = "webgpu")]
    #[cfg_attr(feature = "cli", value(alias = "webgpu"))]
    Wgpu,
}

/// The CPU device. flex was measured against ndarray on this pipeline (`g2d bench`); flex won
/// and is the one burn maintains, so it is the only CPU backend used.
pub fn cpu_device() -> Device {
    Device::flex()
}

/// Initialises burn-wgpu natively, failing cleanly where no adapter exists.
#[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
pub fn wgpu_device() -> Result<Device> {
    Device::wgpu_options()
        .init()
        .map_err(|e| G2dError::Backend {
            backend: "wgpu".into(),
            reason: e.to_string(),
        })
}

/// Initialises WebGPU in the browser (async, once, before the first tensor).
#[cfg(all(feature = "wgpu", target_arch = "wasm32"))]
pub async fn webgpu_device() -> Result<Device> {
    Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| G2dError::Backend {
            backend: "webgpu".into(),
            reason: e.to_string(),
        })
}

impl BackendKind {
    /// How benchmarks name the backend: the CPU one is flex, and wgpu runs with or without
    /// burn's kernel fusion, chosen when the crate is built (feature `fusion`).
    pub fn label(self) -> &'static str {
        match self {
            BackendKind::Cpu => "flex (cpu)",
            BackendKind::Wgpu if cfg!(feature = "fusion") => "wgpu + fusion",
            BackendKind::Wgpu => "wgpu",
        }
    }
}

/// A native device for `kind`.
#[cfg(not(target_arch = "wasm32"))]
pub fn native_device(kind: BackendKind) -> Result<Device> {
    match kind {
        BackendKind::Cpu => Ok(cpu_device()),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => wgpu_device(),
        #[cfg(not(feature = "wgpu"))]
        BackendKind::Wgpu => Err(G2dError::Backend {
            backend: "wgpu".into(),
            reason: "this binary was built without the `wgpu` feature \
                     (cargo build --features wgpu)"
                .into(),
        }),
    }
}
