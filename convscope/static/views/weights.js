// L1: what the weights look like. First-layer filters as images (grey or RGB); for a 1-layer
// net (input -> fc -> softmax) the class templates; for a 2-layer net the hidden units as
// images with, per class, bars of the second layer's weights (the chapter's bar rule).

import {h, notice, selectField} from "../dom.js";
import {asImage, dims, extent, fmt, item, layerTitle, legend, tensorCanvas, volumeText} from "../draw.js";
import {clamp} from "../util.js";

const ROW = 50; // px per class row of bars, as in the chapter's demo
const sameVolume = (a, b) => a && b && a.sx === b.sx && a.sy === b.sy && a.depth === b.depth;

/** The chapter's bar: v = -0.5 + (w - m) / (M - m) with m = min(0, min w), M = max(0, max w). */
export function barLevels(weights) {
  const m = Math.min(0, ...weights);
  const M = Math.max(0, ...weights);
  return weights.map((w) => (M > m ? -0.5 + (w - m) / (M - m) : 0));
}

function barCell(level, weight, caption) {
  const height = Math.abs(0.75 * ROW * level);
  const mid = ROW / 2;
  return h(
    "span",
    {
      class: "bar-cell",
      title: `${caption}: weight ${fmt(weight, 4)}`,
      role: "img",
      "aria-label": `${caption}: weight ${fmt(weight, 4)}`,
    },
    h("span", {class: "bar-axis"}),
    h("span", {
      class: "bar-stick",
      style: {top: `${level > 0 ? mid - height : mid}px`, height: `${height}px`},
    }),
  );
}

/** One image per row of `weights` ([N, D, H, W]); `names[i]` captions it. */
function weightImages(weights, names, {normalise, biases, scaleFor}) {
  const count = weights.shape[0];
  const whole = extent(weights.data);
  return Array.from({length: count}, (_, i) => {
    const image = asImage(item(weights, i));
    const {depth, width} = dims(image);
    const range = normalise === "layer" ? whole : extent(image.data.filter((v) => !Number.isNaN(v)));
    const scale = scaleFor(width);
    const slices =
      depth === 1 || depth === 3
        ? [tensorCanvas(image, {scale, ...range})]
        : Array.from({length: Math.min(depth, 16)}, (_, d) =>
            tensorCanvas(image, {scale, channel: d, ...range}),
          );
    return h(
      "figure",
      {class: "weight-image"},
      h("div", {class: depth === 1 || depth === 3 ? "" : "slices"}, slices),
      h(
        "figcaption",
        {},
        names[i],
        biases ? h("span", {class: "muted small"}, ` b ${fmt(biases.data[i])}`) : null,
      ),
    );
  });
}

/** Which of the chapter's pictures suits a classifier whose first weighted layer is an fc on the
 * input: class templates (1-layer net) or hidden units with bars (2-layer net). */
function chapterShape(model, weighted) {
  const [first, second] = weighted;
  // Class templates are read off a classifier's rows; other tasks' outputs are not classes.
  const classifier = model.task_info.classifies;
  const imageRows = classifier && first.type === "fc" && sameVolume(first.in_volume, model.input);
  const classes = model.classes.length;
  return {
    oneLayer: imageRows && weighted.length === 1 && first.out_volume.depth === classes,
    twoLayer:
      imageRows && weighted.length === 2 && second.type === "fc" && second.out_volume.depth === classes,
  };
}

/** A 2-layer net: the hidden units as images and, per class, bars of the second layer's weights. */
async function twoLayerView(ctx, second, weights, options) {
  const model = ctx.model;
  const hidden = weights.shape[0];
  const out = (await ctx.api.weights(model.id, second.index)).weights; // [classes, hidden, 1, 1]
  const names = Array.from({length: hidden}, (_, i) => `filter ${i}`);
  const grid = h(
    "div",
    {class: "two-layer", style: {gridTemplateColumns: `5.5em repeat(${hidden}, minmax(64px, 1fr))`}},
    h("span", {}),
    weightImages(weights, names, options),
    model.classes.map((name, c) => {
      const row = Array.from(item(out, c).data);
      const levels = barLevels(row);
      return [
        h("span", {class: "row-name"}, name),
        levels.map((v, k) => barCell(v, row[k], `${name} ← filter ${k}`)),
      ];
    }),
  );
  return h(
    "div",
    {},
    h(
      "p",
      {class: "muted"},
      `A 2-layer net: the ${hidden} hidden units (top) and, for each class, the second layer's weight ` +
        "from each unit (bars up: above the midpoint of that class's weights, down: below). " +
        "Hover a bar for its value.",
    ),
    grid,
  );
}

