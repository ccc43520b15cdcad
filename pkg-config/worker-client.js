// Promise-based client for worker.js: one G2D instance in a module Web Worker.

// The same error the main-thread API throws when a regeneration is cancelled: named
// "AbortError" (what fetch and friends use for "stopped on request"), code "ABORTED".
function cancelledError() {
  const err = new Error("regeneration cancelled");
  err.name = "AbortError";
  err.code = "ABORTED";
  return err;
}

function codedError(message, code) {
  const err = new Error(message);
  err.code = code;
  return err;
}

// Relative bundle URLs mean "relative to the page", but the worker would resolve them
// against its own script URL; pin them down here.
function resolveBundle(bundle) {
  if (bundle instanceof URL) return bundle.href;
  if (typeof bundle === "string") {
    const base = globalThis.location?.href;
    return base ? new URL(bundle, base).href : bundle;
  }
  if (bundle instanceof ArrayBuffer || ArrayBuffer.isView(bundle)) return bundle;
  throw new TypeError("G2DWorker.create: expected a Uint8Array, ArrayBuffer, URL or URL string");
}

export class G2DWorker {
  #worker;
  #nextId = 1;
  #pending = new Map(); // id → {resolve, reject, onProgress}
  #dead = null; // Error once the worker is unusable
  #rotationHandlers = {}; // {onRotate, onError} of the rotation running in the worker

  /** @internal Use `G2DWorker.create`. */
  constructor(worker) {
    this.#worker = worker;
    worker.addEventListener("message", (event) => this.#onMessage(event.data));
    // Fires when the worker script itself fails (404, syntax error, failed import).
    worker.addEventListener("error", (event) => {
      event.preventDefault?.();
      this.#fail(codedError(`G2D worker failed: ${event.message || "could not load the worker script"}`, "WORKER"));
    });
    worker.addEventListener("messageerror", () => {
      this.#fail(codedError("G2D worker sent a message that could not be deserialised", "WORKER"));
    });
  }

  /**
   * Start a worker and load a bundle in it (default: the package's default.g2d). `workerUrl`
   * defaults to worker.js next to this file. The bundle (bytes are copied, not transferred) is
   * loaded with `options`.
   */
  static async create(bundle = new URL("./default.g2d", import.meta.url), options = {}, workerUrl) {
    const source = resolveBundle(bundle);
    // Written out literally so bundlers recognise the worker entry point.
    const worker = workerUrl
      ? new Worker(workerUrl, { type: "module" })
      : new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    const client = new G2DWorker(worker);
    try {
      await client.#call({ command: "load", bundle: source, options: options ?? {} });
    } catch (err) {
      client.terminate();
      throw err;
    }
    return client;
  }

  #onMessage(msg) {
    if (msg?.event === "rotated" || msg?.event === "rotationError") {
      const { onRotate, onError } = this.#rotationHandlers;
      try {
        if (msg.event === "rotated") onRotate?.(msg.result);
        else if (onError) onError(codedError(msg.error, msg.code));
        else console.error(`G2DWorker rotation: ${msg.error}`);
      } catch (err) {
        console.error("G2DWorker: a rotation callback threw", err);
      }
      return;
    }
    const entry = this.#pending.get(msg?.id);
    if (!entry) return; // e.g. progress for a request that was already settled
    switch (msg.status) {
      case "progress":
        try {
          entry.onProgress?.(msg.progress.step, msg.progress.total);
        } catch (err) {
          console.error("G2DWorker: onProgress threw", err);
        }
        return;
      case "done":
        this.#pending.delete(msg.id);
        entry.resolve(msg.result);
        return;
      case "cancelled":
        this.#pending.delete(msg.id);
        entry.reject(cancelledError());
        return;
      case "error":
        this.#pending.delete(msg.id);
        entry.reject(codedError(msg.error, msg.code ?? "WORKER"));
        return;
    }
  }

  #fail(err) {
    this.#dead ??= err;
    for (const entry of this.#pending.values()) entry.reject(err);
    this.#pending.clear();
  }

  #call(message, { onProgress, transfer = [], signal } = {}) {
    if (this.#dead) return Promise.reject(this.#dead);
    if (signal?.aborted) return Promise.reject(cancelledError());
    const id = this.#nextId++;
    // An AbortSignal cannot cross postMessage: its abort becomes a "cancel" for this call.
    const abort = () => this.#worker.postMessage({ command: "cancel", id });
    signal?.addEventListener("abort", abort, { once: true });
    const settled = new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      this.#worker.postMessage({ ...message, id }, transfer);
    });
    const forget = () => signal?.removeEventListener("abort", abort);
    settled.then(forget, forget);
    return settled;
  }

  /**
   * Regenerate the weights in the worker. `options.onProgress(step, total)` is called as
   * sampling advances (its return value is ignored). `options.signal` (an AbortSignal) or
   * `cancel()` stops it; it then rejects with an error named "AbortError", code "ABORTED".
   */
  regenerate(options = {}) {
    // Functions and signals cannot cross postMessage; the worker reports progress by message.
    const { onProgress, signal, ...rest } = options ?? {};
    return this.#call({ command: "regenerate", options: rest }, { onProgress, signal });
  }

  /**
   * Start rotating the worker's weights (see `G2D.rotate`: `everyClassifications`, `everyMs`,
   * regenerate() settings, `onRotate(result)`, `onError(err)`). The rotation runs beside the
   * worker's queue, so classify() never waits on it. Replaces one already running.
   */
  rotate(policy = {}) {
    const { onRotate, onError, ...rest } = policy ?? {};
    for (const [name, f] of [["onRotate", onRotate], ["onError", onError]]) {
      if (f !== undefined && typeof f !== "function") {
        return Promise.reject(Object.assign(new TypeError(`rotate: ${name} must be a function`), { code: "INVALID_ARGUMENT" }));
      }
    }
    return this.#call({ command: "rotate", policy: rest }).then(() => {
      // Once the worker took the policy: a refused one leaves the running rotation's handlers.
      this.#rotationHandlers = { onRotate, onError };
    });
  }

  /** Stop the rotation; resolves to its stats (null if none ran). */
  stopRotation() {
    return this.#call({ command: "stopRotation" });
  }

  /** The rotation's stats (null if none was started; after stopRotation(), `stopped: true`). */
  rotationStats() {
    return this.#call({ command: "rotationStats" });
  }

  /** Stop the running regeneration and any queued ones. */
  cancel() {
    if (!this.#dead) this.#worker.postMessage({ command: "cancel" });
  }

  // Inputs are copied into fresh arrays whose buffers are then transferred, so the caller
  // keeps its own arrays intact and the data still crosses only once.
  classify(images) {
    const copy = Float32Array.from(images);
    return this.#call({ command: "classify", images: copy }, { transfer: [copy.buffer] });
  }

  classifyOriginal(images) {
    const copy = Float32Array.from(images);
    return this.#call({ command: "classifyOriginal", images: copy }, { transfer: [copy.buffer] });
  }

  fgsm(images, labels, epsilon) {
    const imgs = Float32Array.from(images);
    const labs = Uint8Array.from(labels);
    return this.#call(
      { command: "fgsm", images: imgs, labels: labs, epsilon },
      { transfer: [imgs.buffer, labs.buffer] },
    );
  }

  info() {
    return this.#call({ command: "info" });
  }

  /** Stop the worker at once; pending calls reject. */
  terminate() {
    this.#worker.terminate();
    this.#fail(codedError("G2D worker terminated", "WORKER"));
  }
}
