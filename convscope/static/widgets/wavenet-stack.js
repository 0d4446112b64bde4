// A WaveNet's dilated causal stack drawn as the chapter's figure: a row of input samples, one
// row per layer (kernel 2 at that layer's dilation), the output row; hovering an output sample
// highlights every node its prediction depends on (its receptive field), through every layer.
//
// Layer i (1-based) at sample u reads layer i-1 at u and u - d_i; layer 1 reads the input
// shifted by one (samples u-1 and u-1-d_1), so output t sees samples t-R .. t-1, R = 1 + sum d.

import {h} from "../dom.js";
import {crispCanvas} from "../draw.js";
import {clamp} from "../util.js";

const ACCENT = "#0f766e";
const FAINT = "#c9c6bb";
const WAVE = "#1f2328";

/** Samples of the receptive field: 1 (the shift) + the sum of the dilations. */
export const receptiveField = (dilations) => 1 + dilations.reduce((a, b) => a + b, 0);

/** The span [first, last] of layer `i`'s samples (0: the input, dilations.length: the top
 * layer) that output `t` depends on. */
export function fieldAt(dilations, t, i) {
  if (i === 0) return [t - receptiveField(dilations), t - 1];
  const above = dilations.slice(i).reduce((a, b) => a + b, 0);
  return [t - above, t];
}

/** Every node output `t` depends on: sets of samples per row (0: input, 1..L: layers). */
export function dependencyTree(dilations, t) {
  const rows = [];
  let set = new Set([t]);
  for (let i = dilations.length; i >= 1; i--) {
    rows[i] = set;
    const below = new Set();
    for (const u of set) {
      below.add(u);
      below.add(u - dilations[i - 1]);
    }
    set = below;
  }
  rows[0] = new Set([...rows[1] ?? [t]].flatMap((u) => [u - 1, u - 1 - (dilations[0] ?? 0)]));
  return rows;
}

/** Say in the canvas's data, accessible name and `caption` which inputs output `view.t` reads. */
function describe(canvas, caption, stack, view, [first, last], dots) {
  const {dilations} = stack;
  const field = receptiveField(dilations);
  canvas.dataset.output = String(view.t);
  canvas.dataset.window = `${view.first}..${view.first + view.count - 1}`;
  canvas.dataset.field = `${first}..${last}`;
  canvas.setAttribute(
    "aria-label",
    `the dilated stack, ${dilations.length} layers with dilations ${dilations.join(", ")}: output ` +
      `sample ${view.t} depends on input samples ${first} to ${last} (${field} samples)`,
  );
  caption.textContent =
    `Output sample ${view.t} (highlighted) is predicted from input samples ${first}-${last}: ` +
    `${field} samples, ${((1000 * field) / stack.rate).toFixed(1)} ms. ` +
    `Showing ${view.count} samples${dots ? "" : " (too many to draw as dots: rows drawn as lines)"}.`;
}

/** The figure: `stack` is GET /api/models/{id}/wavenet; `width` its CSS width. Returns
 * {element, show(t, samples, span?)} where `samples` are the clip's samples (Float32Array) and
 * `span` the number of samples shown; `onhover(t)` is told the output sample under the mouse. */
