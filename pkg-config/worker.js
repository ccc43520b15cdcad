// Module Web Worker hosting one G2D instance, so regeneration never blocks the page.
//
//   in:  {id, command: "load", bundle: ArrayBuffer | Uint8Array | string, options}
//        {id, command: "regenerate", options}
//        {id, command: "classify" | "classifyOriginal", images: Float32Array}
//        {id, command: "fgsm", images, labels, epsilon}
//        {id, command: "info"}           the bundle's info; on WebGPU, `adapter` is described
//                                        from the browser's GPUAdapterInfo when it has one,
//                                        and `fallbackAdapter` says if that is a software one
//        {command: "cancel", id?}        cancels that regeneration, or all running and queued
//                                        ones when no id is given
//        {id, command: "rotate", policy} starts a rotation (G2D.rotate) in the worker; it runs
//                                        beside the queue, so classify never waits on it
//        {id, command: "stopRotation"}   stops it; answers its stats (null if none)
//        {id, command: "rotationStats"}  its stats (null if none)
//   out: {id, status: "progress", progress: {step, total}}
//        {id, status: "done", result}
//        {id, status: "error", error: "<message>", code: "<stable code>"}
//        {id, status: "cancelled"}       a regeneration stopped by "cancel"
//        {event: "rotated", result}      the rotation installed a new set
//        {event: "rotationError", error, code}  one of its regenerations failed (it retries)

import { G2D } from "./index.js";
import { nextTask } from "./rotation.js";

let g2d = null;
let rotation = null;

// Commands run one at a time: the wasm object is not meant to be used re-entrantly, and
// while a regeneration yields between steps a classify could otherwise slip in.
let queue = Promise.resolve();

// Regenerations that have been requested but not finished, and those a cancel hit.
const pendingRegenerations = new Set();
const cancelled = new Set();

const CANCELLED = Symbol("cancelled");

function post(message, { transfer: move = false } = {}) {
  // Hand freshly computed result buffers over instead of copying them.
  const transfer = move ? transferables(message.result) : [];
  try {
    self.postMessage(message, transfer);
  } catch {
    // E.g. a view onto the wasm memory, which cannot be detached: copy instead.
    self.postMessage(message);
  }
}

function transferables(value) {
  const out = new Set();
  const visit = (v) => {
    if (ArrayBuffer.isView(v)) {
      // Only whole buffers: transferring a shared one would detach unrelated data.
      if (v.buffer instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength) {
        out.add(v.buffer);
      }
    } else if (v && typeof v === "object" && !Array.isArray(v)) {
      Object.values(v).forEach(visit);
    }
  };
  visit(value);
  return [...out];
}

// The wasm side names the WebGPU adapter as best it can, but browsers often withhold the
// name and it falls back to a driver fingerprint (SwiftShader: "spirv_0_0…"). The page's own
// GPUAdapterInfo is more readable; ask for it once per worker and reuse the answer.
let adapterDescription = null; // Promise<{adapter, fallbackAdapter} | null>

function describeAdapter() {
  adapterDescription ??= (async () => {
    try {
      const adapter = await navigator.gpu.requestAdapter();
      const info = adapter?.info;
      if (!info) return null;
      const adapterName = [info.vendor, info.architecture, info.description]
        .map((part) => (typeof part === "string" ? part.trim() : ""))
        .filter((part) => part.length > 0)
        .join(" ");
      // isFallbackAdapter moved from GPUAdapter to GPUAdapterInfo; accept either.
      const fallback = info.isFallbackAdapter ?? adapter.isFallbackAdapter;
      return {
        adapter: adapterName || null,
        fallbackAdapter: typeof fallback === "boolean" ? fallback : null,
      };
    } catch {
      return null;
    }
  })();
  return adapterDescription;
}

