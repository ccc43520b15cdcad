// End-to-end test of the demo page (www/) in the system Chromium, on WebGPU.
//
//   npm ci --prefix tests && node --test tests/e2e/
//
// Needs the built package in www/pkg (pkg-config/build.sh --out www/pkg) and a bundle at
// www/default.g2d. WebGPU here is SwiftShader (software), hence the long timeouts.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { demoGeneration, launchChromium } from "./chromium.mjs";
import { start } from "../../www/serve.mjs";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const WWW = join(REPO, "www");
// The bundle the page loads: www/default.g2d, or the one G2D_BUNDLE names (the test command
// uses the committed fixture, copied into www/).
const BUNDLE = process.env.G2D_BUNDLE || "default.g2d";
const SCREENSHOT_DIR = resolve(REPO, process.env.G2D_SCREENSHOT_DIR || "tests/e2e/out");

// The page must fit these without anything spilling out of its card (a phone, and the
// desktop width the screenshot is taken at).
const VIEWPORT = { width: 1280, height: 1000 };
const NARROW_VIEWPORT = { width: 360, height: 800 };

const REGENERATION_TIMEOUT = 240_000;
const STEP_TIMEOUT = 60_000;

let server;
let browser;
let page;

async function waitForGeneration(n) {
  assert.equal(await demoGeneration(page, n, REGENERATION_TIMEOUT), "ready");
}

// Everything inside a .card that sticks out of it horizontally, or out of the page: elements
// and (via ranges) text, so clipped text in a too-narrow box is caught too. Empty when fine.
function overflowing() {
  const SLACK = 0.5; // sub-pixel rounding
  const describe = (node) => {
    const el = node.nodeType === Node.TEXT_NODE ? node.parentElement : node;
    const what = el.id ? `#${el.id}` : `${el.tagName.toLowerCase()}${el.className ? "." + el.className : ""}`;
    return node.nodeType === Node.TEXT_NODE ? `text "${node.textContent.trim().slice(0, 40)}" in ${what}` : what;
  };
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > window.innerWidth + SLACK) {
    problems.push(`page is ${root.scrollWidth}px wide in a ${window.innerWidth}px viewport`);
  }
  for (const card of document.querySelectorAll(".card")) {
    const box = card.getBoundingClientRect();
    const walker = document.createTreeWalker(card, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      let rects;
      if (node.nodeType === Node.TEXT_NODE) {
        if (!node.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        rects = [...range.getClientRects()];
      } else {
        rects = [...node.getClientRects()];
      }
      for (const r of rects) {
        if (r.width === 0 || r.height === 0) continue; // hidden, e.g. a closed <details>
        if (r.left < box.left - SLACK || r.right > box.right + SLACK) {
          problems.push(
            `${describe(node)} spans x ${r.left.toFixed(1)}–${r.right.toFixed(1)}, ` +
              `outside #${card.id} (${box.left.toFixed(1)}–${box.right.toFixed(1)})`,
          );
          break;
        }
      }
    }
  }
  return problems;
}

const text = async (id) => (await page.locator(`#${id}`).textContent()).trim();
const number = async (id) => Number.parseFloat(await text(id));

