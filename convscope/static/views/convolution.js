// D1 and D2: a conv layer's filter sliding over its input. The input is drawn WITH its zero
// padding, so the window at output (x, y) sits exactly on the pixels that produce it (the
// chapter's demo drew it 2 pixels off). Every number comes from POST /conv-step.

import {latestOnly} from "../api.js";
import {h, notice, numberField, selectField} from "../dom.js";
import {
  crispCanvas,
  dims,
  extent,
  fmt,
  grey,
  hatch,
  item,
  layerTitle,
  legend,
  numberGrid,
  rgb,
  signedColour,
  tensorCanvas,
  volumeText,
} from "../draw.js";
import {inputBar} from "../input.js";

const SPEEDS = [
  ["400", "slow"],
  ["120", "medium"],
  ["25", "fast"],
];
const GREEN = "#16a34a";
const RED = "#dc2626";
const EMPTY = [236, 235, 230];
const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Output size along one axis, rounded down as PyTorch and ConvNetJS do. */
export const outSize = (w, f, p, s) => Math.floor((w - f + 2 * p) / s) + 1;

/** "(24 - 5 + 2·2) / 1 + 1 = 24" (with the rounding spelled out when there is one). */
export function sizeFormula(w, f, p, s) {
  const exact = (w - f + 2 * p) / s + 1;
  const result = Number.isInteger(exact)
    ? String(exact)
    : `${Number(exact.toFixed(2))}, rounded down to ${Math.floor(exact)}`;
  return `(${w} - ${f} + 2·${p}) / ${s} + 1 = ${result}`;
}

const DESCRIPTION =
  "The filter slides over every position of its input; at each one, the pixels under the " +
  "window times the weights, summed, plus a bias, give one cell of the activation map. " +
  "Hover the input or the " +
  "map, use the arrow keys, or press Play.";

function neuronGraphic() {
  return h("span", {class: "neuron", "aria-hidden": "true"}, "Σ", h("small", {}, "wx + b"));
}

