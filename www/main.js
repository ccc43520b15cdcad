// G2D demo page: regenerate the classifier in a worker, draw digits, try an FGSM attack.
// No framework; ids in index.html are also what tests/e2e/demo.test.mjs reads.

const $ = (id) => document.getElementById(id);

// The bundle's input: channels × rows × cols values per image (MNIST: 1 × 28 × 28), set from
// info() once the bundle is loaded.
let shape = { channels: 1, rows: 28, cols: 28 };
const pixelsPerImage = () => shape.channels * shape.rows * shape.cols;
const blankImage = () => new Float32Array(pixelsPerImage());

let g2d = null; // G2DWorker once loaded
let info = null;
let busy = false; // a regeneration is running
let generation = 0; // finished regenerations, exposed for tests as #status[data-generation]

// ---------------------------------------------------------------- status & formatting

function setStatus(text) {
  $("status").textContent = text;
}

function message(text) {
  $("message").textContent = text;
}

function showError(err) {
  console.error(err);
  setStatus(`error: ${err?.message ?? err}`);
}

const percent = (fraction) => (fraction * 100).toFixed(2);
const distance = (x) => (Number.isFinite(x) ? Number(x).toPrecision(5) : String(x));
const argmax = (xs) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

// ---------------------------------------------------------------- regeneration

function updateButtons() {
  $("regenerate").disabled = !g2d || busy;
  $("cancel").disabled = !busy;
  const haveSamples = info?.sampleLabels?.length > 0;
  $("attack-pick").disabled = !g2d || !haveSamples;
  $("attack-run").disabled = !g2d || !haveSamples;
}

function showInfo(i) {
  $("backend").textContent = i.backend;
  // The reason matters mostly when WebGPU was wanted but we ended up on the CPU.
  $("backend-reason").textContent = i.backend === "cpu" && i.backendReason ? `(${i.backendReason})` : "";
  $("adapter").textContent = i.adapter || "–";
  // Set by the worker from GPUAdapterInfo: e.g. SwiftShader when the browser has no usable GPU.
  $("adapter-fallback").textContent = i.fallbackAdapter === true ? "(software\u00a0fallback)" : "";
  $("original-val-accuracy").textContent = percent(i.originalValAccuracy);
  $("arch").textContent = i.arch;
  $("dataset").textContent = i.dataset;
  $("param-count").textContent = i.paramCount.toLocaleString("en-US");
  $("tensors").textContent = i.regeneratedTensors.join(", ");
  // Stored as f32: 0.05 arrives as 0.05000000074505806.
  $("lambda").textContent = String(Number(Number(i.lambda).toPrecision(6)));
  $("sampler").textContent = i.sampler;
  $("steps").textContent = String(i.steps);
  $("val-size").textContent = String(i.valSize);
}

function showResult(r, wallMs) {
  $("backend").textContent = r.backend;
  if (r.backend !== "cpu") $("backend-reason").textContent = "";
  $("ms").textContent = String(Math.round(r.ms ?? wallMs));
  $("val-accuracy").textContent = percent(r.valAccuracy);
  $("original-val-accuracy").textContent = percent(r.originalValAccuracy);
  $("l1").textContent = distance(r.l1ToOriginal);
  $("l2").textContent = distance(r.l2ToOriginal);
  const accepted = $("accepted");
  accepted.textContent = r.accepted ? "yes" : "no";
  accepted.className = `badge ${r.accepted ? "yes" : "no"}`;
  const of = `${r.acceptedCandidates} of ${r.candidates} candidates passed`;
  $("accepted-note").textContent = r.accepted ? `installed (${of})` : `rejected (${of}); previous weights kept`;
  $("sampler").textContent = r.sampler;
  $("steps").textContent = String(r.steps);
}

function showProgress(step, total) {
  $("progress").value = total > 0 ? step / total : 0;
  $("progress-text").textContent = total > 0 ? `${step} / ${total}` : "";
}

async function regenerate() {
  if (!g2d || busy) return;
  busy = true;
  updateButtons();
  setStatus("regenerating…");
  message("");
  showProgress(0, 0);
  // No seed: the wasm draws the noise from the browser's CSPRNG, so nobody holding the public
  // bundle can reproduce this visitor's weights.
  const t0 = performance.now();
  try {
    const result = await g2d.regenerate({ onProgress: showProgress });
    showResult(result, performance.now() - t0);
    if (result.backend !== info?.backend) {
      // The WebGPU device was lost and the instance moved to the CPU: say why.
      info = await g2d.info();
      showInfo(info);
    }
    generation += 1;
    $("status").dataset.generation = String(generation);
    setStatus("ready");
    // The weights may have changed: refresh what was classified with the old ones.
    classifyDrawing();
    if (adversarial) classifyAdversarial();
  } catch (err) {
    if (err?.name === "AbortError") {
      message("Regeneration cancelled; the previous weights are still in place.");
      setStatus(generation > 0 ? "ready" : "cancelled");
    } else {
      showError(err);
    }
  } finally {
    busy = false;
    showProgress(0, 0);
    updateButtons();
  }
}

