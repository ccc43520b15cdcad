// The module-worker client (g2d-wasm/worker-client) in Chromium, on the CPU backend: cancel()
// and an AbortSignal stop a regeneration the way the main-thread API does (an error named
// AbortError, code ABORTED), the weights in use stay in place, and the worker goes on serving.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { servedPage } from "./chromium.mjs";

const WWW = join(resolve(dirname(fileURLToPath(import.meta.url)), "../.."), "www");
const BUNDLE = process.env.G2D_BUNDLE || "default.g2d";
const TIMEOUT = 120_000;

let served;
let page;

describe("G2DWorker", { timeout: 10 * 60_000 }, () => {
  before(async () => {
    assert.ok(existsSync(join(WWW, "pkg/worker-client.js")) && existsSync(join(WWW, BUNDLE)), "build www/pkg and the bundle first");
    served = await servedPage({ timeout: TIMEOUT });
    page = served.page;
  });

  after(() => served?.close());

  it("cancel() and an AbortSignal stop a regeneration and keep the weights", { timeout: TIMEOUT }, async () => {
    const answer = await page.evaluate(async (bundle) => {
      const { G2DWorker } = await import("/pkg/worker-client.js");
      const worker = await G2DWorker.create(bundle, { backend: "cpu" });
      const images = (await worker.info()).sampleImages.slice(0, 4 * 784);
      const outcome = (promise) =>
        promise.then(
          (r) => ({ resolved: true, accepted: r.accepted }),
          (err) => ({ resolved: false, name: err.name, code: err.code }),
        );
      // All 1,000 DDPM steps: long enough that the cancel lands before the end.
      const long = { sampler: "ddpm", candidates: 1 };
      const before = Array.from(await worker.classify(images));
      let steps = 0;
      const byCancel = await outcome(
        worker.regenerate({
          ...long,
          onProgress: (step) => {
            steps = step;
            worker.cancel();
          },
        }),
      );
      const cancelledAt = steps;
      const controller = new AbortController();
      const bySignal = await outcome(
        worker.regenerate({ ...long, signal: controller.signal, onProgress: () => controller.abort() }),
      );
      const kept = Array.from(await worker.classify(images));
      const afterwards = await outcome(worker.regenerate({ steps: 5, candidates: 1, guardDelta: 1 }));
      const changed = Array.from(await worker.classify(images));
      worker.terminate?.();
      return { before, byCancel, cancelledAt, bySignal, kept, afterwards, changed };
    }, `/${BUNDLE}`);
    for (const stopped of [answer.byCancel, answer.bySignal]) {
      assert.deepEqual(stopped, { resolved: false, name: "AbortError", code: "ABORTED" });
    }
    assert.ok(answer.cancelledAt < 1000, `cancelled at step ${answer.cancelledAt}`);
    assert.deepEqual(answer.kept, answer.before, "a cancelled regeneration installed weights");
    assert.deepEqual(answer.afterwards, { resolved: true, accepted: true });
    assert.notDeepEqual(answer.changed, answer.before, "the worker stopped serving regenerations");
  });
});
