"""The chapter's original results: the ConvNetJS confusion summaries (``*_summary_*.json``) that
the ml4a confusion-matrix demo draws, in the form of convscope's confusion output.

A summary holds ``confusion[actual][predicted]``, ``tops[actual][predicted]`` (``{idx, prob}``
sorted by prob, complete for cells of at most 64 samples), ``actuals``, ``predictions``,
``correct`` and ``total``. ``idx`` counts images in the official order, training images first
(MNIST: 0-59,999 train, 60,000+ test; CIFAR-10: 0-49,999 train, 50,000+ test).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from convscope.data import DATASETS, Dataset, load_dataset, resolve_data_dir
from convscope.errors import DataError
from convscope.evaluate import Evaluation

FOLDER = "ml4a"  # below the data directory
TRAIN_SIZE = DATASETS.view(lambda d: d.splits["train"] if d.kind == "images" and d.splits
                           else None)  # image sets' official sizes: indices count these first
TITLES = {"mnist_summary_2layers": "MNIST ordinary", "mnist_summary_convnet": "MNIST convnet",
          "cifar10_summary_2layers": "CIFAR ordinary", "cifar10_summary_convnet": "CIFAR convnet"}
# The snapshot that reproduces a summary exactly (checked by tests/test_convnetjs_chapter.py);
# the networks behind the other summaries are not in the ml4a repository.
NETWORKS = {"cifar10_summary_convnet": "cifar10_snapshot_convnet.json"}
NOTES = {"mnist_summary_convnet": "sample 50000 (a 3, predicted 3) is recorded as actual 6 by "
                                  "the demo's label lookup bug: 9,782 were really correct"}


@dataclass(frozen=True)
class ChapterSummary:
    """One summary file, checked. ``samples``: the global indices it evaluated (the range its
    ``tops`` span; None when they do not span exactly ``total`` indices)."""

    name: str
    dataset: str
    confusion: list[list[int]]
    tops: list[list[list[dict]]]
    correct: int
    total: int
    samples: range | None

    @property
    def classes(self) -> list[str]:
        return list(DATASETS[self.dataset].classes)

    def split_of(self, index: int) -> tuple[str, int]:
        """("train" | "test", index within that split) of a global sample index."""
        train = TRAIN_SIZE[self.dataset]
        return ("train", index) if index < train else ("test", index - train)


def read_summary(path: str | os.PathLike) -> ChapterSummary:
    """Read and check ``<mnist|cifar10>_summary_<name>.json`` (DataError naming the file)."""
    path = Path(path)
    dataset = path.name.split("_", 1)[0]
    if dataset not in TRAIN_SIZE:
        raise DataError(f"{path}: a summary's file name starts with "
                        f"{' or '.join(name + '_' for name in TRAIN_SIZE)}")
    k = len(DATASETS[dataset].classes)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        confusion, tops = data["confusion"], data["tops"]
        correct, total = int(data["correct"]), int(data["total"])
        entries = [(int(e["idx"]), float(e["prob"])) for row in tops for cell in row for e in cell]
        square = [len(confusion), len(tops), *map(len, confusion), *map(len, tops)] == \
            [k] * (2 + 2 * k)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a ConvNetJS summary ({type(exc).__name__}: {exc})") from None
    if not square:
        raise DataError(f"{path}: expected a {k}x{k} confusion matrix and {k}x{k} tops")
    if sum(map(sum, confusion)) != total or sum(confusion[i][i] for i in range(k)) != correct:
        raise DataError(f"{path}: 'correct'/'total' disagree with the confusion matrix")
    indices = [index for index, _ in entries]
    samples = range(min(indices), max(indices) + 1) if indices else None
    if samples is not None and len(samples) != total:
        samples = None
    return ChapterSummary(path.stem, dataset, confusion, tops, correct, total, samples)


def summary_json(summary: ChapterSummary, samples: int | None = 64) -> dict:
    """The summary as convscope's confusion output (``GET /api/models/{id}/confusion``) plus
    ``name``, ``title``, ``network`` (the snapshot that reproduces it, or None), ``samples``
    (``{"first", "last"}`` global indices, or None) and ``note``. Cells list at most
    ``samples`` entries ``{"index", "split", "split_index", "confidence"}``."""
    span = summary.samples
    where = f"images {span.start:,}-{span.stop - 1:,}" if span else "unknown images"
    cells = [[[_entry(summary, e) for e in cell[:samples]] for cell in row]
             for row in summary.tops]
    return {"name": summary.name, "title": TITLES.get(summary.name, summary.name),
            "source": f"the chapter's original results: ConvNetJS summary {summary.name}.json "
                      f"({summary.dataset} {where}, counted training images first)",
            "dataset": summary.dataset, "network": NETWORKS.get(summary.name),
            "samples": {"first": span.start, "last": span.stop - 1} if span else None,
            "note": NOTES.get(summary.name),
            **Evaluation(summary.classes, summary.confusion, [], []).to_dict(), "cells": cells}


def _entry(summary: ChapterSummary, entry: dict) -> dict:
    split, index = summary.split_of(entry["idx"])
    return {"index": entry["idx"], "split": split, "split_index": index,
            "confidence": entry["prob"]}


def chapter_summaries(data_dir: str | os.PathLike | None = None,
                      samples: int | None = 64) -> list[dict]:
    """:func:`summary_json` of every ``<data_dir>/ml4a/*_summary_*.json`` ([] when none)."""
    folder = resolve_data_dir(data_dir) / FOLDER
    return [summary_json(read_summary(p), samples)
            for p in sorted(folder.glob("*_summary_*.json"))]


def summary_dataset(summary: ChapterSummary, data_dir: str | os.PathLike | None = None
                    ) -> Dataset:
    """The images the summary evaluated, in its order, with their true labels (for a live
    computation on the same samples)."""
    if summary.samples is None:
        raise DataError(f"{summary.name}: its samples cannot be told from its tops")
    start, stop, train = summary.samples.start, summary.samples.stop, TRAIN_SIZE[summary.dataset]
    parts = []
    if start < train:
        full = load_dataset(summary.dataset, "train", data_dir=data_dir)
        parts.append((full.images[start:min(stop, train)], full.labels[start:min(stop, train)]))
    if stop > train:
        full = load_dataset(summary.dataset, "test", data_dir=data_dir)
        first = max(start - train, 0)
        parts.append((full.images[first:stop - train], full.labels[first:stop - train]))
    images = torch.cat([images for images, _ in parts])
    labels = torch.cat([labels for _, labels in parts])
    return Dataset(f"{summary.dataset}-{summary.name}", images, labels, summary.classes)
