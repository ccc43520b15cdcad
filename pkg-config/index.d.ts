// Hand-written types for the g2d-wasm entry point (index.js). The one declaration of every
// shared type: worker-client.d.ts imports and re-exports these. The objects' keys mirror what
// src/web/mod.rs sets.

/** Compute backend actually in use. */
export type Backend = "webgpu" | "cpu";

/**
 * Backend preference. "auto" uses WebGPU on a hardware adapter and the CPU otherwise: when
 * the browser has no adapter, and when its only adapter is a software fallback such as
 * SwiftShader (slower than the CPU backend); `info().backendReason` says which. "webgpu" uses
 * any adapter, fallback included, and fails without one. If the WebGPU device is lost during a
 * call, the instance moves to the CPU with its installed weights and runs the call again there.
 */
export type BackendPreference = "auto" | "webgpu" | "cpu";

/** Diffusion sampler. */
export type Sampler = "ddim" | "dpm-solver++" | "ddpm";

/** Classifier architecture a bundle protects. */
export type Arch = "mlp" | "cnn";

/** Which layers of the classifier a bundle regenerates. */
export type Scope = "last" | "last-two" | "all";

/**
 * The stable `code` every error of this package's API carries (messages may be reworded). The
 * bundle codes name the check that failed.
 */
export type ErrorCode =
  | "BUNDLE_TRUNCATED"
  | "BUNDLE_FORMAT"
  | "BUNDLE_CHECKSUM"
  | "BUNDLE_METADATA"
  | "BUNDLE_SECTION"
  | "BUNDLE_VALUE"
  | "BUNDLE_FETCH"
  | "SHAPE_MISMATCH"
  | "NON_FINITE"
  | "INVALID_ARGUMENT"
  | "BACKEND_UNAVAILABLE"
  | "ABORTED"
  | "FREED"
  | "WASM_INIT"
  | "WORKER"
  | "DATA_FORMAT"
  | "STALE_ARTIFACT"
  | "ARTIFACT_CORRUPT"
  | "TRAINING_DIVERGED"
  | "PLOT"
  | "IO"
  | "JSON"
  | "MODEL_IMPORT";

/**
 * What every promise of this package rejects with. A cancelled regeneration is named
 * "AbortError" and has code "ABORTED"; the weights in use stay as they were.
 */
export interface G2DError extends Error {
  code: ErrorCode;
}

/** Anything `G2D.load` accepts: the bundle's bytes, or a URL to fetch them from. */
export type BundleSource = Uint8Array | ArrayBuffer | string | URL;

/**
 * What `init` and `initCpu` accept: where to find their `.wasm` (`g2d_wasm_bg.wasm`,
 * `g2d_wasm_cpu_bg.wasm`), or the module itself.
 */
export type InitInput =
  | RequestInfo
  | URL
  | Response
  | BufferSource
  | WebAssembly.Module
  | Promise<RequestInfo | URL | Response | BufferSource | WebAssembly.Module>;

export interface LoadOptions {
  /** Default "auto". */
  backend?: BackendPreference;
}

/**
 * Called during sampling: after a step once at least 8 ms have passed since the last call, and
 * after the last step (each call out of the wasm costs about as much as a step). Returning `false` (or a promise of `false`) stops the
 * regeneration, which then rejects with a `G2DError` named "AbortError" (code "ABORTED").
 * Returning a promise also yields to the event loop between steps.
 */
export type ProgressCallback = (
  step: number,
  total: number,
) => void | boolean | Promise<void | boolean>;

