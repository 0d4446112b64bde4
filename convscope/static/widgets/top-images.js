// Top images per filter (Zeiler & Fergus): the test images that excite one conv channel most,
// each with the patch its strongest position sees (its receptive field) outlined, and that
// patch enlarged. Computed once per model by the server (GET .../layers/{i}/top-images).

import {api} from "../api.js";
import {h, errorBox} from "../dom.js";
import {fmt, tensorCanvas} from "../draw.js";

const SHOWN = 48; // CSS px of each image's longer side (two pairs side by side beside a map)
const opened = new Set(); // models whose top images the user asked for: shown on every map after

/** The uint8 image [D, H, W] cut to the box (x, y, w, h). */
function crop(image, [x, y, w, h]) {
  const [depth, height, width] = image.shape;
  const data = new Uint8Array(depth * w * h);
  for (let c = 0; c < depth; c++)
    for (let r = 0; r < h; r++)
      for (let k = 0; k < w; k++) data[(c * h + r) * w + k] = image.data[(c * height + y + r) * width + x + k];
  return {shape: [depth, h, w], data};
}

function topImage(found, top, rank) {
  const [, height, width] = top.image.shape;
  const scale = Math.max(1, Math.floor(SHOWN / Math.max(width, height)));
  const [x, y, w, h_] = top.box;
  const percent = (v, of) => `${(100 * v) / of}%`;
  const whole = h(
    "span",
    {class: "top-image"},
    tensorCanvas(top.image, {scale, min: 0, max: 255, class: "pixelated"}),
    h("span", {
      class: "patch-box",
      style: {left: percent(x, width), top: percent(y, height), width: percent(w, width), height: percent(h_, height)},
    }),
  );
  const patchScale = Math.max(1, Math.floor(SHOWN / Math.max(w, h_)));
  return h(
    "figure",
    {
      class: "top-image-card",
      role: "img",
      "aria-label": `top ${rank + 1}: test image ${top.index}, value ${fmt(top.value)}, patch at x ${x}, y ${y}, ${w} by ${h_}`,
    },
    h("span", {class: "top-image-pair"}, whole, tensorCanvas(crop(top.image, top.box), {scale: patchScale, min: 0, max: 255, class: "pixelated patch"})),
    h("figcaption", {}, `#${top.index}: ${fmt(top.value)}`),
  );
}

/**
 * The panel for channel `channel` of conv layer `layer`: a button that loads its top images
 * (after the first, a model's top images load by themselves as other maps are chosen).
 */
export function topImagesPanel(model, layer, channel) {
  const body = h("div", {class: "top-images-body"});
  const element = h(
    "section",
    {class: "top-images", "aria-label": `top images of map ${channel}`},
    h("h4", {}, `What excites map ${channel} most`),
    body,
  );
  async function load() {
    opened.add(model.id);
    body.replaceChildren(h("p", {class: "muted small"}, "finding them in the test images (once per model)..."));
    try {
      const found = await api.topImages(model.id, layer.index, channel);
      body.replaceChildren(
        h("p", {class: "muted small"}, `The ${found.images.length} test images from the ${found.source} where map ${channel} peaks highest, ` +
          "each with the patch its peak sees outlined, and that patch enlarged."),
        h("div", {class: "top-image-grid", "data-layer": layer.index, "data-channel": channel}, found.images.map((top, i) => topImage(found, top, i))),
      );
    } catch (error) {
      body.replaceChildren(errorBox(error));
    }
  }
  if (opened.has(model.id)) load();
  else body.append(h("button", {type: "button", class: "top-images-button", onclick: load}, `Show the top images of map ${channel}`));
  return element;
}
