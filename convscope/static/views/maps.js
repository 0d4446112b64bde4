// D2 + ConvnetViewer: every map of any layer for the current input. Conv layers show each
// filter beside its map; hovering a map enlarges it, labelled "<layer label> - <channel>";
// max-pooling layers mark which input cell won each window; fc and softmax layers are bars.

import {h, notice, percent, selectField, setChildren} from "../dom.js";
import {crispCanvas, dims, extent, fmt, grey, item, layerTitle, legend, rgb, tensorCanvas, volumeText} from "../draw.js";
import {inputChooser, inputRange} from "../input.js";
import {clamp} from "../util.js";
import {mapsComparison} from "../widgets/compare.js";
import {layerOutput} from "../widgets/layer-output.js";
import {topImagesPanel} from "../widgets/top-images.js";

const TILE = 96;
const ZOOM = 208;

/**
 * For each output cell of a max pool over one W x H map: the winning input index and the max.
 * A window whose cells are all equal (common after ReLU: all zero) has no winner (-1).
 */
export function poolWinners(values, W, H, {sx, sy, stride, pad}, outW, outH) {
  const winners = new Int32Array(outW * outH).fill(-1);
  const maxima = new Float32Array(outW * outH).fill(-Infinity);
  for (let oy = 0; oy < outH; oy++) {
    for (let ox = 0; ox < outW; ox++) {
      const o = oy * outW + ox;
      let lowest = Infinity;
      for (let dy = 0; dy < sy; dy++) {
        for (let dx = 0; dx < sx; dx++) {
          const x = ox * stride - pad + dx;
          const y = oy * stride - pad + dy;
          if (x < 0 || y < 0 || x >= W || y >= H) continue; // padding never wins
          const v = values[y * W + x];
          lowest = Math.min(lowest, v);
          if (v > maxima[o]) {
            maxima[o] = v;
            winners[o] = y * W + x;
          }
        }
      }
      if (lowest === maxima[o] && sx * sy > 1) winners[o] = -1;
    }
  }
  return {winners, maxima};
}

/** The layer buttons: `update(index)` marks the selected one; `onSelect(index)` on a click. */
function layerList(model, onSelect) {
  const element = h("nav", {class: "layer-list", "aria-label": "layers"});
  return {
    element,
    update(index) {
      element.replaceChildren(
        ...model.layers.map((layer) =>
          h(
            "button",
            {
              type: "button",
              class: "layer-button",
              "aria-current": layer.index === index ? "true" : null,
              onclick: () => onSelect(layer.index),
            },
            h("span", {class: "layer-index"}, String(layer.index)),
            h("span", {}, layer.label),
            h("span", {class: "volume"}, volumeText(layer.out_volume)),
          ),
        ),
      );
    },
  };
}

/** A 1x1 layer's units as bars (probabilities as percentages, with the prediction) or a strip. */
function vectorDetail(model, layer, activations) {
  const probabilities = layer.type === "softmax";
  const output = layerOutput(model, layer, {
    barsUpTo: 40,
    format: probabilities ? (v) => percent(v) : (v) => fmt(v, 3),
  });
  output.update(activations.layers[layer.index].output);
  const verdict = probabilities
    ? h(
        "p",
        {class: "prediction"},
        `Prediction: ${model.classes[activations.prediction]} ` +
          `(${percent(activations.probabilities[activations.prediction])})`,
      )
    : null;
  return [verdict, output.element];
}