export async function render(root, ctx) {
  const model = ctx.model;
  const convs = model.layers.filter((l) => l.type === "conv");
  root.append(
    h("header", {class: "view-header"}, h("h2", {}, "Convolution"), h("p", {class: "muted"}, DESCRIPTION)),
  );
  if (!convs.length) {
    root.append(
      notice(`${model.title} has no convolutional layer: see its weights or activation maps instead.`),
    );
    return null;
  }
  const layer = convs.find((l) => l.index === Number(ctx.params.get("layer"))) ?? convs[0];
  const p = layer.params;
  const fromImage = model.layers[layer.index - 1].type === "input";
  const intParam = (key, lo, hi, fallback) => {
    const v = Number.parseInt(ctx.params.get(key), 10);
    return Number.isInteger(v) ? clamp(v, lo, hi) : fallback;
  };
  const view = {
    filter: intParam("filter", 0, p.filters - 1, 0),
    stride: intParam("stride", 1, 8, p.stride),
    pad: intParam("pad", 0, Math.max(p.sx, p.sy), p.pad),
    channel: 0,
    x: 0,
    y: 0,
    all: ctx.params.get("all") === "1",
    computed: new Map(), // "<filter>:<x>,<y>" -> output value from conv-step
    filling: false, // playing from the start: cells appear as they are computed
    playing: false,
    step: null,
    generation: 0, // bumps whenever input or settings change, to drop stale answers
  };
  let data = null;
  let parts = {};

  const own = () => view.stride === p.stride && view.pad === p.pad;
  const geometry = () => {
    const {width: W, height: H} = dims(data.input);
    return {
      W,
      H,
      P: view.pad,
      S: view.stride,
      outW: outSize(W, p.sx, view.pad, view.stride),
      outH: outSize(H, p.sy, view.pad, view.stride),
    };
  };

  // ---- data --------------------------------------------------------------------------------
  async function load() {
    const [activations, weights] = await Promise.all([
      ctx.activations(),
      ctx.api.weights(model.id, layer.index),
    ]);
    const before = activations.layers[layer.index - 1];
    const after = activations.layers[layer.index];
    data = {
      input: before.output,
      inputRange: fromImage ? {min: -0.5, max: 0.5} : {min: before.min, max: before.max},
      output: after.output,
      outputRange: {min: after.min, max: after.max},
      weights: weights.weights,
    };
    resetComputation();
  }

  function resetComputation() {
    view.generation += 1;
    view.computed.clear();
    view.filling = false;
    view.step = null;
    const g = geometry();
    view.x = clamp(view.x, 0, Math.max(0, g.outW - 1));
    view.y = clamp(view.y, 0, Math.max(0, g.outH - 1));
  }

  async function computeStep() {
    const {generation, filter, x, y} = view;
    const body = {...ctx.input, layer: layer.index, filter, x, y, stride: view.stride, pad: view.pad};
    try {
      const step = await ctx.api.convStep(model.id, body, {signal: ctx.signal});
      if (generation !== view.generation) return;
      view.computed.set(`${filter}:${x},${y}`, step.output);
      if (filter === view.filter && x === view.x && y === view.y) view.step = step;
      showStep();
      paint();
    } catch (error) {
      if (error.name !== "AbortError")
        parts.equation?.replaceChildren(h("div", {class: "error", role: "alert"}, error.message));
      view.playing = false;
      updatePlayButton();
    }
  }
  const requestStep = latestOnly(computeStep);

  // ---- colours -----------------------------------------------------------------------------
  function inputColour(x, y) {
    const {W, H} = geometry();
    const {min, max} = data.inputRange;
    if (x < 0 || y < 0 || x >= W || y >= H) return Array(3).fill(grey(0, min, max));
    const size = W * H;
    const i = y * W + x;
    if (fromImage && dims(data.input).depth === 3)
      return [0, 1, 2].map((c) => grey(data.input.data[c * size + i], min, max));
    return Array(3).fill(grey(data.input.data[view.channel * size + i], min, max));
  }

  function outputRange() {
    const computed = extent(view.computed.values());
    return {
      min: Math.min(data.outputRange.min, computed.min),
      max: Math.max(data.outputRange.max, computed.max),
    };
  }

  /** The colour of output cell i of `filter`, and whether it is only a faint preview. */
  function mapCell(filter, i, g, range) {
    const value = view.computed.get(`${filter}:${i % g.outW},${Math.floor(i / g.outW)}`);
    if (value !== undefined) return {colour: Array(3).fill(grey(value, range.min, range.max)), alpha: 1};
    if (!own()) return {colour: EMPTY, alpha: 1};
    const known = data.output.data[filter * g.outW * g.outH + i];
    return {colour: Array(3).fill(grey(known, range.min, range.max)), alpha: view.filling ? 0.22 : 1};
  }

  // ---- painting ----------------------------------------------------------------------------
  function paintInput(context, left, top, pitch, lineWidth) {
    const g = geometry();
    const gap = pitch >= 6 ? 1 : 0;
    const cols = g.W + 2 * g.P;
    const rows = g.H + 2 * g.P;
    context.fillStyle = "#7f7f7f";
    context.fillRect(left, top, cols * pitch, rows * pitch);
    for (let yp = 0; yp < rows; yp++) {
      for (let xp = 0; xp < cols; xp++) {
        context.fillStyle = rgb(inputColour(xp - g.P, yp - g.P));
        context.fillRect(left + xp * pitch, top + yp * pitch, pitch - gap, pitch - gap);
      }
    }
    if (g.P) {
      context.fillStyle = hatch(context);
      const band = g.P * pitch;
      context.fillRect(left, top, cols * pitch, band);
      context.fillRect(left, top + (rows - g.P) * pitch, cols * pitch, band);
      context.fillRect(left, top + band, band, g.H * pitch);
      context.fillRect(left + (cols - g.P) * pitch, top + band, band, g.H * pitch);
    }
    context.strokeStyle = GREEN;
    context.lineWidth = lineWidth;
    context.strokeRect(left + view.x * g.S * pitch, top + view.y * g.S * pitch, p.sx * pitch, p.sy * pitch);
  }

  function paintMap(context, left, top, pitch, filter) {
    const g = geometry();
    const range = outputRange();
    context.fillStyle = "#fff";
    context.fillRect(left, top, g.outW * pitch, g.outH * pitch);
    for (let i = 0; i < g.outW * g.outH; i++) {
      const {colour, alpha} = mapCell(filter, i, g, range);
      context.fillStyle = rgb(colour, alpha);
      context.fillRect(left + (i % g.outW) * pitch, top + Math.floor(i / g.outW) * pitch, pitch, pitch);
    }
    context.strokeStyle = "#555";
    context.lineWidth = 1;
    context.strokeRect(left - 0.5, top - 0.5, g.outW * pitch + 1, g.outH * pitch + 1);
    context.strokeStyle = RED;
    context.lineWidth = Math.max(1, Math.min(2, pitch / 3));
    context.strokeRect(left + view.x * pitch, top + view.y * pitch, pitch, pitch);
  }

  function paintFilter(context, left, top, pitch, filter) {
    const weights = item(data.weights, filter);
    const {depth, height, width, size} = dims(weights);
    const {min, max} = extent(weights.data); // per filter, as the chapter's demos
    const gap = pitch >= 6 ? 1 : 0;
    context.fillStyle = "#7f7f7f";
    context.fillRect(left, top, width * pitch, height * pitch);
    for (let i = 0; i < size; i++) {
      const colour =
        fromImage && depth === 3
          ? [0, 1, 2].map((c) => grey(weights.data[c * size + i], min, max))
          : Array(3).fill(grey(weights.data[view.channel * size + i], min, max));
      context.fillStyle = rgb(colour);
      context.fillRect(
        left + (i % width) * pitch,
        top + Math.floor(i / width) * pitch,
        pitch - gap,
        pitch - gap,
      );
    }
  }

  function paint() {
    if (view.all) paintAll();
    else paintSingle();
  }

  // ---- D1: one filter ----------------------------------------------------------------------
  function buildSingle() {
    const g = geometry();
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
    track(input.canvas, (mx, my) => {
      const cx = Math.floor(mx / pitch);
      const cy = Math.floor(my / pitch);
      return [Math.round((cx - Math.floor(p.sx / 2)) / g.S), Math.round((cy - Math.floor(p.sy / 2)) / g.S)];
    });
    track(map.canvas, (mx, my) => [Math.floor(mx / mapPitch), Math.floor(my / mapPitch)]);
    parts = {
      input: {...input, pitch},
      map: {...map, pitch: mapPitch},
      grids: h("div", {class: "conv-grids"}),
      equation: h("div", {class: "conv-equation", "aria-live": "polite"}),
      swatch: h("span", {class: "swatch big"}),
    };
    const inputCaption =
      `${fromImage ? "input image" : `input: layer ${layer.index - 1}'s maps`} ` +
      `${volumeText(layer.in_volume)}` +
      (g.P ? `, zero padding ${g.P} (hatched)` : ", no padding");
    return h(
      "div",
      {class: "conv-single"},
      h(
        "figure",
        {},
        h("figcaption", {}, inputCaption),
        input.canvas,
        legend(data.inputRange.min, data.inputRange.max, fromImage ? "pixel value" : "value"),
      ),
      h(
        "figure",
        {class: "conv-middle"},
        h("figcaption", {}, `window ${p.sx}x${p.sy} at output (x, y)`),
        parts.grids,
        h("div", {class: "conv-result"}, neuronGraphic(), parts.equation),
      ),
      h(
        "figure",
        {},
        h("figcaption", {}, `activation map of filter ${view.filter} (${g.outW}x${g.outH})`),
        map.canvas,
        legend(outputRange().min, outputRange().max, "whole layer"),
      ),
    );
  }

  function paintSingle() {
    const {input, map} = parts;
    input.context.clearRect(0, 0, input.canvas.width, input.canvas.height);
    paintInput(input.context, 0, 0, input.pitch, 3);
    paintMap(map.context, 0, 0, map.pitch, view.filter);
    map.canvas.dataset.marker = `${view.x},${view.y}`;
  }

  function showStep() {
    const step = view.step;
    if (!step || !parts.equation) return;
    const g = geometry();
    const [depth, fy, fx] = step.patch.shape;
    const c = Math.min(view.channel, depth - 1);
    const patch = item(step.patch, c).data;
    const products = item(step.products, c).data;
    const weights = item(step.weights, c).data;
    const filterRange = extent(step.weights.data);
    const maxProduct = Math.max(...Array.from(step.products.data, Math.abs));
    const cell = clamp(Math.floor(170 / Math.max(fx, fy)), 10, 34);
    const numbers = cell >= 30;
    const padded = (i) => {
      const x = step.window.x0 + (i % fx);
      const y = step.window.y0 + Math.floor(i / fx);
      return x < 0 || y < 0 || x >= g.W || y >= g.H;
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
          numbers,
          label: `${title}: ${Array.from(values, (v) => fmt(v)).join(" ")}`,
          ...extra,
        }),
      );
    const inRange = data.inputRange;
    parts.grids?.replaceChildren(
      grid("patch", patch, (i) => Array(3).fill(grey(patch[i], inRange.min, inRange.max)), {padded}),
      h("span", {class: "op-sign", "aria-hidden": "true"}, "×"),
      grid(`filter ${view.filter}`, weights, (i) =>
        Array(3).fill(grey(weights[i], filterRange.min, filterRange.max)),
      ),
      h("span", {class: "op-sign", "aria-hidden": "true"}, "="),
      grid("products", products, (i) => signedColour(products[i], maxProduct)),
    );
    const range = outputRange();
    const level = grey(step.output, range.min, range.max);
    const count = fx * fy * depth;
    parts.equation.replaceChildren(
      h(
        "div",
        {class: "conv-sum"},
        `Σ products = ${fmt(step.sum, 3)}`,
        h(
          "span",
          {class: "muted"},
          depth > 1 ? ` (${count} products over ${depth} channels)` : ` (${count} products)`,
        ),
      ),
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
        `output (${view.x}, ${view.y}) ← input columns ${step.window.x0}…` +
          `${step.window.x0 + fx - 1}, rows ${step.window.y0}…${step.window.y0 + fy - 1}`,
      ),
    );
  }

  // ---- D2: all filters ---------------------------------------------------------------------
  function buildAll() {
    const g = geometry();
    const width = Math.max(720, Math.min(1240, stage.clientWidth || 1100));
    const inputPitch = clamp(Math.floor(150 / (Math.max(g.W, g.H) + 2 * g.P)), 2, 6);
    const n = p.filters;
    const cols = Math.min(n, Math.max(4, Math.floor(width / 72)));
    const colW = width / cols;
    const filterPitch = clamp(Math.floor(Math.min(64, colW * 0.55) / Math.max(p.sx, p.sy)), 2, 13);
    const mapPitch = clamp(Math.floor((colW - 10) / Math.max(g.outW, g.outH, 1)), 1, 4);
    const inputSize = {w: (g.W + 2 * g.P) * inputPitch, h: (g.H + 2 * g.P) * inputPitch};
    const filterSize = {w: p.sx * filterPitch, h: p.sy * filterPitch};
    const mapSize = {w: g.outW * mapPitch, h: g.outH * mapPitch};
    const firstRow = 10 + inputSize.h + 70;
    const rowH = filterSize.h + 36 + mapSize.h + 26;
    const layout = {
      width,
      inputPitch,
      filterPitch,
      mapPitch,
      inputSize,
      filterSize,
      mapSize,
      firstRow,
      rowH,
      cols,
      colW,
      input: {x: Math.round((width - inputSize.w) / 2), y: 10},
    };
    const height = firstRow + Math.ceil(n / cols) * rowH;
    const drawing = crispCanvas(width, height, {
      tabindex: 0,
      class: "conv-all",
      role: "img",
      "aria-label": `input, all ${n} filters and their activation maps; arrow keys move the window`,
    });
    parts = {
      all: {...drawing, layout, height},
      equation: h("div", {class: "conv-equation", "aria-live": "polite"}),
    };
    track(
      drawing.canvas,
      (mx, my) => positionInAll(layout, mx, my),
      (mx, my) => {
        const filter = filterAt(layout, mx, my);
        if (filter !== null) selectFilter(filter);
      },
    );
    return h(
      "div",
      {class: "conv-all-wrap"},
      drawing.canvas,
      h("div", {class: "conv-result"}, neuronGraphic(), parts.equation),
    );
  }

  const slot = (layout, f) => ({
    cx: Math.round(layout.colW * ((f % layout.cols) + 0.5)), // whole pixels: no seams between cells
    top: layout.firstRow + Math.floor(f / layout.cols) * layout.rowH,
  });

  function positionInAll(layout, mx, my) {
    const g = geometry();
    const {input, inputPitch} = layout;
    if (
      mx >= input.x &&
      my >= input.y &&
      mx < input.x + layout.inputSize.w &&
      my < input.y + layout.inputSize.h
    ) {
      const cx = Math.floor((mx - input.x) / inputPitch);
      const cy = Math.floor((my - input.y) / inputPitch);
      return [Math.round((cx - Math.floor(p.sx / 2)) / g.S), Math.round((cy - Math.floor(p.sy / 2)) / g.S)];
    }
    for (let f = 0; f < p.filters; f++) {
      const {cx, top} = slot(layout, f);
      const left = cx - Math.floor(layout.mapSize.w / 2);
      const mapTop = top + layout.filterSize.h + 36;
      if (mx >= left && my >= mapTop && mx < left + layout.mapSize.w && my < mapTop + layout.mapSize.h) {
        return [Math.floor((mx - left) / layout.mapPitch), Math.floor((my - mapTop) / layout.mapPitch)];
      }
    }
    return null;
  }

  function filterAt(layout, mx, my) {
    for (let f = 0; f < p.filters; f++) {
      const {cx, top} = slot(layout, f);
      if (Math.abs(mx - cx) <= layout.colW / 2 && my >= top && my < top + layout.rowH) return f;
    }
    return null;
  }

  function paintAll() {
    const {context, layout, height} = parts.all;
    const {input, inputSize, filterSize, mapSize} = layout;
    context.clearRect(0, 0, layout.width, height);
    context.strokeStyle = "#222";
    context.lineWidth = 1.5;
    const fromX = input.x + inputSize.w / 2;
    const fromY = input.y + inputSize.h + 2;
    for (let f = 0; f < p.filters; f++) {
      const {cx, top} = slot(layout, f);
      context.beginPath();
      if (top === layout.firstRow) {
        const mid = (fromY + top) / 2;
        context.moveTo(fromX, fromY);
        context.bezierCurveTo(fromX, mid, cx, mid, cx, top - 2);
      }
      context.moveTo(cx, top + filterSize.h + 2);
      context.lineTo(cx, top + filterSize.h + 34);
      context.stroke();
    }
    paintInput(context, input.x, input.y, layout.inputPitch, 2);
    context.font = "12px system-ui, sans-serif";
    context.textAlign = "center";
    for (let f = 0; f < p.filters; f++) {
      const {cx, top} = slot(layout, f);
      paintFilter(context, cx - Math.floor(filterSize.w / 2), top, layout.filterPitch, f);
      context.strokeStyle = f === view.filter ? GREEN : "#222";
      context.lineWidth = f === view.filter ? 3 : 1.5;
      context.strokeRect(cx - Math.floor(filterSize.w / 2) - 1, top - 1, filterSize.w + 2, filterSize.h + 2);
      const mapTop = top + filterSize.h + 36;
      paintMap(context, cx - Math.floor(mapSize.w / 2), mapTop, layout.mapPitch, f);
      context.fillStyle = f === view.filter ? GREEN : "#444";
      context.fillText(`filter ${f}`, cx, mapTop + mapSize.h + 16);
    }
    parts.all.canvas.dataset.marker = `${view.x},${view.y}`;
  }

  // ---- interaction -------------------------------------------------------------------------
  /** Hover, click and arrow keys on a canvas; `at(mx, my)` maps CSS px to an output position. */
  function track(canvas, at, onClick) {
    const locate = (event) => {
      const box = canvas.getBoundingClientRect();
      return [event.clientX - box.left, event.clientY - box.top];
    };
    canvas.addEventListener("pointermove", (event) => {
      const position = at(...locate(event));
      if (position) moveTo(...position, true);
    });
    if (onClick) canvas.addEventListener("click", (event) => onClick(...locate(event)));
    canvas.addEventListener("keydown", (event) => {
      const delta = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]}[event.key];
      if (!delta) return;
      event.preventDefault();
      moveTo(view.x + delta[0], view.y + delta[1], true);
    });
  }

  function moveTo(x, y, byUser) {
    const g = geometry();
    const nx = clamp(x, 0, g.outW - 1);
    const ny = clamp(y, 0, g.outH - 1);
    if (byUser && view.playing) stop();
    if (nx === view.x && ny === view.y) return;
    view.x = nx;
    view.y = ny;
    paint();
    requestStep();
  }

  function selectFilter(f) {
    view.filter = f;
    ctx.setParams({filter: f});
    view.step = null;
    rebuild();
  }

  async function play() {
    const g = geometry();
    view.playing = true;
    updatePlayButton();
    if (!view.filling || (view.x === g.outW - 1 && view.y === g.outH - 1)) {
      view.computed.clear();
      view.filling = true;
      view.x = 0;
      view.y = 0;
    }
    while (view.playing && !ctx.signal.aborted) {
      paint();
      await computeStep();
      await sleep(Number(speed.value));
      if (!view.playing) break;
      if (view.x === g.outW - 1 && view.y === g.outH - 1) break;
      [view.x, view.y] = view.x + 1 < g.outW ? [view.x + 1, view.y] : [0, view.y + 1];
    }
    view.playing = false;
    updatePlayButton();
  }

  function stop() {
    view.playing = false;
    updatePlayButton();
  }

  function stepBy(delta) {
    stop();
    const g = geometry();
    const i = clamp(view.y * g.outW + view.x + delta, 0, g.outW * g.outH - 1);
    moveTo(i % g.outW, Math.floor(i / g.outW), false);
  }

  // ---- controls ----------------------------------------------------------------------------
  const playButton = h(
    "button",
    {type: "button", class: "primary", onclick: () => (view.playing ? stop() : play())},
    "Play",
  );
  function updatePlayButton() {
    playButton.textContent = view.playing ? "Pause" : "Play";
    playButton.setAttribute("aria-pressed", String(view.playing));
  }
  const speed = h(
    "select",
    {"aria-label": "speed"},
    SPEEDS.map(([v, t]) => h("option", {value: v, selected: v === "120"}, t)),
  );
  const allButton = h(
    "button",
    {
      type: "button",
      "aria-pressed": String(view.all),
      onclick: () => {
        view.all = !view.all;
        allButton.setAttribute("aria-pressed", String(view.all));
        ctx.setParams({all: view.all ? 1 : null});
        rebuild();
      },
    },
    "All filters",
  );
  const strip = h("div", {class: "filter-strip", role: "group", "aria-label": "filters"});
  const formula = h("div", {class: "formula", "aria-live": "polite"});
  const channelHolder = h("span");
  const stage = h("div", {class: "conv-stage"});

  const setting = (key, label, lo, hi) =>
    numberField(label, view[key], {
      min: lo,
      max: hi,
      onchange: (input) => {
        const v = Number.parseInt(input.value, 10);
        if (!Number.isInteger(v) || v < lo || v > hi) {
          input.value = view[key];
          return;
        }
        view[key] = v;
        ctx.setParams({[key]: v === p[key] ? null : v});
        stop();
        resetComputation();
        rebuild();
      },
    });

  function fillStrip() {
    const rgbFilters = fromImage && dims(item(data.weights, 0)).depth === 3;
    strip.replaceChildren(
      ...Array.from({length: p.filters}, (_, f) => {
        const weights = item(data.weights, f);
        const thumb = tensorCanvas(weights, {
          scale: Math.max(2, Math.floor(30 / p.sx)),
          channel: rgbFilters ? null : view.channel,
        });
        return h(
          "button",
          {
            type: "button",
            class: "filter-thumb",
            "aria-pressed": String(f === view.filter),
            "aria-label": `filter ${f}`,
            onclick: () => selectFilter(f),
          },
          thumb,
          h("span", {}, String(f)),
        );
      }),
    );
    strip.hidden = view.all;
  }

  function fillChannels() {
    const depth = dims(data.input).depth;
    channelHolder.replaceChildren(
      depth > 1
        ? selectField(
            "Input channel",
            Array.from({length: depth}, (_, c) => [
              c,
              fromImage && depth === 3 ? ["red", "green", "blue"][c] : String(c),
            ]),
            view.channel,
            (v) => {
              view.channel = Number(v);
              rebuild();
            },
          )
        : "",
    );
  }

  function fillFormula() {
    const g = geometry();
    const lines = [
      h(
        "div",
        {},
        h("span", {class: "muted"}, "Output size = (W - F + 2P) / S + 1: "),
        h("strong", {}, sizeFormula(g.W, p.sx, g.P, g.S)),
        g.W === g.H && p.sx === p.sy ? "" : ` wide, ${sizeFormula(g.H, p.sy, g.P, g.S)} high`,
        " → ",
        h(
          "strong",
          {class: "volume"},
          g.outW > 0 && g.outH > 0 ? `${g.outW}x${g.outH}x${p.filters}` : "nothing",
        ),
      ),
    ];
    if (!own()) {
      lines.push(
        h(
          "div",
          {class: "muted"},
          `The trained layer uses stride ${p.stride}, padding ${p.pad} ` +
            `(${volumeText(layer.out_volume)}); the same filter runs here with ` +
            `stride ${g.S}, padding ${g.P}.`,
        ),
      );
    }
    formula.replaceChildren(...lines);
  }

  function rebuild() {
    const g = geometry();
    fillStrip();
    fillChannels();
    fillFormula();
    if (g.outW < 1 || g.outH < 1) {
      stage.replaceChildren(notice("The filter does not fit the padded input with these settings."));
      parts = {};
      return;
    }
    stage.replaceChildren(view.all ? buildAll() : buildSingle());
    paint();
    showStep();
    if (!view.step) requestStep();
  }

  const layerPicker =
    convs.length > 1
      ? selectField(
          "Layer",
          convs.map((l) => [l.index, `${l.index}: ${layerTitle(l)}`]),
          layer.index,
          (v) => ctx.navigate("convolution", {layer: v}),
        )
      : h("span", {class: "layer-name"}, `Layer ${layer.index}: ${layerTitle(layer)}`);
  root.append(
    inputBar(ctx, async () => {
      stop();
      try {
        await load();
        rebuild();
      } catch (error) {
        stage.replaceChildren(h("div", {class: "error", role: "alert"}, error.message));
      }
    }),
    h("div", {class: "toolbar"}, layerPicker, strip, allButton),
    h(
      "div",
      {class: "conv-panel"},
      h(
        "div",
        {class: "toolbar"},
        channelHolder,
        setting("stride", "Stride", 1, 8),
        setting("pad", "Padding", 0, Math.max(p.sx, p.sy)),
        h(
          "button",
          {
            type: "button",
            onclick: () => ctx.navigate("convolution", {layer: layer.index, filter: view.filter}),
          },
          "Layer's own settings",
        ),
        h("span", {class: "spacer"}),
        h("button", {type: "button", "aria-label": "step back", onclick: () => stepBy(-1)}, "◀ Step"),
        playButton,
        h("button", {type: "button", "aria-label": "step forward", onclick: () => stepBy(1)}, "Step ▶"),
        h("label", {class: "field"}, h("span", {}, "Speed"), speed),
      ),
      formula,
      stage,
    ),
  );
  await load();
  rebuild();
  return () => stop();
}
