// The demo page with a bundle that is not MNIST-shaped: tests/fixtures/colours-cnn.g2d, a CNN
// for 8×8 RGB images of 3 classes (copied into www/ by the test command). The page sizes its
// inputs, previews and probability bars from info(), and the attack panel shows colour.
//
//   cp tests/fixtures/colours-cnn.g2d www/ && node --test tests/e2e/shapes.test.mjs

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { demoGeneration, servedPage } from "./chromium.mjs";

const WWW = join(resolve(dirname(fileURLToPath(import.meta.url)), "../.."), "www");
const BUNDLE = "colours-cnn.g2d";
const TIMEOUT = 120_000;

let session;
const text = async (id) => (await session.page.locator(`#${id}`).textContent()).trim();

describe("demo page with an 8×8 RGB, 3-class bundle", { timeout: 10 * 60_000 }, () => {
  before(async () => {
    const missing = ["pkg/index.js", BUNDLE].filter((f) => !existsSync(join(WWW, f)));
    assert.deepEqual(missing, [], `missing in www/ (cp tests/fixtures/${BUNDLE} www/; pkg-config/build.sh --out www/pkg)`);
    session = await servedPage({ path: `?bundle=${BUNDLE}&backend=cpu`, timeout: TIMEOUT });
  });

  after(async () => session?.close());

  it("regenerates and sizes the page to the bundle's input", { timeout: TIMEOUT }, async () => {
    assert.equal(await demoGeneration(session.page, 1, TIMEOUT), "ready");
    assert.equal(await text("preview-label"), "8×8×3 input");
    assert.equal(await text("draw-title"), "Draw an input");
    const bars = await session.page.locator("#probs li").count();
    assert.equal(bars, 3, "one probability bar per class");
  });

  it("classifies a drawing as one of the bundle's classes", { timeout: TIMEOUT }, async () => {
    const { page } = session;
    const box = await page.locator("#canvas").boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 5, box.y + box.height * 0.8, { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction(() => /^[0-2]$/.test(document.getElementById("prediction").textContent.trim()), null, {
      timeout: TIMEOUT,
    });
    const preview = await page.evaluate(() => [document.getElementById("preview").width, document.getElementById("preview").height]);
    assert.deepEqual(preview, [8, 8]);
  });

  it("attacks a colour validation image", { timeout: TIMEOUT }, async () => {
    const { page } = session;
    await page.click("#attack-pick");
    await page.click("#attack-run");
    await page.waitForFunction(
      () => ["attack-original", "attack-regenerated"].every((id) => /^[0-2]$/.test(document.getElementById(id).textContent.trim())),
      null,
      { timeout: TIMEOUT },
    );
    // The clean image is drawn in colour: its class is its brightest channel, so some pixel's
    // red, green and blue differ (a grey rendering would have them equal everywhere).
    const colourful = await page.evaluate(() => {
      const c = document.getElementById("attack-clean");
      const { data } = c.getContext("2d").getImageData(0, 0, c.width, c.height);
      let differ = 0;
      for (let i = 0; i < data.length; i += 4) differ += data[i] !== data[i + 1] || data[i + 1] !== data[i + 2];
      return { width: c.width, height: c.height, differ };
    });
    assert.equal(colourful.width, 8);
    assert.equal(colourful.height, 8);
    assert.ok(colourful.differ > 0, "the clean image should be drawn in colour");
  });
});
