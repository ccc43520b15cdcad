// WebGPU device loss in Chromium: the page records the GPUDevice the package asks for and
// destroys it in the middle of a regeneration. The call still resolves, on the CPU backend,
// info() says why, the weights installed before the loss stay in place, and a later load's
// "auto" does not reuse the lost device.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { servedPage } from "./chromium.mjs";

const WWW = join(resolve(dirname(fileURLToPath(import.meta.url)), "../.."), "www");
const BUNDLE = process.env.G2D_BUNDLE || "default.g2d";
const TIMEOUT = 300_000;

// Runs before the page's scripts: keeps every GPUDevice the page creates.
function recordDevices() {
  if (!globalThis.GPUAdapter) return;
  const requestDevice = GPUAdapter.prototype.requestDevice;
  globalThis.__devices = [];
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    globalThis.__devices.push(device);
    return device;
  };
}

let served;
let page;

describe("WebGPU device loss", { timeout: 10 * 60_000 }, () => {
  before(async () => {
    assert.ok(existsSync(join(WWW, "pkg/index.js")) && existsSync(join(WWW, BUNDLE)), "build www/pkg and the bundle first");
    served = await servedPage({ initScript: recordDevices, timeout: TIMEOUT });
    page = served.page;
  });

  after(() => served?.close());

  it("a regeneration that loses its device finishes on the CPU and says why", { timeout: TIMEOUT }, async () => {
    const answer = await page.evaluate(async (bundle) => {
      const { G2D } = await import("/pkg/index.js");
      // Two instances on the one WebGPU device the page holds.
      const g2d = await G2D.load(bundle, { backend: "webgpu" });
      const other = await G2D.load(bundle, { backend: "webgpu" });
      const before = g2d.info();
      const images = before.sampleImages.slice(0, 4 * 784);
      // `other` installs a regeneration on WebGPU (δ = 1 accepts any finite candidate), so its
      // switch must carry the installed weights, not θ_orig.
      const first = await other.regenerate({ steps: 2, candidates: 1, guardDelta: 1, seed: 7 });
      const installed = await other.classify(images);
      const original = await other.classifyOriginal(images);
      let destroyed = 0;
      const second = await g2d.regenerate({
        steps: 4,
        candidates: 1,
        onProgress: () => {
          if (!destroyed) globalThis.__devices.forEach((d) => d.destroy());
          destroyed += 1;
        },
      });
      const after = g2d.info();
      // The device is gone under `other` too: its next call moves it to the CPU.
      const sameWeights = await other.classify(images);
      const otherAfter = other.info().backend;
      const later = await G2D.load(bundle, { backend: "auto" });
      const laterInfo = later.info();
      let refused = null;
      try {
        await G2D.load(bundle, { backend: "webgpu" });
      } catch (err) {
        refused = { code: err.code, message: err.message };
      }
      return {
        devices: globalThis.__devices.length,
        destroyed,
        before: before.backend,
        first: first.accepted,
        installed: Array.from(installed),
        original: Array.from(original),
        sameWeights: Array.from(sameWeights),
        otherAfter,
        second: { backend: second.backend, accepted: second.accepted },
        after: { backend: after.backend, reason: after.backendReason },
        later: { backend: laterInfo.backend, reason: laterInfo.backendReason },
        refused,
      };
    }, `/${BUNDLE}`);
    assert.equal(answer.before, "webgpu");
    assert.ok(answer.devices >= 1 && answer.destroyed >= 1, JSON.stringify(answer));
    assert.equal(answer.first, true);
    assert.equal(answer.second.backend, "cpu");
    assert.equal(answer.after.backend, "cpu");
    assert.match(answer.after.reason, /^the WebGPU device failed \(.*Device was destroyed.*\); switched to the CPU backend$/);
    assert.equal(answer.otherAfter, "cpu");
    // The weights `other` installed on WebGPU answer on the CPU as they did before the loss.
    const gap = Math.max(...answer.installed.map((p, i) => Math.abs(p - answer.original[i])));
    assert.ok(gap > 1e-3, `the installed weights answer like θ_orig (gap ${gap}): the check below could not fail`);
    assert.equal(answer.sameWeights.length, answer.installed.length);
    answer.installed.forEach((p, i) => assert.ok(Math.abs(p - answer.sameWeights[i]) < 1e-4, `probability ${i}`));
    // Later loads do not reuse the lost device: "auto" takes the CPU (here SwiftShader is also
    // a fallback adapter, which "auto" passes over anyway) and "webgpu" is refused, saying why.
    assert.equal(answer.later.backend, "cpu");
    assert.equal(answer.refused?.code, "BACKEND_UNAVAILABLE", JSON.stringify(answer.refused));
    assert.match(answer.refused.message, /failed earlier on this page/);
  });
});
