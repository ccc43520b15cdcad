// Launches Debian's Chromium for the page tests and benchmarks: headless, WebGPU on (SwiftShader
// here), no network chatter, a fresh profile. Never a browser downloaded by a package.
import { chromium } from "playwright-core";

export const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

export function launchChromium(options = {}) {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS, ...options });
}

// A Chromium page on www/, served on a free local port: `path` defaults to the folder listing of
// pkg/ (a page of the same origin that runs nothing of its own), `initScript` runs before the
// page's scripts. `close()` stops the browser and the server.
export async function servedPage({ path = "pkg/", initScript, args, timeout = 60_000 } = {}) {
  const { start } = await import("../../www/serve.mjs");
  const server = await start(0);
  const browser = await launchChromium({ timeout, ...(args ? { args } : {}) });
  const page = await (await browser.newContext()).newPage();
  page.on("pageerror", (err) => console.error(`[page uncaught] ${err.stack ?? err}`));
  if (initScript) await page.addInitScript(initScript);
  await page.goto(`${server.url}${path}`, { timeout });
  const close = async () => {
    await browser.close().catch(() => {});
    await server.close();
  };
  return { server, browser, page, close };
}

// The wasm files `page` and its workers fetch from now on, by file name, in order.
export function wasmFetches(page) {
  const names = [];
  page.on("request", (request) => {
    const name = new URL(request.url()).pathname.split("/").pop();
    if (name.endsWith(".wasm")) names.push(name);
  });
  return names;
}

// Waits until the demo page has finished regeneration `n` (#status reads "ready" with
// data-generation = n) or failed (#status reads "error: …"), and returns #status's text.
export async function demoGeneration(page, n, timeout) {
  await page.waitForFunction(
    (n) => {
      const s = document.getElementById("status");
      return s.textContent.startsWith("error") || (s.textContent === "ready" && s.dataset.generation === String(n));
    },
    n,
    { timeout, polling: 250 },
  );
  return (await page.locator("#status").textContent()).trim();
}

// Runs a benchmark script's `main`: on failure prints "NAME failed: message" and exits with 1.
export async function runScript(name, main) {
  try {
    await main();
  } catch (err) {
    console.error(`${name} failed: ${err?.message ?? err}`);
    process.exit(1);
  }
}
