// A drawing pad for digits (mouse, pen or touch) and MNIST-style preprocessing of the drawing.

import {h} from "./dom.js";

const SIDE = 28; // MNIST: the digit's box fitted into 20x20, centred by mass in 28x28
const BOX = 20;
const PAD_LABEL = "Drawing pad: draw a digit with the mouse, a pen or a finger";

/**
 * A pad with a thick white brush on black (MNIST's polarity). `onDraw(final)` is called
 * while drawing (final = false) and when a stroke ends (final = true); pixels() returns the
 * drawing as {width, height, depth, data} (28x28 grey bytes) or null while it is empty;
 * scaled(side) the whole pad averaged down to side x side grey bytes, as drawn (a scene).
 */
export function drawingPad({size = 280, brush = 22, onDraw, label = PAD_LABEL}) {
  const canvas = h("canvas", {
    width: size,
    height: size,
    class: "pad",
    tabindex: 0,
    "aria-label": label,
  });
  const context = canvas.getContext("2d", {willReadFrequently: true}); // read back after every stroke
  let last = null;

  function clear() {
    context.fillStyle = "#000";
    context.fillRect(0, 0, size, size);
  }

  function point(event) {
    const box = canvas.getBoundingClientRect();
    return [((event.clientX - box.left) * size) / box.width, ((event.clientY - box.top) * size) / box.height];
  }

  function stroke(to) {
    context.strokeStyle = context.fillStyle = "#fff";
    context.lineWidth = brush;
    context.lineCap = context.lineJoin = "round";
    context.beginPath();
    context.moveTo(...(last ?? to));
    context.lineTo(...to);
    context.stroke();
    last = to;
  }

  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = null;
    stroke(point(event));
    onDraw(false);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!canvas.hasPointerCapture(event.pointerId)) return;
    stroke(point(event));
    onDraw(false);
  });
  const end = (event) => {
    if (!canvas.hasPointerCapture(event.pointerId)) return;
    canvas.releasePointerCapture(event.pointerId);
    last = null;
    onDraw(true);
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);

  clear();
  return {
    element: canvas,
    clear,
    pixels: () => mnistPixels(context.getImageData(0, 0, size, size)),
    scaled: (side) => boxScaled(context.getImageData(0, 0, size, size), side),
  };
}

/** The red channel of `image` averaged over side x side equal cells (a box filter). */
function boxScaled(image, side) {
  const {width, height, data} = image;
  const sum = new Float32Array(side * side);
  const count = new Float32Array(side * side);
  for (let y = 0; y < height; y++) {
    const row = Math.floor((y * side) / height) * side;
    for (let x = 0; x < width; x++) {
      const i = row + Math.floor((x * side) / width);
      sum[i] += data[4 * (y * width + x)];
      count[i] += 1;
    }
  }
  return {width: side, height: side, depth: 1, data: Array.from(sum, (v, i) => Math.round(v / count[i]))};
}

/** The drawing as MNIST does it: bounding box scaled to 20x20 (box filter), centred by mass. */
function mnistPixels(image) {
  const {width, height, data} = image;
  let top = height,
    left = width,
    bottom = -1,
    right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[4 * (y * width + x)] > 0) {
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
        left = Math.min(left, x);
        right = Math.max(right, x);
      }
    }
  }
  if (bottom < 0) return null;
  const scale = BOX / Math.max(bottom - top + 1, right - left + 1);
  const w = Math.max(1, Math.round((right - left + 1) * scale));
  const hgt = Math.max(1, Math.round((bottom - top + 1) * scale));
  const small = new Float32Array(w * hgt);
  const count = new Float32Array(w * hgt);
  for (let y = top; y <= bottom; y++) {
    for (let x = left; x <= right; x++) {
      const i =
        Math.min(hgt - 1, Math.floor((y - top) * scale)) * w +
        Math.min(w - 1, Math.floor((x - left) * scale));
      small[i] += data[4 * (y * width + x)];
      count[i] += 1;
    }
  }
  let mass = 0,
    cx = 0,
    cy = 0;
  for (let i = 0; i < small.length; i++) {
    small[i] /= count[i] || 1;
    mass += small[i];
    cx += small[i] * (i % w);
    cy += small[i] * Math.floor(i / w);
  }
  const dx = Math.round(SIDE / 2 - 0.5 - cx / mass);
  const dy = Math.round(SIDE / 2 - 0.5 - cy / mass);
  const out = new Array(SIDE * SIDE).fill(0);
  for (let i = 0; i < small.length; i++) {
    const x = (i % w) + dx;
    const y = Math.floor(i / w) + dy;
    if (x >= 0 && x < SIDE && y >= 0 && y < SIDE) out[y * SIDE + x] = Math.round(small[i]);
  }
  return {width: SIDE, height: SIDE, depth: 1, data: out};
}
