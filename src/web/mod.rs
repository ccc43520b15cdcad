//! Browser bindings (wasm32): a thin layer that turns JS values into the same calls the CLI
//! makes. The JS API is camelCase, async, throws `Error`s with the crate's messages, and returns
//! typed arrays and plain objects. Every regeneration reads back from the device exactly once.

mod device;
mod js;
mod session;

#[cfg(feature = "wgpu")]
pub use device::shared_webgpu;

use std::rc::Rc;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use js_sys::{Float32Array, Function, Object, Promise, Reflect, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::attacks::{craft, LinfAttack};
use crate::bundle::{Bundle, FORMAT_VERSION};
use crate::classifier::{images_tensor, labels_tensor, Classifier};
use crate::diffusion::sampler::SamplerConfig;
use crate::error::{G2dError, Result};
use crate::generate::Guard;
use crate::rng::G2dRng;
use device::{js_backend_name, pick_device};
use js::{aborted, one_line, progress, set};
use session::{Session, State};

extern "C" {
    /// wasm-ld's runner of static constructors (the `inventory` registrations of burn's
    /// dependencies). A module that never calls it gets "command-style" linkage: wasm-ld wraps
    /// every export in a call to it, so all constructors ran again on every call from JS into
    /// the wasm (each onProgress return, each settled promise): about 2 ms a call, which made
    /// a regeneration that yields 2.5× slower. Calling it ourselves, once, turns that off.
    fn __wasm_call_ctors();
}

/// Runs the static constructors once: at module start, and again-guarded from `load` (the
/// wasm-bindgen-test harness does not run the start function).
fn run_constructors() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: wasm-ld's constructor runner, called exactly once per instance.
    ONCE.call_once(|| unsafe { __wasm_call_ctors() });
}

#[wasm_bindgen(start)]
fn start() {
    run_constructors();
    console_error_panic_hook::set_once();
}

/// A JS `Error` with the crate's message and its stable `code`; a cancellation is named
/// "AbortError", as `fetch` names one.
fn js_error(e: G2dError) -> JsValue {
    let error = js_sys::Error::new(&e.to_string());
    if matches!(e, G2dError::Cancelled) {
        error.set_name("AbortError");
    }
    set(&error, "code", e.code());
    error.into()
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct LoadOptions {
    backend: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RegenerateOptions {
    sampler: Option<String>,
    steps: Option<usize>,
    eta: Option<f64>,
    seed: Option<f64>,
    /// Overrides the bundle's guard tolerance for this call (a stricter deployment, or a test
    /// that needs a rejection).
    guard_delta: Option<f32>,
    /// B, the candidates sampled in one batched pass; the first the guard accepts is installed.
    candidates: Option<usize>,
    /// `false`: keep the accepted set aside for `installPending()` instead of installing it.
    install: Option<bool>,
}

/// The least time between two `onProgress` calls during sampling (`signal` is checked at
/// every step).
const PROGRESS_MS: f64 = 8.0;

/// B when neither regenerate() nor the bundle says ([`crate::generate::Candidates`], measured at
/// export): with p the guard's acceptance rate, a call installs nothing with probability
/// (1 − p)^B. On base's demo bundle the browser's guard accepts about half the candidates
/// (tests/e2e/install-rate.mjs), so (1 − p)^8 ≈ 0.6%: 4 would miss 8%.
const DEFAULT_CANDIDATES: usize = 8;

/// What one regenerate() call asks for, validated.
struct Request {
    sampler: SamplerConfig,
    delta: f32,
    rng: G2dRng,
    candidates: usize,
}

fn request(s: &State, opts: &RegenerateOptions) -> Result<Request> {
    let sampler = match (&opts.sampler, opts.steps, opts.eta) {
        (None, None, None) => s.model.bundle_meta.sampler,
        (kind, steps, eta) => SamplerConfig::parse(kind.as_deref().unwrap_or("ddim"), steps, eta)?,
    };
    sampler.validate(s.model.schedule.timesteps())?;
    let delta = opts.guard_delta.unwrap_or(s.guard.delta);
    if !(0.0..=1.0).contains(&delta) {
        return Err(G2dError::config(
            "guardDelta",
            format!("must lie in [0, 1] (a fraction of accuracy), got {delta}"),
        ));
    }
    let rng = match opts.seed {
        Some(seed) if (0.0..=MAX_SAFE_INTEGER).contains(&seed) && seed.fract() == 0.0 => {
            G2dRng::seeded(seed as u64)
        }
        Some(seed) => {
            return Err(G2dError::config(
                "seed",
                format!("must be an integer from 0 to 2^53 − 1, got {seed}"),
            ))
        }
        None => G2dRng::from_entropy(),
    };
    let bundle_default = s.model.bundle_meta.candidates.map(|c| c.count);
    let candidates = (opts.candidates.or(bundle_default)).unwrap_or(DEFAULT_CANDIDATES);
    crate::error::ensure_range("candidates", candidates, 1, 64)?;
    Ok(Request {
        sampler,
        delta,
        rng,
        candidates,
    })
}

fn options<T: for<'de> Deserialize<'de> + Default>(value: &JsValue) -> Result<T> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value.clone())
        .map_err(|e| G2dError::config("options", e.to_string()))
}

