// The explorer shell: hash router (#/<view>?model=<id>&...), model and dataset pickers, and the
// context every view's render(root, ctx) receives.

import {api} from "./api.js";
import {h, errorBox, metricText, notice} from "./dom.js";
import {sampleInput} from "./input.js";
import {decodeInput, encodeInput} from "./widgets/address-input.js";
import {offerSaving} from "./widgets/save-figure.js";

// A model is offered the views its task lists (`task_info.views` of GET /api/models/{id});
// the others get a note saying why not.
const VIEWS = [
  {name: "network", title: "Network", needsModel: true},
  {name: "convolution", title: "Convolution", needsModel: true},
  {name: "maps", title: "Maps", needsModel: true},
  {name: "weights", title: "Weights", needsModel: true},
  {name: "confusion", title: "Confusion", needsModel: true},
  {name: "train", title: "Train", needsModel: false},
  {name: "predict", title: "Predict", needsModel: true},
  {name: "scenes", title: "Scenes", needsModel: true},
  {name: "audio", title: "Audio", needsModel: true},
  {name: "wavenet", title: "WaveNet", needsModel: true},
  {name: "live", title: "Live", needsModel: true},
  {name: "runs", title: "Runs", needsModel: false},
];
const WHY_NOT = {
  confusion: "A confusion matrix counts one predicted class per input against its label.",
  predict: "Drawing one digit suits image classifiers.",
  scenes: "The Scenes view draws boxes and masks of localization, detection and segmentation models.",
  audio: "The Audio view plays spoken digits to spoken-digit classifiers.",
  live: "The Live view shows camera frames to image classifiers.",
  wavenet: "The WaveNet view draws the dilated stack of WaveNet models and generates with them.",
  convolution: "The Convolution view steps a filter over an image.",
  maps: "The Maps view draws each layer's maps of an image.",
  weights: "The Weights view draws conv and fc weights as images.",
};
const KIND_GROUPS = [
  ["bundled", "Bundled models"],
  ["chapter", "The chapter's own networks (ConvNetJS snapshots)"],
  ["untrained", "Architectures (untrained: random weights)"],
  ["run", "Runs"],
  ["live", "Training now"],
];
const CACHE_SIZE = 12;
// The views whose address holds the current input (`input=`, widgets/address-input.js).
const INPUT_VIEWS = new Set(["network", "convolution", "maps", "predict", "scenes"]);
const MAX_ADDRESS_INPUT = 32_768; // characters: a larger input (a photo for AlexNet) stays out

const state = {
  models: [],
  datasets: [],
  description: null, // GET /api/models/{id} of the current model
  dataset: null, // the dataset samples are drawn from
  input: null, // {sample: ..} or {pixels: ..}
  inputSource: "",
  inputCode: null, // the current input as the address writes it
  activations: new Map(), // "<model>|<input>" -> promise of the activations
  current: null, // {controller, dispose} of the view on screen
};

const elements = {
  main: document.getElementById("view"),
  nav: document.getElementById("nav"),
  banner: document.getElementById("banner"),
  modelPicker: document.getElementById("model-picker"),
  datasetPicker: document.getElementById("dataset-picker"),
};

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const view = VIEWS.find((v) => v.name === path) ?? VIEWS[0];
  return {view, params: new URLSearchParams(query)};
}

function hashFor(view, params) {
  const query = new URLSearchParams(params).toString();
  return `#/${view}${query ? `?${query}` : ""}`;
}

function showBanner(error) {
  elements.banner.replaceChildren(
    errorBox(error),
    h("button", {type: "button", class: "link", onclick: () => (elements.banner.hidden = true)}, "Dismiss"),
  );
  elements.banner.hidden = false;
}

function fillModelPicker() {
  const picker = elements.modelPicker;
  if (!state.models.length) {
    picker.replaceChildren(h("option", {value: ""}, "no models yet: train one"));
    return;
  }
  picker.replaceChildren(
    ...KIND_GROUPS.map(([kind, label]) => {
      const models = state.models.filter((m) => m.kind === kind);
      return models.length
        ? h(
            "optgroup",
            {label},
            models.map((m) =>
              h(
                "option",
                {value: m.id, selected: m.id === state.description?.id},
                metricText(m.metric) ? `${m.title} (${metricText(m.metric)})` : m.title,
              ),
            ),
          )
        : null;
    }).filter(Boolean),
  );
  picker.value = state.description?.id ?? "";
}

function fillDatasetPicker() {
  elements.datasetPicker.replaceChildren(
    ...state.datasets.map((d) =>
      h(
        "option",
        {value: d.name, selected: d.name === state.dataset},
        `${d.name} · ${d.count.toLocaleString("en-US")} ${d.source === "bundled" ? "bundled" : "test"}`,
      ),
    ),
  );
}

