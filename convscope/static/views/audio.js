// Spoken digits: a test recording, an uploaded WAV or one recorded here, played back, drawn as
// a waveform (shading the part the network hears) and as the spectrogram image it sees, with
// the class probabilities and every layer's maps for that image.

import {latestOnly} from "../api.js";
import {WAV_TYPES, h, errorBox, fileButton, notice, percent, setChildren, stepButton} from "../dom.js";
import {barChart, crispCanvas, dims, tensorCanvas} from "../draw.js";
import {inputRange, pixelsFromImage} from "../input.js";
import {outOfDistributionHint} from "../ood.js";
import {clamp} from "../util.js";
import {microphoneProblem, recordWav} from "../wav.js";
import {mapsPanel} from "./maps.js";

const WAVE_WIDTH = 560;
const WAVE_HEIGHT = 110;
const SPECTROGRAM_PX = 384;
const RECORD_SECONDS = 3;

/** The clip's envelope (min/max per column), the heard window shaded. */
function waveform(clip) {
  const {canvas, context} = crispCanvas(WAVE_WIDTH, WAVE_HEIGHT, {
    class: "waveform-canvas",
    role: "img",
    "aria-label": `waveform of ${clip.seconds.toFixed(2)} s of audio`,
  });
  const {min, max} = clip.waveform;
  const peak = Math.max(1e-6, ...max, ...min.map((v) => -v));
  const x = (seconds) => (seconds / clip.seconds) * WAVE_WIDTH;
  const y = (v) => WAVE_HEIGHT / 2 - (0.95 * v * WAVE_HEIGHT) / (2 * peak);
  context.fillStyle = "#f4f3ee";
  context.fillRect(0, 0, WAVE_WIDTH, WAVE_HEIGHT);
  context.fillStyle = "rgba(15, 118, 110, 0.16)";
  context.fillRect(x(clip.window.start), 0, x(clip.window.end) - x(clip.window.start), WAVE_HEIGHT);
  context.strokeStyle = "#1f2328";
  const step = WAVE_WIDTH / min.length;
  context.lineWidth = Math.max(1, step);
  context.beginPath();
  min.forEach((low, i) => {
    const at = (i + 0.5) * step;
    context.moveTo(at, y(max[i]));
    context.lineTo(at, Math.max(y(low), y(max[i]) + 1));
  });
  context.stroke();
  const whole = clip.window.end - clip.window.start >= clip.seconds - 1e-6;
  return h(
    "figure",
    {},
    h(
      "figcaption",
      {},
      `${clip.seconds.toFixed(2)} s at ${clip.rate.toLocaleString("en-US")} Hz ` +
        "(drawn to its peak); shaded: " +
        (whole
          ? `all of it, centred in the ${clip.heard.toFixed(2)} s the network hears`
          : `the loudest ${clip.heard.toFixed(2)} s, which the network hears`),
    ),
    canvas,
  );
}

/** What the network sees: the spectrogram image of the clip. */
function spectrogram(result, model) {
  const {height, width} = dims(result.input);
  const scale = Math.max(1, Math.floor(SPECTROGRAM_PX / width));
  return h(
    "figure",
    {},
    h(
      "figcaption",
      {},
      `what the network sees: a ${width}x${height} log-mel spectrogram ` +
        "(time left to right, high pitch at the top)",
    ),
    tensorCanvas(result.input, {scale, ...inputRange(model), class: "pixelated spectrogram-image"}),
  );
}

/** The prediction, the digit spoken in a test recording, and the class probabilities. */
function verdictOf(result) {
  const best = result.prediction;
  const label = result.recording?.digit;
  const right = String(label) === result.classes[best];
  return [
    h(
      "p",
      {class: "prediction"},
      `Prediction: ${result.classes[best]} `,
      h("span", {class: "muted"}, `(${percent(result.probabilities[best])})`),
    ),
    outOfDistributionHint(result.probabilities, "sound"),
    label === undefined ? null : h("p", {class: "small"}, `spoken: ${label} ${right ? "✓" : "✗"}`),
    barChart(result.probabilities, result.classes, {
      format: (v) => percent(v),
      caption: "class probabilities",
    }),
  ];
}

/** A Record/Stop button: records at most RECORD_SECONDS and gives the WAV to `send(file,
 * source)`; problems go to `message`. `stop()` ends a recording in progress. */
