// Browser benchmark of G2D regeneration in the system Chromium: WebGPU and CPU backends,
// the bundle's default sampler and candidates, one candidate, and DDIM-50 with eight (the
// default before the sampler study). Not a test; prints Markdown tables.
//
//   node tests/e2e/bench.mjs [--bundle NAME.g2d] [--repeats N] [--rounds R] [--timeout SECONDS]
//                            [--targets webgpu,cpu,cpu-worker,cpu-webgpu-module]
//   (cpu-worker: a G2DWorker; cpu-webgpu-module: the CPU backend of the WebGPU module)
//   (or: npm run bench --prefix tests -- --bundle test-fixture.g2d)
//
// Needs the built package in www/pkg (pkg-config/build.sh --out www/pkg) and the bundle in
// www/ (default www/default.g2d; the committed fixture is www/test-fixture.g2d).
// Exits non-zero if WebGPU is not available: the webgpu row never silently measures the CPU.
// On WebGPU it also counts, per regeneration, the compute dispatches (kernel launches), queue
// submissions and buffer maps the page makes, by wrapping those WebGPU methods before any script
// runs.
// Each target runs in a fresh browser context (empty cache), so its first G2D.load fetches and
// compiles the wasm module that target runs (the CPU-only module for cpu and cpu-worker, the
// WebGPU module for webgpu); the benchmark prints that load's time and the module's size.
// Headless Chromium's WebGPU is usually SwiftShader (software), hence the long timeouts.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { launchChromium, runScript, wasmFetches } from "./chromium.mjs";
import { start } from "../../www/serve.mjs";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const WWW = join(REPO, "www");
const WASM = join(WWW, "pkg", "g2d_wasm_bg.wasm");
const WASM_CPU = join(WWW, "pkg", "g2d_wasm_cpu_bg.wasm");
// Where regenerate() runs: the page's own G2D, or a G2DWorker (worker-client.js).
const TARGETS = {
  webgpu: { backend: "webgpu", worker: false },
  cpu: { backend: "cpu", worker: false },
  "cpu-worker": { backend: "cpu", worker: true },
  // The CPU backend on the WebGPU module (init() first), as every CPU load ran before the
  // package split its wasm in two.
  "cpu-webgpu-module": { backend: "cpu", worker: false, webgpuModule: true },
};
// label, regenerate() options beyond the seed (none = the bundle's default sampler/steps)
const CONFIGS = [
  ["default", {}],
  ["default, 1 candidate", { candidates: 1 }],
  ["ddim-50 ×8, the default before the sampler study", { sampler: "ddim", steps: 50, candidates: 8 }],
];

function usage() {
  return "usage: node tests/e2e/bench.mjs [--bundle NAME.g2d] [--repeats N] [--rounds R] [--timeout SECONDS] [--targets webgpu,cpu,cpu-worker,cpu-webgpu-module]";
}

function parseCli() {
  const { values } = parseArgs({
    options: {
      bundle: { type: "string", default: "default.g2d" },
      repeats: { type: "string", default: "5" },
      rounds: { type: "string", default: "1" }, // the targets in turn, so drift hits them alike
      timeout: { type: "string", default: "600" }, // per page call (one load or regeneration)
      targets: { type: "string", default: Object.keys(TARGETS).join(",") },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage());
    process.exit(0);
  }
  const repeats = Number(values.repeats);
  if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`--repeats must be a positive integer, got ${values.repeats}`);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
  const timeoutS = Number(values.timeout);
  if (!(timeoutS > 0)) throw new Error(`--timeout must be a positive number of seconds, got ${values.timeout}`);
  const targets = values.targets.split(",").filter(Boolean);
  const unknown = targets.filter((t) => !(t in TARGETS));
  if (unknown.length > 0 || targets.length === 0) throw new Error(`--targets: expected some of ${Object.keys(TARGETS)}, got ${values.targets}`);
  return { bundle: values.bundle, repeats, rounds, timeoutMs: timeoutS * 1000, targets };
}

