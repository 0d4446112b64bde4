"""The bundled default models and test-image samples (skipped where they are not built)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import real_dir
from fastapi.testclient import TestClient

import convscope
from convscope.bundle import (
    SAMPLES_DIR,
    bundled_model_dirs,
    bundled_sample,
    bundled_sample_indices,
)
from convscope.runs import CHECKPOINT, MODEL
from convscope.scenes import make_scenes
from convscope.server import create_app
from convscope.tasks import get_task

# Lowest accepted accuracy on the bundled sample: a few points below the measured one.
MIN_SAMPLE_ACCURACY = {"mnist-ordinary": 0.88, "mnist-convnetjs": 0.96,
                       "cifar10-ordinary": 0.36, "cifar10-convnetjs": 0.65}
SAMPLE_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
# The scene models: task and the lowest accepted value of its headline metric on 300 scenes
# made of the bundled MNIST sample, as the offline explorer makes them (measured: mean box IoU
# 0.917, mAP@0.5 0.967, mean IoU 0.879; a few points below)
SCENE_MODELS = {"mnist-localizer": ("localize", 0.88), "mnist-yolo": ("detect", 0.93),
                "mnist-unet": ("segment", 0.84)}
PER_CLASS = 30


def bundled_run(name: str) -> convscope.Run:
    path = bundled_model_dirs().get(name)
    if path is None:
        pytest.skip(f"{name} is not bundled (run scripts/make_bundle.py)")
    return convscope.load_run(path)


def sample(name: str) -> convscope.Dataset:
    dataset = bundled_sample(name)
    if dataset is None:
        pytest.skip(f"no bundled {name} sample (run scripts/make_bundle.py)")
    return dataset


@pytest.mark.parametrize("name", sorted(MIN_SAMPLE_ACCURACY))
def test_bundled_model(name: str) -> None:
    run = bundled_run(name)
    assert run.config.data_dir is None
    assert not (run.path / CHECKPOINT).exists() and (run.path / MODEL).is_file()
    layers = convscope.resolve(run.model_info["spec"])
    first, last = layers[0].out_volume, layers[-1].out_volume
    data = sample(run.config.data)
    depth, height, width = data.images.shape[1:]
    assert first.depth == depth and first.sy <= height and first.sx <= width  # or centre crops
    assert str(last) == "1x1x10"
    accuracy = convscope.evaluate(run.model, data).accuracy
    assert accuracy >= MIN_SAMPLE_ACCURACY[name]
    assert run.results["test"]["total"] == 10_000


@pytest.mark.parametrize("name", sorted(SCENE_MODELS))
def test_bundled_scene_model_finds_the_digits_in_scenes_of_the_sample(name: str) -> None:
    run = bundled_run(name)
    kind, lowest = SCENE_MODELS[name]
    assert run.config.task == kind and run.config.data_dir is None
    assert not (run.path / CHECKPOINT).exists()
    assert run.results["test"]["total"] == run.config.test_scenes == 5_000
    scenes = make_scenes(kind, sample("mnist"), 300, seed=0).to_dataset(f"mnist-{kind}-scenes")
    task = get_task(kind)
    assert task.evaluate(run.model, scenes)[task.metric] >= lowest


def test_bundled_recordings_are_offered_offline_and_the_bundled_net_hears_them(
        tmp_path: Path, data_cache: Path) -> None:
    bundled_run("fsdd-convnet")
    if not (SAMPLES_DIR / "fsdd").is_dir():
        pytest.skip("no bundled FSDD recordings (run scripts/make_bundle.py)")
    with TestClient(create_app(data_dir=str(tmp_path / "empty"))) as client:
        listing = client.get("/api/audio/recordings").json()
        offers = {d["name"]: d for d in client.get("/api/datasets").json()["datasets"]}
        heard = [client.post("/api/models/fsdd-convnet/audio",
                             json={"recording": r["index"]}).json()["prediction"]
                 for r in listing["recordings"]]
    assert listing["total"] == 60 and listing["note"] is None
    assert {r["take"] for r in listing["recordings"]} == {0}  # a test take: never trained on
    assert {(r["speaker"], r["digit"]) for r in listing["recordings"]} == {
        (s, d) for s in ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
        for d in range(10)}
    assert offers["fsdd"]["source"] == "bundled" and offers["fsdd"]["count"] == 60
    right = sum(h == r["digit"] for h, r in zip(heard, listing["recordings"], strict=True))
    assert right >= 57  # measured: 59 of 60


@pytest.mark.realdata
def test_bundled_recordings_are_unchanged_fsdd_files() -> None:
    bundled = sorted((SAMPLES_DIR / "fsdd").glob("*.wav"))
    if not bundled:
        pytest.skip("no bundled FSDD recordings (run scripts/make_bundle.py)")
    root = os.environ.get("CONVSCOPE_DATA")
    official = Path(root or "") / "fsdd" / "recordings"
    if not root or not official.is_dir():
        pytest.skip("CONVSCOPE_DATA holds no FSDD recordings to compare with")
    for path in bundled:
        assert path.read_bytes() == (official / path.name).read_bytes(), path.name


@pytest.mark.parametrize("name", sorted(SAMPLE_SHAPES))
def test_bundled_sample(name: str) -> None:
    data = sample(name)
    indices = torch.tensor(bundled_sample_indices(name))
    assert data.images.dtype == torch.uint8
    assert tuple(data.images.shape) == (10 * PER_CLASS, *SAMPLE_SHAPES[name])
    assert data.labels.dtype == torch.int64 and len(data.classes) == 10
    assert torch.bincount(data.labels, minlength=10).tolist() == [PER_CLASS] * 10
    assert indices.shape == data.labels.shape
    assert bool((indices[1:] > indices[:-1]).all()) and 0 <= int(indices[0])
    assert int(indices[-1]) < 10_000


@pytest.mark.realdata
@pytest.mark.parametrize("name", sorted(SAMPLE_SHAPES))
def test_bundled_sample_is_official_test_data(name: str, data_cache: Path) -> None:
    data = sample(name)
    test = convscope.load_dataset(name, "test", real_dir(name), download=False)
    indices = torch.tensor(bundled_sample_indices(name))
    assert torch.equal(data.images, test.images[indices])
    assert torch.equal(data.labels, test.labels[indices])
    assert data.classes == test.classes
