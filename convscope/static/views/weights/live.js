// The chapter's L1 menu: MNIST 2-layer, MNIST 1-layer, CIFAR 2-layer, CIFAR 1-layer. Picking
// one trains a fresh network on the server (POST /api/train, the registry's recipe with the
// chapter's settings: adadelta, batch 4) and redraws its templates, or its hidden units and
// the second layer's bars, from a snapshot taken after every 25 examples (each one delivered
// before the next is taken, as the chapter redraws after every chunk of 25).

import {decodeTensor} from "../../api.js";
import {h} from "../../dom.js";

/** The menu: [registry name, the chapter's label]. */
export const L1_MENU = [
  ["mnist-ordinary", "MNIST 2-layer"],
  ["mnist-templates", "MNIST 1-layer"],
  ["cifar10-ordinary", "CIFAR 2-layer"],
  ["cifar10-templates", "CIFAR 1-layer"],
];
export const CHUNK = 25; // examples between redraws, as in the chapter
// The chapter's trainer: adadelta (its learning rate is unused: torch's 1.0), batch 4, one pass.
const SETTINGS = {epochs: 1, batch_size: 4, optimizer: "adadelta", lr: 1, snapshot_every: CHUNK};

/** The one L1 run of the page (kept across views): its job, socket and latest snapshot. */
const run = {job: null, socket: null, name: null, running: false, snapshot: null, outcome: null, draws: 0};

const decodeOrNull = (tensor) => (tensor ? decodeTensor(tensor) : null);

/** Stop the running L1 job (if any) and wait until it has ended. */
async function stopRunning(ctx) {
  if (!run.running) return;
  const ended = new Promise((resolve) => run.socket?.addEventListener("close", resolve, {once: true}));
  await ctx.api.stopTraining(run.job).catch(() => null); // it may just have finished
  await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 15000))]);
}

/**
 * Train registry model `name` live and call `onSnapshot(snapshot)` with each snapshot:
 * {examples, weights: [{index, weights, bias}], modelId}; `onEnd(outcome)` when it ends.
 */
export async function trainL1(ctx, name, {onSnapshot, onEnd}) {
  await stopRunning(ctx);
  const {job, model_id: modelId} = await ctx.api.startTraining({model: name, ...SETTINGS});
  Object.assign(run, {job, name, running: true, snapshot: null, outcome: null, draws: 0});
  const socket = ctx.api.trainingSocket(job);
  run.socket = socket;
  socket.addEventListener("message", (event) => {
    if (run.socket !== socket) return;
    const message = JSON.parse(event.data);
    if (message.type === "snapshot" && message.weights?.length) {
      run.snapshot = {
        examples: message.examples,
        modelId,
        weights: message.weights.map((w) => ({
          index: w.index,
          weights: decodeTensor(w.weights),
          bias: decodeOrNull(w.bias),
        })),
      };
      run.draws += 1;
      onSnapshot(run.snapshot);
    } else if (message.type === "done" || message.type === "error") {
      run.running = false;
      run.outcome = {...message, modelId};
      ctx.refreshModels().catch(ctx.showBanner);
      onEnd(run.outcome);
    }
  });
  socket.addEventListener("close", () => {
    if (run.socket === socket && run.running) {
      run.running = false;
      onEnd({type: "error", error: "the connection to the training job closed before it finished"});
    }
  });
  return {job, modelId};
}

/** Stop following (the job carries on, as the Train page's do). */
export function detach() {
  run.socket?.close();
  run.socket = null;
  run.running = false;
}

/** Stop the L1 run. */
export const stopL1 = (ctx) => stopRunning(ctx);

/** The status line of the L1 run. */
export function l1Status(outcome, snapshot, label) {
  const seen = snapshot ? `${snapshot.examples.toLocaleString("en-US")} examples` : "starting…";
  if (!outcome) return `${label}: training live · ${seen} · redrawn every ${CHUNK} examples`;
  if (outcome.type === "error") return h("span", {class: "error", role: "alert"}, outcome.error);
  const score = outcome.test_accuracy == null ? "" : ` Test accuracy ${(100 * outcome.test_accuracy).toFixed(1)}%.`;
  return [
    `${label}: ${outcome.stopped ? "stopped" : "trained"} on ${seen}.${score} `,
    h("a", {href: `#/weights?model=${encodeURIComponent(outcome.modelId)}`}, "Open it"),
    " (it is now in the model picker).",
  ];
}
