"""Test accuracy and wall time of the chapter's networks, trained by convscope on real data.

Each model is trained ``--repeats`` times (seeds 0, 1, 2, ...) with its registry recipe, on the
official training set minus a 10% validation split; accuracy is on the official test set.
Writes the "train_accuracy" section of docs/benchmarks.md.

    python benchmarks/train_accuracy.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _report import append_record, command_line, machine, median, read_records, write_section

import convscope
from convscope.registry import get_model_entry

DEFAULT_MODELS = ["mnist-templates", "mnist-ordinary", "mnist-convnetjs", "lenet5", "mnist-fast",
                  "cifar10-templates", "cifar10-ordinary", "cifar10-mlp", "cifar10-convnetjs",
                  "cifar10-fast"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with mnist/ and cifar-10-batches-bin/")
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log", default="benchmarks/train_accuracy.jsonl",
                        help="every finished run is appended here (JSON lines)")
    args = parser.parse_args()

    for name in args.models:
        entry = get_model_entry(name)
        for seed in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                load_before = os.getloadavg()[0]
                start = time.perf_counter()
                run = convscope.train(name, entry.dataset, out=Path(tmp) / "run", seed=seed,
                                      data_dir=args.data_dir, progress=False)
                wall = time.perf_counter() - start
            acc = run.results["test"]["accuracy"]
            record = {"model": name, "dataset": entry.dataset, "seed": seed, "test_acc": acc,
                      "wall_s": wall, "load_avg": max(load_before, os.getloadavg()[0]),
                      "config": run.config.to_dict(), "machine": machine(),
                      "precision": run.results.get("environment", {}).get("precision"),
                      "command": command_line()}
            append_record(args.log, record)
            print(f"{name} seed {seed}: test {100 * acc:.2f}% in {wall:.0f} s", flush=True)
    body = report(Path(args.log), args.repeats)
    print(body)
    write_section("train_accuracy", body)


def _settings(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("seed", "data_dir")}


def report(log: Path, repeats: int) -> str:
    """Markdown table over the log: per model, its latest ``repeats`` runs with its latest
    settings (older runs stay in the log)."""
    records = read_records(log)
    latest: dict[str, dict] = {}
    for record in records:
        latest[record["model"]] = record
    rows, machines, commands = [], set(), set()
    for name in [m for m in DEFAULT_MODELS if m in latest] + \
            [m for m in latest if m not in DEFAULT_MODELS]:
        settings = _settings(latest[name]["config"])
        runs = [r for r in records
                if r["model"] == name and _settings(r["config"]) == settings][-repeats:]
        accs = [r["test_acc"] for r in runs]
        walls = [r["wall_s"] for r in runs]
        loads = [r["load_avg"] for r in runs if "load_avg" in r]
        load = f"{max(loads):.1f}" if loads else "not recorded"
        machines.update(r["machine"] for r in runs)
        commands.update(r["command"] for r in runs)
        c = settings
        precision = runs[-1].get("precision") or c["precision"]  # as computed (older: as set)
        budget = (f"{c['epochs']} ep, bs {c['batch_size']}, {c['optimizer']} lr {c['lr']:g} "
                  f"{c['schedule']}, aug {c['augment']}, {precision}")
        rows.append(f"| {name} | {latest[name]['dataset']} | {budget} | {len(runs)} "
                    f"| {100 * median(accs):.2f} | {100 * min(accs):.2f} - {100 * max(accs):.2f} "
                    f"| {median(walls):.0f} | {load} |")
    return "\n".join([
        "## Test accuracy after a fixed budget (`benchmarks/train_accuracy.py`)",
        "",
        "Machine: " + "; ".join(sorted(machines)) + ".",
        "Commands: " + ", ".join(f"`{c}`" for c in sorted(commands)) + ". "
        "Each run (seeds 0, 1, 2, ...) trains with the model's registry recipe on the official "
        "training set less a 10% validation split and is scored on the official test set "
        "(10,000 images). Wall time includes data loading and evaluation; \"max load\" is the "
        "highest 1-minute load average seen at the start or end of a run (2 cores: above 2, "
        "other work shared the machine and the wall times are longer than on an idle one). "
        f"Every run is logged in `{log.as_posix()}`.",
        "",
        "| model | data | budget | runs | median test acc % | range % | median wall s "
        "| max load |",
        "|---|---|---|---:|---:|---:|---:|---:|",
        *rows,
    ])

if __name__ == "__main__":
    main()
