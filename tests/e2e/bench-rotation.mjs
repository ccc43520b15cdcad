// Browser benchmark of the rotation policy: classify() latency with and without a rotation
// running (G2D.rotate / G2DWorker.rotate), on the CPU backend. Not a test; prints a Markdown
// table. classify() is called with one image every --gap ms (requests arriving), --calls times.
//
//   node tests/e2e/bench-rotation.mjs [--bundle NAME.g2d] [--calls N] [--gap MS] [--every N]
//                                     [--targets cpu,cpu-worker] [--steps S] [--candidates B]
//                                     [--rounds R]
//   (--steps and --candidates set the rotation's sampler; default: the bundle's and B = 8;
//   --rounds measures every row R times in turn and pools the latencies, so that drift on a
//   busy machine hits the rows with and without rotation alike)
//
// Needs www/pkg (pkg-config/build.sh --out www/pkg) and the bundle in www/.

import { existsSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { servedPage, runScript } from "./chromium.mjs";

const WWW = join(resolve(dirname(fileURLToPath(import.meta.url)), "../.."), "www");

function parseCli() {
  const { values } = parseArgs({
    options: {
      bundle: { type: "string", default: "default.g2d" },
      calls: { type: "string", default: "1000" },
      gap: { type: "string", default: "20" },
      every: { type: "string", default: "10" },
      targets: { type: "string", default: "cpu,cpu-worker" },
      steps: { type: "string" },
      candidates: { type: "string" },
      rounds: { type: "string", default: "1" },
    },
    strict: true,
  });
  const int = (name, least) => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < least) throw new Error(`--${name} must be an integer ≥ ${least}, got ${values[name]}`);
    return v;
  };
  const targets = values.targets.split(",").filter(Boolean);
  for (const t of targets) if (t !== "cpu" && t !== "cpu-worker") throw new Error(`--targets: cpu or cpu-worker, got ${t}`);
  if (!existsSync(join(WWW, values.bundle))) throw new Error(`bundle not found: www/${values.bundle}`);
  const regenerate = {};
  if (values.steps !== undefined) regenerate.steps = int("steps", 1);
  if (values.candidates !== undefined) regenerate.candidates = int("candidates", 1);
  return {
    bundle: values.bundle,
    calls: int("calls", 1),
    gap: int("gap", 0),
    every: int("every", 1),
    rounds: int("rounds", 1),
    targets,
    regenerate,
  };
}

// In the page: one run of `calls` paced classify() calls; latencies and distinct answers.
async function measure({ bundle, worker, rotateEvery, calls, gap, regenerate }) {
  const g2d = worker
    ? await (await import("/pkg/worker-client.js")).G2DWorker.create(bundle, { backend: "cpu" })
    : await (await import("/pkg/index.js")).G2D.load(bundle, { backend: "cpu" });
  const image = (await g2d.info()).sampleImages.slice(0, 784);
  await g2d.classify(image); // warm-up
  const rotation = rotateEvery ? await g2d.rotate({ everyClassifications: rotateEvery, ...regenerate }) : null;
  const latencies = [];
  const seen = new Set();
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    const probs = await g2d.classify(image);
    latencies.push(performance.now() - t0);
    seen.add(Array.from(probs).join(","));
    await new Promise((r) => setTimeout(r, gap));
  }
  const stats = worker ? await g2d.stopRotation() : (rotation?.stop(), rotation?.stats ?? null);
  worker ? g2d.terminate() : g2d.free();
  return {
    latencies,
    distinct: seen.size,
    rotations: stats?.rotations ?? 0,
    rejected: stats?.rejected ?? 0,
    isolated: self.crossOriginIsolated,
  };
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

async function main() {
  const { bundle, calls, gap, every, rounds, targets, regenerate } = parseCli();
  const { browser, page, close } = await servedPage();
  try {
    // One row per target and policy; each round adds its latencies and its own counts.
    const rows = [];
    for (const target of targets) for (const rotateEvery of [0, every]) rows.push({ target, rotateEvery, runs: [] });
    for (let round = 0; round < rounds; round++) {
      for (const row of rows) {
        const { target, rotateEvery } = row;
        console.error(
          `[bench-rotation] round ${round + 1}/${rounds}: ${target}, ${rotateEvery ? `rotation every ${rotateEvery}` : "no rotation"}`,
        );
        const r = await page.evaluate(`(${measure.toString()})(${JSON.stringify({
          bundle: `/${bundle}`,
          worker: target === "cpu-worker",
          rotateEvery,
          calls,
          gap,
          regenerate,
        })})`);
        row.runs.push(r);
      }
    }
    const each = (row, key) => row.runs.map((r) => r[key]).join(", ");
    const out = [
      `Chromium ${browser.version()}, bundle ${bundle}, ${calls} classify() calls of one image, one every ${gap} ms` +
        (rounds > 1 ? `, in each of ${rounds} rounds that take the rows in turn (counts per round)` : "") +
        `; rotation's regenerate() settings: ${JSON.stringify(regenerate)}; timer: ` +
        (rows.every((row) => row.runs.every((r) => r.isolated)) ? "5 µs (cross-origin isolated)" : "100 µs (not cross-origin isolated)"),
      "",
      "| where | rotation | p50 ms | p95 ms | max ms | distinct answers | sets installed | batches rejected |",
      "|---|---|---:|---:|---:|---:|---:|---:|",
    ];
    for (const row of rows) {
      row.latencies = row.runs.flatMap((r) => r.latencies);
      const f = (q) => quantile(row.latencies, q).toFixed(3);
      out.push(
        `| ${row.target} | ${row.rotateEvery ? `every ${row.rotateEvery}` : "none"} | ${f(0.5)} | ${f(0.95)} | ` +
          `${Math.max(...row.latencies).toFixed(3)} | ${each(row, "distinct")} | ${each(row, "rotations")} | ${each(row, "rejected")} |`,
      );
    }
    // The goal: p95 with a rotation within 1.5× of p95 without.
    out.push("", "| where | p95 with rotation / without |", "|---|---:|");
    for (const target of targets) {
      const [none, rotating] = [0, every].map((e) => rows.find((r) => r.target === target && r.rotateEvery === e));
      out.push(`| ${target} | ${(quantile(rotating.latencies, 0.95) / quantile(none.latencies, 0.95)).toFixed(2)}× |`);
    }
    console.log(out.join("\n"));
  } finally {
    await close();
  }
}

await runScript("bench-rotation", main);
