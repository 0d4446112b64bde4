// Runs (the TensorBoard habit): the runs this explorer knows, their settings and scores in a
// table; tick runs to overlay their curves, per epoch from metrics.jsonl (loss, accuracy, any
// other logged number) and per logged step from steps.jsonl. The ticked runs are kept in the
// address (`runs=id,id`).

import {lineChart} from "../chart.js";
import {h, errorBox, notice, percent, selectField} from "../dom.js";
import {fmt} from "../draw.js";

// Okabe and Ito's colour-blind-safe palette (black last).
const COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"];
const DEFAULT_SHOWN = 4;
const SETTINGS = [
  ["epochs", "epochs"],
  ["batch_size", "batch"],
  ["lr", "lr"],
  ["optimizer", "optimizer"],
  ["augment", "augment"],
];
const isLoss = (key) => /loss/.test(key);
const isScore = (key) => /acc|map|iou/.test(key);
const HIDDEN_KEYS = new Set(["epoch"]);
const NOT_SETTINGS = new Set(["model", "data", "data_dir", "device", "task", ...SETTINGS.map(([key]) => key)]);

/** The other settings whose values differ between the shown runs (the hyperparameters that tell
 * them apart). */
function differingSettings(runs) {
  const readable = runs.filter((r) => !r.error);
  const keys = new Set(readable.flatMap((r) => Object.keys(r.all_settings ?? {})));
  return [...keys]
    .filter((k) => !NOT_SETTINGS.has(k))
    .filter((k) => new Set(readable.map((r) => JSON.stringify(r.all_settings?.[k]))).size > 1)
    .sort();
}

/** A metric's value as the table shows it. */
function scoreText(metric) {
  if (metric?.value == null) return "—";
  return metric.name === "accuracy" ? percent(metric.value) : `${metric.label} ${fmt(metric.value, 3)}`;
}

/** The runs ticked at first: those in the address, else the newest few (your own first). */
function initialSelection(runs, params) {
  const asked = (params.get("runs") ?? "").split(",").filter(Boolean);
  if (asked.length) return new Set(asked.filter((id) => runs.some((r) => r.id === id)));
  const readable = runs.filter((r) => !r.error);
  const own = readable.filter((r) => r.kind !== "bundled").sort((a, b) => b.modified - a.modified);
  const chapter = readable.filter((r) => r.settings?.data === "mnist" && r.settings?.task === "classify");
  const pick = own.length ? own : chapter;
  return new Set(pick.slice(0, DEFAULT_SHOWN).map((r) => r.id));
}

const settingText = (v) => (v == null ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v));

/** "running", "finished" or "stopped" (no test score). */
function statusText(run) {
  if (run.finished) return "finished";
  return run.kind === "live" && !run.finished ? "stopped or running" : "stopped";
}

/** One table row: tick box, colour, name, model, data, settings, epochs and scores. */
function runRow(run, {checked, colour, onToggle, differing}) {
  if (run.error) {
    return h(
      "tr",
      {class: "run-unreadable"},
      h("td", {}),
      h("td", {}, run.name),
      h("td", {colspan: 6 + SETTINGS.length}, h("span", {class: "error-text"}, run.error)),
    );
  }
  const box = h("input", {
    type: "checkbox",
    checked,
    "aria-label": `show ${run.name}`,
    "data-run": run.id,
    onchange: () => onToggle(run.id, box.checked),
  });
  const val = run.last.val_acc ?? run.last.val_accuracy;
  return h(
    "tr",
    {"data-run": run.id},
    h("td", {}, box, h("span", {class: "swatch", style: {background: checked ? colour : "transparent"}})),
    h(
      "td",
      {},
      run.model_id ? h("a", {href: `#/network?model=${encodeURIComponent(run.model_id)}`}, run.name) : run.name,
      h("span", {class: "muted small"}, ` ${run.kind}`),
    ),
    h("td", {}, run.model ?? "—"),
    h("td", {}, run.settings.data ?? "—"),
    SETTINGS.map(([key]) => h("td", {class: "num"}, String(run.settings[key] ?? "—"))),
    h("td", {class: "num"}, `${run.epochs_done}`),
    h("td", {class: "num"}, val == null ? "—" : percent(val)),
    h("td", {class: "num run-score"}, scoreText(run.metric), h("div", {class: "muted small"}, statusText(run))),
    h(
      "td",
      {class: "small run-differing"},
      differing.map((k) => `${k} ${settingText(run.all_settings[k])}`).join(", "),
    ),
  );
}

function runsTable(runs, selection, colourOf, onToggle) {
  const differing = differingSettings(runs.filter((r) => selection.has(r.id)));
  return h(
    "table",
    {class: "summary runs-table"},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "show"),
        h("th", {}, "run"),
        h("th", {}, "model"),
        h("th", {}, "data"),
        SETTINGS.map(([, label]) => h("th", {}, label)),
        h("th", {}, "epochs done"),
        h("th", {}, "last val acc"),
        h("th", {}, "test score"),
        h("th", {}, "other settings that differ"),
      ),
    ),
    h(
      "tbody",
      {},
      runs.map((run) =>
        runRow(run, {checked: selection.has(run.id), colour: colourOf(run.id), onToggle, differing}),
      ),
    ),
  );
}

