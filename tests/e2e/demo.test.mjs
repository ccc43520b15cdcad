// End-to-end test of the demo page (www/) in the system Chromium, on WebGPU.
//
//   npm ci --prefix tests && node --test tests/e2e/
//
// Needs the built package in www/pkg (pkg-config/build.sh --out www/pkg) and a bundle at
// www/default.g2d. WebGPU here is SwiftShader (software), hence the long timeouts.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { start } from "../../www/serve.mjs";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const WWW = join(REPO, "www");
// The bundle the page loads: www/default.g2d, or the one G2D_BUNDLE names (the test command
// uses the committed fixture, copied into www/).
const BUNDLE = process.env.G2D_BUNDLE || "default.g2d";
const SCREENSHOT_DIR = resolve(REPO, process.env.G2D_SCREENSHOT_DIR || "tests/e2e/out");

const REGENERATION_TIMEOUT = 240_000;
const STEP_TIMEOUT = 60_000;

let server;
let browser;
let page;

// #status reads "ready" after each finished regeneration and "error: …" on failure;
// #status[data-generation] counts finished regenerations.
async function waitForGeneration(n) {
  await page.waitForFunction(
    (n) => {
      const s = document.getElementById("status");
      return s.textContent.startsWith("error") || (s.textContent === "ready" && s.dataset.generation === String(n));
    },
    n,
    { timeout: REGENERATION_TIMEOUT, polling: 250 },
  );
  assert.equal(await text("status"), "ready");
}

const text = async (id) => (await page.locator(`#${id}`).textContent()).trim();
const number = async (id) => Number.parseFloat(await text(id));

describe("G2D demo page", { timeout: 20 * 60_000 }, () => {
  before(async () => {
    const missing = ["pkg/index.js", "pkg/worker.js", "pkg/g2d_wasm_bg.wasm", BUNDLE].filter(
      (f) => !existsSync(join(WWW, f)),
    );
    assert.deepEqual(
      missing,
      [],
      `missing in www/: ${missing.join(", ")}. Run the build first: pkg-config/build.sh --out www/pkg ` +
        `and put a model bundle at www/${BUNDLE}.`,
    );

    server = await start(0);
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: [
        "--headless=new",
        "--no-sandbox",
        "--enable-unsafe-webgpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
      ],
      timeout: STEP_TIMEOUT,
    });
    // A new context is a fresh profile: nothing cached from earlier runs.
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    page = await context.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error" || msg.type() === "warning") {
        const where = msg.worker() ? "worker" : "page";
        console.error(`[${where} ${msg.type()}] ${msg.text()}`);
      }
    });
    page.on("pageerror", (err) => console.error(`[page uncaught] ${err.stack ?? err}`));
    page.on("crash", () => console.error("[page crashed]"));
    page.on("requestfailed", (req) => console.error(`[request failed] ${req.url()}: ${req.failure()?.errorText}`));

    await page.goto(`${server.url}?bundle=${encodeURIComponent(BUNDLE)}`, { timeout: STEP_TIMEOUT });
  });

  after(async () => {
    if (page) {
      // Also on failure: the screenshot is the first thing to look at.
      await mkdir(SCREENSHOT_DIR, { recursive: true });
      const path = join(SCREENSHOT_DIR, "demo.png");
      await page.screenshot({ path, fullPage: true }).catch((err) => console.error(`screenshot failed: ${err}`));
      console.log(`screenshot: ${path}`);
    }
    await browser?.close();
    await server?.close();
  });

  let firstL1;

  it("loads the bundle and regenerates on WebGPU", { timeout: REGENERATION_TIMEOUT + STEP_TIMEOUT }, async () => {
    await waitForGeneration(1);
    assert.equal(await text("backend"), "webgpu");

    const acc = await number("val-accuracy");
    const orig = await number("original-val-accuracy");
    for (const [name, v] of [["val-accuracy", acc], ["original-val-accuracy", orig]]) {
      assert.ok(v > 0 && v <= 100, `#${name} should be a percentage in (0, 100], got ${v}`);
    }

    firstL1 = await number("l1");
    assert.ok(Number.isFinite(firstL1) && firstL1 > 0, `#l1 should be a positive number, got ${firstL1}`);
    assert.ok((await number("ms")) >= 0, "#ms should be a number");
    assert.match(await text("accepted"), /^(yes|no)$/);
  });

  it("regenerates again with different weights", { timeout: REGENERATION_TIMEOUT + STEP_TIMEOUT }, async () => {
    await page.click("#regenerate");
    await waitForGeneration(2);
    const l1 = await number("l1");
    assert.ok(Number.isFinite(l1) && l1 > 0, `#l1 should be a positive number, got ${l1}`);
    assert.notEqual(l1, firstL1, "a new regeneration should land at a different L1 distance");
  });

  it("classifies a digit drawn on the canvas", { timeout: 2 * STEP_TIMEOUT }, async () => {
    const box = await page.locator("#canvas").boundingBox();
    assert.ok(box, "#canvas should be visible");
    // A "1": one vertical stroke through the middle.
    const x = box.x + box.width / 2;
    await page.mouse.move(x, box.y + box.height * 0.15);
    await page.mouse.down();
    await page.mouse.move(x + 5, box.y + box.height * 0.85, { steps: 12 });
    await page.mouse.up();
    await page.waitForFunction(() => /^[0-9]$/.test(document.getElementById("prediction").textContent.trim()), null, {
      timeout: STEP_TIMEOUT,
    });
  });

  it("runs the FGSM attack panel", { timeout: 2 * STEP_TIMEOUT }, async () => {
    await page.click("#attack-pick");
    await page.click("#attack-run");
    await page.waitForFunction(
      () =>
        ["attack-original", "attack-regenerated"].every((id) =>
          /^[0-9]$/.test(document.getElementById(id).textContent.trim()),
        ),
      null,
      { timeout: STEP_TIMEOUT },
    );
    assert.match(await text("attack-original"), /^[0-9]$/);
    assert.match(await text("attack-regenerated"), /^[0-9]$/);
  });
});