// Runs in the page before its scripts: counts calls of the WebGPU methods that launch work.
function countGpuCalls() {
  const counts = { dispatches: 0, submits: 0, maps: 0 };
  globalThis.__gpuCounts = counts;
  const wrap = (proto, name, key) => {
    const original = proto?.[name];
    if (typeof original !== "function") return;
    proto[name] = function (...args) {
      counts[key] += 1;
      return original.apply(this, args);
    };
  };
  wrap(globalThis.GPUComputePassEncoder?.prototype, "dispatchWorkgroups", "dispatches");
  wrap(globalThis.GPUComputePassEncoder?.prototype, "dispatchWorkgroupsIndirect", "dispatches");
  wrap(globalThis.GPUQueue?.prototype, "submit", "submits");
  wrap(globalThis.GPUBuffer?.prototype, "mapAsync", "maps");
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
// Whole milliseconds, but a tenth below 100 ms, where a whole one is a tenth of the figure.
const fmt = (ms) => ms.toFixed(ms < 100 ? 1 : 0);
const cell = (s) => String(s).replaceAll("|", "\\|").replace(/\s+/g, " ").trim() || "-";

// page.evaluate has no timeout of its own; a hung WebGPU call must not hang the benchmark.
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const { bundle, repeats, rounds, timeoutMs, targets } = parseCli();

  const bundlePath = resolve(WWW, bundle);
  if (!bundlePath.startsWith(WWW + "/")) throw new Error(`--bundle must name a file inside www/, got ${bundle}`);
  if (!existsSync(bundlePath)) {
    const hint = existsSync(join(WWW, "test-fixture.g2d")) ? " (try --bundle test-fixture.g2d)" : "";
    throw new Error(`bundle not found: ${bundlePath}${hint}`);
  }
  for (const f of [join(WWW, "pkg", "index.js"), WASM, WASM_CPU]) {
    if (!existsSync(f)) throw new Error(`missing ${f}; build the package first: pkg-config/build.sh --out www/pkg`);
  }
  const bundleUrlPath = "/" + bundlePath.slice(WWW.length + 1).split("/").map(encodeURIComponent).join("/");

  const server = await start(0);
  let browser;
  try {
    browser = await launchChromium({ timeout: 60_000 });
    const loads = [];
    // Runs per (target, configuration), gathered over every round.
    const measured = new Map();
    let webgpuAdapter = null;
    for (let round = 0; round < rounds; round++) for (const target of targets) {
      const { backend, worker, webgpuModule = false } = TARGETS[target];
      // A fresh context per target: an empty cache, and no module initialised by another.
      const context = await browser.newContext();
      const page = await context.newPage();
      const wasmFetched = wasmFetches(page);
      page.on("console", (msg) => {
        if (msg.type() !== "error" && msg.type() !== "warning") return;
        // For "Failed to load resource" the location is the resource (e.g. the favicon).
        const where = msg.location()?.url;
        if (where?.endsWith("/favicon.ico")) return; // www/ has none; harmless
        console.error(`[page ${msg.type()}] ${msg.text()}${where ? ` (${where})` : ""}`);
      });
      page.on("pageerror", (err) => console.error(`[page uncaught] ${err.stack ?? err}`));
      page.on("crash", () => console.error("[page crashed]"));
      await page.addInitScript(countGpuCalls);
      // Any same-origin HTML page will do: the folder listing of pkg/ (it has no index.html).
      // www/index.html would start the demo's own regeneration and skew the timings.
      await page.goto(`${server.url}pkg/`, { timeout: 60_000 });
      console.error(`[bench] ${target}: loading ${bundle}`);
      const info = await withTimeout(
        page.evaluate(
          async ({ backend, worker, webgpuModule, bundleUrlPath }) => {
            const response = await fetch(bundleUrlPath);
            if (!response.ok) throw new Error(`fetch ${bundleUrlPath}: HTTP ${response.status}`);
            const bytes = new Uint8Array(await response.arrayBuffer());
            globalThis.__g2dRelease?.();
            globalThis.__g2d = null;
            const t0 = performance.now(); // the module's fetch, compilation and the bundle's load
            if (worker) {
              const { G2DWorker } = await import("/pkg/worker-client.js");
              globalThis.__g2d = await G2DWorker.create(bytes, { backend });
              globalThis.__g2dRelease = () => globalThis.__g2d?.terminate();
            } else {
              const { G2D, init } = await import("/pkg/index.js");
              if (webgpuModule) await init();
              globalThis.__g2d = await G2D.load(bytes, { backend });
              globalThis.__g2dRelease = () => globalThis.__g2d?.free();
            }
            const loadMs = performance.now() - t0;
            const { backend: used, backendReason, adapter, sampler, steps, paramCount } = await globalThis.__g2d.info();
            return { backend: used, backendReason, adapter, sampler, steps, paramCount, loadMs };
          },
          { backend, worker, webgpuModule, bundleUrlPath },
        ),
        timeoutMs,
        `G2D.load(${backend})`,
      );
      if (info.backend !== backend) {
        throw new Error(
          `asked for backend "${backend}" but got "${info.backend}"` +
            (info.backendReason ? `: ${info.backendReason}` : "") +
            (backend === "webgpu" ? " (WebGPU is not available in this Chromium)" : ""),
        );
      }
      if (backend === "webgpu") {
        // wgpu's adapter name can be opaque (SwiftShader reports "spirv_0_0"); the browser's
        // GPUAdapterInfo says what it really is.
        const gpu = await page.evaluate(async () => {
          const a = await navigator.gpu?.requestAdapter();
          const i = a?.info;
          return i ? { vendor: i.vendor, architecture: i.architecture, description: i.description, fallback: i.isFallbackAdapter } : null;
        });
        const extra = gpu
          ? [gpu.vendor, gpu.architecture, gpu.description].filter(Boolean).join(" ") + (gpu.fallback ? ", fallback adapter" : "")
          : "";
        webgpuAdapter = (info.adapter || "(unnamed adapter)") + (extra ? ` [${extra}]` : "");
      }
      console.error(
        `[bench] ${backend}: ${info.paramCount} params, bundle default ${info.sampler}/${info.steps} steps` +
          (info.adapter ? `, adapter ${info.adapter}` : ""),
      );

      for (const [label, options] of CONFIGS) {
        const runs = [];
        for (let i = 0; i <= repeats; i++) {
          // Seed 0 is the warm-up; each round's timed runs take seeds of their own.
          const seed = i === 0 ? 0 : round * repeats + i;
          const r = await withTimeout(
            page.evaluate(
              async ({ options, seed }) => {
                const counts = globalThis.__gpuCounts;
                const before = { ...counts };
                const t0 = performance.now();
                const r = await globalThis.__g2d.regenerate({ ...options, seed });
                const wall = performance.now() - t0;
                return {
                  gpu: Object.fromEntries(Object.keys(counts).map((k) => [k, counts[k] - before[k]])),
                  wall,
                  ms: r.ms,
                  backend: r.backend,
                  sampler: r.sampler,
                  steps: r.steps,
                  valAccuracy: r.valAccuracy,
                  l1ToOriginal: r.l1ToOriginal,
                  accepted: r.accepted,
                  candidates: r.candidates,
                  acceptedCandidates: r.acceptedCandidates,
                };
              },
              { options, seed },
            ),
            timeoutMs,
            `regenerate(${backend}, ${label}, seed ${seed})`,
          );
          if (r.backend !== backend) throw new Error(`regeneration on "${backend}" ran on "${r.backend}"`);
          console.error(
            `[bench] ${backend} ${r.sampler}/${r.steps} seed ${seed}${i === 0 ? " (warm-up)" : ""}: ` +
              `wall ${fmt(r.wall)} ms, reported ${fmt(r.ms)} ms, val acc ${(100 * r.valAccuracy).toFixed(2)}%, ` +
              `accepted ${r.accepted}`,
          );
          if (i > 0) runs.push(r);
        }
        const key = `${target}\u0000${label}`;
        if (!measured.has(key)) measured.set(key, { target, label, backend, adapter: info.adapter, runs: [] });
        measured.get(key).runs.push(...runs);
      }
      await page.evaluate(() => {
        globalThis.__g2dRelease?.();
        globalThis.__g2d = null;
      });
      loads.push({ target, round, loadMs: info.loadMs, modules: [...new Set(wasmFetched)].sort() });
      await context.close();
    }

    const rows = [];
    const details = [];
    for (const { target, label, backend, adapter, runs } of measured.values()) {
      const walls = runs.map((r) => r.wall);
      rows.push({
        backend: target,
        label,
        adapter,
        sampler: runs[0].sampler,
        steps: runs[0].steps,
        candidates: runs[0].candidates,
        median: median(walls),
        min: Math.min(...walls),
        runs: runs.length,
      });
      details.push({
        what: `${target} ${runs[0].sampler}/${runs[0].steps} ×${runs[0].candidates}`,
        reportedMedian: median(runs.map((r) => r.ms)),
        valAcc: runs.map((r) => (100 * r.valAccuracy).toFixed(1)).join(", "),
        accepted: runs.filter((r) => r.accepted).length,
        passed: runs.reduce((sum, r) => sum + r.acceptedCandidates, 0),
        sampled: runs.reduce((sum, r) => sum + r.candidates, 0),
        runs: runs.length,
        gpu: backend === "webgpu" ? runs[runs.length - 1].gpu : null,
      });
    }

    const out = [];
    out.push(
      `Chromium ${browser.version()}, bundle ${bundle}, ${repeats} timed run(s) per row after 1 warm-up` +
        (rounds > 1 ? `, in each of ${rounds} rounds that take the targets in turn` : ""),
    );
    out.push("");
    out.push("| backend | adapter | sampler | steps | candidates | median ms | min ms | runs |");
    out.push("|---|---|---|---:|---:|---:|---:|---:|");
    for (const r of rows) {
      out.push(
        `| ${r.backend} | ${cell(r.adapter)} | ${r.sampler} | ${r.steps} | ${r.candidates} | ${fmt(r.median)} | ${fmt(r.min)} | ${r.runs} |`,
      );
    }
    // Issue 10 asks the worker to regenerate within 1.2× of the page's own CPU backend.
    const paired = rows.filter((r) => r.backend === "cpu-worker");
    if (paired.length > 0 && rows.some((r) => r.backend === "cpu")) {
      out.push("");
      out.push("The worker against the page (cpu-worker / cpu, each row's median and minimum wall time):");
      out.push("");
      out.push("| sampler | steps | candidates | median ratio | min ratio |");
      out.push("|---|---:|---:|---:|---:|");
      for (const w of paired) {
        const p = rows.find((r) => r.backend === "cpu" && r.label === w.label);
        if (!p) continue;
        out.push(`| ${w.sampler} | ${w.steps} | ${w.candidates} | ${(w.median / p.median).toFixed(2)}× | ${(w.min / p.min).toFixed(2)}× |`);
      }
    }
    out.push("");
    out.push("Wall time is performance.now() around regenerate(); the library's own `ms`, for comparison:");
    out.push("");
    for (const d of details) {
      out.push(
        `- ${d.what}: reported median ${fmt(d.reportedMedian)} ms; val acc % ${d.valAcc}; ` +
          `installed ${d.accepted}/${d.runs} calls; candidates passing the guard ${d.passed}/${d.sampled}` +
          (d.gpu ? `; per regeneration ${d.gpu.dispatches} compute dispatches, ${d.gpu.submits} queue submits, ${d.gpu.maps} buffer maps` : ""),
      );
    }
    out.push("");
    out.push(`WebGPU here: ${webgpuAdapter} (SwiftShader is software; a real GPU is much faster)`);
    out.push("");
    out.push("First G2D.load in a fresh context (the wasm module's fetch from this machine's server and");
    out.push("its compilation, then the bundle's validation and the networks' construction):");
    out.push("");
    out.push("| backend | wasm fetched | load ms |");
    out.push("|---|---|---:|");
    for (const l of loads) out.push(`| ${l.target}${rounds > 1 ? ` (round ${l.round + 1})` : ""} | ${l.modules.join(", ") || "-"} | ${fmt(l.loadMs)} |`);
    out.push("");
    out.push("| file | bytes | gzip -9 bytes |");
    out.push("|---|---:|---:|");
    for (const [name, bytes] of [
      ["www/pkg/g2d_wasm_bg.wasm", readFileSync(WASM)],
      ["www/pkg/g2d_wasm_cpu_bg.wasm", readFileSync(WASM_CPU)],
      [`www/${bundle}`, readFileSync(bundlePath)],
    ]) {
      out.push(`| ${name} | ${bytes.length} | ${gzipSync(bytes, { level: 9 }).length} |`);
    }
    console.log(out.join("\n"));
  } finally {
    await browser?.close().catch(() => {});
    await server.close();
  }
}

await runScript("bench", main);
