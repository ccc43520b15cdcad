// Rotation policy: new weights every N classifications and/or every T milliseconds, double-
// buffered. The next set is sampled and guard-checked in the background and kept aside; it is
// installed when it is due, between two classify() calls. classify() never waits on a
// regeneration and never runs on a set the guard rejected: a set that is not ready when due
// leaves the current one in service until it is.
//
// Where the next set is sampled: by default in a worker of its own (a G2DWorker on the same
// bundle), so sampling never shares a thread with classify(); with `worker: false`, or where
// there are no workers, on this thread, yielding to the event loop every few milliseconds
// (a classify() then waits for at most one such slice).

import { G2DWorker } from "./worker-client.js";

function codedError(message, code, Type = Error) {
  const err = new Type(message);
  err.code = code;
  return err;
}

// A yield to the event loop that is not clamped like nested timeouts: a message to ourselves
// (worker.js yields with it too).
// Made on first use (in Node.js a listening port would keep the process alive, so it is unref'd
// there).
let channel = null;
const waiting = [];
export function nextTask() {
  if (!channel) {
    channel = new MessageChannel();
    channel.port1.onmessage = () => waiting.shift()?.();
    channel.port1.unref?.();
  }
  return new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}

// The wasm calls onProgress at most every 8 ms; each call gives the page its turn.
const yieldBetweenSteps = () => nextTask().then(() => true);

// How long a failed regeneration waits before the next try.
const RETRY_MS = 1000;

// After k batches in a row that the guard rejected entirely, wait min(2^k × 50, 5,000) ms before
// the next, so a strict guard does not keep the CPU busy.
const rejectedBackoff = (k) => Math.min(50 * 2 ** k, 5000);

const REGENERATE_OPTIONS = ["sampler", "steps", "eta", "candidates", "guardDelta"];

// Both samplers answer with regenerate()'s result. The rotation builds its params into the
// classifier as soon as they arrive (stageParams) and installs that build when due
// (installStaged, a swap), so the classify() a set is due before pays nothing for it; it never
// uses the instance's pending slot, which a caller's own regenerate({install: false}) may
// overwrite.

// Samples on this thread.
function sameThread(target) {
  return {
    sample: (options, signal) =>
      target.regenerate({ ...options, install: false, signal, onProgress: yieldBetweenSteps }),
    close() {},
  };
}

// Samples in a G2DWorker of its own, started on first use.
function inWorker(bundle, loadOptions) {
  let worker = null;
  return {
    async sample(options, signal) {
      worker ??= G2DWorker.create(bundle, loadOptions);
      try {
        return await (await worker).regenerate({ ...options, signal });
      } catch (err) {
        // A worker that failed to start or died is dropped; the next try starts a new one.
        if (err?.code === "WORKER" || err?.code === "WASM_INIT") {
          worker.then((w) => w.terminate(), () => {});
          worker = null;
        }
        throw err;
      }
    },
    close() {
      worker?.then((w) => w.terminate(), () => {});
    },
  };
}


function checkPolicy(policy) {
  const { everyClassifications: n, everyMs: ms } = policy;
  if (n === undefined && ms === undefined) {
    throw codedError("rotate: give everyClassifications, everyMs or both", "INVALID_ARGUMENT", TypeError);
  }
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) {
    throw codedError(`rotate: everyClassifications must be an integer ≥ 1, got ${n}`, "INVALID_ARGUMENT", RangeError);
  }
  if (ms !== undefined && !(Number.isFinite(ms) && ms > 0)) {
    throw codedError(`rotate: everyMs must be a number > 0, got ${ms}`, "INVALID_ARGUMENT", RangeError);
  }
  if (policy.worker !== undefined && typeof policy.worker !== "boolean") {
    throw codedError(`rotate: worker must be true or false, got ${policy.worker}`, "INVALID_ARGUMENT", TypeError);
  }
  if ("seed" in policy) {
    throw codedError("rotate: a seed would make every set the same; leave it out", "INVALID_ARGUMENT", TypeError);
  }
}

