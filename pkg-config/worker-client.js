// Promise-based client for worker.js: one G2D instance in a module Web Worker.

function cancelledError() {
  const message = "regeneration cancelled";
  // AbortError is what fetch and friends use for "stopped on request".
  if (typeof DOMException === "function") return new DOMException(message, "AbortError");
  const err = new Error(message);
  err.name = "AbortError";
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

  /** @internal Use `G2DWorker.create`. */
  constructor(worker) {
    this.#worker = worker;
    worker.addEventListener("message", (event) => this.#onMessage(event.data));
    // Fires when the worker script itself fails (404, syntax error, failed import).
    worker.addEventListener("error", (event) => {
      event.preventDefault?.();
      this.#fail(new Error(`G2D worker failed: ${event.message || "could not load the worker script"}`));
    });
    worker.addEventListener("messageerror", () => {
      this.#fail(new Error("G2D worker sent a message that could not be deserialised"));
    });
  }

  /**
   * Start a worker and load a bundle in it. `workerUrl` defaults to worker.js next to this
   * file. The bundle (bytes are copied, not transferred) is loaded with `options`.
   */
  static async create(bundle, options = {}, workerUrl) {
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
        entry.reject(new Error(msg.error));
        return;
    }
  }

  #fail(err) {
    this.#dead ??= err;
    for (const entry of this.#pending.values()) entry.reject(err);
    this.#pending.clear();
  }

  #call(message, { onProgress, transfer = [] } = {}) {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress });
      this.#worker.postMessage({ ...message, id }, transfer);
    });
  }

  /**
   * Regenerate the weights in the worker. `options.onProgress(step, total)` is called as
   * sampling advances (its return value is ignored: use `cancel()` to stop). Rejects with
   * an AbortError when cancelled.
   */
  regenerate(options = {}) {
    // Functions cannot cross postMessage; the worker reports progress by message instead.
    const { onProgress, ...rest } = options ?? {};
    return this.#call({ command: "regenerate", options: rest }, { onProgress });
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
    this.#fail(new Error("G2D worker terminated"));
  }
}
