// Small DOM helpers shared by every view.

/** Build an element: h("button", {class: "primary", onclick: go}, "Start"). */
export function h(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** Build an SVG element the same way. */
export function svg(tag, attrs = {}, ...children) {
  return fill(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);
}

/** Replace the children of `el`, skipping null, undefined and false (replaceChildren would print them). */
export function setChildren(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

/** A visible error message (role=alert) for an API or programming error. */
export function errorBox(error) {
  const message = error instanceof Error ? error.message : String(error);
  return h("div", {class: "error", role: "alert"}, h("strong", {}, "Something went wrong: "), message);
}

/** A calm explanatory note. */
export function notice(...children) {
  return h("p", {class: "notice"}, ...children);
}

/** A labelled <select>; options are [value, text] pairs, `value` the selected one. */
export function selectField(label, options, value, onchange, attrs = {}) {
  const select = h(
    "select",
    {onchange: (e) => onchange(e.target.value), ...attrs},
    options.map(([v, text]) => h("option", {value: v, selected: String(v) === String(value)}, text)),
  );
  return h("label", {class: "field"}, h("span", {}, label), select);
}

/** A small button (◀, ▶) named for screen readers by `name`. */
export const stepButton = (name, text, onclick) =>
  h("button", {type: "button", "aria-label": name, onclick}, text);

/** A button-styled file picker labelled `text` for files of types `accept`; `onFile(file)`
 * gets the chosen file. */
export const fileButton = (text, accept, onFile) =>
  h(
    "label",
    {class: "button"},
    text,
    h("input", {type: "file", accept, class: "visually-hidden", onchange: (e) => onFile(e.target.files[0])}),
  );

/** What a WAV file picker accepts. */
export const WAV_TYPES = "audio/wav,audio/x-wav,audio/wave,.wav";

/** A labelled number input. */
export function numberField(label, value, {min, max, step = 1, onchange, ...attrs} = {}) {
  const input = h("input", {
    type: "number",
    value,
    min,
    max,
    step,
    onchange: onchange && ((e) => onchange(e.target)),
    ...attrs,
  });
  return h("label", {class: "field"}, h("span", {}, label), input);
}

/** Format a number with grouping (5,994). */
export const grouped = (n) => Number(n).toLocaleString("en-US");

/** Format a fraction as a percentage, "97.8%". */
export const percent = (x, digits = 1) => `${(100 * x).toFixed(digits)}%`;

/** A model's headline test metric ({name, label, value}): "97.8%" for accuracy, else
 * "mAP@0.5 0.812"; null when it was not evaluated. */
export function metricText(metric) {
  if (metric?.value == null) return null;
  return metric.name === "accuracy" ? percent(metric.value) : `${metric.label} ${metric.value.toFixed(3)}`;
}

/** Call `fn` at most once per `ms`, always with the latest arguments (trailing call kept). */
export function throttle(fn, ms) {
  let timer = null;
  let last = 0;
  let pending = null;
  return (...args) => {
    pending = args;
    const wait = last + ms - Date.now();
    if (timer) return;
    timer = setTimeout(
      () => {
        timer = null;
        last = Date.now();
        fn(...pending);
      },
      Math.max(0, wait),
    );
  };
}
