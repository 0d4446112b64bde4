// D1 and D2: a conv layer's filter sliding over its input. The input is drawn WITH its zero
// padding, so the window at output (x, y) sits exactly on the pixels that produce it (the
// chapter's demo drew it 2 pixels off). Every step is computed in the page from the layer's
// input and weights (convolution/arithmetic.js, checked against POST /conv-step by the tests);
// the panels live in convolution/.

import {h, notice, selectField} from "../dom.js";
import {layerTitle} from "../draw.js";
import {inputChooser, inputRange} from "../input.js";
import {convStep} from "./convolution/arithmetic.js";
import {buildAll, paintAll} from "./convolution/all.js";
import {channelPicker, filterStrip, formulaPanel, playControls, settingField} from "./convolution/controls.js";
import {clamp} from "../util.js";
import {geometry} from "./convolution/geometry.js";
import {buildSingle, paintSingle, showStep} from "./convolution/single.js";
import {softmaxPanel} from "./convolution/softmax.js";

export {sizeFormula} from "./convolution/arithmetic.js";

const DESCRIPTION =
  "The filter slides over every position of its input; at each one, the pixels under the " +
  "window times the weights, summed, plus a bias, give one cell of the activation map. " +
  "Hover the input or the " +
  "map, use the arrow keys, or press Play.";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The view's state for conv layer `layer`, its settings read from the address. */
function initialState(ctx, layer, stage) {
  const p = layer.params;
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
    computed: new Map(), // "<filter>:<x>,<y>" -> output value computed here
    filling: false, // playing from the start: cells appear as they are computed
    playing: false,
    step: null,
  };
  const fromImage = ctx.model.layers[layer.index - 1].type === "input";
  return {ctx, model: ctx.model, layer, p, fromImage, view, stage, data: null, parts: {}};
}

/** The layer's input and output for the current input, and its weights. */
async function load(s) {
  const {ctx, layer, model} = s;
  const [activations, weights] = await Promise.all([
    ctx.activations(ctx.input, [layer.index - 1, layer.index]),
    ctx.api.weights(model.id, layer.index),
  ]);
  const before = activations.layers[layer.index - 1];
  const after = activations.layers[layer.index];
  const shift = model.layers[0].params.offset ?? 0; // the input layer's own offset
  const pixels = inputRange(model);
  s.data = {
    input: before.output,
    inputRange: s.fromImage ? {min: pixels.min + shift, max: pixels.max + shift} : {min: before.min, max: before.max},
    output: after.output,
    outputRange: {min: after.min, max: after.max},
    weights: weights.weights,
    bias: weights.bias,
  };
  resetComputation(s);
}

function resetComputation(s) {
  const {view} = s;
  view.computed.clear();
  view.filling = false;
  view.step = null;
  const g = geometry(s);
  view.x = clamp(view.x, 0, Math.max(0, g.outW - 1));
  view.y = clamp(view.y, 0, Math.max(0, g.outH - 1));
}

/** Compute the filter at the current position, show its arithmetic and paint it in (`quiet`:
 * compute only, for the fastest play, which shows and paints once per row). */
function computeStep(s, quiet = false) {
  const {filter, x, y, stride, pad} = s.view;
  const step = convStep(s.data.input, s.data.weights, s.data.bias, {filter, x, y, stride, pad});
  s.view.computed.set(`${filter}:${x},${y}`, step.output);
  s.view.step = step;
  if (quiet) return;
  showStep(s);
  paint(s);
}

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

function paint(s) {
  if (s.view.all) paintAll(s);
  else paintSingle(s);
}