// ---------------------------------------------------------------- drawing

const canvas = $("canvas");
const ctx = canvas.getContext("2d", { willReadFrequently: true });
// Pen width: about MNIST's 2–3 px strokes once a digit is scaled into its 20×20 box.
const STROKE = 22;
let strokeFrom = null; // last pointer position while drawing
let hasInk = false;

function clearDrawing() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  hasInk = false;
  $("prediction").textContent = "–";
  drawPixels($("preview"), blankImage());
  showProbabilities(null);
}

function pointerPosition(event) {
  const rect = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left) * canvas.width) / rect.width,
    y: ((event.clientY - rect.top) * canvas.height) / rect.height,
  };
}

function strokeTo(p) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = STROKE;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(strokeFrom.x, strokeFrom.y);
  ctx.lineTo(p.x, p.y);
  ctx.stroke();
  strokeFrom = p;
  hasInk = true;
}

canvas.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  strokeFrom = pointerPosition(event);
  // A click leaves a dot (a zero-length line may draw nothing).
  ctx.fillStyle = "#fff";
  ctx.beginPath();
  ctx.arc(strokeFrom.x, strokeFrom.y, STROKE / 2, 0, 2 * Math.PI);
  ctx.fill();
  hasInk = true;
});

canvas.addEventListener("pointermove", (event) => {
  if (!strokeFrom) return;
  strokeTo(pointerPosition(event));
  classifyDrawing();
});

for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (!strokeFrom) return;
    strokeFrom = null;
    classifyDrawing();
  });
}

$("clear").addEventListener("click", clearDrawing);

// Area-average resampling weights: output cell j of `dn` covers input cells
// [j·sn/dn, (j+1)·sn/dn) of `sn`, each weighted by how much of it is covered.
function coverage(sn, dn) {
  const ratio = sn / dn;
  const cells = [];
  for (let j = 0; j < dn; j++) {
    const a = j * ratio;
    const b = (j + 1) * ratio;
    const taps = [];
    for (let i = Math.floor(a); i < Math.min(sn, Math.ceil(b)); i++) {
      const w = Math.min(b, i + 1) - Math.max(a, i);
      if (w > 0) taps.push([i, w / ratio]);
    }
    cells.push(taps);
  }
  return cells;
}

function resize(src, sw, sh, dw, dh) {
  const cols = coverage(sw, dw);
  const rows = coverage(sh, dh);
  const wide = new Float32Array(dw * sh); // horizontal pass
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < dw; x++) {
      let v = 0;
      for (const [i, w] of cols[x]) v += src[y * sw + i] * w;
      wide[y * dw + x] = v;
    }
  }
  const out = new Float32Array(dw * dh); // vertical pass
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) {
      let v = 0;
      for (const [i, w] of rows[y]) v += wide[i * dw + x] * w;
      out[y * dw + x] = v;
    }
  }
  return out;
}

// MNIST's preprocessing at the bundle's size: crop to the ink's bounding box, scale it to fit
// 20/28 of the image (keeping the aspect ratio), then place it so its center of mass is in the
// middle. A colour model gets the grey drawing in each of its channels.
function drawingToInput() {
  const { width: W, height: H } = canvas;
  const rgba = ctx.getImageData(0, 0, W, H).data;
  let minX = W, minY = H, maxX = -1, maxY = -1;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (rgba[(y * W + x) * 4] > 12) {
        if (x < minX) minX = x;
        if (x > maxX) maxX = x;
        if (y < minY) minY = y;
        if (y > maxY) maxY = y;
      }
    }
  }
  if (maxX < 0) return null;

  const bw = maxX - minX + 1;
  const bh = maxY - minY + 1;
  const crop = new Float32Array(bw * bh);
  for (let y = 0; y < bh; y++) {
    for (let x = 0; x < bw; x++) crop[y * bw + x] = rgba[((y + minY) * W + x + minX) * 4] / 255;
  }
  const { channels, rows, cols } = shape;
  const scale = (20 / 28) * Math.min(rows / bh, cols / bw);
  const tw = Math.max(1, Math.round(bw * scale));
  const th = Math.max(1, Math.round(bh * scale));
  const small = resize(crop, bw, bh, tw, th);

  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      const v = small[y * tw + x];
      mass += v;
      mx += v * (x + 0.5);
      my += v * (y + 0.5);
    }
  }
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const ox = clamp(Math.round(cols / 2 - mx / mass), 0, cols - tw);
  const oy = clamp(Math.round(rows / 2 - my / mass), 0, rows - th);

  const out = new Float32Array(pixelsPerImage());
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        out[(c * rows + y + oy) * cols + x + ox] = clamp(small[y * tw + x], 0, 1);
      }
    }
  }
  return out;
}

