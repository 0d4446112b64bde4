// Train a network from the page and watch it learn: loss and accuracy curves, the first
// layer's filters and the activation maps of a fixed input, live over a WebSocket. A run keeps
// going (and keeps its curves) while you look at other views; when done it joins the model list.

import {decodeTensor} from "../api.js";
import {lineChart} from "../chart.js";
import {h, errorBox, notice, numberField, percent, selectField, setChildren, TASK_NAMES} from "../dom.js";
import {
  asImage,
  barChart,
  dims,
  extent,
  item,
  layerTitle,
  mapRow,
  tensorCanvas,
  vectorStrip,
} from "../draw.js";

const MAX_FILTERS = 32;
const MAX_MAPS = 12;
const decodeOrNull = (tensor) => (tensor ? decodeTensor(tensor) : null);

/** The training run of this page, kept across views so its curves survive navigation. */
const session = {
  job: null,
  modelId: null,
  description: null,
  running: false,
  progress: [],
  epochs: [],
  snapshot: null,
  status: "",
  outcome: null,
  listener: null,
};

/** A small convnet for an input volume {sx, depth} and a number of classes. */
function defaultSpec({sx: side, depth}, classes) {
  const layers = [
    {type: "input", sx: side, sy: side, depth},
    {type: "conv", sx: 5, filters: 8, pad: 2, activation: "relu"},
    {type: "pool", sx: 2, stride: 2},
    {type: "conv", sx: 5, filters: 16, pad: 2, activation: "relu"},
    {type: "pool", sx: 3, stride: 3},
    {type: "softmax", num_classes: classes},
  ];
  const line = (layer) =>
    `{${Object.entries(layer)
      .map(([k, v]) => `"${k}": ${JSON.stringify(v)}`)
      .join(", ")}}`;
  return `[\n${layers.map((l) => `  ${line(l)}`).join(",\n")}\n]`;
}

function handle(message, ctx) {
  switch (message.type) {
    case "progress":
      session.progress.push(message);
      session.status =
        `epoch ${message.epoch + 1} of ${message.epochs} · ` +
        `step ${message.step} of ${message.steps_per_epoch} · ` +
        `${Math.round(message.examples_per_s).toLocaleString("en-US")} images/s`;
      break;
    case "snapshot":
      session.snapshot = {
        filters: decodeOrNull(message.filters),
        activations: message.activations.map((a) => ({index: a.index, output: decodeOrNull(a.output)})),
      };
      break;
    case "epoch":
      session.epochs.push(message);
      break;
    case "done":
      session.running = false;
      session.outcome = message;
      session.status = message.stopped ? "Stopped: the weights so far are kept." : "Finished.";
      ctx.refreshModels().catch(ctx.showBanner);
      break;
    case "error":
      session.running = false;
      session.status = "";
      session.outcome = {error: message.error};
      break;
    default:
      return;
  }
  session.listener?.(message.type);
}

function connect(ctx) {
  const socket = ctx.api.trainingSocket(session.job);
  socket.addEventListener("message", (event) => handle(JSON.parse(event.data), ctx));
  socket.addEventListener("close", () => {
    if (!session.running) return;
    session.running = false;
    session.outcome = {error: "the connection to the training job closed before it finished"};
    session.listener?.("error");
  });
}

