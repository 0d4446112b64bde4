// A conv filter's arithmetic in the page, from the layer input and weights it already holds:
// the same numbers as the server's probes.conv_step (POST /conv-step), without a round trip.

/** Window positions along one axis: the first at -pad, then every `stride` while the `f`-wide
 * window still fits the `size` input padded by `pad` on both sides. */
export function positions(size, f, pad, stride) {
  let count = 0;
  for (let start = -pad; start + f <= size + pad; start += stride) count += 1;
  return count;
}

/** "(24 - 5 + 2·2) / 1 + 1 = 24", with the rounding spelled out when there is one. */
export function sizeFormula(w, f, p, s) {
  const exact = (w - f + 2 * p) / s + 1;
  const count = positions(w, f, p, s);
  const result = Number.isInteger(exact) ? String(exact) : `${Number(exact.toFixed(2))}, rounded down to ${count}`;
  return `(${w} - ${f} + 2·${p}) / ${s} + 1 = ${result}`;
}

/**
 * Output (x, y) of `filter` over `input` ([D, H, W] floats), with `weights` [F, D, fy, fx] and
 * `bias` ([F] or null), at `stride` and `pad`: the window's `patch` (zeros in the padding),
 * the filter's `weights`, their `products` (float32, as the server's), each input channel's
 * `subtotals` of them and their `sum` (in doubles),
 * `bias`, `output` = sum + bias and the `window`'s top-left corner in input pixels.
 */
export function convStep(input, weights, bias, {filter, x, y, stride, pad}) {
  const [depth, height, width] = input.shape;
  const [, , fy, fx] = weights.shape;
  const area = fx * fy;
  const x0 = x * stride - pad;
  const y0 = y * stride - pad;
  const patch = new Float32Array(depth * area);
  const filterWeights = weights.data.slice(filter * depth * area, (filter + 1) * depth * area);
  const products = new Float32Array(depth * area);
  const subtotals = new Float64Array(depth); // each input channel's share of the sum
  let sum = 0;
  for (let c = 0; c < depth; c++) {
    for (let i = 0; i < area; i++) {
      const ix = x0 + (i % fx);
      const iy = y0 + Math.floor(i / fx);
      const inside = ix >= 0 && iy >= 0 && ix < width && iy < height;
      const k = c * area + i;
      patch[k] = inside ? input.data[(c * height + iy) * width + ix] : 0;
      products[k] = patch[k] * filterWeights[k];
      subtotals[c] += products[k];
    }
    sum += subtotals[c];
  }
  const b = bias ? bias.data[filter] : 0;
  const shape = [depth, fy, fx];
  return {
    patch: {shape, data: patch},
    weights: {shape, data: filterWeights},
    products: {shape, data: products},
    subtotals: Array.from(subtotals),
    sum,
    bias: b,
    output: sum + b,
    window: {x0, y0},
    stride,
    pad,
  };
}

/**
 * The softmax of `scores` worked out as the page shows it: the largest score `max` (subtracted
 * first, as ConvNetJS and torch do, so that no exponential overflows), each `exponentials[i]` =
 * e^(scores[i] - max), their `sum`, and `probabilities[i]` = exponentials[i] / sum (doubles).
 */
export function softmaxSteps(scores) {
  const values = Array.from(scores, Number);
  const max = Math.max(...values);
  const exponentials = values.map((v) => Math.exp(v - max));
  const sum = exponentials.reduce((a, b) => a + b, 0);
  return {scores: values, max, exponentials, sum, probabilities: exponentials.map((e) => e / sum)};
}