function useDataset(name) {
  state.dataset = name;
  if (!state.input || state.input.sample) {
    state.input = sampleInput(name, 0);
    state.inputSource = "";
  }
  fillDatasetPicker();
}

async function selectModel(id) {
  if (!id) {
    state.description = null;
  } else if (state.description?.id !== id) {
    state.description = await api.model(id);
    const known = state.datasets.some((d) => d.name === state.description.dataset);
    if (known && state.dataset !== state.description.dataset) useDataset(state.description.dataset);
  }
  fillModelPicker();
}

async function refreshModels() {
  state.models = (await api.models()).models;
  if (!state.description || state.models.some((m) => m.id === state.description.id)) {
    fillModelPicker();
    return;
  }
  // The model shown is gone (deleted): show the default one and reload the view on it.
  state.description = null;
  const {view, params} = parseHash();
  const fallback = defaultModelId();
  if (fallback) params.set("model", fallback);
  else params.delete("model");
  const hash = hashFor(view.name, params);
  if (location.hash === hash) await route();
  else location.hash = hash; // routes on the hash change
}

/** The cache key of `input`'s activations of the current model (`layers`: null for all). */
const activationsKey = (input, layers = null) =>
  `${state.description.id}|${JSON.stringify(input)}${layers ? `|${layers.join(",")}` : ""}`;

function activationsFor(input, layers = null) {
  if (!input) {
    return Promise.reject(
      new Error("no input yet: this server offers no dataset samples; draw or upload one"),
    );
  }
  const all = state.activations.get(activationsKey(input));
  if (all) return all;
  const key = activationsKey(input, layers);
  if (!state.activations.has(key)) {
    const promise = api.activations(state.description.id, input, {layers});
    promise.catch(() => state.activations.delete(key)); // retry next time instead of caching errors
    state.activations.set(key, promise);
    if (state.activations.size > CACHE_SIZE) state.activations.delete(state.activations.keys().next().value);
  }
  return state.activations.get(key);
}

function context(view, params, signal) {
  return {
    api,
    signal,
    params,
    model: state.description,
    models: state.models,
    datasets: state.datasets,
    dataset: state.dataset,
    get input() {
      return state.input;
    },
    get inputSource() {
      return state.inputSource;
    },
    /** Make `input` the current input of every view (optionally with its activations). */
    setInput(input, {activations, source = ""} = {}) {
      state.input = input;
      state.inputSource = source;
      if (activations) {
        state.activations.set(activationsKey(input, activations.asked), Promise.resolve(activations));
      }
      recordInput(view, params, signal);
    },
    /** The activations of the current model for `input` (default: the current input), of
     * `layers` (default: every layer), cached. */
    activations: (input = state.input, layers = null) => activationsFor(input, layers),
    /** Record view settings in the address (no re-render). */
    setParams(changes) {
      for (const [key, value] of Object.entries(changes)) {
        if (value === null || value === undefined) params.delete(key);
        else params.set(key, String(value));
      }
      history.replaceState(null, "", hashFor(view.name, params));
    },
    navigate(name, changes = {}) {
      const next = new URLSearchParams({model: state.description?.id ?? "", ...changes});
      if (!next.get("model")) next.delete("model");
      const hash = hashFor(name, next);
      if (location.hash === hash) route();
      else location.hash = hash;
    },
    refreshModels,
    showBanner,
  };
}

/** Write the current input into `view`'s address (a drawing is compressed first). */
async function recordInput(view, params, signal) {
  const input = state.input;
  if (!input || !INPUT_VIEWS.has(view.name)) return;
  const code = await encodeInput(input, state.inputSource);
  if (state.input !== input) return; // another input came meanwhile
  state.inputCode = code;
  if (signal.aborted || params.get("input") === code) return;
  if (code.length > MAX_ADDRESS_INPUT) params.delete("input");
  else params.set("input", code);
  history.replaceState(null, "", hashFor(view.name, params));
}

/** Make the input the address names (a copied link) the current one, unless it already is. */
async function adoptAddressInput(params) {
  const code = params.get("input");
  if (!code || code === state.inputCode) return;
  const {input, source} = await decodeInput(code);
  const dataset = input.sample && state.datasets.find((d) => d.name === input.sample.dataset);
  if (input.sample && !dataset) {
    throw new Error(`the link's input is a sample of ${input.sample.dataset}, which this explorer does not offer`);
  }
  if (dataset && input.sample.index >= dataset.count) {
    throw new Error(`the link's input is ${dataset.name} sample ${input.sample.index}; this explorer offers 0 to ${dataset.count - 1}`);
  }
  state.input = input;
  state.inputSource = source;
  state.inputCode = code;
  if (dataset) {
    state.dataset = dataset.name;
    fillDatasetPicker();
  }
}

