// D3: the confusion matrix of a model on its test set, with recall, precision and accuracy,
// the chapter's four comparisons (MNIST / CIFAR-10 x ordinary net / convnet) one click apart,
// and the images behind every cell, most confident first. Below it, when the data directory
// holds them, the chapter's original results: the stored ConvNetJS summary of that comparison.

import {h, errorBox, grouped, notice, percent, selectField, setChildren} from "../dom.js";
import {blend, inkOn, rgb} from "../draw.js";
import {csvButton} from "../widgets/save-figure.js";

const COMPARISONS = [
  ["mnist", "ordinary", "MNIST ordinary"],
  ["mnist", "convnet", "MNIST convnet"],
  ["cifar10", "ordinary", "CIFAR ordinary"],
  ["cifar10", "convnet", "CIFAR convnet"],
];
// A colour-blind-safe pair (blue and orange, told apart with any colour vision), and a
// diverging scale between them through a light middle, for recall, precision and accuracy.
const RIGHT = [33, 102, 172]; // correct: the diagonal
const WRONG = [230, 97, 1]; // confused: off the diagonal
const MIDDLE = [247, 247, 247];

/**
 * The chapter's net for a comparison: a bundled model of that dataset and family, preferably the
 * one trained from the chapter's registry entry (mnist-ordinary, mnist-convnetjs, ...).
 */
function chapterModel(models, dataset, family) {
  const candidates = models.filter(
    (m) => m.kind === "bundled" && m.dataset === dataset && m.family === family,
  );
  const name = `${dataset}-${family === "convnet" ? "convnetjs" : "ordinary"}`;
  return candidates.find((m) => m.registry === name) ?? candidates[0] ?? null;
}

/** Orange (0) through light grey (0.5) to blue (1): recall, precision and accuracy. */
export const score = (v) =>
  v < 0.5 ? blend(WRONG, 1 - 2 * v, MIDDLE) : blend(RIGHT, 2 * v - 1, MIDDLE);

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
  const views = model.tta && model.tta !== "none" ? `, averaging ${model.tta} views` : "";
  const status = h("p", {class: "muted"}, `Evaluating ${model.title} on its test set${views}…`);
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
  // Both requests start now; a failure of the summaries only shows in their own section. Each
  // summary gets its dataset's catalogue entry (title, split sizes) from GET /api/datasets.
  const summaries = Promise.all([
    ctx.api.chapterSummaries(64, {signal: ctx.signal}),
    ctx.api.datasets(),
  ]).then(
    ([body, known]) =>
      body.summaries.map((s) => ({...s, about: known.catalogue.find((d) => d.name === s.dataset)})),
    (error) => error,
  );
  const result = await ctx.api.confusion(model.id, 64, {signal: ctx.signal});
  const scoring = result.tta && result.tta !== "none"
    ? ` · test-time augmentation ${result.tta}, as the run was scored` : "";
  status.textContent =
    `Source: ${result.source} · ${result.dataset}${scoring} · computed live by convscope`;
  status.classList.add("source");
  const family = ctx.models.find((m) => m.id === model.id)?.family;
  const comparison = COMPARISONS.find(([d, f]) => d === model.dataset && f === family)?.[2];
  const stored = ctx.params.get("of") === "stored" && result.stored;
  root.append(
    result.stored ? matrixChoice(result, Boolean(stored), model, mode, ctx) : "",
    h(
      "section",
      {class: "cm-live"},
      stored
        ? storedSection(result, ctx)
        : matrixSection(result, mode, ctx, {
            image: (e, scale) => ctx.api.sampleUrl(result.dataset, e.index, scale),
            alt: (e) => `sample ${e.index}`,
            filename: `${result.dataset}-confusion.json`,
            scope: scopeText(result, ctx.models.find((m) => m.id === model.id)),
          }),
    ),
    chapterSection(await summaries, comparison, result, model, mode, ctx),
  );
}

/** Which matrix to show when only a sample of the test set is served: the sample's, computed
 * here, or the whole test set's, stored by the run when it was scored. */
function matrixChoice(result, stored, model, mode, ctx) {
  return h(
    "div",
    {class: "toolbar"},
    selectField(
      "Matrix of",
      [
        ["served", `the ${result.source}, computed here (with images)`],
        ["stored", `the ${result.stored.source} (counts only)`],
      ],
      stored ? "stored" : "served",
      (v) => ctx.navigate("confusion", {model: model.id, show: mode, ...(v === "stored" ? {of: v} : {})}),
    ),
  );
}

