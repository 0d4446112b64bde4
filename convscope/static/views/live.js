// Live (ml4a's ConvnetViewer and ConvnetOSC): a webcam, a video file or a picture through any
// layer of the model, frame after frame. Frames go to the server over one WebSocket, cropped to
// the model input's shape and reduced in the page; only the layers shown come back. The chosen
// layer's activations (or the class probabilities) can be sent on every frame over OSC and to
// browser sketches (space bar: on/off).

import {h, errorBox, percent, selectField} from "../dom.js";
import {barChart, layerTitle, volumeText} from "../draw.js";
import {cameraProblem} from "../input.js";
import {frameMessage, layerValues, readResult} from "../live-wire.js";
import {layerOutput} from "../widgets/layer-output.js";
import {tileGrid} from "../widgets/tile-grid.js";
import {teachPanel} from "../widgets/teach-panel.js";

export const DEFAULT_FEATURES = "cifar10-94"; // the bundled feature network
const FALLBACK_FEATURES = "cifar10-convnetjs"; // where it is not bundled (convscope.live.default_model)
const IN_FLIGHT = 2; // frames on their way at once (the next is grabbed while one is computed)
const SEND_SIDE = 4; // frames travel at up to 4x the input's side; the server makes the last fit
const TOP = 5;
const PICTURE_FPS = 30; // a still picture is sent again at this rate, so its streams go on

const spatial = (layer) => layer.out_volume.sx * layer.out_volume.sy > 1;

/** The part of a `width` x `height` picture fitted to the input's aspect, and the size sent. */
function cropFor(width, height, volume) {
  const aspect = volume.sx / volume.sy;
  const cw = Math.min(width, Math.round(height * aspect));
  const ch = Math.min(height, Math.round(width / aspect));
  const side = Math.max(volume.sx, Math.min(SEND_SIDE * volume.sx, 256));
  const sw = Math.min(cw, side);
  return {x: (width - cw) / 2, y: (height - ch) / 2, cw, ch, sw, sh: Math.max(1, Math.round((sw * ch) / cw))};
}

/** Webcam, video file or picture; `media()` is what to grab from (null until ready). */
function sourcePanel(onMessage) {
  const video = h("video", {class: "live-source", muted: true, playsinline: true, loop: true, "aria-label": "live source"});
  const picture = h("img", {class: "live-source", alt: "the chosen picture", hidden: true});
  let stream = null;
  let current = null;

  function stop() {
    stream?.getTracks().forEach((track) => track.stop());
    stream = null;
    video.pause();
    if (video.src) URL.revokeObjectURL(video.src);
    video.removeAttribute("src");
    video.srcObject = null;
    current = null;
  }

  async function camera() {
    stop();
    if (!navigator.mediaDevices?.getUserMedia) {
      onMessage("This browser offers the page no camera (browsers allow one on https:// and http://127.0.0.1 pages only).");
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({video: {width: {ideal: 640}}, audio: false});
    } catch (error) {
      onMessage(cameraProblem(error));
      return;
    }
    video.srcObject = stream;
    show(video);
  }

  function file(input, kind) {
    const chosen = input.files?.[0];
    input.value = "";
    if (!chosen) return;
    stop();
    const url = URL.createObjectURL(chosen);
    if (kind === "video") {
      video.src = url;
      show(video);
    } else {
      picture.onload = () => show(picture);
      picture.onerror = () => onMessage(`${chosen.name} is not a picture this browser can show.`);
      picture.src = url;
    }
  }

  let presented = 0; // video frames shown so far (each is sent once)
  const counting = "requestVideoFrameCallback" in video;
  const onFrame = (_, meta) => {
    presented = meta.presentedFrames;
    video.requestVideoFrameCallback(onFrame);
  };
  if (counting) video.requestVideoFrameCallback(onFrame);

  function show(element) {
    video.hidden = element !== video;
    picture.hidden = element !== picture;
    if (element === video) video.play().catch(() => {});
    current = element;
    onMessage("");
  }

  const videoFile = h("input", {type: "file", accept: "video/*", hidden: true, onchange: () => file(videoFile, "video")});
  const pictureFile = h("input", {type: "file", accept: "image/*", hidden: true, onchange: () => file(pictureFile, "picture")});
  const element = h(
    "div",
    {class: "actions live-sources"},
    h("button", {type: "button", onclick: camera}, "Webcam"),
    h("button", {type: "button", onclick: () => videoFile.click()}, "Video file"),
    h("button", {type: "button", onclick: () => pictureFile.click()}, "Picture"),
    videoFile,
    pictureFile,
  );
  const ready = () =>
    current === video ? (video.videoWidth > 0 && video.readyState >= 2 ? video : null) : current;
  /** Which frame `media` shows: a new stamp for each new video frame. */
  const stamp = (media) => (media === video && counting ? presented : media.currentTime);
  return {element, view: h("div", {class: "live-view"}, video, picture), media: ready, stamp, stop, camera};
}

