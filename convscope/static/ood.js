// Is this input like the ones the network learned from? A hint from the class probabilities
// alone: a low top probability or a spread-out distribution (high entropy) says the label
// means little, as for a pure tone on the spoken-digit model or a scribble on Predict.

import {h} from "./dom.js";

export const MIN_CONFIDENCE = 0.7; // below this top probability the hint shows
export const MAX_ENTROPY = 0.4; // or above this share of the largest possible entropy

/** {top, entropy}: the top probability and the entropy as a share of log(classes). */
export function uncertainty(probabilities) {
  const values = Array.from(probabilities);
  const top = Math.max(...values);
  const entropy = -values.reduce((sum, p) => (p > 0 ? sum + p * Math.log(p) : sum), 0);
  return {top, entropy: values.length > 1 ? entropy / Math.log(values.length) : 0};
}

/** A one-line note when `probabilities` look out of distribution, else null. */
export function outOfDistributionHint(probabilities, what = "input") {
  const {top, entropy} = uncertainty(probabilities);
  if (top >= MIN_CONFIDENCE && entropy <= MAX_ENTROPY) return null;
  return h(
    "p",
    {class: "notice ood-hint", role: "note"},
    `Unsure: the top class has only ${Math.round(100 * top)}% and the probabilities are spread ` +
      `(entropy ${Math.round(100 * entropy)}% of the maximum). This ${what} may be unlike ` +
      "anything the network learned from, so its label means little.",
  );
}
