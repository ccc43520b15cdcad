// Where the wasm's bytes go: code bytes per Rust crate, read from the module's name section
// (so run it on a module wasm-opt has not stripped), plus the section totals.
//
//   node pkg-config/wasm-size.mjs FILE.wasm [--top N] [--json]
//
// A function counts towards the crate that starts its path; a trait impl (`<T as Trait>::f`)
// towards the crate of T, or of the trait where T is a generic parameter. Generic code is attributed to the crate that
// defines it, not to the one that instantiates it. The groups below add crates up by role.
import { readFileSync } from "node:fs";

const GROUPS = [
  ["WebGPU kernels and IR (cubecl, cubek, pliron)", /^(cubecl|cubek|pliron|rustc_apfloat|combine|burn_cubecl|wgpu|naga)/],
  ["CPU backend (burn-flex, gemm)", /^(burn_flex|gemm|macerator|pulp|seq_macro)/],
  ["autodiff (burn-autodiff)", /^burn_autodiff/],
  ["rest of burn", /^burn_/],
  ["Rust std, core, alloc, hashbrown", /^(std|core|alloc|hashbrown)$/],
  ["g2d", /^g2d$/],
];

function leb(bytes, at) {
  let value = 0, shift = 0, byte;
  do {
    byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [value, at];
}

function skipLimits(bytes, at) {
  const [flags, a] = leb(bytes, at);
  let [, b] = leb(bytes, a);
  if (flags & 1) [, b] = leb(bytes, b);
  return b;
}

/** The sections, the imported function count, code body sizes and function names. */
function parse(bytes) {
  const sections = [];
  const names = new Map();
  let imported = 0, bodies = [];
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, start] = leb(bytes, at + 1);
    const end = start + size;
    let name = "";
    if (id === 0) {
      const [len, a] = leb(bytes, start);
      name = new TextDecoder().decode(bytes.subarray(a, a + len));
      if (name === "name") readNames(bytes, a + len, end, names);
    } else if (id === 2) {
      imported = countImportedFunctions(bytes, start);
    } else if (id === 10) {
      bodies = codeSizes(bytes, start);
    }
    sections.push({ id, name, size: end - at });
    at = end;
  }
  return { sections, imported, bodies, names };
}

function countImportedFunctions(bytes, at) {
  let [count, p] = leb(bytes, at);
  let functions = 0;
  while (count--) {
    for (let i = 0; i < 2; i++) {
      const [len, q] = leb(bytes, p);
      p = q + len;
    }
    const kind = bytes[p++];
    if (kind === 0) [, p] = leb(bytes, p), functions++;
    else if (kind === 1) p = skipLimits(bytes, p + 1);
    else if (kind === 2) p = skipLimits(bytes, p);
    else if (kind === 3) p += 2;
    else [, p] = leb(bytes, p); // tag
  }
  return functions;
}

function codeSizes(bytes, at) {
  let [count, p] = leb(bytes, at);
  const sizes = [];
  while (count--) {
    const [len, q] = leb(bytes, p);
    sizes.push(q - p + len);
    p = q + len;
  }
  return sizes;
}

function readNames(bytes, at, end, names) {
  while (at < end) {
    const kind = bytes[at];
    const [size, start] = leb(bytes, at + 1);
    if (kind === 1) {
      let [count, p] = leb(bytes, start);
      while (count--) {
        const [index, q] = leb(bytes, p);
        const [len, r] = leb(bytes, q);
        names.set(index, new TextDecoder().decode(bytes.subarray(r, r + len)));
        p = r + len;
      }
    }
    at = start + size;
  }
}

/**
 * The crate a Rust function belongs to, from its demangled name (wasm-bindgen demangles the
 * name section): `krate::path::f`, or for a trait impl `<krate::Type as Trait>::f` the crate
 * of the type, or of the trait where the type is a generic parameter (`<T as Trait>`).
 */
export function crateOf(name) {
  let s = name;
  if (s.startsWith("<")) {
    s = s.slice(1).replace(/^(?:&|mut |dyn |\*const |\*mut )+/, "");
    const as = s.indexOf(" as ");
    const head = as < 0 ? s : s.slice(0, as);
    if (!head.includes("::") && as >= 0) s = s.slice(as + 4);
  }
  const m = /^([A-Za-z_][A-Za-z0-9_]*)::/.exec(s);
  if (m) return m[1];
  return name.startsWith("__") || !name ? "(runtime)" : "(other)";
}

const mb = (b) => (b / 1e6).toFixed(2);
const pct = (b, total) => ((100 * b) / total).toFixed(1);

function main() {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith("--"));
  if (!file) {
    console.error("usage: node pkg-config/wasm-size.mjs FILE.wasm [--top N] [--json]");
    process.exit(2);
  }
  const topIndex = args.indexOf("--top");
  const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 15;
  const { sections, imported, bodies, names } = parse(readFileSync(file));
  if (names.size === 0) {
    console.error(`${file} has no name section (wasm-opt strips it): run this on the module before wasm-opt`);
    process.exit(1);
  }
  const crates = new Map();
  bodies.forEach((size, i) => {
    const c = crateOf(names.get(imported + i) ?? "");
    crates.set(c, (crates.get(c) ?? 0) + size);
  });
  const code = bodies.reduce((a, b) => a + b, 0);
  const groups = GROUPS.map(([label]) => [label, 0]);
  groups.push(["other crates", 0]);
  for (const [c, size] of crates) {
    const g = GROUPS.findIndex(([, re]) => re.test(c));
    groups[g < 0 ? groups.length - 1 : g][1] += size;
  }
  const ranked = [...crates].sort((a, b) => b[1] - a[1]);
  if (args.includes("--json")) {
    console.log(JSON.stringify({ file, code_bytes: code, sections, groups: Object.fromEntries(groups), crates: Object.fromEntries(ranked) }, null, 2));
    return;
  }
  const total = sections.reduce((a, s) => a + s.size, 8);
  console.log(`${file}: ${mb(total)} MB, of which code ${mb(code)} MB in ${bodies.length} functions`);
  console.log("\n| part of the code | MB | share |\n|---|---|---|");
  for (const [label, size] of groups) console.log(`| ${label} | ${mb(size)} | ${pct(size, code)}% |`);
  console.log(`\n| crate (top ${top}) | MB | share |\n|---|---|---|`);
  for (const [c, size] of ranked.slice(0, top)) console.log(`| ${c} | ${mb(size)} | ${pct(size, code)}% |`);
}

main();
