// How often a regenerate() call installs a model, on the CPU backend in Chromium: N calls with
// the bundle's defaults (B candidates each), then the fraction of calls that installed one and
// the fraction of candidates the guard accepted, each with its 95% Wilson interval. Not a test.
//
//   node tests/e2e/install-rate.mjs [--bundle NAME.g2d] [--calls N] [--candidates B]
//
// Needs www/pkg (pkg-config/build.sh --out www/pkg) and the bundle in www/ (bash .ci/demo
// writes www/default.g2d).

import { existsSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { servedPage, runScript } from "./chromium.mjs";

const WWW = join(resolve(dirname(fileURLToPath(import.meta.url)), "../.."), "www");

// 95% Wilson score interval for k successes in n trials.
function wilson(k, n) {
  const z = 1.959964;
  const p = k / n;
  const centre = (p + (z * z) / (2 * n)) / (1 + (z * z) / n);
  const half = (z / (1 + (z * z) / n)) * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

const pct = (x) => (100 * x).toFixed(1);

async function main() {
  const { values } = parseArgs({
    options: {
      bundle: { type: "string", default: "default.g2d" },
      calls: { type: "string", default: "400" },
      candidates: { type: "string" },
    },
    strict: true,
  });
  const calls = Number(values.calls);
  if (!Number.isInteger(calls) || calls < 1) throw new Error(`--calls must be a positive integer, got ${values.calls}`);
  const candidates = values.candidates === undefined ? undefined : Number(values.candidates);
  if (!existsSync(join(WWW, values.bundle))) throw new Error(`bundle not found: www/${values.bundle}`);
  const { browser, page, close } = await servedPage();
  try {
    const r = await page.evaluate(
      async ({ bundle, calls, candidates }) => {
        const { G2D } = await import("/pkg/index.js");
        const g2d = await G2D.load(bundle, { backend: "cpu" });
        let installed = 0;
        let passed = 0;
        let sampled = 0;
        for (let i = 0; i < calls; i++) {
          const r = await g2d.regenerate(candidates === undefined ? {} : { candidates });
          installed += r.accepted ? 1 : 0;
          passed += r.acceptedCandidates;
          sampled += r.candidates;
        }
        const info = g2d.info();
        return { installed, passed, sampled, valSize: info.valSize, sampler: info.sampler, steps: info.steps };
      },
      { bundle: `/${values.bundle}`, calls, candidates },
    );
    const [lo, hi] = wilson(r.installed, calls);
    const [clo, chi] = wilson(r.passed, r.sampled);
    console.log(
      [
        `Chromium ${browser.version()}, bundle ${values.bundle} (${r.sampler}/${r.steps}, guard on ${r.valSize} validation images), CPU backend`,
        "",
        "| calls | candidates per call | calls that installed a model | candidates accepted |",
        "|---:|---:|---|---|",
        `| ${calls} | ${r.sampled / calls} | ${r.installed} = ${pct(r.installed / calls)}% [${pct(lo)}, ${pct(hi)}] | ` +
          `${r.passed}/${r.sampled} = ${pct(r.passed / r.sampled)}% [${pct(clo)}, ${pct(chi)}] |`,
      ].join("\n"),
    );
  } finally {
    await close();
  }
}

await runScript("install-rate", main);
