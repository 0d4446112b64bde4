// A deep layer's weights as a readable heat map: one row per neuron, one column per input value
// (grouped by input channel, or sorted by how strongly the layer weighs each input), with axes,
// a diverging colour scale, and the exact weight under the pointer (or the arrow keys).

import {h, selectField} from "../../dom.js";
import {crispCanvas, fmt, rgb, signedColour, volumeText} from "../../draw.js";
import {clamp} from "../../util.js";

const LEFT = 64; // px for the row names
const TOP = 22; // px for the channel labels

/** Column order: the input values in storage order (grouped by channel, each channel's H x W
 * values together) or sorted by mean |weight| over the neurons, largest first. */
export function columnOrder(weights, rows, cols, mode) {
  const order = Array.from({length: cols}, (_, j) => j);
  if (mode !== "sorted") return order;
  const strength = order.map((j) => {
    let total = 0;
    for (let i = 0; i < rows; i++) total += Math.abs(weights[i * cols + j]);
    return total / rows;
  });
  return order.sort((a, b) => strength[b] - strength[a] || a - b);
}

/** Where input value `j` of an [depth, sy, sx] input volume sits. */
function inputPosition(j, volume) {
  const area = volume.sx * volume.sy;
  const c = Math.floor(j / area);
  const rest = j % area;
  return {c, y: Math.floor(rest / volume.sx), x: rest % volume.sx};
}

function paint(context, data, order, layout) {
  const {rows, cols, cw, ch, maxAbs, volume, grouped} = layout;
  context.clearRect(0, 0, LEFT + cols * cw + 2, TOP + rows * ch + 2);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < cols; k++) {
      context.fillStyle = rgb(signedColour(data[i * cols + order[k]], maxAbs));
      context.fillRect(LEFT + k * cw, TOP + i * ch, cw, ch);
    }
  }
  context.fillStyle = "#333";
  context.font = "11px system-ui, sans-serif";
  context.textBaseline = "middle";
  context.textAlign = "right";
  const every = Math.ceil(12 / ch); // no overlapping row names
  layout.rowNames.forEach((name, i) => {
    if (i % every === 0) context.fillText(name, LEFT - 4, TOP + (i + 0.5) * ch);
  });
  const area = volume.sx * volume.sy;
  if (grouped && volume.depth > 1 && area > 1) {
    context.textAlign = "center";
    const step = Math.ceil(28 / (area * cw)); // label every channel that has room
    for (let c = 0; c < volume.depth; c++) {
      const x = LEFT + c * area * cw;
      context.fillStyle = "#333";
      context.fillRect(x, TOP - 4, 1, rows * ch + 4);
      if (c % step === 0) context.fillText(`c${c}`, x + (area * cw) / 2, TOP - 10);
    }
  }
}

/** The heat map of `weights` ([N, ...input volume]) for `layer`; `rowNames` name the neurons. */
export function weightHeatmap(weights, layer, rowNames, {sort = "grouped", onSort} = {}) {
  const [rows, ...rest] = weights.shape;
  const cols = rest.reduce((a, b) => a * b, 1);
  const volume = layer.in_volume;
  const data = weights.data;
  const maxAbs = Math.max(...Array.from(data, Math.abs));
  const cw = clamp(Math.floor(760 / cols), 2, 28);
  const ch = clamp(Math.floor(360 / rows), 6, 24);
  const order = columnOrder(data, rows, cols, sort);
  const layout = {rows, cols, cw, ch, maxAbs, volume, grouped: sort !== "sorted", rowNames};
  const {canvas, context} = crispCanvas(LEFT + cols * cw + 2, TOP + rows * ch + 2, {
    class: "weight-heatmap",
    tabindex: 0,
    role: "img",
    "aria-label": `heat map of ${rows} neurons x ${cols} input weights; hover or use the arrow keys to read a weight`,
  });
  paint(context, data, order, layout);
  const readout = h("p", {class: "heat-readout", "aria-live": "polite"}, "Hover a cell to read its weight.");
  const cursor = {i: 0, k: 0};
  function show(i, k) {
    Object.assign(cursor, {i: clamp(i, 0, rows - 1), k: clamp(k, 0, cols - 1)});
    const j = order[cursor.k];
    const w = data[cursor.i * cols + j];
    const at = inputPosition(j, volume);
    Object.assign(canvas.dataset, {row: cursor.i, col: j, weight: String(w)});
    readout.replaceChildren(
      h("strong", {}, `${rowNames[cursor.i]} ← input ${j}`),
      ` (channel ${at.c}, y ${at.y}, x ${at.x}): weight `,
      h("strong", {class: "heat-value"}, fmt(w, 4)),
    );
  }
  canvas.addEventListener("mousemove", (event) => {
    const box = canvas.getBoundingClientRect();
    const k = Math.floor((event.clientX - box.left - LEFT) / cw);
    const i = Math.floor((event.clientY - box.top - TOP) / ch);
    if (k >= 0 && i >= 0 && k < cols && i < rows) show(i, k);
  });
  canvas.addEventListener("keydown", (event) => {
    const moves = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]};
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    show(cursor.i + move[0], cursor.k + move[1]);
  });
  const sorter = selectField(
    "Columns",
    [
      ["grouped", "grouped by input channel"],
      ["sorted", "sorted by mean |weight|"],
    ],
    sort,
    (v) => onSort?.(v),
  );
  const axis =
    sort === "sorted"
      ? `${cols} input values of ${volumeText(volume)}, strongest-weighed first`
      : `${cols} input values of ${volumeText(volume)}, channel by channel (c0, c1, …), each row by row`;
  return h(
    "figure",
    {class: "heatmap"},
    h("div", {class: "toolbar"}, sorter),
    h("figcaption", {}, `${rows} neurons (rows) × ${axis} (columns)`),
    h("div", {class: "heatmap-scroll"}, canvas),
    h(
      "div",
      {class: "legend", "aria-label": `weight colour scale from ${fmt(-maxAbs)} (red, negative) through 0 (white) to ${fmt(maxAbs)} (blue, positive)`},
      h("span", {class: "legend-caption"}, "weight"),
      h("span", {class: "legend-value"}, fmt(-maxAbs)),
      h("span", {class: "legend-ramp diverging"}),
      h("span", {class: "legend-value"}, fmt(maxAbs)),
    ),
    readout,
  );
}