/// A loaded G2D bundle with the weights it currently serves.
#[wasm_bindgen(js_name = G2D)]
pub struct WebG2d {
    session: Rc<Session>,
}

/// The number of images in `images`, which must be whole images of `per_image` finite pixels.
fn check_images(images: &[f32], per_image: usize) -> Result<usize> {
    if images.is_empty() || !images.len().is_multiple_of(per_image) {
        return Err(G2dError::shape(
            "images",
            format!("a multiple of {per_image} pixels"),
            images.len(),
        ));
    }
    crate::error::ensure_finite("images", images)?;
    Ok(images.len() / per_image)
}

async fn read(tensor: Tensor<1>) -> Result<Vec<f32>> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| G2dError::Backend {
            backend: "readback".into(),
            reason: one_line(&format!("{e:?}")),
        })?;
    Ok(data.try_to_vec::<f32>().expect("f32 data"))
}

/// The largest integer a JS number holds exactly: seeds above it would be rounded.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A parameter set built into the classifier on one backend, waiting for `installStaged`.
#[wasm_bindgen]
pub struct StagedParams {
    state: Rc<State>,
    model: Classifier,
    theta: Vec<f32>,
}

#[wasm_bindgen(js_class = G2D)]
impl WebG2d {
    /// Validates a bundle (checksum, version, shapes, finiteness) and builds the networks on
    /// the chosen backend. `options.backend`: "auto" (default), "webgpu" or "cpu".
    pub async fn load(
        bytes: Uint8Array,
        options_js: JsValue,
    ) -> std::result::Result<WebG2d, JsValue> {
        run_constructors();
        let opts: LoadOptions = options(&options_js).map_err(js_error)?;
        let bundle = Bundle::from_bytes(&bytes.to_vec()).map_err(js_error)?;
        let requested = opts.backend.unwrap_or_else(|| "auto".into());
        let (device, backend, backend_reason) = pick_device(&requested).await.map_err(js_error)?;
        let theta_orig = bundle.theta_orig.clone();
        let state = State::build(&bundle, device, backend, backend_reason, theta_orig)
            .await
            .map_err(js_error)?;
        Ok(WebG2d {
            session: Rc::new(Session::new(bundle, state)),
        })
    }

