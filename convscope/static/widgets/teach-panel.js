// Train your own (ml4a's ConvnetClassifier / Regressor / Predictor, Teachable Machine), a panel
// of the Live page. Frames are the live view's own (one WebSocket); the panel sends
// {"teach": {...}} commands over it and reads each frame's "teach" part (recorded example,
// prediction). Classes: hold a class's button, or a key 1-9, to record the webcam; or add
// pictures. Sliders: values in [0, 1] recorded with each example, and predicted with easing.

import {h, percent, selectField, setChildren} from "../dom.js";
import {barChart} from "../draw.js";
import {frameMessage} from "../live-wire.js";

const SHOWN_THUMBS = 12; // the latest examples shown per class
const PICTURE_SIDE = 256; // an added picture travels at most this big (the server fits it)
const PICTURE_TYPES = "image/png,image/jpeg,image/gif,image/webp,image/bmp"; // what createImageBitmap reads

/** A picture file as a frame message (reduced to PICTURE_SIDE a side). */
async function pictureFrame(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, PICTURE_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = h("canvas", {width: Math.max(1, Math.round(bitmap.width * scale)), height: Math.max(1, Math.round(bitmap.height * scale))});
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return frameMessage(context.getImageData(0, 0, canvas.width, canvas.height));
}

/** `button` starts recording while pressed; the pointer is captured, so that a hand moving off
 * the button does not stop it (release, or a cancelled pointer, does). */
function holdToRecord(button, start, stop) {
  button.addEventListener("pointerdown", (event) => {
    try {
      button.setPointerCapture(event.pointerId);
    } catch {
      // (a pointer the browser does not track: recording goes on without the capture)
    }
    start();
  });
  for (const end of ["pointerup", "pointercancel", "lostpointercapture"]) button.addEventListener(end, stop);
}

/** One class's row: name, count, hold-to-record button, add pictures, latest thumbnails. */
function classRow(name, index, actions) {
  const count = h("span", {class: "teach-count"}, "0");
  const thumbs = h("div", {class: "teach-thumbs", "aria-label": `examples of ${name}`});
  const files = h("input", {type: "file", accept: PICTURE_TYPES, multiple: true, hidden: true, "aria-label": `pictures of ${name}`, onchange: () => actions.addPictures(files, name)});
  const hold = h("button", {type: "button", class: "teach-record", "aria-label": `record ${name}`, title: index < 9 ? `or hold the key ${index + 1}` : null}, "Hold to record");
  holdToRecord(hold, () => actions.record(name), actions.stop);
  const key = index < 9 && name !== String(index + 1) ? h("kbd", {title: `hold the key ${index + 1} to record`}, String(index + 1)) : null;
  return {
    element: h("div", {class: "teach-class"},
      h("div", {class: "teach-class-head"}, key, h("strong", {}, name), count, hold,
        h("button", {type: "button", onclick: () => files.click()}, "Add pictures"), files),
      thumbs),
    count, thumbs,
  };
}

/** The training settings and button, with the validation score. */
function trainBox(actions) {
  const settings = {learner: "knn", k: 1, hidden: 10, epochs: 100};
  const number = (key, label, min, max) => h("label", {class: "field"}, h("span", {}, label),
    h("input", {type: "number", value: settings[key], min, max, "aria-label": label, onchange: (e) => { settings[key] = Number(e.target.value); }}));
  const score = h("p", {class: "teach-score muted", "aria-live": "polite"}, "not trained");
  return {
    element: h("div", {class: "teach-train"},
      selectField("classes learner", [["knn", "k-NN"], ["logreg", "logistic regression"]], "knn", (v) => { settings.learner = v; }),
      number("k", "k (neighbours)", 1, 50), number("hidden", "slider MLP hidden units", 1, 200), number("epochs", "slider MLP epochs", 1, 2000),
      h("button", {type: "button", class: "primary", onclick: () => { score.textContent = "training..."; actions.send({train: settings}); }}, "Train"),
      score),
    showScores(outputs, scores) {
      score.textContent = scores.map((s, i) => `${outputs[i].name}: ` + (s.value == null ? "not validated (too few examples)"
        : s.metric === "accuracy" ? `validation accuracy ${percent(s.value)} on ${s.validation}` : `validation mean absolute error ${s.value.toFixed(3)} on ${s.validation}`)).join("; ");
    },
  };
}

/** OSC out settings: /classification (int) and /wek/outputs (floats), on/off. */
function oscBox(actions) {
  const wanted = {on: false, classification: "127.0.0.1:8000", classification_address: "/classification", outputs: "127.0.0.1:12000", outputs_address: "/wek/outputs"};
  const text = (key, label) => h("label", {class: "field"}, h("span", {}, label),
    h("input", {type: "text", value: wanted[key], size: 15, "aria-label": label, onchange: (e) => { wanted[key] = e.target.value.trim(); actions.send({osc: wanted}); }}));
  const status = h("span", {class: "muted small"});
  return {
    element: h("div", {class: "teach-osc"},
      h("label", {class: "field inline"}, h("input", {type: "checkbox", "aria-label": "teach OSC out", onchange: (e) => { wanted.on = e.target.checked; actions.send({osc: wanted}); }}), h("span", {}, "OSC out")),
      text("classification", "classes to host:port"), text("classification_address", "classes address"),
      text("outputs", "sliders to host:port"), text("outputs_address", "sliders address"), status),
    show(osc) { status.textContent = osc.on ? `${osc.sent} sent` + (osc.failures ? `, ${osc.failures} failed` : "") : "off"; },
  };
}

