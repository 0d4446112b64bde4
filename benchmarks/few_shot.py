"""Few-shot learning on the default features: how well does "train your own" (the Live page's
Teach panel, ``convscope.live.Teacher``) learn images the feature network never trained on?

1. Choosing, on MNIST *training* digits only: a pool of training digits (seeded); each draw
   records 5, 10 or 20 of them per class and scores the k-NN on the rest of the pool. Compared:
   where the features come from (the first layer output at each resolution of the network,
   pooled to a grid as ``convscope.live.features.pooled`` does, global average and maximum,
   the layer before the classifier: ml4a's choice) and the k-NN's k and scaling. The rule
   ``convscope.live.features.default_features`` and the k-NN's defaults
   (``convscope.live.learners.KNN``) were set from this table; it is printed again here so
   that a changed network shows whether they still win.
2. Scoring, on the official MNIST *test* digits, with what users get (the defaults): 5, 10 or
   20 test digits per class recorded (several draws), the learner scored on all the other test
   digits, next to the 784 raw pixels with the same learners.

Each digit is fitted as a webcam frame is (a 28x28 grey picture made the network's view).

    python benchmarks/few_shot.py [--models cifar10-94 RUN_DIR ...] [--draws 10] [--write-doc]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _report import command_line, machine, write_section

from convscope.augment import to_input
from convscope.data import load_dataset
from convscope.live.features import (
    DEFAULT_MODEL,
    before_classifier,
    default_features,
    default_model,
    open_features,
    pooled,
    pooled_size,
)
from convscope.live.learners import DEFAULT_K, KNN, SCALES, LogisticRegression
from convscope.probes import node_outputs

SHOTS = (5, 10, 20)
POOL = 3000  # training digits the choice is made on
VALIDATION_DRAWS = 5
KNN_GRID = [(k, scale) for scale in SCALES for k in (1, 3, 5)]
LEARNERS = {"k-NN": KNN, "logistic regression": LogisticRegression}
RAW = "raw pixels"


def candidates(nodes) -> dict[str, tuple]:
    """Feature choices compared on validation: the default first, then the first output at
    each resolution (grid-pooled), the default node globally pooled, the layer before the
    classifier (flat)."""
    node, pooling = default_features(nodes)
    found = {"default": (node, pooling)}
    seen = set()
    for n in nodes[1:]:
        side = (n.out_volume.sx, n.out_volume.sy)
        if side not in seen and side != (1, 1):
            seen.add(side)
            found.setdefault(f"stage {side[0]}x{side[1]}", (n, "grid"))
    found["default node, global average"] = (node, "avg")
    found["default node, global maximum"] = (node, "max")
    found["layer before the classifier"] = (before_classifier(nodes), "flat")
    return {k: v for i, (k, v) in enumerate(found.items())
            if i == 0 or v != found["default"]}


def features(extractor, images: np.ndarray, wanted: list[tuple]) -> list[np.ndarray]:
    """The features of uint8 (N, 1, 28, 28) digits for each (node, pooling) of ``wanted``, from
    one forward pass per batch."""
    indices = sorted({node.index for node, _ in wanted})
    parts: list[list[np.ndarray]] = [[] for _ in wanted]
    for start in range(0, len(images), 500):
        x = to_input(extractor.fit(list(images[start:start + 500, 0])))
        with torch.inference_mode():
            found, _ = node_outputs(extractor.model, x, indices)
        for part, (node, pooling) in zip(parts, wanted, strict=True):
            part.append(pooled(found[node.index], pooling).numpy())
    return [np.concatenate(part) for part in parts]


def score(x: np.ndarray, y: np.ndarray, shots: int, draws: int, make, seed: int = 1000
          ) -> list[float]:
    """Accuracy on the rest of ``x``, per draw of ``shots`` recorded examples per class."""
    results = []
    for draw in range(draws):
        rng = np.random.default_rng(seed + draw)
        chosen = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False)
                                 for c in range(10)])
        rest = np.setdiff1d(np.arange(len(y)), chosen)
        learner = make().fit(x[chosen], y[chosen], 10)
        predicted = np.concatenate([learner.proba(x[rest[i:i + 2000]]).argmax(1)
                                    for i in range(0, len(rest), 2000)])
        results.append(float((predicted == y[rest]).mean()))
    return results


def row(name: str, x: np.ndarray, y: np.ndarray, draws: int, make, seed: int) -> dict:
    found = {"name": name, "values": x.shape[1],
             **{s: score(x, y, s, draws, make, seed) for s in SHOTS}}
    print(name, {s: round(100 * float(np.mean(found[s])), 1) for s in SHOTS}, flush=True)
    return found


def validate(model: str, images: np.ndarray, labels: np.ndarray) -> dict:
    """The validation tables of one model on the training pool: feature choices (with the
    default k-NN) and k-NN settings (on the default features and on raw pixels)."""
    extractor, source = open_features(model)
    chosen = candidates(extractor.nodes)
    xs = features(extractor, images, list(chosen.values()))
    raw = images.reshape(len(images), -1).astype(np.float32)
    rows = [row(f"{label}: `{node.name}` ({node.out_volume}), {pooling}", x, labels,
                VALIDATION_DRAWS, KNN, 100) for (label, (node, pooling)), x in
            zip(chosen.items(), xs, strict=True)]
    rows.append(row(RAW, raw, labels, VALIDATION_DRAWS, KNN, 100))
    knn = [row(f"{what}, k = {k}, {scale}", x, labels, VALIDATION_DRAWS,
               lambda k=k, scale=scale: KNN(k, scale), 100)
           for what, x in (("default features", xs[0]), (RAW, raw)) for k, scale in KNN_GRID]
    return {"source": source, "features": rows, "knn": knn}


def scores_on_test(model: str, images: np.ndarray, labels: np.ndarray, draws: int) -> dict:
    """The test digits: the default features (k-NN and logistic regression) and the layer
    before the classifier (k-NN), with the learners' defaults."""
    extractor, source = open_features(model)
    start = time.process_time()
    default, before = features(extractor, images, [default_features(extractor.nodes),
                                                   (before_classifier(extractor.nodes), "flat")])
    cpu = time.process_time() - start
    name = f"`{source['layer']}` of `{source['model']}`, {source['pooling']} ({source['size']})"
    rows = [{**row(name, default, labels, draws, make, 1000), "learner": learner}
            for learner, make in LEARNERS.items()]
    node = before_classifier(extractor.nodes)
    rows.append({**row(f"`{node.name}` of `{source['model']}`, the layer before the "
                       f"classifier ({pooled_size(node.out_volume, 'flat')})", before, labels,
                       draws, KNN, 1000), "learner": "k-NN"})
    return {"source": source, "rows": rows, "cpu": cpu}


