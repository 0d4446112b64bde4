// D2: all filters. The padded input on top, each filter below it with its activation map.

import {h} from "../../dom.js";
import {crispCanvas} from "../../draw.js";
import {clamp} from "../../util.js";
import {geometry, track, windowAt} from "./geometry.js";
import {GREEN, paintFilter, paintInput, paintMap} from "./paint.js";
import {neuronGraphic} from "./single.js";

/** Sizes and places of the input, the filters and their maps in a canvas `width` px wide. */
function layoutFor(s, width) {
  const g = geometry(s);
  const inputPitch = clamp(Math.floor(150 / (Math.max(g.W, g.H) + 2 * g.P)), 2, 6);
  const cols = Math.min(s.p.filters, Math.max(4, Math.floor(width / 72)));
  const colW = width / cols;
  const filterPitch = clamp(Math.floor(Math.min(64, colW * 0.55) / Math.max(s.p.sx, s.p.sy)), 2, 13);
  const mapPitch = clamp(Math.floor((colW - 10) / Math.max(g.outW, g.outH, 1)), 1, 4);
  const inputSize = {w: (g.W + 2 * g.P) * inputPitch, h: (g.H + 2 * g.P) * inputPitch};
  const filterSize = {w: s.p.sx * filterPitch, h: s.p.sy * filterPitch};
  const mapSize = {w: g.outW * mapPitch, h: g.outH * mapPitch};
  const firstRow = 10 + inputSize.h + 70;
  const rowH = filterSize.h + 36 + mapSize.h + 26;
  return {
    width,
    inputPitch,
    filterPitch,
    mapPitch,
    inputSize,
    filterSize,
    mapSize,
    firstRow,
    rowH,
    cols,
    colW,
    input: {x: Math.round((width - inputSize.w) / 2), y: 10},
  };
}

/** The D2 panel (and s.parts: its canvas and the equation). */
export function buildAll(s) {
  const width = Math.max(720, Math.min(1240, s.stage.clientWidth || 1100));
  const layout = layoutFor(s, width);
  const n = s.p.filters;
  const height = layout.firstRow + Math.ceil(n / layout.cols) * layout.rowH;
  const drawing = crispCanvas(width, height, {
    tabindex: 0,
    class: "conv-all",
    role: "img",
    "aria-label": `input, all ${n} filters and their activation maps; arrow keys move the window`,
  });
  s.parts = {
    all: {...drawing, layout, height},
    equation: h("div", {class: "conv-equation", "aria-live": "polite"}),
  };
  track(
    s,
    drawing.canvas,
    (mx, my) => positionInAll(s, layout, mx, my),
    (mx, my) => {
      const filter = filterAt(s, layout, mx, my);
      if (filter !== null) s.selectFilter(filter);
    },
  );
  return h(
    "div",
    {class: "conv-all-wrap"},
    drawing.canvas,
    h("div", {class: "conv-result"}, neuronGraphic(), s.parts.equation),
  );
}

const slot = (layout, f) => ({
  cx: Math.round(layout.colW * ((f % layout.cols) + 0.5)), // whole pixels: no seams between cells
  top: layout.firstRow + Math.floor(f / layout.cols) * layout.rowH,
});

function positionInAll(s, layout, mx, my) {
  const {input, inputPitch, inputSize, mapSize} = layout;
  if (mx >= input.x && my >= input.y && mx < input.x + inputSize.w && my < input.y + inputSize.h)
    return windowAt(s, Math.floor((mx - input.x) / inputPitch), Math.floor((my - input.y) / inputPitch));
  for (let f = 0; f < s.p.filters; f++) {
    const {cx, top} = slot(layout, f);
    const left = cx - Math.floor(mapSize.w / 2);
    const mapTop = top + layout.filterSize.h + 36;
    if (mx >= left && my >= mapTop && mx < left + mapSize.w && my < mapTop + mapSize.h) {
      return [Math.floor((mx - left) / layout.mapPitch), Math.floor((my - mapTop) / layout.mapPitch)];
    }
  }
  return null;
}

function filterAt(s, layout, mx, my) {
  for (let f = 0; f < s.p.filters; f++) {
    const {cx, top} = slot(layout, f);
    if (Math.abs(mx - cx) <= layout.colW / 2 && my >= top && my < top + layout.rowH) return f;
  }
  return null;
}

/** The lines from the input to each filter and from each filter to its map. */
function paintWires(s, context, layout) {
  const {input, inputSize, filterSize} = layout;
  context.strokeStyle = "#222";
  context.lineWidth = 1.5;
  const fromX = input.x + inputSize.w / 2;
  const fromY = input.y + inputSize.h + 2;
  for (let f = 0; f < s.p.filters; f++) {
    const {cx, top} = slot(layout, f);
    context.beginPath();
    if (top === layout.firstRow) {
      const mid = (fromY + top) / 2;
      context.moveTo(fromX, fromY);
      context.bezierCurveTo(fromX, mid, cx, mid, cx, top - 2);
    }
    context.moveTo(cx, top + filterSize.h + 2);
    context.lineTo(cx, top + filterSize.h + 34);
    context.stroke();
  }
}

export function paintAll(s) {
  const {context, layout, height} = s.parts.all;
  const {input, filterSize, mapSize} = layout;
  context.clearRect(0, 0, layout.width, height);
  paintWires(s, context, layout);
  paintInput(s, context, input.x, input.y, layout.inputPitch, 2);
  context.font = "12px system-ui, sans-serif";
  context.textAlign = "center";
  for (let f = 0; f < s.p.filters; f++) {
    const {cx, top} = slot(layout, f);
    const chosen = f === s.view.filter;
    paintFilter(s, context, cx - Math.floor(filterSize.w / 2), top, layout.filterPitch, f);
    context.strokeStyle = chosen ? GREEN : "#222";
    context.lineWidth = chosen ? 3 : 1.5;
    context.strokeRect(cx - Math.floor(filterSize.w / 2) - 1, top - 1, filterSize.w + 2, filterSize.h + 2);
    const mapTop = top + filterSize.h + 36;
    paintMap(s, context, cx - Math.floor(mapSize.w / 2), mapTop, layout.mapPitch, f);
    context.fillStyle = chosen ? GREEN : "#444";
    context.fillText(`filter ${f}`, cx, mapTop + mapSize.h + 16);
  }
  s.parts.all.canvas.dataset.marker = `${s.view.x},${s.view.y}`;
}