/** Save and load the example set and its head (under the explorer's runs folder). */
function storageBox(actions) {
  const name = h("input", {type: "text", value: "my-examples", size: 14, "aria-label": "save as"});
  const saved = h("select", {"aria-label": "saved sets"});
  const where = h("p", {class: "muted small teach-where"});
  return {
    element: h("div", {class: "teach-storage"},
      h("div", {class: "actions"}, name, h("button", {type: "button", onclick: () => actions.send({save: name.value.trim()})}, "Save"),
        saved, h("button", {type: "button", onclick: () => saved.value && actions.send({load: saved.value})}, "Load"),
        h("button", {type: "button", onclick: () => actions.send({clear: true})}, "Clear examples")),
      where),
    show(state, savedTo) {
      const current = saved.value;
      setChildren(saved, state.saved.map((n) => h("option", {value: n, selected: n === current}, n)));
      if (savedTo) where.textContent = `saved to ${savedTo}; stream it headless: convscope stream --head ${savedTo} --source 0`;
      else if (!where.textContent) where.textContent = `sets are saved under ${state.folder}`;
    },
  };
}

/** The outputs: a row per class (or one set of thumbnails), the sliders, adding outputs;
 * `state()` is the latest state, `idle()` whether nothing is being recorded. */
function outputsView(actions, state, idle) {
  let rows = [];
  const sliders = new Map(); // name -> range input
  const outputs = h("div", {class: "teach-outputs"});
  const className = h("input", {type: "text", size: 10, placeholder: "class name", "aria-label": "new class name"});
  const sliderName = h("input", {type: "text", size: 8, placeholder: "slider name", "aria-label": "new slider name"});

  function addOutput(kind) {
    const field = kind === "class" ? className : sliderName;
    const name = field.value.trim();
    if (!name) return;
    field.value = "";
    if (kind === "class") actions.send({add_class: name});
    else {
      const classes = state().outputs.find((o) => o.kind === "classes")?.classes ?? [];
      actions.send({outputs: {classes, sliders: [...state().outputs.filter((o) => o.kind === "slider").map((o) => o.name), name]}});
    }
  }

  function build(current) {
    const classes = current.outputs.find((o) => o.kind === "classes");
    const loose = classes ? null : {count: h("span"), thumbs: h("div", {class: "teach-thumbs", "aria-label": "examples"})};
    rows = loose ? [loose] : classes.classes.map((name, i) => classRow(name, i, actions));
    sliders.clear();
    const sliderRows = current.outputs.filter((o) => o.kind === "slider").map((o) => {
      const input = h("input", {type: "range", min: 0, max: 1, step: 0.01, value: 0.5, "aria-label": `slider ${o.name}`});
      const shown = h("span", {class: "teach-value"}, "0.50");
      input.addEventListener("input", () => { shown.textContent = Number(input.value).toFixed(2); });
      sliders.set(o.name, input);
      return h("div", {class: "teach-slider"}, h("strong", {}, o.name), input, shown);
    });
    const holdAll = classes ? null : h("button", {type: "button", class: "teach-record", "aria-label": "record"}, "Hold to record");
    if (holdAll) {
      holdToRecord(holdAll, () => actions.record(""), actions.stop);
    }
    setChildren(outputs, loose ? null : rows.map((r) => r.element), sliderRows, holdAll, loose?.thumbs,
      h("div", {class: "actions"},
        classes ? [className, h("button", {type: "button", onclick: () => addOutput("class")}, "Add class")] : null,
        sliderName, h("button", {type: "button", disabled: current.count > 0, title: "sliders are added before recording", onclick: () => addOutput("slider")}, "Add slider")));
  }

  function showExamples(examples) {
    rows.forEach((row) => row.thumbs.replaceChildren());
    examples.forEach(addThumb);
  }

  function addThumb(example) {
    const row = rows[example.class ?? 0];
    if (!row) return;
    const img = h("img", {src: example.thumb, alt: example.label, title: `${example.label} (click: delete)`, class: "teach-thumb", "data-index": example.index,
      onclick: () => actions.send({delete: example.index})});
    row.thumbs.prepend(img);
    while (row.thumbs.children.length > SHOWN_THUMBS) row.thumbs.lastChild.remove();
  }

  function showCounts(counts) {
    rows.forEach((row, i) => { row.count.textContent = String(counts[i] ?? 0); });
  }

  function showPrediction(prediction, current) {
    const parts = prediction.map((p) => {
      if (p.likelihoods) {
        const names = current.outputs.find((o) => o.name === p.output).classes;
        return h("div", {}, h("p", {class: "teach-predicted"}, `Predicted class: ${p.name}`),
          barChart(p.likelihoods, names, {format: (v) => percent(v, 0), caption: "class likelihoods"}));
      }
      const input = sliders.get(p.output);
      if (input && idle()) {
        input.value = String(p.value);
        input.dispatchEvent(new Event("input"));
      }
      return h("p", {class: "teach-slider-value"}, `${p.output}: ${p.value.toFixed(2)} (target ${p.target.toFixed(2)})`);
    });
    return parts;
  }

  return {element: outputs, sliders, build, showExamples, addThumb, showCounts, showPrediction};
}

