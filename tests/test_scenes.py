"""Scenes of digits: exact composition, boxes, masks, determinism, files and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_mnist
from PIL import Image

import convscope.scenes as sc
from convscope.cli import main
from convscope.data import Dataset, load_dataset
from convscope.errors import ConvscopeError


def synthetic_digits(count: int = 50, seed: int = 0) -> Dataset:
    """Digit-like 28x28 images: antialiased rings and bars of random size and thickness."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28].astype(float)
    images = np.zeros((count, 28, 28), np.uint8)
    for i in range(count):
        cx, cy = rng.uniform(11, 17, 2)
        thick = rng.uniform(1.0, 2.5)
        if i % 2:
            dist = np.abs(np.hypot((xx - cx) / rng.uniform(0.5, 1), yy - cy) - rng.uniform(4, 8))
        else:
            dist = np.abs(xx - cx - (yy - cy) * rng.uniform(-0.4, 0.4))
            dist = np.where(np.abs(yy - cy) < rng.uniform(5, 9), dist, 99)
        images[i] = np.clip(255 * (thick - dist) / thick, 0, 255).astype(np.uint8)
    labels = torch.arange(count) % 10
    return Dataset("digits", torch.from_numpy(images)[:, None], labels, [str(k) for k in range(10)])


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return synthetic_digits()


@pytest.fixture(scope="module")
def detect(digits: Dataset) -> sc.Scenes:
    return sc.make_scenes("detect", digits, 150, seed=3)