// One classification in flight at a time; strokes made meanwhile trigger one more.
let classifying = false;
let classifyAgain = false;

async function classifyDrawing() {
  if (!g2d || !hasInk) return;
  if (classifying) {
    classifyAgain = true;
    return;
  }
  classifying = true;
  try {
    do {
      classifyAgain = false;
      const pixels = drawingToInput();
      if (!pixels) break;
      drawPixels($("preview"), pixels);
      const probs = await g2d.classify(pixels);
      if (!hasInk) break; // cleared while we waited
      $("prediction").textContent = String(argmax(probs));
      showProbabilities(probs);
    } while (classifyAgain);
  } catch (err) {
    console.error(err);
    message(`Classification failed: ${err?.message ?? err}`);
  } finally {
    classifying = false;
  }
}

function buildProbabilityBars(classes) {
  const list = $("probs");
  list.replaceChildren();
  for (let d = 0; d < classes; d++) {
    const li = document.createElement("li");
    li.innerHTML = `<span>${d}</span><span class="bar"><span class="fill"></span></span><span class="pct">–</span>`;
    list.append(li);
  }
}

function showProbabilities(probs) {
  const top = probs ? argmax(probs) : -1;
  [...$("probs").children].forEach((li, d) => {
    const p = probs ? probs[d] : 0;
    li.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
    li.querySelector(".pct").textContent = probs ? `${(p * 100).toFixed(1)}%` : "–";
    li.classList.toggle("top", d === top);
  });
}

// Paint one input image (channels × rows × cols values in [0, 1], channel by channel: grey,
// or red, green and blue) onto a canvas of its size.
function drawPixels(target, pixels) {
  const { channels, rows, cols } = shape;
  const plane = rows * cols;
  target.width = cols;
  target.height = rows;
  const c = target.getContext("2d");
  const img = c.createImageData(cols, rows);
  const byte = (v) => Math.round(Math.min(1, Math.max(0, v)) * 255);
  for (let i = 0; i < plane; i++) {
    const rgb = [0, 1, 2].map((k) => byte(pixels[Math.min(k, channels - 1) * plane + i]));
    img.data.set([...rgb, 255], i * 4);
  }
  c.putImageData(img, 0, 0);
}

// Size the page to the bundle's input: the probability bars, the preview's caption and size,
// and the drawing card's title (digits for MNIST-shaped bundles).
function fitToBundle(i) {
  const [rows, cols] = i.imageShape;
  shape = { channels: i.channels, rows, cols };
  buildProbabilityBars(i.classes);
  const size = `${rows}×${cols}${i.channels > 1 ? `×${i.channels}` : ""}`;
  $("preview-label").textContent = `${size} input`;
  const digits = i.classes === 10 && i.channels === 1 && /^mnist/.test(i.dataset);
  $("draw-title").textContent = digits ? "Draw a digit" : "Draw an input";
  $("attack-pick").textContent = `Pick a validation ${digits ? "digit" : "image"}`;
  for (const id of ["preview", "attack-clean", "attack-adv"]) drawPixels($(id), blankImage());
}

// ---------------------------------------------------------------- attack

let sample = null; // {image: Float32Array, label: number, index: number}
let adversarial = null; // Float32Array crafted from `sample`

function pickSample() {
  const count = info.sampleLabels.length;
  // Avoid showing the same digit twice in a row when there is a choice.
  let index = Math.floor(Math.random() * count);
  if (count > 1 && sample && index === sample.index) index = (index + 1) % count;
  sample = {
    index,
    image: info.sampleImages.slice(index * pixelsPerImage(), (index + 1) * pixelsPerImage()),
    label: info.sampleLabels[index],
  };
  adversarial = null;
  drawPixels($("attack-clean"), sample.image);
  drawPixels($("attack-adv"), blankImage());
  $("attack-label").textContent = String(sample.label);
  $("attack-eps").textContent = "–";
  for (const who of ["original", "regenerated"]) showAttackResult(who, null);
}