def cell(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f}% ± {100 * np.std(values):.1f}"


def mean_of(r: dict) -> float:
    return float(np.mean([np.mean(r[s]) for s in SHOTS]))


def validation_text(found: dict) -> list[str]:
    model = found["source"]["model"]
    shots = " | ".join(f"{s} per class" for s in SHOTS)
    lines = [f"**`{model}`**, features (k-NN with its defaults):", "",
             f"| features | values | {shots} |", "|---|---|" + "---|" * len(SHOTS)]
    lines += [f"| {r['name']} | {r['values']} | " + " | ".join(cell(r[s]) for s in SHOTS)
              + " |" for r in found["features"]]
    lines += ["", f"**`{model}`**, the k-NN (k lowered to the class size where larger):", "",
              f"| k-NN on | {shots} |", "|---|" + "---|" * len(SHOTS)]
    lines += [f"| {r['name']} | " + " | ".join(cell(r[s]) for s in SHOTS) + " |"
              for r in found["knn"]]
    best_features = max(found["features"], key=mean_of)
    best_knn = max((r for r in found["knn"] if not r["name"].startswith(RAW)), key=mean_of)
    default_knn = f"default features, k = {DEFAULT_K}, centre"
    knn_default = next(r for r in found["knn"] if r["name"] == default_knn)
    lines += ["", f"Mean over {', '.join(map(str, SHOTS))} per class: the best features here "
              f"are {best_features['name']} ({100 * mean_of(best_features):.1f}%; the default "
              f"{100 * mean_of(found['features'][0]):.1f}%); the best k-NN is "
              f"{best_knn['name']} ({100 * mean_of(best_knn):.1f}%; the default "
              f"{100 * mean_of(knn_default):.1f}%).", ""]
    return lines


