// The input components shared by the views that run the network, each {element, update,
// dispose}: a sample stepper (previous / next / random), the upload of an image or a webcam
// frame, and the input chooser built from them with a drawing pad. The model's input
// convention comes from its description (`model.input`), never from here.

import {h, errorBox, fileButton} from "./dom.js";
import {drawingPad} from "./pad.js";
import {pixelCanvas} from "./draw.js";

/** Input references (docs/api.md): {sample: {dataset, index}} or {pixels: {..}}. */
export const sampleInput = (dataset, index) => ({sample: {dataset, index}});

/** The fitted input's bytes (the activations' `image`, uint8 [D, H, W]) as pixels (HWC). */
export function pixelsFromImage(image) {
  const [depth, height, width] = image.shape;
  const size = height * width;
  const data = new Array(size * depth);
  for (let c = 0; c < depth; c++) for (let i = 0; i < size; i++) data[i * depth + c] = image.data[c * size + i];
  return {width, height, depth, data};
}

/** The values bytes 0 and 255 take in the model's input (`model.input`: byte * scale + offset). */
export function inputRange(model) {
  const {scale, offset} = model.input;
  return {min: offset, max: 255 * scale + offset};
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

const LIVE_MS = 500; // "live" sends about 2 frames a second

/** What to tell the user when getUserMedia fails. */
export function cameraProblem(error) {
  switch (error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return (
        "Camera access was refused. Allow the camera for this page in the browser's site " +
        "settings, then press Webcam again."
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found.";
    case "NotReadableError":
      return "The camera could not be started: another program may be using it.";
    default:
      return `The camera could not be started: ${error.message || error.name}.`;
  }
}

/** A button-styled file picker for PNG/JPEG images; `onFile(file)` gets the chosen file. */
function uploadButton(onFile) {
  return fileButton("Upload image", "image/png,image/jpeg", onFile);
}

/**
 * A webcam source: `button` opens `element`, a small live preview with "Capture" and a "live"
 * toggle (about 2 frames/s), each handing the current frame as a JPEG file to `onFrame(file)`,
 * which sends it like an upload (the server fits it to the model's input). The camera is asked
 * for when opened and released by close().
 */
function webcam(onFrame) {
  const video = h("video", {class: "webcam-preview", muted: true, playsinline: true, "aria-label": "camera"});
  const message = h("p", {class: "webcam-message", "aria-live": "polite"});
  const capture = h("button", {type: "button", disabled: true, onclick: () => grab()}, "Capture");
  const live = h("input", {type: "checkbox", disabled: true, onchange: () => setLive(live.checked)});
  const element = h(
    "div",
    {class: "webcam", hidden: true},
    video,
    h(
      "div",
      {class: "webcam-controls"},
      h("div", {class: "actions"}, capture, h("label", {class: "radio"}, live, "live")),
      message,
    ),
  );
  let stream = null;
  let asking = false; // a getUserMedia request is pending
  let timer = null;
  let busy = false;

  async function open() {
    element.hidden = false;
    if (stream || asking) return;
    if (!navigator.mediaDevices?.getUserMedia) {
      message.textContent =
        "This browser offers the page no camera (browsers allow one on https:// and " +
        "http://127.0.0.1 pages only).";
      return;
    }
    message.textContent = "Asking for the camera…";
    asking = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({video: {width: {ideal: 640}}, audio: false});
    } catch (error) {
      message.textContent = cameraProblem(error);
      return;
    } finally {
      asking = false;
    }
    if (element.hidden) return close(); // closed while asking
    video.srcObject = stream;
    await video.play().catch(() => {});
    message.textContent = "What the camera sees; the network gets it cropped to its input's shape.";
    capture.disabled = live.disabled = false;
  }

  function close() {
    element.hidden = true;
    setLive(false);
    stream?.getTracks().forEach((track) => track.stop());
    stream = null;
    video.srcObject = null;
    capture.disabled = live.disabled = true;
  }

  function setLive(on) {
    live.checked = on;
    clearInterval(timer);
    timer = on ? setInterval(grab, LIVE_MS) : null;
  }

  async function grab() {
    if (busy || !video.videoWidth) return; // a frame still on its way: skip this one
    busy = true;
    try {
      const canvas = h("canvas", {width: video.videoWidth, height: video.videoHeight});
      canvas.getContext("2d").drawImage(video, 0, 0);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
      await onFrame(new File([blob], "webcam.jpg", {type: "image/jpeg"}));
    } finally {
      busy = false;
    }
  }

  const button = h(
    "button",
    {
      type: "button",
      "aria-expanded": "false",
      onclick: () => {
        if (element.hidden) open();
        else close();
        button.setAttribute("aria-expanded", String(!element.hidden));
      },
    },
    "Webcam",
  );
  return {element, button, close};
}

let invertChoice = "auto"; // kept across views while the page is open

/**
 * The "invert" choice for uploads and webcam frames (auto, on, off; see docs/api.md):
 * auto inverts a picture with a light background for a model of light-on-dark data (MNIST and
 * its scenes). `onChange()` runs after the user changes it.
 */
function invertControl(onChange) {
  const select = h(
    "select",
    {
      "aria-label": "invert uploads",
      title:
        "auto: a photo with a light background (dark ink on paper) is inverted for a model of " +
        "light-on-dark data such as MNIST; on: always; off: never",
      onchange: () => {
        invertChoice = select.value;
        onChange();
      },
    },
    ...["auto", "on", "off"].map((v) => h("option", {value: v, selected: v === invertChoice}, v)),
  );
  return {
    element: h("label", {class: "field inline invert"}, h("span", {}, "invert"), select),
    value: () => select.value,
  };
}

/**
 * Upload-to-input: "Upload image" (and, with `camera`, "Webcam") buttons in `element`, the
 * webcam's preview in `preview`. The server fits each file to the model's input once; the
 * fitted bytes become the input, `onInput(input, {activations, source})`, and travel as pixels
 * from then on (every endpoint accepts them). `update({layers})` changes which layers'
 * activations come with an upload (default every layer); errors go to `onError`. The camera is
 * released by dispose() and when the view is left.
 */
export function uploader(ctx, {onInput, onError, camera = true, layers = null}) {
  let asked = layers;
  let last = null; // the latest file and its source, sent again when "invert" changes
  const invert = invertControl(() => last && send(...last));
  async function send(file, source = `uploaded ${file?.name}`) {
    if (!file) return;
    last = [file, source];
    try {
      const options = {signal: ctx.signal, invert: invert.value(), ...(asked ? {layers: asked} : {})};
      const activations = await ctx.api.activationsUpload(ctx.model.id, file, options);
      await onInput({pixels: pixelsFromImage(activations.image)}, {activations, source});
    } catch (error) {
      if (error.name !== "AbortError") onError(error);
    }
  }
  const cam = camera ? webcam((file) => send(file, "webcam frame")) : null;
  const dispose = () => cam?.close();
  ctx.signal.addEventListener("abort", dispose);
  return {
    element: h(
      "span",
      {class: "uploader", style: {display: "contents"}},
      uploadButton(send),
      cam?.button,
      invert.element,
    ),
    preview: cam ? cam.element : h("div", {hidden: true}),
    update: ({layers: next = null} = {}) => (asked = next),
    dispose,
  };
}

/**
 * ◀ index ▶ Random over the `count` items of `dataset` (a dataset offer), as "sample" or
 * "scene" (`noun`): `onPick(index)` gets the chosen index (wrapped around); `update(index)`
 * shows another one without calling it.
 */
export function sampleStepper(dataset, onPick, {noun = "sample", value = 0} = {}) {
  const index = h("input", {
    type: "number",
    min: 0,
    max: dataset.count - 1,
    value,
    "aria-label": `${noun} index`,
    class: "sample-index",
  });
  const pick = (i) => {
    const wrapped = ((i % dataset.count) + dataset.count) % dataset.count;
    index.value = wrapped;
    onPick(wrapped);
  };
  const step = (label, text, delta) =>
    h("button", {type: "button", "aria-label": label, onclick: () => pick(Number(index.value) + delta)}, text);
  index.addEventListener("change", () => pick(Number(index.value)));
  return {
    element: h(
      "span",
      {class: "sample-stepper", style: {display: "contents"}},
      step(`previous ${noun}`, "◀", -1),
      h("label", {class: "field inline"}, h("span", {}, noun), index),
      step(`next ${noun}`, "▶", 1),
      h("button", {type: "button", onclick: () => pick(Math.floor(Math.random() * dataset.count))}, "Random"),
    ),
    update: (i) => (index.value = i),
    pick,
    dispose: () => {},
  };
}

/** A "Draw" toggle button that shows or hides `holder`. */
export function toggleButton(text, holder) {
  return h(
    "button",
    {
      type: "button",
      "aria-expanded": "false",
      onclick: (e) => {
        holder.hidden = !holder.hidden;
        e.target.setAttribute("aria-expanded", String(!holder.hidden));
      },
    },
    text,
  );
}

// An upload brings every layer's outputs (each view then finds them cached) unless one image
// makes more values than this (AlexNet's 2.1 million, VGG-16's 29 million): then only the
// input's, and each view asks for the layers it shows.
const ALL_LAYERS_MAX = 2_000_000;

/** The layers an upload for `model` asks for: null (every layer) or [0]. */
export function uploadLayers(model) {
  const values = model.layers.reduce((n, l) => n + l.out_volume.sx * l.out_volume.sy * l.out_volume.depth, 0);
  return values > ALL_LAYERS_MAX ? [0] : null;
}

/**
 * The input chooser: a dataset sample, a digit drawn in the page, an uploaded image or a
 * webcam frame. `onChange(input)` runs after the user picks another input (already stored
 * with ctx.setInput, so other views see it too); `update()` shows the current input again.
 */
export function inputChooser(ctx, onChange) {
  const dataset = ctx.datasets.find((d) => d.name === ctx.dataset);
  const status = h("span", {class: "input-status", "aria-live": "polite"});
  const thumb = h("span", {class: "input-thumb"});
  const message = h("div", {class: "input-message"});
  const padHolder = h("div", {class: "input-pad", hidden: true});

  function choose(input, {activations, source} = {}) {
    message.replaceChildren();
    ctx.setInput(input, {activations, source});
    show();
    onChange(input);
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
  const upload = uploader(ctx, {
    onInput: choose,
    onError: (error) => message.replaceChildren(errorBox(error)),
    layers: uploadLayers(ctx.model),
  });
  const stepper = dataset
    ? sampleStepper(dataset, (i) => choose(sampleInput(dataset.name, i)), {value: ctx.input?.sample?.index ?? 0})
    : null;
  const bar = h(
    "div",
    {class: "input-bar", role: "group", "aria-label": "Input"},
    h("span", {class: "input-title"}, "Input"),
    thumb,
    status,
    stepper ? stepper.element : h("span", {class: "muted"}, "no samples for this model's dataset"),
    toggleButton("Draw", padHolder),
    upload.element,
  );
  show();
  return {
    element: h("div", {class: "input-area"}, bar, padHolder, upload.preview, message),
    update: show,
    dispose: upload.dispose,
  };
}
