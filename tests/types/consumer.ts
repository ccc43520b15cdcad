// Type-level test of the g2d-wasm typings (pkg-config/index.d.ts, pkg-config/worker-client.d.ts)
// as a consumer sees them after `npm install g2d-wasm`; tests/npm/types.test.mjs lays the
// package out and runs `tsc --noEmit --strict` on this file. Nothing here runs.

import { DEFAULT_BUNDLE, G2D, init, initCpu } from "g2d-wasm";
import type {
  Arch,
  Backend,
  BackendPreference,
  BundleInfo,
  BundleSource,
  ErrorCode,
  G2DError,
  InitInput,
  LoadOptions,
  ProgressCallback,
  RegenerateOptions,
  RegenerateResult,
  Rotation,
  RotationPolicy,
  RotationStats,
  Sampler,
  Scope,
} from "g2d-wasm";
import { G2DWorker } from "g2d-wasm/worker-client";
import type * as W from "g2d-wasm/worker-client";

// Exact type equality (fails on any difference, including optional vs required).
type Equals<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const same = <A, B>(_: Equals<A, B>) => {};
// The same object type written another way (interface, Pick, intersection) compares equal.
type Shape<T> = { [K in keyof T]: T[K] };

// One declaration: the worker client's re-exports are the entry point's types.
same<W.Arch, Arch>(true);
same<W.Backend, Backend>(true);
same<W.BackendPreference, BackendPreference>(true);
same<W.BundleInfo, BundleInfo>(true);
same<W.BundleSource, BundleSource>(true);
same<W.ErrorCode, ErrorCode>(true);
same<W.G2DError, G2DError>(true);
same<W.LoadOptions, LoadOptions>(true);
same<W.RegenerateResult, RegenerateResult>(true);
same<W.RotationPolicy, RotationPolicy>(true);
same<W.RotationStats, RotationStats>(true);
same<W.Sampler, Sampler>(true);
same<W.Scope, Scope>(true);

// The worker's options are the entry point's, except onProgress (which cannot cancel there) and
// install (the worker has no installPending).
same<Shape<Omit<W.WorkerRegenerateOptions, "onProgress">>, Shape<Omit<RegenerateOptions, "onProgress" | "install">>>(true);
same<Shape<W.WorkerBundleInfo>, Shape<BundleInfo & { fallbackAdapter?: boolean }>>(true);

// The keys src/web/mod.rs sets, in its order: info() …
const infoKeys: Record<keyof BundleInfo, true> = {
  formatVersion: true,
  precision: true,
  arch: true,
  scope: true,
  dataset: true,
  paramCount: true,
  regeneratedTensors: true,
  lambda: true,
  sampler: true,
  steps: true,
  guardDelta: true,
  backend: true,
  backendReason: true,
  adapter: true,
  originalValAccuracy: true,
  valSize: true,
  imageShape: true,
  channels: true,
  classes: true,
  sampleImages: true,
  sampleLabels: true,
};
// … regenerate()'s result …
const resultKeys: Record<keyof RegenerateResult, true> = {
  params: true,
  valAccuracy: true,
  l1ToOriginal: true,
  l2ToOriginal: true,
  originalValAccuracy: true,
  accepted: true,
  installed: true,
  candidates: true,
  acceptedCandidates: true,
  backend: true,
  sampler: true,
  steps: true,
  ms: true,
};
// … and the options its serde structs read (plus onProgress and signal, read by name).
const regenerateOptionKeys: Record<keyof RegenerateOptions, true> = {
  sampler: true,
  steps: true,
  eta: true,
  seed: true,
  guardDelta: true,
  onProgress: true,
  candidates: true,
  signal: true,
  install: true,
};
const loadOptionKeys: Record<keyof LoadOptions, true> = { backend: true };

