//! Which device the browser build runs on: WebGPU on a hardware adapter, the CPU backend
//! otherwise, and why. Built without the `wgpu` feature (the package's CPU-only module,
//! `g2d_wasm_cpu`), it has no WebGPU and says so.

#[cfg(feature = "wgpu")]
use std::cell::RefCell;

use burn::prelude::*;
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::backend::{cpu_device, BackendKind};
use crate::error::{G2dError, Result};

#[cfg(feature = "wgpu")]
thread_local! {
    /// burn's wgpu runtime initialises once per page or worker; later loads reuse it.
    static WEBGPU: RefCell<Option<std::result::Result<Device, String>>> = const { RefCell::new(None) };
}

/// `navigator.gpu`, if this page or worker has one.
fn has_navigator_gpu() -> bool {
    Reflect::get(&js_sys::global(), &"navigator".into())
        .ok()
        .filter(|n| !n.is_undefined())
        .and_then(|n| Reflect::get(&n, &"gpu".into()).ok())
        .is_some_and(|g| !g.is_undefined() && !g.is_null())
}

#[cfg(feature = "wgpu")]
async fn webgpu() -> std::result::Result<Device, String> {
    if let Some(cached) = WEBGPU.with(|w| w.borrow().clone()) {
        return cached;
    }
    let result = crate::backend::webgpu_device().await.map_err(|e| match e {
        G2dError::Backend { reason, .. } => reason,
        other => other.to_string(),
    });
    WEBGPU.with(|w| *w.borrow_mut() = Some(result.clone()));
    result
}

/// The CPU-only module cannot open WebGPU: the package's loader takes it only where no
/// hardware adapter answers, or for backend "cpu".
#[cfg(not(feature = "wgpu"))]
async fn webgpu() -> std::result::Result<Device, String> {
    Err(if request_adapter().await.is_none() {
        "no WebGPU adapter answered (navigator.gpu.requestAdapter() gave none)"
    } else {
        "this is the package's CPU-only module (g2d_wasm_cpu), built without WebGPU; \
         the loader takes the WebGPU module where a hardware adapter answers"
    }
    .into())
}

/// The page's (or worker's) WebGPU device, initialised on first use and shared by every later
/// caller: burn's wgpu runtime initialises once per page.
#[cfg(feature = "wgpu")]
pub async fn shared_webgpu() -> Result<Device> {
    webgpu().await.map_err(|reason| G2dError::Backend {
        backend: "webgpu".into(),
        reason,
    })
}

/// After the WebGPU device failed under a call: later loads on this page or worker do not reuse
/// it ("auto" takes the CPU and says why, "webgpu" is refused).
#[cfg(feature = "wgpu")]
pub(super) fn forget_webgpu(reason: &str) {
    let lost = format!("the WebGPU device failed earlier on this page ({reason})");
    WEBGPU.with(|w| *w.borrow_mut() = Some(Err(lost)));
}

/// The adapter `navigator.gpu.requestAdapter()` answers with, if any.
async fn request_adapter() -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok()?;
    let request: Function = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let pending = request.call0(&gpu).ok()?.dyn_into::<Promise>().ok()?;
    let adapter = JsFuture::from(pending).await.ok()?;
    (!adapter.is_null() && !adapter.is_undefined()).then_some(adapter)
}

/// Whether the adapter the browser offers is a software fallback (SwiftShader and the like):
/// `GPUAdapterInfo.isFallbackAdapter`, or the older `GPUAdapter.isFallbackAdapter`. `None` when
/// there is no adapter or the browser does not say.
async fn adapter_is_fallback() -> Option<bool> {
    let adapter = request_adapter().await?;
    let flag = |o: &JsValue| {
        Reflect::get(o, &"isFallbackAdapter".into())
            .ok()
            .and_then(|v| v.as_bool())
    };
    let info = Reflect::get(&adapter, &"info".into()).ok();
    info.as_ref().and_then(flag).or_else(|| flag(&adapter))
}

/// Picks the device for `requested`: "webgpu" (fails without an adapter), "cpu", or "auto":
/// WebGPU on a hardware adapter, else the CPU, with the reason. A software fallback adapter
/// is passed over in "auto" (here SwiftShader regenerates 6–8× slower than the wasm CPU
/// backend); "webgpu" takes it.
pub(super) async fn pick_device(requested: &str) -> Result<(Device, BackendKind, String)> {
    let cpu = |reason: String| Ok((cpu_device(), BackendKind::Cpu, reason));
    match requested {
        "cpu" => cpu("CPU backend requested".into()),
        "webgpu" | "wgpu" | "auto" => {
            if requested == "auto" && adapter_is_fallback().await == Some(true) {
                return cpu(
                    "the only WebGPU adapter is a software fallback, slower than the CPU \
                     backend (ask for backend \"webgpu\" to use it anyway)"
                        .into(),
                );
            }
            let attempt = if has_navigator_gpu() {
                webgpu().await
            } else {
                Err("navigator.gpu is undefined: this browser or context has no WebGPU".into())
            };
            match (attempt, requested) {
                (Ok(device), _) => Ok((device, BackendKind::Wgpu, "WebGPU adapter found".into())),
                (Err(reason), "auto") => cpu(format!("fell back to CPU: {reason}")),
                (Err(reason), _) => Err(G2dError::Backend {
                    backend: "webgpu".into(),
                    reason,
                }),
            }
        }
        other => Err(G2dError::config(
            "backend",
            format!("expected \"auto\", \"webgpu\" or \"cpu\", got {other:?}"),
        )),
    }
}

/// The JS API's name of a backend: the browser's API is WebGPU.
pub(super) fn js_backend_name(backend: BackendKind) -> &'static str {
    match backend {
        BackendKind::Cpu => "cpu",
        BackendKind::Wgpu => "webgpu",
    }
}

pub(super) fn adapter_name(device: &Device, backend: BackendKind) -> String {
    match backend {
        BackendKind::Cpu => "burn flex (CPU, wasm32)".into(),
        // Browsers may withhold the adapter's name (SwiftShader reports none).
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => device
            .identity()
            .map(|i| {
                if i.name.is_empty() {
                    i.fingerprint
                } else {
                    i.name
                }
            })
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "WebGPU adapter (name not reported)".into()),
        // pick_device never returns WebGPU in the CPU-only module.
        #[cfg(not(feature = "wgpu"))]
        BackendKind::Wgpu => format!("{device:?}"),
    }
}
