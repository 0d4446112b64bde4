"""The chapter's applications, trained by convscope with each model's registered recipe and
scored on its test set: localization (mnist-localizer), detection (mnist-yolo), segmentation
(mnist-unet) and spoken digits (fsdd-convnet, on the official split and held out per speaker).

Each run is watched for other processes' load and appended to ``--log`` (JSON lines), so the
tasks can be measured in separate invocations; the table gives, per task and data set, the
median over the latest run of each seed with the latest settings. Detection also reports
frames per second on this CPU (forward + decode + NMS, 2 torch threads). Prints a markdown
section; ``--write-doc`` writes it as "applications" in docs/benchmarks.md.

    python benchmarks/applications.py --data-dir ../shared/data --write-doc
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _report import (
    append_record,
    command_line,
    latest_per_seed,
    machine,
    median,
    read_records,
    watched,
    write_section,
)

import convscope
from convscope.data.fsdd import FOLDER as FSDD_FOLDER
from convscope.data.fsdd import speakers
from convscope.data.paths import resolve_data_dir
from convscope.device import autocast_for
from convscope.registry import get_model_entry
from convscope.scenes import scene_dataset
from convscope.tasks import get_task

MODELS = {"localize": "mnist-localizer", "detect": "mnist-yolo", "segment": "mnist-unet",
          "audio": "fsdd-convnet"}
QUICK = {"scenes": 400, "test_scenes": 100, "epochs": 1}  # --quick: a smoke run, not a result
FPS_THREADS = 2
FPS_PASSES = {1: 30, 32: 10}  # timed passes per batch size, after one warm-up pass


def _examples_per_s(run: convscope.Run) -> float:
    """Training examples per second over all epochs (the trainer's own clock)."""
    seconds = sum(line["seconds"] for line in run.metrics)
    examples = sum(line["examples_per_s"] * line["seconds"] for line in run.metrics)
    return examples / max(seconds, 1e-9)


def _headline(task: str, test: dict) -> dict:
    if task == "localize":
        return {"accuracy": test["accuracy"], "mean_iou": test["mean_iou"]}
    if task == "detect":
        return {"map50": test["map50"], "ap50_min": min(a for a in test["ap50"] if a is not None)}
    if task == "segment":
        return {"miou": test["miou"], "iou_min": min(v for v in test["iou"] if v is not None)}
    return {"accuracy": test["accuracy"]}


def detection_fps(model: torch.nn.Module, data_dir: str | None, precision: str) -> dict:
    """Frames per second of ``predict`` (forward, decode, NMS) at batch 1 and 32 in the run's
    ``precision``, each the median of ``FPS_PASSES`` timed passes over test scenes after a
    warm-up pass."""
    images = scene_dataset("detect", "test", max(FPS_PASSES), data_dir=data_dir).images
    task, threads = get_task("detect"), torch.get_num_threads()

    def predict(batch: torch.Tensor) -> None:
        with autocast_for(precision, model):  # as the run is scored
            task.predict(model, batch)

    torch.set_num_threads(FPS_THREADS)
    try:
        fps = {}
        for batch, passes in FPS_PASSES.items():
            predict(images[:batch])
            times = []
            for i in range(passes):
                start = time.perf_counter()
                predict(images[i % (len(images) - batch + 1):][:batch])
                times.append(time.perf_counter() - start)
            fps[f"fps_batch{batch}"] = batch / median(times)
        return fps
    finally:
        torch.set_num_threads(threads)


def train_one(task: str, data: str, seed: int, args: argparse.Namespace) -> dict:
    """Train the task's model on ``data`` with its recipe; the record of the run."""
    model = MODELS[task]
    settings = dict(QUICK) if args.quick else {}
    if task == "audio":
        settings.pop("scenes", None)
        settings.pop("test_scenes", None)
    out = Path(args.out) / f"{task}-{data}-seed{seed}"
    run, load = watched(lambda: convscope.train(model, data, out=out, seed=seed,
                                                data_dir=args.data_dir, progress=False,
                                                **settings))
    record = {"task": task, "model": model, "data": data, "seed": seed,
              **_headline(task, run.results["test"]), "train_s": sum(m["seconds"]
                                                                    for m in run.metrics),
              "examples_per_s": _examples_per_s(run), "threads": torch.get_num_threads(),
              **load, "config": run.config.to_dict(), "run": str(out),
              "precision": run.results.get("environment", {}).get("precision")}
    if task == "detect":
        record.update(detection_fps(run.model, args.data_dir, run.config.precision))
    shown = {k: round(v, 4) for k, v in record.items()
             if k in ("accuracy", "mean_iou", "map50", "miou", "wall_s")}
    print(f"{task} {data} seed {seed}: {shown}", flush=True)
    return record


def datasets(task: str, data_dir: str | None) -> list[str]:
    if task != "audio":
        return ["mnist"]
    return ["fsdd", *(f"fsdd-holdout-{s}" for s in speakers(resolve_data_dir(data_dir)
                                                             / FSDD_FOLDER))]


_METRICS = {"localize": [("accuracy", "accuracy %"), ("mean_iou", "mean box IoU")],
            "detect": [("map50", "mAP@0.5"), ("ap50_min", "lowest per-class AP@0.5")],
            "segment": [("miou", "mean IoU (11 classes)"), ("iou_min", "lowest class IoU")],
            "audio": [("accuracy", "accuracy %")]}
_NAMES = {"localize": "localization", "detect": "detection", "segment": "segmentation",
          "audio": "spoken digits"}


def _shown(key: str, value: float) -> str:
    return f"{100 * value:.2f}" if key == "accuracy" else f"{value:.4f}"


def _recipe(config: dict, precision: str | None = None) -> str:
    """The run's settings; ``precision`` as computed where the record has it (older records
    give only the setting)."""
    scenes = f"{config['scenes']} scenes, " if config["task"] != "audio" else ""
    return (f"{scenes}{config['epochs']} ep, bs {config['batch_size']}, {config['optimizer']} "
            f"lr {config['lr']:g} {config['schedule']}, {precision or config['precision']}")


def _rows(task: str, label: str, runs: list[dict], test_set: str) -> list[str]:
    """Table rows of one task on one data set: a row per headline metric."""
    recipe = _recipe(runs[0]["config"], runs[0].get("precision"))
    lead = f"{label} | {runs[0]['model']} | {test_set} | {recipe}"
    timing = (f"{median([r['train_s'] for r in runs]):.0f} "
              f"| {median([r['examples_per_s'] for r in runs]):.0f} "
              f"| {max(r['others_cpu'] or 0 for r in runs):.2f} / "
              f"{max(r['load_avg'] for r in runs):.1f}")
    rows = []
    for key, name in _METRICS[task]:
        values = [r[key] for r in runs]
        rows.append(f"| {lead} | {name} | {len(runs)} | {_shown(key, median(values))} "
                    f"| {_shown(key, min(values))} - {_shown(key, max(values))} | {timing} |")
        lead, timing = "| | |", "| |"
    return rows


def _holdout_runs(records: list[dict]) -> list[dict]:
    """Per seed, one pseudo-run: the mean accuracy over the held-out speakers."""
    by_seed: dict[int, list[dict]] = {}
    for r in records:
        if r["task"] == "audio" and r["data"].startswith("fsdd-holdout-"):
            by_seed.setdefault(r["seed"], []).append(r)
    return [{**group[0], "accuracy": statistics.mean(r["accuracy"] for r in group),
             "train_s": sum(r["train_s"] for r in group),
             "examples_per_s": statistics.mean(r["examples_per_s"] for r in group),
             "others_cpu": max(r["others_cpu"] or 0 for r in group),
             "load_avg": max(r["load_avg"] for r in group), "speakers": len(group)}
            for group in by_seed.values()]


def _settings(record: dict) -> dict:
    return {k: v for k, v in record["config"].items() if k not in ("seed", "data_dir")}


def latest_runs(records: list[dict]) -> list[dict]:
    """Per task and data set: the latest record of each seed among those with the settings of
    the latest record (older settings stay in the log, out of the table)."""
    return latest_per_seed(records, lambda r: (r["task"], r["data"]), _settings)


def _per_speaker(records: list[dict]) -> str:
    """Held-out accuracy per speaker, the median over seeds (empty without holdout runs)."""
    by_speaker: dict[str, list[float]] = {}
    for r in records:
        if r["task"] == "audio" and r["data"].startswith("fsdd-holdout-"):
            by_speaker.setdefault(r["data"].removeprefix("fsdd-holdout-"), []).append(
                r["accuracy"])
    return ", ".join(f"{name} {100 * median(accs):.1f}%"
                     for name, accs in sorted(by_speaker.items()))


def report(records: list[dict], quick: bool) -> str:
    """The markdown section for ``records`` (from :func:`train_one`)."""
    records = latest_runs(records)
    rows = []
    for task in MODELS:
        mine = [r for r in records if r["task"] == task]
        if not mine:
            continue
        main_data = "fsdd" if task == "audio" else "mnist"
        runs = [r for r in mine if r["data"] == main_data]
        cfg = runs[0]["config"]
        test_set = (f"{cfg['test_scenes']:,} test scenes" if task != "audio"
                    else "official test takes 0-4")
        rows += _rows(task, _NAMES[task], runs, test_set)
        holdout = _holdout_runs(mine)
        if holdout:
            rows += _rows(task, "spoken digits, new speaker", holdout,
                          f"each of {holdout[0]['speakers']} speakers held out, mean")
    fps = [r for r in records if "fps_batch1" in r]
    speakers = _per_speaker(records)
    lines = [
        "## Applications (`benchmarks/applications.py`)",
        "",
        *(["**Quick smoke run: tiny budgets, not results.**", ""] if quick else []),
        f"Machine: {machine()}. Command: `{command_line()}`; the runs come from the log "
        "`benchmarks/applications.jsonl`, where each invocation with `--tasks` and `--seeds` "
        "appends its runs. Each run trains the model with its "
        "registry recipe (seeds as listed by \"runs\") and is scored on the test set: scenes "
        "made of MNIST test digits only, FSDD's official test takes, or all clips of a speaker "
        "the model never heard. Median over seeds, range = lowest - highest. Train s is the "
        "trainer's own clock (without data generation and evaluation), examples/s its "
        f"training throughput at {records[0]['threads']} torch threads; load is the CPU cores "
        "other processes kept busy during the run / the highest 1-minute load average (2 "
        "cores: other work slows the run when these are high).",
        "",
        "| application | model | test set | recipe | metric | runs | median | range | train s "
        "| examples/s | load |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    if speakers:
        lines += ["", f"Spoken digits, each speaker held out (median over seeds): {speakers}."]
    if fps:
        lines += [
            "",
            f"Detection speed (mnist-yolo, {FPS_THREADS} torch threads): `predict` on 96x96 test "
            "scenes, forward + decode + NMS, median of "
            f"{FPS_PASSES[1]} (batch 1) / {FPS_PASSES[32]} (batch 32) timed passes after a "
            f"warm-up, median over runs: {median([r['fps_batch1'] for r in fps]):.0f} frames/s "
            f"at batch 1, {median([r['fps_batch32'] for r in fps]):.0f} frames/s at batch 32.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with mnist/ and fsdd/recordings/")
    parser.add_argument("--tasks", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", help="keep every run here (default: a temporary folder)")
    parser.add_argument("--log", default="benchmarks/applications.jsonl",
                        help="every finished run is appended here (JSON lines); the report "
                             "reads it")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK} instead of the recipes' budgets")
    parser.add_argument("--write-doc", action="store_true",
                        help="also write the section into docs/benchmarks.md")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report the runs already in --log")
    args = parser.parse_args()
    if args.report_only:
        args.tasks = []
    for task in args.tasks:
        get_model_entry(MODELS[task])  # fail before hours of training, naming the model
    with tempfile.TemporaryDirectory() as tmp:
        args.out = args.out or tmp
        # a smoke run's records must not replace the measured ones in the table
        log = Path(tmp) / "quick.jsonl" if args.quick else Path(args.log)
        for task in args.tasks:
            for data in datasets(task, args.data_dir):
                for seed in args.seeds:
                    append_record(log, train_one(task, data, seed, args))
        if not log.exists():
            raise SystemExit(f"{log}: no runs logged yet; run without --report-only first")
        records = read_records(log)
    body = report(records, args.quick)
    print(body)
    if args.write_doc:
        write_section("applications", body)


if __name__ == "__main__":
    main()
