// Hand-written types for g2d-wasm/worker-client. The shared types are declared once, in
// index.d.ts (shipped next to this file), and re-exported here; only what differs in the
// worker is declared below.

import type {
  BundleInfo,
  BundleSource,
  LoadOptions,
  RegenerateOptions,
  RegenerateResult,
  RotationPolicy,
  RotationStats,
} from "./index.js";

export type {
  Arch,
  Backend,
  BackendPreference,
  BundleInfo,
  BundleSource,
  ErrorCode,
  G2DError,
  LoadOptions,
  RegenerateResult,
  RotationPolicy,
  RotationStats,
  Sampler,
  Scope,
} from "./index.js";

/**
 * `BundleInfo` as the worker reports it. On WebGPU the worker describes the adapter from the
 * browser's `GPUAdapterInfo` (vendor, architecture, description) when the browser has one,
 * since the wasm side often only gets a driver fingerprint; otherwise `adapter` is the wasm's.
 */
export interface WorkerBundleInfo extends BundleInfo {
  /**
   * Whether the WebGPU adapter is a fallback (software) one such as SwiftShader. Absent when
   * the backend is not WebGPU or the browser does not say.
   */
  fallbackAdapter?: boolean;
}

/**
 * `RegenerateOptions` as the worker takes them: the same settings, but `onProgress` cannot
 * stop the regeneration (the callback stays on the page; use `signal` or `cancel()`), and there
 * is no `install: false` (the worker has no `installPending`).
 */
export interface WorkerRegenerateOptions extends Omit<RegenerateOptions, "onProgress" | "install"> {
  /** Called for each progress message; the return value is ignored (use `cancel()`). */
  onProgress?: (step: number, total: number) => void;
}

/** One G2D instance running in a module Web Worker (worker.js). */
export class G2DWorker {
  private constructor(worker: Worker);

  /**
   * Start the worker and load a bundle in it (default: the package's default.g2d). Relative
   * URL strings resolve against the page. `workerUrl` defaults to worker.js next to worker-client.js. Rejects (and stops
   * the worker) if the bundle cannot be loaded.
   */
  static create(
    bundle?: BundleSource,
    options?: LoadOptions,
    workerUrl?: string | URL,
  ): Promise<G2DWorker>;

  /**
   * Regenerate the weights. Rejects with a `G2DError` named "AbortError" (code "ABORTED") if
   * `options.signal` or `cancel()` stops it.
   * Calls are queued in the worker: classify calls made meanwhile run after it.
   */
  regenerate(options?: WorkerRegenerateOptions): Promise<RegenerateResult>;

  /** Stop the running regeneration and any queued ones. */
  cancel(): void;

  /**
   * Rotate the worker's weights on a schedule (see `G2D.rotate`). The rotation runs beside the
   * worker's queue, so classify() never waits on it. Replaces one already running.
   */
  rotate(policy: RotationPolicy): Promise<void>;

  /** Stop the rotation; resolves to its stats, or null if none ran. */
  stopRotation(): Promise<RotationStats | null>;

  /** The rotation's stats: null if none was started; `stopped: true` after stopRotation(). */
  rotationStats(): Promise<RotationStats | null>;

  /** n images of `info().imageShape` pixels (784 for MNIST) in [0, 1] → n × `info().classes` probabilities with the current weights. */
  classify(images: Float32Array | ArrayLike<number>): Promise<Float32Array>;

  /** Like `classify`, with the original weights. */
  classifyOriginal(images: Float32Array | ArrayLike<number>): Promise<Float32Array>;

  /** FGSM adversarial examples against the original weights. */
  fgsm(
    images: Float32Array | ArrayLike<number>,
    labels: Uint8Array | ArrayLike<number>,
    epsilon: number,
  ): Promise<Float32Array>;

  info(): Promise<WorkerBundleInfo>;

  /** Stop the worker at once; pending calls reject. */
  terminate(): void;
}
