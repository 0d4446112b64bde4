// The layer stack as volumes (W x H x D boxes, roughly to scale) with parameters and
// multiply-adds, as in the chapter's 28x28x1 -> 24x24x8 -> 12x12x8 figure. Clicking a layer
// opens its views.

import {h, errorBox, svg, grouped, percent, notice} from "../dom.js";
import {layerTitle, volumeText} from "../draw.js";
import {clamp} from "../util.js";
import {withBranches} from "../widgets/branches.js";
import {layerOutput} from "../widgets/layer-output.js";

const OPERATORS = new Set(["relu", "sigmoid", "tanh", "gelu", "dropout", "batchnorm", "lrn"]);
const COLOURS = {
  input: "#a9bccf",
  conv: "#74b9a7",
  pool: "#e4bd6e",
  global_pool: "#e4bd6e",
  fc: "#ad9bcf",
  softmax: "#de9a93",
  residual: "#93b6da",
  upsample: "#e4bd6e",
  concat: "#93b6da",
  branch: "#93b6da",
};
const HEIGHT = 250;
const MID = 110;
const LOG_FROM_SIDE = 100; // a map wider than this (ImageNet's 224, 227) switches to log sizes

/** Log sizing for nets with large maps, so 227x227x96 and 1x1x1000 both read as volumes: side,
 * depth and 1x1 bar height grow with log(n), from their smallest to the largest in the net.
 * Null (drawn to scale, clipped) for smaller nets. */
export function logScale(layers) {
  const volumes = layers.map((l) => l.out_volume);
  const maps = volumes.filter((v) => v.sx > 1 || v.sy > 1);
  const largest = (values) => Math.max(2, ...values);
  const side = largest(maps.map((v) => Math.max(v.sx, v.sy)));
  if (side <= LOG_FROM_SIDE) return null;
  const depth = largest(maps.map((v) => v.depth));
  const bar = largest(volumes.filter((v) => v.sx === 1 && v.sy === 1).map((v) => v.depth));
  const grow = (n, top, low, high) => low + ((high - low) * Math.log(Math.max(n, 1))) / Math.log(top);
  return {
    side: (n) => grow(n, side, 10, 130),
    depth: (n) => grow(n, depth, 3, 46),
    bar: (n) => grow(n, bar, 20, 130),
  };
}

/** Front face, depth offset and slice count of a volume's box, `zoom` times the base size
 * (or on the `log` scale of logScale). */
function boxShape(v, zoom, log = null) {
  if (v.sx === 1 && v.sy === 1)
    return {w: 10, h: log ? log.bar(v.depth) : clamp(8 * zoom * Math.sqrt(v.depth), 20, 130), d: 4, slices: 1};
  if (log) return {w: log.side(v.sx), h: log.side(v.sy), d: log.depth(v.depth), slices: Math.min(v.depth, 10)};
  return {
    w: clamp(2.4 * zoom * v.sx, 10, 130),
    h: clamp(2.4 * zoom * v.sy, 10, 130),
    d: clamp(4 * zoom * Math.sqrt(v.depth), 3, 46),
    slices: Math.min(v.depth, 10),
  };
}

function volumeBox(x, shape, colour) {
  const {w, h: hgt, d} = shape;
  const top = MID - hgt / 2;
  const dy = d * 0.6;
  const parts = [
    svg("polygon", {
      points: `${x},${top} ${x + d},${top - dy} ${x + d + w},${top - dy} ${x + w},${top}`,
      fill: colour,
      "fill-opacity": 0.55,
      stroke: "#4a4a46",
    }),
    svg("polygon", {
      points: `${x + w},${top} ${x + w + d},${top - dy} ${x + w + d},${top + hgt - dy} ${x + w},${top + hgt}`,
      fill: colour,
      "fill-opacity": 0.75,
      stroke: "#4a4a46",
    }),
  ];
  // Slices hint at the depth: one line per map (at most 10) on the top face.
  for (let i = 1; i < shape.slices; i++) {
    const t = (i / shape.slices) * d;
    parts.push(
      svg("line", {
        x1: x + t,
        y1: top - t * 0.6,
        x2: x + t + w,
        y2: top - t * 0.6,
        stroke: "#4a4a46",
        "stroke-opacity": 0.35,
      }),
    );
  }
  parts.push(svg("rect", {x, y: top, width: w, height: hgt, fill: colour, stroke: "#4a4a46"}));
  return parts;
}

