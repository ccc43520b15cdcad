// Browser benchmark of memory over many regenerations in one page: the JS heap (CDP
// Performance.getMetrics), the wasm linear memory, and the resident memory of Chromium's renderer
// and GPU processes (ps), sampled every fifth of the run. Flat columns mean nothing piles up
// per regeneration. Not a test; prints a Markdown table.
//
//   node tests/e2e/bench-memory.mjs [--bundle NAME.g2d] [--cpu N] [--webgpu N]
//   (defaults: www/default.g2d, 300 CPU and 50 WebGPU regenerations of one candidate each)

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { servedPage, runScript } from "./chromium.mjs";

const WWW = join(resolve(dirname(fileURLToPath(import.meta.url)), "../.."), "www");
const MB = 1024 * 1024;

// Resident memory (MB) of the Chromium processes of one --type (renderer, gpu-process).
function rss(type) {
  const out = execFileSync("ps", ["-eo", "rss=,args="], { encoding: "utf8" });
  let kb = 0;
  for (const line of out.split("\n")) {
    if (line.includes("chromium") && line.includes(`--type=${type}`)) kb += Number(line.trim().split(/\s+/)[0]) || 0;
  }
  return kb / 1024;
}

async function main() {
  const { values } = parseArgs({
    options: {
      bundle: { type: "string", default: "default.g2d" },
      cpu: { type: "string", default: "300" },
      webgpu: { type: "string", default: "50" },
    },
    strict: true,
  });
  if (!existsSync(join(WWW, values.bundle))) throw new Error(`bundle not found: www/${values.bundle}`);
  const runs = [
    ["cpu", Number(values.cpu)],
    ["webgpu", Number(values.webgpu)],
  ].filter(([, n]) => n > 0);
  const { browser, page, close } = await servedPage();
  try {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Performance.enable");
    const sample = async (backend, done) => {
      const { metrics } = await cdp.send("Performance.getMetrics");
      const heap = metrics.find((m) => m.name === "JSHeapUsedSize")?.value ?? NaN;
      const wasm = await page.evaluate(() => globalThis.__wasm.memory.buffer.byteLength);
      return { backend, done, heap: heap / MB, wasm: wasm / MB, renderer: rss("renderer"), gpu: rss("gpu-process") };
    };
    const rows = [];
    for (const [backend, n] of runs) {
      await page.evaluate(
        async ({ bundle, backend }) => {
          const { G2D } = await import("/pkg/index.js");
          globalThis.__g2d?.free();
          globalThis.__g2d = await G2D.load(bundle, { backend });
          // The module serving this backend: the CPU-only one for "cpu" until the WebGPU module
          // is up, which then serves every load. Its init() returns the loaded module's exports.
          globalThis.__webgpuModule ||= backend !== "cpu";
          const glue = await import(globalThis.__webgpuModule ? "/pkg/g2d_wasm.js" : "/pkg/g2d_wasm_cpu.js");
          globalThis.__wasm = await glue.default();
          await globalThis.__g2d.regenerate({ candidates: 1 }); // warm-up
        },
        { bundle: `/${values.bundle}`, backend },
      );
      rows.push(await sample(backend, 0));
      const chunk = Math.max(1, Math.round(n / 5));
      for (let done = 0; done < n; ) {
        const k = Math.min(chunk, n - done);
        await page.evaluate(async (k) => {
          for (let i = 0; i < k; i++) await globalThis.__g2d.regenerate({ candidates: 1 });
        }, k);
        done += k;
        rows.push(await sample(backend, done));
        console.error(`[bench-memory] ${backend}: ${done}/${n}`);
      }
    }
    const out = [
      `Chromium ${browser.version()}, bundle ${values.bundle}, one candidate per regeneration, one page`,
      "",
      "| backend | regenerations | JS heap MB | wasm memory MB | renderer RSS MB | GPU process RSS MB |",
      "|---|---:|---:|---:|---:|---:|",
      ...rows.map(
        (r) =>
          `| ${r.backend} | ${r.done} | ${r.heap.toFixed(1)} | ${r.wasm.toFixed(1)} | ${r.renderer.toFixed(0)} | ${r.gpu.toFixed(0)} |`,
      ),
    ];
    console.log(out.join("\n"));
  } finally {
    await close();
  }
}

await runScript("bench-memory", main);
