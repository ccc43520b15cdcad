// The demo page and the package in a Chromium without a WebGPU adapter (launched without
// --enable-unsafe-webgpu: navigator.gpu exists, requestAdapter() answers null). The page falls
// back to the CPU backend, says why and fetches only the CPU-only wasm module; the package's
// "auto" does the same and "webgpu" refuses with code BACKEND_UNAVAILABLE.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CHROMIUM_ARGS, demoGeneration, launchChromium, wasmFetches } from "./chromium.mjs";
import { start } from "../../www/serve.mjs";

const WWW = join(resolve(dirname(fileURLToPath(import.meta.url)), "../.."), "www");
const BUNDLE = process.env.G2D_BUNDLE || "default.g2d";
const TIMEOUT = 120_000;

let server;
let browser;
let page;
let wasmFetched; // the wasm modules the page and its workers fetched, in order

describe("without WebGPU", { timeout: 10 * 60_000 }, () => {
  before(async () => {
    assert.ok(
      ["pkg/index.js", "pkg/g2d_wasm_cpu_bg.wasm", BUNDLE].every((f) => existsSync(join(WWW, f))),
      "build www/pkg and the bundle first",
    );
    server = await start(0);
    browser = await launchChromium({
      args: CHROMIUM_ARGS.filter((arg) => arg !== "--enable-unsafe-webgpu"),
      timeout: TIMEOUT,
    });
    page = await (await browser.newContext()).newPage();
    page.on("pageerror", (err) => console.error(`[page uncaught] ${err.stack ?? err}`));
    wasmFetched = wasmFetches(page);
    await page.goto(`${server.url}?bundle=${encodeURIComponent(BUNDLE)}`, { timeout: TIMEOUT });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it("the demo regenerates on the CPU and says why", { timeout: TIMEOUT }, async () => {
    assert.equal(await demoGeneration(page, 1, TIMEOUT), "ready");
    const text = async (id) => (await page.locator(`#${id}`).textContent()).trim();
    assert.equal(await text("backend"), "cpu");
    assert.match(await text("backend-reason"), /no WebGPU here/);
    // It saw there was no adapter before starting its worker: only the CPU-only module came.
    assert.deepEqual(wasmFetched, ["g2d_wasm_cpu_bg.wasm"]);
  });

  it("the package's auto takes the CPU and webgpu refuses with its code", { timeout: TIMEOUT }, async () => {
    const answer = await page.evaluate(async (bundle) => {
      const { G2D } = await import("./pkg/index.js");
      const auto = await G2D.load(bundle, { backend: "auto" });
      const info = auto.info();
      auto.free();
      let refused = null;
      try {
        await G2D.load(bundle, { backend: "webgpu" });
      } catch (err) {
        refused = { code: err.code, message: err.message };
      }
      return { backend: info.backend, reason: info.backendReason, refused };
    }, BUNDLE);
    assert.equal(answer.backend, "cpu");
    assert.match(answer.reason, /fell back to CPU/);
    assert.equal(answer.refused?.code, "BACKEND_UNAVAILABLE", JSON.stringify(answer.refused));
  });
});
