// "Why this prediction": a map over the input of where a class's score comes from (Grad-CAM on
// a chosen layer, HiResCAM, gradient saliency with SmoothGrad, or occlusion), computed by the server
// (POST /api/models/{id}/explain) for the fitted input the view shows, for any chosen class.

import {api, latestOnly} from "../api.js";
import {h, errorBox, selectField, setChildren} from "../dom.js";
import {fmt, pixelCanvas} from "../draw.js";
import {pixelsFromImage} from "../input.js";

export const EXPLAINED_TASKS = ["classify", "localize"];
// the colour-blind-safe ramp convscope explain uses (dark blue, teal, green, yellow)
const RAMP = [
  [13, 8, 135],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];
const MAX_ALPHA = 0.7;
const SHOWN_SIDE = 224; // CSS px of the overlay's shorter side

/** A 0..1 value on RAMP. */
export function rampColour(v) {
  const position = Math.min(Math.max(v, 0), 1) * (RAMP.length - 1);
  const low = Math.min(Math.floor(position), RAMP.length - 2);
  const part = position - low;
  return RAMP[low].map((c, k) => Math.round((1 - part) * c + part * RAMP[low + 1][k]));
}

/** The uint8 image [D, H, W] with the map [H, W] over it (its positive part, scaled to its maximum). */
export function paintOverlay(canvas, image, map) {
  const [depth, height, width] = image.shape;
  const size = height * width;
  let top = 0;
  for (const v of map.data) if (v > top) top = v;
  const context = canvas.getContext("2d");
  const out = context.createImageData(width, height);
  for (let i = 0; i < size; i++) {
    const weight = top > 0 ? Math.max(map.data[i], 0) / top : 0;
    const alpha = MAX_ALPHA * Math.sqrt(weight);
    const colour = rampColour(weight);
    for (let c = 0; c < 3; c++) {
      const byte = image.data[(depth === 3 ? c : 0) * size + i];
      out.data[4 * i + c] = Math.round((1 - alpha) * byte + alpha * colour[c]);
    }
    out.data[4 * i + 3] = 255;
  }
  context.putImageData(out, 0, 0);
  return canvas;
}

/** Where the map is strongest: {x, y} in input pixels. */
function strongest(map) {
  const width = map.shape[1];
  let best = 0;
  for (let i = 1; i < map.data.length; i++) if (map.data[i] > map.data[best]) best = i;
  return {x: best % width, y: Math.floor(best / width)};
}

function rampLegend() {
  const stops = RAMP.map((c, i) => `rgb(${c.join(",")}) ${(100 * i) / (RAMP.length - 1)}%`).join(", ");
  return h(
    "div",
    {class: "legend", "aria-label": "map scale from weak (dark blue) to strong (yellow)"},
    h("span", {class: "legend-value"}, "weak"),
    h("span", {class: "legend-ramp", style: {background: `linear-gradient(to right, ${stops})`}}),
    h("span", {class: "legend-value"}, "strong"),
  );
}

/**
 * The panel: method, layer and class choosers and the map over the input. `update(activations)`
 * explains the input those activations were computed for (their fitted `image`).
 */
export function explainPanel(ctx, model) {
  // Grad-CAM needs a layer with maps (an ordinary, fully connected net has none)
  const hasMaps = model.layers.some((l) => l.index > 0 && l.out_volume.sx * l.out_volume.sy > 1);
  // the methods (name, label, what the map shows, whether it reads a layer) come from the server
  let methods = [];
  const info = new Map();
  const readsLayer = (m) => info.get(m)?.layer ?? false;
  const state = {method: "", layer: "", target: "", image: null};
  const figure = h("figure", {class: "explain-figure"});
  const caption = h("p", {class: "muted explain-caption", "aria-live": "polite"});
  const layerHolder = h("span", {hidden: !hasMaps});
  const message = h("div");
  const classes = model.classes ?? [];

  const rerun = () => state.image && run(state.image);
  const methodHolder = h("span");
  const showMethods = () =>
    setChildren(methodHolder, selectField("Method", methods, state.method, (v) => {
      state.method = v;
      layerHolder.hidden = !readsLayer(v);
      rerun();
    }, {"data-explain": "method"}));
  // only the methods the explorer computes for a model this size (a VGG-16 map costs too much)
  // and, for a net without maps (an ordinary one), those that read no layer
  const offered = api.explainMethods(model.id).then(({methods: listed, limit}) => {
    listed.forEach((m) => info.set(m.method, m));
    methods = listed.filter((m) => m.allowed && (hasMaps || !m.layer)).map((m) => [m.method, m.label]);
    if (!methods.length) {
      controls.hidden = true; // nothing to choose: no map of this model is computed here
      figure.replaceChildren();
      message.replaceChildren(h("p", {class: "muted"},
        `A map of this model costs more than the explorer's ${Math.round(limit / 1e9)} billion ` +
        "multiply-adds; make one on the command line: ", h("code", {}, "convscope explain")));
      return false;
    }
    if (!methods.some(([m]) => m === state.method)) state.method = methods[0][0];
    layerHolder.hidden = !readsLayer(state.method);
    showMethods();
    return true;
  }).catch((error) => {
    message.replaceChildren(errorBox(error)); // no methods listed: nothing to ask for
    return false;
  });
  const classField = selectField(
    "Class",
    [["", "the predicted one"], ...classes.map((name, i) => [String(i), name])],
    "",
    (v) => {
      state.target = v;
      rerun();
    },
    {"data-explain": "class"},
  );

  function showLayers(layers, used) {
    const options = [["", "last conv layer"], ...layers.map((l) => [String(l.index), `${l.index}: ${l.label} (${l.size.join("x")})`])];
    const current = layerHolder.querySelector("select");
    if (current && current.options.length === options.length) return;
    setChildren(layerHolder, selectField("Layer", options, state.layer, (v) => {
      state.layer = v;
      rerun();
    }, {"data-explain": "layer"}));
    if (used !== null && state.layer === "") layerHolder.querySelector("select").title = `layer ${used}`;
  }

  const run = latestOnly(async (image) => {
    if (!(await offered)) return;
    const body = {pixels: pixelsFromImage(image), method: state.method};
    if (state.target !== "") body.class = Number(state.target);
    if (readsLayer(state.method) && state.layer !== "") body.layer = Number(state.layer);
    try {
      const found = await api.explain(model.id, body);
      message.replaceChildren();
      showLayers(found.layers, found.layer);
      const [, height, width] = image.shape;
      const scale = Math.max(1, Math.ceil(SHOWN_SIDE / Math.min(width, height)));
      const at = strongest(found.map);
      const name = found.classes[found.class] ?? String(found.class);
      const where = found.layer === null ? "" : ` on layer ${found.layer}`;
      const canvas = pixelCanvas(width, height, scale, {
        role: "img",
        "data-method": found.method,
        "data-class": found.class,
        "aria-label": `${found.method} map${where} for class ${name} over the input; strongest at x ${at.x}, y ${at.y}`,
      });
      figure.replaceChildren(paintOverlay(canvas, image, found.map), rampLegend());
      caption.textContent =
        `${info.get(found.method).label}${where} for class ${name} ` +
        `(score ${fmt(found.score)}): ${info.get(found.method).what}.`;
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  });

  const controls = h("div", {class: "explain-controls"}, methodHolder, layerHolder, classField);
  const element = h(
    "section",
    {class: "card explain-panel", "aria-label": "why this prediction"},
    h("h3", {}, "Why this prediction"),
    controls,
    figure,
    caption,
    message,
  );
  return {
    element,
    update(activations) {
      state.image = activations.image;
      run(activations.image);
    },
  };
}
