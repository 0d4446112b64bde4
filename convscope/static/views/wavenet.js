// WaveNet: the model's dilated causal stack drawn from its real dilations, a test recording as
// the network hears it (hover an output sample: its receptive field lights up on the waveform,
// in the stack and in every layer's activations over time) and a digit generated and streamed.

import {latestOnly} from "../api.js";
import {WAV_TYPES, h, errorBox, fileButton, notice, setChildren, stepButton} from "../dom.js";
import {crispCanvas} from "../draw.js";
import {clamp} from "../util.js";
import {generatePanel} from "../widgets/wavenet-generate.js";
import {fieldAt, receptiveField, stackFigure} from "../widgets/wavenet-stack.js";

const WAVE_HEIGHT = 90;
const LABEL_W = 92;

/** The width figures get: the view's, within reason (readable at 800 px and 1440 px). */
const figureWidth = (root) => clamp(root.clientWidth - 36, 300, 1180);

/** The whole clip's waveform (what the network hears), the recording's span shaded. */
function drawClip(context, width, result, t, dilations) {
  const samples = result.samples.data;
  const n = samples.length;
  context.fillStyle = "#f4f3ee";
  context.fillRect(0, 0, width, WAVE_HEIGHT);
  const x = (s) => LABEL_W + (s / n) * (width - LABEL_W);
  context.fillStyle = "rgba(31, 35, 40, 0.05)";
  context.fillRect(x(result.span[0]), 0, x(result.span[1]) - x(result.span[0]), WAVE_HEIGHT);
  context.strokeStyle = "#1f2328";
  context.beginPath();
  const per = n / (width - LABEL_W);
  for (let c = 0; c < width - LABEL_W; c++) {
    let lo = 1;
    let hi = -1;
    for (let i = Math.floor(c * per); i < Math.min(n, Math.floor((c + 1) * per) + 1); i++) {
      lo = Math.min(lo, samples[i]);
      hi = Math.max(hi, samples[i]);
    }
    const y = (v) => WAVE_HEIGHT / 2 - (v * WAVE_HEIGHT) / 2.1;
    context.moveTo(LABEL_W + c + 0.5, y(hi));
    context.lineTo(LABEL_W + c + 0.5, Math.max(y(lo), y(hi) + 1));
  }
  context.stroke();
  const [first, last] = fieldAt(dilations, t, 0);
  band(context, x(first), x(last + 1), 0, WAVE_HEIGHT);
  context.fillStyle = "#0f766e";
  context.fillRect(x(t), 0, 2, WAVE_HEIGHT);
  context.fillStyle = "#57606a";
  context.font = "11px system-ui, sans-serif";
  context.fillText("input x", 6, WAVE_HEIGHT / 2);
}

function band(context, x0, x1, y, height) {
  context.fillStyle = "rgba(15, 118, 110, 0.25)";
  context.fillRect(x0, y, Math.max(2, x1 - x0), height);
  context.strokeStyle = "#0f766e";
  context.strokeRect(x0, y + 0.5, Math.max(2, x1 - x0), height - 1);
}

/** Every layer's gated activations over time: one block of channel rows per layer (RMS per
 * column, each layer to its own peak), the hovered output's field in each layer outlined. */
function drawLayers(context, width, result, t, dilations, rowH) {
  const [layers, channels, columns] = result.activity.shape;
  const data = result.activity.data;
  const n = result.samples.data.length;
  const x = (s) => LABEL_W + (s / n) * (width - LABEL_W);
  const colW = (width - LABEL_W) / columns;
  context.fillStyle = "#fff";
  context.fillRect(0, 0, width, layers * (channels * rowH + 6));
  context.font = "11px system-ui, sans-serif";
  context.textBaseline = "middle";
  for (let l = 0; l < layers; l++) {
    const top = (layers - 1 - l) * (channels * rowH + 6); // the top layer drawn first
    const block = data.subarray(l * channels * columns, (l + 1) * channels * columns);
    const peak = Math.max(1e-9, ...block);
    for (let c = 0; c < channels; c++) {
      for (let k = 0; k < columns; k++) {
        const v = block[c * columns + k] / peak;
        context.fillStyle = `rgb(${Math.round(255 - 235 * v)}, ${Math.round(255 - 150 * v)}, ${Math.round(255 - 160 * v)})`;
        context.fillRect(LABEL_W + k * colW, top + c * rowH, Math.ceil(colW), rowH);
      }
    }
    context.fillStyle = "#57606a";
    context.fillText(`layer ${l + 1} · d ${dilations[l]}`, 6, top + (channels * rowH) / 2);
    const [first, last] = fieldAt(dilations, t, l + 1);
    band(context, x(first), x(last + 1), top, channels * rowH);
  }
}

