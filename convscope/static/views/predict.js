// Draw a digit (mouse, pen or touch), upload an image or show one to the webcam: the class
// probabilities and every layer's activation maps update together while you draw.

import {latestOnly} from "../api.js";
import {h, errorBox, percent, throttle} from "../dom.js";
import {barChart, layerTitle, tensorCanvas} from "../draw.js";
import {inputRange, sampleInput, uploadLayers, uploader} from "../input.js";
import {outOfDistributionHint} from "../ood.js";
import {drawingPad} from "../pad.js";
import {predictionComparison} from "../widgets/compare.js";
import {EXPLAINED_TASKS, explainPanel} from "../widgets/explain.js";
import {layerOutput} from "../widgets/layer-output.js";

const WHILE_DRAWING_MS = 150;
const SMALL_LAYER_VALUES = 65536; // the largest layer shown on a net too big to send whole

/**
 * The layers shown: every layer after the input, or, on a net whose layers are too big to send
 * together (AlexNet, VGG-16), only its small ones (the last maps and the fc layers); `asked`
 * is what to request (null: every layer).
 */
function shownLayers(model) {
  const after = model.layers.slice(1);
  if (!uploadLayers(model)) return {shown: after, asked: null};
  const shown = after.filter((l) => l.out_volume.sx * l.out_volume.sy * l.out_volume.depth <= SMALL_LAYER_VALUES);
  return {shown, asked: [0, ...shown.map((l) => l.index)]};
}

/** The shown layers, each titled, from the first `update(activations)`. */
function layerRows(model, shown) {
  const rows = shown.map((layer) => ({
    layer,
    output: layerOutput(model, layer, {limit: 24, tile: 56}),
  }));
  const element = h(
    "section",
    {class: "predict-layers", hidden: true},
    h("h3", {}, shown.length === model.layers.length - 1 ? "Every layer for this input"
      : "The small layers for this input (Maps shows the others, one at a time)"),
    rows.map(({layer, output}) =>
      h("div", {class: "live-layer"}, h("h4", {}, `${layer.index}: ${layerTitle(layer)}`), output.element),
    ),
  );
  return {
    element,
    update(activations) {
      element.hidden = false;
      for (const {layer, output} of rows) output.update(activations.layers[layer.index].output);
    },
  };
}

export async function render(root, ctx) {
  const model = ctx.model;
  const probabilities = h("div", {class: "probabilities", "aria-live": "polite"});
  const seen = h("figure", {class: "seen"});
  const {shown, asked} = shownLayers(model);
  const layers = layerRows(model, shown);
  const message = h("div");
  const compare = predictionComparison(ctx);
  const why = EXPLAINED_TASKS.includes(model.task) ? explainPanel(ctx, model) : null;

  function show(activations) {
    const best = activations.prediction;
    const [, height, width] = activations.image.shape;
    probabilities.replaceChildren(
      h(
        "p",
        {class: "prediction"},
        `Prediction: ${activations.classes[best]} `,
        h("span", {class: "muted"}, `(${percent(activations.probabilities[best])})`),
      ),
      outOfDistributionHint(activations.probabilities) ?? "",
      barChart(activations.probabilities, activations.classes, {
        format: (v) => percent(v),
        caption: "class probabilities",
      }),
    );
    seen.replaceChildren(
      h("figcaption", {}, `what the network sees (${width}x${height})`),
      tensorCanvas(activations.input, {
        scale: Math.floor(112 / width),
        ...inputRange(model),
        class: "pixelated thumb",
      }),
    );
    layers.update(activations);
    why?.update(activations);
  }

  /** mode: "cached" (a sample), "preview" (mid-stroke, not kept) or "drawing" (a finished stroke, kept). */
  const evaluate = latestOnly(async (input, mode) => {
    try {
      const activations =
        mode === "cached"
          ? await ctx.activations(input, asked)
          : await ctx.api.activations(model.id, input, {layers: asked});
      message.replaceChildren();
      show(activations);
      compare.update(input, activations);
      if (mode === "drawing") ctx.setInput(input, {activations, source: "your drawing"});
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  });
  const evaluateWhileDrawing = throttle((input) => evaluate(input, "preview"), WHILE_DRAWING_MS);

  const pad = drawingPad({
    onDraw: (final) => {
      const pixels = pad.pixels();
      if (!pixels) return;
      if (final) evaluate({pixels}, "drawing");
      else evaluateWhileDrawing({pixels});
    },
  });

  const upload = uploader(ctx, {
    onInput: (input, {activations, source}) => {
      pad.clear(); // the upload is the input now, not the old drawing
      ctx.setInput(input, {activations, source});
      message.replaceChildren();
      show(activations);
      compare.update(input, activations);
    },
    onError: (error) => message.replaceChildren(errorBox(error)),
    layers: asked,
  });

  const dataset = ctx.datasets.find((d) => d.name === ctx.dataset);
  // How a drawing is prepared is the model's own dataset's (a CIFAR model's is not MNIST's).
  const own = ctx.datasets.find((d) => d.name === model.dataset);
  root.append(
    h(
      "header",
      {class: "view-header"},
      h("h2", {}, "Draw & predict"),
      h(
        "p",
        {class: "muted"},
        `Draw a ${model.dataset === "mnist" ? "digit" : "shape"} in the black square; ` +
          (own?.centre === "mnist"
            ? "the drawing (and an uploaded photo) is centred and scaled like MNIST's digits " +
              "before the network sees it."
            : "the drawing is scaled to the network's input."),
      ),
    ),
    h(
      "div",
      {class: "predict-layout"},
      h(
        "div",
        {class: "card pad-card"},
        pad.element,
        h(
          "div",
          {class: "actions"},
          h("button", {type: "button", onclick: () => pad.clear()}, "Clear"),
          upload.element,
          dataset
            ? h(
                "button",
                {
                  type: "button",
                  onclick: () => {
                    const input = sampleInput(dataset.name, Math.floor(Math.random() * dataset.count));
                    pad.clear();
                    ctx.setInput(input);
                    evaluate(input, "cached");
                  },
                },
                "Random sample",
              )
            : null,
        ),
        upload.preview,
        seen,
        message,
      ),
      h("div", {}, compare.pair(h("div", {class: "card"}, probabilities)), why?.element, layers.element),
    ),
  );
  if (ctx.input?.pixels?.depth === 1 && ctx.inputSource === "your drawing") pad.show(ctx.input.pixels);
  if (ctx.input) evaluate(ctx.input, "cached");
}
