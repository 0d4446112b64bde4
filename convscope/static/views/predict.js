// Draw a digit (mouse, pen or touch), upload an image or show one to the webcam: the class
// probabilities and every layer's activation maps update together while you draw.

import {latestOnly} from "../api.js";
import {h, errorBox, percent, throttle} from "../dom.js";
import {barChart, layerTitle, tensorCanvas} from "../draw.js";
import {inputRange, sampleInput, uploader} from "../input.js";
import {drawingPad} from "../pad.js";
import {layerOutput} from "../widgets/layer-output.js";

const WHILE_DRAWING_MS = 150;

/** Every layer after the input, each titled, shown from the first `update(activations)`. */
function layerRows(model) {
  const rows = model.layers.slice(1).map((layer) => ({
    layer,
    output: layerOutput(model, layer, {limit: 24, tile: 56}),
  }));
  const element = h(
    "section",
    {class: "predict-layers", hidden: true},
    h("h3", {}, "Every layer for this input"),
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
  const layers = layerRows(model);
  const message = h("div");

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
  }

  /** mode: "cached" (a sample), "preview" (mid-stroke, not kept) or "drawing" (a finished stroke, kept). */
  const evaluate = latestOnly(async (input, mode) => {
    try {
      const activations =
        mode === "cached" ? await ctx.activations(input) : await ctx.api.activations(model.id, input);
      message.replaceChildren();
      show(activations);
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
      ctx.setInput(input, {activations, source});
      message.replaceChildren();
      show(activations);
    },
    onError: (error) => message.replaceChildren(errorBox(error)),
  });

  const dataset = ctx.datasets.find((d) => d.name === ctx.dataset);
  root.append(
    h(
      "header",
      {class: "view-header"},
      h("h2", {}, "Draw & predict"),
      h(
        "p",
        {class: "muted"},
        `Draw a ${model.dataset === "mnist" ? "digit" : "shape"} in the black square; ` +
          (dataset?.centre === "mnist"
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
      h("div", {}, h("div", {class: "card"}, probabilities), layers.element),
    ),
  );
  if (ctx.input) evaluate(ctx.input, "cached");
}