function showAttackResult(who, probs) {
  const box = $(`attack-${who}-box`);
  if (!probs) {
    $(`attack-${who}`).textContent = "–";
    $(`attack-${who}-conf`).textContent = "–";
    box.classList.remove("correct", "fooled");
    return;
  }
  const digit = argmax(probs);
  $(`attack-${who}`).textContent = String(digit);
  $(`attack-${who}-conf`).textContent = (probs[digit] * 100).toFixed(1);
  box.classList.toggle("correct", digit === sample.label);
  box.classList.toggle("fooled", digit !== sample.label);
}

async function classifyAdversarial() {
  try {
    const [original, regenerated] = await Promise.all([
      g2d.classifyOriginal(adversarial),
      g2d.classify(adversarial),
    ]);
    showAttackResult("original", original);
    showAttackResult("regenerated", regenerated);
  } catch (err) {
    console.error(err);
    message(`Classification failed: ${err?.message ?? err}`);
  }
}

async function runAttack() {
  if (!sample) pickSample();
  const epsilon = Number($("epsilon").value);
  $("attack-run").disabled = true;
  try {
    const target = sample;
    const adv = await g2d.fgsm(target.image, [target.label], epsilon);
    if (target !== sample) return; // another digit was picked meanwhile
    adversarial = adv;
    drawPixels($("attack-adv"), adv);
    $("attack-eps").textContent = epsilon.toFixed(2);
    await classifyAdversarial();
  } catch (err) {
    console.error(err);
    message(`Attack failed: ${err?.message ?? err}`);
  } finally {
    updateButtons();
  }
}

$("attack-pick").addEventListener("click", pickSample);
$("attack-run").addEventListener("click", runAttack);
$("epsilon").addEventListener("input", () => {
  $("epsilon-value").textContent = Number($("epsilon").value).toFixed(2);
});

// ---------------------------------------------------------------- start-up

$("regenerate").addEventListener("click", regenerate);
$("cancel").addEventListener("click", () => {
  if (!busy) return;
  message("Cancelling…");
  g2d.cancel();
});

// Why this page cannot run WebGPU, or null when an adapter answers.
async function missingWebGpu() {
  if (!navigator.gpu) return "navigator.gpu is undefined: this browser or context has no WebGPU";
  try {
    if (await navigator.gpu.requestAdapter()) return null;
  } catch (err) {
    return `navigator.gpu.requestAdapter() failed: ${err?.message ?? err}`;
  }
  return "no WebGPU adapter answered (navigator.gpu.requestAdapter() gave none)";
}

async function main() {
  buildProbabilityBars(10);
  clearDrawing();
  updateButtons();
  setStatus("loading…");
  let G2DWorker;
  try {
    ({ G2DWorker } = await import("./pkg/worker-client.js"));
  } catch (err) {
    throw new Error(`could not load ./pkg/ (build it with pkg-config/build.sh --out www/pkg): ${err.message}`);
  }
  // ?bundle=NAME.g2d loads another bundle served beside the page (the tests use a fixture).
  const bundle = new URLSearchParams(location.search).get("bundle") || "default.g2d";
  // The demo shows regeneration on WebGPU, so it asks for WebGPU even where the only adapter is
  // a software one (the package's "auto" would take the CPU there), and takes the CPU when the
  // browser has no WebGPU adapter at all. ?backend=auto|webgpu|cpu overrides.
  const requested = new URLSearchParams(location.search).get("backend") || "webgpu";
  const create = (backend) =>
    G2DWorker.create(
      new URL(`./${encodeURIComponent(bundle)}`, import.meta.url),
      { backend },
      new URL("./pkg/worker.js", import.meta.url),
    );
  // Without an adapter the WebGPU module cannot run: take the CPU (and its smaller module)
  // straight away instead of fetching the larger one to find out.
  let noWebGpu = requested === "webgpu" ? await missingWebGpu() : null;
  try {
    g2d = await create(noWebGpu ? "cpu" : requested);
  } catch (err) {
    if (requested !== "webgpu" || err?.code !== "BACKEND_UNAVAILABLE") throw err;
    noWebGpu = err.message;
    g2d = await create("cpu");
  }
  info = await g2d.info();
  if (noWebGpu) info = { ...info, backendReason: `no WebGPU here: ${noWebGpu}` };
  showInfo(info);
  fitToBundle(info);
  if (!(info.sampleLabels?.length > 0)) message("This bundle has no sample images; the attack panel is disabled.");
  updateButtons();
  await regenerate();
}

main().catch(showError);
