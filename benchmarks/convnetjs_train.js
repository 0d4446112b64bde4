// Train a network with ConvNetJS itself and print its speed as JSON (used by
// speed_side_by_side.py; node has no threads here, ConvNetJS runs on one core).
//
//   node convnetjs_train.js <convnetjs module dir> <job.json>
//
// job.json: {"layer_defs": [...], "trainer": {...SGDTrainer options},
//            "images": "<file>", "labels": "<file>", "sx", "sy", "depth", "examples"}
// images: uint8, one image after another in ConvNetJS's Vol order (y, x, channel);
// labels: one uint8 per image. Every image becomes a Vol of byte/255 - 0.5 before the clock
// starts (the data is in memory, as for the PyTorch loops); training then cycles through the
// images until `examples` examples are done, one trainer.train(x, y) call each.
// Prints {"examples", "seconds", "examples_per_s", "params", "loss_first", "loss_last"}:
// loss_first / loss_last are the mean softmax losses of the first and last tenth of the run.

"use strict";
const fs = require("fs");

const [modulePath, jobPath] = process.argv.slice(2);
const convnetjs = require(modulePath);
const job = JSON.parse(fs.readFileSync(jobPath, "utf8"));

const bytes = fs.readFileSync(job.images);
const labels = fs.readFileSync(job.labels);
const size = job.sx * job.sy * job.depth;
if (bytes.length !== labels.length * size) {
  throw new Error(`${job.images} holds ${bytes.length} bytes, not ${labels.length} images ` +
                  `of ${job.sx}x${job.sy}x${job.depth}`);
}
const vols = [];
for (let n = 0; n < labels.length; n++) {
  const vol = new convnetjs.Vol(job.sx, job.sy, job.depth, 0.0);
  for (let i = 0; i < size; i++) vol.w[i] = bytes[n * size + i] / 255.0 - 0.5;
  vols.push(vol);
}

const net = new convnetjs.Net();
net.makeLayers(job.layer_defs);
const trainer = new convnetjs.SGDTrainer(net, job.trainer);
const params = net.getParamsAndGrads().reduce((sum, pg) => sum + pg.params.length, 0);

const tenth = Math.max(1, Math.floor(job.examples / 10));
let lossFirst = 0;
let lossLast = 0;
const start = process.hrtime.bigint();
for (let k = 0; k < job.examples; k++) {
  const i = k % vols.length;
  const loss = trainer.train(vols[i], labels[i]).softmax_loss;
  if (k < tenth) lossFirst += loss;
  if (k >= job.examples - tenth) lossLast += loss;
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;

process.stdout.write(JSON.stringify({
  examples: job.examples, seconds, examples_per_s: job.examples / seconds, params,
  loss_first: lossFirst / tenth, loss_last: lossLast / tenth,
}) + "\n");
