// The npm package as a user gets it: `npm pack` it, install the tarball into an empty project
// and regenerate the committed fixture bundle with a few lines of JS, in Node, on the CPU backend.
//
//   node --test tests/npm/
//
// Needs the built package in pkg/ (pkg-config/build.sh), else in www/pkg/
// (pkg-config/build.sh --out www/pkg); G2D_NPM_PKG names another folder. Installs nothing
// from the registry: the package has no dependencies.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BUNDLE = join(REPO, "tests/fixtures/tiny.g2d");
const CONSUMER = join(REPO, "tests/types/consumer.ts");
const TSC = join(REPO, "tests/node_modules/.bin/tsc");
const PKG_DIR = process.env.G2D_NPM_PKG
  ? resolve(process.env.G2D_NPM_PKG)
  : [join(REPO, "pkg"), join(REPO, "www/pkg")].find((d) => existsSync(join(d, "package.json")));

const EXPECTED_FILES = [
  "package/package.json",
  "package/index.js",
  "package/index.d.ts",
  "package/rotation.js", // imported by index.js
  "package/default.g2d", // G2D.load() without a source
  "package/g2d_wasm.js", // the WebGPU module (it also runs the CPU backend)
  "package/g2d_wasm_bg.wasm",
  "package/g2d_wasm_cpu.js", // the CPU-only module
  "package/g2d_wasm_cpu_bg.wasm",
  "package/worker.js",
  "package/worker-client.js",
  "package/worker-client.d.ts", // imports its shared types from ./index.js (index.d.ts)
];
const PARAM_COUNT = 2410; // tests/fixtures/tiny.g2d's classifier
const STEP_TIMEOUT = 180_000;

// npm without its update check, and a big enough buffer for `node smoke.mjs` output.
const env = { ...process.env, npm_config_update_notifier: "false", npm_config_loglevel: "warn" };
const sh = (cmd, args, cwd) =>
  run(cmd, args, { cwd, env, timeout: STEP_TIMEOUT, maxBuffer: 16 * 1024 * 1024 });

// What a user writes: initialise the CPU-only module with its .wasm's bytes (wasm-bindgen's
// `--target web` init would fetch() a file: URL, which Node cannot), load the bundle's bytes,
// regenerate.
const SMOKE = `\
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { G2D, initCpu } from "g2d-wasm";
const require = createRequire(import.meta.url);
await initCpu(readFileSync(require.resolve("g2d-wasm/g2d_wasm_cpu_bg.wasm")));
const g2d = await G2D.load(readFileSync(process.argv[2]), { backend: "cpu" });
const r = await g2d.regenerate({ seed: 7 });
console.log(JSON.stringify({ n: r.params.length, valAccuracy: r.valAccuracy, l1: r.l1ToOriginal, backend: r.backend, accepted: r.accepted }));
`;

// The bundle the package ships, read from where npm installed it (Node's fetch cannot read a
// file: URL; a browser's G2D.load() with no argument fetches the same file), on the WebGPU
// module, which serves the CPU backend too once initialised.
const PACKAGED = `\
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { G2D, init } from "g2d-wasm";
const require = createRequire(import.meta.url);
await init(readFileSync(require.resolve("g2d-wasm/g2d_wasm_bg.wasm")));
const g2d = await G2D.load(readFileSync(require.resolve("g2d-wasm/default.g2d")), { backend: "cpu" });
const info = g2d.info();
const r = await g2d.regenerate();
console.log(JSON.stringify({ dataset: info.dataset, precision: info.precision, paramCount: info.paramCount, original: info.originalValAccuracy, installed: r.accepted, valAccuracy: r.valAccuracy }));
`;

// A bundle cut in half must be refused, not half-read.
const TRUNCATED = `\
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { G2D, initCpu } from "g2d-wasm";
const require = createRequire(import.meta.url);
await initCpu(readFileSync(require.resolve("g2d-wasm/g2d_wasm_cpu_bg.wasm")));
const bytes = readFileSync(process.argv[2]);
try {
  await G2D.load(bytes.subarray(0, bytes.length >> 1), { backend: "cpu" });
  console.log(JSON.stringify({ rejected: false }));
} catch (err) {
  console.log(JSON.stringify({ rejected: true, isError: err instanceof Error, message: String(err?.message ?? err) }));
}
`;