/** A running rotation; made by `G2D.rotate(policy)`. */
export class Rotation {
  #target; // the wasm G2D the sets are installed in
  #source; // where sets are sampled
  #every;
  #options;
  #onRotate;
  #onError;
  #timer = null;
  #abort = new AbortController();
  #stopped = false;
  #due = false;
  #next = null; // {result, staged}: the set kept aside once the guard accepted it, and its build
  #sinceRotation = 0;
  #stats = { rotations: 0, prepared: 0, rejected: 0, errors: 0 };

  /**
   * @internal Use `G2D.rotate`. `target`: the wasm G2D; `bundle` and `loadOptions`: what it was
   * loaded from, for the sampling worker.
   */
  constructor(target, bundle, loadOptions, policy = {}) {
    checkPolicy(policy);
    const worker = policy.worker ?? typeof Worker !== "undefined";
    this.#target = target;
    this.#source = worker ? inWorker(bundle, loadOptions) : sameThread(target);
    this.#every = policy.everyClassifications;
    this.#onRotate = policy.onRotate;
    this.#onError = policy.onError;
    this.#options = Object.fromEntries(REGENERATE_OPTIONS.filter((k) => k in policy).map((k) => [k, policy[k]]));
    if (policy.everyMs !== undefined) {
      this.#timer = setInterval(() => {
        this.#due = true;
        this.#installIfDue();
      }, policy.everyMs);
    }
    this.#prepare();
  }

  /** @internal Called by classify() before it runs: counts it and installs a set that is due. */
  beforeClassify() {
    if (this.#every !== undefined && this.#sinceRotation >= this.#every) this.#due = true;
    this.#installIfDue();
    this.#sinceRotation += 1;
  }

  #installIfDue() {
    if (this.#stopped || !this.#due || !this.#next) return;
    const { result, staged } = this.#next;
    this.#next = null;
    let installed = true;
    try {
      this.#target.installStaged(staged);
    } catch (err) {
      installed = false;
      this.#failed(err);
    }
    if (installed) {
      this.#due = false;
      this.#sinceRotation = 0;
      this.#stats.rotations += 1;
      try {
        this.#onRotate?.({ ...result, installed: true });
      } catch (err) {
        console.error("G2D rotation: onRotate threw", err);
      }
    }
    // The next set's sampling starts in a task of its own, after the classify() this install
    // came before has answered: starting it here would put the request to the sampler (and on
    // this thread, the first slice of sampling) inside that call.
    nextTask().then(() => this.#prepare());
  }

  async #prepare() {
    let rejectedInARow = 0;
    while (!this.#stopped) {
      try {
        const result = await this.#source.sample(this.#options, this.#abort.signal);
        if (this.#stopped) return;
        if (result.accepted) {
          // Throws (length, finiteness) like installParams; the catch below retries.
          const staged = this.#target.stageParams(result.params);
          this.#stats.prepared += 1;
          this.#next = { result, staged };
          this.#installIfDue();
          return;
        }
        this.#stats.rejected += 1;
        rejectedInARow += 1;
        await new Promise((resolve) => setTimeout(resolve, rejectedBackoff(rejectedInARow)));
      } catch (err) {
        if (this.#stopped || err?.code === "ABORTED") return;
        this.#failed(err);
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  #failed(err) {
    this.#stats.errors += 1;
    try {
      if (this.#onError) this.#onError(err);
      else console.error("G2D rotation: regeneration failed", err);
    } catch (thrown) {
      console.error("G2D rotation: onError threw", thrown);
    }
  }

  /** Counts so far: sets installed, sets accepted, batches the guard rejected, failed tries. */
  get stats() {
    return { ...this.#stats, ready: this.#next !== null, stopped: this.#stopped };
  }

  /** Stop rotating; the set in service stays. */
  stop() {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#next?.staged.free();
    this.#next = null;
    clearInterval(this.#timer);
    this.#abort.abort();
    this.#source.close();
  }
}
