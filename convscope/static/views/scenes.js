// Beyond one digit per image, on MNIST scenes: a localizer's class and box, a YOLO-style
// detector's boxes (its S x S grid and a confidence threshold to play with) and a segmenter's
// class for every pixel, for a test scene, a scene drawn here or an uploaded image; the test
// scenes' ground truth on demand, and every layer's maps for the same input.

import {latestOnly} from "../api.js";
import {h, errorBox, notice, percent, setChildren} from "../dom.js";
import {barChart, crispCanvas, dims, fmt, inkOn, rgb} from "../draw.js";
import {inputRange, sampleInput, sampleStepper, toggleButton, uploader} from "../input.js";
import {drawingPad} from "../pad.js";
import {clamp} from "../util.js";
import {mapsPanel} from "./maps.js";

const VIEW_PX = 384; // the scene is drawn about this large
const PAD_PX = 288; // the drawing pad for composing a scene
const MASK_ALPHA = 0.6;
const TRUTH_COLOUR = [255, 255, 255]; // true boxes: dashed white
// One colour per digit (background stays transparent).
export const PALETTE = [
  [230, 25, 75],
  [60, 180, 75],
  [255, 200, 25],
  [0, 130, 200],
  [245, 130, 48],
  [145, 30, 180],
  [70, 240, 240],
  [250, 190, 212], // pink: the magenta it replaces was close to 5's purple
  [170, 110, 40],
  [128, 128, 0],
];
const INTRO = {
  localize:
    "One digit somewhere in the image: the network gives class scores and a box " +
    "(centre, width and height as fractions of the image).",
  detect:
    "YOLO-style detection: the image is cut into an S x S grid; each cell predicts one box, how " +
    "sure it is that a digit's centre lies in it (objectness) and the digit's class. Boxes " +
    "scoring objectness x class probability above the threshold are kept, the rest removed by " +
    "non-maximum suppression.",
  segment: "Segmentation: the network gives every pixel a class, a digit 0-9 or background.",
};

/** Intersection over union of two (x, y, w, h) boxes. */
export function boxIou(a, b) {
  const w = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const hgt = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const union = a[2] * a[3] + b[2] * b[3] - w * hgt;
  return union > 0 ? (w * hgt) / union : 0;
}

/** A [1, H, W] input tensor (`range`: the model input's values for bytes 0 and 255) as an
 * offscreen grey canvas of its own size. */
