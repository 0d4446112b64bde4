// The branches of a network drawn over its layer diagram: a residual block's skip as an arc
// from the layer it leaves after to the join (a "+" for an add, "c" for a concatenation) just
// before the layer that reads the joined value; a layer fed from a non-adjacent one gets a
// dashed arc. Reads the description's `branches` ([{from, to, kind}]) and the diagram's
// columns (`g.layer-col[data-layer]` holding a `rect.layer-hit`), so the diagram itself is
// drawn as before and only grows a band above it.

import {svg} from "../dom.js";

const LEVEL_PX = 13; // height between stacked arcs
const TOP_PX = 10; // above the highest arc
const JOIN_R = 7; // the join marker's radius
const MARKS = {add: "+", concat: "c"};

/** Nesting levels: an arc is drawn above every arc it spans (shorter arcs lower). */
function levels(branches) {
  const order = branches.map((b, i) => i).sort((a, b) => span(branches[a]) - span(branches[b]));
  const level = new Array(branches.length).fill(0);
  order.forEach((i, k) => {
    for (const j of order.slice(0, k)) {
      const [a, b] = [branches[i], branches[j]];
      if (b.from < a.to && a.from < b.to) level[i] = Math.max(level[i], level[j] + 1);
    }
  });
  return level;
}

const span = (b) => b.to - b.from;

/** Left edge and width of each column of the diagram `root`, by layer index. */
function columns(root) {
  const found = new Map();
  root.querySelectorAll("g.layer-col").forEach((col, position) => {
    const hit = col.querySelector("rect.layer-hit");
    if (!hit) return;
    const index = Number(col.dataset.layer ?? position);
    found.set(index, {x: Number(hit.getAttribute("x")) - 2, width: Number(hit.getAttribute("width")) + 4});
  });
  return found;
}

function arc(branch, level, from, to, band, mid) {
  const top = TOP_PX + (band - TOP_PX - LEVEL_PX) - level * LEVEL_PX;
  const x1 = from.x + from.width / 2;
  const x2 = to.x;
  const y = mid + band;
  const dashed = branch.kind === "input";
  const title = svg(
    "title",
    {},
    dashed
      ? `layer ${branch.to} reads layer ${branch.from}'s output`
      : `skip: layer ${branch.from}'s output joins by ${branch.kind} before layer ${branch.to}`,
  );
  const line = svg("path", {
    d: `M ${x1} ${band + 6} V ${top + 6} Q ${x1} ${top} ${x1 + 6} ${top} H ${x2 - 6} ` +
      `Q ${x2} ${top} ${x2} ${top + 6} V ${y - (dashed ? 0 : JOIN_R)}`,
    fill: "none",
    stroke: "#3d6fa5",
    "stroke-width": 1.6,
    "stroke-dasharray": dashed ? "4 3" : null,
    class: `branch-arc branch-${branch.kind}`,
  });
  const parts = [title, line];
  if (!dashed) {
    parts.push(
      svg("circle", {cx: x2, cy: y, r: JOIN_R, fill: "#fff", stroke: "#3d6fa5", class: "branch-join"}),
      svg("text", {x: x2, y: y + 4, "text-anchor": "middle", class: "branch-mark"}, MARKS[branch.kind] ?? "·"),
    );
  }
  return svg("g", {class: "branch", "data-from": branch.from, "data-to": branch.to}, parts);
}

/**
 * Draw `branches` over the layer diagram `root` (an <svg>, returned grown by a band on top for
 * the arcs); `mid` is the y of the diagram's middle line, where joins sit. Branches between
 * layers the diagram does not show are left out.
 */
export function withBranches(root, branches = [], {mid = 110} = {}) {
  const cols = columns(root);
  const shown = branches.filter((b) => cols.has(b.from) && cols.has(b.to));
  if (!shown.length) return root;
  const level = levels(shown);
  const band = TOP_PX + LEVEL_PX * (Math.max(...level) + 2);
  const width = Number(root.getAttribute("width"));
  const height = Number(root.getAttribute("height")) + band;
  const moved = svg("g", {transform: `translate(0 ${band})`}, [...root.childNodes]);
  root.replaceChildren(moved);
  root.setAttribute("height", height);
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const arcs = svg("g", {class: "branches", role: "img", "aria-label": `${shown.length} branches`});
  shown.forEach((b, i) => arcs.append(arc(b, level[i], cols.get(b.from), cols.get(b.to), band, mid)));
  root.append(arcs);
  return root;
}