async function mainThread(wasm: InitInput, bytes: Uint8Array): Promise<void> {
  await init(wasm);
  await initCpu(wasm);
  const g2d: G2D = await G2D.load(bytes, { backend: "auto" });
  await G2D.load("/model.g2d");
  await G2D.load();
  await G2D.load(undefined, { backend: "cpu" });
  const packaged: URL = DEFAULT_BUNDLE;
  await G2D.load(new URL("https://example.org/model.g2d"), { backend: "cpu" });

  const info: BundleInfo = g2d.info();
  const arch: "mlp" | "cnn" = info.arch;
  const scope: "last" | "last-two" | "all" = info.scope;
  const tolerance: number = info.guardDelta;
  const [h, w]: [number, number] = info.imageShape;
  const pixels: Float32Array = info.sampleImages;
  const labels: Uint8Array = info.sampleLabels;
  // @ts-expect-error only the worker reports fallbackAdapter
  info.fallbackAdapter;

  const onProgress: ProgressCallback = (step, total) => step < total;
  const r: RegenerateResult = await g2d.regenerate({
    sampler: "ddim",
    steps: 20,
    eta: 0,
    seed: 7,
    guardDelta: 0.02,
    candidates: 8,
    onProgress,
  });
  const installedOf: [number, number] = [r.acceptedCandidates, r.candidates];
  const params: Float32Array = r.params;
  const sampler: "ddim" | "dpm-solver++" | "ddpm" = r.sampler;
  const backend: "webgpu" | "cpu" = r.backend;
  // @ts-expect-error not a sampler
  await g2d.regenerate({ sampler: "euler" });
  await g2d.regenerate({ onProgress: async () => false });
  const controller = new AbortController();
  try {
    await g2d.regenerate({ signal: controller.signal });
  } catch (err) {
    const code: ErrorCode = (err as G2DError).code;
    // @ts-expect-error not an error code
    const wrong: ErrorCode = "OOPS";
    void [code, wrong];
  }

  const kept: RegenerateResult = await g2d.regenerate({ install: false });
  const swapped: boolean = kept.accepted && g2d.installPending();
  g2d.installParams(kept.params);
  const policy: RotationPolicy = {
    everyClassifications: 10,
    everyMs: 60_000,
    candidates: 4,
    worker: false,
    onRotate: (result) => console.log(result.l1ToOriginal),
    onError: (err) => console.error(err.code),
  };
  const rotation: Rotation = g2d.rotate(policy);
  const stats: RotationStats = rotation.stats;
  const rotations: number = stats.rotations;
  // @ts-expect-error a rotation does not take a seed
  g2d.rotate({ everyMs: 1000, seed: 1 });
  rotation.stop();

  const probs: Float32Array = await g2d.classify(pixels);
  await g2d.classifyOriginal([0, 0.5, 1]);
  await g2d.fgsm(pixels, labels, 0.1);
  await g2d.fgsm(pixels, [1, 2, 3], 0.1);
  g2d.free();
  void [arch, scope, tolerance, h, w, params, sampler, backend, probs, installedOf, swapped, rotations, packaged];
}

async function inWorker(bytes: ArrayBuffer): Promise<void> {
  const g2d: G2DWorker = await G2DWorker.create("/model.g2d", { backend: "webgpu" });
  await G2DWorker.create(bytes, undefined, new URL("./worker.js", "https://example.org/"));
  await G2DWorker.create();

  const info: W.WorkerBundleInfo = await g2d.info();
  const asPlain: BundleInfo = info;
  const fallback: boolean | undefined = info.fallbackAdapter;
  const scope: Scope = info.scope;

  const options: W.WorkerRegenerateOptions = {
    sampler: "ddpm",
    seed: 1,
    guardDelta: 0.05,
    onProgress: (step: number, total: number) => console.log(`${step}/${total}`),
  };
  const r: W.RegenerateResult = await g2d.regenerate(options);
  await g2d.regenerate({ signal: AbortSignal.timeout(1000) });
  const accepted: boolean = r.accepted;
  g2d.cancel();
  await g2d.rotate({ everyClassifications: 10, onRotate: (result) => console.log(result.valAccuracy) });
  const running: W.RotationStats | null = await g2d.rotationStats();
  const stopped: RotationStats | null = await g2d.stopRotation();
  await g2d.classify(asPlain.sampleImages);
  await g2d.classifyOriginal(asPlain.sampleImages);
  await g2d.fgsm(asPlain.sampleImages, asPlain.sampleLabels, 0.1);
  g2d.terminate();
  void [fallback, scope, accepted, running, stopped];
}

void [infoKeys, resultKeys, regenerateOptionKeys, loadOptionKeys, mainThread, inWorker];