export async function render(root, ctx) {
  // Live training trains image classifiers on the catalogue's image sets (GET /api/datasets).
  const images = (await ctx.api.datasets()).catalogue.filter((d) => d.kind === "images");
  const live = images.map((d) => d.name);
  const datasets = ctx.datasets.map((d) => d.name).filter((name) => live.includes(name));
  const trainable = (m) => m.task === "classify" && live.includes(m.dataset);
  // One model per registry name (the name POST /api/train takes), with the dataset it is for.
  const registry = [
    ...new Map(ctx.models.filter((m) => m.registry && trainable(m)).map((m) => [m.registry, m])).values(),
  ];
  const shown = ctx.models.find((m) => m.id === ctx.model?.id);
  const currentRegistry = shown?.registry;
  let dataset = live.includes(ctx.model?.dataset) ? ctx.model.dataset : (datasets[0] ?? live[0]);
  const classesOf = (name) => ctx.datasets.find((d) => d.name === name)?.classes.length ?? 10;
  const inputOf = (name) => images.find((d) => d.name === name)?.input ?? ctx.model?.input;
  const specText = h(
    "textarea",
    {rows: 9, wrap: "off", spellcheck: "false", class: "spec", "aria-label": "layer list (JSON)"},
    defaultSpec(inputOf(dataset), classesOf(dataset)),
  );
  let specEdited = false;
  specText.addEventListener("input", () => (specEdited = true));
  const source = {value: "spec"};
  const registryPicker = h(
    "select",
    {"aria-label": "registry model", disabled: true, onchange: () => useRegistryDataset()},
    registry.map((m) =>
      h(
        "option",
        {value: m.registry, selected: m.registry === currentRegistry},
        `${m.registry} (${m.dataset})`,
      ),
    ),
  );
  const sourceRadio = (value, label) =>
    h(
      "label",
      {class: "radio"},
      h("input", {
        type: "radio",
        name: "source",
        value,
        checked: value === source.value,
        onchange: () => {
          source.value = value;
          registryPicker.disabled = value !== "registry";
          specText.disabled = value !== "spec";
          if (value === "registry") useRegistryDataset();
        },
      }),
      label,
    );
  const datasetField = selectField("Dataset", datasets.map((d) => [d, d]), dataset, setDataset);
  function setDataset(name) {
    dataset = name;
    datasetField.querySelector("select").value = name;
    if (!specEdited) specText.value = defaultSpec(inputOf(dataset), classesOf(dataset));
  }
  /** A registry model trains on its own dataset: select it. */
  function useRegistryDataset() {
    const picked = registry.find((m) => m.registry === registryPicker.value)?.dataset;
    if (datasets.includes(picked)) setDataset(picked);
  }
  const epochs = numberField("Epochs", 1, {min: 1, max: 100});
  const batch = numberField("Batch size", 64, {min: 1, max: 4096});
  const lr = h("input", {
    type: "text",
    inputmode: "decimal",
    placeholder: "recipe default",
    size: 10,
    "aria-label": "learning rate",
  });
  const optimizer = h(
    "select",
    {"aria-label": "optimizer"},
    [
      ["", "recipe default"],
      ["sgd", "sgd"],
      ["adam", "adam"],
      ["adamw", "adamw"],
      ["adadelta", "adadelta"],
    ].map(([v, t]) => h("option", {value: v}, t)),
  );
  const formError = h("div", {"aria-live": "polite"});
  const startButton = h("button", {type: "button", class: "primary", onclick: start}, "Start");
  const stopButton = h("button", {type: "button", onclick: stop}, "Stop");
  const status = h("p", {class: "train-status", "aria-live": "polite"});
  const loss = lineChart("Loss", {xLabel: "epoch"});
  const accuracy = lineChart("Accuracy", {xLabel: "epoch", yMin: 0, yMax: 1});
  const filters = h("div", {class: "live-filters"});
  const maps = h("div", {class: "live-maps"});

  async function start() {
    formError.replaceChildren();
    const body = {
      dataset,
      epochs: Number(epochs.querySelector("input").value),
      batch_size: Number(batch.querySelector("input").value),
    };
    if (lr.value.trim()) body.lr = Number(lr.value);
    if (optimizer.value) body.optimizer = optimizer.value;
    if (source.value === "registry") {
      body.model = registryPicker.value;
    } else {
      try {
        body.spec = JSON.parse(specText.value);
      } catch (error) {
        formError.replaceChildren(errorBox(`the layer list is not valid JSON: ${error.message}`));
        return;
      }
    }
    try {
      const {job, model_id: modelId} = await ctx.api.startTraining(body);
      Object.assign(session, {
        job,
        modelId,
        description: null,
        running: true,
        progress: [],
        epochs: [],
        snapshot: null,
        status: "starting…",
        outcome: null,
      });
      connect(ctx);
      update();
      ctx.refreshModels().catch(ctx.showBanner);
      session.description = await ctx.api.model(modelId);
    } catch (error) {
      formError.replaceChildren(errorBox(error));
    }
  }

  async function stop() {
    try {
      await ctx.api.stopTraining(session.job);
      session.status = "stopping…";
      update();
    } catch (error) {
      formError.replaceChildren(errorBox(error));
    }
  }

  function update(kind) {
    startButton.disabled = session.running;
    stopButton.disabled = !session.running;
    const outcome = session.outcome;
    setChildren(
      status,
      session.status,
      outcome?.error ? errorBox(outcome.error) : null,
      outcome && !outcome.error
        ? [
            outcome.test_accuracy == null ? "" : ` Test accuracy ${percent(outcome.test_accuracy)}. `,
            h(
              "a",
              {href: `#/network?model=${encodeURIComponent(outcome.model_id)}`},
              "Open it in the explorer",
            ),
            " (it is now in the model picker).",
          ]
        : null,
    );
    if (!kind || kind === "progress" || kind === "epoch") drawCurves();
    if (!kind || kind === "snapshot") drawSnapshot();
  }

  function drawCurves() {
    const x = (m) => m.epoch + m.step / m.steps_per_epoch;
    loss.update([
      {name: "training loss (batch)", colour: "#2563eb", points: session.progress.map((m) => [x(m), m.loss])},
    ]);
    accuracy.update([
      {
        name: "training accuracy (this epoch so far)",
        colour: "#16a34a",
        points: session.progress.map((m) => [x(m), m.accuracy]),
      },
      {
        name: "validation accuracy",
        colour: "#dc2626",
        dots: true,
        points: session.epochs.filter((e) => e.val_acc != null).map((e) => [e.epoch, e.val_acc]),
      },
    ]);
  }

  function drawSnapshot() {
    const snapshot = session.snapshot;
    if (!snapshot) {
      filters.replaceChildren(
        h(
          "p",
          {class: "muted"},
          session.job ? "Waiting for the first snapshot…" : "Start a run to see its filters learn.",
        ),
      );
      maps.replaceChildren();
      return;
    }
    if (snapshot.filters) {
      const count = Math.min(snapshot.filters.shape[0], MAX_FILTERS);
      filters.replaceChildren(
        h("h3", {}, "First-layer filters"),
        h(
          "div",
          {class: "weight-grid"},
          Array.from({length: count}, (_, i) => {
            const image = asImage(item(snapshot.filters, i));
            const {depth, width} = dims(image);
            const range = extent(image.data.filter((v) => !Number.isNaN(v)));
            return h(
              "figure",
              {class: "weight-image"},
              tensorCanvas(image, {
                scale: Math.max(2, Math.floor(56 / width)),
                channel: depth === 3 ? null : 0,
                ...range,
              }),
              h("figcaption", {}, `filter ${i}`),
            );
          }),
        ),
      );
    }
    const layers = session.description?.layers ?? [];
    maps.replaceChildren(
      h("h3", {}, "Activation maps of a fixed input"),
      ...snapshot.activations.map(({index, output}) => {
        const layer = layers[index];
        const title = layer ? `${index}: ${layerTitle(layer)}` : `layer ${index}`;
        const {depth, height, width} = dims(output);
        const classes = session.description?.classes ?? [];
        const names = depth === classes.length ? classes : Array.from({length: depth}, (_, i) => String(i));
        const body =
          height * width > 1
            ? mapRow(output, {limit: MAX_MAPS})
            : depth <= 20
              ? barChart(output.data, names, {caption: title})
              : vectorStrip(output.data, "neuron");
        return h("div", {class: "live-layer"}, h("h4", {}, title), body);
      }),
    );
  }

  root.append(
    h(
      "header",
      {class: "view-header"},
      h("h2", {}, "Train"),
      h(
        "p",
        {class: "muted"},
        "Train a registry model or your own layer list on a dataset and watch the curves, the " +
          "first layer's filters and the activation maps of one image change as it learns.",
      ),
    ),
    ...(shown && !trainable(shown)
      ? [notice(
          `Training here is for image classifiers on ${live.join(" or ")}; ` +
            `${shown.title} is ${TASK_NAMES[shown.task] ?? `a ${shown.task} model`} for ${shown.dataset}. ` +
            "Train such models with ",
          h("code", {}, `convscope train --model ${shown.registry ?? "<model>"}`),
          ".",
        )]
      : []),
    h(
      "div",
      {class: "train-layout"},
      h(
        "div",
        {},
        h(
          "form",
          {class: "card train-form", onsubmit: (e) => e.preventDefault()},
          h(
            "fieldset",
            {},
            h("legend", {}, "Network"),
            sourceRadio("spec", "Layer list (JSON, ConvNetJS vocabulary)"),
            specText,
            sourceRadio("registry", "Registry model"),
            registryPicker,
          ),
          h(
            "div",
            {class: "toolbar"},
            datasetField,
            epochs,
            batch,
            h("label", {class: "field"}, h("span", {}, "Learning rate"), lr),
            h("label", {class: "field"}, h("span", {}, "Optimizer"), optimizer),
          ),
          h("div", {class: "actions"}, startButton, stopButton),
          formError,
          status,
        ),
        filters,
      ),
      h("div", {class: "train-charts"}, loss.element, accuracy.element, maps),
    ),
  );
  session.listener = update;
  update();
  return () => {
    session.listener = null;
  };
}
