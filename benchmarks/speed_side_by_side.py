"""Training speed of ConvNetJS's demo nets: convscope's trainer, a plain PyTorch loop, ConvNetJS.

For mnist-convnetjs and cifar10-convnetjs, under two sets of trainer settings shared by
convscope and the plain loop, "recipe" (the model's registry recipe: batch size, optimiser,
lr, momentum, weight decay) and "convnetjs" (ConvNetJS's demo trainer: adadelta, its batch size,
weight decay l2_decay / batch size), augmentation off:

- convscope: ``convscope.train`` on the whole training set (val_fraction 0), stopped through
  ``on_event`` after a fixed number of steps; examples/s is the trainer's own (its tally of the
  training steps, as written to metrics.jsonl: no data loading, evaluation or checkpoints);
- plain: a minimal loop, SpecNet from the same spec, the same optimiser and batch size, the same
  images already in memory as float tensors (centre crops), reshuffled each epoch; wall clock
  over the same number of steps, in the same process (same torch threads);
- ConvNetJS: ``convnetjs_train.js`` under node: the demo net from its layer defs, the demo
  trainer, a fixed number of examples cycling over the first images of the same set.

Each measurement runs ``--repeats`` times, interleaved; a run during which other processes kept
more than ``--busy`` cores busy is run again (up to ``--retries`` times). Medians are reported
(a ratio: the median of its ratios within each repeat), with convscope's GFLOP/s as a fraction
of the machine's conv ceiling (ceiling.py).
``--write-doc`` writes the "speed_side_by_side" section of docs/benchmarks.md.

    python benchmarks/speed_side_by_side.py --data-dir ../shared/data --write-doc
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from _report import command_line, machine, median, watched_quietly, write_section
from ceiling import describe_load, measure_ceiling

import convscope
from convscope.augment import center_crop, to_input
from convscope.config import TrainConfig, resolve_config
from convscope.errors import ConvscopeError
from convscope.registry import get_model_entry
from convscope.spec import resolve

MODELS = ("mnist-convnetjs", "cifar10-convnetjs")
SETTINGS = ("recipe", "convnetjs")
# ConvNetJS's demo trainers (karpathy/convnetjs demo/mnist.html and demo/cifar10.html)
DEMO_TRAINERS = {
    "mnist-convnetjs": {"method": "adadelta", "batch_size": 20, "l2_decay": 0.001},
    "cifar10-convnetjs": {"method": "adadelta", "batch_size": 4, "l2_decay": 0.0001},
}
# examples per timed run: convscope and plain, by settings; ConvNetJS (aimed at 10-20 s each
# on an idle 2-core machine)
EXAMPLES = {
    "mnist-convnetjs": ({"recipe": 160_000, "convnetjs": 100_000}, 2_000),
    "cifar10-convnetjs": ({"recipe": 60_000, "convnetjs": 20_000}, 300),
}
QUICK_STEPS, QUICK_CONVNETJS_EXAMPLES = 10, 20
PROBE_STEPS = 300  # of SpeedGate's probe: about 0.6 s on an idle 2-core machine
PACKAGE = "convnetjs@0.3.0"
NPM_CACHE = Path.home() / ".cache" / "convscope" / "bench-npm"
SCRIPT = Path(__file__).resolve().parent / "convnetjs_train.js"
TARGETS = {"plain": 1.0, "convnetjs": 50.0}  # convscope's examples/s at least this many times
# ConvNetJS's layer_defs fields per type (convscope's spec uses the same names)
CONVNETJS_FIELDS = {
    "conv": {"sx", "sy", "filters", "stride", "pad", "activation", "drop_prob"},
    "pool": {"sx", "sy", "stride", "pad", "kind"},  # kind: max only
    "fc": {"num_neurons", "activation", "drop_prob"},
    "relu": set(), "sigmoid": set(), "tanh": set(),
    "dropout": {"drop_prob"},
    "softmax": {"num_classes"},
}


# ---- the three trainers ---------------------------------------------------------------------


def settings_for(name: str, settings: str) -> dict:
    """convscope training settings (TrainConfig fields) of ``settings`` for model ``name``."""
    shared = {"augment": "none", "schedule": "constant", "val_fraction": 0.0, "epochs": 1000,
              "checkpoint_every": 10**9}  # no mid-epoch checkpoints within the timed steps
    if settings == "recipe":
        return shared
    demo = DEMO_TRAINERS[name]
    return {**shared, "optimizer": "adadelta", "lr": 1.0, "batch_size": demo["batch_size"],
            "weight_decay": demo["l2_decay"] / demo["batch_size"]}


class TrainerClock:
    """``on_event`` for convscope.train: stops after ``steps`` steps and adds up the trainer's
    own tallies (examples, seconds of training steps) over the epochs into one examples/s."""

    def __init__(self, steps: int, batch_size: int) -> None:
        self.steps, self.batch_size, self.done = steps, batch_size, 0
        self.examples = self.seconds = 0.0  # finished epochs
        self.current = (0.0, 0.0)  # the epoch in progress

    def __call__(self, event: dict) -> bool:
        if event["kind"] == "epoch":
            self.examples += event["examples_per_s"] * event["seconds"]
            self.seconds += event["seconds"]
            self.current = (0.0, 0.0)
            return True
        seen = event["step"] * self.batch_size  # every step is a full batch
        self.current = (seen, seen / event["examples_per_s"])
        self.done += 1
        return self.done < self.steps

    @property
    def examples_per_s(self) -> float:
        return (self.examples + self.current[0]) / (self.seconds + self.current[1])


def time_convscope(name: str, settings: dict, steps: int, data_dir: str) -> float:
    """convscope's trainer: examples/s over ``steps`` steps, by the trainer's own clock."""
    clock = TrainerClock(steps, trainer_config(name, settings).batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        convscope.train(name, get_model_entry(name).dataset, out=Path(tmp) / "run",
                        progress=False, on_event=clock, data_dir=data_dir, **settings)
    if clock.done < steps:
        raise ConvscopeError(f"convscope trained {clock.done} steps, not {steps}")
    return clock.examples_per_s


def trainer_config(name: str, settings: dict) -> TrainConfig:
    entry = get_model_entry(name)
    return resolve_config(entry.recipe, {"model": name, "data": entry.dataset, **settings})


def plain_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ConvscopeError(f"the plain loop knows sgd and adadelta, not {config.optimizer}")


def plain_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor) -> None:
    """One step of the minimal loop: ``model(x)``, ``cross_entropy``, ``zero_grad``,
    ``backward``, ``step``."""
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def time_plain(spec: list[dict], config: TrainConfig, inputs: torch.Tensor,
               labels: torch.Tensor, steps: int) -> float:
    """A minimal PyTorch loop over float inputs in memory: examples/s over ``steps`` steps."""
    torch.manual_seed(config.seed)
    model = convscope.build_model(spec).train()
    optimizer = plain_optimizer(config, model.parameters())
    batch, per_epoch = config.batch_size, inputs.shape[0] // config.batch_size
    start = time.perf_counter()
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.randperm(inputs.shape[0])
        index = order[(step % per_epoch) * batch:(step % per_epoch + 1) * batch]
        plain_step(model, optimizer, inputs[index], labels[index])
    return steps * batch / (time.perf_counter() - start)


def convnetjs_layer_defs(spec: list[dict]) -> list[dict]:
    """ConvNetJS ``layer_defs`` for a convscope spec (refuses what ConvNetJS lacks)."""
    first, *rest = spec
    defs = [{"type": "input", "out_sx": first["sx"], "out_sy": first.get("sy", first["sx"]),
             "out_depth": first["depth"]}]
    for i, layer in enumerate(rest, start=1):
        kind = layer["type"]
        unknown = sorted(set(layer) - {"type"} - CONVNETJS_FIELDS.get(kind, set()))
        if layer.get("kind", "max") != "max":
            unknown.append(f"kind {layer['kind']}")
        if kind not in CONVNETJS_FIELDS or unknown:
            what = f"{kind} layer" if kind not in CONVNETJS_FIELDS else f"{', '.join(unknown)} here"
            raise ConvscopeError(f"layer {i} ({kind}): ConvNetJS has no {what}; benchmark a "
                                 "spec of ConvNetJS layers")
        defs.append(dict(layer))
    return defs


def install_convnetjs(prefix: Path) -> Path:
    """The convnetjs npm package under ``prefix`` (installed there by npm the first time)."""
    module = prefix / "node_modules" / "convnetjs"
    package = module / "package.json"
    version = PACKAGE.split("@")[1]
    if package.exists() and json.loads(package.read_text())["version"] == version:
        return module
    npm = shutil.which("npm")
    if npm is None:
        raise ConvscopeError("npm is not on PATH: install node 20 and npm to run ConvNetJS")
    try:
        subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        "--ignore-scripts", PACKAGE], check=True, capture_output=True,
                       timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = (getattr(exc, "stderr", b"") or b"").decode(errors="replace").strip()
        raise ConvscopeError(f"npm could not install {PACKAGE} into {prefix}: "
                             f"{output[-300:] or exc}; check the network") from exc
    return module


def write_convnetjs_data(images: torch.Tensor, labels: torch.Tensor,
                         folder: Path) -> tuple[Path, Path]:
    """Raw files for convnetjs_train.js: uint8 images (N, C, H, W) in ConvNetJS's Vol order
    (y, x, channel), one after another, and one label byte per image."""
    images_path, labels_path = folder / "images.u8", folder / "labels.u8"
    images_path.write_bytes(images.permute(0, 2, 3, 1).contiguous().numpy().tobytes())
    labels_path.write_bytes(labels.to(torch.uint8).numpy().tobytes())
    return images_path, labels_path


def run_convnetjs(module: Path, layer_defs: list[dict], trainer: dict, images: torch.Tensor,
                  labels: torch.Tensor, examples: int, folder: Path) -> dict:
    """Train with ConvNetJS under node; its report (examples_per_s, params, losses, ...)."""
    node = shutil.which("node")
    if node is None:
        raise ConvscopeError("node is not on PATH: install node 20 to run ConvNetJS")
    images_path, labels_path = write_convnetjs_data(images, labels, folder)
    _, depth, height, width = images.shape
    job = folder / "job.json"
    job.write_text(json.dumps({"layer_defs": layer_defs, "trainer": trainer,
                               "images": str(images_path), "labels": str(labels_path),
                               "sx": width, "sy": height, "depth": depth,
                               "examples": examples}))
    done = subprocess.run([node, str(SCRIPT), str(module), str(job)], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise ConvscopeError(f"convnetjs_train.js failed (exit status {done.returncode}): "
                             f"{done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


# ---- measuring ------------------------------------------------------------------------------


class SpeedGate:
    """The machine's speed at small PyTorch steps, probed before and after every run.

    The host of this virtual machine at times slows it by up to half while no process inside
    it is busy (so /proc/stat cannot tell), and 2-thread PyTorch at batch 4-20 then slows about
    twice as much as single-threaded node. The probe: ``PROBE_STEPS`` training steps of the
    ConvNetJS MNIST net at batch 20 (random data, NCHW, SGD), in steps/s. A run whose slower
    probe falls below ``fraction`` of the fastest probe so far is run again, a minute later."""

    def __init__(self, fraction: float) -> None:
        self.fraction, self.best = fraction, 0.0
        torch.manual_seed(0)
        self.model = convscope.build_model(get_model_entry("mnist-convnetjs").spec)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.x, self.y = torch.randn(20, 1, 24, 24), torch.randint(0, 10, (20,))

    def probe(self) -> float:
        start = time.perf_counter()
        for _ in range(PROBE_STEPS):
            plain_step(self.model, self.optimizer, self.x, self.y)
        speed = PROBE_STEPS / (time.perf_counter() - start)
        self.best = max(self.best, speed)
        return speed

    def calibrate(self, probes: int = 5) -> None:
        for _ in range(probes):
            self.probe()


def timed(fn: Callable[[], float | dict], busy: float, retries: int, gate: SpeedGate) -> dict:
    """:func:`watched_quietly` of ``fn`` (returning examples/s, or a dict with
    ``examples_per_s``) as one record, run again (at most ``retries`` times) while the
    :class:`SpeedGate` finds the machine slow; ``speed`` is the slower probe's fraction of the
    fastest."""
    for attempt in range(1 + retries):
        before = gate.probe()
        result, load = watched_quietly(fn, busy, retries)
        speed = min(before, gate.probe()) / gate.best
        if speed >= gate.fraction or attempt == retries:
            break
        print(f"    slow machine: probe at {100 * speed:.0f}% of its best; running it again "
              "in a minute", flush=True)
        time.sleep(60)
    return {**(result if isinstance(result, dict) else {"examples_per_s": result}), **load,
            "speed": speed, "tries": load["tries"] + attempt}


def measure_model(name: str, settings_list: list[str], args, npm_module: Path,
                  folder: Path, gate: SpeedGate) -> dict:
    """Lists of :func:`timed` records keyed by (system, settings); ConvNetJS's settings are
    "demo"."""
    entry = get_model_entry(name)
    dataset = convscope.load_dataset(entry.dataset, "train", data_dir=args.data_dir)
    volume = resolve(entry.spec)[0].out_volume
    images = center_crop(dataset.images, volume.sy, volume.sx).contiguous()
    inputs = to_input(images).contiguous()
    per_settings, convnetjs_examples = EXAMPLES[name]
    if args.quick:
        convnetjs_examples = QUICK_CONVNETJS_EXAMPLES
    subset = slice(0, min(convnetjs_examples, len(images)))
    layer_defs = convnetjs_layer_defs(entry.spec)
    records: dict = {}
    for repeat in range(args.repeats):
        for settings in settings_list:
            overrides = settings_for(name, settings)
            config = trainer_config(name, overrides)
            steps = QUICK_STEPS if args.quick else per_settings[settings] // config.batch_size
            jobs = {"convscope": partial(time_convscope, name, overrides, steps, args.data_dir),
                    "plain": partial(time_plain, entry.spec, config, inputs, dataset.labels,
                                     steps)}
            for system, job in jobs.items():
                record = timed(job, args.busy, args.retries, gate)
                record["examples"] = steps * config.batch_size
                records.setdefault((system, settings), []).append(record)
                print(f"{name} {settings} {system} run {repeat + 1}: "
                      f"{record['examples_per_s']:,.0f} examples/s", flush=True)
        job = partial(run_convnetjs, npm_module, layer_defs, DEMO_TRAINERS[name],
                      images[subset], dataset.labels[subset], convnetjs_examples, folder)
        record = timed(job, args.busy, args.retries, gate)
        records.setdefault(("ConvNetJS", "demo"), []).append(record)
        print(f"{name} ConvNetJS run {repeat + 1}: {record['examples_per_s']:,.1f} examples/s "
              f"(loss {record['loss_first']:.3f} -> {record['loss_last']:.3f})", flush=True)
    return records


# ---- report ---------------------------------------------------------------------------------


def _rate(records: list[dict]) -> float:
    return median([r["examples_per_s"] for r in records])


def _paired_ratio(ours: list[dict], theirs: list[dict]) -> float:
    """The median over repeats of the ratio of runs of the same repeat (taken minutes apart,
    so a slow drift of the machine's speed cancels out)."""
    return median([a["examples_per_s"] / b["examples_per_s"]
                   for a, b in zip(ours, theirs, strict=True)])


def _settings_text(name: str, settings: str) -> str:
    c = trainer_config(name, settings_for(name, settings))
    extra = f", momentum {c.momentum:g}" + (" nesterov" if c.nesterov else "") \
        if c.optimizer == "sgd" else ""
    return (f"{settings}: bs {c.batch_size}, {c.optimizer} lr {c.lr:g}{extra}, "
            f"wd {c.weight_decay:g}")


def _runs_row(name: str, settings: str, system: str, records: list[dict]) -> str:
    others = [r["others_cpu"] for r in records]
    rates = ", ".join(f"{r['examples_per_s']:,.0f}" if r["examples_per_s"] >= 100 else
                      f"{r['examples_per_s']:.1f}" for r in records)
    return (f"| {name} | {settings} | {system} | {records[0]['examples']:,} | {rates} | "
            + ", ".join("-" if o is None else f"{o:.2f}" for o in others)
            + f" | {max(r['load_avg'] for r in records):.1f} | "
            + ", ".join(f"{100 * r['speed']:.0f}%" for r in records)
            + " "
            f"| {sum(r['tries'] - 1 for r in records)} |")


def report(results: dict, ceiling: dict, repeats: int, versions: str, speed: float,
           retries: int) -> str:
    """The markdown section for ``results[model][system, settings]`` (lists of records)."""
    rows, runs, met = [], [], {target: [] for target in TARGETS}
    conv_ceiling = ceiling["conv_best_gflops"]
    for name, records in results.items():
        flops = 6 * sum(layer.macs for layer in resolve(get_model_entry(name).spec))
        convnetjs = _rate(records["ConvNetJS", "demo"])
        for settings in [settings for system, settings in records if system == "convscope"]:
            mine = records["convscope", settings]
            ours, plain = _rate(mine), _rate(records["plain", settings])
            ratios = {"plain": _paired_ratio(mine, records["plain", settings]),
                      "convnetjs": _paired_ratio(mine, records["ConvNetJS", "demo"])}
            for target, ratio in ratios.items():
                met[target].append(ratio >= TARGETS[target])
            gflops = ours * flops / 1e9
            rows.append(f"| {name} | {_settings_text(name, settings)} | {ours:,.0f} "
                        f"| {plain:,.0f} | {convnetjs:.1f} | {ratios['plain']:.2f}x "
                        f"| {ratios['convnetjs']:,.1f}x | {gflops:.1f} "
                        f"| {100 * gflops / conv_ceiling:.0f}% |")
            runs += [_runs_row(name, settings, system, records[system, settings])
                     for system in ("convscope", "plain")]
        demo = DEMO_TRAINERS[name]
        settings = f"demo: bs {demo['batch_size']}, adadelta, l2_decay {demo['l2_decay']:g}"
        runs.append(_runs_row(name, settings, "ConvNetJS", records["ConvNetJS", "demo"]))
    verdict = {t: f"met in all {len(m)} rows" if all(m) else
               f"not met: met in {sum(m)} of {len(m)} rows" for t, m in met.items()}
    return "\n".join([
        "## Training speed side by side (`benchmarks/speed_side_by_side.py`)",
        "",
        f"`{command_line()}`: median of {repeats} runs of each figure; each ratio is the median "
        "of the ratios within a repeat (a repeat runs convscope, plain and ConvNetJS one after "
        f"another, so slow drifts of the machine's speed cancel out). Machine: {machine()}; "
        f"{versions}.",
        "",
        "| model | settings (convscope and plain) | convscope ex/s | plain PyTorch ex/s "
        "| ConvNetJS ex/s | convscope / plain | convscope / ConvNetJS | convscope GFLOP/s "
        "| of conv ceiling |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Targets: convscope >= {TARGETS['plain']:.1f}x the plain loop: {verdict['plain']}; "
        f"convscope >= {TARGETS['convnetjs']:.0f}x ConvNetJS: {verdict['convnetjs']}.",
        "",
        *_how_measured(ceiling, speed, retries),
        "| model | settings | system | examples per run | examples/s per run "
        "| others' CPU cores per run | max load | machine speed per run | reruns |",
        "|---|---|---|---:|---|---|---:|---|---:|",
        *runs,
    ])


def _how_measured(ceiling: dict, speed: float, retries: int) -> list[str]:
    """The paragraphs between the two tables: settings, systems, GFLOP/s and reruns."""
    conv_ceiling = ceiling["conv_best_gflops"]
    return [
        "Settings \"recipe\" are the model's registry recipe; \"convnetjs\" are ConvNetJS's demo "
        "trainer (adadelta, its batch size, weight decay l2_decay / batch size, which is how "
        "ConvNetJS applies l2_decay to a summed batch gradient); augmentation is off in both "
        "(convscope still takes random 24x24 crops of the 28x28 MNIST images, the plain loop "
        "and ConvNetJS centre crops). ConvNetJS always trains with its demo trainer, so both rows "
        "of a model share its figure. convscope: `convscope.train` on the whole training set, "
        "stopped after a fixed number of steps through `on_event`; examples/s from the "
        "trainer's own tally of its training steps (as in metrics.jsonl); the trainer keeps "
        "the model and its batches channels_last and steps the optimiser once per parameter "
        "group over one flat buffer (`convscope/flat_optimizer.py`), where a torch optimiser "
        "steps each parameter. Plain: a minimal loop (`model(x)`, `cross_entropy`, "
        "`zero_grad`, `backward`, `step`) with PyTorch's defaults (NCHW, the torch optimiser) "
        "over the same centre-cropped images held as one float tensor, reshuffled each epoch, "
        "timed by wall clock, same process and threads. ConvNetJS: "
        "`benchmarks/convnetjs_train.js` under node (single-threaded), the demo net from its "
        "layer defs, images converted to Vols before timing, one `trainer.train` per example. "
        "GFLOP/s = examples/s x 6 x the forward multiply-adds of conv and fc layers (backward "
        "counted as twice the forward); "
        f"conv ceiling {conv_ceiling:.1f} GFLOP/s (the faster layout of ceiling.py's conv2d, "
        f"measured in this invocation with {ceiling['runs']} runs; {describe_load(ceiling)}; "
        f"matmul {ceiling['matmul_gflops']:.1f} GFLOP/s).",
        "",
        "Every run, with the CPU cores other processes kept busy during it (from /proc/stat, "
        "less this process and its children), the highest 1-minute load average and the "
        "machine's speed: the slower of two probes taken just before and after the run "
        f"({PROBE_STEPS} training steps of the ConvNetJS MNIST net at batch 20, plain PyTorch), "
        "as a percentage of the fastest probe of the invocation. The host of this virtual machine "
        "at times slows it by up to half while nothing inside it is busy, and 2-thread "
        "PyTorch at these batch sizes then slows about twice as much as single-threaded node. "
        "Runs with more than the `--busy` threshold, or a speed below `--speed` "
        f"({100 * speed:.0f}%), were run again (\"reruns\", up to {retries} times each; "
        "the last try counts):",
        "",
    ]


def versions(npm_module: Path) -> str:
    node = subprocess.run([shutil.which("node") or "node", "--version"], capture_output=True,
                          text=True, check=True).stdout.strip()
    package = json.loads((npm_module / "package.json").read_text())["version"]
    return f"node {node}, convnetjs {package} (npm)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with mnist/ and cifar-10-batches-bin/")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy", type=float, default=0.1,
                        help="rerun a run during which other processes used more CPU cores")
    parser.add_argument("--retries", type=int, default=3, help="reruns at most, per run")
    parser.add_argument("--speed", type=float, default=0.75,
                        help="rerun a run during which the machine's speed probe fell below "
                        "this fraction of its best")
    parser.add_argument("--npm-cache", type=Path, default=NPM_CACHE,
                        help="where convnetjs is installed from the npm registry")
    parser.add_argument("--quick", action="store_true",
                        help="a few steps each and no reruns (smoke test)")
    parser.add_argument("--write-doc", action="store_true",
                        help="write the section into docs/benchmarks.md")
    args = parser.parse_args()
    if args.quick:
        args.retries = 0
    try:
        npm_module = install_convnetjs(args.npm_cache)
        ceiling = measure_ceiling(1 if args.quick else 5, args.busy, args.retries)
        with tempfile.TemporaryDirectory() as tmp:
            gate = SpeedGate(args.speed)
            gate.calibrate(1 if args.quick else 5)
            results = {name: measure_model(name, args.settings, args, npm_module, Path(tmp), gate)
                       for name in args.models}
        body = report(results, ceiling, args.repeats, versions(npm_module), args.speed,
                      args.retries)
    except ConvscopeError as exc:
        parser.exit(1, f"error: {exc}\n")
    print(body)
    if args.write_doc:
        write_section("speed_side_by_side", body)


if __name__ == "__main__":
    main()
