// Shared drawing helpers, following the chapter demos' conventions (seed-demos.md 2.1.3):
// grey levels floor(255 (v - min) / (max - min)) with min-max per filter or over a whole layer,
// grey for 1 channel, RGB for 3, fc rows reshaped to squares, nearest-neighbour scaling.

import {h} from "./dom.js";
import {clamp} from "./util.js";

export const volumeText = (v) => `${v.sx}x${v.sy}x${v.depth}`;

/** "conv 5x5 x8 s1 p2 → 24x24x8": type, hyperparameters and output volume. */
export const layerTitle = (layer) => `${layer.label} → ${volumeText(layer.out_volume)}`;

/** Two decimals, without a "-0.00". */
export function fmt(value, digits = 2) {
  const text = value.toFixed(digits);
  return Number(text) === 0 ? (0).toFixed(digits) : text;
}

/** Depth, height and width of a [D, H, W] tensor ([H, W] is one map, [D] is D maps of 1x1). */
export function dims(tensor) {
  const [depth, height = 1, width = 1] = tensor.shape.length === 2 ? [1, ...tensor.shape] : tensor.shape;
  return {depth, height, width, size: height * width};
}

/** Item `i` along the first axis: a filter of [F, D, H, W] weights, a map of [D, H, W]. */
export function item(tensor, i) {
  const shape = tensor.shape.slice(1);
  const size = shape.reduce((a, b) => a * b, 1);
  return {shape, data: tensor.data.subarray(i * size, (i + 1) * size)};
}

export function extent(values) {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return {min, max};
}

/** The chapter's grey level; a flat range draws mid-grey. */
export function grey(v, min, max) {
  if (!(max > min)) return 127;
  return clamp(Math.floor((255 * (v - min)) / (max - min)), 0, 255);
}

const NEGATIVE = [178, 24, 43];
const POSITIVE = [33, 102, 172];

/** Diverging colour for signed contributions: red below zero, blue above, white at zero. */
export function signedColour(v, maxAbs) {
  const t = maxAbs > 0 ? Math.min(1, Math.abs(v) / maxAbs) : 0;
  const end = v < 0 ? NEGATIVE : POSITIVE;
  return end.map((c) => Math.round(255 + (c - 255) * t));
}

/** WCAG relative luminance of an [r, g, b] colour (0-255 channels). */
export function luminance([r, g, b]) {
  const linear = (c) => (c / 255 <= 0.04045 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4);
  return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
}

