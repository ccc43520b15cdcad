// Zero-dependency static server for the G2D demo (this folder), on 127.0.0.1 only.
//
//   node www/serve.mjs [--port N]      (or PORT=N; default 8080; 0 picks a free port)
//
// Also a module: `const { url, close } = await start(0)` for tests.

import { createServer } from "node:http";
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL(".", import.meta.url));

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".csv": "text/csv; charset=utf-8",
  // Needed for WebAssembly.instantiateStreaming.
  ".wasm": "application/wasm",
  ".g2d": "application/octet-stream",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
  ".pdf": "application/pdf",
};

const escapeHtml = (s) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function send(res, status, body, type = "text/plain; charset=utf-8") {
  res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

// A plain listing for folders without index.html, so report/ figures can be browsed.
async function listing(res, dir, urlPath) {
  const entries = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => !e.name.startsWith("."))
    .sort((a, b) => a.name.localeCompare(b.name));
  const items = entries
    .map((e) => {
      const name = e.name + (e.isDirectory() ? "/" : "");
      return `<li><a href="${encodeURIComponent(e.name)}${e.isDirectory() ? "/" : ""}">${escapeHtml(name)}</a></li>`;
    })
    .join("\n");
  const title = escapeHtml(decodeURIComponent(urlPath));
  send(
    res,
    200,
    `<!doctype html><meta charset="utf-8"><title>${title}</title>` +
      `<style>body{font:16px system-ui,sans-serif;margin:2rem}</style>` +
      `<h1>${title}</h1><ul>${urlPath !== "/" ? '<li><a href="../">../</a></li>' : ""}${items}</ul>`,
    "text/html; charset=utf-8",
  );
}

async function handle(req, res) {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return send(res, 405, "method not allowed\n");
  }
  const urlPath = new URL(req.url, "http://localhost").pathname;
  let relative;
  try {
    relative = decodeURIComponent(urlPath);
  } catch {
    return send(res, 400, "bad request\n");
  }
  // Resolve inside ROOT only: no `..` escapes, no NUL tricks.
  const file = resolve(ROOT, "." + relative);
  if (relative.includes("\0") || (file !== resolve(ROOT) && !file.startsWith(ROOT.endsWith(sep) ? ROOT : ROOT + sep))) {
    return send(res, 403, "forbidden\n");
  }

  let info;
  try {
    info = await stat(file);
  } catch {
    return send(res, 404, `not found: ${urlPath}\n`);
  }
  if (info.isDirectory()) {
    // Relative links inside a folder need the trailing slash.
    if (!urlPath.endsWith("/")) {
      res.writeHead(301, { Location: urlPath + "/" });
      return res.end();
    }
    try {
      const index = join(file, "index.html");
      if ((await stat(index)).isFile()) return serveFile(req, res, index);
    } catch {
      // no index.html: list the folder
    }
    return listing(res, file, urlPath);
  }
  return serveFile(req, res, file);
}

async function serveFile(req, res, file) {
  const { size } = await stat(file);
  res.writeHead(200, {
    "Content-Type": MIME[extname(file).toLowerCase()] ?? "application/octet-stream",
    "Content-Length": size,
    // A development server: always hand out what the last build produced.
    "Cache-Control": "no-store",
  });
  if (req.method === "HEAD") return res.end();
  createReadStream(file)
    .on("error", () => res.destroy())
    .pipe(res);
}

/** Serve this folder on 127.0.0.1:`port` (0 = any free port). */
export function start(port = 8080) {
  const server = createServer((req, res) => {
    // Cross-origin isolation, on every response: the pages load nothing from elsewhere, and
    // isolated, performance.now() ticks in 5 µs instead of 100 µs (what the latency
    // benchmarks time with).
    res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
    res.setHeader("Cross-Origin-Embedder-Policy", "require-corp");
    handle(req, res).catch((err) => {
      if (!res.headersSent) send(res, 500, `internal error: ${err.message}\n`);
      else res.destroy();
    });
  });
  return new Promise((resolvePromise, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      const url = `http://127.0.0.1:${server.address().port}/`;
      const close = () =>
        new Promise((done) => {
          server.close(() => done());
          // Browsers keep connections alive; do not wait for them to time out.
          server.closeAllConnections();
        });
      resolvePromise({ url, port: server.address().port, close });
    });
  });
}

function portFromArgs(argv) {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--port") return argv[i + 1];
    if (argv[i].startsWith("--port=")) return argv[i].slice("--port=".length);
  }
  return process.env.PORT ?? "8080";
}

const isMain = process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (isMain) {
  const raw = portFromArgs(process.argv.slice(2));
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`invalid port: ${raw}`);
    process.exit(2);
  }
  const { url } = await start(port);
  console.log(`G2D demo: ${url}`);
}
