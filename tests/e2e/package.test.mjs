// The package as a page without a bundler uses it: an import map names "g2d-wasm", and
// G2D.load() with no argument fetches the bundle the package ships (full MNIST). The page is the
// README's example, served from the same origin as www/pkg. Each load fetches only the wasm
// module it runs: the CPU-only one for the CPU backend, the WebGPU one for WebGPU.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { launchChromium, wasmFetches } from "./chromium.mjs";
import { start } from "../../www/serve.mjs";

const WWW = join(resolve(dirname(fileURLToPath(import.meta.url)), "../.."), "www");
const TIMEOUT = 180_000;

const PAGE = `<!doctype html>
<script type="importmap">
  { "imports": { "g2d-wasm": "/pkg/index.js", "g2d-wasm/worker-client": "/pkg/worker-client.js" } }
</script>
<script type="module">
  import { G2D } from "g2d-wasm";
  import { G2DWorker } from "g2d-wasm/worker-client";
  try {
    const g2d = await G2D.load(undefined, { backend: "cpu" });
    const { accepted, valAccuracy } = await g2d.regenerate();
    const worker = await G2DWorker.create(undefined, { backend: "cpu" });
    const workerInfo = await worker.info();
    worker.terminate();
    const info = g2d.info();
    window.answer = { dataset: info.dataset, original: info.originalValAccuracy, accepted, valAccuracy, workerDataset: workerInfo.dataset };
  } catch (err) {
    window.answer = { error: String(err?.message ?? err), code: err?.code };
  }
</script>`;

let server;
let browser;

describe("the package without a bundler", { timeout: 5 * 60_000 }, () => {
  before(async () => {
    assert.ok(existsSync(join(WWW, "pkg/default.g2d")), "build www/pkg first");
    server = await start(0);
    browser = await launchChromium({ timeout: TIMEOUT });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it("an import map and G2D.load() with no argument run the packaged full-MNIST bundle", { timeout: TIMEOUT }, async () => {
    const page = await (await browser.newContext()).newPage();
    page.on("pageerror", (err) => console.error(`[page uncaught] ${err.stack ?? err}`));
    const url = `${server.url}importmap-example.html`;
    await page.route(url, (route) => route.fulfill({ body: PAGE, contentType: "text/html" }));
    await page.goto(url, { timeout: TIMEOUT });
    await page.waitForFunction(() => window.answer !== undefined, null, { timeout: TIMEOUT });
    const answer = await page.evaluate(() => window.answer);
    assert.equal(answer.error, undefined, JSON.stringify(answer));
    assert.equal(answer.dataset, "mnist");
    assert.equal(answer.workerDataset, "mnist");
    assert.ok(answer.original > 0.9, JSON.stringify(answer));
    assert.equal(typeof answer.accepted, "boolean");
  });

  it("a browser without WebAssembly SIMD is told so, with code WASM_INIT", { timeout: TIMEOUT }, async () => {
    const page = await (await browser.newContext()).newPage();
    // Such a browser validates no module that holds a SIMD instruction.
    await page.addInitScript(() => {
      const validate = WebAssembly.validate;
      WebAssembly.validate = (bytes) => !new Uint8Array(bytes).includes(253) && validate(bytes);
    });
    await page.goto(`${server.url}pkg/`, { timeout: TIMEOUT });
    const answer = await page.evaluate(async () => {
      const { G2D } = await import("./index.js");
      try {
        await G2D.load(undefined, { backend: "cpu" });
        return { loaded: true };
      } catch (err) {
        return { code: err.code, message: err.message };
      }
    });
    assert.equal(answer.code, "WASM_INIT", JSON.stringify(answer));
    assert.match(answer.message, /WebAssembly SIMD/);
  });

  // SwiftShader here is a software fallback adapter, so "auto" takes the CPU backend.
  for (const [backend, module, runsOn] of [
    ["cpu", "g2d_wasm_cpu_bg.wasm", "cpu"],
    ["auto", "g2d_wasm_cpu_bg.wasm", "cpu"],
    ["webgpu", "g2d_wasm_bg.wasm", "webgpu"],
  ]) {
    it(`G2D.load with backend "${backend}" fetches ${module} alone`, { timeout: TIMEOUT }, async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      const fetched = wasmFetches(page);
      await page.goto(`${server.url}pkg/`, { timeout: TIMEOUT });
      const answer = await page.evaluate(async (backend) => {
        const { G2D } = await import("./index.js");
        const g2d = await G2D.load(undefined, { backend });
        const { accepted } = await g2d.regenerate();
        const info = g2d.info();
        g2d.free();
        return { backend: info.backend, reason: info.backendReason, accepted };
      }, backend);
      await context.close();
      assert.equal(answer.backend, runsOn, JSON.stringify(answer));
      assert.equal(typeof answer.accepted, "boolean");
      assert.deepEqual(fetched, [module]);
    });
  }
});
