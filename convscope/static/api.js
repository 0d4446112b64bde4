// Fetch helpers for the convscope JSON API (docs/api.md). Tensors arrive as base64 of
// little-endian float32 in C order and are decoded to {shape, data: Float32Array}.

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

async function request(path, {method = "GET", json, form, signal} = {}) {
  const init = {method, signal};
  if (json !== undefined) {
    init.headers = {"Content-Type": "application/json"};
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(
      `cannot reach the convscope server (${error.message}); is \`convscope serve\` still running?`,
      0,
    );
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (a proxy page, a crash): reported below with the status.
  }
  if (!response.ok) {
    throw new ApiError(
      body?.error ?? `the convscope server answered ${response.status} ${response.statusText}`,
      response.status,
    );
  }
  if (body === null) throw new ApiError("the convscope server answered without JSON", response.status);
  return body;
}

/** {shape, dtype: "float32" | "uint8", data: base64} -> {shape, data: Float32Array | Uint8Array}. */
export function decodeTensor(tensor) {
  if (tensor.dtype !== "float32" && tensor.dtype !== "uint8")
    throw new ApiError(`unexpected tensor dtype ${tensor.dtype}`, 0);
  const binary = atob(tensor.data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return {shape: tensor.shape, data: tensor.dtype === "uint8" ? bytes : new Float32Array(bytes.buffer)};
}

const decodeOptional = (tensor) => (tensor ? decodeTensor(tensor) : null);

/** The activations response decoded; `layers[i]` is layer i's output, absent when not asked for. */
function decodeActivations(body, layers = null) {
  const outputs = [];
  for (const layer of body.layers) outputs[layer.index] = {...layer, output: decodeTensor(layer.output)};
  return {...body, image: decodeTensor(body.image), input: decodeTensor(body.input), layers: outputs, asked: layers};
}

const layersQuery = (layers) => (layers ? "?" + layers.map((i) => `layers=${i}`).join("&") : "");

const enc = encodeURIComponent;
let datasetsRequest = null; // GET /api/datasets, fetched once (the catalogue does not change)
const post = (path, json, options) => request(path, {method: "POST", json, ...options});

export const api = {
  models: (options) => request("/api/models", options),
  model: (id, options) => request(`/api/models/${enc(id)}`, options),
  /** {datasets: those on offer, catalogue: every known dataset}, fetched once and shared. */
  datasets: () =>
    (datasetsRequest ??= request("/api/datasets").catch((error) => {
      datasetsRequest = null;
      throw error;
    })),
  samples: (name, offset, limit, options) =>
    request(`/api/datasets/${enc(name)}/samples?offset=${offset}&limit=${limit}`, options),
  sampleUrl: (name, index, scale = 1) => `/api/datasets/${enc(name)}/samples/${index}.png?scale=${scale}`,

  /** The outputs of `layers` (default: every layer) for an input reference ({sample: ..} or
   * {pixels: ..}), with the fitted input's bytes (`image`) and the class probabilities. */
  activations: async (id, input, {layers = null, ...options} = {}) =>
    decodeActivations(
      await post(`/api/models/${enc(id)}/activations`, layers ? {...input, layers} : input, options),
      layers,
    ),

  /** The same for an uploaded PNG/JPEG file, fitted to the model's input by the server;
   * `invert`: "auto" (default), "on" or "off" (docs/api.md). */
  activationsUpload: async (id, file, {layers = null, invert = "auto", ...options} = {}) => {
    const form = new FormData();
    form.append("image", file);
    const choice = invert === "auto" ? "" : (layers ? "&" : "?") + `invert=${enc(invert)}`; // auto: the default
    const query = layersQuery(layers) + choice;
    const path = `/api/models/${enc(id)}/activations/upload${query}`;
    return decodeActivations(await request(path, {method: "POST", form, ...options}), layers);
  },

  /** What the model predicts for an input reference, decoded as its task's evaluation does. */
  predict: async (id, input, options) => {
    const body = await post(`/api/models/${enc(id)}/predict`, input, options);
    return {...body, input: decodeTensor(body.input), mask: decodeOptional(body.mask)};
  },

  /** A sample's label and, for scenes, its boxes and mask. */
  truth: async (name, index, options) => {
    const body = await request(`/api/datasets/${enc(name)}/samples/${index}/truth`, options);
    return {...body, mask: decodeOptional(body.mask)};
  },

  recordings: (options) => request("/api/audio/recordings", options),
  recordingUrl: (index) => `/api/audio/recordings/${index}.wav`,

  /** A listed recording's clip, spectrogram (the input) and activations. */
  audio: async (id, recording, options) =>
    decodeActivations(await post(`/api/models/${enc(id)}/audio`, {recording}, options)),

  audioUpload: async (id, file, options) => {
    const form = new FormData();
    form.append("audio", file);
    return decodeActivations(
      await request(`/api/models/${enc(id)}/audio/upload`, {method: "POST", form, ...options}),
    );
  },

  /** A WaveNet's stack: dilations, receptive field, speakers, generation limits. */
  wavenetStack: (id, options) => request(`/api/models/${enc(id)}/wavenet`, options),
  /** A listed recording as a WaveNet hears it: samples, span, each layer's activity, NLL. */
  wavenetRecording: async (id, recording, options) => {
    const body = await post(`/api/models/${enc(id)}/wavenet/recording`, {recording}, options);
    return {...body, samples: decodeTensor(body.samples), activity: decodeTensor(body.activity)};
  },
  /** The same for an uploaded WAV of one spoken digit `digit` (0.1-3 s). */
  wavenetUpload: async (id, file, digit, options) => {
    const form = new FormData();
    form.append("audio", file);
    const path = `/api/models/${enc(id)}/wavenet/upload?digit=${enc(digit)}`;
    const body = await request(path, {method: "POST", form, ...options});
    return {...body, samples: decodeTensor(body.samples), activity: decodeTensor(body.activity)};
  },
  /** The socket streaming a generated digit (send the request as JSON once it opens). */
  wavenetSocket: (id) => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return new WebSocket(`${scheme}://${location.host}/api/models/${enc(id)}/wavenet/generate`);
  },

  weights: async (id, layer, options) => {
    const body = await request(`/api/models/${enc(id)}/layers/${layer}/weights`, options);
    return {weights: decodeTensor(body.weights), bias: decodeOptional(body.bias)};
  },

  /** One position of a conv layer's filter: patch, weights, products, sum, bias, output. */
  convStep: async (id, body, options) => {
    const step = await post(`/api/models/${enc(id)}/conv-step`, body, options);
    return {
      ...step,
      patch: decodeTensor(step.patch),
      weights: decodeTensor(step.weights),
      products: decodeTensor(step.products),
    };
  },

  /** What each explanation method's map of this model costs, and which ones the explorer computes. */
  explainMethods: (id, options) => request(`/api/models/${enc(id)}/explain`, options),

  /** A map over the input of why the model scores a class (docs/api.md, "explain"). */
  explain: async (id, body, options) => {
    const found = await post(`/api/models/${enc(id)}/explain`, body, options);
    return {...found, map: decodeTensor(found.map)};
  },

  /** The test images that excite channel `channel` of conv layer `layer` most, each fitted. */
  topImages: async (id, layer, channel, options) => {
    const found = await request(`/api/models/${enc(id)}/layers/${layer}/top-images?channel=${channel}`, options);
    return {...found, images: found.images.map((top) => ({...top, image: decodeTensor(top.image)}))};
  },

  confusion: (id, samples = 64, options) =>
    request(`/api/models/${enc(id)}/confusion?samples=${samples}`, options),
  chapterSummaries: (samples = 64, options) => request(`/api/chapter/summaries?samples=${samples}`, options),
  chapterImageUrl: (dataset, index, scale = 1) =>
    `/api/chapter/images/${enc(dataset)}/${index}.png?scale=${scale}`,

  /** The runs the explorer knows, with settings and scores; one run's curves. */
  runs: (options) => request("/api/runs", options),
  runCurves: (id, options) => request(`/api/runs/${enc(id)}/curves`, options),

  startTraining: (body) => post("/api/train", body),
  trainingJobs: () => request("/api/train"),
  trainingStatus: (job) => request(`/api/train/${enc(job)}`),
  trainingData: (dataset) => request(`/api/train/data/${enc(dataset)}`),
  renameModel: (id, title) => request(`/api/models/${enc(id)}`, {method: "PATCH", json: {title}}),
  deleteModel: (id) => request(`/api/models/${enc(id)}`, {method: "DELETE"}),
  stopTraining: (job) => post(`/api/train/${enc(job)}/stop`, {}),
  trainingSocket: (job) => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return new WebSocket(`${scheme}://${location.host}/api/train/${enc(job)}/ws`);
  },
  /** The registry models the explorer trains live: {models: [{name, dataset, description}]}. */
  trainableModels: () => request("/api/registry"),
};

/**
 * Wrap an async function so that at most one call runs at a time; calls made meanwhile
 * collapse into one trailing call with the latest arguments (hover and drawing send many).
 */
export function latestOnly(fn) {
  let running = false;
  let queued = null;
  const run = async (args) => {
    running = true;
    try {
      await fn(...args);
    } finally {
      running = false;
      if (queued) {
        const next = queued;
        queued = null;
        run(next);
      }
    }
  };
  return (...args) => {
    if (running) queued = args;
    else run(args);
  };
}