/** The run's stored test matrix: counts and scores, no images (they are not served here). */
function storedSection(result, ctx) {
  const stored = {
    ...result.stored,
    classes: result.classes,
    cells: result.stored.confusion.map((row) => row.map(() => [])),
  };
  return matrixSection(stored, "numbers", ctx, {
    image: null,
    alt: () => "",
    missing: "",
    filename: `${result.dataset}-test-confusion.json`,
    scope:
      `This matrix is the one stored when the run was scored, on the ${result.stored.source}: ` +
      `${grouped(stored.correct)} of ${grouped(stored.total)} correct, ${percent(stored.accuracy)}, ` +
      "the test accuracy in the strip. Its images are not served here: choose the served " +
      "sample above to see the images behind each cell.",
  });
}

/** Which images the live matrix scored, and how that differs from the model's test accuracy
 * (the strip's number), so that the two never seem to contradict each other. */
export function scopeText(result, summary) {
  const scored =
    `This matrix scored the ${result.source}: ${grouped(result.correct)} of ${grouped(result.total)} ` +
    `correct, ${percent(result.accuracy)}.`;
  if (summary?.test_accuracy == null || !summary.accuracy_source) return scored;
  if (Math.abs(summary.test_accuracy - result.accuracy) < 5e-4) return scored;
  return (
    `${scored} Its test accuracy in the strip, ${percent(summary.test_accuracy)}, is on the ` +
    `${summary.accuracy_source}; the images served here are ${result.source.startsWith("bundled") ? "only a sample" : "another set"}.`
  );
}

/** "MNIST training images 50,000–59,999": the images a summary evaluated, by split. */
function imagesText(summary) {
  const {title, splits} = summary.about; // summary indices count training images first
  if (!summary.samples) return `${title} images (which ones is not recorded)`;
  const {first, last} = summary.samples;
  const train = splits.train;
  const span = (split, a, b) =>
    a === b ? `${split} image ${grouped(a)}` : `${split} images ${grouped(a)}–${grouped(b)}`;
  const parts = [];
  if (first < train) parts.push(span("training", first, Math.min(last, train - 1)));
  if (last >= train) parts.push(span("test", Math.max(first - train, 0), last - train));
  return `${title} ${parts.join(" and ")}`;
}

/** The chapter's stored result for this comparison, a note how to get the summaries, or why none shows. */
function chapterSection(summaries, comparison, live, model, mode, ctx) {
  const title = "The chapter's original results (ConvNetJS, stored summary)";
  const section = (...children) =>
    h("section", {class: "card chapter-results"}, h("h2", {}, title), ...children);
  if (summaries instanceof Error) return section(errorBox(summaries));
  if (!summaries.length) {
    return section(
      notice(
        "Not loaded: start the explorer with ",
        h("code", {}, "--data-dir"),
        " (or ",
        h("code", {}, "$CONVSCOPE_DATA"),
        ") pointing at a folder whose ",
        h("code", {}, "ml4a/"),
        " holds the chapter's ",
        h("code", {}, "*_summary_*.json"),
        " files, to see the matrices its ConvNetJS demo drew next to convscope's (docs/chapter.md).",
      ),
    );
  }
  const summary = summaries.find((s) => s.title === comparison);
  if (!summary) {
    return section(
      notice(
        `The chapter stored results for ${summaries.map((s) => s.title).join(", ")}; ` +
          `${model.title} is none of these comparisons. Pick one in the strip above.`,
      ),
    );
  }
  const splits = [...new Set(summary.cells.flat(2).map((e) => e.split))];
  const missing = [
    `These images are not served: the data directory lacks the ${summary.about.title} ` +
      `${splits.map((split) => (split === "train" ? "training" : split)).join(" and ")} files they ` +
      "come from. Start the explorer with ",
    h("code", {}, "--data-dir"),
    " pointing at the official files to see them.",
  ];
  return section(
    h(
      "p",
      {class: "source"},
      `${summary.title}: ${summary.name}.json, measured by the chapter's ConvNetJS demo on ` +
        `${imagesText(summary)} (official order).`,
    ),
    h(
      "p",
      {class: "muted"},
      `ConvNetJS in the chapter: ${percent(summary.accuracy)} of these ${grouped(summary.total)} images. ` +
        `convscope, live (above): ${model.title}, ${percent(live.accuracy)} on the ${live.source}.`,
      splits.includes("train")
        ? " Training images may have been learned by the network that was tested on them: expect " +
            "less on unseen test images (docs/chapter.md)."
        : "",
    ),
    summary.network
      ? h(
          "p",
          {class: "muted"},
          `The chapter's snapshot ${summary.network} reproduces this summary exactly ` +
            "(docs/chapter.md); import it with ",
          h("code", {}, `convscope import-convnetjs ml4a/${summary.network} --eval`),
          " to evaluate it on the official test set.",
        )
      : null,
    summary.note ? h("p", {class: "muted"}, `Note: ${summary.note}.`) : null,
    matrixSection(summary, mode, ctx, {
      image: summary.images ? (e, scale) => ctx.api.chapterImageUrl(summary.dataset, e.index, scale) : null,
      alt: (e) => `${summary.dataset} ${e.split} image ${e.split_index}`,
      missing,
      filename: `${summary.name}.json`,
      cellParam: "chaptercell",
    }),
  );
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
        c.model?.test_accuracy == null ? null : h("span", {class: "small"}, " test"),
      ),
    ),
  );
}

