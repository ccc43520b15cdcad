// Entry point of the g2d-wasm package: a thin layer over the wasm-bindgen output that
// initialises a module once and accepts bundles from URLs. The package ships two modules:
// g2d_wasm (WebGPU and the CPU backend) and g2d_wasm_cpu (the CPU backend alone, a fraction of
// the size). G2D.load fetches only the one it needs.

import { Rotation } from "./rotation.js";

export { Rotation };

// One entry per module: its glue, imported on first use, and the promise of its initialisation.
const MODULES = {
  webgpu: { glue: () => import("./g2d_wasm.js"), promise: null, ready: false },
  cpu: { glue: () => import("./g2d_wasm_cpu.js"), promise: null, ready: false },
};
// Lets G2D's constructor refuse callers other than G2D.load.
const LOADING = Symbol("G2D.load");

// Every error this package throws carries a stable `code` (the message may be reworded);
// errors from the wasm side already have theirs.
function codedError(message, code, Type = Error) {
  const err = new Type(message);
  err.code = code;
  return err;
}

// The smallest module with a SIMD instruction (i8x16.splat, i8x16.popcnt): the package's wasm
// is compiled for WebAssembly SIMD, which a browser without it refuses with a bare CompileError.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

function checkSimd() {
  if (!WebAssembly.validate(SIMD_PROBE)) {
    throw codedError(
      "this browser does not run WebAssembly SIMD, which g2d-wasm needs " +
        "(Chrome and Edge 91+, Firefox 89+, Safari 16.4+)",
      "WASM_INIT",
    );
  }
}

function initModule(which, moduleOrPath) {
  const entry = MODULES[which];
  if (!entry.promise) {
    // wasm-bindgen's init wants `{ module_or_path }`; a bare argument still works but
    // logs a deprecation warning, and no argument means "next to the glue file".
    // An object that already has `module_or_path` (wasm-bindgen's own form) passes through.
    const wrapped =
      moduleOrPath !== null && typeof moduleOrPath === "object" && "module_or_path" in moduleOrPath
        ? moduleOrPath
        : { module_or_path: moduleOrPath };
    const args = moduleOrPath === undefined ? [] : [wrapped];
    entry.promise = Promise.resolve()
      .then(checkSimd)
      .then(entry.glue)
      .then(async (glue) => {
        await glue.default(...args);
        entry.ready = true;
        return glue.G2D;
      })
      .catch((err) => {
        entry.promise = null; // let a later call retry, e.g. after a transient network error
        throw err;
      });
  }
  return entry.promise;
}

/**
 * Initialise the WebGPU module (g2d_wasm_bg.wasm, which also runs the CPU backend). Called
 * implicitly by `G2D.load` when it needs WebGPU; call it yourself first only to load the
 * `.wasm` from somewhere else than next to this file. Once it is initialised, every later
 * `G2D.load` uses it, whatever the backend. Only the first call's argument counts.
 */
export function init(moduleOrPath) {
  return initModule("webgpu", moduleOrPath).then(() => undefined);
}

/**
 * Initialise the CPU-only module (g2d_wasm_cpu_bg.wasm). Called implicitly by `G2D.load` for
 * backend "cpu", and for "auto" where no hardware WebGPU adapter answers; call it yourself
 * first only to load that `.wasm` from somewhere else (in Node.js, from its bytes).
 */
export function initCpu(moduleOrPath) {
  return initModule("cpu", moduleOrPath).then(() => undefined);
}

// Whether this page or worker offers a hardware WebGPU adapter: what "auto" runs on. A
// software fallback adapter (SwiftShader and the like) is slower than the CPU backend.
async function hardwareAdapter() {
  const gpu = globalThis.navigator?.gpu;
  if (!gpu) return false;
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return false;
    return !(adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false);
  } catch {
    return false;
  }
}

// The module for a load with `backend`: the WebGPU module once initialised (it also runs the
// CPU backend) or where WebGPU may be used, else the CPU-only one. The module itself then picks
// the device and says why (`info().backendReason`).
async function moduleFor(backend) {
  // Only once loaded: a WebGPU module still on its way may yet fail, and a CPU load need not.
  if (MODULES.webgpu.ready) return MODULES.webgpu.promise;
  const wantsWebgpu =
    backend === "webgpu" || backend === "wgpu" || (backend === "auto" && (await hardwareAdapter()));
  return initModule(wantsWebgpu ? "webgpu" : "cpu");
}

async function fetchBundle(source) {
  const url = source instanceof URL ? source.href : source;
  let response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw codedError(`Failed to fetch G2D bundle from ${url}: ${err?.message ?? err}`, "BUNDLE_FETCH");
  }
  if (!response.ok) {
    const status = `HTTP ${response.status}${response.statusText ? " " + response.statusText : ""}`;
    // response.url is absolute (and after redirects): clearer than a relative input.
    throw codedError(`Failed to fetch G2D bundle from ${response.url || url}: ${status}`, "BUNDLE_FETCH");
  }
  return new Uint8Array(await response.arrayBuffer());
}