function recorder(message, status, send) {
  let recording = null; // the recorder while it runs
  const button = h("button", {type: "button", onclick: () => toggle()}, "Record");
  async function toggle() {
    if (recording) {
      recording.stop();
      return;
    }
    message.replaceChildren();
    try {
      recording = await recordWav({seconds: RECORD_SECONDS});
    } catch (error) {
      message.replaceChildren(notice(microphoneProblem(error)));
      return;
    }
    button.textContent = "Stop";
    status.textContent = `recording: say a digit (at most ${RECORD_SECONDS} s)…`;
    try {
      send(await recording.finished, "your recording");
    } catch (error) {
      message.replaceChildren(errorBox(error));
    } finally {
      recording = null;
      button.textContent = "Record";
    }
  }
  return {button, stop: () => recording?.stop()};
}

export async function render(root, ctx) {
  const model = ctx.model;
  const listing = await ctx.api.recordings({signal: ctx.signal});
  const recordings = listing.recordings;
  const player = h("audio", {controls: true, preload: "auto", class: "player", "aria-label": "the clip"});
  const views = h("div", {class: "audio-figures", "aria-live": "polite"});
  const verdict = h("div", {class: "card probabilities", "aria-live": "polite"});
  const status = h("span", {class: "input-status", "aria-live": "polite"});
  const message = h("div", {class: "audio-message"});
  const panel = mapsPanel(ctx);
  let objectUrl = null;

  function play(url, own = false) {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = own ? url : null;
    player.src = url;
  }

  function show(result, source) {
    views.replaceChildren(waveform(result.clip), spectrogram(result, ctx.model));
    setChildren(verdict, verdictOf(result));
    status.textContent = source;
    ctx.setInput({pixels: pixelsFromImage(result.image)}, {activations: result, source});
    panel.element.hidden = false;
    panel.update(result);
  }

  /** After a failed clip nothing of the previous one stays on screen. */
  function forget(source) {
    views.replaceChildren();
    verdict.replaceChildren(h("p", {class: "muted"}, "No prediction: the clip could not be read."));
    status.textContent = `${source} (not read)`;
    panel.element.hidden = true;
    player.removeAttribute("src");
    player.load();
  }

  const analyse = latestOnly(async (load, source) => {
    try {
      const result = await load();
      message.replaceChildren();
      show(result, source);
    } catch (error) {
      if (error.name === "AbortError") return;
      message.replaceChildren(errorBox(error));
      forget(source);
    }
  });

  function pick(i) {
    if (!recordings.length) return;
    const r = recordings[clamp(i, 0, recordings.length - 1)];
    picker.value = String(r.index);
    ctx.setParams({recording: r.index});
    play(ctx.api.recordingUrl(r.index));
    analyse(() => ctx.api.audio(model.id, r.index, {signal: ctx.signal}), `recording ${r.name}`);
  }

  function send(file, source) {
    if (!file) return;
    play(URL.createObjectURL(file), true);
    analyse(() => ctx.api.audioUpload(model.id, file, {signal: ctx.signal}), source);
  }

  const picker = h(
    "select",
    {"aria-label": "test recording", onchange: () => pick(Number(picker.value))},
    recordings.map((r) =>
      h("option", {value: r.index}, `${r.name} (digit ${r.digit}, ${r.speaker}, take ${r.take})`),
    ),
  );
  const recording = recorder(message, status, send);

  const current = Number(ctx.params.get("recording") ?? 0);
  setChildren(
    root,
    h(
      "header",
      {class: "view-header"},
      h("h2", {}, `Spoken digits: ${model.title}`),
      h(
        "p",
        {class: "muted"},
        `${model.title} is ${model.task_info.display_name}: it hears about a second of ` +
          "8 kHz audio as an image, a log-mel spectrogram, and classifies that image like a digit.",
      ),
    ),
    h(
      "div",
      {class: "input-bar", role: "group", "aria-label": "Recording"},
      h("span", {class: "input-title"}, "Input"),
      status,
      recordings.length
        ? [
            stepButton("previous recording", "◀", () => pick(Number(picker.value) - 1)),
            h("label", {class: "field inline"}, h("span", {}, "test recording"), picker),
            stepButton("next recording", "▶", () => pick(Number(picker.value) + 1)),
          ]
        : null,
      fileButton("Upload WAV", WAV_TYPES, (file) => send(file, `uploaded ${file?.name}`)),
      recording.button,
    ),
    recordings.length ? null : notice(`${listing.note} You can still upload or record a WAV.`),
    message,
    h("div", {class: "audio-layout"}, h("div", {class: "card"}, player, views), verdict),
    h("h3", {}, "Every layer for this input"),
    panel.element,
  );
  pick(recordings.findIndex((r) => r.index === current));
  return () => {
    recording.stop();
    if (objectUrl) URL.revokeObjectURL(objectUrl);
  };
}