/** An operator's caption: its type, or a module's dotted name (its label starts with it). */
const operatorCaption = (layer) =>
  layer.name && !layer.label.startsWith(layer.type) ? layer.name : layer.type;

function column(layer, x, width, zoom, selected, onSelect, log = null, labelOf = layerLabel) {
  const operator = OPERATORS.has(layer.type);
  const shape = boxShape(layer.out_volume, zoom, log);
  const pill = Math.max(44, 6.4 * layer.type.length + 14); // 11px text: ~6.4px a letter
  const drawing = operator
    ? [
        svg("rect", {
          x: x + width / 2 - pill / 2,
          y: MID - 13,
          width: pill,
          height: 26,
          rx: 13,
          fill: "#f1f0ea",
          stroke: "#8a8a84",
        }),
        svg("text", {x: x + width / 2, y: MID + 4, "text-anchor": "middle", class: "op"}, layer.type),
      ]
    : volumeBox(x + (width - shape.w - shape.d) / 2, shape, COLOURS[layer.type] ?? "#bbb");
  const text = (y, content, cls) =>
    svg("text", {x: x + width / 2, y, "text-anchor": "middle", class: cls}, content);
  const group = svg(
    "g",
    {
      class: `layer-col${selected ? " selected" : ""}`,
      tabindex: 0,
      role: "button",
      "aria-pressed": String(selected),
      "aria-label": `layer ${layer.index}: ${layerTitle(layer)}`,
      "data-layer": layer.index,
      onclick: () => onSelect(layer.index),
      onkeydown: (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), onSelect(layer.index)),
    },
    svg("rect", {x: x + 2, y: 4, width: width - 4, height: HEIGHT - 8, rx: 8, class: "layer-hit"}),
    drawing,
    text(196, labelOf === layerLabel && operator ? operatorCaption(layer) : labelOf(layer), "label"),
    text(213, volumeText(layer.out_volume), "volume"),
    layer.num_params ? text(229, `${grouped(layer.num_params)} params`, "meta") : null,
    layer.macs ? text(243, `${grouped(layer.macs)} mult-adds`, "meta") : null,
  );
  return group;
}

// about 6.5 px per character of an 11.5 px label, so that long labels do not overlap
const LABEL_CHAR_PX = 6.5;
const columnWidths = (layers, zoom, log, labelOf) =>
  layers.map((l) =>
    OPERATORS.has(l.type)
      ? Math.max(82, labelOf(l).length * LABEL_CHAR_PX + 12)
      : Math.max(128, boxShape(l.out_volume, zoom, log).w + 60, labelOf(l).length * LABEL_CHAR_PX + 16),
  );

/** Layer names: the summary's labels ("conv 11x11 x96 s4 p0"), or ConvnetViewer's (CONV_0). */
const layerLabel = (l) => l.label;
const viewerName = (l) => l.viewer_name;

