"""Time to accuracy: the named recipes, trained by the ``convscope train`` CLI, against targets.

Each (recipe, seed) runs ``python -m convscope train --recipe NAME --seed S --device cpu`` as a
fresh process with ``--threads`` CPU threads (OMP_NUM_THREADS). Wall time runs from starting the
process to its exit: Python start, imports, loading the data, training, the final test
evaluation (and the validation one, when the recipe keeps a split) and writing the run. The
trainer's own clock (training steps only) and examples/s come from the run's metrics.jsonl.
Accuracy is on the official test set; the median over ``--seeds`` is compared with the targets.
Targets hold per CPU class: a CPU without native bf16 (where ``--precision auto`` computes in
fp32) and one with it. ``--isa-limit AVX2`` runs the processes under ``ONEDNN_MAX_CPU_ISA=AVX2``
(and MKL's and ATen's matching limits), so a machine with AVX512-BF16 measures the class without
native bf16; each run records its limits and class.
Every run is appended to ``--log`` (JSON lines), so recipes can be timed in separate
invocations; the report takes, per recipe, the latest run of each seed with the recipe's latest
settings. Each recipe's training GFLOP/s (examples/s x 6 x forward multiply-adds) is given as a
fraction of this machine's fp32 conv ceiling (ceiling.py), measured in the same invocation.
Writes the "time_to_accuracy" section of docs/benchmarks.md with ``--write-doc``.

    python benchmarks/time_to_accuracy.py --data-dir ../shared/data --write-doc
    python benchmarks/time_to_accuracy.py --data-dir ../shared/data --isa-limit AVX2 --write-doc
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from _report import (
    append_record,
    command_line,
    cpu_model,
    latest_per_seed,
    machine,
    median,
    read_records,
    watched,
    write_section,
)
from ceiling import describe_load, measure_ceiling

import convscope
from convscope import device as devices
from convscope.data import load_dataset
from convscope.errors import ConvscopeError
from convscope.registry import get_model_entry
from convscope.spec import resolve

DEFAULT_RECIPES = ["mnist-sprint", "mnist-995"]
SEEDS = (0, 1, 2)  # a target's median is over this many seeds
BUSY = 0.25  # other processes' average CPU (cores) above which a run's wall time is suspect


NO_BF16, BF16 = "no native bf16", "native bf16"  # the CPU classes, in the table's order
ISA_ENV = "ONEDNN_MAX_CPU_ISA"
# the limits that go with oneDNN's, so MKL's matrix products (Muon, fc layers) and ATen's own
# kernels stay within the same instructions
LIBRARY_LIMITS = {"AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def _settings(env: dict) -> str:
    """Environment settings as they would be typed before a command: `A=1 B=2`."""
    return " ".join(f"{k}={v}" for k, v in env.items())


def isa_env(limit: str | None) -> dict[str, str]:
    """The environment that limits a process to the ISA ``limit`` (none: no limit)."""
    if not limit:
        return {}
    return {ISA_ENV: limit, **LIBRARY_LIMITS.get(limit.strip().upper(), {})}


def limit_prefix(run: dict) -> str:
    """The environment settings of a run's ISA limit, as a command's prefix (older runs logged
    oneDNN's limit alone)."""
    limits = run.get("isa_env") or ({ISA_ENV: run["isa_limit"]} if run.get("isa_limit") else {})
    return f"{_settings(limits)} " if limits else ""


@dataclass(frozen=True)
class Target:
    """An accuracy on a dataset's test set, within ``seconds`` on a CPU without native bf16
    and ``seconds_bf16`` on one with it."""

    dataset: str
    accuracy: float
    seconds: float
    seconds_bf16: float

    def limit(self, cpu_class: str) -> float:
        return self.seconds_bf16 if cpu_class == BF16 else self.seconds

    def text(self, cpu_class: str) -> str:
        name = {"mnist": "MNIST", "cifar10": "CIFAR-10"}.get(self.dataset, self.dataset)
        seconds = self.limit(cpu_class)
        limit = f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"
        return f"{name} {100 * self.accuracy:g}% in <= {limit}"


TARGETS = (Target("mnist", 0.99, 10, 8), Target("mnist", 0.995, 60, 45),
           Target("cifar10", 0.90, 15 * 60, 8 * 60), Target("cifar10", 0.94, 60 * 60, 20 * 60))


def native_bf16_under(limit: str | None) -> bool:
    """Whether this CPU computes bf16 natively with oneDNN limited to ``limit`` (None: no
    limit beyond this process's own)."""
    if limit and limit.strip().upper() in devices._ISAS_WITHOUT_BF16:
        return False
    return devices.native_bf16(torch.device("cpu"))


def cpu_class(run: dict) -> str:
    """A run's CPU class; records from before classes were logged come from an AVX512-BF16
    machine without an ISA limit."""
    return BF16 if run.get("native_bf16", True) else NO_BF16


def time_run(recipe: str, seed: int, threads: int, data_dir: str | None,
             device: str = "cpu", isa_limit: str | None = None) -> dict:
    """Train ``recipe`` with ``seed`` on ``device`` in a fresh ``convscope train`` process
    (with oneDNN limited to ``isa_limit``, if given); its numbers."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "convscope", "train", "--recipe", recipe,
                   "--seed", str(seed), "--device", device, "--out", str(out)]
        if data_dir:
            command += ["--data-dir", data_dir]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               **isa_env(isa_limit)}
        before = os.times()
        done, watch = watched(lambda: subprocess.run(command, env=env, capture_output=True,
                                                     text=True, check=False))
        after = os.times()
        if done.returncode != 0:
            raise ConvscopeError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n"
                                 f"{done.stderr.strip()[-2000:]}")
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))
        metrics = [json.loads(line) for line in
                   (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    entry = get_model_entry(recipe)
    return {"recipe": recipe, "dataset": entry.dataset, "seed": seed, "threads": threads,
            "settings": entry.recipe, "test_acc": results["test"]["accuracy"],
            "precision": results.get("environment", {}).get("precision"),  # as computed
            "isa_limit": env.get(ISA_ENV), "isa_env": isa_env(isa_limit),
            "native_bf16": native_bf16_under(env.get(ISA_ENV)),
            "cpu": cpu_model(limit=False),
            "test_acc_without_tta": results.get("tta", {}).get("test_accuracy_without"), **watch,
            "cpu_s": (after.children_user + after.children_system
                      - before.children_user - before.children_system),
            "train_s": sum(m["seconds"] for m in metrics),
            "examples_per_s": metrics[-1]["examples_per_s"], "epochs": len(metrics)}


def decode_into_cache(recipes: list[str], data_dir: str | None) -> None:
    """Load the train and test sets of the recipes' datasets once, so that the timed processes
    read them from the decoded-array cache."""
    for dataset in dict.fromkeys(get_model_entry(name).dataset for name in recipes):
        for split in ("train", "test"):
            load_dataset(dataset, split, data_dir=data_dir)


def latest_runs(runs: list[dict]) -> list[dict]:
    """Per recipe and CPU class, the latest run of each seed among those with the settings and
    threads of the latest run (older runs stay in the log, out of the report)."""
    return latest_per_seed(runs, lambda r: (r["recipe"], cpu_class(r)),
                           lambda r: (r.get("settings"), r.get("threads")))


def training_gflops(run: dict) -> float:
    """GFLOP/s of a run's training steps: examples/s x 6 x the net's forward multiply-adds
    (conv and fc; backward counted as twice the forward)."""
    macs = sum(layer.macs for layer in resolve(get_model_entry(run["recipe"]).spec))
    return run["examples_per_s"] * 6 * macs / 1e9


def summarize(runs: list[dict], cpu: str | None = None) -> dict[str, dict]:
    """Per recipe (of the runs in CPU class ``cpu``, or all): its dataset, the number of runs,
    the median test accuracy and wall time, the arithmetic, the ISA limit and the CPU."""
    runs = [r for r in runs if cpu is None or cpu_class(r) == cpu]
    recipes: dict[str, dict] = {}
    for name in dict.fromkeys(r["recipe"] for r in runs):
        mine = [r for r in runs if r["recipe"] == name]
        recipes[name] = {"dataset": mine[0]["dataset"], "runs": len(mine),
                         "test_acc": median([r["test_acc"] for r in mine]),
                         "wall_s": median([r["wall_s"] for r in mine]),
                         "precision": _precision(mine[-1]), "isa_limit": mine[-1].get("isa_limit"),
                         "limit_prefix": limit_prefix(mine[-1]), "cpu": mine[-1].get("cpu")}
    return recipes


def _precision(run: dict) -> str:
    return run.get("precision") or run["settings"].get("precision", "fp32")  # older: the recipe's


def judge(target: Target, recipes: dict[str, dict],
          cpu: str = NO_BF16) -> tuple[str | None, str]:
    """The recipe that answers ``target`` on CPU class ``cpu`` (``recipes``: that class's
    summary) and the verdict: the fastest (median wall) recipe on its dataset whose median
    accuracy reaches it, else the most accurate one; "met", "not met" or "not measured" (no
    recipe of that dataset was run)."""
    mine = {name: s for name, s in recipes.items() if s["dataset"] == target.dataset}
    if not mine:
        return None, "not measured"
    reaching = {name: s for name, s in mine.items() if s["test_acc"] >= target.accuracy}
    if not reaching:
        best = max(mine, key=lambda name: mine[name]["test_acc"])
        return best, f"not met (accuracy {100 * mine[best]['test_acc']:.2f}%)"
    fastest = min(reaching, key=lambda name: reaching[name]["wall_s"])
    wall = reaching[fastest]["wall_s"]
    return fastest, "met" if wall <= target.limit(cpu) else f"not met ({wall:.1f} s)"


def target_rows(runs: list[dict]) -> list[str]:
    """The targets table: a row per target and CPU class."""
    rows = []
    for target in TARGETS:
        for cpu in (NO_BF16, BF16):
            recipes = summarize(runs, cpu)
            name, verdict = judge(target, recipes, cpu)
            if name is None:
                rows.append(f"| {target.text(cpu)} | {cpu} | - | - | - | - | - | - | "
                            f"{verdict} |")
                continue
            s = recipes[name]
            if s["runs"] < len(SEEDS):
                verdict += f" (median of {s['runs']} of {len(SEEDS)} seeds so far)"
            limit = s["isa_limit"]
            command = f"{s['limit_prefix']}convscope train --recipe {name}"
            rows.append(f"| {target.text(cpu)} | {cpu} | {s['cpu'] or 'as above'} | "
                        f"{limit or 'none'} | `{command}` | {s['precision']} | "
                        f"{100 * s['test_acc']:.2f} | {s['wall_s']:.1f} | {verdict} |")
    return rows


def _recipe_line(name: str) -> str:
    entry = get_model_entry(name)
    recipe = ", ".join(f"{k} {v}" for k, v in entry.recipe.items())
    return f"- `{name}`: {entry.description} Recipe: {recipe}."


PRECISION_NOTE = (
    " Precision: `--precision auto`, the default, computes in bf16 only on a CPU with native "
    "bf16 (AVX512-BF16 or AMX) and in fp32 elsewhere, so the class without native bf16 ran in "
    "fp32 (the arithmetic column).")


def _share_rows(runs: list[dict], conv_ceiling: float) -> list[str]:
    """Per recipe and CPU class: its arithmetic and training GFLOP/s against the ceiling."""
    rows = []
    for name, cpu in dict.fromkeys((r["recipe"], cpu_class(r)) for r in runs):
        mine = [r for r in runs if r["recipe"] == name and cpu_class(r) == cpu]
        g = median([training_gflops(r) for r in mine])
        rows.append(f"| `{name}` | {cpu} | {_precision(mine[-1])} | {g:.1f} "
                    f"| {100 * g / conv_ceiling:.0f}% |")
    return rows


def _run_rows(runs: list[dict]) -> list[str]:
    return [
        f"| `{r['recipe']}` | {r.get('isa_limit') or 'none'} | {r['seed']} "
        f"| {100 * r['test_acc']:.2f} | "
        + ("-" if r.get("test_acc_without_tta") is None else
           f"{100 * r['test_acc_without_tta']:.2f}") + f" | {r['wall_s']:.1f} "
        f"| {r['cpu_s']:.1f} | {r['train_s']:.1f} | {r['examples_per_s']:.0f} "
        f"| {r['load_avg']:.1f} | "
        + ("-" if r["others_cpu"] is None else f"{r['others_cpu']:.2f}") + " |" for r in runs]


def report(runs: list[dict], ceiling: dict) -> str:
    """The markdown section: targets with verdicts per CPU class, each recipe's share of the
    machine's ceiling, then every run."""
    runs = latest_runs(runs)
    seeds = sorted({r["seed"] for r in runs})
    threads = runs[0]["threads"]
    conv_ceiling = ceiling["conv_best_gflops"]
    busy = [r for r in runs if (r["others_cpu"] or 0) > BUSY]
    warning = (f"**{len(busy)} of {len(runs)} runs shared the machine** (other processes kept "
               f"more than {BUSY} cores busy): their wall times are longer than on a quiet "
               "machine.") if busy else "No run shared the machine with other busy processes."
    return "\n".join([
        "## Time to accuracy (`benchmarks/time_to_accuracy.py`)",
        "",
        f"Machine: {machine()}; convscope {convscope.__version__}.",
        f"Last written by `{command_line()}`; the runs come from the log `benchmarks/"
        "time_to_accuracy.jsonl`, where each invocation appends its runs. Each run is a fresh "
        "process, "
        f"`python -m convscope train --recipe NAME --seed S --device cpu` with {threads} CPU "
        f"thread{'s' if threads != 1 else ''} "
        f"(OMP_NUM_THREADS={threads}), seeds {', '.join(map(str, seeds))}. \"wall s\" runs from "
        "starting the process to its exit: Python start, imports, loading the data from the "
        "decoded-array cache (filled before timing), training, the final test evaluation (and "
        "the validation one where the recipe keeps a split) and writing the run. \"train s\" "
        "and examples/s are the trainer's own clock over the training steps; \"CPU s\" the "
        "CPU time of the whole process (all threads). Accuracy is on the "
        "official test set (10,000 images); a target is met when the median accuracy reaches "
        "it and the median wall time is within the limit. \"load\" is the higher 1-minute load "
        "average at a run's start or end; \"others\" the CPU cores other processes kept busy "
        "on average during it. " + warning,
        "",
        "CPU classes: the targets differ for a CPU without native bf16 (where `--precision "
        "auto` computes in fp32) and one with it (AVX512-BF16 or AMX). Both are measured on the "
        f"machine above: the class without native bf16 with `--isa-limit AVX2`, which runs each "
        f"training process under `{ISA_ENV}=AVX2` (oneDNN then uses AVX2 kernels only, and "
        "convscope counts bf16 as emulated) and, for runs logged since 2026-12-07, "
        f"`{_settings(LIBRARY_LIMITS['AVX2'])}` as well (MKL's matrix products "
        "and ATen's own kernels, which oneDNN's limit leaves on AVX-512); the \"ISA limit\" "
        "column says which, the command column gives the settings of the run.",
        "",
        "| target | CPU class | machine | ISA limit | command | arithmetic | median test acc % "
        "| median wall s | verdict |",
        "|---|---|---|---|---|---|---:|---:|---|",
        *target_rows(runs),
        "",
        f"Training speed against this machine's fp32 conv ceiling ({conv_ceiling:.1f} GFLOP/s, "
        f"the faster layout of ceiling.py's conv2d at {ceiling['threads']} threads, median of "
        f"{ceiling['runs']} calls, measured in the latest invocation"
        + (f" under {ISA_ENV}={os.environ[ISA_ENV]}" if os.environ.get(ISA_ENV) else "")
        + f"; {describe_load(ceiling)}; matmul {ceiling['matmul_gflops']:.1f} GFLOP/s). "
        "GFLOP/s = median examples/s x 6 x the "
        "forward multiply-adds of conv and fc layers. bf16 recipes are compared with the same "
        "fp32 ceiling and can pass it: this CPU's bf16 instructions (AVX512-BF16) do more "
        "multiply-adds per cycle than fp32." + PRECISION_NOTE,
        "",
        "| recipe | CPU class | arithmetic | training GFLOP/s | of fp32 conv ceiling |",
        "|---|---|---|---:|---:|",
        *_share_rows(runs, conv_ceiling),
        "",
        "A recipe with test-time augmentation (`tta`) is scored on mirrored (and shifted) views "
        "of each test image, inside the timed process; \"without tta\" is the same model scored "
        "on the images alone.",
        "",
        "| recipe | ISA limit | seed | test acc % | without tta % | wall s | CPU s | train s "
        "| examples/s | load | others |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *_run_rows(runs),
        "",
        "Recipes (`convscope train --recipe NAME`):",
        "",
        *[_recipe_line(name) for name in dict.fromkeys(r["recipe"] for r in runs)],
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES,
                        help="registered models to train with their recipes")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--data-dir", help="folder with mnist/ and cifar-10-batches-bin/")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per run")
    parser.add_argument("--log", type=Path, default=Path("benchmarks/time_to_accuracy.jsonl"),
                        help="every finished run is appended here (JSON lines); the report "
                             "reads it")
    parser.add_argument("--write-doc", action="store_true",
                        help="write the section of docs/benchmarks.md (else print it only)")
    parser.add_argument("--isa-limit", metavar="ISA",
                        help=f"run the training processes under {ISA_ENV}=ISA (AVX2: measure "
                             "a CPU without native bf16 on one with it); recorded per run")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report the runs already in --log (the ceiling "
                             "is measured again)")
    args = parser.parse_args()
    if args.report_only:
        args.recipes = []
        if not args.log.exists():
            raise SystemExit(f"{args.log}: no runs logged yet; run without --report-only first")
    torch.set_num_threads(args.threads)  # so that machine() reports the runs' thread count
    decode_into_cache(args.recipes, args.data_dir)
    ceiling = measure_ceiling()
    for name in args.recipes:
        for seed in args.seeds:
            r = time_run(name, seed, args.threads, args.data_dir, isa_limit=args.isa_limit)
            append_record(args.log, r)
            print(f"{name} seed {seed} ({cpu_class(r)}): test {100 * r['test_acc']:.2f}% in "
                  f"{r['wall_s']:.1f} s (train {r['train_s']:.1f} s, others "
                  f"{r['others_cpu'] or 0:.2f} cores)",
                  flush=True)
    body = report(read_records(args.log), ceiling)
    print(body)
    if args.write_doc:
        write_section("time_to_accuracy", body)


if __name__ == "__main__":
    main()