async function toBytes(source) {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) {
    return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  }
  if (typeof source === "string" || source instanceof URL) return fetchBundle(source);
  throw codedError(
    "G2D.load: expected a Uint8Array, ArrayBuffer, URL or URL string",
    "INVALID_ARGUMENT",
    TypeError,
  );
}

// The bundle the package ships: G2D on full MNIST in the recommended configuration.
export const DEFAULT_BUNDLE = new URL("./default.g2d", import.meta.url);

// The wasm side takes exactly these array types; plain arrays are accepted for convenience.
const asF32 = (x) => (x instanceof Float32Array ? x : Float32Array.from(x));
const asU8 = (x) => (x instanceof Uint8Array ? x : Uint8Array.from(x));

/** A loaded G2D bundle: the classifier, its original weights and the diffusion model. */
export class G2D {
  #inner;
  #rotation = null;
  #bundle; // the bytes and options it was loaded with, for a rotation's sampling worker
  #loadOptions;

  /** @internal Use `G2D.load`. */
  constructor(inner, bundle, loadOptions, token) {
    if (token !== LOADING) {
      throw codedError("use G2D.load() to create a G2D", "INVALID_ARGUMENT", TypeError);
    }
    this.#inner = inner;
    this.#bundle = bundle;
    this.#loadOptions = loadOptions;
  }

  /**
   * Validate and load a `.g2d` bundle, given as bytes or as a URL to fetch. Without one, the
   * package's own `default.g2d` (full MNIST, fetched from next to this file).
   */
  static async load(source = DEFAULT_BUNDLE, options = {}) {
    const WasmG2D = await moduleFor((options ?? {}).backend ?? "auto").catch((err) => {
      // E.g. the .wasm could not be fetched or compiled.
      if (err !== null && typeof err === "object" && !("code" in err)) err.code = "WASM_INIT";
      throw err;
    });
    const bytes = await toBytes(source);
    // Kept for a rotation's sampling worker: a copy when the caller owns the array.
    const kept = typeof source === "string" || source instanceof URL ? bytes : bytes.slice();
    return new G2D(await WasmG2D.load(bytes, options ?? {}), kept, options ?? {}, LOADING);
  }

  // After free() the wasm object is gone; say so instead of failing on `undefined`.
  get #live() {
    if (!this.#inner) throw codedError("this G2D instance has been freed", "FREED");
    return this.#inner;
  }

  /**
   * `options.signal` (an AbortSignal) stops the regeneration between diffusion steps; it then
   * rejects with an error named "AbortError" (code "ABORTED") and the weights stay as they were.
   */
  async regenerate(options = {}) {
    return this.#live.regenerate(options ?? {});
  }

  /**
   * Install the set the last `regenerate({ install: false })` accepted and kept aside.
   * Synchronous; false when there is none.
   */
  installPending() {
    return this.#live.installPending();
  }

  /**
   * Install `params`, a set another instance of the same bundle sampled and its guard accepted
   * (a rotation's sampling worker sends them). Only their length and finiteness are checked.
   */
  installParams(params) {
    this.#live.installParams(asF32(params));
  }

  /**
   * Regenerate on a schedule: `{ everyClassifications: N }`, `{ everyMs: T }` or both, plus any
   * regenerate() setting (sampler, steps, eta, candidates, guardDelta) and `onRotate(result)`,
   * `onError(err)`. Double-buffered: the next set is sampled and guard-checked in the
   * background (in a worker of its own unless `worker: false`) and installed when due, between
   * two classify() calls. Replaces a rotation already running. Returns the `Rotation`
   * (`stop()`, `stats`). A rotation with `everyMs` runs until stopped or `free()`d, even if
   * the G2D is no longer referenced.
   */
  rotate(policy = {}) {
    const next = new Rotation(this.#live, this.#bundle, this.#loadOptions, policy ?? {});
    this.#rotation?.stop();
    this.#rotation = next;
    return next;
  }

  async classify(images) {
    const live = this.#live;
    this.#rotation?.beforeClassify(); // a stopped rotation only counts
    return live.classify(asF32(images));
  }

  async classifyOriginal(images) {
    return this.#live.classifyOriginal(asF32(images));
  }

  async fgsm(images, labels, epsilon) {
    return this.#live.fgsm(asF32(images), asU8(labels), epsilon);
  }

  info() {
    return this.#live.info();
  }

  /** Release the wasm-side memory now instead of waiting for garbage collection. */
  free() {
    this.#rotation?.stop();
    this.#rotation = null;
    this.#inner?.free();
    this.#inner = undefined;
  }
}