// The loaded bundle's info, with a readable adapter description when WebGPU is in use.
// Falls back to the wasm's own string whenever the browser tells us nothing better.
async function bundleInfo(model) {
  const info = model.info();
  if (info?.backend !== "webgpu" || typeof navigator === "undefined" || !navigator.gpu) return info;
  const described = await describeAdapter();
  if (!described) return info;
  const better = { ...info };
  if (described.adapter) better.adapter = described.adapter;
  if (described.fallbackAdapter !== null) better.fallbackAdapter = described.fallbackAdapter;
  return better;
}

function requireLoaded() {
  if (!g2d) throw new Error("no bundle loaded: send a \"load\" command first");
  return g2d;
}

// How long sampling runs between two yields to the event loop. Yielding after every step cost
// more than the steps (a setTimeout(0) chain is clamped to 4 ms), and each yield can cost a
// thread wake-up on a busy machine. One frame's worth (60 Hz) lets the default regeneration
// (DDIM-5, two sets) run unbroken, and a "cancel" still gets through within about two frames:
// the wasm reports progress at least 8 ms apart, and the first report 16 ms into a slice yields.
const SLICE_MS = 16;


async function regenerate(id, options = {}) {
  if (cancelled.has(id)) return CANCELLED;
  const model = requireLoaded();
  let sliceStart = performance.now();
  const onProgress = (step, total) => {
    post({ id, status: "progress", progress: { step, total } });
    if (performance.now() - sliceStart < SLICE_MS) return !cancelled.has(id);
    // Yield so a queued "cancel" message can be handled, then tell the wasm whether to go on.
    return nextTask().then(() => {
      sliceStart = performance.now();
      return !cancelled.has(id);
    });
  };
  try {
    return await model.regenerate({ ...options, onProgress });
  } catch (err) {
    if (cancelled.has(id) || err?.code === "ABORTED") return CANCELLED;
    throw err;
  }
}

async function handle(msg) {
  switch (msg.command) {
    case "load": {
      const next = await G2D.load(msg.bundle, msg.options ?? {});
      rotation = null;
      g2d?.free();
      g2d = next;
      return bundleInfo(g2d);
    }
    case "regenerate":
      return regenerate(msg.id, msg.options ?? {});
    case "classify":
      return requireLoaded().classify(msg.images);
    case "classifyOriginal":
      return requireLoaded().classifyOriginal(msg.images);
    case "fgsm":
      return requireLoaded().fgsm(msg.images, msg.labels, msg.epsilon);
    case "info":
      return bundleInfo(requireLoaded());
    case "rotate":
      rotation = requireLoaded().rotate({
        ...msg.policy,
        onRotate: (result) => post({ event: "rotated", result }),
        onError: (err) => post({ event: "rotationError", error: String(err?.message ?? err), code: err?.code ?? "WORKER" }),
      });
      return null;
    case "stopRotation":
      rotation?.stop();
      return rotation?.stats ?? null;
    case "rotationStats":
      return rotation?.stats ?? null;
    default:
      throw new Error(`unknown command: ${JSON.stringify(msg.command)}`);
  }
}

self.onmessage = (event) => {
  const msg = event.data ?? {};

  // Cancel is handled right away, not queued: it must reach a running regeneration.
  if (msg.command === "cancel") {
    for (const id of pendingRegenerations) {
      if (msg.id === undefined || msg.id === id) cancelled.add(id);
    }
    return;
  }

  const { id } = msg;
  if (msg.command === "regenerate") pendingRegenerations.add(id);
  queue = queue.then(async () => {
    try {
      const result = await handle(msg);
      if (result === CANCELLED) {
        post({ id, status: "cancelled" });
      } else {
        // load/info return the bundle's info, whose arrays the wasm side may keep: copy those.
        const fresh = msg.command !== "info" && msg.command !== "load";
        post({ id, status: "done", result }, { transfer: fresh });
      }
    } catch (err) {
      post({ id, status: "error", error: String(err?.message ?? err), code: err?.code ?? "WORKER" });
    } finally {
      pendingRegenerations.delete(id);
      cancelled.delete(id);
    }
  });
};
