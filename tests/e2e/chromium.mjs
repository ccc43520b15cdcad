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