/** A conv filter, one slice per input map (or in colour when it reads an RGB input). */
function filterSlices(model, filter, layer) {
  const {depth} = dims(filter);
  const {min, max} = extent(filter.data);
  const scale = clamp(Math.floor(96 / layer.params.sx), 2, 20);
  const shown =
    depth === 3 && model.layers[layer.index - 1].type === "input"
      ? [tensorCanvas(filter, {scale, min, max})]
      : Array.from({length: Math.min(depth, 32)}, (_, d) =>
          tensorCanvas(filter, {scale, min, max, channel: d, title: `input map ${d}`}),
        );
  return h(
    "figure",
    {class: "filter-slices"},
    h(
      "figcaption",
      {},
      depth > 1 && shown.length > 1
        ? `its filter, one ${layer.params.sx}x${layer.params.sy} slice per input map` +
            (depth > 32 ? ` (first 32 of ${depth})` : "")
        : "its filter",
    ),
    h("div", {class: "slices"}, shown),
  );
}

/** Map `c` of a max pool's input, every window outlined and each window's winner marked. */
function poolCanvas(input, layer, c, winners, outW, outH) {
  const {height: H, width: W} = dims(input);
  const pitch = clamp(Math.floor(ZOOM / Math.max(W, H)), 2, 14);
  const {canvas, context} = crispCanvas(W * pitch, H * pitch, {
    role: "img",
    "aria-label": `the input map ${c} with the winner of each window outlined`,
    class: "pool-input",
  });
  const {min, max} = extent(input.data);
  for (let i = 0; i < W * H; i++) {
    const g = grey(input.data[i], min, max);
    context.fillStyle = rgb([g, g, g]);
    context.fillRect((i % W) * pitch, Math.floor(i / W) * pitch, pitch, pitch);
  }
  const {sx, sy, stride, pad} = layer.params;
  context.strokeStyle = "rgba(40, 120, 220, 0.6)";
  context.lineWidth = 1;
  for (let o = 0; o < outW * outH; o++) {
    const x0 = (o % outW) * stride - pad;
    const y0 = Math.floor(o / outW) * stride - pad;
    context.strokeRect(x0 * pitch + 0.5, y0 * pitch + 0.5, sx * pitch - 1, sy * pitch - 1);
  }
  context.strokeStyle = "#dc2626";
  context.lineWidth = 2;
  for (const w of winners) {
    if (w >= 0) context.strokeRect((w % W) * pitch + 1, Math.floor(w / W) * pitch + 1, pitch - 2, pitch - 2);
  }
  canvas.dataset.winners = String(winners.filter((w) => w >= 0).length);
  return canvas;
}

/** How pooling layer `layer` made its map `c`: the max pool's winners, checked against its output. */
function poolPanel(activations, layer, c) {
  const input = item(activations.layers[layer.index - 1].output, c);
  const {height: H, width: W} = dims(input);
  const out = item(activations.layers[layer.index].output, c);
  const {height: outH, width: outW} = dims(out);
  if (layer.params.kind !== "max") {
    return notice(
      `Average pooling: each output cell is the mean of its ${layer.params.sx}x${layer.params.sy} ` +
        "window; every input cell counts.",
    );
  }
  const {winners, maxima} = poolWinners(input.data, W, H, layer.params, outW, outH);
  const exact = maxima.every((m, i) => Math.abs(m - out.data[i]) <= 1e-5 * Math.max(1, Math.abs(m)));
  const {sx, sy} = layer.params;
  return h(
    "figure",
    {class: "pool-panel"},
    h(
      "figcaption",
      {},
      `input map ${c} (${W}x${H}) from layer ${layer.index - 1}: red marks the largest value of each ` +
        `${sx}x${sy} window (blue), which becomes one cell of the ${outW}x${outH} pooled map; ` +
        "windows whose cells are all " +
        "equal have no winner",
    ),
    poolCanvas(input, layer, c, winners, outW, outH),
    h(
      "p",
      {class: exact ? "muted small" : "error"},
      exact
        ? "Checked: these maxima equal the layer's output."
        : "These maxima differ from the layer's output: the server pools differently from " +
            "what its description says.",
    ),
  );
}

