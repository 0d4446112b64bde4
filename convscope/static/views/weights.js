// L1: what the weights look like. First-layer filters as images (grey or RGB); for a 1-layer
// net (input -> fc -> softmax) the class templates; for a 2-layer net the hidden units as
// images with, per class, bars of the second layer's weights (the chapter's bar rule).

import {h, notice, selectField} from "../dom.js";
import {asImage, dims, extent, fmt, item, layerTitle, legend, tensorCanvas, volumeText} from "../draw.js";
import {clamp} from "../util.js";
import {weightHeatmap} from "./weights/heatmap.js";
import {CHUNK, L1_MENU, detach, l1Status, stopL1, trainL1} from "./weights/live.js";

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

/** The hidden units as images and, per class, bars of the second layer's weights `out`
 * ([classes, hidden, 1, 1]): the chapter's 2-layer picture. */
function twoLayerGrid(weights, out, classes, options) {
  const hidden = weights.shape[0];
  const names = Array.from({length: hidden}, (_, i) => `filter ${i}`);
  return h(
    "div",
    {class: "two-layer", style: {gridTemplateColumns: `5.5em repeat(${hidden}, minmax(64px, 1fr))`}},
    h("span", {}),
    weightImages(weights, names, options),
    classes.map((name, c) => {
      const row = Array.from(item(out, c).data);
      const levels = barLevels(row);
      return [
        h("span", {class: "row-name"}, name),
        levels.map((v, k) => barCell(v, row[k], `${name} ← filter ${k}`)),
      ];
    }),
  );
}

const TWO_LAYER_TEXT = (hidden) =>
  `A 2-layer net: the ${hidden} hidden units (top) and, for each class, the second layer's weight ` +
  "from each unit (bars up: above the midpoint of that class's weights, down: below). " +
  "Hover a bar for its value.";

/** A 2-layer net: the hidden units as images and, per class, bars of the second layer's weights. */
async function twoLayerView(ctx, second, weights, options) {
  const out = (await ctx.api.weights(ctx.model.id, second.index)).weights; // [classes, hidden, 1, 1]
  return h(
    "div",
    {},
    h("p", {class: "muted"}, TWO_LAYER_TEXT(weights.shape[0])),
    twoLayerGrid(weights, out, ctx.model.classes, options),
  );
}

/** What the chosen layer's weights are, in words (the first layer's text only for it). */
function layerText(model, layer, first) {
  const from = layer.in_volume ? volumeText(layer.in_volume) : "its input";
  if (layer === first && sameVolume(layer.in_volume, model.input)) {
    return (
      "A first-layer filter weighs every input pixel; drawn as an image (black: most negative, " +
      "white: most positive) it shows the pattern the unit responds to."
    );
  }
  if (layer.type === "conv") {
    const {sx, sy} = layer.params;
    return (
      `Each of layer ${layer.index}'s ${layer.out_volume.depth} filters weighs a ${sx}x${sy} window ` +
      `of all ${layer.in_volume.depth} maps of the layer before (${from}): one small image per ` +
      "input map (black: most negative, white: most positive)."
    );
  }
  return (
    `Each of layer ${layer.index}'s ${layer.out_volume.depth} neurons weighs every value of the ` +
    `layer before (${from}): one row per neuron, one column per input value, red for negative ` +
    "and blue for positive weights. Hover a cell (or use the arrow keys) to read its weight."
  );
}

/** The chapter's menu: its four L1 entries (trained live here) and the bundled ordinary nets. */
function chapterMenu(ctx, onL1) {
  const model = ctx.model;
  const ordinary = ctx.models.filter((m) => m.family === "ordinary");
  const options = [
    ["", "choose…"],
    ...L1_MENU.map(([name, label]) => [`l1:${name}`, `${label} (train a fresh one live)`]),
    ...ordinary.map((m) => [`model:${m.id}`, m.title]),
  ];
  const current = ordinary.some((m) => m.id === model.id) ? `model:${model.id}` : "";
  return selectField("The chapter's nets", options, current, (value) => {
    if (value.startsWith("model:")) ctx.navigate("weights", {model: value.slice(6)});
    else if (value.startsWith("l1:")) onL1(value.slice(3));
  });
}

/** The layer and grey-scale pickers, the chapter's menu and a link to train this model. */
function weightsToolbar(ctx, weighted, {layer, normalise}, onLayer, onNormalise, onL1) {
  const model = ctx.model;
  // the registry name it was trained from (the model list's summary has it)
  const registry = ctx.models.find((m) => m.id === model.id)?.registry;
  const fresh = registry ? `#/train?model=${encodeURIComponent(model.id)}&source=registry` : "#/train";
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
    chapterMenu(ctx, onL1),
    h("a", {class: "button", href: fresh}, "Train a fresh one and watch"),
  );
}