/** The volumes, drawn as large as `available` px allow (up to twice the base size). */
function diagram(layers, available, selected, onSelect, labelOf = layerLabel) {
  const log = logScale(layers);
  let zoom = 2;
  while (zoom > 1 && columnWidths(layers, zoom, log, labelOf).reduce((a, b) => a + b, 0) > available)
    zoom -= 0.1;
  const widths = columnWidths(layers, zoom, log, labelOf);
  const total = widths.reduce((a, b) => a + b, 0);
  const root = svg("svg", {
    width: total,
    height: HEIGHT,
    viewBox: `0 0 ${total} ${HEIGHT}`,
    class: "network-svg",
    role: "group",
    "aria-label": "layer volumes",
  });
  let x = 0;
  layers.forEach((layer, i) => {
    if (i) root.append(svg("line", {x1: x - 8, y1: MID, x2: x + 8, y2: MID, stroke: "#b9b9b2"}));
    root.append(column(layer, x, widths[i], zoom, layer.index === selected, onSelect, log, labelOf));
    x += widths[i];
  });
  if (log) root.append(svg("text", {x: 6, y: 14, class: "meta scale-note"}, "sizes on a log scale"));
  return root;
}

function viewLinks(ctx, layer) {
  const link = (view, text) =>
    h(
      "a",
      {class: "button", href: `#/${view}?model=${encodeURIComponent(ctx.model.id)}&layer=${layer.index}`},
      text,
    );
  return [
    layer.type === "conv" && layer.input_from === layer.index - 1 // it reads the layer before
      ? link("convolution", "Step through the convolution")
      : null,
    link("maps", layer.out_volume.sx * layer.out_volume.sy > 1 ? "Activation maps" : "Outputs"),
    layer.has_weights ? link("weights", "Weights") : null,
  ];
}

function details(ctx, layer) {
  const inVolume = layer.in_volume ? volumeText(layer.in_volume) : "—";
  const preview = h("div", {class: "layer-preview"});
  const output = layerOutput(ctx.model, layer, {limit: 16, tile: 56});
  ctx
    .activations(ctx.input, [layer.index])
    .then((activations) => {
      output.update(activations.layers[layer.index].output);
      preview.replaceChildren(h("h4", {}, "For the current input"), output.element);
    })
    .catch((error) => preview.replaceChildren(errorBox(error)));
  return h(
    "section",
    {class: "card layer-details", "aria-live": "polite"},
    h("h3", {}, `Layer ${layer.index}: ${layerTitle(layer)}`),
    h(
      "p",
      {},
      `${inVolume} → ${volumeText(layer.out_volume)} · ${grouped(layer.num_params)} parameters · ` +
        `${grouped(layer.macs)} multiply-adds per image`,
    ),
    h("div", {class: "actions"}, viewLinks(ctx, layer)),
    preview,
  );
}

function table(ctx, onSelect, labelOf = layerLabel) {
  const {layers, totals} = ctx.model;
  return h(
    "table",
    {class: "summary"},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["#", "layer", "input", "output", "params", "mult-adds", "views"].map((t) =>
          h("th", {scope: "col"}, t),
        ),
      ),
    ),
    h(
      "tbody",
      {},
      layers.map((layer) =>
        h(
          "tr",
          {},
          h("td", {}, String(layer.index)),
          h(
            "td",
            {},
            h("button", {type: "button", class: "link", onclick: () => onSelect(layer.index)}, labelOf(layer)),
          ),
          h("td", {}, layer.in_volume ? volumeText(layer.in_volume) : ""),
          h("td", {}, volumeText(layer.out_volume)),
          h("td", {class: "num"}, grouped(layer.num_params)),
          h("td", {class: "num"}, grouped(layer.macs)),
          h("td", {class: "links"}, viewLinks(ctx, layer)),
        ),
      ),
    ),
    h(
      "tfoot",
      {},
      h(
        "tr",
        {},
        h("td", {}),
        h("th", {scope: "row"}, "total"),
        h("td", {}),
        h("td", {}),
        h("td", {class: "num"}, grouped(totals.params)),
        h("td", {class: "num"}, grouped(totals.macs)),
        h("td", {}),
      ),
    ),
  );
}