/** The side panel of cell (a, p): its caption, count and images, most confident first. */
function cellImages(result, {a, p}, {image, alt, missing}) {
  const list = result.cells[a][p];
  const count = result.confusion[a][p];
  return [
    h("h3", {}, cellCaption(result.classes, a, p)),
    h(
      "p",
      {class: "muted small"},
      count
        ? `${grouped(count)} image${count === 1 ? "" : "s"}` +
            (list.length < count
              ? list.length
                ? `, the ${list.length} most confident shown`
                : " (not served here)"
              : ", most confident first")
        : "no images",
    ),
    image || !list.length ? null : h("p", {class: "notice small"}, missing),
    h(
      "ol",
      {class: "cm-samples"},
      list.map((entry) =>
        h(
          "li",
          {},
          image
            ? h("img", {src: image(entry, 2), alt: alt(entry), loading: "lazy", class: "pixelated"})
            : h("span", {class: "cm-missing", title: alt(entry)}, `#${grouped(entry.index)}`),
          h("span", {}, percent(entry.confidence, 0)),
        ),
      ),
    ),
  ];
}

/** One matrix cell: its count, or its most confident image, coloured by its share of the row. */
function matrixCell(result, {a, p}, {pictures, image, actual, onHover, onPick}) {
  const count = result.confusion[a][p];
  const alpha = actual ? count / actual : 0;
  const top = result.cells[a][p][0];
  const colour = a === p ? RIGHT : WRONG;
  const content = pictures ? (top ? h("img", {src: image(top, 1), alt: "", class: "pixelated"}) : "") : String(count);
  const shade = blend(colour, pictures ? (top ? top.confidence : 0) : alpha); // opaque, for the ink
  const background = rgb(shade);
  return h(
    "button",
    {
      type: "button",
      class: "cm-cell",
      "data-a": a,
      "data-p": p,
      style: {background, color: inkOn(shade)},
      "aria-label": `${cellCaption(result.classes, a, p)}: ${count}`,
      onmouseenter: () => onHover({a, p}),
      onfocus: () => onHover({a, p}),
      onclick: () => onPick({a, p}),
    },
    content,
  );
}

