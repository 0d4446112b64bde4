// A layer's maps as a grid of tiles, one per channel, redrawn every frame from uint8 levels
// (grey over the whole layer's range, as the chapter's demos draw maps); hovering a tile shows
// it enlarged, titled "<layer> - <channel>" as ml4a's ConvnetViewer titles it.

import {h} from "../dom.js";
import {pixelCanvas} from "../draw.js";

const MAX_TILES = 256;

/** A tile grid for `layer` (a node of the model description); `update(levels)` draws a
 * [D, H, W] uint8 layer. */
export function tileGrid(layer, {tile = 64, zoom = 224} = {}) {
  const {sx: width, sy: height, depth} = layer.out_volume;
  const shown = Math.min(depth, MAX_TILES);
  const scale = Math.max(1, Math.floor(tile / Math.max(width, height)));
  const tiles = Array.from({length: shown}, (_, c) =>
    pixelCanvas(width, height, scale, {title: `${layer.name} - ${c}`, "data-channel": c}),
  );
  const zoomed = pixelCanvas(width, height, Math.max(1, Math.floor(zoom / Math.max(width, height))));
  const zoomTitle = h("figcaption", {}, `${layer.name} - 0 (hover a map to enlarge it)`);
  let hovered = 0;
  let last = null;
  const grid = h("div", {class: "tile-grid"}, tiles);
  grid.addEventListener("pointerover", (event) => {
    const channel = event.target.dataset?.channel;
    if (channel === undefined) return;
    hovered = Number(channel);
    zoomTitle.textContent = `${layer.name} - ${hovered}`;
    if (last) paint(zoomed, last, hovered);
  });
  const images = tiles.map((canvas) => canvas.getContext("2d").createImageData(width, height));

  function paint(canvas, data, channel, image = null) {
    const size = width * height;
    const target = image ?? canvas.getContext("2d").createImageData(width, height);
    const pixels = target.data;
    for (let i = 0, base = channel * size; i < size; i++) {
      const v = data[base + i];
      const o = 4 * i;
      pixels[o] = pixels[o + 1] = pixels[o + 2] = v;
      pixels[o + 3] = 255;
    }
    canvas.getContext("2d").putImageData(target, 0, 0);
  }

  return {
    element: h(
      "div",
      {class: "tile-layer"},
      grid,
      h("figure", {class: "tile-zoom"}, zoomed, zoomTitle),
      depth > shown ? h("p", {class: "muted small"}, `the first ${shown} of ${depth} maps`) : null,
    ),
    update(levels) {
      last = levels;
      tiles.forEach((canvas, c) => paint(canvas, levels, c, images[c]));
      paint(zoomed, levels, hovered);
    },
  };
}