// The last line of stdout, as JSON (npm or Node may print warnings before it).
function lastJsonLine(stdout) {
  const lines = stdout.trim().split("\n");
  const line = lines[lines.length - 1];
  try {
    return JSON.parse(line);
  } catch {
    assert.fail(`expected a JSON line, got:\n${stdout}`);
  }
}

describe("npm tarball", { skip: PKG_DIR ? false : "no built package in pkg/ or www/pkg/" }, () => {
  let tmp;
  let tarball;
  let project;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "g2d-npm-"));
    const packDir = join(tmp, "pack");
    project = join(tmp, "app"); // a fixed, valid package name for `npm init -y`
    await mkdir(packDir);
    await mkdir(project);

    const { stdout } = await sh("npm", ["pack", "--json", "--pack-destination", packDir], PKG_DIR);
    const [{ filename }] = JSON.parse(stdout);
    tarball = join(packDir, filename);
  });

  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("packs the entry points, the wasm and the worker", async () => {
    assert.ok(existsSync(tarball), `no tarball at ${tarball}`);
    const { stdout } = await sh("tar", ["tzf", tarball], tmp);
    const files = stdout.split("\n").filter(Boolean);
    for (const f of EXPECTED_FILES) assert.ok(files.includes(f), `${f} missing from the tarball: ${files.join(", ")}`);
  });

  it("installs into an empty project", async () => {
    await sh("npm", ["init", "-y"], project);
    const manifestPath = join(project, "package.json");
    const manifest = JSON.parse(await readFile(manifestPath, "utf8"));
    manifest.type = "module";
    await writeFile(manifestPath, JSON.stringify(manifest, null, 2) + "\n");

    await sh("npm", ["install", "--no-audit", "--no-fund", "--offline=false", tarball], project);
    assert.ok(existsSync(join(project, "node_modules/g2d-wasm/package.json")), "g2d-wasm not installed");
    const installed = JSON.parse(await readFile(manifestPath, "utf8"));
    assert.ok(installed.dependencies?.["g2d-wasm"], "g2d-wasm not recorded in dependencies");
  });

  it("regenerates the fixture bundle on the CPU backend", async () => {
    await writeFile(join(project, "smoke.mjs"), SMOKE);
    const { stdout } = await sh(process.execPath, ["smoke.mjs", BUNDLE], project);
    const r = lastJsonLine(stdout);
    assert.equal(r.n, PARAM_COUNT);
    assert.equal(r.backend, "cpu");
    assert.equal(typeof r.valAccuracy, "number");
    assert.ok(r.valAccuracy >= 0 && r.valAccuracy <= 1, `valAccuracy ${r.valAccuracy} not in [0, 1]`);
    assert.ok(r.l1 > 0, `l1ToOriginal ${r.l1} should be > 0`);
    assert.equal(typeof r.accepted, "boolean");
  });

  it("ships a full-MNIST bundle that loads and regenerates", async () => {
    await writeFile(join(project, "packaged.mjs"), PACKAGED);
    const { stdout } = await sh(process.execPath, ["packaged.mjs"], project);
    const r = lastJsonLine(stdout);
    assert.equal(r.dataset, "mnist");
    assert.ok(r.paramCount > 0);
    // Shipped in half precision (pkg-config/default.g2d, `g2d export --precision f16`).
    assert.equal(r.precision, "f16");
    assert.ok(r.original > 0.9, `θ_orig validation accuracy ${r.original}`);
    assert.equal(r.installed, true, JSON.stringify(r));
    assert.ok(r.valAccuracy >= r.original - 0.02, JSON.stringify(r));
  });

  it("rejects a truncated bundle", async () => {
    await writeFile(join(project, "truncated.mjs"), TRUNCATED);
    const { stdout } = await sh(process.execPath, ["truncated.mjs", BUNDLE], project);
    const r = lastJsonLine(stdout);
    assert.equal(r.rejected, true, "G2D.load accepted a truncated bundle");
    assert.equal(r.isError, true, `rejected with a non-Error: ${r.message}`);
    assert.match(r.message, /truncated/);
  });

  it("type-checks a strict TypeScript consumer of both entry points", async () => {
    await writeFile(join(project, "consumer.ts"), await readFile(CONSUMER, "utf8"));
    const flags = ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext",
      "--target", "es2022", "--lib", "es2022,dom", "consumer.ts"];
    try {
      await sh(TSC, flags, project);
    } catch (err) {
      assert.fail(`tsc --strict failed on tests/types/consumer.ts:\n${err.stdout}${err.stderr}`);
    }
  });
});
