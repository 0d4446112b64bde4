// D1: one filter. The padded input with the window, the window's patch x filter = products,
// their sum plus the bias, and the filter's activation map filling in.

import {h} from "../../dom.js";
import {crispCanvas, extent, fmt, grey, item, legend, numberGrid, rgb, signedColour, volumeText} from "../../draw.js";
import {clamp} from "../../util.js";
import {geometry, track, windowAt} from "./geometry.js";
import {outputRange, paintInput, paintMap} from "./paint.js";

export function neuronGraphic() {
  return h("span", {class: "neuron", "aria-hidden": "true"}, "Σ", h("small", {}, "wx + b"));
}

/** The D1 panel (and s.parts: its canvases, the grids and the equation). */
export function buildSingle(s) {
  const g = geometry(s);
  const pitch = clamp(Math.floor(280 / (Math.max(g.W, g.H) + 2 * g.P)), 3, 16);
  const mapPitch = clamp(Math.floor(216 / Math.max(g.outW, g.outH, 1)), 2, 18);
  const input = crispCanvas((g.W + 2 * g.P) * pitch, (g.H + 2 * g.P) * pitch, {
    tabindex: 0,
    class: "conv-input",
    role: "img",
    "aria-label": "input with zero padding; arrow keys move the window",
  });
  const map = crispCanvas(Math.max(1, g.outW) * mapPitch, Math.max(1, g.outH) * mapPitch, {
    tabindex: 0,
    class: "conv-map",
    role: "img",
    "aria-label": "activation map; arrow keys move the marker",
  });
  track(s, input.canvas, (mx, my) => windowAt(s, Math.floor(mx / pitch), Math.floor(my / pitch)));
  track(s, map.canvas, (mx, my) => [Math.floor(mx / mapPitch), Math.floor(my / mapPitch)]);
  s.parts = {
    input: {...input, pitch},
    map: {...map, pitch: mapPitch},
    grids: h("div", {class: "conv-grids"}),
    equation: h("div", {class: "conv-equation", "aria-live": "polite"}),
  };
  const inputCaption =
    `${s.fromImage ? "input image" : `input: layer ${s.layer.index - 1}'s maps`} ` +
    `${volumeText(s.layer.in_volume)}` +
    (g.P ? `, zero padding ${g.P} (hatched)` : ", no padding");
  const range = outputRange(s);
  return h(
    "div",
    {class: "conv-single"},
    h(
      "figure",
      {},
      h("figcaption", {}, inputCaption),
      input.canvas,
      legend(s.data.inputRange.min, s.data.inputRange.max, s.fromImage ? "pixel value" : "value"),
    ),
    h(
      "figure",
      {class: "conv-middle"},
      h("figcaption", {}, `window ${s.p.sx}x${s.p.sy} at output (x, y)`),
      s.parts.grids,
      h("div", {class: "conv-result"}, neuronGraphic(), s.parts.equation),
    ),
    h(
      "figure",
      {},
      h("figcaption", {}, `activation map of filter ${s.view.filter} (${g.outW}x${g.outH})`),
      map.canvas,
      legend(range.min, range.max, "whole layer"),
    ),
  );
}

export function paintSingle(s) {
  const {input, map} = s.parts;
  input.context.clearRect(0, 0, input.canvas.width, input.canvas.height);
  paintInput(s, input.context, 0, 0, input.pitch, 3);
  paintMap(s, map.context, 0, 0, map.pitch, s.view.filter);
  map.canvas.dataset.marker = `${s.view.x},${s.view.y}`;
}

