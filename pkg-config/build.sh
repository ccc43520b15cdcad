#!/usr/bin/env bash
# Build the g2d-wasm npm package into pkg/ (git-ignored) from source.
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
#   G2D_WASM_FEATURES      extra crate features for the wasm build, e.g. `fusion` (burn's kernel
#                          fusion on WebGPU; measured in the README, not shipped)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || { echo "--out needs a folder" >&2; exit 2; }; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    -h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
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
echo "==> cargo build (wasm32, profile $PROFILE) into $CARGO_TARGET_DIR"
cargo build --lib --target wasm32-unknown-unknown --profile "$PROFILE" --no-default-features \
  ${G2D_WASM_FEATURES:+--features "$G2D_WASM_FEATURES"}
WASM_IN="$CARGO_TARGET_DIR/wasm32-unknown-unknown/$PROFILE/g2d.wasm"

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

echo "==> wasm-bindgen $WB_VERSION"
rm -rf pkg
wasm-bindgen --target web --out-name g2d_wasm --out-dir pkg "$WASM_IN"
# Where the bytes go, by crate (needs the name section, which wasm-opt strips).
BY_CRATE=$(node pkg-config/wasm-size.mjs pkg/g2d_wasm_bg.wasm --top 8)

if [[ "${G2D_SKIP_WASM_OPT:-}" != 1 ]]; then
  # binaryen from npm, pinned in tests/package.json. Not /usr/bin/wasm-opt: Debian's
  # binaryen 108 produces a broken module.
  WASM_OPT="$ROOT/tests/node_modules/.bin/wasm-opt"
  if [[ ! -x "$WASM_OPT" ]]; then
    echo "==> npm ci --prefix tests (for wasm-opt)"
    npm ci --prefix tests
  fi
  read -r -a OPT_FLAGS <<<"${G2D_WASM_OPT_FLAGS:--Oz}"
  echo "==> $("$WASM_OPT" --version) ${OPT_FLAGS[*]}"
  # The post-MVP features rustc emits by default (plus SIMD, in case it is enabled), so
  # the module validates and the optimiser may keep using them.
  "$WASM_OPT" "${OPT_FLAGS[@]}" \
    --enable-bulk-memory --enable-bulk-memory-opt --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types \
    --enable-multivalue --enable-simd \
    pkg/g2d_wasm_bg.wasm -o pkg/g2d_wasm_bg.opt.wasm
  mv pkg/g2d_wasm_bg.opt.wasm pkg/g2d_wasm_bg.wasm
fi

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

WASM=pkg/g2d_wasm_bg.wasm
RAW=$(wc -c < "$WASM")
GZ=$(gzip -9 -c "$WASM" | wc -c)
mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
echo "g2d-wasm $VERSION: $ROOT/pkg"
echo "  $WASM ($PROFILE): $RAW bytes ($(mb "$RAW") MB), gzip -9: $GZ bytes ($(mb "$GZ") MB)"
echo "  before wasm-opt, by crate:"
sed 's/^/    /' <<<"$BY_CRATE"
