// Painting the convolution view's pieces: the padded input with its window, an activation map
// (cells computed so far, the rest as a faint preview) and a filter.

import {dims, extent, grey, hatch, item, rgb} from "../../draw.js";
import {geometry, ownSettings} from "./geometry.js";

export const GREEN = "#16a34a";
const RED = "#dc2626";
const EMPTY = [236, 235, 230];

function inputColour(s, x, y) {
  const {W, H} = geometry(s);
  const {min, max} = s.data.inputRange;
  const input = s.data.input;
  if (x < 0 || y < 0 || x >= W || y >= H) return Array(3).fill(grey(0, min, max));
  const size = W * H;
  const i = y * W + x;
  if (s.fromImage && dims(input).depth === 3) return [0, 1, 2].map((c) => grey(input.data[c * size + i], min, max));
  return Array(3).fill(grey(input.data[s.view.channel * size + i], min, max));
}

/** The grey scale of the maps: the layer's range, widened by the values computed here. */
export function outputRange(s) {
  const computed = extent(s.view.computed.values());
  return {
    min: Math.min(s.data.outputRange.min, computed.min),
    max: Math.max(s.data.outputRange.max, computed.max),
  };
}

/** The colour of output cell i of `filter`, and whether it is only a faint preview. */
function mapCell(s, filter, i, g, range) {
  const value = s.view.computed.get(`${filter}:${i % g.outW},${Math.floor(i / g.outW)}`);
  if (value !== undefined) return {colour: Array(3).fill(grey(value, range.min, range.max)), alpha: 1};
  if (!ownSettings(s)) return {colour: EMPTY, alpha: 1};
  const known = s.data.output.data[filter * g.outW * g.outH + i];
  return {colour: Array(3).fill(grey(known, range.min, range.max)), alpha: s.view.filling ? 0.22 : 1};
}

export function paintInput(s, context, left, top, pitch, lineWidth) {
  const g = geometry(s);
  const gap = pitch >= 6 ? 1 : 0;
  const cols = g.W + 2 * g.P;
  const rows = g.H + 2 * g.P;
  context.fillStyle = "#7f7f7f";
  context.fillRect(left, top, cols * pitch, rows * pitch);
  for (let yp = 0; yp < rows; yp++) {
    for (let xp = 0; xp < cols; xp++) {
      context.fillStyle = rgb(inputColour(s, xp - g.P, yp - g.P));
      context.fillRect(left + xp * pitch, top + yp * pitch, pitch - gap, pitch - gap);
    }
  }
  if (g.P) {
    context.fillStyle = hatch(context);
    const band = g.P * pitch;
    context.fillRect(left, top, cols * pitch, band);
    context.fillRect(left, top + (rows - g.P) * pitch, cols * pitch, band);
    context.fillRect(left, top + band, band, g.H * pitch);
    context.fillRect(left + (cols - g.P) * pitch, top + band, band, g.H * pitch);
  }
  context.strokeStyle = GREEN;
  context.lineWidth = lineWidth;
  const {x, y} = s.view;
  context.strokeRect(left + x * g.S * pitch, top + y * g.S * pitch, s.p.sx * pitch, s.p.sy * pitch);
}

export function paintMap(s, context, left, top, pitch, filter) {
  const g = geometry(s);
  const range = outputRange(s);
  context.fillStyle = "#fff";
  context.fillRect(left, top, g.outW * pitch, g.outH * pitch);
  for (let i = 0; i < g.outW * g.outH; i++) {
    const {colour, alpha} = mapCell(s, filter, i, g, range);
    context.fillStyle = rgb(colour, alpha);
    context.fillRect(left + (i % g.outW) * pitch, top + Math.floor(i / g.outW) * pitch, pitch, pitch);
  }
  context.strokeStyle = "#555";
  context.lineWidth = 1;
  context.strokeRect(left - 0.5, top - 0.5, g.outW * pitch + 1, g.outH * pitch + 1);
  context.strokeStyle = RED;
  context.lineWidth = Math.max(1, Math.min(2, pitch / 3));
  context.strokeRect(left + s.view.x * pitch, top + s.view.y * pitch, pitch, pitch);
}

export function paintFilter(s, context, left, top, pitch, filter) {
  const weights = item(s.data.weights, filter);
  const {depth, height, width, size} = dims(weights);
  const {min, max} = extent(weights.data); // per filter, as the chapter's demos
  const gap = pitch >= 6 ? 1 : 0;
  context.fillStyle = "#7f7f7f";
  context.fillRect(left, top, width * pitch, height * pitch);
  for (let i = 0; i < size; i++) {
    const colour =
      s.fromImage && depth === 3
        ? [0, 1, 2].map((c) => grey(weights.data[c * size + i], min, max))
        : Array(3).fill(grey(weights.data[s.view.channel * size + i], min, max));
    context.fillStyle = rgb(colour);
    context.fillRect(left + (i % width) * pitch, top + Math.floor(i / width) * pitch, pitch - gap, pitch - gap);
  }
}
