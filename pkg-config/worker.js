// Module Web Worker hosting one G2D instance, so regeneration never blocks the page.
//
//   in:  {id, command: "load", bundle: ArrayBuffer | Uint8Array | string, options}
//        {id, command: "regenerate", options}
//        {id, command: "classify" | "classifyOriginal", images: Float32Array}
//        {id, command: "fgsm", images, labels, epsilon}
//        {id, command: "info"}
//        {command: "cancel"}             cancels running and queued regenerations
//   out: {id, status: "progress", progress: {step, total}}
//        {id, status: "done", result}
//        {id, status: "error", error: "<message>"}
//        {id, status: "cancelled"}       a regeneration stopped by "cancel"

import { G2D } from "./index.js";

let g2d = null;

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

function requireLoaded() {
  if (!g2d) throw new Error("no bundle loaded: send a \"load\" command first");
  return g2d;
}

async function regenerate(id, options = {}) {
  if (cancelled.has(id)) return CANCELLED;
  const model = requireLoaded();
  const onProgress = (step, total) => {
    post({ id, status: "progress", progress: { step, total } });
    // Yield to the event loop so a queued "cancel" message can be handled, then tell the
    // wasm whether to go on.
    return new Promise((resolve) => setTimeout(() => resolve(!cancelled.has(id)), 0));
  };
  try {
    return await model.regenerate({ ...options, onProgress });
  } catch (err) {
    if (cancelled.has(id) || /cancelled/i.test(String(err?.message ?? err))) return CANCELLED;
    throw err;
  }
}

async function handle(msg) {
  switch (msg.command) {
    case "load": {
      const next = await G2D.load(msg.bundle, msg.options ?? {});
      g2d?.free();
      g2d = next;
      return g2d.info();
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
      return requireLoaded().info();
    default:
      throw new Error(`unknown command: ${JSON.stringify(msg.command)}`);
  }
}

self.onmessage = (event) => {
  const msg = event.data ?? {};

  // Cancel is handled right away, not queued: it must reach a running regeneration.
  if (msg.command === "cancel") {
    for (const id of pendingRegenerations) cancelled.add(id);
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
      post({ id, status: "error", error: String(err?.message ?? err) });
    } finally {
      pendingRegenerations.delete(id);
      cancelled.delete(id);
    }
  });
};
