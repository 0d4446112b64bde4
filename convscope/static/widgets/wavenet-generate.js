// "Generate a digit": asks the server's fast WaveNet generator for a clip over a WebSocket
// (/api/models/{id}/wavenet/generate), draws the waveform and the log-mel spectrogram as the
// chunks arrive, and plays the clip with WebAudio once it is complete, at the server's peak
// level. Stop ends it early.

import {h, errorBox, setChildren} from "../dom.js";
import {crispCanvas} from "../draw.js";

const TOP_DB = 80; // the spectrogram's range below its loudest value, as the classifier's image

/** ``samples`` scaled to peak |sample| ``peak`` (the server's; a model hears levels only
 * relative to a clip's loudest, so what it draws is often quiet), unless they are silent. */
function atPeak(samples, peak, silencePeak) {
  const top = peakOf(samples);
  return top >= silencePeak ? samples.map((v) => (v * peak) / top) : samples;
}

function peakOf(samples) {
  let top = 0;
  for (const v of samples) top = Math.max(top, Math.abs(v));
  return top;
}

/** The growing waveform (min/max per pixel column over the whole requested length). */
function drawWave(context, width, height, samples, count, total) {
  context.fillStyle = "#f4f3ee";
  context.fillRect(0, 0, width, height);
  context.fillStyle = "rgba(15, 118, 110, 0.10)";
  context.fillRect(0, 0, (count / total) * width, height);
  context.strokeStyle = "#1f2328";
  context.beginPath();
  const per = total / width;
  for (let x = 0; x < width; x++) {
    const a = Math.floor(x * per);
    const b = Math.min(count, Math.floor((x + 1) * per) + 1);
    if (a >= count) break;
    let lo = 1;
    let hi = -1;
    for (let i = a; i < b; i++) {
      lo = Math.min(lo, samples[i]);
      hi = Math.max(hi, samples[i]);
    }
    context.moveTo(x + 0.5, height / 2 - (hi * height) / 2.1);
    context.lineTo(x + 0.5, Math.max(height / 2 - (lo * height) / 2.1, height / 2 - (hi * height) / 2.1 + 1));
  }
  context.stroke();
}

/** The log-mel columns so far (low bands at the bottom), each mapped to [loudest - 80 dB, loudest]. */
function drawSpectrogram(context, width, height, columns, frames) {
  context.fillStyle = "#101418";
  context.fillRect(0, 0, width, height);
  if (!columns.length) return;
  const loudest = Math.max(...columns.map((c) => Math.max(...c)));
  const mels = columns[0].length;
  const w = width / frames;
  const rowH = height / mels;
  columns.forEach((column, f) => {
    column.forEach((db, m) => {
      const v = Math.max(0, Math.min(1, (db - (loudest - TOP_DB)) / TOP_DB));
      context.fillStyle = `rgb(${Math.round(255 * v)}, ${Math.round(200 * v * v)}, ${Math.round(90 * (1 - v) + 40 * v)})`;
      context.fillRect(f * w, height - (m + 1) * rowH, Math.ceil(w), Math.ceil(rowH));
    });
  });
}

/** The generation panel for model `model` (its description) and `stack` (GET .../wavenet);
 * `recording()` is the current test recording (for resynthesis). Returns {element, dispose}. */
