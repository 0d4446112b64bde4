"""The dataset catalogue (convscope.data.catalog): every entry agrees with its data, and a dataset
registered in a few lines reaches the CLI's --data, the config's default augmentation and
GET /api/datasets with no other edit."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from convscope.bundle import SAMPLES_DIR, bundled_sample
from convscope.cli import main
from convscope.config import TrainConfig
from convscope.data import (
    DATASETS,
    Dataset,
    DatasetEntry,
    load_dataset,
    register_dataset,
    unregister_dataset,
)
from convscope.data.catalog import KINDS, check_entry, scene_set
from convscope.data.fsdd import load_fsdd
from convscope.errors import DataError
from convscope.runs import load_run
from convscope.scenes import SCENE_KINDS, make_scenes
from convscope.server.app import create_app

NAMES = list(DATASETS)


def dots(split: str, data_dir: Path) -> Dataset:
    """A tiny 2-class 6x4 grey set: class k lights row k (train 40 images, test 10)."""
    n = 40 if split == "train" else 10
    labels = torch.arange(n) % 2
    images = torch.zeros(n, 1, 4, 6, dtype=torch.uint8)
    images[labels == 0, :, 0] = images[labels == 1, :, 3] = 255
    return Dataset("dots", images, labels, ["top", "bottom"])


DOTS = DatasetEntry("dots", "Dots", "images", (6, 4, 1), ("top", "bottom"), "flip",
                    {"train": 40, "test": 10}, loader=dots)


@pytest.fixture
def dots_registered():
    register_dataset(DOTS)
    yield DOTS
    unregister_dataset("dots")


def test_builtins_are_catalogued() -> None:
    assert NAMES[:3] == ["mnist", "cifar10", "fsdd"]
    assert [scene_set(kind).name for kind in SCENE_KINDS] == \
        ["mnist-localize-scenes", "mnist-detect-scenes", "mnist-segment-scenes"]


@pytest.mark.parametrize("name", NAMES)
def test_entry_is_consistent(name: str, data_cache: Path) -> None:
    entry = DATASETS[name]
    check_entry(entry)
    assert entry.kind in KINDS and entry.name == name
    assert TrainConfig(data=name).augment == entry.augment or entry.kind == "scenes"
    sx, sy, depth = entry.input
    sample = _sample(entry)
    assert sample.images.shape[1:] == (depth, sy, sx)
    assert sample.classes == list(entry.classes)
    served = entry.json()
    assert json.loads(json.dumps(served)) == served and served["input"]["depth"] == depth
    if entry.splits is not None:
        assert set(entry.splits) == {"train", "test"} and min(entry.splits.values()) > 0


def _sample(entry: DatasetEntry) -> Dataset:
    """A few of ``entry``'s samples: the bundled ones (scenes: made of bundled digits)."""
    if entry.kind == "scenes":
        digits = bundled_sample("mnist")
        return make_scenes(entry.scene_kind, digits, 2, seed=0).to_dataset(entry.name)
    if entry.name == "fsdd":
        return load_fsdd(SAMPLES_DIR / "fsdd", "test")
    return bundled_sample(entry.name)


@pytest.mark.parametrize("name", [n for n in NAMES if DATASETS[n].splits])
def test_split_sizes_match_the_real_data(name: str) -> None:
    root = os.environ.get("CONVSCOPE_DATA")
    if not root:
        pytest.skip("CONVSCOPE_DATA is not set: no real data to test against")
    entry = DATASETS[name]
    for split, size in entry.splits.items():
        try:
            data = load_dataset(name, split, root, download=False)
        except DataError as exc:
            pytest.skip(f"{root} lacks {name}: {exc}")
        assert len(data) == size, split


def test_scene_sets_are_generated_not_loaded() -> None:
    with pytest.raises(DataError, match="--task detect"):
        load_dataset("mnist-detect-scenes", "test")