/** For an untrained architecture (random weights), a note saying so; else nothing. */
function untrainedNote(model) {
  if (!model.untrained) return [];
  const name = model.title.replace(/ \(untrained\)$/, "");
  return [
    notice(
      `Untrained: convscope has no weights for ${name}; its weights are random (PyTorch's default ` +
        `initialisation, seed ${model.seed}), so maps and weights show the architecture, not what ` +
        "it learned. Bring pretrained weights with convscope import-weights.",
    ),
  ];
}

export function render(root, ctx) {
  const model = ctx.model;
  const entry = ctx.models.find((m) => m.id === model.id);
  const firstConv = model.layers.find((l) => l.type === "conv");
  let selected = Number(ctx.params.get("layer") ?? firstConv?.index ?? 1);
  const holder = h("div", {class: "network-scroll", tabindex: 0, "aria-label": "layer volumes (scrolls sideways)"});
  const cue = h("p", {class: "scroll-cue", hidden: true, "aria-live": "polite"});
  /** Shade the edges with more layers beyond them and say which way to scroll. */
  function showCue() {
    const hiddenRight = holder.scrollWidth - holder.clientWidth - holder.scrollLeft > 2;
    const hiddenLeft = holder.scrollLeft > 2;
    holder.classList.toggle("more-right", hiddenRight);
    holder.classList.toggle("more-left", hiddenLeft);
    cue.hidden = !hiddenRight && !hiddenLeft;
    cue.textContent = hiddenRight
      ? "More layers to the right: scroll the strip sideways (or Shift + wheel) →"
      : "← Earlier layers to the left: scroll the strip back";
  }
  holder.addEventListener("scroll", showCue, {passive: true});
  window.addEventListener("resize", showCue, {signal: ctx.signal});
  const detailHolder = h("div");
  const tableHolder = h("div");
  let labelOf = ctx.params.get("names") === "viewer" ? viewerName : layerLabel;

  function select(index) {
    selected = index;
    ctx.setParams({layer: index});
    const drawn = diagram(model.layers, holder.clientWidth - 14, selected, select, labelOf);
    holder.replaceChildren(withBranches(drawn, model.branches, {mid: MID}));
    requestAnimationFrame(showCue);
    detailHolder.replaceChildren(details(ctx, model.layers[index]));
  }

  const naming = h("input", {
    type: "checkbox",
    checked: labelOf === viewerName,
    onchange: () => {
      labelOf = naming.checked ? viewerName : layerLabel;
      ctx.setParams({names: naming.checked ? "viewer" : null});
      tableHolder.replaceChildren(table(ctx, select, labelOf));
      select(selected);
    },
  });
  tableHolder.append(table(ctx, select, labelOf));

  const metric = model.metric;
  const accuracy =
    metric?.value == null
      ? "not evaluated yet"
      : `${metric.name === "accuracy" ? percent(metric.value) : metric.value.toFixed(3)} test ` +
        `${metric.label}: ${entry?.accuracy_source}`;
  root.append(
    h(
      "header",
      {class: "view-header"},
      h("h2", {}, model.title),
      h(
        "p",
        {class: "muted"},
        `${model.dataset} · ${model.task_info.display_name} · ${model.classes.length} classes · ` +
          `input ${volumeText(model.input)} · ` +
          `${grouped(model.totals.params)} parameters · ` +
          `${grouped(model.totals.macs)} multiply-adds per image · ${accuracy}`,
      ),
    ),
    ...(model.graph_note ? [h("p", {class: "muted small"}, `Branches: ${model.graph_note}.`)] : []),
    ...untrainedNote(model),
    h("label", {class: "naming-toggle"}, naming, " ConvnetViewer names (CONV_0, LOCAL_RESPONSE_NORM_0, MAX_POOL_0, FC_0)"),
    cue,
    holder,
    detailHolder,
    h("h3", {}, "Layers"),
    tableHolder,
    h(
      "p",
      {class: "muted small"},
      "Multiply-adds count conv and fc layers for one image; pooling and activations count 0.",
    ),
  );
  select(clamp(selected, 0, model.layers.length - 1));
}