export function generatePanel(ctx, stack, width, recording) {
  const digits = Array.from({length: stack.digits}, (_, d) => d);
  const digit = h("select", {"aria-label": "digit to say"}, digits.map((d) => h("option", {value: d}, String(d))));
  const speaker = h(
    "select",
    {"aria-label": "speaker"},
    h("option", {value: ""}, "any speaker"),
    stack.speakers.map((s) => h("option", {value: s}, s)),
  );
  const seconds = h("input", {type: "number", class: "narrow", min: 0.1, max: stack.max_seconds, step: 0.1, value: 1, "aria-label": "seconds to generate"});
  // the sampling: same seed, same clip; temperature 1 draws from the model's own odds, lower is surer
  const seed = h("input", {type: "number", class: "narrow", min: 0, step: 1, value: 0, "aria-label": "seed of the sampling"});
  const temperature = h("input", {type: "number", class: "narrow", min: stack.temperatures[0], max: stack.temperatures[1], step: 0.1, value: stack.temperature, "aria-label": "sampling temperature"});
  const vocoder = h("input", {type: "checkbox", "aria-label": "resynthesise the test recording"});
  const go = h("button", {type: "button", class: "primary", onclick: () => start()}, "Generate");
  const stop = h("button", {type: "button", disabled: true, onclick: () => socket?.send(JSON.stringify({stop: true}))}, "Stop");
  const play = h("button", {type: "button", disabled: true, onclick: () => playClip()}, "Play");
  const status = h("p", {class: "small generate-status", "aria-live": "polite"}, "Nothing generated yet.");
  const message = h("div");
  const waveH = 110;
  const specH = 96;
  const wave = crispCanvas(width, waveH, {class: "wavenet-generated", role: "img", "aria-label": "the generated waveform"});
  const spec = crispCanvas(width, specH, {class: "wavenet-spectrogram", role: "img", "aria-label": "the generated audio's log-mel spectrogram"});
  drawWave(wave.context, width, waveH, [], 0, 1);
  drawSpectrogram(spec.context, width, specH, [], 1);
  let socket = null;
  let audio = null; // the AudioContext, made on the first Play
  let clip = null; // {samples: Float32Array, count, total, rate, columns, frames}

  function redraw() {
    drawWave(wave.context, width, waveH, clip.samples, clip.count, clip.total);
    drawSpectrogram(spec.context, width, specH, clip.columns, clip.frames);
    wave.canvas.dataset.samples = String(clip.count);
    spec.canvas.dataset.frames = String(clip.columns.length);
  }

  function finish(text) {
    socket = null;
    go.disabled = false;
    stop.disabled = true;
    play.disabled = !clip?.count;
    status.textContent = text;
  }

  function start() {
    if (socket) return;
    message.replaceChildren();
    const request = {
      digit: Number(digit.value),
      speaker: speaker.value || null,
      seconds: Number(seconds.value),
      seed: Number(seed.value),
      temperature: Number(temperature.value),
      recording: vocoder.checked ? recording()?.index ?? null : null,
    };
    clip = null;
    go.disabled = true;
    play.disabled = true;
    stop.disabled = false;
    status.textContent = "generating…";
    socket = ctx.api.wavenetSocket(ctx.model.id);
    socket.onopen = () => socket.send(JSON.stringify(request));
    socket.onmessage = (event) => receive(JSON.parse(event.data));
    socket.onerror = () => {
      message.replaceChildren(errorBox(new Error("the generation's connection failed; is `convscope serve` still running?")));
    };
    socket.onclose = () => socket && finish(clip?.count ? `stopped after ${clip.count} samples` : "not generated");
  }

  function receive(m) {
    if (m.type === "chunk") {
      clip ??= {samples: new Float32Array(m.total), count: 0, total: m.total, rate: m.rate, columns: [], frames: m.frames};
      clip.samples.set(m.samples, m.start);
      clip.count = m.start + m.samples.length;
      clip.columns.push(...m.mel);
      status.textContent = `generating… ${clip.count.toLocaleString("en-US")} of ${clip.total.toLocaleString("en-US")} samples`;
      redraw();
    } else if (m.type === "done") {
      const speed = m.samples_per_s ? `, ${Math.round(m.samples_per_s).toLocaleString("en-US")} samples/s` : "";
      const what = m.stopped ? "stopped" : "done";
      socket.close();
      finish(`${what}: ${m.samples.toLocaleString("en-US")} samples (${m.seconds.toFixed(2)} s) in ${m.wall_s.toFixed(2)} s${speed}`);
      if (clip) redraw();
    } else if (m.type === "error") {
      message.replaceChildren(errorBox(new Error(m.error)));
      socket.close();
      finish("not generated");
    }
  }

  async function playClip() {
    if (!clip?.count) return;
    audio ??= new AudioContext();
    await audio.resume();
    const buffer = audio.createBuffer(1, clip.count, clip.rate);
    const played = atPeak(clip.samples.subarray(0, clip.count), stack.peak, stack.silence_peak);
    buffer.copyToChannel(played, 0);
    status.dataset.peak = peakOf(played).toFixed(3);
    const source = audio.createBufferSource();
    source.buffer = buffer;
    source.connect(audio.destination);
    source.onended = () => (status.dataset.played = "yes");
    source.start();
    status.textContent = `playing ${(clip.count / clip.rate).toFixed(2)} s at ${clip.rate.toLocaleString("en-US")} Hz`;
  }

  const element = h("section", {class: "card wavenet-generate", "aria-label": "generate a digit"});
  setChildren(
    element,
    h("h3", {}, "Generate a digit"),
    h(
      "div",
      {class: "input-bar", role: "group", "aria-label": "what to generate"},
      h("label", {class: "field inline"}, h("span", {}, "digit"), digit),
      h("label", {class: "field inline"}, h("span", {}, "speaker"), speaker),
      h("label", {class: "field inline"}, h("span", {}, "seconds"), seconds),
      h("label", {class: "field inline", title: "same seed, same clip"}, h("span", {}, "seed"), seed),
      h("label", {class: "field inline", title: "1: the model's own odds; lower: surer, 0: always the likeliest sample"}, h("span", {}, "temperature"), temperature),
      h("label", {class: "field inline"}, vocoder, h("span", {}, "from the recording's spectrogram (vocoder)")),
      go,
      stop,
      play,
    ),
    message,
    status,
    h("figure", {}, h("figcaption", {class: "small muted"}, "the waveform, drawn as the samples arrive"), wave.canvas),
    h("figure", {}, h("figcaption", {class: "small muted"}, "its log-mel spectrogram (low pitch at the bottom), one column per 16 ms"), spec.canvas),
  );
  return {
    element,
    dispose() {
      const open = socket;
      socket = null;
      open?.close();
      audio?.close();
    },
  };
}