/** The L1 demo in `body`: train registry model `name` live and redraw it at every snapshot. */
async function showL1(ctx, body, name) {
  const label = L1_MENU.find(([n]) => n === name)[1];
  const registered = (await ctx.api.trainableModels()).models.find((m) => m.name === name);
  const catalogue = (await ctx.api.datasets()).catalogue;
  const classes = catalogue.find((d) => d.name === registered?.dataset)?.classes ?? [];
  const status = h("p", {class: "l1-status", "aria-live": "polite"});
  const picture = h("div", {class: "l1-picture"});
  const stop = h("button", {type: "button", onclick: () => stopL1(ctx)}, "Stop");
  const scaleFor = (width) => clamp(Math.floor(90 / width), 2, 12);
  let latest = null;
  function draw(snapshot) {
    latest = snapshot;
    const [first, second] = snapshot.weights;
    const options = {normalise: "filter", biases: first.bias, scaleFor};
    const names = classes.length ? classes : Array.from({length: first.weights.shape[0]}, (_, i) => String(i));
    picture.replaceChildren(
      second
        ? twoLayerGrid(first.weights, second.weights, names, options)
        : h("div", {class: "templates"}, weightImages(first.weights, names, options)),
    );
    picture.dataset.examples = String(snapshot.examples);
    status.replaceChildren(...[l1Status(null, snapshot, label)].flat());
  }
  body.replaceChildren(
    h("h3", {}, `${label}: a fresh network learning`),
    h(
      "p",
      {class: "muted"},
      name.endsWith("templates")
        ? "A 1-layer net: each output's weights form a template of its class. "
        : TWO_LAYER_TEXT(10) + " ",
      `The chapter's trainer (adadelta, batch 4) on ${registered?.dataset ?? "its dataset"}; ` +
        `the picture is redrawn after every ${CHUNK} examples.`,
    ),
    h("div", {class: "toolbar"}, status, stop),
    picture,
  );
  status.textContent = `${label}: starting…`;
  try {
    await trainL1(ctx, name, {
      onSnapshot: draw,
      onEnd: (outcome) => {
        stop.disabled = true;
        status.replaceChildren(...[l1Status(outcome, latest, label)].flat());
      },
    });
  } catch (error) {
    stop.disabled = true;
    status.replaceChildren(h("span", {class: "error", role: "alert"}, error.message));
  }
}

export async function render(root, ctx) {
  const model = ctx.model;
  const weighted = model.layers.filter((l) => l.has_weights);
  const description = h("p", {class: "muted layer-text"});
  root.append(h("header", {class: "view-header"}, h("h2", {}, "Weights"), description));
  if (!weighted.length) {
    root.append(notice(`${model.title} has no layer with weights.`));
    return null;
  }
  const [first, second] = weighted;
  const {oneLayer, twoLayer} = chapterShape(model, weighted);
  let layer = weighted.find((l) => l.index === Number(ctx.params.get("layer"))) ?? first;
  let normalise = ctx.params.get("norm") === "layer" ? "layer" : "filter";
  let sort = ctx.params.get("sort") === "sorted" ? "sorted" : "grouped";
  const body = h("div", {class: "weights-body"});
  const failed = (error) => body.replaceChildren(h("div", {class: "error", role: "alert"}, error.message));

  async function show() {
    const {weights, bias} = await ctx.api.weights(model.id, layer.index);
    description.textContent = layerText(model, layer, first);
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
      body.replaceChildren(
        title,
        weightHeatmap(weights, layer, rowNames(model, layer, weights.shape[0]), {
          sort,
          onSort: (v) => {
            sort = v;
            ctx.setParams({sort: v === "sorted" ? v : null});
            show().catch(failed);
          },
        }),
      );
    }
  }

  const toolbar = weightsToolbar(
    ctx,
    weighted,
    {layer, normalise},
    (v) => {
      layer = weighted.find((l) => l.index === Number(v));
      ctx.setParams({layer: layer.index});
      show().catch(failed);
    },
    (v) => {
      normalise = v;
      ctx.setParams({norm: v === "layer" ? v : null});
      show().catch(failed);
    },
    (name) => showL1(ctx, body, name).catch(failed),
  );
  root.append(toolbar, body);
  await show();
  return () => {
    stopL1(ctx).catch(() => null); // leaving the view stops the chapter's demo, as the chapter
    detach();
  };
}

/** The neurons' names: the class (or output) names for the layer that scores them, else numbers. */
function rowNames(model, layer, count) {
  const last = model.layers.filter((l) => l.has_weights).at(-1);
  const names = layer === last && model.output_names?.length === count ? model.output_names : null;
  return Array.from({length: count}, (_, i) => (names ? `${i}: ${names[i]}` : `neuron ${i}`));
}