/** Whether `view` suits `model` (any view when no model is loaded). */
const offers = (model, view) => !model || model.task_info.views.includes(view.name);

/** Why `view` is not offered for `model`, with a link to the view that suits it. */
function notOffered(view, model) {
  const suits = model.task_info.home_view;
  const title = VIEWS.find((v) => v.name === suits).title;
  return notice(
    `${WHY_NOT[view.name]} ${model.title} is ${model.task_info.display_name}: see `,
    h("a", {href: hashFor(suits, {model: model.id})}, `its ${title} view`),
    " instead.",
  );
}

/** convscope's own models: trained bundled ones, untrained architectures, the chapter's snapshots. */
const SHIPPED_KINDS = new Set(["bundled", "untrained", "chapter"]);

/** Your own runs first; else the chapter's MNIST convnet (the one its convolution demo shows). */
function defaultModelId() {
  const pick =
    state.models.find((m) => !SHIPPED_KINDS.has(m.kind)) ??
    state.models.find((m) => m.dataset === "mnist" && m.family === "convnet") ??
    state.models[0];
  return pick?.id ?? "";
}

async function route() {
  const {view, params} = parseHash();
  const modelId = params.get("model") ?? state.description?.id ?? defaultModelId();
  if (modelId && params.get("model") !== modelId) {
    params.set("model", modelId);
    history.replaceState(null, "", hashFor(view.name, params));
  }
  if (state.current) {
    state.current.controller.abort();
    state.current.dispose?.();
  }
  const controller = new AbortController();
  const current = {controller, dispose: null};
  state.current = current;
  for (const link of elements.nav.querySelectorAll("a")) {
    link.href = hashFor(link.dataset.view, modelId ? {model: modelId} : {});
    if (link.dataset.view === view.name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  // Each render gets a fresh container: a slow, superseded render writes into a detached node.
  const root = h("div", {class: `view view-${view.name}`});
  elements.main.replaceChildren(root);
  controller.signal.addEventListener("abort", offerSaving(root, () => `${view.name}-${modelId || "explorer"}`));
  document.title = `${view.title} · convscope`;
  try {
    await selectModel(modelId);
    await adoptAddressInput(params).catch(showBanner);
    await recordInput(view, params, controller.signal);
    for (const link of elements.nav.querySelectorAll("a")) {
      link.hidden = !offers(state.description, VIEWS.find((v) => v.name === link.dataset.view));
    }
    if (view.needsModel && !state.description) {
      root.append(
        notice(
          "No model is loaded yet. ",
          h("a", {href: "#/train"}, "Train one"),
          " or start the server with a run directory.",
        ),
      );
      return;
    }
    if (!offers(state.description, view)) {
      root.append(notOffered(view, state.description));
      return;
    }
    const module = await import(`./views/${view.name}.js`);
    if (controller.signal.aborted) return;
    const dispose = await module.render(root, context(view, params, controller.signal));
    if (controller.signal.aborted) dispose?.();
    else current.dispose = dispose;
  } catch (error) {
    if (error.name !== "AbortError") root.replaceChildren(errorBox(error));
  }
}

async function start() {
  elements.nav.replaceChildren(
    ...VIEWS.map((v) => h("a", {href: hashFor(v.name, {}), "data-view": v.name}, v.title)),
  );
  // A skip link cannot use a #fragment here: the hash is the router's.
  document.querySelector(".skip-link").addEventListener("click", () => elements.main.focus());
  elements.modelPicker.addEventListener("change", () => {
    const {view, params} = parseHash();
    params.set("model", elements.modelPicker.value);
    location.hash = hashFor(view.name, params);
  });
  elements.datasetPicker.addEventListener("change", () => {
    useDataset(elements.datasetPicker.value);
    route();
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("unhandledrejection", (event) => showBanner(event.reason));
  // Sticky panels (a zoom, a layer list) stay below the top bar, however many rows it wraps to.
  const topbar = document.querySelector(".topbar");
  new ResizeObserver(() =>
    document.documentElement.style.setProperty("--topbar", `${topbar.offsetHeight}px`),
  ).observe(topbar);
  try {
    const [models, datasets] = await Promise.all([api.models(), api.datasets()]);
    state.models = models.models;
    state.datasets = datasets.datasets;
  } catch (error) {
    elements.main.replaceChildren(errorBox(error));
    return;
  }
  if (state.datasets.length) useDataset(state.datasets[0].name);
  await route();
}

start();
