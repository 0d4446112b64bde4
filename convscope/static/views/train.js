// Train a network from the page and watch it learn: loss and accuracy curves, the first
// layer's filters and the activation maps of a fixed input, live over a WebSocket. A run keeps
// going (and keeps its curves) while you look at other views; when done it joins the model list.
// A reloaded page (or a second tab) finds the running job and follows it; the runs trained here
// are listed with their scores, to rename or delete.

import {decodeTensor} from "../api.js";
import {lineChart} from "../chart.js";
import {h, errorBox, notice, numberField, percent, selectField, setChildren} from "../dom.js";
import {asImage, dims, extent, item, layerTitle, tensorCanvas} from "../draw.js";
import {layerOutput} from "../widgets/layer-output.js";

const MAX_FILTERS = 32;
const MAX_MAPS = 12;
const decodeOrNull = (tensor) => (tensor ? decodeTensor(tensor) : null);
const isRunning = (job) => job.state === "running" || job.state === "stopping";

/** The training run of this page, kept across views so its curves survive navigation. */
const session = {
  job: null,
  modelId: null,
  settings: null, // what the run trains, as the form shows it (a job's `settings`)
  description: null,
  describing: null, // the model id whose description is being fetched
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
  return specText(layers);
}

function handle(message, ctx) {
  switch (message.type) {
    case "progress": {
      const last = session.progress.at(-1); // a page attaching late has it from the history
      if (!last || last.epoch !== message.epoch || last.step !== message.step) {
        session.progress.push(message);
      }
      session.status =
        `epoch ${message.epoch + 1} of ${message.epochs} · ` +
        `step ${message.step} of ${message.steps_per_epoch} · ` +
        `${Math.round(message.examples_per_s).toLocaleString("en-US")} images/s`;
      break;
    }
    case "snapshot":
      describe(ctx);
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

/** Fetch the live model's description once its first snapshot shows it exists (a job that
 * fails at once leaves the catalog before: its error is what to show, not a missing model). */
function describe(ctx) {
  if (session.description || session.describing === session.modelId) return;
  const modelId = (session.describing = session.modelId);
  ctx.api
    .model(modelId)
    .then((description) => {
      if (session.modelId !== modelId) return;
      session.description = description;
      session.listener?.("snapshot");
    })
    .catch(() => (session.describing = null));
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

/** A layer list as the text area shows it: one layer a line. */
function specText(layers) {
  const line = (layer) =>
    `{${Object.entries(layer)
      .map(([k, v]) => `"${k}": ${JSON.stringify(v)}`)
      .join(", ")}}`;
  return `[\n${layers.map((l) => `  ${line(l)}`).join(",\n")}\n]`;
}

/** The network to train: a layer list (JSON, `spec` at first) or a registry model (first when
 * `initial` is "registry"), or none while a model to start from is chosen (its own network).
 * `onRegistry(name)` runs when a registry model is chosen. */
function networkChoice(registry, currentRegistry, spec, onRegistry, initial = "spec") {
  const specArea = h(
    "textarea",
    {rows: 9, wrap: "off", spellcheck: "false", class: "spec", "aria-label": "layer list (JSON)"},
    spec,
  );
  let specEdited = false;
  specArea.addEventListener("input", () => (specEdited = true));
  const source = {value: initial, from: null};
  const registryPicker = h(
    "select",
    {"aria-label": "registry model", onchange: () => onRegistry(registryPicker.value)},
    registry.map((m) =>
      h(
        "option",
        {value: m.registry, selected: m.registry === currentRegistry},
        `${m.registry} (${m.dataset})`,
      ),
    ),
  );
  const radios = {};
  const fromNote = h("p", {class: "muted small", hidden: true});
  function choose(value) {
    source.value = value;
    radios[value].checked = true;
    for (const radio of Object.values(radios)) radio.disabled = Boolean(source.from);
    registryPicker.disabled = value !== "registry" || Boolean(source.from);
    specArea.disabled = value !== "spec" || Boolean(source.from);
  }
  const sourceRadio = (value, label) => {
    radios[value] = h("input", {
      type: "radio",
      name: "source",
      value,
      onchange: () => {
        choose(value);
        if (value === "registry") onRegistry(registryPicker.value);
      },
    });
    return h("label", {class: "radio"}, radios[value], label);
  };
  const element = h(
    "fieldset",
    {},
    h("legend", {}, "Network"),
    sourceRadio("spec", "Layer list (JSON, ConvNetJS vocabulary)"),
    specArea,
    sourceRadio("registry", "Registry model"),
    registryPicker,
    fromNote,
  );
  choose(initial);
  return {
    element,
    /** Show `text` as the layer list unless the user has edited it. */
    suggest(text) {
      if (!specEdited) specArea.value = text;
    },
    /** Train the network of the model `title` starts from (null: the choice above). */
    startFrom(title) {
      source.from = title;
      fromNote.hidden = !title;
      fromNote.textContent = title ? `Starting from ${title}: its own network trains.` : "";
      choose(source.value);
    },
    /** Show a job's network ({model} or {spec}, as POST /api/train took them). */
    show({model, spec}) {
      if (model) {
        if (![...registryPicker.options].some((o) => o.value === model)) {
          registryPicker.append(h("option", {value: model}, model));
        }
        registryPicker.value = model;
        choose("registry");
      } else if (spec) {
        specArea.value = specText(spec);
        specEdited = true;
        choose("spec");
      }
    },
    /** {model} or {spec} for POST /api/train ({} when starting from a model); throws when the
     * layer list is not JSON. */
    value() {
      if (source.from) return {};
      if (source.value === "registry") return {model: registryPicker.value};
      try {
        return {spec: JSON.parse(specArea.value)};
      } catch (error) {
        throw new Error(`the layer list is not valid JSON: ${error.message}`);
      }
    },
  };
}

/** Fine-tuning: the model whose weights training starts from (a bundled model or a finished
 * run, `models`), and what stays frozen. `onSource(model or null)` on a new choice. */
function startFromChoice(models, onSource) {
  const picker = h(
    "select",
    {"aria-label": "start from", onchange: () => onSource(chosen())},
    h("option", {value: ""}, "nothing (fresh weights)"),
    models.map((m) => h("option", {value: m.id}, `${m.title} (${m.dataset})`)),
  );
  const chosen = () => models.find((m) => m.id === picker.value) ?? null;
  const freeze = h(
    "select",
    {"aria-label": "freeze"},
    [
      ["none", "train every layer"],
      ["features", "only the output layer (features frozen)"],
    ].map(([v, t]) => h("option", {value: v}, t)),
  );
  return {
    element: h(
      "div",
      {class: "toolbar"},
      h("label", {class: "field"}, h("span", {}, "Start from"), picker),
      h("label", {class: "field"}, h("span", {}, "Freeze"), freeze),
    ),
    /** Show a job's `init_from` and `freeze`. */
    show({init_from: from, freeze: frozen}) {
      if (from && !models.some((m) => m.id === from)) {
        models.push({id: from, title: from, dataset: ""});
        picker.append(h("option", {value: from}, from));
      }
      picker.value = from ?? "";
      freeze.value = frozen ?? "none";
      onSource(chosen());
    },
    /** The fine-tuning part of POST /api/train's body. */
    value() {
      return {
        ...(picker.value ? {init_from: picker.value} : {}),
        ...(freeze.value !== "none" ? {freeze: freeze.value} : {}),
      };
    },
  };
}

/**
 * Dataset, epochs, batch size, learning rate and optimizer (one of `optimizers`, the server's);
 * `onDataset(name)` on a new dataset.
 */
function trainOptions(datasets, dataset, optimizers, onDataset) {
  const datasetField = selectField("Dataset", datasets.map((d) => [d, d]), dataset, setDataset);
  function setDataset(name) {
    dataset = name;
    datasetField.querySelector("select").value = name;
    onDataset(name);
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
    h("option", {value: ""}, "recipe default"),
    optimizers.map((name) => h("option", {value: name}, name)),
  );
  return {
    element: h(
      "div",
      {class: "toolbar"},
      datasetField,
      epochs,
      batch,
      h("label", {class: "field"}, h("span", {}, "Learning rate"), lr),
      h("label", {class: "field"}, h("span", {}, "Optimizer"), optimizer),
    ),
    setDataset,
    /** Show a job's dataset, epochs, batch size, learning rate and optimizer. */
    show(settings) {
      if (datasets.includes(settings.dataset)) setDataset(settings.dataset);
      epochs.querySelector("input").value = settings.epochs;
      batch.querySelector("input").value = settings.batch_size;
      lr.value = settings.lr ?? "";
      optimizer.value = settings.optimizer ?? "";
    },
    /** The options part of POST /api/train's body. */
    value() {
      const body = {
        dataset,
        epochs: Number(epochs.querySelector("input").value),
        batch_size: Number(batch.querySelector("input").value),
      };
      if (lr.value.trim()) body.lr = Number(lr.value);
      if (optimizer.value) body.optimizer = optimizer.value;
      return body;
    },
  };
}

/** The loss and accuracy curves of the session's run. */
function curves() {
  const loss = lineChart("Loss", {xLabel: "epoch"});
  const accuracy = lineChart("Accuracy", {xLabel: "epoch", yMin: 0, yMax: 1});
  return {
    loss,
    accuracy,
    update() {
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
    },
  };
}

/** The first layer's filters of the latest snapshot (or what there is to wait for). */
function filtersPanel() {
  const element = h("div", {class: "live-filters"});
  function filterFigure(filters, i) {
    const image = asImage(item(filters, i));
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
  }
  return {
    element,
    update(snapshot) {
      if (!snapshot) {
        element.replaceChildren(
          h(
            "p",
            {class: "muted"},
            session.running ? "Waiting for the first snapshot…" : "Start a run to see its filters learn.",
          ),
        );
        return;
      }
      if (!snapshot.filters) return;
      const count = Math.min(snapshot.filters.shape[0], MAX_FILTERS);
      element.replaceChildren(
        h("h3", {}, "First-layer filters"),
        h(
          "div",
          {class: "weight-grid"},
          Array.from({length: count}, (_, i) => filterFigure(snapshot.filters, i)),
        ),
      );
    },
  };
}

/** Every layer's output for the snapshots' fixed input, one layer-output widget per layer. */
function liveMaps() {
  const element = h("div", {class: "live-maps"});
  const widgets = new Map(); // layer index -> widget, for `drawnFor`
  let drawnFor = null;
  function widget(description, index, title) {
    if (description !== drawnFor) {
      widgets.clear();
      drawnFor = description;
    }
    if (!widgets.has(index)) {
      const layer = description?.layers[index];
      widgets.set(index, layerOutput(description, layer, {limit: MAX_MAPS, caption: title}));
    }
    return widgets.get(index);
  }
  return {
    element,
    /** Draw `snapshot` for the run described by `description` (null while it loads). */
    update(snapshot, description) {
      if (!snapshot) {
        element.replaceChildren();
        return;
      }
      element.replaceChildren(
        h("h3", {}, "Activation maps of a fixed input"),
        ...snapshot.activations.map(({index, output}) => {
          const layer = description?.layers[index];
          const title = layer ? `${index}: ${layerTitle(layer)}` : `layer ${index}`;
          const shown = widget(description, index, title);
          shown.update(output);
          return h("div", {class: "live-layer"}, h("h4", {}, title), shown.element);
        }),
      );
    },
  };
}

/** The run's status line, its error or a link to the finished model. */
function showStatus(status) {
  const outcome = session.outcome;
  setChildren(
    status,
    session.status,
    outcome?.error ? errorBox(outcome.error) : null,
    outcome && !outcome.error
      ? [
          outcome.test_accuracy == null
            ? " Not scored (it stopped before its first validation). "
            : ` Test accuracy ${percent(outcome.test_accuracy)}` +
              `${outcome.score_source ? ` (${outcome.score_source})` : ""}. `,
          h(
            "a",
            {href: `#/network?model=${encodeURIComponent(outcome.model_id)}`},
            "Open it in the explorer",
          ),
          " (it is now in the model picker).",
        ]
      : null,
  );
}

/** Follow job `jobId` (running on the server, started by this page or another): its curves so
 * far from its history, then its messages. */
async function attach(ctx, jobId, update) {
  const status = await ctx.api.trainingStatus(jobId);
  Object.assign(session, {
    job: status.job,
    modelId: status.model_id,
    settings: status.settings ?? null,
    description: null,
    running: isRunning(status),
    progress: status.history ?? [],
    epochs: [],
    snapshot: null,
    status: {stopping: "stopping…", running: `Following ${status.title}…`, done: "Finished."}[
      status.state
    ] ?? (status.state === "stopped" ? "Stopped: the weights so far are kept." : ""),
    outcome: isRunning(status)
      ? null
      : status.error
        ? {error: status.error}
        : {model_id: status.model_id, test_accuracy: status.test_accuracy, score_source: status.score_source},
  });
  if (session.running) connect(ctx);
  update();
}

/** Start the session's run with `body` (POST /api/train) and follow it. */
async function startRun(ctx, body, update) {
  const {job, model_id: modelId, settings} = await ctx.api.startTraining(body);
  Object.assign(session, {
    job,
    modelId,
    settings,
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
}

/** A run's score and what it was measured on, or why it has none. */
function scoreText(run, running) {
  if (run.test_accuracy != null) return `${percent(run.test_accuracy)} · ${run.accuracy_source}`;
  return running ? "training…" : "not scored (stopped before its first validation)";
}

/** The runs trained in the explorer (now and before), each with its score, to open, rename
 * or delete. `refresh()` reloads the list. */
function runsPanel(ctx) {
  const element = h("section", {class: "card live-runs", "aria-label": "runs trained here"});
  let listing = {jobs: [], runs: []};
  async function act(work) {
    try {
      await work();
      await ctx.refreshModels();
    } catch (error) {
      element.append(errorBox(error));
      return;
    }
    await refresh();
  }
  function renameForm(run, row) {
    const input = h("input", {type: "text", value: run.title, maxlength: 80, "aria-label": "new name"});
    const save = () => act(() => ctx.api.renameModel(run.id, input.value));
    input.addEventListener("keydown", (e) => e.key === "Enter" && save());
    row.replaceChildren(
      input,
      h("button", {type: "button", onclick: save}, "Save"),
      h("button", {type: "button", onclick: refresh}, "Cancel"),
    );
    input.focus();
  }
  function row(run) {
    const running = listing.jobs.some((j) => j.model_id === run.id && isRunning(j));
    const item = h("li", {class: "run-row"});
    const remove = h("button", {type: "button", disabled: running}, "Delete");
    remove.addEventListener("click", () => {
      if (remove.dataset.armed) return act(() => ctx.api.deleteModel(run.id));
      remove.dataset.armed = "yes";
      remove.textContent = "Delete for good?";
    });
    item.append(
      h("a", {class: "run-name", href: `#/network?model=${encodeURIComponent(run.id)}`}, run.title),
      h("span", {class: "run-score"}, scoreText(run, running)),
      h("span", {class: "run-actions"},
        h("button", {type: "button", onclick: () => renameForm(run, item)}, "Rename"), remove),
    );
    return item;
  }
  async function refresh() {
    listing = await ctx.api.trainingJobs();
    element.replaceChildren(
      h("h3", {}, "Runs trained here"),
      listing.runs.length
        ? h("ul", {class: "run-list"}, [...listing.runs].reverse().map(row))
        : h("p", {class: "muted"}, "None yet: each run you start here is listed with its score."),
    );
    return listing;
  }
  return {element, refresh};
}

/** What a Start refused because `job` runs says, with buttons to follow or stop that job. */
function busyNotice(job, follow, stop) {
  return notice(
    `${job.title} is already training; one run at a time. `,
    h("button", {type: "button", onclick: follow}, "Follow it"),
    " ",
    h("button", {type: "button", onclick: stop}, "Stop it"),
  );
}

/** The view's title, and why the model shown cannot be trained here. */
function header(shown, trainable, live) {
  return [
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
            `${shown.title} is ${shown.task_info.display_name} for ${shown.dataset}. ` +
            "Train such models with ",
          h("code", {}, `convscope train --model ${shown.registry ?? "<model>"}`),
          ".",
        )]
      : []),
  ];
}

/** The form's settings: the network, the model it starts from, the dataset and options, and
 * the note on missing training data. `show(settings)` fills them from a job's settings;
 * `value()` is POST /api/train's body. */
function trainSettings(ctx, {images, live, datasets, registry, trainable, shown, optimizers}) {
  const currentRegistry = shown?.registry;
  const dataset = live.includes(ctx.model?.dataset) ? ctx.model.dataset : (datasets[0] ?? live[0]);
  const classesOf = (name) => ctx.datasets.find((d) => d.name === name)?.classes.length ?? 10;
  const inputOf = (name) => images.find((d) => d.name === name)?.input ?? ctx.model?.input;
  const specFor = (name) => defaultSpec(inputOf(name), classesOf(name));
  const dataNote = h("div", {class: "data-note", "aria-live": "polite"});
  async function checkData(name) {
    try {
      const {missing} = await ctx.api.trainingData(name);
      dataNote.replaceChildren(...(missing ? [notice(missing)] : []));
    } catch {
      dataNote.replaceChildren();
    }
  }
  const options = trainOptions(datasets, dataset, optimizers, (name) => {
    network.suggest(specFor(name));
    checkData(name);
  });
  // A registry model trains on its own dataset: select it.
  const network = networkChoice(
    registry,
    currentRegistry,
    specFor(dataset),
    (name) => {
      const picked = registry.find((m) => m.registry === name)?.dataset;
      if (datasets.includes(picked)) options.setDataset(picked);
    },
    ctx.params.get("source") === "registry" && currentRegistry ? "registry" : "spec",
  );
  // A bundled model or a finished run to fine-tune: its own network trains, on its dataset.
  const sources = ctx.models.filter((m) => m.kind !== "untrained" && m.kind !== "chapter" && trainable(m));
  const startFrom = startFromChoice(sources, (model) => {
    network.startFrom(model?.title ?? null);
    if (datasets.includes(model?.dataset)) options.setDataset(model.dataset);
  });
  return {
    element: h("fieldset", {class: "train-settings"}, network.element, startFrom.element, options.element),
    dataNote,
    checkData: () => checkData(options.value().dataset),
    show(settings) {
      startFrom.show(settings);
      options.show(settings);
      network.show(settings);
    },
    value: () => ({...options.value(), ...startFrom.value(), ...network.value()}),
  };
}

export async function render(root, ctx) {
  // Live training trains image classifiers on the catalogue's image sets (GET /api/datasets).
  const images = (await ctx.api.datasets()).catalogue.filter((d) => d.kind === "images");
  const live = images.map((d) => d.name);
  const datasets = ctx.datasets.map((d) => d.name).filter((name) => live.includes(name));
  const trainable = (m) => m.task_info.classifies && live.includes(m.dataset);
  // One model per registry name (the name POST /api/train takes), with the dataset it is for.
  // Every registry model the server trains live (GET /api/registry: the chapter's templates too).
  const {models: trainableModels, optimizers} = await ctx.api.trainableModels();
  const offered = trainableModels.map((m) => ({registry: m.name, dataset: m.dataset}));
  const registry = [
    ...new Map(
      [...offered, ...ctx.models.filter((m) => m.registry && trainable(m))].map((m) => [m.registry, m]),
    ).values(),
  ];
  const shown = ctx.models.find((m) => m.id === ctx.model?.id);
  const form = trainSettings(ctx, {images, live, datasets, registry, trainable, shown, optimizers});
  let shownFor = null; // the job whose settings the form shows
  const formError = h("div", {"aria-live": "polite"});
  const startButton = h("button", {type: "button", class: "primary", onclick: start}, "Start");
  const stopButton = h("button", {type: "button", onclick: stop}, "Stop");
  const status = h("p", {class: "train-status", "aria-live": "polite"});
  const charts = curves();
  const filters = filtersPanel();
  const maps = liveMaps();
  const runs = runsPanel(ctx);

  async function follow(jobId) {
    formError.replaceChildren();
    try {
      await attach(ctx, jobId, update);
    } catch (error) {
      formError.replaceChildren(errorBox(error));
    }
  }

  async function start() {
    formError.replaceChildren();
    try {
      await startRun(ctx, form.value(), () => {
        shownFor = session.job; // the form shows what it started, as the user wrote it
        update();
      });
      runs.refresh().catch(ctx.showBanner);
    } catch (error) {
      const busy = error.status === 409 && (await runs.refresh()).jobs.find(isRunning);
      if (!busy) return formError.replaceChildren(errorBox(error));
      formError.replaceChildren(
        busyNotice(
          busy,
          () => follow(busy.job),
          async () => {
            await ctx.api.stopTraining(busy.job).catch(() => null);
            await follow(busy.job);
          },
        ),
      );
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
    if (session.running && session.settings && shownFor !== session.job) {
      shownFor = session.job;
      form.show(session.settings);
    }
    form.element.disabled = session.running; // a running job's settings: shown, not edited
    startButton.disabled = session.running;
    stopButton.disabled = !session.running;
    showStatus(status);
    if (!kind || kind === "progress" || kind === "epoch") charts.update();
    if (kind !== "progress" && kind !== "epoch") {
      filters.update(session.snapshot);
      maps.update(session.snapshot, session.description);
    }
    if (kind === "done" || kind === "error") runs.refresh().catch(ctx.showBanner);
  }

  root.append(
    ...header(shown, trainable, live),
    h(
      "div",
      {class: "train-layout"},
      h(
        "div",
        {},
        h(
          "form",
          {class: "card train-form", onsubmit: (e) => e.preventDefault()},
          form.element,
          form.dataNote,
          h("div", {class: "actions"}, startButton, stopButton),
          formError,
          status,
        ),
        filters.element,
        runs.element,
      ),
      h("div", {class: "train-charts"}, charts.loss.element, charts.accuracy.element, maps.element),
    ),
  );
  session.listener = update;
  update();
  form.checkData();
  // A reloaded page, or a second tab, follows the job the server is running.
  runs
    .refresh()
    .then(({jobs}) => {
      const running = jobs.find(isRunning);
      if (running && !(session.running && session.job === running.job)) follow(running.job);
    })
    .catch(ctx.showBanner);
  return () => {
    session.listener = null;
  };
}