function greyCanvas(tensor, {min, max}) {
  const {height, width, size} = dims(tensor);
  const canvas = h("canvas", {width, height});
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  for (let i = 0; i < size; i++) {
    const v = clamp(Math.round(((tensor.data[i] - min) / (max - min)) * 255), 0, 255);
    image.data.set([v, v, v, 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

/** A [H, W] class map as an offscreen canvas: digits in their colours, background clear. */
function maskCanvas(mask, background) {
  const [height, width] = mask.shape;
  const canvas = h("canvas", {width, height});
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  mask.data.forEach((c, i) => {
    if (c !== background && PALETTE[c]) image.data.set([...PALETTE[c], 255], 4 * i);
  });
  context.putImageData(image, 0, 0);
  return canvas;
}

/** The scene enlarged `scale` times, optionally with a class map over it. */
function sceneCanvas(input, scale, {mask, background, label, range}) {
  const {height, width} = dims(input);
  const {canvas, context} = crispCanvas(width * scale, height * scale, {
    class: "scene-canvas",
    role: "img",
    "aria-label": label,
  });
  context.imageSmoothingEnabled = false;
  context.drawImage(greyCanvas(input, range), 0, 0, width * scale, height * scale);
  if (mask) {
    context.globalAlpha = MASK_ALPHA;
    context.drawImage(maskCanvas(mask, background), 0, 0, width * scale, height * scale);
    context.globalAlpha = 1;
  }
  return {canvas, context};
}

/** A box in class colour with a "<class> <confidence>" tag; dashed for ground truth. */
function drawBox(context, box, scale, colour, tag, {dashed = false} = {}) {
  const [x, y, w, hgt] = box.map((v) => v * scale);
  context.save();
  context.lineWidth = 2;
  context.strokeStyle = rgb(colour);
  if (dashed) context.setLineDash([5, 4]);
  context.strokeRect(x, y, w, hgt);
  if (tag) {
    context.font = "12px system-ui, sans-serif";
    const width = context.measureText(tag).width + 8;
    const top = y >= 16 ? y - 16 : y;
    const left = clamp(x, 0, parseFloat(context.canvas.style.width) - width);
    context.fillStyle = rgb(colour);
    context.fillRect(left, top, width, 16);
    context.fillStyle = inkOn(colour);
    context.textBaseline = "middle";
    context.fillText(tag, left + 4, top + 8);
  }
  context.restore();
}

/** The S x S grid, cells whose objectness reaches `threshold` tinted; returns their count. */
function drawGrid(context, grid, scale, threshold) {
  const cell = grid.cell * scale;
  let lit = 0;
  context.save();
  context.fillStyle = "rgba(255, 235, 59, 0.3)";
  grid.objectness.forEach((row, r) =>
    row.forEach((p, c) => {
      if (p < threshold) return;
      lit++;
      context.fillRect(c * cell, r * cell, cell, cell);
    }),
  );
  context.strokeStyle = "rgba(120, 200, 255, 0.55)";
  context.lineWidth = 1;
  for (let i = 1; i < grid.size; i++) {
    context.beginPath();
    context.moveTo(i * cell + 0.5, 0);
    context.lineTo(i * cell + 0.5, grid.size * cell);
    context.moveTo(0, i * cell + 0.5);
    context.lineTo(grid.size * cell, i * cell + 0.5);
    context.stroke();
  }
  context.restore();
  return lit;
}

const boxText = (box) => `(${box.map((v) => Math.round(v)).join(", ")})`;

/** The view's settings from the address: ground truth and grid shown, confidence threshold. */
function sceneSettings(params) {
  return {
    truth: params.get("truth") === "1",
    grid: params.get("grid") === "1",
    threshold: clamp(Number(params.get("threshold") ?? 0.25) || 0.25, 0.01, 0.99),
  };
}

/** The toggles (ground truth; a detector's grid) and a detector's confidence threshold, kept in
 * `settings` and the address; `onChange()` redraws. */
function sceneControls(task, settings, ctx, onChange) {
  const checkbox = (label, key, extra = {}) => {
    const box = h("input", {
      type: "checkbox",
      checked: settings[key],
      onchange: () => {
        settings[key] = box.checked;
        ctx.setParams({[key]: box.checked ? 1 : null});
        onChange();
      },
      ...extra,
    });
    return {box, element: h("label", {class: "radio"}, box, label)};
  };
  const truthToggle = checkbox("ground truth", "truth");
  const gridToggle = checkbox("grid", "grid");
  const thresholdValue = h("output", {}, settings.threshold.toFixed(2));
  const threshold = h("input", {
    type: "range",
    min: 0.01,
    max: 0.99,
    step: 0.01,
    value: settings.threshold,
    "aria-label": "confidence threshold",
    oninput: () => {
      settings.threshold = Number(threshold.value);
      thresholdValue.textContent = settings.threshold.toFixed(2);
      ctx.setParams({threshold: settings.threshold});
      onChange();
    },
  });
  const element = h(
    "div",
    {class: "toolbar"},
    truthToggle.element,
    task === "detect"
      ? [
          gridToggle.element,
          h(
            "label",
            {class: "field inline"},
            h("span", {}, "confidence threshold"),
            threshold,
            thresholdValue,
          ),
        ]
      : null,
  );
  return {element, truthToggle};
}

/** The prediction drawn over the scene (and a segmenter's true classes beside it): {figures,
 * kept}, `kept` the detections that reach the threshold. */
function sceneFigures(task, prediction, truth, settings, scale, range) {
  const showTruth = settings.truth && Boolean(truth);
  const figures = [];
  const main = sceneCanvas(prediction.input, scale, {
    range,
    mask: task === "segment" ? prediction.mask : null,
    background: prediction.background,
    label: `the input with the ${task === "segment" ? "predicted classes" : "predicted boxes"}`,
  });
  let boxes = 0;
  let lit = 0;
  if (task === "detect" && settings.grid) {
    lit = drawGrid(main.context, prediction.grid, scale, settings.threshold);
  }
  if (showTruth && truth.objects && task !== "segment") {
    for (const o of truth.objects) drawBox(main.context, o.box, scale, TRUTH_COLOUR, null, {dashed: true});
  }
  const kept = task === "detect" ? prediction.detections.filter((d) => d.score >= settings.threshold) : [];
  if (task === "detect") {
    for (const d of [...kept].reverse()) {
      const tag = `${prediction.classes[d.class]} ${d.score.toFixed(2)}`;
      drawBox(main.context, d.box, scale, PALETTE[d.class], tag);
    }
    boxes = kept.length;
  } else if (task === "localize") {
    const tag = `${prediction.classes[prediction.class]} ${prediction.confidence.toFixed(2)}`;
    drawBox(main.context, prediction.box, scale, PALETTE[prediction.class], tag);
    boxes = 1;
  }
  Object.assign(main.canvas.dataset, {boxes, cells: lit, grid: settings.grid ? "on" : "off"});
  main.canvas.dataset.truth = showTruth ? "on" : "off";
  figures.push(h("figure", {}, h("figcaption", {}, "prediction"), main.canvas));
  if (task === "segment" && showTruth && truth.mask) {
    const real = sceneCanvas(prediction.input, scale, {
      range,
      mask: truth.mask,
      background: prediction.background,
      label: "the input with the true classes",
    });
    real.canvas.classList.add("truth-canvas");
    figures.push(h("figure", {}, h("figcaption", {}, "ground truth"), real.canvas));
  }
  return {figures, kept};
}

/** A detector's kept boxes, listed. */
function detectionsSide(prediction, kept, truth, settings) {
  const names = prediction.classes;
  return [
    h("h3", {}, `${kept.length} digit${kept.length === 1 ? "" : "s"} found`),
    h(
      "p",
      {class: "muted small"},
      `score ≥ ${settings.threshold.toFixed(2)}; ${prediction.detections.length} box${prediction.detections.length === 1 ? "" : "es"} ` +
        `≥ ${prediction.min_score} after non-maximum suppression` +
        (truth?.objects
          ? `; the scene holds ${truth.objects.length} digit${truth.objects.length === 1 ? "" : "s"}`
          : ""),
    ),
    kept.length
      ? h(
          "ol",
          {class: "detections"},
          kept.map((d) =>
            h(
              "li",
              {},
              h("span", {class: "swatch", style: {background: rgb(PALETTE[d.class])}}),
              `${names[d.class]} · ${percent(d.score)} · ${boxText(d.box)}`,
            ),
          ),
        )
      : notice("No box reaches the threshold: lower it to see the network's weaker guesses."),
  ];
}

/** A localizer's class and box, against the true ones when known, and its class probabilities. */
function localizationSide(prediction, truth) {
  const names = prediction.classes;
  const real = truth?.objects?.[0];
  return [
    h(
      "p",
      {class: "prediction"},
      `Prediction: ${names[prediction.class]} `,
      h("span", {class: "muted"}, `(${percent(prediction.confidence)})`),
    ),
    h("p", {class: "muted small"}, `box (x, y, w, h) ${boxText(prediction.box)}`),
    real
      ? h(
          "p",
          {class: "small"},
          `label ${names[real.class]} · true box ${boxText(real.box)} · IoU ` +
            fmt(boxIou(prediction.box, real.box)),
        )
      : null,
    barChart(prediction.probabilities, names, {
      format: (v) => percent(v),
      caption: "class probabilities",
    }),
  ];
}

/** A segmenter's classes in their colours, with each one's share of the pixels. */
function segmentationSide(prediction) {
  const names = prediction.classes;
  const total = prediction.pixels.reduce((a, b) => a + b, 0);
  return [
    h("h3", {}, "Classes"),
    h(
      "ul",
      {class: "mask-legend"},
      names.map((name, c) => {
        const what = c === prediction.background ? name : `digit ${name}`;
        return h(
          "li",
          {class: prediction.pixels[c] ? "" : "muted"},
          h("span", {
            class: "swatch",
            style: {background: c === prediction.background ? "transparent" : rgb(PALETTE[c])},
          }),
          `${what}: ${percent(prediction.pixels[c] / total)}`,
        );
      }),
    ),
    h("p", {class: "muted small"}, "share of the pixels given each class"),
  ];
}

/** What the network found, beside the scene. */
function sidePanel(task, prediction, kept, truth, settings) {
  if (task === "detect") return detectionsSide(prediction, kept, truth, settings);
  if (task === "localize") return localizationSide(prediction, truth);
  return segmentationSide(prediction);
}

export async function render(root, ctx) {
  const model = ctx.model;
  const task = model.task;
  const {sx, sy} = model.input;
  const scale = Math.max(1, Math.floor(VIEW_PX / Math.max(sx, sy)));
  const dataset = ctx.datasets.find((d) => d.name === model.dataset);
  const settings = sceneSettings(ctx.params);
  let current = null; // {input, prediction, truth}
  const figure = h("div", {class: "scene-figures", "aria-live": "polite"});
  const side = h("div", {class: "card scene-side"});
  const message = h("div");
  const status = h("span", {class: "input-status", "aria-live": "polite"});
  const panel = mapsPanel(ctx);

  const controls = sceneControls(task, settings, ctx, () => draw());
  const factor = Math.max(1, Math.round(PAD_PX / sx));
  const pad = drawingPad({
    size: sx * factor,
    brush: 3.4 * factor,
    label: "Scene pad: draw a few digits anywhere in the square",
    onDraw: (final) => final && evaluate({pixels: pad.scaled(sx)}, {source: "your scene"}),
  });
  const padHolder = h(
    "div",
    {class: "scene-pad", hidden: true},
    pad.element,
    h(
      "div",
      {},
      h(
        "p",
        {class: "muted small"},
        `Draw a few digits, each a fifth to a third of the square tall, as in the test scenes; ` +
          `the network sees the square as ${sx}x${sy} pixels.`,
      ),
      h("button", {type: "button", onclick: () => pad.clear()}, "Clear"),
    ),
  );

  const stepper = dataset
    ? sampleStepper(dataset, (i) => evaluate(sampleInput(dataset.name, i)), {
        noun: "scene",
        value: ctx.input?.sample?.dataset === dataset.name ? ctx.input.sample.index : 0,
      })
    : null;
  const upload = uploader(ctx, {
    camera: false,
    onInput: (input, options) => evaluate(input, options),
    onError: (error) => message.replaceChildren(errorBox(error)),
  });

  // ---- predicting --------------------------------------------------------------------------
  const evaluate = latestOnly(async (input, {activations, source = ""} = {}) => {
    try {
      const {signal} = ctx;
      const [prediction, truth] = await Promise.all([
        ctx.api.predict(model.id, input, {signal}),
        input.sample ? ctx.api.truth(input.sample.dataset, input.sample.index, {signal}) : null,
      ]);
      ctx.setInput(input, {activations, source});
      current = {input, prediction, truth};
      status.textContent = input.sample ? `test scene ${input.sample.index}` : source;
      message.replaceChildren();
      draw();
      panel.update((layers) => ctx.activations(input, layers));
    } catch (error) {
      if (error.name !== "AbortError") message.replaceChildren(errorBox(error));
    }
  });

  // ---- drawing -----------------------------------------------------------------------------
  function draw() {
    if (!current) return;
    const {prediction, truth} = current;
    controls.truthToggle.box.disabled = !truth;
    const {figures, kept} = sceneFigures(task, prediction, truth, settings, scale, inputRange(model));
    figure.replaceChildren(...figures);
    setChildren(side, sidePanel(task, prediction, kept, truth, settings));
  }

  root.append(
    h(
      "header",
      {class: "view-header"},
      h("h2", {}, `Scenes: ${model.title}`),
      h("p", {class: "muted"}, `${model.title} is ${model.task_info.display_name}. ${INTRO[task]}`),
    ),
    h(
      "div",
      {class: "input-bar", role: "group", "aria-label": "Scene"},
      h("span", {class: "input-title"}, "Input"),
      status,
      stepper ? stepper.element : h("span", {class: "muted"}, "no test scenes offered: draw or upload one"),
      toggleButton("Draw a scene", padHolder),
      upload.element,
    ),
    padHolder,
    message,
    controls.element,
    h("div", {class: "scenes-layout"}, figure, side),
    h("h3", {}, "Every layer for this input"),
    panel.element,
  );

  const input = ctx.input;
  const fits = input?.pixels && input.pixels.width === sx && input.pixels.height === sy;
  if (input?.sample?.dataset === dataset?.name || fits) evaluate(input, {source: ctx.inputSource});
  else if (stepper) stepper.pick(0);
  else message.replaceChildren(notice("No test scenes are offered (no MNIST digits): draw or upload one."));
}
