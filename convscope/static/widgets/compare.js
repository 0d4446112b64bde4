// Two models side by side on the same input: a second model chooser ("Compare with", kept in
// the address as `vs=<model id>`), the same input sent to both. Predict shows the second
// model's prediction beside the first's (predictionComparison); Maps shows a second maps panel
// (mapsComparison), its layer and map kept as `vslayer`, `vschannel`, `vsnorm`.

import {latestOnly} from "../api.js";
import {h, errorBox, percent, selectField} from "../dom.js";
import {barChart} from "../draw.js";

const CACHE_SIZE = 12;

/** "Compare with": the models other than the current one that `view` suits. */
function chooser(ctx, view, onChange) {
  const others = ctx.models.filter((m) => m.id !== ctx.model.id && m.task_info.views.includes(view));
  return selectField(
    "Compare with",
    [["", "no second model"], ...others.map((m) => [m.id, m.title])],
    ctx.params.get("vs") ?? "",
    (id) => {
      ctx.setParams({vs: id || null});
      onChange(id);
    },
    {"aria-label": "second model to compare with", class: "compare-chooser"},
  );
}

/** The activations of `model` for `input` (of `layers`, null: all), a few of them cached. */
function activationsSource(ctx) {
  const cache = new Map();
  return (model, input, layers = null) => {
    const key = `${model.id}|${JSON.stringify(input)}|${layers ?? ""}`;
    if (!cache.has(key)) {
      const promise = ctx.api.activations(model.id, input, {layers, signal: ctx.signal});
      promise.catch(() => cache.delete(key));
      cache.set(key, promise);
      if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value);
    }
    return cache.get(key);
  };
}

/** The second model's description, or null when the address names none (or an unknown one). */
async function secondModel(ctx, id) {
  if (!id || !ctx.models.some((m) => m.id === id)) return null;
  return ctx.api.model(id, {signal: ctx.signal});
}

/** What both models say, in one line. */
function verdict(first, second, a, b) {
  const [pa, pb] = [a.classes[a.prediction], b.classes[b.prediction]];
  return pa === pb
    ? `Both predict ${pa}.`
    : `They disagree: ${first.title} says ${pa}, ${second.title} says ${pb}.`;
}

/**
 * Predict's comparison: `pair(card)` puts the first model's card beside the second model's;
 * `update(input, activations)` sends the same input to the second model (`activations`: the
 * first model's, for the verdict).
 */
export function predictionComparison(ctx) {
  const activationsOf = activationsSource(ctx);
  const body = h("div", {class: "compare-body", "aria-live": "polite"});
  const card = h("div", {class: "card compare-card"});
  let second = null;
  let last = null; // [input, activations] of the latest update
  const pairElement = h("div", {class: "compare-pair"});

  const show = latestOnly(async (input, first) => {
    if (!second || !input) return;
    try {
      const b = await activationsOf(second, input, [0]);
      if (last?.[0] !== input) return;
      body.replaceChildren(
        h(
          "p",
          {class: "prediction"},
          `${second.title}: ${b.classes[b.prediction]} `,
          h("span", {class: "muted"}, `(${percent(b.probabilities[b.prediction])})`),
        ),
        first ? h("p", {class: "muted small compare-verdict"}, verdict(ctx.model, second, first, b)) : null,
        barChart(b.probabilities, b.classes, {format: (v) => percent(v), caption: `${second.title}: class probabilities`}),
      );
    } catch (error) {
      if (error.name !== "AbortError") body.replaceChildren(errorBox(error));
    }
  });

  async function choose(id) {
    second = await secondModel(ctx, id);
    pairElement.classList.toggle("comparing", Boolean(second));
    body.replaceChildren();
    if (last) show(...last);
  }

  card.append(chooser(ctx, "predict", choose), body);
  choose(ctx.params.get("vs")).catch((error) => body.replaceChildren(errorBox(error)));
  return {
    pair(first) {
      pairElement.replaceChildren(first, card);
      return pairElement;
    },
    update(input, activations) {
      last = [input, activations];
      show(input, activations);
    },
  };
}

/** `ctx` as seen by the second panel: the second model, its activations, its settings kept
 * under `vs<name>`; everything else (the input, the api) as the view's. */
function secondContext(ctx, model, activationsOf) {
  return Object.assign(Object.create(ctx), {
    model,
    activations: (input = ctx.input, layers = null) => activationsOf(model, input, layers),
    params: {get: (key) => ctx.params.get(`vs${key}`)},
    setParams: (changes) =>
      ctx.setParams(Object.fromEntries(Object.entries(changes).map(([key, value]) => [`vs${key}`, value]))),
  });
}

/**
 * Maps' comparison: the first model's panel (`panel`, made by `makePanel(ctx)`) beside a second
 * one for the chosen model; `update()` shows the current input in the second panel too.
 */
export function mapsComparison(ctx, makePanel, panel) {
  const activationsOf = activationsSource(ctx);
  const firstTitle = h("h3", {class: "compare-title", hidden: true}, ctx.model.title);
  const holder = h("section", {class: "compare-second", hidden: true});
  const pairElement = h("div", {class: "compare-pair"}, h("section", {}, firstTitle, panel.element), holder);
  let second = null; // {model, panel}

  function update() {
    if (second && ctx.input) second.panel.update((layers) => activationsOf(second.model, ctx.input, layers));
  }

  async function choose(id) {
    let model = null;
    try {
      model = await secondModel(ctx, id);
    } catch (error) {
      holder.replaceChildren(errorBox(error));
      holder.hidden = false;
      return;
    }
    second = model && {model, panel: makePanel(secondContext(ctx, model, activationsOf))};
    pairElement.classList.toggle("comparing", Boolean(second));
    firstTitle.hidden = holder.hidden = !second;
    holder.replaceChildren(...(second ? [h("h3", {class: "compare-title"}, model.title), second.panel.element] : []));
    update();
  }

  choose(ctx.params.get("vs"));
  return {
    element: h("div", {}, h("div", {class: "toolbar"}, chooser(ctx, "maps", choose)), pairElement),
    update,
  };
}
