// The input chooser shared by the views that run the network: a dataset sample (with
// previous / next / random), a digit drawn in the page, or an uploaded image.

import {h, errorBox} from "./dom.js";
import {drawingPad} from "./pad.js";
import {dims, pixelCanvas} from "./draw.js";

/** Input references (docs/api.md): {sample: {dataset, index}} or {pixels: {..}}. */
export const sampleInput = (dataset, index) => ({sample: {dataset, index}});

/** The model-convention input tensor (byte/255 - 0.5, [D, H, W]) back as pixel bytes (HWC). */
export function pixelsFromTensor(tensor) {
  const {depth, height, width, size} = dims(tensor);
  const data = new Array(size * depth);
  for (let c = 0; c < depth; c++) {
    for (let i = 0; i < size; i++) {
      data[i * depth + c] = Math.max(0, Math.min(255, Math.round((tensor.data[c * size + i] + 0.5) * 255)));
    }
  }
  return {width, height, depth, data};
}

function pixelsCanvas(pixels, scale) {
  const canvas = pixelCanvas(pixels.width, pixels.height, scale, {
    class: "pixelated thumb",
    role: "img",
    "aria-label": "the current input",
  });
  const context = canvas.getContext("2d");
  const image = context.createImageData(pixels.width, pixels.height);
  for (let i = 0; i < pixels.width * pixels.height; i++) {
    for (let c = 0; c < 3; c++)
      image.data[4 * i + c] = pixels.data[i * pixels.depth + (pixels.depth === 3 ? c : 0)];
    image.data[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

/**
 * The input bar. `onChange(input)` runs after the user picks another input (already stored
 * with ctx.setInput, so other views see it too). Uploads go through the server's decoder once;
 * the fitted input then travels as pixels, which every endpoint (conv-step too) accepts.
 */
export function inputBar(ctx, onChange) {
  const dataset = ctx.datasets.find((d) => d.name === ctx.dataset);
  const status = h("span", {class: "input-status", "aria-live": "polite"});
  const thumb = h("span", {class: "input-thumb"});
  const message = h("div", {class: "input-message"});
  const index = h("input", {
    type: "number",
    min: 0,
    max: dataset ? dataset.count - 1 : undefined,
    value: ctx.input?.sample?.index ?? 0,
    "aria-label": "sample index",
    class: "sample-index",
  });
  const padHolder = h("div", {class: "input-pad", hidden: true});

  function choose(input, {activations, source} = {}) {
    message.replaceChildren();
    ctx.setInput(input, {activations, source});
    show();
    onChange(input);
  }

  function chooseSample(i) {
    if (!dataset) return;
    const wrapped = ((i % dataset.count) + dataset.count) % dataset.count;
    index.value = wrapped;
    choose(sampleInput(dataset.name, wrapped));
  }

  async function show() {
    const input = ctx.input;
    if (!input) {
      status.textContent = "no input yet: draw or upload one";
    } else if (input.sample) {
      const {dataset: name, index: i} = input.sample;
      thumb.replaceChildren(
        h("img", {class: "pixelated thumb", src: ctx.api.sampleUrl(name, i, 1), alt: `${name} sample ${i}`}),
      );
      status.textContent = `${name} sample ${i}`;
      try {
        const page = await ctx.api.samples(name, i, 1);
        const label = page.samples[0]?.label;
        if (label !== undefined && ctx.input === input)
          status.textContent += ` (label: ${page.classes[label]})`;
      } catch (error) {
        message.replaceChildren(errorBox(error));
      }
    } else {
      thumb.replaceChildren(
        pixelsCanvas(input.pixels, 48 / Math.max(input.pixels.width, input.pixels.height)),
      );
      status.textContent = ctx.inputSource;
    }
  }

  const pad = drawingPad({
    size: 168,
    brush: 14,
    onDraw: (final) => {
      const pixels = pad.pixels();
      if (final && pixels) choose({pixels}, {source: "your drawing"});
    },
  });
  padHolder.append(pad.element, h("button", {type: "button", onclick: () => pad.clear()}, "Clear"));

  async function upload(file) {
    if (!file) return;
    try {
      const activations = await ctx.api.activationsUpload(ctx.model.id, file);
      choose({pixels: pixelsFromTensor(activations.input)}, {activations, source: `uploaded ${file.name}`});
    } catch (error) {
      message.replaceChildren(errorBox(error));
    }
  }

  const samplesAvailable = Boolean(dataset);
  const bar = h(
    "div",
    {class: "input-bar", role: "group", "aria-label": "Input"},
    h("span", {class: "input-title"}, "Input"),
    thumb,
    status,
    samplesAvailable
      ? [
          h(
            "button",
            {
              type: "button",
              "aria-label": "previous sample",
              onclick: () => chooseSample(Number(index.value) - 1),
            },
            "◀",
          ),
          h("label", {class: "field inline"}, h("span", {}, "sample"), index),
          h(
            "button",
            {
              type: "button",
              "aria-label": "next sample",
              onclick: () => chooseSample(Number(index.value) + 1),
            },
            "▶",
          ),
          h(
            "button",
            {type: "button", onclick: () => chooseSample(Math.floor(Math.random() * dataset.count))},
            "Random",
          ),
        ]
      : h("span", {class: "muted"}, "no samples for this model's dataset"),
    h(
      "button",
      {
        type: "button",
        "aria-expanded": "false",
        onclick: (e) => {
          padHolder.hidden = !padHolder.hidden;
          e.target.setAttribute("aria-expanded", String(!padHolder.hidden));
        },
      },
      "Draw",
    ),
    h(
      "label",
      {class: "button"},
      "Upload image",
      h("input", {
        type: "file",
        accept: "image/png,image/jpeg",
        class: "visually-hidden",
        onchange: (e) => upload(e.target.files[0]),
      }),
    ),
  );
  index.addEventListener("change", () => chooseSample(Number(index.value)));
  show();
  return h("div", {class: "input-area"}, bar, padHolder, message);
}
