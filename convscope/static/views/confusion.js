// D3: the confusion matrix of a model on its test set, with recall, precision and accuracy,
// the chapter's four comparisons (MNIST / CIFAR-10 x ordinary net / convnet) one click apart,
// and the images behind every cell, most confident first.

import {h, grouped, notice, percent, selectField} from "../dom.js";
import {inkOn, rgb} from "../draw.js";

const COMPARISONS = [
  ["mnist", "ordinary", "MNIST ordinary"],
  ["mnist", "convnet", "MNIST convnet"],
  ["cifar10", "ordinary", "CIFAR ordinary"],
  ["cifar10", "convnet", "CIFAR convnet"],
];
const GREEN = [22, 163, 74];
const RED = [220, 38, 38];

/** The chapter's net for a comparison: a bundled model of that dataset and family. */
function chapterModel(models, dataset, family) {
  const candidates = models.filter(
    (m) => m.kind === "bundled" && m.dataset === dataset && m.family === family,
  );
  return candidates.find((m) => /ordinary|convnetjs/.test(m.id)) ?? candidates[0] ?? null;
}

/** Red (0) to green (1), the chapter's colour for recall, precision and accuracy. */
const score = (v) => RED.map((r, i) => Math.round(r + (GREEN[i] - r) * v));

export function cellCaption(classes, a, p) {
  return a === p
    ? `${classes[a]} correctly classified as ${classes[p]}`
    : `${classes[a]} misclassified as ${classes[p]}`;
}

/** The largest off-diagonal cells: [{a, p, count}], most confused first. */
export function mostConfused(confusion, n = 5) {
  const cells = confusion
    .flatMap((row, a) => row.map((count, p) => ({a, p, count})))
    .filter((c) => c.a !== c.p && c.count);
  return cells.sort((x, y) => y.count - x.count).slice(0, n);
}

export async function render(root, ctx) {
  const model = ctx.model;
  const mode = ctx.params.get("show") === "samples" ? "samples" : "numbers";
  const chapter = COMPARISONS.map(([dataset, family, label]) => ({
    label,
    model: chapterModel(ctx.models, dataset, family),
  }));
  const chapterIds = new Set(chapter.map((c) => c.model?.id));
  const others = ctx.models.filter((m) => !chapterIds.has(m.id));
  const menu = h(
    "select",
    {
      "aria-label": "model to evaluate",
      onchange: (e) => ctx.navigate("confusion", {model: e.target.value, show: mode}),
    },
    h(
      "optgroup",
      {label: "The chapter's comparisons"},
      chapter.map((c) =>
        h(
          "option",
          {value: c.model?.id ?? "", disabled: !c.model, selected: c.model?.id === model.id},
          c.model ? `${c.label}: ${c.model.title}` : `${c.label} (not loaded)`,
        ),
      ),
    ),
    others.length
      ? h(
          "optgroup",
          {label: "Runs and other models"},
          others.map((m) => h("option", {value: m.id, selected: m.id === model.id}, m.title)),
        )
      : null,
  );
  const status = h("p", {class: "muted"}, `Evaluating ${model.title} on its test set…`);
  root.append(
    h("header", {class: "view-header"}, h("h2", {}, `Confusion matrix: ${model.title}`), status),
    h(
      "div",
      {class: "toolbar"},
      h("label", {class: "field"}, h("span", {}, "Network"), menu),
      selectField(
        "View",
        [
          ["numbers", "numbers"],
          ["samples", "top samples"],
        ],
        mode,
        (v) => ctx.navigate("confusion", {model: model.id, show: v}),
        {"aria-label": "what the cells show"},
      ),
      h("span", {class: "spacer"}),
      comparisonStrip(chapter, model, ctx),
    ),
  );
  const result = await ctx.api.confusion(model.id, 64, {signal: ctx.signal});
  status.textContent = `Source: ${result.source} · ${result.dataset}`;
  status.classList.add("source");
  root.append(matrixSection(result, mode, ctx));
}

function comparisonStrip(chapter, model, ctx) {
  const accuracy = (m) => (m?.test_accuracy == null ? "—" : percent(m.test_accuracy));
  return h(
    "div",
    {class: "comparison", "aria-label": "the chapter's four comparisons"},
    chapter.map((c) =>
      h(
        "button",
        {
          type: "button",
          class: "comparison-item",
          disabled: !c.model,
          "aria-pressed": String(c.model?.id === model.id),
          title: c.model?.accuracy_source ?? "not loaded",
          onclick: () => ctx.navigate("confusion", {model: c.model.id}),
        },
        h("span", {}, c.label),
        h("strong", {}, accuracy(c.model)),
      ),
    ),
  );
}