export function stackFigure(stack, width, {onhover} = {}) {
  const dilations = stack.dilations;
  const layers = dilations.length;
  const gap = clamp(Math.floor(260 / (layers + 1)), 14, 34);
  const waveBand = 46;
  const top = 18;
  const height = top + (layers + 1) * gap + waveBand + 14;
  const left = 92;
  const {canvas, context} = crispCanvas(width, height, {class: "wavenet-stack", role: "img"});
  canvas.dataset.dilations = dilations.join(",");
  const caption = h("figcaption", {class: "small muted"});
  const whole = Math.max(24, Math.ceil(receptiveField(dilations) * 1.3));
  const spans = [...new Set([whole, 256, 64, 24].filter((n) => n <= whole))];
  const zoom = h(
    "select",
    {"aria-label": "samples shown", onchange: () => view && api.show(view.t, view.samples, Number(zoom.value))},
    spans.map((n, i) => h("option", {value: n}, i === 0 ? `the whole receptive field (${n} samples)` : `${n} samples`)),
  );
  let view = null; // {t, first, count, samples}

  const rowY = (i) => top + (layers + 1 - i) * gap; // i: 0 input .. layers, layers+1 output
  const colX = (u) => left + ((u - view.first + 0.5) / view.count) * (width - left - 8);

  function draw() {
    const {t, samples} = view;
    context.clearRect(0, 0, width, height);
    context.fillStyle = "#f4f3ee";
    context.fillRect(0, 0, width, height);
    const px = (width - left - 8) / view.count;
    const dots = px >= 4;
    context.font = "11px system-ui, sans-serif";
    context.textBaseline = "middle";
    for (let i = 0; i <= layers + 1; i++) {
      const y = rowY(i);
      context.fillStyle = "#57606a";
      const name = i === 0 ? "input x" : i === layers + 1 ? "output" : `d = ${dilations[i - 1]}`;
      context.fillText(name, 6, y);
      context.fillStyle = FAINT;
      if (dots) {
        for (let u = view.first; u < view.first + view.count; u++) {
          context.beginPath();
          context.arc(colX(u), y, Math.min(3, px / 3), 0, 2 * Math.PI);
          context.fill();
        }
      } else {
        context.fillRect(left, y - 0.5, width - left - 8, 1);
      }
    }
    // the real input waveform under the input row
    const base = rowY(0) + waveBand / 2 + 4;
    context.strokeStyle = WAVE;
    context.lineWidth = 1;
    context.beginPath();
    for (let u = view.first; u < view.first + view.count; u++) {
      const v = samples && u >= 0 && u < samples.length ? samples[u] : 0;
      const y = base - (v * waveBand) / 2;
      if (u === view.first) context.moveTo(colX(u), y);
      else context.lineTo(colX(u), y);
    }
    context.stroke();
    context.save();
    context.beginPath();
    context.rect(left - 4, 0, width - left, height);
    context.clip(); // edges reaching outside the window stop at its left end
    drawTree(t, px, dots);
    context.restore();
  }

  function drawTree(t, px, dots) {
    const tree = dependencyTree(dilations, t);
    context.strokeStyle = ACCENT;
    context.lineWidth = px >= 4 ? 1.4 : 0.6;
    context.beginPath();
    context.moveTo(colX(t), rowY(layers + 1));
    context.lineTo(colX(t), rowY(layers));
    for (let i = layers; i >= 1; i--) {
      const reach = i === 1 ? [1, 1 + dilations[0]] : [0, dilations[i - 1]];
      for (const u of tree[i]) {
        for (const back of reach) {
          context.moveTo(colX(u), rowY(i));
          context.lineTo(colX(u - back), rowY(i - 1));
        }
      }
    }
    context.stroke();
    context.fillStyle = ACCENT;
    const radius = dots ? Math.min(3.5, px / 2.5) : 1.2;
    for (let i = 0; i <= layers; i++) {
      for (const u of tree[i]) {
        context.beginPath();
        context.arc(colX(u), rowY(i), radius, 0, 2 * Math.PI);
        context.fill();
      }
    }
    context.beginPath();
    context.arc(colX(t), rowY(layers + 1), dots ? radius + 1 : 3, 0, 2 * Math.PI);
    context.fill();
    // the receptive field on the waveform
    const [first, last] = fieldAt(dilations, t, 0);
    context.fillStyle = "rgba(15, 118, 110, 0.14)";
    const x0 = colX(first) - px / 2;
    context.fillRect(x0, rowY(0) + 4, Math.max(2, colX(last) + px / 2 - x0), waveBand);
    describe(canvas, caption, stack, view, [first, last], dots);
  }

  canvas.addEventListener("mousemove", (event) => {
    if (!view) return;
    const box = canvas.getBoundingClientRect();
    const at = ((event.clientX - box.left) * width) / box.width;
    if (at < left) return;
    const u = view.first + Math.floor(((at - left) / (width - left - 8)) * view.count);
    const t = clamp(u, view.first, view.first + view.count - 1);
    if (t !== view.t) {
      view.t = t;
      draw();
      onhover?.(t);
    }
  });

  const api = {
    element: h(
      "figure",
      {class: "wavenet-stack-figure"},
      spans.length > 1 ? h("label", {class: "field inline"}, h("span", {}, "show"), zoom) : null,
      canvas,
      caption,
    ),
    canvas,
    /** The number of samples shown now (the zoom's choice). */
    span: () => Number(zoom.value),
    /** Draw output `t`'s field over `count` samples (default: the zoom's) ending a little after `t`. */
    show(t, samples, count = Number(zoom.value)) {
      const margin = Math.max(1, Math.round(count * 0.08));
      view = {t, samples, count, first: t + margin - count + 1};
      draw();
    },
    /** Move the highlighted output without moving the window (unless it leaves it). */
    highlight(t) {
      if (!view) return;
      if (t < view.first || t >= view.first + view.count) api.show(t, view.samples, view.count);
      else {
        view.t = t;
        draw();
      }
    },
  };
  return api;
}