def rebuild(scenes: sc.Scenes, i: int, digit_images: np.ndarray, digit_labels: np.ndarray):
    """Scene i redrawn from its records, one digit at a time: (image, mask, boxes)."""
    size = scenes.size
    image = np.zeros((size, size), np.uint8)
    mask = np.full((size, size), sc.BACKGROUND, np.uint8)
    best = np.full((size, size), -1)
    boxes = []
    for j in np.flatnonzero(scenes.sources[i] >= 0):
        x, y, side = scenes.placements[i, j]
        scaled = sc.scale_digit(digit_images[scenes.sources[i, j]], side)
        stroke = scaled >= min(sc.STROKE_THRESHOLD, scaled.max())
        window = (slice(y, y + side), slice(x, x + side))
        image[window] = np.maximum(image[window], scaled)
        win = stroke & (scaled >= best[window])
        mask[window][win] = digit_labels[scenes.sources[i, j]]
        best[window][win] = scaled[win]
        ys, xs = np.nonzero(stroke)
        boxes.append([x + xs.min(), y + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
    for source, cx, cy, w, h, x, y, gain in scenes.clutter[i]:
        if source < 0:
            continue
        crop = digit_images[source, cy:cy + h, cx:cx + w].astype(int) * gain >> 8
        image[y:y + h, x:x + w] = np.maximum(image[y:y + h, x:x + w], crop)
    return image, mask, np.array(boxes, np.float32).reshape(-1, 4)


def check_exact(scenes: sc.Scenes, digits: Dataset) -> None:
    images, labels = digits.images[:, 0].numpy(), digits.labels.numpy()
    for i in range(len(scenes)):
        image, mask, boxes = rebuild(scenes, i, images, labels)
        n = len(boxes)
        assert np.array_equal(scenes.images[i, 0], image), i
        assert np.array_equal(scenes.masks[i], mask), i
        assert np.array_equal(scenes.boxes[i, :n], boxes), i
        assert np.array_equal(scenes.classes[i, :n], labels[scenes.sources[i, :n]])


def test_scale_digit_is_antialiased_bilinear(digits: Dataset) -> None:
    for side in (16, 28, 33, 44):
        ours = np.stack([sc.scale_digit(d, side) for d in digits.images[:, 0].numpy()])
        ref = F.interpolate(digits.images.float(), size=(side, side), mode="bilinear",
                            align_corners=False, antialias=True).round()[:, 0].numpy()
        assert ours.shape == (50, side, side) and ours.dtype == np.uint8
        assert np.abs(ours.astype(int) - ref).max() <= 1
    seven = digits.images[7, 0].numpy()
    assert np.array_equal(sc.scale_digit(seven, 28), seven)
    assert (sc.scale_digit(np.full((28, 28), 200, np.uint8), 17) == 200).all()


def test_detect_layout(detect: sc.Scenes, digits: Dataset) -> None:
    n = len(detect)
    assert detect.images.shape == (n, 1, 96, 96) and detect.images.dtype == np.uint8
    assert detect.masks.shape == (n, 96, 96) and detect.masks.dtype == np.uint8
    assert detect.classes.shape == detect.sources.shape == (n, sc.MAX_DIGITS)
    assert detect.boxes.shape == (n, sc.MAX_DIGITS, 4) and detect.boxes.dtype == np.float32
    present = detect.classes >= 0
    counts = present.sum(1)
    assert set(counts.tolist()) == set(range(1, 7))
    # Digits fill the first rows; padding is -1 / 0 everywhere else.
    assert np.array_equal(present, np.arange(sc.MAX_DIGITS) < counts[:, None])
    assert np.array_equal(detect.sources >= 0, present)
    assert (detect.boxes[~present] == 0).all() and (detect.placements[~present] == -1).all()
    assert ((detect.sources[present] >= 0) & (detect.sources[present] < len(digits))).all()
    box = detect.boxes[present]
    assert (box[:, :2] >= 0).all() and (box[:, 2:] >= 1).all()
    assert (box[:, :2] + box[:, 2:] <= 96).all()
    side = detect.placements[present][:, 2]
    assert side.min() >= 16 and side.max() <= 40 and len(set(side.tolist())) > 15
    fragments = (detect.clutter[:, :, 0] >= 0).sum(1)
    assert set(fragments.tolist()) == {1, 2, 3, 4}
    assert set(np.unique(detect.masks).tolist()) <= set(range(11))


def test_detect_is_exact(detect: sc.Scenes, digits: Dataset) -> None:
    check_exact(detect, digits)


def test_clutter_is_background(detect: sc.Scenes) -> None:
    """Some lit pixels belong to no digit stroke: the clutter, which the mask leaves out."""
    lit_background = 0
    for i in range(len(detect)):
        covered = np.zeros((96, 96), bool)
        for x, y, side in detect.placements[i][detect.placements[i, :, 2] > 0]:
            covered[y:y + side, x:x + side] = True
        outside = ~covered & (detect.images[i, 0] >= sc.STROKE_THRESHOLD)
        assert (detect.masks[i][outside] == sc.BACKGROUND).all()
        lit_background += int(outside.sum())
    assert lit_background > 1000


def test_overlap_is_limited(detect: sc.Scenes) -> None:
    pairs, bad = 0, 0
    for i in range(len(detect)):
        boxes = detect.boxes[i][detect.classes[i] >= 0].astype(float)
        for a in range(len(boxes)):
            for b in range(a):
                (x0, y0, w0, h0), (x1, y1, w1, h1) = boxes[a], boxes[b]
                iw = max(0.0, min(x0 + w0, x1 + w1) - max(x0, x1))
                ih = max(0.0, min(y0 + h0, y1 + h1) - max(y0, y1))
                inter = iw * ih
                iou = inter / (w0 * h0 + w1 * h1 - inter)
                pairs += 1
                bad += iou > sc.MAX_IOU or inter / min(w0 * h0, w1 * h1) > sc.MAX_COVER
                assert iou < 0.6
    assert pairs > 300 and bad <= pairs // 100


def test_localize(digits: Dataset) -> None:
    scenes = sc.make_scenes("localize", digits, 60, seed=1)
    assert scenes.images.shape == (60, 1, 64, 64)
    assert ((scenes.classes >= 0).sum(1) == 1).all() and (scenes.clutter == -1).all()
    side = scenes.placements[:, 0, 2]
    assert side.min() >= 20 and side.max() <= 44
    assert (scenes.placements[:, 0, :2] + side[:, None] <= 64).all()
    check_exact(scenes, digits)
    other = sc.make_scenes("detect", digits, 5, size=48)
    assert other.images.shape == (5, 1, 48, 48)
    check_exact(other, digits)


def test_deterministic_and_prefix_stable(
    digits: Dataset, detect: sc.Scenes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = ("images", "classes", "boxes", "masks", "sources", "placements", "clutter")
    again = sc.make_scenes("detect", digits, 150, seed=3)
    prefix = sc.make_scenes("detect", digits, 20, seed=3)
    monkeypatch.setattr(sc, "_CHUNK", 7)  # chunking must not change any scene
    chunked = sc.make_scenes("detect", digits, 30, seed=3)
    for name in fields:
        full = getattr(detect, name)
        assert np.array_equal(getattr(again, name), full)
        assert np.array_equal(getattr(prefix, name), full[:20])
        assert np.array_equal(getattr(chunked, name), full[:30])
    other = sc.make_scenes("detect", digits, 20, seed=4)
    assert not np.array_equal(other.images, prefix.images)
    assert not np.array_equal(other.sources, prefix.sources)


def test_to_dataset_labels_largest_digit(detect: sc.Scenes) -> None:
    ds = detect.to_dataset("mnist-detect-scenes")
    assert ds.name == "mnist-detect-scenes" and ds.classes == [str(k) for k in range(10)]
    assert set(ds.targets) == {"boxes", "classes", "masks"}
    assert ds.targets["masks"].shape == (150, 96, 96) and ds.volume == (96, 96, 1)
    for i in range(len(detect)):
        areas = [w * h if c >= 0 else -1 for c, (_, _, w, h) in
                 zip(detect.classes[i], detect.boxes[i], strict=True)]
        assert int(ds.labels[i]) == detect.classes[i, int(np.argmax(areas))]


def test_bad_input(digits: Dataset, tmp_path: Path) -> None:
    with pytest.raises(ConvscopeError, match="unknown scene kind"):
        sc.make_scenes("classify", digits, 5)
    with pytest.raises(ConvscopeError, match="count"):
        sc.make_scenes("detect", digits, 0)
    with pytest.raises(ConvscopeError, match="seed"):
        sc.make_scenes("detect", digits, 5, seed=-1)
    with pytest.raises(ConvscopeError, match="size"):
        sc.make_scenes("detect", digits, 5, size=16)
    color = Dataset("rgb", torch.zeros(4, 3, 28, 28, dtype=torch.uint8), torch.zeros(4).long(),
                    ["a"])
    with pytest.raises(ConvscopeError, match="grayscale"):
        sc.make_scenes("detect", color, 5)
    blank = Dataset("blank", torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4).long(),
                    ["a"])
    with pytest.raises(ConvscopeError, match="no digit"):
        sc.make_scenes("detect", blank, 5)
    with pytest.raises(ConvscopeError, match="unknown scene kind"):
        sc.write_scenes(sc.make_scenes("detect", digits, 1), tmp_path, "boxes")


@pytest.mark.parametrize("kind", ["segment", "localize"])
def test_cli_files_round_trip(
    kind: str, tmp_path: Path, data_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_mnist(tmp_path / "data", train=40, test=20)
    out = tmp_path / "scenes"
    assert main(["scenes", kind, "--split", "test", "--count", "12", "--seed", "5",
                 "--out", str(out), "--data-dir", str(root)]) == 0
    assert "wrote 12" in capsys.readouterr().out
    digits = load_dataset("mnist", "test", data_dir=root)
    scenes = sc.make_scenes(kind, digits, 12, seed=5)
    meta = json.loads((out / "annotations.json").read_text())
    assert meta["kind"] == kind and meta["size"] == scenes.size
    assert meta["background"] == 10 and meta["classes"] == [str(k) for k in range(10)]
    assert len(meta["scenes"]) == 12
    for i, entry in enumerate(meta["scenes"]):
        assert np.array_equal(np.array(Image.open(out / entry["file"])), scenes.images[i, 0])
        if kind == "segment":
            assert np.array_equal(np.array(Image.open(out / entry["mask"])), scenes.masks[i])
        else:
            assert "mask" not in entry
        n = len(entry["objects"])
        assert n == int((scenes.classes[i] >= 0).sum())
        assert [o["class"] for o in entry["objects"]] == scenes.classes[i, :n].tolist()
        assert [o["source_index"] for o in entry["objects"]] == scenes.sources[i, :n].tolist()
        assert np.array_equal(np.array([o["box"] for o in entry["objects"]]), scenes.boxes[i, :n])
    assert not list(out.glob("mask_*")) or kind == "segment"
    ds = sc.scene_dataset(kind, "test", 12, seed=5, data_dir=root)
    assert ds.name == f"mnist-{kind}-scenes" and torch.equal(ds.images,
                                                            torch.from_numpy(scenes.images))
    assert main(["scenes", kind, "--count", "0", "--out", str(out),
                 "--data-dir", str(root)]) == 2


@pytest.mark.realdata
def test_real_mnist_split_discipline(real_data_dir: Path) -> None:
    for split, count in (("train", 60000), ("test", 10000)):
        digits = load_dataset("mnist", split, data_dir=real_data_dir)
        assert len(digits) == count
        scenes = sc.make_scenes("segment", digits, 40, seed=11)
        assert scenes.sources.max() < count and scenes.clutter[..., 0].max() < count
        check_exact(scenes, digits)  # every pixel comes from this split's digits
        peaks = [sc.scale_digit(digits.images[s, 0].numpy(), side).max()
                 for s, side in zip(scenes.sources[scenes.sources >= 0],
                                    scenes.placements[..., 2][scenes.sources >= 0], strict=True)]
        assert min(peaks) >= sc.STROKE_THRESHOLD  # real digits never need the faint fallback