export interface RegenerateOptions {
  /** Defaults to the sampler stored in the bundle. */
  sampler?: Sampler;
  /** Number of denoising steps; defaults to the bundle's. */
  steps?: number;
  /** DDIM stochasticity (0 = deterministic); DPM-Solver++ takes only 0. */
  eta?: number;
  /**
   * Seed for the initial noise: an integer from 0 to 2^53 − 1. For tests only: anyone who
   * holds the bundle and the seed (with the same sampler, steps and `candidates`) reproduces
   * the weights exactly. Omitted (as it should be in
   * production), each call draws fresh noise from the browser's CSPRNG.
   */
  seed?: number;
  /**
   * Guard tolerance for this call only, overriding the bundle's `guardDelta`: a candidate is
   * accepted if its validation accuracy ≥ the original's − `guardDelta`. A fraction in [0, 1];
   * anything else is refused. The acceptance rule is the native guard's (`Guard::within`).
   */
  guardDelta?: number;
  onProgress?: ProgressCallback;
  /**
   * B, the candidates sampled in one batched pass (1 to 64): the first the guard accepts is
   * installed, so a call installs nothing only when all B fail. Default: the bundle's B, the
   * fewest with which a call installs nothing at most 1% of the time by the guard check at
   * export (`candidates` in the bundle's metadata); 8 for bundles written before it.
   */
  candidates?: number;
  /**
   * Stops the regeneration between diffusion steps when it fires; the call then rejects with
   * a `G2DError` named "AbortError" (code "ABORTED").
   */
  signal?: AbortSignal;
  /**
   * `false`: keep the accepted set aside instead of installing it; `installPending()` installs
   * it later (double buffering; `rotate()` does this for you). Default `true`.
   */
  install?: boolean;
}

export interface RegenerateResult {
  /** The regenerated parameters (flattened, in the bundle's tensor order). */
  params: Float32Array;
  /** Mean absolute difference per parameter between the regenerated and original ones. */
  l1ToOriginal: number;
  /** Root-mean-square difference per parameter between the regenerated and original ones. */
  l2ToOriginal: number;
  /** Validation accuracy of the regenerated weights, as a fraction in [0, 1]. */
  valAccuracy: number;
  /** Validation accuracy of the original weights, as a fraction in [0, 1]. */
  originalValAccuracy: number;
  /**
   * Whether the guard accepted a candidate, which is then installed. `params` and the figures
   * are the installed candidate's, or the first candidate's when none passed.
   */
  accepted: boolean;
  /**
   * Whether that candidate is now in service: `accepted`, unless the call passed
   * `install: false` (it then waits for `installPending()`).
   */
  installed: boolean;
  /** B, the candidates sampled. */
  candidates: number;
  /** How many of them the guard accepted. */
  acceptedCandidates: number;
  backend: Backend;
  /** Wall-clock time of the regeneration in milliseconds. */
  ms: number;
  sampler: Sampler;
  steps: number;
}

/** When `G2D.rotate()` installs new weights, and how it samples them. */
export interface RotationPolicy
  extends Pick<RegenerateOptions, "sampler" | "steps" | "eta" | "candidates" | "guardDelta"> {
  /** Install a new set after every N classify() calls (an integer ≥ 1). */
  everyClassifications?: number;
  /** Install a new set every T milliseconds (> 0). At least one of the two is required. */
  everyMs?: number;
  /**
   * Sample in a worker of its own (a G2DWorker on the same bundle), so sampling never shares a
   * thread with classify(). Default: true where `Worker` exists. `false`: sample on this
   * thread, yielding every few milliseconds (a classify() then waits for at most one slice).
   */
  worker?: boolean;
  /** Called with the regeneration's result each time a set is installed. */
  onRotate?: (result: RegenerateResult) => void;
  /** Called when a background regeneration fails (the rotation retries a second later). */
  onError?: (error: G2DError) => void;
}

export interface RotationStats {
  /** Sets installed. */
  rotations: number;
  /** Sets the guard accepted (installed, or ready to be). */
  prepared: number;
  /** Background regenerations whose candidates the guard all rejected. */
  rejected: number;
  /** Background regenerations that failed. */
  errors: number;
  /** Whether the next set is sampled, accepted and waiting to be due. */
  ready: boolean;
  stopped: boolean;
}

/**
 * A running rotation (`G2D.rotate`). The next set is sampled and guard-checked in the
 * background, yielding to the page every few milliseconds, and installed when due, between two
 * classify() calls: classify() never waits on a regeneration and never runs on a rejected set.
 * A set not ready when due leaves the current one in service until it is.
 */
export class Rotation {
  private constructor();
  readonly stats: RotationStats;
  /** Stop rotating; the weights in service stay. */
  stop(): void;
}