/** The patch, filter and products grids of the current step, for the chosen input channel. */
function stepGrids(s, step) {
  const {W, H} = geometry(s);
  const [depth, fy, fx] = step.patch.shape;
  const c = Math.min(s.view.channel, depth - 1);
  const patch = item(step.patch, c).data;
  const products = item(step.products, c).data;
  const weights = item(step.weights, c).data;
  const filterRange = extent(step.weights.data);
  const maxProduct = Math.max(...Array.from(step.products.data, Math.abs));
  const cell = clamp(Math.floor(170 / Math.max(fx, fy)), 10, 34);
  const padded = (i) => {
    const x = step.window.x0 + (i % fx);
    const y = step.window.y0 + Math.floor(i / fx);
    return x < 0 || y < 0 || x >= W || y >= H;
  };
  const channelNote = depth > 1 ? ` (channel ${c})` : "";
  const grid = (title, values, colourAt, extra = {}) =>
    h(
      "figure",
      {class: "grid"},
      h("figcaption", {}, title + channelNote),
      numberGrid(values, fx, fy, {
        cell,
        colourAt,
        numbers: cell >= 30,
        label: `${title}: ${Array.from(values, (v) => fmt(v)).join(" ")}`,
        ...extra,
      }),
    );
  const inRange = s.data.inputRange;
  return [
    grid("patch", patch, (i) => Array(3).fill(grey(patch[i], inRange.min, inRange.max)), {padded}),
    h("span", {class: "op-sign", "aria-hidden": "true"}, "×"),
    grid(`filter ${s.view.filter}`, weights, (i) => Array(3).fill(grey(weights[i], filterRange.min, filterRange.max))),
    h("span", {class: "op-sign", "aria-hidden": "true"}, "="),
    grid(
      depth > 1 ? `products: subtotal ${fmt(step.subtotals[c], 3)}` : "products",
      products,
      (i) => signedColour(products[i], maxProduct),
    ),
  ];
}

/** Each input channel's subtotal of the products, which add up to the sum (the channel whose
 * grids are shown is marked). */
function channelSubtotals(s, step) {
  const shown = Math.min(s.view.channel, step.subtotals.length - 1);
  return h(
    "div",
    {class: "conv-subtotals", "aria-label": "subtotal of the products of each input channel"},
    h("span", {class: "muted"}, "per channel: "),
    step.subtotals.map((v, c) => [
      c ? " + " : "",
      h(
        "span",
        {class: c === shown ? "subtotal shown" : "subtotal", "data-channel": c, "data-value": String(v)},
        `c${c} ${fmt(v, 3)}`,
      ),
    ]),
    ` = ${fmt(step.sum, 3)}`,
  );
}

/** Σ products + bias = output, with its grey level and the input window it reads. */
function stepEquation(s, step) {
  const [depth, fy, fx] = step.patch.shape;
  const range = outputRange(s);
  const level = grey(step.output, range.min, range.max);
  const count = fx * fy * depth;
  return [
    h(
      "div",
      {class: "conv-sum"},
      `Σ products = ${fmt(step.sum, 3)}`,
      h("span", {class: "muted"}, depth > 1 ? ` (${count} products over ${depth} channels)` : ` (${count} products)`),
    ),
    depth > 1 ? channelSubtotals(s, step) : null,
    h("div", {}, `+ bias ${fmt(step.bias, 3)}`),
    h(
      "div",
      {class: "conv-output"},
      `= ${fmt(step.output, 3)} `,
      h("span", {
        class: "swatch big",
        style: {background: rgb([level, level, level])},
        title: "its grey level on the map",
      }),
    ),
    h(
      "div",
      {class: "muted small"},
      `output (${s.view.x}, ${s.view.y}) ← input columns ${step.window.x0}…` +
        `${step.window.x0 + fx - 1}, rows ${step.window.y0}…${step.window.y0 + fy - 1}`,
    ),
  ];
}

/** Show the current step's arithmetic (D1: grids and equation; D2: the equation). */
export function showStep(s) {
  const step = s.view.step;
  if (!step || !s.parts.equation) return;
  s.parts.grids?.replaceChildren(...stepGrids(s, step));
  s.parts.equation.replaceChildren(...stepEquation(s, step).filter(Boolean));
}