/** What to stream: a layer or the probabilities, over OSC to host:port/address; on/off. */
function streamPanel(model, onChange) {
  const choices = [["probs", "class probabilities"], ...model.layers.slice(1).map((l) => [String(l.index), `${l.index}: ${layerTitle(l)}`])];
  const settings = {on: false, layer: "probs", osc: true, target: "127.0.0.1:6448", address: "/wek/inputs"};
  const status = h("p", {class: "live-stream-status muted", "aria-live": "polite"}, "not sending (space bar: on/off)");
  const toggle = h("button", {type: "button", "aria-pressed": "false", onclick: () => set({on: !settings.on})}, "Send");
  const text = (key, label) =>
    h("label", {class: "field"}, h("span", {}, label),
      h("input", {type: "text", value: settings[key], size: 16, "aria-label": label, onchange: (e) => set({[key]: e.target.value.trim()})}));

  function set(changes) {
    Object.assign(settings, changes);
    toggle.setAttribute("aria-pressed", String(settings.on));
    toggle.textContent = settings.on ? "Stop sending" : "Send";
    onChange();
  }

  const sketchUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live/features`;
  return {
    element: h(
      "section",
      {class: "card live-stream"},
      h("h3", {}, "Stream out (OSC, sketches)"),
      selectField("send", choices, settings.layer, (value) => set({layer: value})),
      h("label", {class: "field inline"},
        h("input", {type: "checkbox", checked: true, onchange: (e) => set({osc: e.target.checked})}), h("span", {}, "OSC")),
      text("target", "OSC host:port"),
      text("address", "OSC address"),
      toggle,
      status,
      h("p", {class: "muted small"}, "Float32 values, one OSC message a frame (Wekinator: 127.0.0.1:6448 /wek/inputs). " +
        "Browser sketches (p5.js) get the same values as JSON from ", h("code", {}, sketchUrl), "."),
    ),
    wanted: () => ({stream: settings.on ? {...settings, layer: settings.layer === "probs" ? "probs" : Number(settings.layer)} : null}),
    toggle: () => set({on: !settings.on}),
    show(state) {
      if (!state) status.textContent = "not sending (space bar: on/off)";
      else status.textContent = `sending ${state.layer} (${state.size} values) ` +
        (state.osc ? `to ${state.target}: ${state.sent} sent` + (state.failures ? `, ${state.failures} failed (${state.error})` : "") : "to sketches only");
    },
  };
}

/** The chosen layer's maps as tiles, the fc layers as strips, the top classes with bars. */
function mapsPanel(model, onChange) {
  const maps = model.layers.filter((l) => l.index > 0 && spatial(l));
  const vectors = model.layers.filter((l) => l.index > 0 && !spatial(l));
  let chosen = (maps.find((l) => l.type === "conv") ?? maps[0])?.index;
  const grid = h("div");
  let tiles = null;
  const strips = vectors.map((layer) => ({layer, output: layerOutput(model, layer, {barsUpTo: 12})}));
  const classes = h("div", {class: "probabilities", "aria-live": "off"});

  function choose(index) {
    chosen = Number(index);
    const layer = model.layers[chosen];
    tiles = layer ? tileGrid(layer) : null;
    grid.replaceChildren(tiles ? tiles.element : "");
    onChange();
  }
  choose(chosen ?? -1);
  return {
    element: h(
      "div",
      {class: "live-maps"},
      maps.length
        ? h("section", {class: "card"}, selectField("maps of", maps.map((l) => [l.index, `${l.index}: ${layerTitle(l)}`]), chosen, choose), grid)
        : null,
      h("section", {class: "card"}, h("h3", {}, "Top classes"), classes),
      strips.length
        ? h("section", {class: "card"}, h("h3", {}, "Fully connected layers"),
          strips.map(({layer, output}) => h("div", {class: "live-layer"}, h("h4", {}, `${layer.index}: ${layerTitle(layer)}`), output.element)))
        : null,
    ),
    layers: () => [...(Number.isInteger(chosen) && chosen >= 0 ? [chosen] : []), ...vectors.map((l) => l.index)],
    update({header, layers}) {
      const map = layers.get(chosen);
      if (tiles && map) tiles.update(map.data);
      for (const {layer, output} of strips) {
        const got = layers.get(layer.index);
        if (got) output.update({shape: got.shape, data: layerValues(got)});
      }
      const probs = header.probabilities;
      const top = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, TOP);
      const names = model.output_names ?? [];
      classes.replaceChildren(
        probs.length
          ? barChart(top.map(([p]) => p), top.map(([, i]) => names[i] ?? String(i)), {format: (v) => percent(v), caption: "top classes"})
          : h("p", {class: "muted"}, "this model gives no class probabilities"),
      );
    },
  };
}

export async function render(root, ctx) {
  const model = ctx.model;
  const volume = model.input;
  const message = h("div", {class: "live-message"});
  const say = (text) => message.replaceChildren(text ? h("p", {class: "notice"}, text) : "");
  const rate = h("span", {class: "live-rate muted"}, "");
  const seen = h("canvas", {width: volume.sx, height: volume.sy, class: "pixelated thumb"});
  seen.style.width = `${Math.max(96, 3 * volume.sx)}px`;
  let socket = null;
  let inFlight = 0;
  let done = 0;
  let times = [];
  let closed = false;
  let lastSent = {media: null, stamp: null};
  const source = sourcePanel(say);
  const maps = mapsPanel(model, () => sendSettings());
  const streams = streamPanel(model, () => sendSettings());
  const grab = h("canvas");
  const open = () => socket?.readyState === WebSocket.OPEN;
  const teach = teachPanel({send: (text) => open() && socket.send(text), sendFrame: (bytes) => open() && socket.send(bytes)});

  function sendSettings() {
    if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({layers: maps.layers(), ...streams.wanted()}));
  }

  /** Whether `media` shows something not sent yet: a video's next frame, a picture at most
   * PICTURE_FPS times a second (its stream goes on). */
  function fresh(media) {
    const now = performance.now();
    const stamp = media instanceof HTMLVideoElement ? source.stamp(media) : Math.floor(now / (1000 / PICTURE_FPS));
    if (media === lastSent.media && stamp === lastSent.stamp) return false;
    lastSent = {media, stamp};
    return true;
  }

  function pump() {
    const media = source.media();
    while (!closed && !teach.busy() && media && socket?.readyState === WebSocket.OPEN && inFlight < IN_FLIGHT && fresh(media)) {
      const width = media.videoWidth ?? media.naturalWidth;
      const height = media.videoHeight ?? media.naturalHeight;
      if (!width || !height) return;
      const c = cropFor(width, height, volume);
      grab.width = c.sw;
      grab.height = c.sh;
      const context = grab.getContext("2d", {willReadFrequently: true});
      context.drawImage(media, c.x, c.y, c.cw, c.ch, 0, 0, c.sw, c.sh);
      seen.getContext("2d").drawImage(grab, 0, 0, volume.sx, volume.sy);
      socket.send(frameMessage(context.getImageData(0, 0, c.sw, c.sh)));
      inFlight += 1;
    }
  }

  function received(data) {
    inFlight = Math.max(0, inFlight - 1);
    const result = readResult(data);
    maps.update(result);
    teach.update(result.header.teach);
    streams.show(result.header.stream);
    done += 1;
    const now = performance.now();
    times = [...times.filter((t) => now - t < 2000), now];
    const fps = times.length > 1 ? (1000 * (times.length - 1)) / (now - times[0]) : 0;
    rate.textContent = `${fps.toFixed(1)} frames/s (server ${result.header.ms.toFixed(1)} ms a frame)`;
    root.dataset.frames = String(done);
    root.dataset.fps = fps.toFixed(2);
    pump();
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/api/models/${encodeURIComponent(model.id)}/live`);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      sendSettings();
      teach.connected();
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return received(event.data);
      const note = JSON.parse(event.data);
      if (note.type === "error") {
        inFlight = Math.max(0, inFlight - 1);
        message.replaceChildren(errorBox(note.error));
      } else if (note.type === "settings") streams.show(note.stream);
      else if (note.type === "teach") teach.answer(note);
    };
    socket.onclose = () => {
      if (!closed) say("The connection to the explorer closed; reload the page to reconnect.");
    };
  }

  function onKey(event) {
    if (teach.onKey(event)) return;
    // (a focused button would be pressed again by the space bar: here it toggles sending)
    if (event.code !== "Space" || event.target.closest?.("input, select, textarea")) return;
    event.preventDefault();
    streams.toggle();
  }

  const timer = setInterval(pump, 10);
  document.addEventListener("keydown", onKey);
  document.addEventListener("keyup", teach.onKey);
  const features = ctx.models.find((m) => m.id === DEFAULT_FEATURES) ?? ctx.models.find((m) => m.id === FALLBACK_FEATURES);
  root.append(
    h("header", {class: "view-header"},
      h("h2", {}, "Live"),
      h("p", {class: "muted"},
        `${model.title} sees a ${volumeText(volume)} view of each frame: its centre, cropped to the input's shape ` +
          `and scaled down to ${volume.sx}x${volume.sy} pixels. `,
        features && model.id !== features.id
          ? h("a", {href: `#/live?model=${features.id}`}, `Use ${features.id}, the default feature network`)
          : null),
    ),
    h("div", {class: "live-layout"},
      h("div", {},
        h("section", {class: "card"}, source.element, source.view,
          h("figure", {class: "seen"}, seen, h("figcaption", {}, `what the network sees (${volume.sx}x${volume.sy})`)),
          rate, message),
        streams.element,
        teach.element),
      maps.element),
  );
  connect();
  return () => {
    closed = true;
    clearInterval(timer);
    document.removeEventListener("keydown", onKey);
    document.removeEventListener("keyup", teach.onKey);
    source.stop();
    socket?.close();
  };
}
