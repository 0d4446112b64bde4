// A drawing pad for digits (mouse, pen or touch). The server prepares a drawing as the model's
// data asks (for MNIST: the digit centred as MNIST's were, convscope.images.fit_prepared).

import {h} from "./dom.js";

const SENT = 84; // a drawing is sent as 84x84 grey bytes (3x MNIST's 28: the server centres it)
const PAD_LABEL = "Drawing pad: draw a digit with the mouse, a pen or a finger";

/**
 * A pad with a thick white brush on black (MNIST's polarity). `onDraw(final)` is called
 * while drawing (final = false) and when a stroke ends (final = true); pixels() returns the
 * drawing as {width, height, depth, data} (84x84 grey bytes, as drawn) or null while it is empty;
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
    pixels: () => {
      const drawn = boxScaled(context.getImageData(0, 0, size, size), SENT);
      return drawn.data.some((v) => v > 0) ? drawn : null;
    },
    scaled: (side) => boxScaled(context.getImageData(0, 0, size, size), side),
    /** Paint grey `pixels` ({width, height, depth: 1, data}, e.g. a drawing reopened from a
     * link) over the whole pad. */
    show(pixels) {
      const small = h("canvas", {width: pixels.width, height: pixels.height});
      const image = small.getContext("2d").createImageData(pixels.width, pixels.height);
      pixels.data.forEach((v, i) => image.data.set([v, v, v, 255], 4 * i));
      small.getContext("2d").putImageData(image, 0, 0);
      context.drawImage(small, 0, 0, size, size);
    },
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