def test_register_checks_and_refuses_duplicates(dots_registered) -> None:
    with pytest.raises(DataError, match="dataset 'dots' is already registered"):
        register_dataset(DOTS)
    for bad, match in ((dict(kind="video"), "kind"), (dict(input=(6, 4)), "input"),
                       (dict(classes=()), "class names"), (dict(loader=None), "exactly one"),
                       (dict(augment="spin"), "spin")):
        with pytest.raises(Exception, match=match):
            register_dataset(replace(DOTS, name="bad", **bad))
    assert "bad" not in DATASETS


def test_a_registered_dataset_trains_and_is_served(dots_registered, tmp_path: Path,
                                                   data_cache: Path) -> None:
    assert TrainConfig(data="dots").augment == "flip"  # the catalogue's default
    spec = tmp_path / "dots.json"
    spec.write_text(json.dumps([{"type": "input", "sx": 6, "sy": 4, "depth": 1},
                                {"type": "softmax", "num_classes": 2}]))
    out = tmp_path / "run"
    assert main(["train", "--model", str(spec), "--data", "dots", "--out", str(out),
                 "--epochs", "1", "--batch-size", "8", "--device", "cpu"]) == 0
    run = load_run(out)
    assert run.config.data == "dots" and run.config.augment == "flip"
    assert run.results["test"]["total"] == 10
    with TestClient(create_app(runs_dir=tmp_path / "runs", data_dir=str(tmp_path))) as client:
        body = client.get("/api/datasets").json()
        offered = {d["name"]: d for d in body["datasets"]}
        assert offered["dots"]["count"] == 10 and offered["dots"]["classes"] == ["top", "bottom"]
        assert offered["dots"]["input"] == {"sx": 6, "sy": 4, "depth": 1}
        assert {d["name"] for d in body["catalogue"]} == set(DATASETS)
        assert client.get("/api/datasets/dots/samples/3.png").status_code == 200
    unregister_dataset("dots")
    with pytest.raises(DataError, match="neither a known dataset"):
        load_dataset("dots")
    register_dataset(DOTS)  # for the fixture to remove


def test_live_training_takes_the_catalogued_image_sets(dots_registered) -> None:
    from pydantic import ValidationError

    from convscope.server.live import DEPTH, TrainRequest

    assert dict(DEPTH) == {"mnist": 1, "cifar10": 3, "dots": 1}
    assert TrainRequest(spec=[], dataset="dots").dataset == "dots"
    for name in ("fsdd", "mnist-detect-scenes", "svhn"):
        with pytest.raises(ValidationError, match="live training takes one of mnist, cifar10"):
            TrainRequest(spec=[], dataset=name)


def test_a_runs_test_set_is_counted_in_its_catalogue_kind(tmp_path: Path) -> None:
    from convscope.server.catalog import entry_from_run

    chirps = register_dataset(replace(DOTS, name="chirps", title="Chirps", kind="recordings"))
    try:
        spec = tmp_path / "chirps.json"
        spec.write_text(json.dumps([{"type": "input", "sx": 6, "sy": 4, "depth": 1},
                                    {"type": "softmax", "num_classes": 2}]))
        out = tmp_path / "run"
        assert main(["train", "--model", str(spec), "--data", chirps.name, "--out", str(out),
                     "--epochs", "1", "--batch-size", "8", "--device", "cpu"]) == 0
        entry = entry_from_run(load_run(out), "chirper", "run", "chirper")
        assert entry.dataset == "chirps"
        assert entry.accuracy_source.startswith("chirps test set (10 recordings)")
    finally:
        unregister_dataset("chirps")


def test_the_default_image_set_of_a_depth_is_the_first_catalogued(dots_registered) -> None:
    from convscope.data.catalog import image_set_for_depth

    assert image_set_for_depth(1) == "mnist"  # not dots, catalogued later
    assert image_set_for_depth(3) == "cifar10"
    assert image_set_for_depth(4) is None
    register_dataset(replace(DOTS, name="rgba", input=(6, 4, 4)))
    try:
        assert image_set_for_depth(4) == "rgba"
    finally:
        unregister_dataset("rgba")