export interface BundleInfo {
  formatVersion: number;
  /** How the decoder, denoiser, parameter normalisation and run means are stored (θ_orig is f32). */
  precision: "f32" | "f16";
  arch: Arch;
  scope: Scope;
  dataset: string;
  paramCount: number;
  regeneratedTensors: string[];
  /** Regularisation weight the diffusion model was trained with. */
  lambda: number;
  /** The bundle's default sampler and its number of steps. */
  sampler: Sampler;
  steps: number;
  /**
   * The guard's tolerance: a candidate is installed only if its validation accuracy ≥
   * `originalValAccuracy` − `guardDelta`.
   */
  guardDelta: number;
  backend: Backend;
  /** Why this backend was chosen, e.g. why WebGPU was not available. */
  backendReason: string;
  /** Description of the WebGPU adapter, if any. */
  adapter: string;
  /** Fraction in [0, 1]. */
  originalValAccuracy: number;
  valSize: number;
  /** [height, width] of one input image, e.g. [28, 28]. */
  imageShape: [number, number];
  /** 1 (grey) or 3 (RGB): an image is channels × height × width values, channel by channel. */
  channels: number;
  classes: number;
  /** A few validation images, count × channels × height × width values in [0, 1]. */
  sampleImages: Float32Array;
  /** Labels of `sampleImages`. */
  sampleLabels: Uint8Array;
}

/**
 * Initialise the WebGPU module (`g2d_wasm_bg.wasm`, which also runs the CPU backend).
 * `G2D.load` does this for you when it needs WebGPU; call it first only to load the `.wasm`
 * from a custom location. Once it is initialised, every later `G2D.load` uses it, whatever the
 * backend. Only the first call's argument is used.
 */
export function init(moduleOrPath?: InitInput): Promise<void>;

/**
 * Initialise the CPU-only module (`g2d_wasm_cpu_bg.wasm`, a fraction of the WebGPU module's
 * size). `G2D.load` does this for you for backend "cpu", and for "auto" where no hardware
 * WebGPU adapter answers; call it first only to load the `.wasm` from a custom location (in
 * Node.js, from its bytes). Only the first call's argument is used.
 */
export function initCpu(moduleOrPath?: InitInput): Promise<void>;

/** Where the bundle the package ships lies: `default.g2d` next to index.js. */
export const DEFAULT_BUNDLE: URL;

/** A loaded G2D bundle: the classifier, its original weights and the diffusion model. */
export class G2D {
  private constructor(inner: unknown);

  /**
   * Validate and load a `.g2d` bundle. Strings and URLs are fetched (relative URLs resolve
   * against the document); an HTTP error rejects with an Error naming the URL and status.
   * Without a source (or `undefined`), the package's own `default.g2d`: G2D on full MNIST in
   * the recommended configuration, fetched from next to index.js (`DEFAULT_BUNDLE`).
   */
  static load(source?: BundleSource, options?: LoadOptions): Promise<G2D>;

  /** Sample new classifier weights and install them if the guard accepts them. */
  regenerate(options?: RegenerateOptions): Promise<RegenerateResult>;

  /**
   * Install the set the last `regenerate({ install: false })` accepted and kept aside.
   * Synchronous; `false` when there is none.
   */
  installPending(): boolean;

  /**
   * Install `params`, a set another instance of the same bundle sampled and its guard accepted
   * (a rotation's sampling worker sends them). Only their length and finiteness are checked:
   * code "SHAPE_MISMATCH" or "NON_FINITE", and the weights in use stay.
   */
  installParams(params: Float32Array | ArrayLike<number>): void;

  /**
   * Regenerate on a schedule (every N classify() calls, every T ms, or both), double-buffered.
   * Replaces a rotation already running; `free()` stops it.
   */
  rotate(policy: RotationPolicy): Rotation;

  /** n images of `info().channels` × `info().imageShape` values (784 for MNIST) in [0, 1] → n × `info().classes` probabilities, with the current weights. */
  classify(images: Float32Array | ArrayLike<number>): Promise<Float32Array>;

  /** Like `classify`, with the original (pre-regeneration) weights. */
  classifyOriginal(images: Float32Array | ArrayLike<number>): Promise<Float32Array>;

  /** FGSM adversarial examples crafted against the original weights. */
  fgsm(
    images: Float32Array | ArrayLike<number>,
    labels: Uint8Array | ArrayLike<number>,
    epsilon: number,
  ): Promise<Float32Array>;

  info(): BundleInfo;

  /** Release the wasm-side memory now; the instance is unusable afterwards. */
  free(): void;
}
