"""Few-shot learning on the default features: how well does "train your own" (k-NN on a
feature network's layer, as the live page's Teach panel trains it) learn images the feature
network never trained on?

The recorded set is 5, 10 or 20 official MNIST *test* digits per class (drawn at random,
several draws); the learner is scored on all the other test digits. Features: the layer before
the classifier of the feature network (``convscope.live.teacher.default_layer``: ml4a's
choice), each digit fitted as a webcam frame is (a 28x28 grey picture made the network's
32x32x3 view); baseline: the 784 raw pixels with the same learner. The learners are those of
``convscope.live.learners`` with their defaults (k-NN: k=5 lowered to the class size, cosine
distance; logistic regression), never tuned on these digits.

    python benchmarks/few_shot.py [--models cifar10-94 RUN_DIR ...] [--draws 10] [--write-doc]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _report import command_line, machine, write_section

from convscope.data import load_dataset
from convscope.live.features import default_model, open_features
from convscope.live.learners import KNN, LogisticRegression

SHOTS = (5, 10, 20)
LEARNERS = {"k-NN": KNN, "k-NN, unscaled": lambda: KNN(scale=False),
            "logistic regression": LogisticRegression}


def features_of(images: np.ndarray, model: str | None, layer: str | None) -> tuple:
    """(features (N, D), source) of uint8 (N, 1, 28, 28) digits, in batches."""
    extractor, source = open_features(model, layer)
    pictures = images[:, 0]
    parts = [extractor(list(pictures[i:i + 500])) for i in range(0, len(pictures), 500)]
    return np.concatenate(parts), source


def score(x: np.ndarray, y: np.ndarray, shots: int, draws: int, learner: str) -> list[float]:
    """Accuracy on the rest of the digits, per draw of ``shots`` recorded digits per class."""
    results = []
    for draw in range(draws):
        rng = np.random.default_rng(1000 + draw)
        chosen = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False)
                                 for c in range(10)])
        rest = np.setdiff1d(np.arange(len(y)), chosen)
        model = LEARNERS[learner]()
        model.fit(x[chosen], y[chosen], 10)
        predicted = np.concatenate([model.proba(x[rest[i:i + 2000]]).argmax(1)
                                    for i in range(0, len(rest), 2000)])
        results.append(float((predicted == y[rest]).mean()))
    return results


def measure(models: list[str | None], layer: str | None, draws: int
            ) -> tuple[list[dict], list[dict], list[float]]:
    test = load_dataset("mnist", "test")
    images, labels = np.asarray(test.images), np.asarray(test.labels)
    inputs = {"raw pixels (784)": images.reshape(len(images), -1).astype(np.float32)}
    sources, cpu = [], []
    for model in models:
        start = time.process_time()
        features, source = features_of(images, model, layer)
        cpu.append(time.process_time() - start)
        sources.append(source)
        inputs[f"`{source['layer']}` of `{source['model']}` ({source['size']})"] = features
    rows = []
    for name, x in inputs.items():
        for learner in LEARNERS:
            row = {"features": name, "learner": learner}
            for shots in SHOTS:
                row[shots] = score(x, labels, shots, draws, learner)
            rows.append(row)
            print(row["features"], learner, {s: round(float(np.mean(row[s])), 4) for s in SHOTS},
                  flush=True)
    return rows, sources, cpu


def report(rows: list[dict], sources: list[dict], draws: int, cpu: list[float]) -> str:
    fallback = all(source["model"] != "cifar10-94" for source in sources)
    named = ", ".join(f"`{s['model']}` (`{s['layer']}`, {s['size']} values)" for s in sources)
    lines = ["## Few-shot learning on the default features (`benchmarks/few_shot.py`)", "",
             "Train your own (the Live page's panel, `convscope.live.Teacher`) on images the "
             "feature network never saw: 5, 10 or 20 official MNIST test digits per class as "
             f"the recorded set ({draws} random draws), the learner scored on the other test "
             "digits (about 9,800-9,950). Features: the layer before the classifier of "
             f"{named}; each digit is a grey 28x28 frame, of which the network sees a 32x32x3 "
             "view. Baseline: the 784 raw pixels. The learners have their defaults (k-NN: k = 5, "
             "cosine distance on standardised inputs, the standardising chosen on MNIST "
             "*training* digits, where it helped features and not pixels, hence the unscaled "
             "rows; logistic regression: L-BFGS on standardised inputs). Accuracy: mean and "
             "standard deviation over the draws.", ""]
    for source in sources:
        run = Path(source["model"])
        if run.is_dir() and not (run / "results.json").exists():
            epochs = len((run / "metrics.jsonl").read_text().splitlines()) \
                if (run / "metrics.jsonl").exists() else 0
            lines += [f"`{run}` is an unfinished run (stopped after {epochs} epochs): its "
                      "features are those of a partly trained network.", ""]
    if fallback:
        lines += ["The `cifar10-94` network was not bundled when this ran: the fallback "
                  f"`{sources[0]['model']}` gave the features.", ""]
    lines += ["| features | learner | " + " | ".join(f"{s} per class" for s in SHOTS) + " |",
              "|---|---|" + "---|" * len(SHOTS)]
    for r in rows:
        lines.append(f"| {r['features']} | {r['learner']} | " + " | ".join(
            f"{100 * np.mean(r[s]):.1f}% ± {100 * np.std(r[s]):.1f}" for s in SHOTS) + " |")
    raw = {r["learner"]: np.mean(r[10]) for r in rows if r["features"].startswith("raw")}
    best = max((r for r in rows if not r["features"].startswith("raw")),
               key=lambda r: np.mean(r[10]) - raw[r["learner"]])
    lines += ["", f"At 10 examples per class, the best features against raw pixels with the "
              f"same learner: {best['features']} with {best['learner']}, "
              f"{100 * np.mean(best[10]):.1f}% against {100 * raw[best['learner']]:.1f}%; "
              f"the best raw-pixel figure is {100 * max(raw.values()):.1f}%."]
    lines += ["", f"Command: `{command_line()}`. Machine: {machine()}. Computing the 10,000 "
              "digits' features took " + ", ".join(
                  f"{c:.0f} s of CPU time (`{s['model']}`)" for c, s in zip(cpu, sources,
                                                                           strict=True))
              + " (a shared machine)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[None], metavar="MODEL",
                        help=f"bundled models or run directories (default: {default_model()})")
    parser.add_argument("--layer", default=None, help="default: the layer before the classifier")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows, sources, cpu = measure(args.models, args.layer, args.draws)
    text = report(rows, sources, args.draws, cpu)
    print(text)
    if args.write_doc:
        write_section("few-shot", text)


if __name__ == "__main__":
    main()