/** The view's actions on `s`: moving, choosing a filter, playing, stepping, rebuilding. */
function attachActions(s, widgets) {
  const {view, ctx} = s;
  s.moveTo = (x, y, byUser) => {
    const g = geometry(s);
    const nx = clamp(x, 0, g.outW - 1);
    const ny = clamp(y, 0, g.outH - 1);
    if (byUser && view.playing) s.stop();
    if (nx === view.x && ny === view.y) return;
    [view.x, view.y] = [nx, ny];
    computeStep(s);
  };
  s.selectFilter = (f) => {
    view.filter = f;
    ctx.setParams({filter: f});
    view.step = null;
    s.rebuild();
  };
  s.stop = () => {
    view.playing = false;
    widgets.play.update();
  };
  s.play = async () => {
    const g = geometry(s);
    view.playing = true;
    widgets.play.update();
    if (!view.filling || (view.x === g.outW - 1 && view.y === g.outH - 1)) {
      view.computed.clear();
      view.filling = true;
      [view.x, view.y] = [0, 0];
    }
    const last = () => view.x === g.outW - 1 && view.y === g.outH - 1;
    const advance = () => ([view.x, view.y] = view.x + 1 < g.outW ? [view.x + 1, view.y] : [0, view.y + 1]);
    while (view.playing && !ctx.signal.aborted) {
      const delay = widgets.play.delay();
      if (delay === 0) {
        // fastest: the rest of the row computed in the page, shown and painted once per frame
        while (!last() && view.x < g.outW - 1) {
          computeStep(s, true);
          advance();
        }
        computeStep(s);
        await nextFrame();
      } else {
        computeStep(s);
        await sleep(delay);
      }
      s.stage.dataset.computed = String(view.computed.size);
      if (!view.playing || last()) break;
      advance();
    }
    s.stop();
  };
  s.stepBy = (delta) => {
    s.stop();
    const g = geometry(s);
    const i = clamp(view.y * g.outW + view.x + delta, 0, g.outW * g.outH - 1);
    s.moveTo(i % g.outW, Math.floor(i / g.outW), false);
  };
  s.rebuild = () => {
    const g = geometry(s);
    for (const widget of [widgets.strip, widgets.channels, widgets.formula]) widget.update();
    if (g.outW < 1 || g.outH < 1) {
      s.stage.replaceChildren(notice("The filter does not fit the padded input with these settings."));
      s.parts = {};
      return;
    }
    s.stage.replaceChildren(view.all ? buildAll(s) : buildSingle(s));
    if (view.step) {
      paint(s);
      showStep(s);
    } else computeStep(s);
  };
}

/** The toolbar of the layer: its picker, the filter strip and "All filters". */
function layerToolbar(s, convs, strip) {
  const {ctx, layer, view} = s;
  const allButton = h(
    "button",
    {
      type: "button",
      "aria-pressed": String(view.all),
      onclick: () => {
        view.all = !view.all;
        allButton.setAttribute("aria-pressed", String(view.all));
        ctx.setParams({all: view.all ? 1 : null});
        s.rebuild();
      },
    },
    "All filters",
  );
  const picker =
    convs.length > 1
      ? selectField(
          "Layer",
          convs.map((l) => [l.index, `${l.index}: ${layerTitle(l)}`]),
          layer.index,
          (v) => ctx.navigate("convolution", {layer: v}),
        )
      : h("span", {class: "layer-name"}, `Layer ${layer.index}: ${layerTitle(layer)}`);
  return h("div", {class: "toolbar"}, picker, strip.element, allButton);
}

/** The panel's toolbar: channel, stride, padding, the layer's own settings, steps and Play. */
function stepToolbar(s, widgets) {
  const {ctx, layer, p, view} = s;
  const changed = () => {
    s.stop();
    resetComputation(s);
    s.rebuild();
  };
  return h(
    "div",
    {class: "toolbar"},
    widgets.channels.element,
    settingField(s, "stride", "Stride", 1, 8, changed),
    settingField(s, "pad", "Padding", 0, Math.max(p.sx, p.sy), changed),
    h(
      "button",
      {type: "button", onclick: () => ctx.navigate("convolution", {layer: layer.index, filter: view.filter})},
      "Layer's own settings",
    ),
    h("span", {class: "spacer"}),
    h("button", {type: "button", "aria-label": "step back", onclick: () => s.stepBy(-1)}, "◀ Step"),
    widgets.play.button,
    h("button", {type: "button", "aria-label": "step forward", onclick: () => s.stepBy(1)}, "Step ▶"),
    widgets.play.speed,
  );
}

export async function render(root, ctx) {
  const model = ctx.model;
  // convs reading the layer before (the view shows that layer's output as the input)
  const convs = model.layers.filter((l) => l.type === "conv" && l.input_from === l.index - 1);
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
  const s = initialState(ctx, layer, h("div", {class: "conv-stage"}));
  const widgets = {strip: filterStrip(s), channels: channelPicker(s), formula: formulaPanel(s)};
  widgets.play = playControls(s, {play: () => s.play(), stop: () => s.stop()});
  attachActions(s, widgets);
  const finalLayer = h("div", {class: "final-layer"});
  const showSoftmax = () =>
    softmaxPanel(s)
      .then((panel) => finalLayer.replaceChildren(...(panel ? [panel] : [])))
      .catch((error) => finalLayer.replaceChildren(h("div", {class: "error", role: "alert"}, error.message)));
  const chooser = inputChooser(ctx, async () => {
    s.stop();
    try {
      await load(s);
      s.rebuild();
      showSoftmax();
    } catch (error) {
      s.stage.replaceChildren(h("div", {class: "error", role: "alert"}, error.message));
    }
  });
  root.append(
    chooser.element,
    layerToolbar(s, convs, widgets.strip),
    h("div", {class: "conv-panel"}, stepToolbar(s, widgets), widgets.formula.element, s.stage),
    finalLayer,
  );
  await load(s);
  s.rebuild();
  showSoftmax();
  return () => s.stop();
}
