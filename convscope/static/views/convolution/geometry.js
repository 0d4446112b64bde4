// The convolution view's shared state: where the filter is, which settings it runs with, and
// the sizes that follow (the layer's own from the model description, others by sliding).
import {positions} from "./arithmetic.js";

/** Whether the filter runs with the layer's own stride and padding. */
export const ownSettings = (s) => s.view.stride === s.p.stride && s.view.pad === s.p.pad;

/** Input size W x H, padding P, stride S and output size outW x outH of the current settings. */
export function geometry(s) {
  const {sx: W, sy: H} = s.layer.in_volume;
  const {pad: P, stride: S} = s.view;
  const own = ownSettings(s);
  return {
    W,
    H,
    P,
    S,
    outW: own ? s.layer.out_volume.sx : positions(W, s.p.sx, P, S),
    outH: own ? s.layer.out_volume.sy : positions(H, s.p.sy, P, S),
  };
}

/** Hover, click and arrow keys on a canvas: `at(mx, my)` maps CSS px to an output position,
 * handed to `s.moveTo(x, y, true)`; `onClick(mx, my)` gets clicks. */
export function track(s, canvas, at, onClick) {
  const locate = (event) => {
    const box = canvas.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  };
  canvas.addEventListener("pointermove", (event) => {
    const position = at(...locate(event));
    if (position) s.moveTo(...position, true);
  });
  if (onClick) canvas.addEventListener("click", (event) => onClick(...locate(event)));
  canvas.addEventListener("keydown", (event) => {
    const delta = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]}[event.key];
    if (!delta) return;
    event.preventDefault();
    s.moveTo(s.view.x + delta[0], s.view.y + delta[1], true);
  });
}

/** The output position under input pixel (cx, cy) of the padded input: the window centred there. */
export const windowAt = (s, cx, cy) => {
  const S = s.view.stride;
  return [Math.round((cx - Math.floor(s.p.sx / 2)) / S), Math.round((cy - Math.floor(s.p.sy / 2)) / S)];
};
