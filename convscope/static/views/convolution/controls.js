// The convolution view's controls: the filter strip, the input channel, the output-size
// formula, stride and padding fields and the play / step buttons.

import {h, numberField, selectField} from "../../dom.js";
import {dims, item, tensorCanvas, volumeText} from "../../draw.js";
import {sizeFormula} from "./arithmetic.js";
import {geometry, ownSettings} from "./geometry.js";

const SPEEDS = [
  ["400", "slow"],
  ["120", "medium"],
  ["25", "fast"],
  ["0", "fastest (a row per frame)"],
];

/** A thumbnail button per filter; `update()` redraws them (channel, chosen filter, mode). */
export function filterStrip(s) {
  const element = h("div", {class: "filter-strip", role: "group", "aria-label": "filters"});
  function update() {
    const rgbFilters = s.fromImage && dims(item(s.data.weights, 0)).depth === 3;
    element.replaceChildren(
      ...Array.from({length: s.p.filters}, (_, f) => {
        const thumb = tensorCanvas(item(s.data.weights, f), {
          scale: Math.max(2, Math.floor(30 / s.p.sx)),
          channel: rgbFilters ? null : s.view.channel,
        });
        return h(
          "button",
          {
            type: "button",
            class: "filter-thumb",
            "aria-pressed": String(f === s.view.filter),
            "aria-label": `filter ${f}`,
            onclick: () => s.selectFilter(f),
          },
          thumb,
          h("span", {}, String(f)),
        );
      }),
    );
    element.hidden = s.view.all;
  }
  return {element, update, dispose: () => {}};
}

/** The input channel shown (for inputs of several channels). */
export function channelPicker(s) {
  const element = h("span");
  function update() {
    const depth = dims(s.data.input).depth;
    const name = (c) => (s.fromImage && depth === 3 ? ["red", "green", "blue"][c] : String(c));
    element.replaceChildren(
      depth > 1
        ? selectField(
            "Input channel",
            Array.from({length: depth}, (_, c) => [c, name(c)]),
            s.view.channel,
            (v) => {
              s.view.channel = Number(v);
              s.rebuild();
            },
          )
        : "",
    );
  }
  return {element, update, dispose: () => {}};
}

/** "Output size = (W - F + 2P) / S + 1: ..." for the current settings. */
export function formulaPanel(s) {
  const element = h("div", {class: "formula", "aria-live": "polite"});
  function update() {
    const g = geometry(s);
    const {sx, sy, filters, stride, pad} = s.p;
    const lines = [
      h(
        "div",
        {},
        h("span", {class: "muted"}, "Output size = (W - F + 2P) / S + 1: "),
        h("strong", {}, sizeFormula(g.W, sx, g.P, g.S)),
        g.W === g.H && sx === sy ? "" : ` wide, ${sizeFormula(g.H, sy, g.P, g.S)} high`,
        " → ",
        h("strong", {class: "volume"}, g.outW > 0 && g.outH > 0 ? `${g.outW}x${g.outH}x${filters}` : "nothing"),
      ),
    ];
    if (!ownSettings(s)) {
      lines.push(
        h(
          "div",
          {class: "muted"},
          `The trained layer uses stride ${stride}, padding ${pad} ` +
            `(${volumeText(s.layer.out_volume)}); the same filter runs here with ` +
            `stride ${g.S}, padding ${g.P}.`,
        ),
      );
    }
    element.replaceChildren(...lines);
  }
  return {element, update, dispose: () => {}};
}

/** A stride or padding field; a valid change is kept in the address and calls `onChange`. */
export function settingField(s, key, label, lo, hi, onChange) {
  return numberField(label, s.view[key], {
    min: lo,
    max: hi,
    onchange: (input) => {
      const v = Number.parseInt(input.value, 10);
      if (!Number.isInteger(v) || v < lo || v > hi) {
        input.value = s.view[key];
        return;
      }
      s.view[key] = v;
      s.ctx.setParams({[key]: v === s.p[key] ? null : v});
      onChange();
    },
  });
}

/** Play / Pause and the speed: `update()` shows whether it plays; `delay()` the pause per step. */
export function playControls(s, {play, stop}) {
  const button = h(
    "button",
    {type: "button", class: "primary", onclick: () => (s.view.playing ? stop() : play())},
    "Play",
  );
  const speed = h(
    "select",
    {"aria-label": "speed"},
    SPEEDS.map(([v, t]) => h("option", {value: v, selected: v === "120"}, t)),
  );
  return {
    button,
    speed: h("label", {class: "field"}, h("span", {}, "Speed"), speed),
    delay: () => Number(speed.value),
    update() {
      button.textContent = s.view.playing ? "Pause" : "Play";
      button.setAttribute("aria-pressed", String(s.view.playing));
    },
  };
}
