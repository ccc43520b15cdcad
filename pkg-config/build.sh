#!/usr/bin/env bash
# Build the g2d-wasm npm package into pkg/ (git-ignored) from source: two wasm modules, g2d_wasm
# (WebGPU and the CPU backend) and g2d_wasm_cpu (the CPU backend alone), of which the loader
# (index.js) fetches one.
#
#   pkg-config/build.sh [--out DIR]
#
#   --out DIR              also copy the finished package to DIR (the demo uses www/pkg)
#   CARGO_TARGET_DIR       cargo's target folder (default ~/.cache/g2d/target)
#   G2D_TOOLS              where wasm-bindgen-cli gets installed (default ~/.cache/g2d/tools)
#   G2D_WASM_OPT_FLAGS     wasm-opt's optimisation flags for the published build (default -Oz)
#   G2D_SKIP_WASM_OPT=1    test build: the release profile (shared with the wasm tests), no
#                          wasm-opt; faster, larger. Otherwise the wasm-publish profile
#                          (opt-level z, fat LTO, one codegen unit) and wasm-opt -Oz.
#   G2D_WASM_FEATURES      extra crate features for the WebGPU module, e.g. `fusion` (burn's
#                          kernel fusion on WebGPU; measured in the README, not shipped)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || { echo "--out needs a folder" >&2; exit 2; }; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    -h|--help) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done

# --out DIR is replaced wholesale; refuse folders whose removal would hurt, before building.
DEST=""
if [[ -n "$OUT" ]]; then
  DEST=$(realpath -m -- "$OUT")
  case "$DEST" in
    /|"$ROOT"|"$ROOT/pkg"|"$ROOT/pkg-config"|"$ROOT/src"|"$ROOT/tests"|"$ROOT/www"|"$HOME")
      echo "refusing --out $OUT: it would be deleted and replaced" >&2; exit 2 ;;
  esac
fi

command -v node >/dev/null || { echo "node is required (package.json, wasm-opt)" >&2; exit 1; }

# Absolute paths: the wasm-bindgen install below runs in another folder.
CARGO_TARGET_DIR=$(realpath -m -- "${CARGO_TARGET_DIR:-$HOME/.cache/g2d/target}")
export CARGO_TARGET_DIR
TOOLS=$(realpath -m -- "${G2D_TOOLS:-$HOME/.cache/g2d/tools}")
export PATH="$TOOLS/bin:$PATH"