/** The panel. `io.send(json)` sends a control message, `io.sendFrame(bytes)` a frame. */
export function teachPanel(io) {
  let state = null;
  let holding = null; // what is being recorded (a class name, or "" for sliders only)
  let uploading = false;
  const result = h("div", {class: "teach-result", "aria-live": "off"});
  const problem = h("p", {class: "teach-error", role: "alert"});
  const send = (command) => io.send(JSON.stringify({teach: command}));
  const values = (name) => Object.fromEntries([...(name ? [["class", name]] : []), ...[...view.sliders].map(([n, input]) => [n, Number(input.value)])]);
  const actions = {
    send,
    record(name) { if (holding === null && !uploading) { holding = name; send({record: values(name)}); } },
    stop() { if (holding !== null) { holding = null; send({record: null}); } },
    async addPictures(input, name) {
      const files = [...(input.files ?? [])];
      input.value = "";
      if (!files.length || holding !== null) return;
      uploading = true;
      try {
        const frames = await Promise.all(files.map(pictureFrame));
        send({record: values(name)});
        frames.forEach((frame) => io.sendFrame(frame));
        send({record: null});
      } catch (error) {
        problem.textContent = `a picture could not be read (${error.message}); choose PNG or JPEG pictures`;
      } finally {
        uploading = false;
      }
    },
  };
  const view = outputsView(actions, () => state, () => holding === null);
  const train = trainBox(actions);
  const osc = oscBox(actions);
  const storage = storageBox(actions);
  const lerp = h("input", {type: "number", value: 0.2, min: 0.01, max: 1, step: 0.01, "aria-label": "prediction lerp", onchange: (e) => send({lerp: Number(e.target.value)})});
  const predict = h("input", {type: "checkbox", "aria-label": "predict", onchange: (e) => send({predict: e.target.checked})});

  return {
    element: h("section", {class: "card teach"},
      h("h3", {}, "Train your own"),
      h("p", {class: "muted small teach-features"}, ""),
      view.element,
      train.element,
      h("div", {class: "actions"}, h("label", {class: "field inline"}, predict, h("span", {}, "Predict")),
        h("label", {class: "field inline"}, h("span", {}, "prediction lerp"), lerp)),
      result, osc.element, storage.element, problem),
    connected: () => send({examples: true}),
    busy: () => uploading,
    /** A "teach" message: the state after a command. */
    answer(message) {
      const shape = (m) => JSON.stringify(m.outputs.map((o) => [o.name, o.kind, o.classes]));
      const rebuild = !state || shape(state) !== shape(message);
      if (rebuild && state && message.count && !message.examples) send({examples: true}); // thumbnails again
      state = message;
      problem.textContent = message.error ?? "";
      if (rebuild) view.build(state);
      if (message.examples) view.showExamples(message.examples);
      view.showCounts(message.counts);
      predict.checked = message.predicting;
      if (!message.predicting) result.replaceChildren();
      if (message.scores) train.showScores(message.outputs, message.scores);
      osc.show(message.osc);
      storage.show(message, message.saved_to);
      this.element.querySelector(".teach-features").textContent =
        `Features: ${message.features.layer} of ${message.features.model} (${message.features.size} values, where its last conv stage begins). ${message.count} examples.`;
      this.element.dataset.count = String(message.count);
    },
    /** A frame's "teach" part. */
    update(part) {
      if (!part || !state) return;
      if (part.recorded) view.addThumb(part.recorded);
      if (part.counts) view.showCounts(part.counts);
      if (part.error) problem.textContent = part.error;
      this.element.dataset.count = String(part.count);
      if (part.prediction) {
        setChildren(result, view.showPrediction(part.prediction, state));
        this.element.dataset.predicted = part.prediction.find((p) => p.name !== undefined)?.name ?? "";
      }
    },
    /** Keys 1-9 held: record that class. Returns whether the key was the panel's. */
    onKey(event) {
      if (!/^Digit[1-9]$/.test(event.code) || event.target.closest?.("input, select, textarea")) return false;
      const row = state?.outputs.find((o) => o.kind === "classes")?.classes[Number(event.code.slice(5)) - 1];
      if (row === undefined) return false;
      event.preventDefault();
      if (event.type === "keydown" && !event.repeat) actions.record(row);
      if (event.type === "keyup") actions.stop();
      return true;
    },
  };
}
