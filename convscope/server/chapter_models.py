"""The chapter's own networks: the ConvNetJS snapshots of ``<data dir>/ml4a/`` (the ones the
chapter's demos D1, D2, D3 and L1 drew) offered as models of kind ``chapter``, without running
``convscope import-convnetjs`` first.

Each snapshot is read and checked by :func:`convscope.convnetjs.read_snapshot` (JSON, never
code) when the explorer starts; a bad one is skipped with its reason, as a bad run is. Each
takes its own input convention, which the description states: ``byte/255 - 0.5`` per channel
(ConvNetJS's, the ml4a demos'), except the MNIST convnets, trained by ConvNetJS's MNIST demo on
``byte/255`` (their input layer adds 0.5: about 98% instead of 41-89%, docs/chapter.md). An image
larger than a snapshot's declared input is centre-cropped to it, where the chapter's demos fed it
whole and read its top-left part (:mod:`convscope.convnetjs.chapter`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..convnetjs.snapshot import read_snapshot
from ..convnetjs.summaries import FOLDER
from ..data import DATASETS, resolve_data_dir
from ..data.catalog import image_set_for_depth
from ..errors import ConvscopeError
from .catalog import Entry, slug
from .errors import log

PATTERN = "*snapshot*.json"  # mnist_snapshot_convnet.json, cifar10_snapshot_2layers.json, ...
BYTE_INPUT = "mnist_snapshot*_convnet*.json"  # trained on byte/255 (docs/chapter.md's table)
MAX_SNAPSHOTS = 32


@dataclass
class ChapterEntry(Entry):
    """A snapshot of the chapter, with where it came from (``file``, ``sha256``)."""

    file: str = ""
    sha256: str | None = None

    def convention(self) -> str:
        volume = self.input_volume
        if self.layers[0].params.get("offset"):
            text = ("byte/255, as ConvNetJS's MNIST demo trained it (its input layer adds 0.5 to "
                    "byte/255 - 0.5; the ml4a demos fed it byte/255 - 0.5)")
        else:
            text = "byte/255 - 0.5 per channel, ConvNetJS's convention, as the ml4a demos fed it"
        if volume.sx < 28 and self.dataset == "mnist":
            text += (f"; a 28x28 digit is centre-cropped to the declared {volume.sx}x{volume.sy} "
                     "(the demos fed it whole and read its top-left part)")
        return text

    def summary(self) -> dict:
        return {**super().summary(), "chapter": {"file": self.file, "sha256": self.sha256}}

    def describe(self) -> dict:
        described = super().describe()
        described["input"] = {**described["input"], "convention": "convnetjs",
                              "note": self.convention()}
        described["chapter"] = {"file": self.file, "sha256": self.sha256}
        return described


def chapter_entries(data_dir: str | os.PathLike | None, unique_id
                    ) -> tuple[list[ChapterEntry], list[dict]]:
    """The snapshots of ``<data_dir>/ml4a/`` as catalog entries (``unique_id(base)`` makes each
    id), and those skipped, each ``{"path", "reason"}``."""
    folder = resolve_data_dir(data_dir) / FOLDER
    if not folder.is_dir():
        return [], []
    entries, skipped = [], []
    for path in sorted(folder.glob(PATTERN))[:MAX_SNAPSHOTS]:
        try:
            entries.append(_entry(path, unique_id))
        except ConvscopeError as exc:
            log.warning("skipping the chapter's snapshot %s: %s", path, exc)
            skipped.append({"path": str(path), "reason": str(exc)})
    return entries, skipped


def _entry(path, unique_id) -> ChapterEntry:
    snapshot = read_snapshot(path, 0.5 if path.match(BYTE_INPUT) else None)
    model = snapshot.model(torch.float32)
    dataset = image_set_for_depth(model.input_volume.depth)
    if dataset is None:
        raise ConvscopeError(f"{path.name}: no image set has {model.input_volume.depth}-channel "
                             "images; import it with `convscope import-convnetjs --data ...`")
    classes = list(DATASETS[dataset].classes)
    if model.num_classes is not None and model.num_classes != len(classes):
        raise ConvscopeError(f"{path.name}: the network has {model.num_classes} classes, "
                             f"{dataset} has {len(classes)}")
    return ChapterEntry(unique_id("chapter-" + slug(path.stem)), f"{path.stem} (the chapter's)",
                        "chapter", dataset, classes, snapshot.spec, model=model,
                        accuracy_source="the chapter's ConvNetJS snapshot, not scored here",
                        file=path.name, sha256=snapshot.sha256)