# First `version = ` after a given `[[package]] name = ...` in Cargo.lock.
lock_version() {
  awk -v name="$1" '
    /^\[\[package\]\]/ { inpkg = 0 }
    $0 == "name = \"" name "\"" { inpkg = 1; next }
    inpkg && /^version = / { gsub(/"/, "", $3); print $3; exit }
  ' Cargo.lock
}

# The [package] version in Cargo.toml.
crate_version() {
  awk '
    /^\[/ { section = $0 }
    section == "[package]" && /^version *= */ { gsub(/"/, "", $3); print $3; exit }
  ' Cargo.toml
}

PROFILE=wasm-publish
[[ "${G2D_SKIP_WASM_OPT:-}" == 1 ]] && PROFILE=release

# wasm-bindgen's CLI must match the library version exactly, or the glue is wrong.
WB_VERSION=$(lock_version wasm-bindgen)
[[ -n "$WB_VERSION" ]] || { echo "wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
HAVE=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [[ "$HAVE" != "$WB_VERSION" ]]; then
  echo "==> installing wasm-bindgen-cli $WB_VERSION into $TOOLS (found: ${HAVE:-none})"
  mkdir -p "$TOOLS"
  # Not --locked: the CLI's own lock file does not build with the toolchain here. Run from
  # $TOOLS so a .cargo/config.toml in this repo (e.g. a wasm build target) cannot apply.
  (cd "$TOOLS" && cargo install wasm-bindgen-cli --version "$WB_VERSION" --root "$TOOLS")
fi

rm -rf pkg
mkdir -p pkg
declare -A BY_CRATE

# build_module NAME [FEATURES]: the crate for wasm32 with FEATURES, through wasm-bindgen into
# pkg/NAME.js and pkg/NAME_bg.wasm, then (published build) wasm-opt.
build_module() {
  local name=$1 features=$2
  echo "==> cargo build $name (wasm32, profile $PROFILE${features:+, features $features}) into $CARGO_TARGET_DIR"
  cargo build --lib --target wasm32-unknown-unknown --profile "$PROFILE" --no-default-features \
    ${features:+--features "$features"}
  echo "==> wasm-bindgen $WB_VERSION: $name"
  wasm-bindgen --target web --out-name "$name" --out-dir pkg \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$PROFILE/g2d.wasm"
  # Where the bytes go, by crate (needs the name section, which wasm-opt strips).
  BY_CRATE[$name]=$(node pkg-config/wasm-size.mjs "pkg/${name}_bg.wasm" --top 8)

  if [[ "${G2D_SKIP_WASM_OPT:-}" != 1 ]]; then
    # binaryen from npm, pinned in tests/package.json. Not /usr/bin/wasm-opt: Debian's
    # binaryen 108 produces a broken module.
    local wasm_opt="$ROOT/tests/node_modules/.bin/wasm-opt"
    if [[ ! -x "$wasm_opt" ]]; then
      echo "==> npm ci --prefix tests (for wasm-opt)"
      npm ci --prefix tests
    fi
    local opt_flags
    read -r -a opt_flags <<<"${G2D_WASM_OPT_FLAGS:--Oz}"
    echo "==> $("$wasm_opt" --version) ${opt_flags[*]}: $name"
    # The post-MVP features rustc emits by default (plus SIMD, in case it is enabled), so
    # the module validates and the optimiser may keep using them.
    "$wasm_opt" "${opt_flags[@]}" \
      --enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-mutable-globals --enable-reference-types \
      --enable-multivalue --enable-simd \
      "pkg/${name}_bg.wasm" -o "pkg/${name}_bg.opt.wasm"
    mv "pkg/${name}_bg.opt.wasm" "pkg/${name}_bg.wasm"
  fi
}

# The WebGPU module (it also runs the CPU backend, for "auto" without an adapter and after a
# lost device), then the CPU-only one, which the loader takes where WebGPU is not used.
build_module g2d_wasm "wgpu${G2D_WASM_FEATURES:+,$G2D_WASM_FEATURES}"
build_module g2d_wasm_cpu ""

echo "==> package files"
cp pkg-config/{index.js,index.d.ts,rotation.js,default.g2d,worker.js,worker-client.js,worker-client.d.ts,README.md} pkg/
VERSION=$(crate_version)
[[ -n "$VERSION" ]] || { echo "no [package] version in Cargo.toml" >&2; exit 1; }
node -e '
  const fs = require("fs");
  const [template, out, version, hasSnippets] = process.argv.slice(1);
  const pkg = JSON.parse(fs.readFileSync(template, "utf8"));
  pkg.version = version;
  // Inline JS from Rust dependencies, if any, lands in snippets/ and must ship too.
  if (hasSnippets === "1") pkg.files.push("snippets/");
  fs.writeFileSync(out, JSON.stringify(pkg, null, 2) + "\n");
' pkg-config/package.json pkg/package.json "$VERSION" "$([[ -d pkg/snippets ]] && echo 1 || echo 0)"

if [[ -n "$DEST" ]]; then
  rm -rf -- "$DEST"
  mkdir -p -- "$DEST"
  cp -R pkg/. "$DEST/"
  echo "==> copied to $DEST"
fi

mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
echo "g2d-wasm $VERSION: $ROOT/pkg"
for name in g2d_wasm g2d_wasm_cpu; do
  WASM=pkg/${name}_bg.wasm
  RAW=$(wc -c < "$WASM")
  GZ=$(gzip -9 -c "$WASM" | wc -c)
  # Brotli at its highest quality, what servers and CDNs that precompress send browsers.
  BR=$(node -e 'const z = require("zlib"); const b = require("fs").readFileSync(process.argv[1]);
    console.log(z.brotliCompressSync(b, { params: { [z.constants.BROTLI_PARAM_QUALITY]: 11,
      [z.constants.BROTLI_PARAM_LGWIN]: 24, [z.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }).length)' "$WASM")
  echo "  $WASM ($PROFILE): $RAW bytes ($(mb "$RAW") MB), gzip -9: $GZ bytes ($(mb "$GZ") MB), brotli -q 11: $BR bytes ($(mb "$BR") MB)"
  echo "  before wasm-opt, by crate:"
  sed 's/^/    /' <<<"${BY_CRATE[$name]}"
done