/** WCAG contrast ratio of two [r, g, b] colours (1 to 21). */
export function contrast(one, other) {
  const [a, b] = [luminance(one), luminance(other)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}

/** `colour` at `alpha` over `under` (default white), as an opaque [r, g, b]. */
export const blend = (colour, alpha, under = [255, 255, 255]) =>
  colour.map((c, i) => Math.round(under[i] + (c - under[i]) * alpha));

/** Black or white text, whichever has the higher WCAG contrast on an [r, g, b] background
 * (at least 4.58:1 on any colour: pure black and white are needed for that). */
export const inkOn = (colour) => (contrast(colour, [0, 0, 0]) >= contrast(colour, [255, 255, 255]) ? "#000" : "#fff");

export const rgb = ([r, g, b], alpha = 1) => `rgba(${r}, ${g}, ${b}, ${alpha})`;

/** A canvas of width x height pixels shown at `scale` CSS px per pixel (nearest neighbour). */
export function pixelCanvas(width, height, scale, attrs = {}) {
  const canvas = h("canvas", {width, height, class: "pixelated", ...attrs});
  canvas.style.width = `${width * scale}px`;
  canvas.style.height = `${height * scale}px`;
  return canvas;
}

/**
 * Paint a [D, H, W] image into a canvas of its own size: RGB from channels 0-2 when it has 3
 * channels (and `channel` is null), otherwise channel `channel` (default 0) in grey.
 * Values that are NaN (padding of a reshaped fc row) are left transparent.
 */
export function paintTensor(canvas, tensor, {min, max, channel = null}) {
  const {depth, height, width, size} = dims(tensor);
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const colour = depth === 3 && channel === null;
  const data = tensor.data;
  const base = (channel ?? 0) * size;
  for (let i = 0; i < size; i++) {
    const v = data[base + i];
    if (Number.isNaN(v)) continue;
    const o = 4 * i;
    if (colour) {
      image.data[o] = grey(data[i], min, max);
      image.data[o + 1] = grey(data[size + i], min, max);
      image.data[o + 2] = grey(data[2 * size + i], min, max);
    } else {
      image.data[o] = image.data[o + 1] = image.data[o + 2] = grey(v, min, max);
    }
    image.data[o + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

/** A new pixel canvas showing `tensor` (see paintTensor); min/max default to its own range. */
export function tensorCanvas(tensor, {scale = 1, channel = null, min, max, ...attrs} = {}) {
  const {height, width, size} = dims(tensor);
  const shown = channel === null ? tensor.data : tensor.data.subarray(channel * size, (channel + 1) * size);
  const range = min === undefined ? extent(shown) : {min, max};
  // Every drawn tensor has an accessible name: the caller's, else its title, size and range.
  const what = tensor.shape.length === 3 && tensor.shape[0] === 3 && channel === null ? "colour image" : "grey map";
  const label =
    attrs["aria-label"] ??
    `${attrs.title ? `${attrs.title}: ` : ""}${width}x${height} ${what}, values ${fmt(range.min)} to ${fmt(range.max)}`;
  const canvas = pixelCanvas(width, height, scale, {role: "img", ...attrs, "aria-label": label});
  return paintTensor(canvas, tensor, {...range, channel});
}

/**
 * Shape a weight row for display: images ([D, H, W] with H, W > 1) stay as they are; a vector
 * ([D, 1, 1], an fc row on a 1x1xD input) becomes a grey square, NaN-padded (seed: sqrt(D)).
 */
export function asImage(tensor) {
  const {depth, height, width} = dims(tensor);
  if (height > 1 || width > 1) return tensor;
  const side = Math.ceil(Math.sqrt(depth));
  const data = new Float32Array(side * side).fill(NaN);
  data.set(tensor.data);
  return {shape: [1, side, side], data};
}

/** A colour legend: the grey ramp with the values its ends stand for. */
export function legend(min, max, caption = "") {
  return h(
    "div",
    {class: "legend", "aria-label": `${caption} grey scale from ${fmt(min)} (black) to ${fmt(max)} (white)`},
    caption ? h("span", {class: "legend-caption"}, caption) : null,
    h("span", {class: "legend-value"}, fmt(min)),
    h("span", {class: "legend-ramp"}),
    h("span", {class: "legend-value"}, fmt(max)),
  );
}

/** A canvas sized in CSS pixels and drawn at the screen's resolution. */
export function crispCanvas(cssWidth, cssHeight, attrs = {}) {
  const ratio = window.devicePixelRatio || 1;
  const canvas = h("canvas", {
    width: Math.round(cssWidth * ratio),
    height: Math.round(cssHeight * ratio),
    ...attrs,
  });
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  const context = canvas.getContext("2d");
  context.scale(ratio, ratio);
  return {canvas, context};
}

/**
 * Horizontal bars, one per value, with names. Signed values grow from a zero line;
 * `format` writes the number shown at the end of each bar; the largest value is highlighted.
 */
export function barChart(values, names, {format = fmt, caption = ""} = {}) {
  const list = Array.from(values);
  const min = Math.min(0, ...list);
  const max = Math.max(0, ...list);
  const span = max - min || 1;
  const zero = (-min / span) * 100;
  const best = list.indexOf(Math.max(...list));
  return h(
    "div",
    {class: "bars", role: "list", "aria-label": caption},
    list.map((v, i) => {
      const left = v < 0 ? zero + (v / span) * 100 : zero;
      const width = (Math.abs(v) / span) * 100;
      return h(
        "div",
        {class: `bar-row${i === best ? " best" : ""}`, role: "listitem"},
        h("span", {class: "bar-name"}, names[i]),
        h(
          "span",
          {class: "bar-track"},
          h("span", {class: "bar-fill", style: {left: `${left}%`, width: `${width}%`}}),
        ),
        h("span", {class: "bar-value"}, format(v)),
      );
    }),
  );
}

let hatchPattern = null;

/** Diagonal hatching that marks zero padding. */
export function hatch(context) {
  if (!hatchPattern) {
    const tile = h("canvas", {width: 6, height: 6});
    const t = tile.getContext("2d");
    t.strokeStyle = "rgba(0, 110, 190, 0.55)";
    t.lineWidth = 1;
    t.beginPath();
    t.moveTo(0, 6);
    t.lineTo(6, 0);
    t.stroke();
    hatchPattern = tile;
  }
  return context.createPattern(hatchPattern, "repeat");
}

/**
 * An enlarged grid of `cols` x `rows` cells: `colourAt(i)` gives each cell's [r, g, b],
 * `padded(i)` marks cells in the zero padding (hatched); with `numbers`, each cell shows
 * its value. Returns the canvas.
 */
export function numberGrid(values, cols, rows, {cell, colourAt, padded = () => false, numbers, label}) {
  const {canvas, context} = crispCanvas(cols * cell + 1, rows * cell + 1, {role: "img", "aria-label": label});
  context.fillStyle = "#7f7f7f";
  context.fillRect(0, 0, cols * cell + 1, rows * cell + 1);
  context.font = `${Math.max(9, Math.floor(cell / 3.4))}px ui-monospace, monospace`;
  context.textAlign = "center";
  context.textBaseline = "middle";
  for (let i = 0; i < cols * rows; i++) {
    const x = (i % cols) * cell + 1;
    const y = Math.floor(i / cols) * cell + 1;
    const colour = colourAt(i);
    context.fillStyle = rgb(colour);
    context.fillRect(x, y, cell - 1, cell - 1);
    if (padded(i)) {
      context.fillStyle = hatch(context);
      context.fillRect(x, y, cell - 1, cell - 1);
    }
    if (numbers) {
      context.fillStyle = inkOn(colour);
      context.fillText(fmt(values[i]), x + cell / 2, y + cell / 2);
    }
  }
  return canvas;
}

/** The first `limit` maps of a [D, H, W] tensor as small tiles, grey over the whole layer. */
export function mapRow(tensor, {limit = 16, tile = 48} = {}) {
  const {depth, height, width} = dims(tensor);
  const {min, max} = extent(tensor.data);
  const scale = Math.max(1, Math.floor(tile / Math.max(width, height)));
  return h(
    "div",
    {class: "map-row"},
    Array.from({length: Math.min(depth, limit)}, (_, c) =>
      tensorCanvas(tensor, {channel: c, scale, min, max, title: `map ${c}`}),
    ),
    depth > limit ? h("span", {class: "muted small"}, `+${depth - limit} more`) : null,
  );
}

/** A vector too long for bars, as a grey strip of cells with a readout on hover. */
export function vectorStrip(values, caption) {
  const cols = 32;
  const rows = Math.ceil(values.length / cols);
  const padded = new Float32Array(cols * rows).fill(NaN);
  padded.set(values);
  const {min, max} = extent(values);
  const canvas = paintTensor(
    pixelCanvas(cols, rows, 10, {role: "img", "aria-label": caption}),
    {shape: [1, rows, cols], data: padded},
    {min, max},
  );
  const readout = h("p", {class: "muted small"}, "hover a cell for its value");
  canvas.addEventListener("pointermove", (event) => {
    const box = canvas.getBoundingClientRect();
    const i =
      Math.floor(((event.clientY - box.top) / box.height) * rows) * cols +
      Math.floor(((event.clientX - box.left) / box.width) * cols);
    if (i < values.length) readout.textContent = `${caption} ${i} = ${fmt(values[i], 4)}`;
  });
  return h("div", {}, canvas, legend(min, max), readout);
}