describe("G2D demo page", { timeout: 20 * 60_000 }, () => {
  before(async () => {
    const missing = ["pkg/index.js", "pkg/worker.js", "pkg/g2d_wasm_bg.wasm", "pkg/g2d_wasm_cpu_bg.wasm", BUNDLE].filter(
      (f) => !existsSync(join(WWW, f)),
    );
    assert.deepEqual(
      missing,
      [],
      `missing in www/: ${missing.join(", ")}. Run the build first: pkg-config/build.sh --out www/pkg ` +
        `and put a model bundle at www/${BUNDLE}.`,
    );

    server = await start(0);
    browser = await launchChromium({ timeout: STEP_TIMEOUT });
    // A new context is a fresh profile: nothing cached from earlier runs.
    const context = await browser.newContext({ viewport: VIEWPORT });
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
    // The page classifies while the stroke is drawn (a short blob may read as another digit);
    // the classification of the whole stroke lands last.
    await page
      .waitForFunction(() => document.getElementById("prediction").textContent.trim() === "1", null, {
        timeout: STEP_TIMEOUT,
      })
      .catch(() => {});
    assert.equal(await text("prediction"), "1", "a drawn vertical stroke should read as a 1");
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

  it("describes the WebGPU adapter as the browser does", { timeout: STEP_TIMEOUT }, async () => {
    // The description comes from pkg/worker.js, a copy of pkg-config/worker.js made by the
    // build; an older copy only shows the wasm's own adapter string.
    const served = readFileSync(join(WWW, "pkg/worker.js"), "utf8");
    const source = readFileSync(join(REPO, "pkg-config/worker.js"), "utf8");
    assert.equal(
      served,
      source,
      "www/pkg/worker.js differs from pkg-config/worker.js: rebuild with pkg-config/build.sh --out www/pkg",
    );
    const adapter = await text("adapter");
    const note = (await text("adapter-fallback")).replace(/\s+/g, " "); // it may hold a no-break space
    console.log(`adapter: ${adapter} ${note}`);
    assert.ok(adapter && adapter !== "–", "#adapter should name the adapter");
    // The page sees the same browser, hence the same adapter, as the worker.
    const expected = await page.evaluate(async () => {
      const adapter = await navigator.gpu?.requestAdapter();
      const info = adapter?.info;
      if (!info) return null;
      const name = [info.vendor, info.architecture, info.description]
        .map((p) => (p ?? "").trim())
        .filter(Boolean)
        .join(" ");
      return { name, fallback: info.isFallbackAdapter ?? adapter.isFallbackAdapter };
    });
    if (!expected) return; // the browser describes nothing: the wasm's string stays
    if (expected.name) assert.equal(adapter, expected.name);
    assert.equal(note, expected.fallback === true ? "(software fallback)" : "");
  });

  it("fits its cards at desktop and phone widths", { timeout: 2 * STEP_TIMEOUT }, async () => {
    // The Model panel too: its values (tensor names) are the longest on the page. And the
    // longest values the Regeneration panel shows: a rejection note, and an adapter the browser
    // names only by a driver fingerprint (one long unbreakable word).
    const saved = await page.evaluate(() => {
      document.querySelectorAll("details").forEach((d) => (d.open = true));
      const ids = ["adapter", "adapter-fallback", "accepted-note"];
      const saved = Object.fromEntries(ids.map((id) => [id, document.getElementById(id).textContent]));
      document.getElementById("adapter").textContent = "spirv_0_0_" + "0123456789abcdef".repeat(4);
      document.getElementById("adapter-fallback").textContent = "(software\u00a0fallback)";
      document.getElementById("accepted-note").textContent = "rejected (0 of 64 candidates passed); previous weights kept";
      return saved;
    });
    try {
      for (const viewport of [VIEWPORT, NARROW_VIEWPORT]) {
        await page.setViewportSize(viewport);
        const problems = await page.evaluate(overflowing);
        if (viewport !== VIEWPORT) {
          await mkdir(SCREENSHOT_DIR, { recursive: true });
          await page.screenshot({ path: join(SCREENSHOT_DIR, `demo-${viewport.width}.png`), fullPage: true });
        }
        assert.deepEqual(problems, [], `at ${viewport.width}px wide`);
      }
    } finally {
      await page.setViewportSize(VIEWPORT);
      await page.evaluate((saved) => {
        document.querySelectorAll("details").forEach((d) => (d.open = false));
        for (const [id, text] of Object.entries(saved)) document.getElementById(id).textContent = text;
      }, saved);
    }
  });

  it("links the committed report, whose figures all load", { timeout: STEP_TIMEOUT }, async () => {
    const href = await page.getAttribute("footer a", "href");
    const report = new URL(href, page.url()).href;
    const res = await fetch(report);
    assert.equal(res.status, 200, report);
    const html = await res.text();
    const figures = [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(figures.length >= 5, `report figures: ${figures}`);
    for (const figure of [...figures, "report.json", "report.md"]) {
      const r = await fetch(new URL(figure, report));
      assert.equal(r.status, 200, figure);
      if (figure.endsWith(".svg")) assert.match(await r.text(), /^<svg/, figure);
    }
  });
});