    /// Samples B candidate parameter sets in one batched pass (`candidates`; default the
    /// bundle's B, measured at export, or 8 for older bundles), checks each with the guard and
    /// installs the first it accepts.
    /// Resolves to `{params, l1ToOriginal, l2ToOriginal, valAccuracy, originalValAccuracy,
    /// accepted, installed, candidates, acceptedCandidates, backend, ms, sampler, steps}`.
    /// `install: false` keeps the accepted set aside for `installPending()` (double buffering).
    /// `onProgress(step, total)` is called between diffusion steps, at most every 8 ms and
    /// after the last, and may return (a promise of) `false` to cancel; an AbortSignal in
    /// `signal`, checked at every step, cancels too.
    pub fn regenerate(&self, options_js: JsValue) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let op = |s| regenerate(s, options_js.clone());
            session.run(op).await.map_err(js_error)
        })
    }

    /// Installs the set the last `regenerate({install: false})` accepted and kept aside;
    /// `false` when there is none. Synchronous: the next classify() uses it.
    #[wasm_bindgen(js_name = installPending)]
    pub fn install_pending(&self) -> bool {
        let s = self.session.state();
        let next = s.pending.borrow_mut().take();
        next.map(|(model, theta)| s.install(model, theta)).is_some()
    }

    /// Installs `params`, a set that an instance of the same bundle sampled and its guard
    /// accepted (the rotation's sampling worker sends them); checks only their length and that
    /// they are finite. Synchronous: the next classify() uses them.
    #[wasm_bindgen(js_name = installParams)]
    pub fn install_params(&self, params: Float32Array) -> std::result::Result<(), JsValue> {
        self.install_staged(self.stage_params(params)?)
    }

    /// Builds `params` (checked as `installParams` checks them) into the classifier now, so that
    /// `installStaged` later is a swap: the rotation stages a set when it arrives, not inside
    /// the classify() it is due before.
    #[wasm_bindgen(js_name = stageParams)]
    pub fn stage_params(&self, params: Float32Array) -> std::result::Result<StagedParams, JsValue> {
        let state = self.session.state();
        let theta = params.to_vec();
        // Checks the length and that every value is finite before it builds anything.
        let model = state.model.with_theta(&theta).map_err(js_error)?;
        Ok(StagedParams {
            state,
            model,
            theta,
        })
    }

    /// Installs a set `stageParams` built (and consumes it). Synchronous: the next classify()
    /// uses it. Built on a backend the instance has since left (the WebGPU device failed), it
    /// is built again on the current one first.
    #[wasm_bindgen(js_name = installStaged)]
    pub fn install_staged(&self, staged: StagedParams) -> std::result::Result<(), JsValue> {
        let state = self.session.state();
        let StagedParams {
            state: built_on,
            model,
            theta,
        } = staged;
        let model = if Rc::ptr_eq(&built_on, &state) {
            model
        } else {
            state.model.with_theta(&theta).map_err(js_error)?
        };
        state.install(model, theta);
        Ok(())
    }

    /// Class probabilities (`n × 10`) for `n × 784` pixels in [0, 1], with the current weights.
    pub fn classify(&self, images: Float32Array) -> Promise {
        let (session, images) = (self.session.clone(), images.to_vec());
        future_to_promise(async move {
            let op = |s| classify(s, images.clone(), false);
            session.run(op).await.map_err(js_error)
        })
    }

    /// The same with the original weights θ_orig.
    #[wasm_bindgen(js_name = classifyOriginal)]
    pub fn classify_original(&self, images: Float32Array) -> Promise {
        let (session, images) = (self.session.clone(), images.to_vec());
        future_to_promise(async move {
            let op = |s| classify(s, images.clone(), true);
            session.run(op).await.map_err(js_error)
        })
    }

    /// FGSM examples (L∞, `epsilon`) crafted against the original weights.
    pub fn fgsm(&self, images: Float32Array, labels: Uint8Array, epsilon: f32) -> Promise {
        let (session, images, labels) = (self.session.clone(), images.to_vec(), labels.to_vec());
        future_to_promise(async move {
            let op = |s| fgsm(s, images.clone(), labels.clone(), epsilon);
            session.run(op).await.map_err(js_error)
        })
    }

    /// Bundle metadata, the backend in use and why, and a few validation images.
    pub fn info(&self) -> Object {
        let s = self.session.state();
        let meta = &s.model.bundle_meta;
        let o = Object::new();
        set(&o, "formatVersion", FORMAT_VERSION);
        // Checked when the bundle was loaded.
        set(&o, "precision", meta.precision().unwrap_or_default().name());
        set(&o, "arch", meta.classifier.arch.to_string());
        set(&o, "scope", meta.scope.to_string());
        set(&o, "dataset", meta.dataset.clone());
        set(&o, "paramCount", meta.regenerated.len() as u32);
        let names = js_sys::Array::new();
        for n in meta.regenerated.names() {
            names.push(&n.into());
        }
        set(&o, "regeneratedTensors", names);
        set(&o, "lambda", meta.lambda_l1);
        set(&o, "sampler", meta.sampler.name());
        let steps = match meta.sampler {
            SamplerConfig::Ddpm => meta.schedule.timesteps,
            SamplerConfig::Ddim { steps, .. } | SamplerConfig::DpmSolver { steps } => steps,
        };
        set(&o, "steps", steps as u32);
        set(&o, "guardDelta", meta.guard_delta);
        set(&o, "backend", js_backend_name(s.backend));
        set(&o, "backendReason", s.backend_reason.clone());
        set(&o, "adapter", s.adapter.clone());
        set(&o, "originalValAccuracy", s.original_val_accuracy);
        set(&o, "valSize", self.session.bundle.validation.len() as u32);
        let [rows, cols] = meta.classifier.image;
        set(
            &o,
            "imageShape",
            js_sys::Array::of2(&rows.into(), &cols.into()),
        );
        set(&o, "channels", meta.classifier.channels as u32);
        set(&o, "classes", meta.classifier.classes as u32);
        let sample = self.session.bundle.validation.take(16);
        set(
            &o,
            "sampleImages",
            Float32Array::from(sample.pixels.as_slice()),
        );
        set(
            &o,
            "sampleLabels",
            Uint8Array::from(sample.labels.as_slice()),
        );
        o
    }
}

