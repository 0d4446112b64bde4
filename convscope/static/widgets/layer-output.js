// One layer's output for one input, drawn by its volume: a row of maps when it is W x H (W x H
// > 1), bars for a short vector, a grey strip for a long one. Its units are named by class only
// on the network's final class-score layer; hidden units are numbered.

import {h} from "../dom.js";
import {barChart, dims, layerTitle, mapRow, vectorStrip} from "../draw.js";
import {indexNames} from "../util.js";

/** Whether `layer` gives the network's class scores: the softmax, the layer feeding it, or the
 * network's last layer. */
export function isClassScores(model, layer) {
  const next = model.layers[layer.index + 1];
  return layer.type === "softmax" || next?.type === "softmax" || layer.index === model.layers.length - 1;
}

/** Names of the `depth` units of a 1x1 layer: the model's output names (its classes, and a
 * localizer's box numbers) on the class-score layer, else the unit numbers. `layer` may be
 * unknown (undefined). */
export function unitNames(model, layer, depth) {
  const names = model?.output_names ?? [];
  if (model && layer && isClassScores(model, layer) && depth === names.length) return names;
  return indexNames(depth);
}

/**
 * A layer's output as a component: `update(output)` draws a [D, H, W] tensor. Options: `limit`
 * and `tile` for maps, `barsUpTo` (longer vectors are a strip), `format` for the bars' values,
 * `caption` for the bars (default: the layer's title).
 */
export function layerOutput(model, layer, {limit = 16, tile = 48, barsUpTo = 20, format, caption} = {}) {
  const element = h("div", {class: "layer-output"});
  return {
    element,
    update(output) {
      const {depth, height, width} = dims(output);
      let body;
      if (height * width > 1) body = mapRow(output, {limit, tile});
      else if (depth > barsUpTo) body = vectorStrip(output.data, "neuron");
      else {
        body = barChart(output.data, unitNames(model, layer, depth), {
          ...(format ? {format} : {}),
          caption: caption ?? (layer ? layerTitle(layer) : ""),
        });
      }
      element.replaceChildren(body);
    },
    dispose() {
      element.replaceChildren();
    },
  };
}
