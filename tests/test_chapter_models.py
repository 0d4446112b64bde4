"""The server side of the chapter's demos: the chapter's ml4a/ snapshots as catalog entries,
the registry models offered for live training, and the L1 demo's paced snapshots."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("fastapi")

from convscope.bundle import BUNDLED, bundled_model_dirs  # noqa: E402
from convscope.convnetjs import to_convnetjs  # noqa: E402
from convscope.model import build_model  # noqa: E402
from convscope.server.catalog import Catalog, Entry  # noqa: E402
from convscope.server.live import (  # noqa: E402
    Job,
    LiveFeed,
    TrainRequest,
    trainable_registry,
)

TWO_LAYER = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
             {"type": "fc", "num_neurons": 10, "activation": "sigmoid"},
             {"type": "softmax", "num_classes": 10}]


def write_snapshots(root: Path) -> Path:
    folder = root / "ml4a"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    (folder / "mnist_snapshot_2layers.json").write_text(json.dumps(to_convnetjs(
        build_model(TWO_LAYER))))
    (folder / "odd_snapshot.json").write_text(json.dumps({"layers": [{"layer_type": "nope"}]}))
    (folder / "mnist_summary_2layers.json").write_text("{}")  # a summary: not a model
    return root


def test_the_chapters_snapshots_become_catalog_entries(tmp_path: Path):
    data = write_snapshots(tmp_path / "data")
    catalog = Catalog(tmp_path / "no-bundled", [], None)
    catalog.add_chapter_snapshots(str(data))
    [entry] = [e for e in catalog.entries() if e.kind == "chapter"]
    assert entry.id == "chapter-mnist_snapshot_2layers" and entry.dataset == "mnist"
    described = entry.describe()
    assert described["input"]["convention"] == "convnetjs"
    assert described["input"]["offset"] == -0.5 and described["chapter"]["sha256"]
    assert entry.summary()["family"] == "ordinary"
    x = torch.zeros(1, 1, 28, 28)
    assert catalog.model(entry.id)(x).shape == (1, 10)
    [skipped] = catalog.skipped()
    assert skipped["path"].endswith("odd_snapshot.json") and "nope" in skipped["reason"]


def test_no_ml4a_folder_offers_nothing(tmp_path: Path):
    catalog = Catalog(tmp_path / "no-bundled", [], None)
    catalog.add_chapter_snapshots(str(tmp_path))
    assert catalog.entries() == [] and catalog.skipped() == []


def test_the_train_page_is_offered_the_templates_and_not_the_scene_models():
    names = {m["name"]: m for m in trainable_registry()}
    for name in ("mnist-templates", "cifar10-templates", "mnist-ordinary", "cifar10-ordinary"):
        assert name in names
    assert names["mnist-templates"]["params"] == 7850
    assert "mnist-localizer" not in names and "alexnet" not in names


@pytest.mark.parametrize("every", [0, 10_001, 2.5])
def test_snapshot_every_is_checked(every):
    with pytest.raises(ValueError, match="snapshot_every"):
        TrainRequest(model="mnist-ordinary", snapshot_every=every)


def test_a_paced_feed_snapshots_every_chunk_and_waits_for_a_reader(tmp_path: Path):
    net = build_model(TWO_LAYER).eval()
    job = Job("j", "live-j", tmp_path)
    entry = Entry("live-j", "t", "live", "mnist", [str(i) for i in range(10)], net.spec,
                  model=net)
    feed = LiveFeed(job, entry, None, every=25)
    session = SimpleNamespace(module=net, global_step=0, config=SimpleNamespace(batch_size=4))
    event = {"epoch": 0, "step": 0, "steps_per_epoch": 100, "epochs": 1, "loss": 1.0,
             "accuracy": 0.1, "examples_per_s": 1.0}
    seen, cursor = [], 0
    stop = threading.Event()

    def reader():
        nonlocal cursor
        while not stop.is_set():
            messages, cursor = job.since(cursor)
            seen.extend(m["examples"] for m in messages if m["type"] == "snapshot")
            stop.wait(0.002)

    thread = threading.Thread(target=reader)
    thread.start()
    for step in range(1, 36):
        session.global_step = step
        assert feed.on_step(session, event)
    stop.set()
    thread.join()
    # 4 examples a step: a snapshot once 25 more have gone by (every 7 steps), none lost
    assert seen == [28, 56, 84, 112, 140]
    [first, second] = job.since(0)[0][-1]["weights"]
    assert first["weights"]["shape"] == [10, 1, 28, 28]
    assert second["weights"]["shape"][:2] == [10, 10]


def test_bundled_models_are_not_disturbed_by_the_chapters(tmp_path: Path):
    data = write_snapshots(tmp_path / "data")
    catalog = Catalog(BUNDLED / "models", [], None)
    before = [e.id for e in catalog.entries()]
    catalog.add_chapter_snapshots(str(data))
    after = [e.id for e in catalog.entries()]
    assert after[: len(before)] == before and len(after) == len(before) + 1
    assert set(bundled_model_dirs()) <= set(before)