/** The matrix with its labels, recall column, precision row and accuracy: {grid, cells}. */
function matrixGrid(result, actuals, {pictures, image, onHover, onPick, onLeave}) {
  const {classes, confusion, recall, precision} = result;
  const cells = [];
  const grid = h("div", {
    class: `cm-grid cm-mode-${pictures ? "samples" : "numbers"}`,
    style: {gridTemplateColumns: `auto repeat(${classes.length}, var(--cm-cell)) 12px var(--cm-cell)`},
    onmouseleave: onLeave,
  });
  grid.append(
    h("span", {}),
    ...classes.map((c) => h("span", {class: "cm-col-label"}, h("span", {}, `predicted ${c}`))),
    h("span", {}),
    h("span", {class: "cm-col-label"}, h("span", {}, "recall")),
  );
  confusion.forEach((row, a) => {
    grid.append(h("span", {class: "cm-row-label"}, `actual ${classes[a]}`));
    row.forEach((_, p) => {
      const cell = matrixCell(result, {a, p}, {pictures, image, actual: actuals[a], onHover, onPick});
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
  grid.addEventListener("keydown", (event) => moveFocus(event, cells, classes.length));
  return {grid, cells};
}

const STEPS = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]};

/** Arrow keys move the focus (and so the side panel) from cell to cell; Enter pins it. */
function moveFocus(event, cells, n) {
  const step = STEPS[event.key];
  const from = event.target.closest?.(".cm-cell");
  if (!step || !from) return;
  event.preventDefault();
  const a = Math.min(n - 1, Math.max(0, Number(from.dataset.a) + step[0]));
  const p = Math.min(n - 1, Math.max(0, Number(from.dataset.p) + step[1]));
  cells[a * n + p].focus();
}

/** The most confused pairs, each a button that pins its cell. */
function confusedList(confused, classes, actuals, onPick) {
  if (!confused.length) return notice("No confusions at all on this test set.");
  return h(
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
            {type: "button", class: "link", onclick: () => onPick({a, p})},
            `${classes[a]} → ${classes[p]}: ${grouped(count)} ` +
              `(${percent(count / actuals[a])} of ${classes[a]})`,
          ),
        ),
      ),
    ),
  );
}

/**
 * A confusion matrix (the confusion endpoint's form) with its side panel of images.
 * `image(entry, scale)` gives an entry's picture URL (null: the images are not served, said by
 * `missing`); `alt(entry)` its description.
 */
function matrixSection(result, mode, ctx, {image, alt, missing, filename, scope, cellParam = "cell"}) {
  const pictures = mode === "samples" && Boolean(image); // top samples in the cells
  const actuals = result.confusion.map((row) => row.reduce((a, b) => a + b, 0));
  const confused = mostConfused(result.confusion);
  let pinned = pinnedCell(ctx.params.get(cellParam), result.classes.length) ??
    (confused.length ? {a: confused[0].a, p: confused[0].p} : {a: 0, p: 0});
  const side = h("aside", {class: "cm-side", "aria-live": "polite"});

  function showCell({a, p}) {
    for (const cell of cells)
      cell.classList.toggle("active", cell.dataset.a === String(a) && cell.dataset.p === String(p));
    setChildren(side, cellImages(result, {a, p}, {image, alt, missing}));
  }
  function pin(cell) {
    pinned = cell;
    ctx.setParams({[cellParam]: `${cell.a}.${cell.p}`});
    showCell(pinned);
  }

  const {grid, cells} = matrixGrid(result, actuals, {
    pictures,
    image,
    onHover: showCell,
    onPick: pin,
    onLeave: () => showCell(pinned),
  });
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
        scope ? h("p", {class: "cm-scope"}, scope) : null,
        grid,
        h(
          "p",
          {class: "muted small"},
          `${grouped(result.correct)} of ${grouped(result.total)} correct. ` +
            (pictures
              ? "Each cell shows its most confident image on a tint as deep as that image's " +
                "confidence (blue: correct, orange: confused)"
              : "Cells are tinted by their share of the row, the actual class (blue: correct, " +
                "orange: confused)") +
            "; hover or click a cell, or move with the arrow keys, to see its images.",
        ),
      ),
      side,
    ),
    confusedList(confused, result.classes, actuals, pin),
    h(
      "p",
      {},
      h("a", {class: "button", href: URL.createObjectURL(blob), download: filename}, "Save as JSON"),
      " ",
      csvButton(() => confusionRows(result), filename.replace(/\.json$/, ".csv")),
    ),
  );
}

/** The cell "a.p" of the address, when it is one of an n-class matrix's. */
function pinnedCell(text, n) {
  const [a, p] = (text ?? "").split(".").map(Number);
  const valid = (v) => Number.isInteger(v) && v >= 0 && v < n;
  return valid(a) && valid(p) ? {a, p} : null;
}

/** The matrix as CSV rows: counts by actual (rows) and predicted class (columns), each row's
 * recall, each column's precision and the accuracy. */
export function confusionRows(result) {
  const {classes, confusion, recall, precision} = result;
  return [
    ["actual \\ predicted", ...classes, "recall"],
    ...confusion.map((row, a) => [classes[a], ...row, recall[a] ?? ""]),
    ["precision", ...precision.map((v) => v ?? ""), result.accuracy],
  ];
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