/// Runs the reverse diffusion `req` asks for, reporting progress and honouring `signal`; returns
/// the sampled latents and the number of steps.
async fn sample(
    s: &State,
    req: Request,
    on_progress: &Option<Function>,
    signal: &Option<JsValue>,
) -> Result<(Tensor<3>, usize)> {
    let mut run = s.model.sample(req.candidates, &req.sampler, req.rng);
    let total = run.total();
    let mut reported = js_sys::Date::now();
    while !run.is_finished() {
        if aborted(signal) {
            return Err(G2dError::Cancelled);
        }
        run.step();
        // Each call out to JS costs about as much as a step here, so progress is reported
        // every PROGRESS_MS and after the last step, not after every step.
        let now = js_sys::Date::now();
        if now - reported < PROGRESS_MS && !run.is_finished() {
            continue;
        }
        reported = now;
        if !progress(on_progress, run.done(), total).await? || aborted(signal) {
            return Err(G2dError::Cancelled);
        }
    }
    Ok((run.finish(), total))
}

async fn regenerate(s: Rc<State>, options_js: JsValue) -> Result<JsValue> {
    let opts: RegenerateOptions = options(&options_js)?;
    let on_progress = Reflect::get(&options_js, &"onProgress".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok());
    let signal = Reflect::get(&options_js, &"signal".into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null());
    let started = js_sys::Date::now();
    let mut req = request(&s, &opts)?;
    let (b, delta, sampler) = (req.candidates, req.delta, req.sampler);
    let centres = s.model.draw_centres(b, &mut req.rng);
    let (z0, total) = sample(&s, req, &on_progress, &signal).await?;
    let n = s.model.theta_orig.len();
    let thetas = s.model.decode(z0, &centres); // [B, n]
    let mut models = (0..b)
        .map(|i| {
            s.model
                .candidate(thetas.clone().narrow(0, i, 1).reshape([n]))
        })
        .collect::<Result<Vec<_>>>()?;
    let accuracy = Tensor::cat(models.iter().map(|m| s.guard.accuracy(m)).collect(), 0);
    let diff = thetas.clone() - s.theta_orig.clone().unsqueeze_dim::<2>(0);
    let l1 = diff.clone().abs().mean_dim(1).reshape([b]);
    let l2 = diff.powi_scalar(2).mean_dim(1).sqrt().reshape([b]);
    // Every θ, accuracy and distance comes back in one readback.
    let packed = read(Tensor::cat(
        vec![thetas.reshape([b * n]), accuracy, l1, l2],
        0,
    ))
    .await?;
    let (params, figures) = packed.split_at(b * n);
    let accepted: Vec<bool> = (0..b)
        .map(|i| {
            params[i * n..(i + 1) * n].iter().all(|v| v.is_finite())
                && Guard::within(delta, figures[i], s.original_val_accuracy)
        })
        .collect();
    let chosen = accepted.iter().position(|&a| a);
    // The installed candidate's figures, or the first candidate's when none passed.
    let i = chosen.unwrap_or(0);
    let result = Object::new();
    set(
        &result,
        "params",
        Float32Array::from(&params[i * n..(i + 1) * n]),
    );
    set(&result, "valAccuracy", figures[i]);
    set(&result, "l1ToOriginal", figures[b + i]);
    set(&result, "l2ToOriginal", figures[2 * b + i]);
    set(&result, "originalValAccuracy", s.original_val_accuracy);
    set(&result, "accepted", chosen.is_some());
    set(&result, "candidates", b as u32);
    let passed = accepted.iter().filter(|&&a| a).count();
    set(&result, "acceptedCandidates", passed as u32);
    set(&result, "backend", js_backend_name(s.backend));
    set(&result, "sampler", sampler.name());
    set(&result, "steps", total as u32);
    if aborted(&signal) {
        return Err(G2dError::Cancelled); // fired during the readback: install nothing
    }
    let install = opts.install.unwrap_or(true);
    if let Some(i) = chosen {
        let chosen = (models.swap_remove(i), params[i * n..(i + 1) * n].to_vec());
        if install {
            s.install(chosen.0, chosen.1);
        } else {
            *s.pending.borrow_mut() = Some(chosen);
        }
    }
    set(&result, "installed", chosen.is_some() && install);
    set(&result, "ms", js_sys::Date::now() - started);
    Ok(result.into())
}

