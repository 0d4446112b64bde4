// A small line chart on canvas, for the training curves.

import {h} from "./dom.js";
import {crispCanvas} from "./draw.js";

const MARGIN = {left: 44, right: 12, top: 12, bottom: 30};

/** Round ticks covering [lo, hi]: about `count` steps of 1, 2 or 5 times a power of ten;
 * {lo, hi, step, ticks, digits} with lo and hi widened to whole steps. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * 0.999);
  const first = Math.floor(lo / step + 1e-9) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const ticks = [];
  for (let i = 0; first + i * step <= last + step * 1e-6; i++) {
    ticks.push(Number((first + i * step).toFixed(digits)));
  }
  return {lo: first, hi: last, step, ticks, digits};
}

/**
 * A chart with a title; call update(series) with [{name, colour, points: [[x, y], ..],
 * dots: bool, dash: [on, off] or absent}] to redraw. The y range is [yMin, yMax] when given, else the data's.
 */
export function lineChart(title, {width = 560, height = 210, xLabel = "epoch", yMin, yMax} = {}) {
  const {canvas, context} = crispCanvas(width, height, {role: "img", "aria-label": title});
  const key = h("div", {class: "chart-key"});
  const element = h("figure", {class: "chart"}, h("figcaption", {}, title), canvas, key);

  function update(series) {
    const points = series.flatMap((s) => s.points);
    context.clearRect(0, 0, width, height);
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const x0 = 0;
    const x1 = Math.max(1, ...xs);
    const nice = niceTicks(yMin ?? Math.min(...ys, 0), yMax ?? (ys.length ? Math.max(...ys) : 1), 5);
    const y0 = yMin ?? nice.lo;
    const y1 = yMax ?? nice.hi;
    const plotW = width - MARGIN.left - MARGIN.right;
    const plotH = height - MARGIN.top - MARGIN.bottom;
    const px = (x) => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
    const py = (y) => MARGIN.top + (1 - (y - y0) / (y1 - y0 || 1)) * plotH;
    drawAxes(context, {px, py, x0, x1, ticks: nice, plotW, plotH, xLabel});
    for (const s of series) {
      context.strokeStyle = context.fillStyle = s.colour;
      context.lineWidth = 1.5;
      if (s.dots) {
        for (const [x, y] of s.points) {
          context.beginPath();
          context.arc(px(x), py(y), 3, 0, 2 * Math.PI);
          context.fill();
        }
      } else {
        context.setLineDash(s.dash ?? []); // e.g. [6, 4]: dashed
        context.beginPath();
        s.points.forEach(([x, y], i) => (i ? context.lineTo(px(x), py(y)) : context.moveTo(px(x), py(y))));
        context.stroke();
        context.setLineDash([]);
      }
    }
    key.replaceChildren(
      ...series.map((s) =>
        h(
          "span",
          {class: "chart-key-item"},
          h("span", {class: "swatch", style: {background: s.colour}}),
          s.name,
          s.points.length ? `: ${s.points.at(-1)[1].toFixed(3)}` : "",
        ),
      ),
    );
  }

  update([]);
  return {element, canvas, update};
}

function drawAxes(context, {px, py, x0, x1, ticks, plotW, plotH, xLabel}) {
  context.font = "11px system-ui, sans-serif";
  context.fillStyle = "#595959"; // 7:1 on white
  context.strokeStyle = "#e3e3de";
  context.lineWidth = 1;
  context.textAlign = "right";
  context.textBaseline = "middle";
  for (const y of ticks.ticks) {
    context.beginPath();
    context.moveTo(MARGIN.left, py(y));
    context.lineTo(MARGIN.left + plotW, py(y));
    context.stroke();
    context.fillText(y.toFixed(ticks.digits), MARGIN.left - 6, py(y));
  }
  context.textAlign = "center";
  context.textBaseline = "top";
  const step = Math.max(1, Math.ceil((x1 - x0) / 8));
  for (let x = x0; x <= x1; x += step) context.fillText(String(x), px(x), MARGIN.top + plotH + 6);
  context.fillText(xLabel, MARGIN.left + plotW / 2, MARGIN.top + plotH + 18);
  context.strokeStyle = "#999";
  context.strokeRect(MARGIN.left, MARGIN.top, plotW, plotH);
}