/** The recording part: picker, clip, NLL and the layers over time. */
function recordingPanel(ctx, stack, width, listing, stackFig) {
  const recordings = listing.recordings;
  const dilations = stack.dilations;
  const clipCanvas = crispCanvas(width, WAVE_HEIGHT, {class: "wavenet-clip", role: "img", tabindex: 0});
  const channels = stack.channels;
  const rowH = clamp(Math.floor(40 / channels), 1, 6);
  const layersCanvas = crispCanvas(width, dilations.length * (channels * rowH + 6), {class: "wavenet-layers", role: "img"});
  const slider = h("input", {type: "range", min: 0, max: stack.clip_samples - 1, value: 0, "aria-label": "output sample"});
  const about = h("p", {class: "small", "aria-live": "polite"});
  const message = h("div");
  let result = null;
  let t = 0;

  function show(next, {recentre = true} = {}) {
    if (!result) return;
    t = clamp(Math.round(next), 0, result.samples.data.length - 1);
    slider.value = String(t);
    drawClip(clipCanvas.context, width, result, t, dilations);
    drawLayers(layersCanvas.context, width, result, t, dilations, rowH);
    const [first, last] = fieldAt(dilations, t, 0);
    clipCanvas.canvas.dataset.field = `${first}..${last}`;
    clipCanvas.canvas.setAttribute("aria-label", `the clip as the network hears it; output sample ${t}'s receptive field (samples ${first}-${last}) shaded`);
    layersCanvas.canvas.setAttribute("aria-label", `activations over time of the ${dilations.length} layers; the samples each layer passes to output ${t} outlined`);
    if (recentre) stackFig.show(t, result.samples.data);
    else stackFig.highlight(t);
  }

  function pointAt(canvas, event) {
    const box = canvas.getBoundingClientRect();
    const at = ((event.clientX - box.left) * width) / box.width;
    return ((at - LABEL_W) / (width - LABEL_W)) * (result?.samples.data.length ?? 1);
  }
  for (const canvas of [clipCanvas.canvas, layersCanvas.canvas]) {
    canvas.addEventListener("mousemove", (event) => result && show(pointAt(canvas, event)));
  }
  clipCanvas.canvas.addEventListener("keydown", (event) => {
    const step = event.shiftKey ? receptiveField(dilations) : 1;
    if (event.key === "ArrowRight") show(t + step);
    else if (event.key === "ArrowLeft") show(t - step);
    else return;
    event.preventDefault();
  });
  slider.addEventListener("input", () => show(Number(slider.value)));

  const analyse = latestOnly(async (fetch, index) => {
    try {
      result = await fetch();
    } catch (error) {
      if (error.name !== "AbortError") message.replaceChildren(errorBox(error));
      return;
    }
    message.replaceChildren();
    if (index !== null) ctx.setParams({recording: index});
    const r = result.recording;
    const who = r ? `${r.name}: digit ${r.digit} said by ${r.speaker}` : `${result.name}: digit ${result.digit}`;
    const unknown = r ? " (a speaker this model does not know: conditioned on none)" : " (no speaker given)";
    about.textContent =
      who + (result.speaker ? "" : unknown) +
      `. The model's negative log-likelihood of its samples: ${result.nll.speech.toFixed(3)} nats ` +
      `per sample within the recording (${result.nll.clip.toFixed(3)} over the clip; uniform ${result.nll.uniform.toFixed(2)}).`;
    show((result.span[0] + result.span[1]) / 2);
  });
  const load = (index) => analyse(() => ctx.api.wavenetRecording(ctx.model.id, index, {signal: ctx.signal}), index);
  const uploadDigit = h(
    "select",
    {"aria-label": "the uploaded recording's digit"},
    Array.from({length: stack.digits}, (_, d) => h("option", {value: d}, String(d))),
  );
  const upload = (file) =>
    file && analyse(() => ctx.api.wavenetUpload(ctx.model.id, file, Number(uploadDigit.value), {signal: ctx.signal}), null);

  const picker = h(
    "select",
    {"aria-label": "test recording", onchange: () => load(Number(picker.value))},
    recordings.map((r) => h("option", {value: r.index}, `${r.name} (digit ${r.digit}, ${r.speaker})`)),
  );
  const pick = (i) => {
    if (!recordings.length) return;
    picker.value = String(recordings[clamp(i, 0, recordings.length - 1)].index);
    load(Number(picker.value));
  };
  stackFig.onhover = (u) => show(u, {recentre: false});
  const element = h(
    "section",
    {class: "card wavenet-recording", "aria-label": "a test recording"},
    h("h3", {}, "A test recording, layer by layer"),
    recordings.length
      ? h(
          "div",
          {class: "input-bar", role: "group", "aria-label": "Recording"},
          stepButton("previous recording", "◀", () => pick(recordings.findIndex((r) => r.index === Number(picker.value)) - 1)),
          h("label", {class: "field inline"}, h("span", {}, "test recording"), picker),
          stepButton("next recording", "▶", () => pick(recordings.findIndex((r) => r.index === Number(picker.value)) + 1)),
          h("label", {class: "field inline"}, h("span", {}, "output sample"), slider),
        )
      : notice(listing.note ?? "No test recordings on offer."),
    h(
      "div",
      {class: "input-bar", role: "group", "aria-label": "Your recording"},
      h("label", {class: "field inline"}, h("span", {}, "or your WAV (0.1-3 s) of digit"), uploadDigit),
      fileButton("Upload WAV", WAV_TYPES, upload),
    ),
    message,
    about,
    h("figure", {}, h("figcaption", {class: "small muted"}, `the clip as the network hears it (1.008 s, ${stack.preemphasis ? `pre-emphasised by ${stack.preemphasis} and mu-law coded, drawn de-emphasised` : "mu-law coded"}; the recording's part darker); hover to choose an output sample: its receptive field is shaded`), clipCanvas.canvas),
    h("figure", {}, h("figcaption", {class: "small muted"}, "each layer's gated activations tanh(a)·σ(b) over time, one row per channel (RMS per 4 ms, each layer to its own peak); outlined: the samples of that layer the hovered output depends on"), layersCanvas.canvas),
  );
  const current = Number(ctx.params.get("recording") ?? recordings[0]?.index ?? 0);
  return {element, start: () => pick(Math.max(0, recordings.findIndex((r) => r.index === current))), current: () => recordings.find((r) => r.index === Number(picker.value))};
}