/** Weights that are not images: one grey row per neuron. */
function matrixView(weights, forLayer) {
  const [n, ...rest] = weights.shape;
  const size = rest.reduce((a, b) => a * b, 1);
  const matrix = {shape: [1, n, size], data: weights.data};
  const {min, max} = extent(weights.data);
  return h(
    "figure",
    {},
    h("figcaption", {}, `${n} neurons (rows) x ${size} inputs (columns) from ${volumeText(forLayer.in_volume)}`),
    tensorCanvas(matrix, {scale: clamp(Math.floor(640 / size), 1, 16), min, max}),
    legend(min, max, "weight"),
  );
}

/** The layer and grey-scale pickers, the chapter's ordinary nets and a link to train one. */
function weightsToolbar(ctx, weighted, {layer, normalise}, onLayer, onNormalise) {
  const model = ctx.model;
  const ordinary = ctx.models.filter((m) => m.family === "ordinary");
  const chapterNets = ordinary.length
    ? selectField(
        "Ordinary nets",
        [["", "choose…"], ...ordinary.map((m) => [m.id, m.title])],
        ordinary.some((m) => m.id === model.id) ? model.id : "",
        (id) => id && ctx.navigate("weights", {model: id}),
      )
    : null;
  return h(
    "div",
    {class: "toolbar"},
    selectField(
      "Layer",
      weighted.map((l) => [l.index, `${l.index}: ${layerTitle(l)}`]),
      layer.index,
      onLayer,
    ),
    selectField(
      "Grey scale",
      [
        ["filter", "each filter on its own (as the chapter)"],
        ["layer", "whole layer"],
      ],
      normalise,
      onNormalise,
    ),
    chapterNets,
    h("a", {class: "button", href: "#/train"}, "Train a fresh one and watch"),
  );
}

export async function render(root, ctx) {
  const model = ctx.model;
  const weighted = model.layers.filter((l) => l.has_weights);
  root.append(
    h(
      "header",
      {class: "view-header"},
      h("h2", {}, "Weights"),
      h(
        "p",
        {class: "muted"},
        "A first-layer filter weighs every input pixel; drawn as an image (black: most negative, " +
          "white: most positive) it shows the pattern the unit responds to.",
      ),
    ),
  );
  if (!weighted.length) {
    root.append(notice(`${model.title} has no layer with weights.`));
    return;
  }
  const [first, second] = weighted;
  const {oneLayer, twoLayer} = chapterShape(model, weighted);
  let layer = weighted.find((l) => l.index === Number(ctx.params.get("layer"))) ?? first;
  let normalise = ctx.params.get("norm") === "layer" ? "layer" : "filter";
  const body = h("div", {class: "weights-body"});

  async function show() {
    const {weights, bias} = await ctx.api.weights(model.id, layer.index);
    const scaleFor = (width) => clamp(Math.floor((layer.type === "conv" ? 60 : 90) / width), 2, 12);
    const options = {normalise, biases: bias, scaleFor};
    const title = h("h3", {}, `Layer ${layer.index}: ${layerTitle(layer)}`);
    if (layer === first && oneLayer) {
      body.replaceChildren(
        title,
        h("p", {class: "muted"}, "A 1-layer net: each output's weights form a template of its class."),
        h("div", {class: "templates"}, weightImages(weights, model.classes, options)),
      );
    } else if (layer === first && twoLayer) {
      body.replaceChildren(title, await twoLayerView(ctx, second, weights, options));
    } else if (layer.type === "conv" || sameVolume(layer.in_volume, model.input)) {
      const names = Array.from({length: weights.shape[0]}, (_, i) => `filter ${i}`);
      body.replaceChildren(title, h("div", {class: "weight-grid"}, weightImages(weights, names, options)));
    } else {
      body.replaceChildren(title, matrixView(weights, layer));
    }
  }

  const toolbar = weightsToolbar(
    ctx,
    weighted,
    {layer, normalise},
    (v) => {
      layer = weighted.find((l) => l.index === Number(v));
      ctx.setParams({layer: layer.index});
      show().catch((error) => body.replaceChildren(h("div", {class: "error", role: "alert"}, error.message)));
    },
    (v) => {
      normalise = v;
      ctx.setParams({norm: v === "layer" ? v : null});
      show();
    },
  );
  root.append(toolbar, body);
  await show();
}