/** Map `c` of `layer` enlarged with a value readout, then its filter, pool winners or colours. */
function zoomed(model, activations, layer, c, weights, normalise) {
  const {output: out, min, max} = activations.layers[layer.index];
  const {height, width} = dims(out);
  const map = item(out, c);
  const range = normalise === "layer" ? {min, max} : extent(map.data);
  const scale = Math.max(1, Math.floor(ZOOM / Math.max(width, height)));
  const canvas = tensorCanvas(map, {scale, ...range, class: "pixelated zoomed"});
  const readout = h("p", {class: "muted small"}, "hover for values");
  canvas.addEventListener("pointermove", (event) => {
    const box = canvas.getBoundingClientRect();
    const x = clamp(Math.floor(((event.clientX - box.left) / box.width) * width), 0, width - 1);
    const y = clamp(Math.floor(((event.clientY - box.top) / box.height) * height), 0, height - 1);
    readout.textContent = `(${x}, ${y}) = ${fmt(map.data[y * width + x], 4)}`;
  });
  const extra = [];
  if (weights) extra.push(filterSlices(model, item(weights, c), layer));
  if (layer.type === "pool") extra.push(poolPanel(activations, layer, c));
  if (layer.type === "input" && dims(out).depth === 3) {
    extra.push(
      h(
        "figure",
        {},
        h("figcaption", {}, "all three channels as colour"),
        tensorCanvas(out, {scale, ...inputRange(model), class: "pixelated"}),
      ),
    );
  }
  return [
    h("div", {class: "zoom-frame"}, h("h4", {class: "zoom-title"}, `${layer.label} - ${c}`), canvas, readout),
    ...extra,
  ];
}

/** One button per map of `layer` (its filter beside it when the filters are images); hovering
 * one enlarges it (`onZoom(c)`), a click pins it (`onPin(c)`, kept in the address). */
function mapTiles(model, layer, out, weights, normalise, onZoom, onPin = onZoom) {
  const {depth, height, width} = dims(out.output);
  const filtersAreImages = weights && model.layers[layer.index - 1].type === "input";
  const range = (c) => (normalise === "layer" ? {min: out.min, max: out.max} : extent(item(out.output, c).data));
  const scale = clamp(Math.floor(TILE / Math.max(width, height)), 1, 8);
  return Array.from({length: depth}, (_, c) => {
    const map = tensorCanvas(out.output, {scale, channel: c, ...range(c)});
    const filter = filtersAreImages
      ? tensorCanvas(item(weights, c), {
          scale: clamp(Math.floor(40 / layer.params.sx), 2, 8),
          channel: dims(item(weights, c)).depth === 3 ? null : 0,
          class: "pixelated filter",
        })
      : null;
    return h(
      "button",
      {
        type: "button",
        class: "map-tile",
        "aria-label": `${layer.label} - ${c}`,
        onmouseenter: () => onZoom(c),
        onfocus: () => onZoom(c),
        onclick: () => onPin(c),
      },
      h("span", {class: "tile-images"}, filter, map),
      h("span", {class: "tile-caption"}, String(c)),
    );
  });
}

/** The grey-scale choice (whole layer or each map) and its legend. */
function greyScaleBar(out, normalise, onChange) {
  return h(
    "div",
    {class: "toolbar"},
    selectField(
      "Grey scale",
      [
        ["layer", "whole layer (as the chapter)"],
        ["map", "each map on its own"],
      ],
      normalise,
      onChange,
    ),
    normalise === "layer"
      ? legend(out.min, out.max, "black to white")
      : h("span", {class: "muted"}, "each map: its own min (black) to max (white)"),
  );
}

/**
 * Every map of any layer for one input: a layer list, the selected layer's maps (or bars) and
 * an enlarged map. `update(activations)` shows another input's activations: a response holding
 * every layer, or `(layers) => promise` of the layers shown (the layer and its input). The
 * layer and grey scale are kept in the address (`layer`, `norm`).
 */