export async function render(root, ctx) {
  const model = ctx.model;
  const [stack, listing] = await Promise.all([
    ctx.api.wavenetStack(model.id, {signal: ctx.signal}),
    ctx.api.recordings({signal: ctx.signal}),
  ]);
  const width = figureWidth(root);
  const field = receptiveField(stack.dilations);
  const stackFig = stackFigure(stack, width, {onhover: (t) => stackFig.onhover?.(t)});
  const recording = recordingPanel(ctx, stack, width, listing, stackFig);
  const generate = generatePanel(ctx, stack, width, recording.current);
  setChildren(
    root,
    h(
      "header",
      {class: "view-header"},
      h("h2", {}, `WaveNet: ${model.title}`),
      h(
        "p",
        {class: "muted"},
        `${model.title} is ${model.task_info.display_name}. ${stack.dilations.length} causal ` +
          `convolutions of kernel 2 with dilations ${stack.dilations.join(", ")}: each output ` +
          `sample is predicted from the ${field.toLocaleString("en-US")} samples before it ` +
          `(its receptive field, 1 + the sum of the dilations: ${((1000 * field) / stack.rate).toFixed(1)} ms at ` +
          `${stack.rate.toLocaleString("en-US")} Hz), never from itself or the future.`,
      ),
    ),
    h("section", {class: "card", "aria-label": "the dilated stack"}, h("h3", {}, "The dilated stack"), stackFig.element),
    recording.element,
    generate.element,
  );
  if (listing.recordings.length) recording.start();
  else stackFig.show(field, null);
  return () => generate.dispose();
}
