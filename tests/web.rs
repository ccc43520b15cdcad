//! The browser build, in headless Chromium: WebGPU (SwiftShader here) and the CPU backend load
//! the fixture bundle, regenerate what the native build regenerates from the same seed, keep the
//! old weights when the guard says no, and reject damaged bundles with their error; the
//! attacks' hand-written input gradient runs on WebGPU.
//! Run by `.ci/test` through wasm-bindgen-test-runner.

#![cfg(target_arch = "wasm32")]

use burn::module::Module;
use burn::prelude::*;
use g2d::attacks::input_gradient;
use g2d::backend::cpu_device;
use g2d::bundle::{Bundle, Precision};
use g2d::classifier::{images_tensor, labels_tensor, Arch, Classifier, ClassifierConfig};
use g2d::rng::G2dRng;
use g2d::web::{shared_webgpu, WebG2d};
use js_sys::{Float32Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod common;

const BUNDLE: &[u8] = include_bytes!("fixtures/tiny.g2d");
const EXPECTED: &str = include_str!("fixtures/tiny-seed7-ddim10.json");
/// Largest difference allowed between a browser backend and the native CPU backend.
const TOLERANCE: f32 = 1e-3;

fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn get(o: &JsValue, key: &str) -> JsValue {
    Reflect::get(o, &key.into()).unwrap()
}

async fn load(bytes: &[u8], backend: &str) -> Result<WebG2d, String> {
    WebG2d::load(
        Uint8Array::from(bytes),
        object(&[("backend", backend.into())]),
    )
    .await
    .map_err(|e| {
        e.dyn_into::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .unwrap_or_default()
    })
}

async fn regenerate(g: &WebG2d, options: JsValue) -> JsValue {
    JsFuture::from(g.regenerate(options)).await.unwrap()
}

/// The committed parameters' request: one candidate, seed 7, DDIM-10.
fn seeded() -> JsValue {
    object(&[
        ("candidates", 1.into()),
        ("seed", 7.into()),
        ("sampler", "ddim".into()),
        ("steps", 10.into()),
        ("eta", 0.0.into()),
    ])
}

fn expected() -> Vec<f32> {
    let v: serde_json::Value = serde_json::from_str(EXPECTED).unwrap();
    serde_json::from_value(v["params"].clone()).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[wasm_bindgen_test]
async fn webgpu_adapter_is_found_and_used() {
    let g = load(BUNDLE, "webgpu").await.unwrap();
    let info: JsValue = g.info().into();
    assert_eq!(get(&info, "backend").as_string().unwrap(), "webgpu");
}

/// What the browser says of its adapter: `Some(true)` for a software fallback.
async fn fallback_adapter() -> Option<bool> {
    let probe = js_sys::Function::new_no_args(
        "return navigator.gpu.requestAdapter().then((a) => a ? (a.info?.isFallbackAdapter ?? a.isFallbackAdapter ?? null) : null)",
    );
    let answer = JsFuture::from(js_sys::Promise::from(probe.call0(&JsValue::NULL).unwrap()))
        .await
        .unwrap();
    answer.as_bool()
}

#[wasm_bindgen_test]
async fn auto_passes_over_a_fallback_adapter_and_says_why() {
    let g = load(BUNDLE, "auto").await.unwrap();
    let info: JsValue = g.info().into();
    let backend = get(&info, "backend").as_string().unwrap();
    let reason = get(&info, "backendReason").as_string().unwrap();
    if fallback_adapter().await == Some(true) {
        // SwiftShader here: a software adapter, slower than the CPU backend.
        assert_eq!(backend, "cpu", "{reason}");
        assert!(reason.contains("software fallback"), "{reason}");
    } else {
        assert_eq!(backend, "webgpu", "{reason}");
    }
}

#[wasm_bindgen_test]
async fn seeded_regeneration_matches_native_on_webgpu_and_cpu() {
    let want = expected();
    for backend in ["webgpu", "cpu"] {
        let g = load(BUNDLE, backend).await.unwrap();
        let r = regenerate(&g, seeded()).await;
        let got = Float32Array::from(get(&r, "params")).to_vec();
        let d = max_diff(&got, &want);
        assert!(d < TOLERANCE, "{backend}: max |browser − native| = {d}");
        assert_eq!(get(&r, "backend").as_string().unwrap(), backend);
        let acc = get(&r, "valAccuracy").as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
        assert!(get(&r, "l1ToOriginal").as_f64().unwrap() > 0.0);
    }
}

#[wasm_bindgen_test]
async fn a_batch_of_candidates_installs_the_first_accepted() {
    let g = load(BUNDLE, "cpu").await.unwrap();
    let lenient = object(&[("candidates", 6.into()), ("guardDelta", 1.0.into())]);
    let r = regenerate(&g, lenient).await;
    assert_eq!(get(&r, "candidates").as_f64(), Some(6.0));
    assert_eq!(get(&r, "acceptedCandidates").as_f64(), Some(6.0));
    assert_eq!(get(&r, "accepted"), JsValue::TRUE);
    // At zero tolerance some of 16 pass or none do; the call installs exactly when one does.
    let strict = object(&[("candidates", 16.into()), ("guardDelta", 0.0.into())]);
    let r = regenerate(&g, strict).await;
    let passed = get(&r, "acceptedCandidates").as_f64().unwrap();
    assert!((0.0..=16.0).contains(&passed));
    assert_eq!(get(&r, "accepted").as_bool(), Some(passed > 0.0));
    if passed > 0.0 {
        let acc = get(&r, "valAccuracy").as_f64().unwrap();
        assert!(acc >= get(&r, "originalValAccuracy").as_f64().unwrap() - 1e-6);
    }
    // With every candidate accepted the first is installed: with seed 7 it is the committed
    // single-candidate sample (the batch's first row draws the same noise).
    let first = seeded();
    Reflect::set(&first, &"candidates".into(), &4.into()).unwrap();
    Reflect::set(&first, &"guardDelta".into(), &1.0.into()).unwrap();
    let r = regenerate(&g, first).await;
    let got = Float32Array::from(get(&r, "params")).to_vec();
    let d = max_diff(&got, &expected());
    assert!(
        d < TOLERANCE,
        "installed params are not the first candidate's: {d}"
    );
    let err = JsFuture::from(g.regenerate(object(&[("candidates", 0.into())])))
        .await
        .unwrap_err();
    assert_eq!(get(&err, "code").as_string().unwrap(), "INVALID_ARGUMENT");
}

#[wasm_bindgen_test]
async fn regenerate_samples_the_bundles_candidates_unless_told() {
    let lenient = || object(&[("guardDelta", 1.0.into())]);
    let g = load(BUNDLE, "cpu").await.unwrap(); // written before bundles carried B
    assert_eq!(
        get(&regenerate(&g, lenient()).await, "candidates").as_f64(),
        Some(8.0)
    );
    let mut bundle = common::small_bundle();
    bundle.meta.candidates = Some(g2d::generate::Candidates::from_check(59, 100));
    let g = load(&bundle.to_bytes(), "cpu").await.unwrap();
    assert_eq!(
        get(&regenerate(&g, lenient()).await, "candidates").as_f64(),
        Some(7.0)
    );
    let told = object(&[("candidates", 3.into()), ("guardDelta", 1.0.into())]);
    assert_eq!(
        get(&regenerate(&g, told).await, "candidates").as_f64(),
        Some(3.0)
    );
}

/// A bundle in half precision loads, says so, and regenerates, from the same seed, what its full
/// precision original does up to the rounding of its weights.
#[wasm_bindgen_test]
async fn a_half_precision_bundle_regenerates_what_the_full_one_does() {
    let full = common::small_bundle();
    let half = full.clone().at_precision(Precision::F16).unwrap();
    let theta = &full.theta_orig;
    for backend in ["webgpu", "cpu"] {
        let mut sets = Vec::new();
        for (bundle, precision) in [(&full, "f32"), (&half, "f16")] {
            let g = load(&bundle.to_bytes(), backend).await.unwrap();
            let info: JsValue = g.info().into();
            assert_eq!(
                get(&info, "precision").as_string().as_deref(),
                Some(precision)
            );
            let request = object(&[
                ("candidates", 1.into()),
                ("seed", 5.into()),
                ("guardDelta", 1.0.into()),
            ]);
            sets.push(Float32Array::from(get(&regenerate(&g, request).await, "params")).to_vec());
        }
        let mean_abs =
            |f: &dyn Fn(usize) -> f32| (0..theta.len()).map(f).sum::<f32>() / theta.len() as f32;
        let moved = mean_abs(&|i| (sets[0][i] - theta[i]).abs());
        let rounding = mean_abs(&|i| (sets[1][i] - sets[0][i]).abs());
        // What rounding θ_orig-sized weights (the normalisation's mean) to f16 can move, beside
        // a twentieth of what the networks themselves move the set.
        let bound = 2f32.powi(-10) * mean_abs(&|i| theta[i].abs()) + 0.05 * moved;
        assert!(moved > 0.0, "{backend}: the set did not move from θ_orig");
        assert!(
            rounding < bound,
            "{backend}: f16 moved the set by {rounding} (bound {bound}); it moved {moved} from θ_orig"
        );
    }
}

/// A bundle whose parameters are centred per collection run: each regenerated set adds one
/// run's mean, drawn per call, on WebGPU and the CPU alike.
#[wasm_bindgen_test]
async fn each_set_adds_one_run_centre_in_the_browser() {
    let mut bundle = common::small_bundle();
    let n = bundle.theta_orig.len();
    // Two runs' means far from anything the decoder gives: +1000 and −1000 everywhere.
    bundle.param_centres = [1000.0f32, -1000.0]
        .iter()
        .flat_map(|&c| vec![c; n])
        .collect();
    let bytes = bundle.to_bytes();
    for backend in ["webgpu", "cpu"] {
        let g = load(&bytes, backend).await.unwrap();
        let mut signs = Vec::new();
        for seed in 1..=8 {
            let request = object(&[
                ("candidates", 1.into()),
                ("seed", seed.into()),
                ("guardDelta", 1.0.into()),
            ]);
            let params = Float32Array::from(get(&regenerate(&g, request).await, "params")).to_vec();
            let sign = if params[0] > 0.0 { 1.0 } else { -1.0 };
            let off = params
                .iter()
                .map(|p| (p - sign * 1000.0).abs())
                .fold(0.0, f32::max);
            assert!(
                off < 10.0,
                "{backend}, seed {seed}: one centre for the whole set ({off})"
            );
            signs.push(sign);
        }
        assert!(
            signs.contains(&1.0) && signs.contains(&-1.0),
            "{backend}: both runs are drawn over 8 seeds: {signs:?}"
        );
    }
}

#[wasm_bindgen_test]
async fn unseeded_regenerations_differ() {
    let g = load(BUNDLE, "cpu").await.unwrap();
    let a = Float32Array::from(get(&regenerate(&g, JsValue::UNDEFINED).await, "params")).to_vec();
    let b = Float32Array::from(get(&regenerate(&g, JsValue::UNDEFINED).await, "params")).to_vec();
    assert!(max_diff(&a, &b) > 0.0, "two sessions drew the same weights");
}

#[wasm_bindgen_test]
async fn a_rejected_candidate_leaves_the_weights_in_place() {
    let g = load(BUNDLE, "webgpu").await.unwrap();
    let info: JsValue = g.info().into();
    let images = Float32Array::from(get(&info, "sampleImages"));
    let before =
        Float32Array::from(JsFuture::from(g.classify(images.clone())).await.unwrap()).to_vec();
    // The seeded candidate (seed 7, DDIM-10: the committed parameters) classifies 3 of the
    // 200 validation images fewer than the original, so a zero tolerance rejects it.
    let strict = seeded();
    Reflect::set(&strict, &"guardDelta".into(), &0.0.into()).unwrap();
    let r = regenerate(&g, strict).await;
    assert_eq!(get(&r, "accepted"), JsValue::FALSE);
    let (val, orig) = (get(&r, "valAccuracy"), get(&r, "originalValAccuracy"));
    assert!(
        val.as_f64().unwrap() < orig.as_f64().unwrap(),
        "{val:?} vs {orig:?}"
    );
    let after =
        Float32Array::from(JsFuture::from(g.classify(images.clone())).await.unwrap()).to_vec();
    assert_eq!(before, after);
    let r = regenerate(&g, object(&[("guardDelta", 1.0.into())])).await;
    assert_eq!(get(&r, "accepted"), JsValue::TRUE);
    // Accepted means installed: classify() now answers with the new weights.
    let installed = Float32Array::from(JsFuture::from(g.classify(images)).await.unwrap()).to_vec();
    assert!(
        max_diff(&installed, &before) > 0.0,
        "accepted weights not in use"
    );
    // Out of [0, 1] is refused, not clamped.
    let err = JsFuture::from(g.regenerate(object(&[("guardDelta", (-1.0).into())])))
        .await
        .unwrap_err();
    let msg: String = err.dyn_into::<js_sys::Error>().unwrap().message().into();
    assert!(msg.contains("guardDelta"), "{msg}");
}

/// The rotation's double buffer: `stageParams` builds a set without putting it in service,
/// `installStaged` then answers exactly as `installParams` with the same set, and a set that
/// cannot be built is refused by name before anything changes.
#[wasm_bindgen_test]
async fn a_staged_set_answers_only_once_installed() {
    let (g, other) = (
        load(BUNDLE, "cpu").await.unwrap(),
        load(BUNDLE, "cpu").await.unwrap(),
    );
    let info: JsValue = g.info().into();
    let images = Float32Array::from(get(&info, "sampleImages"));
    let answer = |g: &WebG2d| {
        let request = g.classify(images.clone());
        async move { Float32Array::from(JsFuture::from(request).await.unwrap()).to_vec() }
    };
    let before = answer(&g).await;
    let params = Float32Array::from(expected().as_slice());
    let staged = g.stage_params(params.clone()).unwrap();
    assert_eq!(
        answer(&g).await,
        before,
        "a staged set answered before its install"
    );
    g.install_staged(staged).unwrap();
    other.install_params(params).unwrap();
    let installed = answer(&g).await;
    assert!(
        max_diff(&installed, &before) > 0.0,
        "staged weights not in use"
    );
    assert_eq!(installed, answer(&other).await);
    let short = Float32Array::from(&expected()[1..]);
    let code = |e: JsValue| get(&e, "code").as_string().unwrap();
    assert_eq!(code(g.stage_params(short).err().unwrap()), "SHAPE_MISMATCH");
    assert_eq!(answer(&g).await, installed);
}

/// A rejection's name, `code` and message.
fn error_parts(err: JsValue) -> (String, String, String) {
    let code = get(&err, "code").as_string().unwrap_or_default();
    let e = err.dyn_into::<js_sys::Error>().unwrap();
    (e.name().into(), code, e.message().into())
}

async fn load_error(bytes: &[u8]) -> (String, String, String) {
    let err = WebG2d::load(Uint8Array::from(bytes), JsValue::UNDEFINED)
        .await
        .err()
        .unwrap();
    error_parts(err)
}

#[wasm_bindgen_test]
async fn cancelling_is_an_abort_error_by_callback_or_signal() {
    let g = load(BUNDLE, "cpu").await.unwrap();
    let stop = js_sys::Function::new_with_args("step", "return step < 3");
    let err = JsFuture::from(g.regenerate(object(&[("onProgress", stop.into())])))
        .await
        .unwrap_err();
    let (name, code, msg) = error_parts(err);
    assert_eq!(
        (name.as_str(), code.as_str()),
        ("AbortError", "ABORTED"),
        "{msg}"
    );

    // An AbortSignal that fires during sampling, and one that fired before the call.
    let controller = js_sys::eval("new AbortController()").unwrap();
    let signal = get(&controller, "signal");
    let abort_at_3 =
        js_sys::Function::new_with_args("c", "return (step) => { if (step >= 3) c.abort(); }")
            .call1(&JsValue::NULL, &controller)
            .unwrap();
    let options = object(&[("signal", signal.clone()), ("onProgress", abort_at_3)]);
    let (name, code, _) = error_parts(JsFuture::from(g.regenerate(options)).await.unwrap_err());
    assert_eq!((name.as_str(), code.as_str()), ("AbortError", "ABORTED"));
    let options = object(&[("signal", signal)]);
    let (name, _, _) = error_parts(JsFuture::from(g.regenerate(options)).await.unwrap_err());
    assert_eq!(name, "AbortError");
}

#[wasm_bindgen_test]
async fn errors_carry_a_stable_code() {
    assert_eq!(load_error(&BUNDLE[..100]).await.1, "BUNDLE_TRUNCATED");
    let mut flipped = BUNDLE.to_vec();
    flipped[BUNDLE.len() / 2] ^= 0x10;
    assert_eq!(load_error(&flipped).await.1, "BUNDLE_CHECKSUM");
    let mut bundle = Bundle::from_bytes(BUNDLE).unwrap();
    bundle.meta.denoiser.time_dim = 0;
    let (_, code, msg) = load_error(&bundle.to_bytes()).await;
    assert_eq!(code, "BUNDLE_METADATA", "{msg}");
    assert!(msg.contains("denoiser.time_dim"), "{msg}");

    let g = load(BUNDLE, "cpu").await.unwrap();
    let fractional = object(&[("seed", 1.5.into())]);
    let (_, code, msg) = error_parts(JsFuture::from(g.regenerate(fractional)).await.unwrap_err());
    assert_eq!(code, "INVALID_ARGUMENT", "{msg}");
    assert!(msg.contains("seed"), "{msg}");
    let odd = Float32Array::new_with_length(100);
    let (_, code, _) = error_parts(JsFuture::from(g.classify(odd)).await.unwrap_err());
    assert_eq!(code, "SHAPE_MISMATCH");
    let nan = Float32Array::from(vec![f32::NAN; 784].as_slice());
    let (_, code, _) = error_parts(JsFuture::from(g.classify(nan)).await.unwrap_err());
    assert_eq!(code, "NON_FINITE");
}

/// classify() while a regeneration awaits the device (or yields between steps) answers, and
/// the regeneration then installs its weights: no borrow is held across an await.
#[wasm_bindgen_test]
async fn classify_runs_while_a_regeneration_is_in_flight() {
    for backend in ["webgpu", "cpu"] {
        let g = load(BUNDLE, backend).await.unwrap();
        let info: JsValue = g.info().into();
        let images = Float32Array::from(get(&info, "sampleImages"));
        let yielding = js_sys::Function::new_no_args("return new Promise((r) => setTimeout(r, 0))");
        let options = object(&[("onProgress", yielding.into()), ("guardDelta", 1.0.into())]);
        let pending = g.regenerate(options);
        let finished = std::rc::Rc::new(std::cell::Cell::new(false));
        let flag = finished.clone();
        let on_settle =
            wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |_| flag.set(true));
        let _ = pending.then2(&on_settle, &on_settle);
        // One classify() per turn of the event loop: on the CPU backend a classify() settles
        // in microtasks alone, and back to back they would starve the regeneration's timers.
        let next_turn =
            js_sys::Function::new_no_args("return new Promise((r) => setTimeout(r, 0))");
        let mut classified = 0;
        while !finished.get() && classified < 100_000 {
            JsFuture::from(g.classify(images.clone())).await.unwrap();
            classified += 1;
            let turn = next_turn.call0(&JsValue::NULL).unwrap();
            JsFuture::from(js_sys::Promise::from(turn)).await.unwrap();
        }
        let r = JsFuture::from(pending).await.unwrap();
        assert_eq!(get(&r, "accepted"), JsValue::TRUE, "{backend}");
        assert!(classified > 0, "{backend}: no classify() overlapped");
        JsFuture::from(g.classify(images)).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn damaged_bundles_are_rejected_with_their_error() {
    let truncated = &BUNDLE[..BUNDLE.len() - 10];
    assert!(load(truncated, "cpu")
        .await
        .err()
        .unwrap()
        .contains("truncated"));
    let mut flipped = BUNDLE.to_vec();
    flipped[BUNDLE.len() / 2] ^= 0x10;
    assert!(load(&flipped, "cpu")
        .await
        .err()
        .unwrap()
        .contains("checksum mismatch"));
    let mut version = BUNDLE.to_vec();
    version[8] = 9;
    assert!(load(&version, "cpu")
        .await
        .err()
        .unwrap()
        .contains("unsupported format version 9"));
    let mut bundle = Bundle::from_bytes(BUNDLE).unwrap();
    bundle.denoiser.truncate(10);
    let err = load(&bundle.to_bytes(), "cpu").await.err().unwrap();
    assert!(err.contains("section denoiser holds"), "{err}");
}

/// A bundle for an MLP of other widths on 10×10 images of 4 classes, every layer regenerated,
/// runs through the same API; so does one for a CNN of its own layers (an `--arch FILE`) on
/// RGB images.
#[wasm_bindgen_test]
async fn an_mlp_of_other_widths_and_data_regenerates_and_classifies() {
    let shape = ClassifierConfig {
        hidden: vec![16, 8],
        ..ClassifierConfig::new(Arch::Mlp).with_data([10, 10], 4)
    };
    let bytes = common::small_bundle_of(shape, g2d::params::Scope::All).to_bytes();
    let rgb = common::strided_cnn().with_channels(3);
    let cnn = common::small_bundle_of(rgb, g2d::params::Scope::All).to_bytes();
    for backend in ["webgpu", "cpu"] {
        let g = load(&cnn, backend).await.unwrap();
        let lenient = [("candidates", 2.into()), ("guardDelta", 1.0.into())];
        let r = regenerate(&g, object(&lenient)).await;
        assert_eq!(get(&r, "accepted"), JsValue::TRUE, "cnn {backend}");
        let info: JsValue = g.info().into();
        assert_eq!(get(&info, "channels").as_f64(), Some(3.0));
        let images = Float32Array::from(vec![0.5f32; 2 * 3 * 14 * 11].as_slice());
        let probs = Float32Array::from(JsFuture::from(g.classify(images)).await.unwrap());
        assert_eq!(probs.length(), 2 * 4, "cnn {backend}");
    }
    for backend in ["webgpu", "cpu"] {
        let g = load(&bytes, backend).await.unwrap();
        let options = [("candidates", 2.into()), ("guardDelta", 1.0.into())];
        let r = regenerate(&g, object(&[&options[..], &[("seed", 3.into())]].concat())).await;
        assert_eq!(get(&r, "accepted"), JsValue::TRUE, "{backend}");
        let params = Float32Array::from(get(&r, "params")).to_vec();
        assert_eq!(params.len(), 100 * 16 + 16 + 16 * 8 + 8 + 8 * 4 + 4);
        let info: JsValue = g.info().into();
        assert_eq!(get(&info, "classes").as_f64(), Some(4.0));
        let images = Float32Array::from(vec![0.5f32; 3 * 100].as_slice());
        let probs = Float32Array::from(JsFuture::from(g.classify(images)).await.unwrap());
        assert_eq!(probs.length(), 3 * 4, "{backend}");
        let err = JsFuture::from(g.classify(Float32Array::from(vec![0.5f32; 784].as_slice())))
            .await
            .unwrap_err();
        assert_eq!(get(&err, "code").as_string().unwrap(), "SHAPE_MISMATCH");
    }
}

#[wasm_bindgen_test]
async fn fgsm_and_classify_answer_in_range() {
    let g = load(BUNDLE, "webgpu").await.unwrap();
    let info: JsValue = g.info().into();
    let images = Float32Array::from(get(&info, "sampleImages"));
    let labels = Uint8Array::from(get(&info, "sampleLabels"));
    let adv = Float32Array::from(
        JsFuture::from(g.fgsm(images.clone(), labels, 0.1))
            .await
            .unwrap(),
    )
    .to_vec();
    let clean = images.to_vec();
    assert!(max_diff(&adv, &clean) <= 0.1 + 1e-5);
    let probs = Float32Array::from(JsFuture::from(g.classify(images)).await.unwrap()).to_vec();
    assert_eq!(probs.len(), clean.len() / 784 * 10);
    for row in probs.chunks(10) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-3);
    }
}

async fn host(tensor: Tensor<2>) -> Vec<f32> {
    let data = tensor.into_data_async().await.unwrap();
    data.try_to_vec::<f32>().unwrap()
}

/// The input gradient the page's attacks use (hand-written: the browser build has no
/// autodiff) gives on WebGPU what it gives on the CPU backend, for the MLP and the CNNs, and
/// reads nothing back synchronously on the way, which WebGPU cannot do.
#[wasm_bindgen_test]
async fn the_input_gradient_runs_on_webgpu_for_the_mlp_and_the_cnn() {
    let (cpu, gpu) = (cpu_device(), shared_webgpu().await.unwrap());
    let configs = [
        ClassifierConfig::new(Arch::Mlp),
        ClassifierConfig::new(Arch::Cnn),
        common::strided_cnn(),
        common::odd_cnn(),
    ];
    for (i, config) in configs.into_iter().enumerate() {
        let (arch, per) = (format!("configs[{i}] "), config.inputs());
        let mut rng = G2dRng::seeded(1);
        let pixels: Vec<f32> = (0..4 * per).map(|_| rng.uniform()).collect();
        let labels: Vec<u8> = [0u8, 3, 7, 9].map(|l| l % config.classes as u8).to_vec();
        let model = common::seeded_network(&config, 3, &cpu);
        let on_gpu = model.clone().to_device(&gpu);
        let gradient = |m: &Classifier, d: &Device| {
            input_gradient(m, images_tensor(&pixels, per, d), labels_tensor(&labels, d))
        };
        let want = host(gradient(&model, &cpu)).await;
        let got = host(gradient(&on_gpu, &gpu)).await;
        let scale = want.iter().fold(0f32, |m, g| m.max(g.abs()));
        assert!(scale > 0.0, "{arch}{}: zero gradient", config.arch);
        let worst = max_diff(&got, &want);
        assert!(
            worst <= 1e-3 * scale,
            "{arch}{}: off by {worst} (scale {scale})",
            config.arch
        );
    }
}
