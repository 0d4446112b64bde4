// The final layer's arithmetic: the class scores the softmax reads, e^(score - max), their sum
// and each probability, worked out in the page (arithmetic.js softmaxSteps) from the scores of
// the current input; the tests check it against torch's softmax.

import {h} from "../../dom.js";
import {fmt} from "../../draw.js";
import {softmaxSteps} from "./arithmetic.js";

/** The index of the model's softmax layer and of the layer giving its scores (null if none). */
export function softmaxLayer(model) {
  const layer = model.layers.findLast((l) => l.type === "softmax");
  return layer && layer.index > 0 ? {index: layer.index, scores: layer.input_from ?? layer.index - 1} : null;
}

/** A table of the softmax of `scores` (a tensor) with `names` for the classes. */
export function softmaxTable(scores, names, softmaxIndex) {
  const steps = softmaxSteps(scores.data);
  const best = steps.probabilities.indexOf(Math.max(...steps.probabilities));
  const cell = (value, digits, key) => h("td", {class: "num", [`data-${key}`]: String(value)}, fmt(value, digits));
  const rows = steps.scores.map((score, i) =>
    h(
      "tr",
      {class: i === best ? "best" : null},
      h("th", {scope: "row"}, names[i] ?? String(i)),
      cell(score, 3, "score"),
      cell(score - steps.max, 3, "shifted"),
      cell(steps.exponentials[i], 4, "exp"),
      cell(steps.probabilities[i], 4, "prob"),
      h("td", {class: "num"}, `${(100 * steps.probabilities[i]).toFixed(1)}%`),
    ),
  );
  return h(
    "section",
    {class: "softmax-panel", "data-sum": String(steps.sum), "data-max": String(steps.max)},
    h("h3", {}, `The final layer: softmax (layer ${softmaxIndex})`),
    h(
      "p",
      {class: "muted"},
      "The scores of the layer before are turned into probabilities: subtract the largest " +
        `score (${fmt(steps.max, 3)}) so that no exponential overflows, take e to the power of ` +
        "each, and divide each by their sum.",
    ),
    h(
      "table",
      {class: "softmax-table"},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["class", "score s", "s − max", "e^(s − max)", "÷ sum = probability", ""].map((t) =>
            h("th", {scope: "col"}, t),
          ),
        ),
      ),
      h("tbody", {}, rows),
      h(
        "tfoot",
        {},
        h(
          "tr",
          {},
          h("th", {scope: "row"}, "sum"),
          h("td", {}),
          h("td", {}),
          h("td", {class: "num softmax-sum"}, fmt(steps.sum, 4)),
          h("td", {class: "num"}, fmt(steps.probabilities.reduce((a, b) => a + b, 0), 4)),
          h("td", {}),
        ),
      ),
    ),
  );
}

/** The softmax panel for the current input of `s` (the convolution view's state), or null. */
export async function softmaxPanel(s) {
  const found = softmaxLayer(s.model);
  if (!found) return null;
  const acts = await s.ctx.activations(s.ctx.input, [found.scores]);
  const scores = acts.layers[found.scores].output;
  return softmaxTable(scores, s.model.output_names ?? s.model.classes, found.index);
}
