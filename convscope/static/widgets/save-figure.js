// Saving what the explorer shows: a "PNG" button on every figure of a view (offerSaving), which
// paints the figure as it is on screen into one PNG (its canvases, SVGs, images, boxes and text),
// and a button that saves a table as CSV (csvButton). One widget for every view.

import {h} from "../dom.js";

// What counts as a figure: <figure> elements, elements marked data-figure, and the views' other
// figure containers. A figure inside another one gets no button of its own.
const FIGURES = [
  "figure",
  "[data-figure]",
  ".map-grid",
  ".zoom-frame",
  ".cm-wrap",
  ".probabilities",
  ".network-scroll",
  ".weight-grid",
  ".conv-all-wrap",
  ".layer-output",
  ".filter-strip",
].join(", ");
const SVG_STYLE = ["fill", "fill-opacity", "stroke", "stroke-width", "stroke-dasharray", "stroke-opacity",
  "opacity", "font-family", "font-size", "font-weight", "text-anchor", "dominant-baseline", "display",
  "visibility"];
const PIXEL_RATIO = 2; // the PNG has twice the figure's CSS pixels (sharp text)
const MARGIN = 8; // CSS pixels of backdrop around the figure

/** Save `blob` as a file called `filename` (the browser's download). */
export function download(blob, filename) {
  const link = h("a", {href: URL.createObjectURL(blob), download: filename, hidden: true});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

const transparent = (colour) => !colour || colour === "transparent" || /rgba\(.*,\s*0\)$/.test(colour);

/** The colour behind `element` (the first opaque background up the tree), else white. */
function backdrop(element) {
  for (let el = element; el; el = el.parentElement) {
    const colour = getComputedStyle(el).backgroundColor;
    if (!transparent(colour)) return colour;
  }
  return "#fff";
}

/** The rotation (radians) the CSS transforms of `el` and its ancestors up to `top` add up to. */
function rotation(el, top) {
  let angle = 0;
  for (let node = el; node && node !== top.parentElement; node = node.parentElement) {
    const match = /^matrix\(([^,]+),\s*([^,]+)/.exec(getComputedStyle(node).transform);
    if (match) angle += Math.atan2(Number(match[2]), Number(match[1]));
  }
  return angle;
}

/** An SVG element as an <img>, its computed styles written inline (CSS classes do not travel). */
async function svgImage(svgElement, box) {
  const copy = svgElement.cloneNode(true);
  const originals = [svgElement, ...svgElement.querySelectorAll("*")];
  const copies = [copy, ...copy.querySelectorAll("*")];
  originals.forEach((el, i) => {
    const style = getComputedStyle(el);
    copies[i].setAttribute("style", SVG_STYLE.map((p) => `${p}:${style.getPropertyValue(p)}`).join(";"));
  });
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  copy.setAttribute("width", box.width);
  copy.setAttribute("height", box.height);
  const image = new Image();
  image.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(new XMLSerializer().serializeToString(copy))}`;
  await image.decode();
  return image;
}

/** A box's background (rounded as on screen) and its borders. */
function paintBox(context, el, style, box) {
  if (!transparent(style.backgroundColor)) {
    context.fillStyle = style.backgroundColor;
    context.beginPath();
    context.roundRect(box.left, box.top, box.width, box.height, parseFloat(style.borderTopLeftRadius) || 0);
    context.fill();
  }
  const sides = [
    ["Top", (w) => [box.left, box.top, box.width, w]],
    ["Bottom", (w) => [box.left, box.bottom - w, box.width, w]],
    ["Left", (w) => [box.left, box.top, w, box.height]],
    ["Right", (w) => [box.right - w, box.top, w, box.height]],
  ];
  for (const [side, rect] of sides) {
    const width = parseFloat(style[`border${side}Width`]);
    const colour = style[`border${side}Color`];
    if (width > 0 && style[`border${side}Style`] !== "none" && !transparent(colour)) {
      context.fillStyle = colour;
      context.fillRect(...rect(width));
    }
  }
}

/** Each word of a text node at its place on screen, turned as its element is. */
function paintText(context, node, top) {
  const parent = node.parentElement;
  const style = getComputedStyle(parent);
  const angle = rotation(parent, top);
  context.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  context.fillStyle = style.color;
  context.textAlign = "center";
  context.textBaseline = "middle";
  const range = document.createRange();
  for (const match of node.textContent.matchAll(/\S+/g)) {
    range.setStart(node, match.index);
    range.setEnd(node, match.index + match[0].length);
    const box = range.getClientRects()[0];
    if (!box) continue;
    context.save();
    context.translate(box.left + box.width / 2, box.top + box.height / 2);
    context.rotate(angle);
    context.fillText(match[0], 0, 0);
    context.restore();
  }
}

/** The painting steps of `figure`'s contents, in document order (SVGs loaded first). */
async function paintSteps(figure) {
  const steps = [];
  const visit = async (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      if (node.textContent.trim()) steps.push((context) => paintText(context, node, figure));
      return;
    }
    if (node.nodeType !== Node.ELEMENT_NODE || node.hasAttribute("data-no-export")) return;
    const style = getComputedStyle(node);
    if (style.display === "none" || style.visibility === "hidden") return;
    const box = node.getBoundingClientRect();
    const drawn = box.width > 0 && box.height > 0;
    const smooth = style.imageRendering !== "pixelated";
    if (node instanceof SVGSVGElement) {
      if (drawn) {
        const image = await svgImage(node, box);
        steps.push((context) => context.drawImage(image, box.left, box.top, box.width, box.height));
      }
      return;
    }
    if (drawn) steps.push((context) => paintBox(context, node, style, box));
    if ((node instanceof HTMLCanvasElement || (node instanceof HTMLImageElement && node.naturalWidth)) && drawn) {
      steps.push((context) => {
        context.imageSmoothingEnabled = smooth;
        context.drawImage(node, box.left, box.top, box.width, box.height);
      });
      return;
    }
    for (const child of node.childNodes) await visit(child);
  };
  await visit(figure);
  return steps;
}

/** `figure` painted as on screen into a PNG blob, at twice its CSS size, with a margin. */
export async function figurePng(figure) {
  const box = figure.getBoundingClientRect();
  const [width, height] = [box.width + 2 * MARGIN, box.height + 2 * MARGIN];
  const canvas = h("canvas", {
    width: Math.ceil(width * PIXEL_RATIO),
    height: Math.ceil(height * PIXEL_RATIO),
  });
  const context = canvas.getContext("2d");
  context.scale(PIXEL_RATIO, PIXEL_RATIO);
  context.fillStyle = backdrop(figure);
  context.fillRect(0, 0, width, height);
  context.translate(MARGIN - box.left, MARGIN - box.top);
  context.beginPath();
  context.rect(box.left, box.top, box.width, box.height);
  context.clip();
  for (const step of await paintSteps(figure)) step(context);
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the figure could not be painted"))), "image/png"),
  );
}

/** A short name for `figure`: its caption, label or class, made file-safe. */
function figureName(figure) {
  const text =
    figure.querySelector(":scope > figcaption, :scope > h3, :scope > h4")?.textContent ??
    figure.getAttribute("aria-label") ??
    figure.dataset.figure ??
    figure.classList[0] ??
    "figure";
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 48) || "figure";
}

/** The "PNG" button of one figure. */
function saveButton(figure, prefix) {
  if (getComputedStyle(figure).position === "static") figure.style.position = "relative";
  const name = figureName(figure);
  const button = h(
    "button",
    {
      type: "button",
      class: "save-figure",
      "data-no-export": "",
      "aria-label": `Save ${name.replace(/-/g, " ")} as PNG`,
      title: "Save this figure as a PNG file",
      onclick: async () => {
        button.disabled = true;
        try {
          download(await figurePng(figure), `${prefix()}-${name}.png`);
        } finally {
          button.disabled = false;
        }
      },
    },
    "PNG",
  );
  figure.append(button);
}

/**
 * Give every figure in `root` (now and as the view draws more) a "PNG" button saving it as
 * `<prefix()>-<figure name>.png`. Returns a function that stops watching.
 */
export function offerSaving(root, prefix) {
  let queued = false;
  const attach = () => {
    queued = false;
    for (const figure of root.querySelectorAll(FIGURES)) {
      if (figure.closest("[data-no-export]") || figure.querySelector(":scope > .save-figure")) continue;
      const outer = figure.parentElement?.closest(FIGURES);
      if (outer && root.contains(outer)) continue;
      saveButton(figure, prefix);
    }
  };
  const observer = new MutationObserver(() => {
    if (!queued) {
      queued = true;
      requestAnimationFrame(attach);
    }
  });
  observer.observe(root, {childList: true, subtree: true});
  attach();
  return () => observer.disconnect();
}

const csvField = (value) => {
  const text = String(value ?? "");
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

/** `rows` (arrays of values) as CSV text. */
export const csvText = (rows) => rows.map((row) => row.map(csvField).join(",")).join("\n") + "\n";

/** A button that saves `rows()` as the CSV file `filename`. */
export function csvButton(rows, filename, label = "Save as CSV") {
  return h(
    "button",
    {type: "button", onclick: () => download(new Blob([csvText(rows())], {type: "text/csv"}), filename)},
    label,
  );
}