/** The series of `key` for every shown run ({run, curves} pairs): x from `xOf(line)`. */
function seriesOf(shown, key, {from = "epochs", xOf = (line) => line.epoch, label = key, dash} = {}) {
  return shown
    .map(({run, curves, colour}) => ({
      name: `${run.name} · ${label}`,
      colour,
      dash,
      points: curves[from].filter((line) => line[key] != null && xOf(line) != null).map((line) => [xOf(line), line[key]]),
    }))
    .filter((s) => s.points.length);
}

/** The x of a logged step in epochs (so runs of different batch sizes line up). */
const stepX = (line) =>
  line.steps_per_epoch ? line.epoch - 1 + line.step / line.steps_per_epoch : (line.global_step ?? null);

/** The charts: loss, scores, training loss by step, and one chosen other number. */
function curveCharts(params, setParams) {
  const size = {width: 560, height: 240};
  const loss = lineChart("Loss per epoch (solid: training, dashed: validation)", size);
  const score = lineChart("Accuracy and scores per epoch (solid: training, dashed: validation)", {
    ...size,
    yMin: 0,
    yMax: 1,
  });
  const steps = lineChart("Training loss per logged step (steps.jsonl)", size);
  const other = lineChart("Other logged number per epoch", size);
  let otherKey = params.get("metric") ?? "lr";
  const chooser = h("div", {class: "runs-other"});
  const element = h(
    "div",
    {class: "runs-charts"},
    loss.element,
    score.element,
    steps.element,
    h("div", {}, chooser, other.element),
  );
  const dashed = (key) => (/^val/.test(key) ? [6, 4] : undefined);

  function update(shown) {
    const keys = new Set();
    for (const {curves} of shown) for (const line of curves.epochs) for (const k of Object.keys(line)) keys.add(k);
    const sorted = [...keys].filter((k) => !HIDDEN_KEYS.has(k)).sort();
    loss.update(sorted.filter(isLoss).flatMap((k) => seriesOf(shown, k, {dash: dashed(k)})));
    score.update(sorted.filter(isScore).flatMap((k) => seriesOf(shown, k, {dash: dashed(k)})));
    steps.update(seriesOf(shown, "loss", {from: "steps", xOf: stepX, label: "training loss"}));
    steps.element.hidden = !shown.some(({curves}) => curves.steps.length);
    const rest = sorted.filter((k) => !isLoss(k) && !isScore(k));
    if (!rest.includes(otherKey)) otherKey = rest[0];
    chooser.replaceChildren(
      rest.length
        ? selectField(
            "Other number",
            rest.map((k) => [k, k]),
            otherKey,
            (v) => {
              otherKey = v;
              setParams({metric: v});
              update(shown);
            },
          )
        : notice("These runs log no other numbers."),
    );
    other.update(otherKey ? seriesOf(shown, otherKey) : []);
  }
  return {element, update};
}

export async function render(root, ctx) {
  const status = h("span", {class: "muted"}, "Reading the runs…");
  // a fresh read: runs training now have more epochs, new runs appear
  const refresh = h("button", {type: "button", onclick: () => ctx.navigate("runs", Object.fromEntries(ctx.params))}, "Refresh");
  root.append(
    h(
      "header",
      {class: "view-header"},
      h("h2", {}, "Runs"),
      h(
        "p",
        {class: "muted"},
        "Every run this explorer knows: the runs given with --runs, those in its runs directory, " +
          "live training and the bundled models. Tick runs to overlay their curves.",
      ),
      h("p", {class: "toolbar"}, status, refresh),
    ),
  );
  const {runs} = await ctx.api.runs({signal: ctx.signal});
  if (!runs.length) {
    status.replaceWith(notice("No runs yet: train one on the Train page or start the explorer with --runs."));
    return;
  }
  // your own runs first, newest first; then the bundled models
  const bundled = (run) => run.kind === "bundled";
  runs.sort((a, b) => bundled(a) - bundled(b) || (bundled(a) ? 0 : (b.modified ?? 0) - (a.modified ?? 0)));
  const selection = initialSelection(runs, ctx.params);
  const order = runs.map((r) => r.id);
  const colourOf = (id) => COLOURS[order.indexOf(id) % COLOURS.length];
  const curvesCache = new Map();
  const charts = curveCharts(ctx.params, (changes) => ctx.setParams(changes));
  const tableHolder = h("div", {class: "runs-table-wrap"});
  const message = h("div");

  const curvesOf = (id) => {
    if (!curvesCache.has(id)) {
      const request = ctx.api.runCurves(id, {signal: ctx.signal});
      request.catch(() => curvesCache.delete(id));
      curvesCache.set(id, request);
    }
    return curvesCache.get(id);
  };

  async function redraw() {
    status.textContent = `${runs.length} run${runs.length === 1 ? "" : "s"}; ${selection.size} shown.`;
    tableHolder.replaceChildren(runsTable(runs, selection, colourOf, toggle));
    ctx.setParams({runs: [...selection].join(",") || null});
    const ticked = runs.filter((r) => selection.has(r.id));
    try {
      const shown = await Promise.all(
        ticked.map(async (run) => ({run, curves: await curvesOf(run.id), colour: colourOf(run.id)})),
      );
      message.replaceChildren();
      charts.update(shown);
    } catch (error) {
      if (error.name !== "AbortError") message.replaceChildren(errorBox(error));
    }
  }

  function toggle(id, on) {
    if (on) selection.add(id);
    else selection.delete(id);
    redraw();
  }

  root.append(tableHolder, message, charts.element);
  await redraw();
}
