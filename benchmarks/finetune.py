"""Fine-tuning the bundled CIFAR-10 convnet on digits it never saw, against training the same
network from scratch at the same budget.

The benchmark writes an image folder of real MNIST digits (classes 0-4) rendered as RGB
32x32 PNGs (each 28x28 digit centred on a 32x32 black square, in all three channels):
``train/`` holds ``--per-class`` images per class from MNIST's training set, ``test/`` every
official MNIST test image of those classes. ``cifar10-convnetjs`` (bundled, trained on CIFAR-10
only) is then trained on it three ways, with the same settings and number of steps:

- fine-tuned: ``init_from=cifar10-convnetjs`` (its weights, a fresh 5-way output layer),
- frozen features: the same with ``freeze="features"`` (only the output layer learns),
- from scratch: ``model=cifar10-convnetjs`` (its architecture, sized to 5 classes, fresh).

The learning rate of each is chosen from ``LEARNING_RATES`` on the validation split (10% of the
training images, seed 0); the test images are scored only with the chosen rate, for
``--seeds`` seeds. Writes the "finetune" section of docs/benchmarks.md with ``--write-doc``.

    python benchmarks/finetune.py --data-dir ../shared/data --write-doc
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from _report import command_line, machine, median, watched, write_section
from PIL import Image

import convscope

SOURCE = "cifar10-convnetjs"
DIGITS = (0, 1, 2, 3, 4)
LEARNING_RATES = (1e-3, 3e-3, 1e-2)
COMMON = {"epochs": 6, "batch_size": 32, "optimizer": "adam", "schedule": "cosine",
          "augment": "shift", "val_fraction": 0.1, "progress": False}  # no flips: digits
ARMS = {"fine-tuned": {"init_from": SOURCE},
        "frozen features": {"init_from": SOURCE, "freeze": "features"},
        "from scratch": {"model": SOURCE}}


def write_folder(root: Path, data_dir: str | None, per_class: int) -> dict[str, int]:
    """The digit folder (see the module's docstring); the number of images per split."""
    counts = {}
    for split, limit in (("train", per_class), ("test", None)):
        data = convscope.load_dataset("mnist", split, data_dir=data_dir)
        labels = data.labels.numpy()
        counts[split] = 0
        for digit in DIGITS:
            chosen = np.flatnonzero(labels == digit)[:limit]  # the files' order: no choosing
            folder = root / split / str(digit)
            folder.mkdir(parents=True)
            for i in chosen:
                square = np.zeros((32, 32, 3), np.uint8)
                square[2:30, 2:30] = data.images[i, 0].numpy()[..., None]
                Image.fromarray(square).save(folder / f"{i}.png")
            counts[split] += len(chosen)
    return counts


def train(arm: str, folder: Path, out: Path, lr: float, seed: int) -> dict:
    """One run of ``arm``: its validation and test accuracy and wall time."""
    settings = {**COMMON, **ARMS[arm]}
    run, load = watched(lambda: convscope.train(data=str(folder), out=out, lr=lr, seed=seed,
                                                **settings))
    record = {"arm": arm, "lr": lr, "seed": seed, "val": run.results["val"]["accuracy"],
              "test": run.results["test"]["accuracy"], **load,
              "precision": run.results["environment"]["precision"],
              "train_examples": run.data_info["train"]}
    print(f"{arm}, lr {lr:g}, seed {seed}: val {100 * record['val']:.2f}%, test "
          f"{100 * record['test']:.2f}% ({load['wall_s']:.0f} s)", flush=True)
    return record


def measure(folder: Path, out: Path, seeds: int) -> dict[str, dict]:
    """Per arm: the validation accuracy of every learning rate (seed 0), the chosen rate and
    the test accuracy of each seed at that rate."""
    results = {}
    for arm in ARMS:
        tuning = [train(arm, folder, out / f"{arm}-lr{lr:g}-s0", lr, 0) for lr in LEARNING_RATES]
        best = max(tuning, key=lambda r: r["val"])  # ties: the lower rate (listed first)
        runs = [best] + [train(arm, folder, out / f"{arm}-lr{best['lr']:g}-s{seed}",
                               best["lr"], seed) for seed in range(1, seeds)]
        results[arm] = {"tuning": tuning, "lr": best["lr"], "runs": runs}
    return results


def report(results: dict[str, dict], counts: dict[str, int], seeds: int) -> str:
    rows = []
    for arm, result in results.items():
        tests = [r["test"] for r in result["runs"]]
        tuning = ", ".join(f"{r['lr']:g}: {100 * r['val']:.1f}" for r in result["tuning"])
        rows.append(f"| {arm} | {tuning} | {result['lr']:g} | **{100 * median(tests):.2f}** | "
                    f"{', '.join(f'{100 * t:.2f}' for t in tests)} | "
                    f"{median([r['wall_s'] for r in result['runs']]):.0f} |")
    precision = results["fine-tuned"]["runs"][0]["precision"]
    train_n = results["fine-tuned"]["runs"][0]["train_examples"]
    epochs, batch = COMMON["epochs"], COMMON["batch_size"]
    return "\n".join([
        "## Fine-tuning (`benchmarks/finetune.py`)",
        "",
        f"`{SOURCE}` (bundled; trained on CIFAR-10 only) fine-tuned on real MNIST digits "
        f"{DIGITS[0]}-{DIGITS[-1]} it never saw, rendered as RGB 32x32 PNGs in an image folder "
        f"({counts['train']} training images from MNIST's training set, {train_n} trained on "
        f"and the rest held out for validation; scored on all {counts['test']} official MNIST "
        "test images of those digits), against the same network trained from scratch. Every "
        f"arm: {epochs} epochs of batch {batch}, adam, cosine schedule, augment shift, "
        f"{precision}; the learning rate of each chosen on the validation split (seed 0), "
        f"then {seeds} seeds at that rate scored on the test images.",
        "",
        "| arm | validation accuracy % per lr (seed 0) | lr | test accuracy % (median) | "
        "per seed | wall s (median) |",
        "|---|---|--:|--:|---|--:|",
        *rows,
        "",
        "fine-tuned: `--init-from cifar10-convnetjs` (its weights, a fresh 5-way output layer); "
        "frozen features: also `--freeze features` (only the output layer learns); from "
        "scratch: `--model cifar10-convnetjs` (sized to 5 classes, fresh weights). Accuracy "
        "is what this measures; the wall times are from a shared, noisy machine.",
        "",
        f"Machine: {machine()}.",
        f"Command: `{command_line()}`.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder with mnist/ (default: $CONVSCOPE_DATA)")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CONVSCOPE_CACHE"] = str(Path(tmp) / "cache")  # the folder's decoded cache
        folder = Path(tmp) / "digits-rgb"
        counts = write_folder(folder, args.data_dir, args.per_class)
        results = measure(folder, Path(tmp) / "runs", args.seeds)
    body = report(results, counts, args.seeds)
    print(body)
    if args.write_doc:
        write_section("finetune", body)


if __name__ == "__main__":
    main()
