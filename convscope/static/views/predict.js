// Draw a digit (mouse, pen or touch), upload an image or show one to the webcam: the class
// probabilities and every layer's activation maps update together while you draw.

import {latestOnly} from "../api.js";
import {h, errorBox, percent, throttle} from "../dom.js";
import {barChart, dims, layerTitle, mapRow, tensorCanvas, vectorStrip} from "../draw.js";
import {inputRange, sampleInput, uploader} from "../input.js";
import {drawingPad} from "../pad.js";

const WHILE_DRAWING_MS = 150;

function layerRow(model, layer, out) {
  const {depth, height, width} = dims(out.output);
  const isClasses = depth === model.classes.length && layer.index >= model.layers.length - 2;
  const body =
    height * width > 1
      ? mapRow(out.output, {limit: 24, tile: 56})
      : depth > 20
        ? vectorStrip(out.output.data, "neuron")
        : barChart(
            out.output.data,
            isClasses ? model.classes : Array.from({length: depth}, (_, i) => String(i)),
            {caption: layerTitle(layer)},
          );
  return h("div", {class: "live-layer"}, h("h4", {}, `${layer.index}: ${layerTitle(layer)}`), body);
}

export async function render(root, ctx) {
  const model = ctx.model;
  const probabilities = h("div", {class: "probabilities", "aria-live": "polite"});
  const seen = h("figure", {class: "seen"});
  const layers = h("section", {class: "predict-layers"});
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
    layers.replaceChildren(
      h("h3", {}, "Every layer for this input"),
      ...model.layers.slice(1).map((layer) => layerRow(model, layer, activations.layers[layer.index])),
    );
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
        `Draw a ${model.dataset === "mnist" ? "digit" : "shape"} in the black square; the drawing is ` +
          "centred and scaled like MNIST's digits before the network sees it.",
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
      h("div", {}, h("div", {class: "card"}, probabilities), layers),
    ),
  );
  if (ctx.input) evaluate(ctx.input, "cached");
}