def report(raw: list[dict], valid: list[dict], tests: list[dict], draws: int) -> str:
    shots = " | ".join(f"{s} per class" for s in SHOTS)
    lines = ["## Few-shot learning on the default features (`benchmarks/few_shot.py`)", "",
             "Train your own (the Live page's panel, `convscope.live.Teacher`) on images the "
             "feature network never saw: MNIST digits, each a grey 28x28 frame of which the "
             "network sees its own view (32x32x3 for the CIFAR-10 nets). The features are "
             "`convscope.live.features.default_features`: where the network's last conv stage "
             "begins (the first layer output at the resolution of its last conv layer's input), "
             f"flattened, or average-pooled to a grid where that gives more than 4,096 values; "
             f"the k-NN: k = {DEFAULT_K}, cosine distance on features centred on the recorded "
             "examples' mean. Both were chosen on MNIST **training** digits (first tables) and "
             "only then scored on the **test** digits (last table). Accuracy: mean ± standard "
             "deviation over the draws.", "",
             f"### Choosing on training digits ({POOL} random training digits; each of "
             f"{VALIDATION_DRAWS} draws records 5, 10 or 20 of them per class and scores the "
             "rest)", ""]
    for found in valid:
        lines += validation_text(found)
    lines += across(valid)
    lines += [f"### Test digits ({draws} draws of 5, 10 or 20 official test digits per class "
              "recorded, scored on all the other test digits)", "",
              f"| features | learner | {shots} |", "|---|---|" + "---|" * len(SHOTS)]
    for r in raw + [r for t in tests for r in t["rows"]]:
        lines.append(f"| {r['name']} | {r['learner']} | " + " | ".join(cell(r[s]) for s in SHOTS)
                     + " |")
    raw_knn = np.mean(next(r for r in raw if r["learner"] == "k-NN")[10])
    raw_best = max(np.mean(r[10]) for r in raw)
    lines += [""] + [f"At 10 examples per class, k-NN on the default features of "
                     f"`{t['source']['model']}`: {100 * np.mean(t['rows'][0][10]):.1f}% against "
                     f"{100 * raw_knn:.1f}% on raw pixels (best raw-pixel figure "
                     f"{100 * raw_best:.1f}%); logistic regression "
                     f"{100 * np.mean(t['rows'][1][10]):.1f}%." for t in tests]
    lines += [""] + notes([t["source"] for t in tests]) + [
        f"Command: `{command_line()}`. Machine: {machine()}. Computing the 10,000 test digits' "
        "features took " + ", ".join(f"{t['cpu']:.0f} s of CPU time (`{t['source']['model']}`)"
                                     for t in tests) + " (a shared machine)."]
    return "\n".join(lines)


def across(valid: list[dict]) -> list[str]:
    """The k-NN settings on the default features ranked by their mean over every model."""
    if len(valid) < 2:
        return []
    names = [r["name"] for r in valid[0]["knn"] if not r["name"].startswith(RAW)]
    means = {name: np.mean([mean_of(next(r for r in v["knn"] if r["name"] == name))
                            for v in valid]) for name in names}
    ranked = sorted(means, key=means.get, reverse=True)[:3]
    return [f"Over the {len(valid)} models (mean of their means), the best k-NN settings on "
            "the default features: " + "; ".join(
                f"{name.removeprefix('default features, ')} {100 * means[name]:.1f}%"
                for name in ranked) + f" (the default, k = {DEFAULT_K}, centre: "
            f"{100 * means[f'default features, k = {DEFAULT_K}, centre']:.1f}%).", ""]


def notes(sources: list[dict]) -> list[str]:
    lines = []
    for source in sources:
        run = Path(source["model"])
        if run.is_dir() and not (run / "results.json").exists():
            epochs = len((run / "metrics.jsonl").read_text().splitlines()) \
                if (run / "metrics.jsonl").exists() else 0
            lines += [f"`{run}` is an unfinished run (stopped after {epochs} epochs): its "
                      "features are those of a partly trained network.", ""]
    if default_model() != DEFAULT_MODEL:
        lines += [f"`{DEFAULT_MODEL}` was not bundled when this ran: the default feature "
                  f"network was `{default_model()}`.", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[None], metavar="MODEL",
                        help=f"bundled models or run directories (default: {default_model()})")
    parser.add_argument("--draws", type=int, default=10, help="draws on the test digits")
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    models = [str(m or default_model()) for m in args.models]
    train = load_dataset("mnist", "train")
    pick = np.random.default_rng(7).choice(len(train.labels), POOL, replace=False)
    pool, pool_labels = np.asarray(train.images)[pick], np.asarray(train.labels)[pick]
    valid = [validate(model, pool, pool_labels) for model in models]
    test = load_dataset("mnist", "test")
    images, labels = np.asarray(test.images), np.asarray(test.labels)
    pixels = images.reshape(len(images), -1).astype(np.float32)
    raw = [{**row("raw pixels (784)", pixels, labels, args.draws, make, 1000), "learner": name}
           for name, make in LEARNERS.items()]
    tests = [scores_on_test(model, images, labels, args.draws) for model in models]
    text = report(raw, valid, tests, args.draws)
    print(text)
    if args.write_doc:
        write_section("few-shot", text)


if __name__ == "__main__":
    main()