export function mapsPanel(ctx) {
  const model = ctx.model;
  const firstConv = model.layers.find((l) => l.type === "conv");
  let index = clamp(Number(ctx.params.get("layer") ?? firstConv?.index ?? 0), 0, model.layers.length - 1);
  let normalise = ctx.params.get("norm") === "map" ? "map" : "layer";
  let channel = Math.max(0, Number.parseInt(ctx.params.get("channel") ?? "0", 10) || 0); // pinned map
  let activations = null;
  let source = null; // (layers) => the activations of those layers
  const weightCache = new Map();
  const list = layerList(model, (i) => {
    channel = 0;
    ctx.setParams({channel: null});
    select(i);
  });
  const detail = h("section", {class: "maps-detail", "aria-live": "polite"});
  const zoom = h("aside", {class: "zoom"});

  const weightsOf = (layer) => {
    if (!weightCache.has(layer.index)) weightCache.set(layer.index, ctx.api.weights(model.id, layer.index));
    return weightCache.get(layer.index);
  };

  function select(i) {
    index = i;
    ctx.setParams({layer: i});
    list.update(index);
    show().catch((error) => detail.replaceChildren(h("div", {class: "error", role: "alert"}, error.message)));
  }

  let shows = 0; // the latest show() draws; an older one still waiting gives way

  async function show() {
    const ticket = ++shows;
    const layer = model.layers[index];
    const shown = await source(index > 0 ? [index - 1, index] : [index]);
    if (ticket !== shows) return; // another layer or input was chosen meanwhile
    activations = shown;
    const out = activations.layers[index];
    const {height, width} = dims(out.output);
    const heading = [
      h("h3", {}, `Layer ${index}: ${layerTitle(layer)}`),
      h("p", {class: "muted tight"}, `values from ${fmt(out.min, 3)} to ${fmt(out.max, 3)} for this input`),
    ];
    if (height * width === 1) {
      zoom.replaceChildren();
      setChildren(detail, heading, vectorDetail(model, layer, activations));
      return;
    }
    const weights = layer.type === "conv" ? (await weightsOf(layer)).weights : null;
    if (ticket !== shows) return;
    const filtersAreImages = weights && model.layers[index - 1].type === "input";
    let pinned = Math.min(channel, dims(out.output).depth - 1);
    const showZoom = (c) =>
      zoom.replaceChildren(
        ...zoomed(model, activations, layer, c, weights, normalise),
        ...(layer.type === "conv" ? [topImagesPanel(model, layer, c)] : []),
      );
    setChildren(
      detail,
      heading,
      greyScaleBar(out, normalise, (v) => {
        normalise = v;
        ctx.setParams({norm: v === "map" ? v : null});
        show();
      }),
      weights && !filtersAreImages
        ? notice("Each filter spans all input maps; hover a map to see its filter slice by slice.")
        : null,
      h(
        "div",
        {class: "map-grid", onmouseleave: () => showZoom(pinned)},
        mapTiles(model, layer, out, weights, normalise, showZoom, (c) => {
          channel = pinned = c;
          ctx.setParams({channel: c || null});
          showZoom(c);
        }),
      ),
    );
    showZoom(pinned);
  }

  return {
    element: h("div", {class: "maps-layout"}, list.element, detail, zoom),
    update(next) {
      source = typeof next === "function" ? next : async () => next;
      select(index);
    },
  };
}

export async function render(root, ctx) {
  const panel = mapsPanel(ctx);
  const compare = mapsComparison(ctx, mapsPanel, panel);
  root.append(
    h(
      "header",
      {class: "view-header"},
      h("h2", {}, "Activation maps"),
      h(
        "p",
        {class: "muted"},
        "Every map of every layer for the current input. Hover a map to enlarge it; " +
          "pooling layers show which cell won each window.",
      ),
    ),
    inputChooser(ctx, () => {
      panel.update((layers) => ctx.activations(ctx.input, layers));
      compare.update();
    }).element,
    compare.element,
  );
  panel.update((layers) => ctx.activations(ctx.input, layers));
}