async fn classify(s: Rc<State>, images: Vec<f32>, original: bool) -> Result<JsValue> {
    let per_image = s.model.bundle_meta.classifier.inputs();
    check_images(&images, per_image)?;
    let model = if original {
        s.model.original.clone()
    } else {
        s.current.borrow().clone()
    };
    let probs = softmax(
        model.forward(images_tensor(&images, per_image, &s.model.device)),
        1,
    );
    let probs = read(probs.flatten::<1>(0, 1)).await?;
    Ok(Float32Array::from(probs.as_slice()).into())
}

async fn fgsm(s: Rc<State>, images: Vec<f32>, labels: Vec<u8>, epsilon: f32) -> Result<JsValue> {
    let shape = &s.model.bundle_meta.classifier;
    let n = check_images(&images, shape.inputs())?;
    if labels.len() != n || labels.iter().any(|&l| l as usize >= shape.classes) {
        return Err(G2dError::shape(
            "labels",
            format!("{n} labels in 0-{}", shape.classes - 1),
            labels.len(),
        ));
    }
    if !(0.0..=1.0).contains(&epsilon) {
        return Err(G2dError::config(
            "epsilon",
            format!("must lie in [0, 1], got {epsilon}"),
        ));
    }
    let device = &s.model.device;
    let adversarial = craft(
        &s.model.original,
        images_tensor(&images, shape.inputs(), device),
        labels_tensor(&labels, device),
        &LinfAttack::fgsm(epsilon),
        &mut G2dRng::seeded(0),
    );
    let out = read(adversarial.flatten::<1>(0, 1)).await?;
    Ok(Float32Array::from(out.as_slice()).into())
}