function matrixSection(result, mode, ctx) {
  const {classes, confusion, recall, precision} = result;
  const n = classes.length;
  const actuals = confusion.map((row) => row.reduce((a, b) => a + b, 0));
  const confused = mostConfused(confusion);
  let pinned = confused.length ? {a: confused[0].a, p: confused[0].p} : {a: 0, p: 0};
  const side = h("aside", {class: "cm-side", "aria-live": "polite"});
  const cells = [];

  function showCell({a, p}) {
    for (const cell of cells)
      cell.classList.toggle("active", cell.dataset.a === String(a) && cell.dataset.p === String(p));
    const list = result.cells[a][p];
    const count = confusion[a][p];
    side.replaceChildren(
      h("h3", {}, cellCaption(classes, a, p)),
      h(
        "p",
        {class: "muted small"},
        count
          ? `${grouped(count)} image${count === 1 ? "" : "s"}` +
              (list.length < count ? `, the ${list.length} most confident shown` : ", most confident first")
          : "no images",
      ),
      h(
        "ol",
        {class: "cm-samples"},
        list.map(({index, confidence}) =>
          h(
            "li",
            {},
            h("img", {
              src: ctx.api.sampleUrl(result.dataset, index, 2),
              alt: `test image ${index}`,
              loading: "lazy",
              class: "pixelated",
            }),
            h("span", {}, percent(confidence, 0)),
          ),
        ),
      ),
    );
  }

  const grid = h("div", {
    class: `cm-grid cm-mode-${mode}`,
    style: {gridTemplateColumns: `auto repeat(${n}, var(--cm-cell)) 12px var(--cm-cell)`},
    onmouseleave: () => showCell(pinned),
  });
  grid.append(
    h("span", {}),
    ...classes.map((c) => h("span", {class: "cm-col-label"}, h("span", {}, `predicted ${c}`))),
    h("span", {}),
    h("span", {class: "cm-col-label"}, h("span", {}, "recall")),
  );
  confusion.forEach((row, a) => {
    grid.append(h("span", {class: "cm-row-label"}, `actual ${classes[a]}`));
    row.forEach((count, p) => {
      const alpha = actuals[a] ? count / actuals[a] : 0;
      const top = result.cells[a][p][0];
      const colour = a === p ? GREEN : RED;
      const content =
        mode === "samples"
          ? top
            ? h("img", {src: ctx.api.sampleUrl(result.dataset, top.index, 1), alt: "", class: "pixelated"})
            : ""
          : String(count);
      const background = mode === "samples" ? rgb(colour, top ? top.confidence : 0) : rgb(colour, alpha);
      const cell = h(
        "button",
        {
          type: "button",
          class: "cm-cell",
          "data-a": a,
          "data-p": p,
          style: {background, color: alpha > 0.55 && mode === "numbers" ? "#fff" : "#111"},
          "aria-label": `${cellCaption(classes, a, p)}: ${count}`,
          onmouseenter: () => showCell({a, p}),
          onfocus: () => showCell({a, p}),
          onclick: () => {
            pinned = {a, p};
            showCell(pinned);
          },
        },
        content,
      );
      cells.push(cell);
      grid.append(cell);
    });
    grid.append(h("span", {}), scoreBox(recall[a], `recall of ${classes[a]}`));
  });
  grid.append(
    h("span", {class: "cm-row-label"}, "precision"),
    ...precision.map((v, p) => scoreBox(v, `precision of ${classes[p]}`)),
    h("span", {}),
    h("div", {class: "cm-accuracy"}, h("span", {}, "accuracy"), scoreBox(result.accuracy, "accuracy")),
  );
  showCell(pinned);
  const blob = new Blob([JSON.stringify(result)], {type: "application/json"});
  return h(
    "div",
    {},
    h(
      "div",
      {class: "cm-layout"},
      h(
        "div",
        {class: "cm-wrap"},
        grid,
        h(
          "p",
          {class: "muted small"},
          `${grouped(result.correct)} of ${grouped(result.total)} correct. Cells are coloured by the ` +
            "share of their row (the actual class); hover or click a cell to see its images.",
        ),
      ),
      side,
    ),
    confused.length
      ? h(
          "section",
          {class: "card"},
          h("h3", {}, "Most confused"),
          h(
            "ol",
            {class: "confused"},
            confused.map(({a, p, count}) =>
              h(
                "li",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    class: "link",
                    onclick: () => {
                      pinned = {a, p};
                      showCell(pinned);
                    },
                  },
                  `${classes[a]} → ${classes[p]}: ${grouped(count)} ` +
                    `(${percent(count / actuals[a])} of ${classes[a]})`,
                ),
              ),
            ),
          ),
        )
      : notice("No confusions at all on this test set."),
    h(
      "p",
      {},
      h(
        "a",
        {class: "button", href: URL.createObjectURL(blob), download: `${result.dataset}-confusion.json`},
        "Save as JSON",
      ),
    ),
  );
}

function scoreBox(value, label) {
  if (value == null)
    return h("span", {class: "cm-score", "aria-label": `${label}: undefined (no images)`}, "—");
  const colour = score(value);
  return h(
    "span",
    {
      class: "cm-score",
      "aria-label": `${label}: ${percent(value, 0)}`,
      style: {background: rgb(colour), color: inkOn(colour)},
    },
    percent(value, 0),
  );
}
