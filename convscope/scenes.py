"""Scenes of real MNIST digits for localization, detection and segmentation.

convscope has no detection or segmentation dataset, so it composes one from MNIST digits:

- ``localize``: a 64x64 canvas holding exactly one digit, scaled to a side of 20-44 px and
  placed at random, wholly inside the canvas. No clutter.
- ``detect`` / ``segment``: a 96x96 canvas holding 1-6 digits (uniform) scaled to 16-40 px
  at random positions. A placement whose stroke box has IoU > ``MAX_IOU`` with an earlier
  digit's, or covers or is covered by more than ``MAX_COVER`` of it, is retried (``TRIES``
  positions; if all fail, the least overlapping one is kept, so the count stays as drawn).
  Then 1-4 clutter fragments: 6-12 px crops around a stroke pixel of other digits of the same
  split, at native scale, dimmed to 50-100 %, placed anywhere. They are not objects: no box,
  background in the mask. The two kinds make the same scenes; ``segment`` also writes masks.

Other canvas sizes scale the digit side ranges in proportion. Digits are resized with an
antialiased bilinear (triangle) filter and composed by per-pixel maximum. A digit's *stroke
pixels* are those where its scaled image is >= ``STROKE_THRESHOLD`` (or, for a digit too faint
to reach it, where it is at its brightest). Its box (x, y, w, h) is the tight bounding box
of its stroke pixels, in canvas pixels, x, y the top-left corner, whether or not another digit
hides some of them. The mask holds a digit's class (0-9) on its stroke pixels, the brighter
digit winning where strokes overlap (ties to the later-drawn), and ``BACKGROUND`` elsewhere.

Split discipline: scenes are built from the digits they are given, so training scenes built
from MNIST's training split and test scenes from its test split share no digit. The same seed
serves both streams; their digits differ. Scene i depends only on (seed, i) and the digits, so
the first k scenes of any call with k or more scenes are the same.

On disk (:func:`write_scenes`): ``scene_00000.png`` (8-bit grayscale) per scene, for
``segment`` also ``mask_00000.png`` (pixel value = class, 10 = background), and
``annotations.json``: ``{"kind", "size", "classes", "background": 10, "scenes": [{"file",
"mask" (segment only), "objects": [{"class", "box": [x, y, w, h], "source_index"}]}]}``
where ``source_index`` is the digit's index in its MNIST split. ``format="coco"`` or
``"yolo"`` writes the annotations in those tools' formats instead (:mod:`convscope.scene_formats`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ._io import write_json_atomic
from .data.catalog import DatasetEntry, scene_set
from .data.dataset import Dataset
from .errors import ConvscopeError
from .progress import progress_bar
from .scene_formats import SCENE_FORMATS, image_dir, mask_dir, write_coco, write_yolo

BACKGROUND = 10
MAX_DIGITS = 6
MAX_CLUTTER = 4
STROKE_THRESHOLD = 64
MAX_IOU = 0.3
MAX_COVER = 0.5
TRIES = 8
CLASSES = [str(k) for k in range(10)]
_CLUTTER_SIDES = (6, 12)
_CHUNK = 2048  # scenes composed at once


@dataclass(frozen=True)
class _Layout:
    size: int  # default canvas side
    sides: tuple[int, int]  # digit side range (inclusive) on the default canvas
    digits: int  # most digits per scene
    tries: int
    clutter: int  # most clutter fragments per scene


_LAYOUTS = {
    "localize": _Layout(64, (20, 44), 1, 1, 0),
    "detect": _Layout(96, (16, 40), MAX_DIGITS, TRIES, MAX_CLUTTER),
    "segment": _Layout(96, (16, 40), MAX_DIGITS, TRIES, MAX_CLUTTER),
}
SCENE_KINDS = tuple(_LAYOUTS)  # the tasks that learn on scenes (Task.scenes) use these names


@dataclass
class Scenes:
    """Generated scenes; per-digit rows are in drawing order, padded to ``MAX_DIGITS``.

    ``images`` uint8 (N, 1, H, W); ``classes`` int64 (N, MAX_DIGITS), -1 padding; ``boxes``
    float32 (N, MAX_DIGITS, 4) as (x, y, w, h), padding rows 0; ``masks`` uint8 (N, H, W);
    ``sources`` int64 (N, MAX_DIGITS) index of each digit in the digit dataset, -1 padding;
    ``placements`` int64 (N, MAX_DIGITS, 3) as (x, y, side) of each scaled digit's square,
    -1 padding; ``clutter`` int64 (N, MAX_CLUTTER, 8) as (source, crop x, crop y, crop w,
    crop h, x, y, gain), -1 padding: canvas pixels ``(crop * gain) >> 8`` at (x, y).
    """

    images: np.ndarray
    classes: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    sources: np.ndarray
    placements: np.ndarray
    clutter: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        """Canvas side in pixels."""
        return int(self.images.shape[-1])

    def labels(self) -> np.ndarray:
        """Class of each scene's largest digit: largest box area, ties to the earlier-drawn."""
        area = np.where(self.classes >= 0, self.boxes[..., 2] * self.boxes[..., 3], -1.0)
        return self.classes[np.arange(len(self)), area.argmax(1)]

    def to_dataset(self, name: str) -> Dataset:
        """A :class:`Dataset` labelled by :meth:`labels`; targets boxes, classes, masks."""
        return Dataset(
            name, torch.from_numpy(self.images), torch.from_numpy(self.labels()), list(CLASSES),
            {"boxes": torch.from_numpy(self.boxes), "classes": torch.from_numpy(self.classes),
             "masks": torch.from_numpy(self.masks)},
        )


@functools.cache
def _resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights of a triangle filter, widened when shrinking (antialiasing)."""
    scale = src / dst
    support = max(scale, 1.0)
    centers = (np.arange(dst) + 0.5) * scale
    dist = np.abs(np.arange(src)[None, :] + 0.5 - centers[:, None]) / support
    weights = np.clip(1.0 - dist, 0.0, None)
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


def _scale(images: np.ndarray, side: int) -> np.ndarray:
    a = _resize_matrix(images.shape[-1], side)
    out = a @ images.astype(np.float32) @ a.T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def scale_digit(image: np.ndarray, side: int) -> np.ndarray:
    """One square uint8 digit image resized to ``side x side`` as the scenes resize it."""
    return _scale(np.asarray(image)[None], side)[0]


def stroke_pixels(scaled: np.ndarray) -> np.ndarray:
    """Boolean stroke pixels of scaled digit images (..., s, s), see the module docstring."""
    peak = scaled.max(axis=(-2, -1), keepdims=True)
    return scaled >= np.minimum(peak, STROKE_THRESHOLD)


def _tight_boxes(stroke: np.ndarray) -> np.ndarray:
    """(m, 4) int64 (x, y, w, h) tight boxes of (m, s, s) boolean images."""
    side = stroke.shape[-1]
    rows, cols = stroke.any(2), stroke.any(1)
    y0, x0 = rows.argmax(1), cols.argmax(1)
    y1, x1 = side - rows[:, ::-1].argmax(1), side - cols[:, ::-1].argmax(1)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def _layout(kind: str, size: int | None) -> tuple[_Layout, int, int, int]:
    """The kind's layout, canvas side and digit side range for ``size``."""
    if kind not in _LAYOUTS:
        raise ConvscopeError(f"unknown scene kind {kind!r}: use one of {', '.join(SCENE_KINDS)}")
    layout = _LAYOUTS[kind]
    size = layout.size if size is None else size
    if not 32 <= size <= 512:
        raise ConvscopeError(f"scene size {size} px is out of range: use 32 to 512")
    lo, hi = (round(s * size / layout.size) for s in layout.sides)
    return layout, size, lo, hi


def _digit_arrays(digits: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (M, D, D), labels, indices of digits bright enough to have strokes)."""
    n, c, h, w = digits.images.shape
    if c != 1 or h != w or h < 12:
        raise ConvscopeError(f"scene digits must be square grayscale images of at least "
                             f"12x12 px, got {digits.name!r} with shape {(n, c, h, w)}")
    if n and int(digits.labels.max()) >= BACKGROUND:
        raise ConvscopeError(f"scene digits need classes 0-9, {digits.name!r} has "
                             f"{len(digits.classes)}: use MNIST")
    images = digits.images[:, 0].numpy()
    pool = np.flatnonzero(images.reshape(n, -1).max(1, initial=0) >= STROKE_THRESHOLD)
    if not len(pool):
        raise ConvscopeError(f"{digits.name!r} has no digit with a pixel >= "
                             f"{STROKE_THRESHOLD}: give it real digit images")
    return images, digits.labels.numpy(), pool


def _pick(u: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Uniform integers in [lo, hi] from uniforms in [0, 1)."""
    return np.minimum(lo + (u * (hi - lo + 1)).astype(np.int64), hi)


def make_scenes(
    kind: str, digits: Dataset, count: int, seed: int = 0, size: int | None = None
) -> Scenes:
    """``count`` scenes of ``kind`` built from ``digits`` (see the module docstring).

    Scene i draws its random numbers from ``np.random.default_rng([seed, i])`` only.
    """
    layout, size, lo, hi = _layout(kind, size)
    if count < 1:
        raise ConvscopeError(f"scene count must be at least 1, got {count}")
    if seed < 0:
        raise ConvscopeError(f"scene seed must be >= 0, got {seed}")
    images, labels, pool = _digit_arrays(digits)
    width = 2 + layout.digits * (2 + 2 * layout.tries) + 7 * layout.clutter
    uniforms = np.empty((count, width))
    for i in range(count):
        np.random.default_rng([seed, i]).random(out=uniforms[i])
    out = Scenes(
        images=np.zeros((count, 1, size, size), np.uint8),
        classes=np.full((count, MAX_DIGITS), -1, np.int64),
        boxes=np.zeros((count, MAX_DIGITS, 4), np.float32),
        masks=np.full((count, size, size), BACKGROUND, np.uint8),
        sources=np.full((count, MAX_DIGITS), -1, np.int64),
        placements=np.full((count, MAX_DIGITS, 3), -1, np.int64),
        clutter=np.full((count, MAX_CLUTTER, 8), -1, np.int64),
    )
    for a in range(0, count, _CHUNK):
        part = slice(a, a + _CHUNK)
        _compose(layout, lo, hi, images, labels, pool, uniforms[part], out, part)
    return out


def _overlap(cand: np.ndarray, boxes: np.ndarray, present: np.ndarray) -> np.ndarray:
    """How much candidate boxes (n, T, 4) overlap earlier ones (n, k, 4): (n, T), <= 1 is fine."""
    c, b = cand[:, :, None].astype(np.float64), boxes[:, None].astype(np.float64)
    iw = np.minimum(c[..., 0] + c[..., 2], b[..., 0] + b[..., 2]) - np.maximum(c[..., 0], b[..., 0])
    ih = np.minimum(c[..., 1] + c[..., 3], b[..., 1] + b[..., 3]) - np.maximum(c[..., 1], b[..., 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    ca, ba = c[..., 2] * c[..., 3], b[..., 2] * b[..., 3]
    badness = np.maximum(inter / np.maximum(ca + ba - inter, 1) / MAX_IOU,
                         inter / np.maximum(np.minimum(ca, ba), 1) / MAX_COVER)
    return np.where(present[:, None], badness, 0.0).max(2, initial=0.0)


def _flat(first: np.ndarray, x: np.ndarray, y: np.ndarray, h: int, w: int, size: int):
    """Flat indices (m, h * w) of h x w windows at (x, y) of scenes ``first`` in (n, size, size)."""
    offsets = (np.arange(h)[:, None] * size + np.arange(w)).ravel()
    return (first * size * size + y * size + x)[:, None] + offsets


def _compose(
    layout: _Layout, lo: int, hi: int, images: np.ndarray, labels: np.ndarray,
    pool: np.ndarray, u: np.ndarray, out: Scenes, part: slice,
) -> None:
    """Fill ``out[part]`` from its uniform rows (columns as counted in ``make_scenes``)."""
    n, nd, nt, size = len(u), layout.digits, layout.tries, out.size
    counts = _pick(u[:, 0], 1, nd)
    present = np.arange(nd) < counts[:, None]
    src = pool[_pick(u[:, 1:1 + nd], 0, len(pool) - 1)]
    sides = _pick(u[:, 1 + nd:1 + 2 * nd], lo, hi)
    pos = u[:, 1 + 2 * nd:1 + 2 * nd + 2 * nd * nt].reshape(n, nd, nt, 2)

    # Scale every digit (grouped by slot and side) and find its stroke box in its square.
    groups, local = [], np.zeros((n, nd, 4), np.int64)
    for k in range(nd):
        for side in np.unique(sides[present[:, k], k]):
            idx = np.flatnonzero(present[:, k] & (sides[:, k] == side))
            patch = _scale(images[src[idx, k]], int(side))
            stroke = stroke_pixels(patch)
            local[idx, k] = _tight_boxes(stroke)
            groups.append((k, idx, patch.reshape(len(idx), -1), stroke.reshape(len(idx), -1)))

    # Place slot by slot: the first of the tries that overlaps earlier digits little enough.
    xy = np.zeros((n, nd, 2), np.int64)
    boxes = np.zeros((n, nd, 4), np.int64)
    rows = np.arange(n)
    for k in range(nd):
        cand_xy = (pos[:, k] * (size - sides[:, k, None, None] + 1)).astype(np.int64)
        cand = np.concatenate([cand_xy + local[:, k, None, :2],
                               np.broadcast_to(local[:, k, None, 2:], (n, nt, 2))], axis=2)
        badness = _overlap(cand, boxes[:, :k], present[:, :k])
        ok = badness <= 1.0
        choice = np.where(ok.any(1), ok.argmax(1), badness.argmin(1))
        xy[:, k], boxes[:, k] = cand_xy[rows, choice], cand[rows, choice]

    # Max-compose; a stroke pixel takes the class of the brightest digit there (ties: later).
    canvas, mask = out.images[part].reshape(-1), out.masks[part].reshape(-1)
    best = np.zeros(n * size * size, np.uint8)  # strokes are >= 1, so any stroke beats 0
    cls = labels[src]
    for k, idx, patch, stroke in groups:
        side = sides[idx[0], k]
        lit = np.flatnonzero(patch)  # only lit pixels can change the canvas
        which, pixel = np.divmod(lit, side * side)
        corner = idx * size * size + xy[idx, k, 1] * size + xy[idx, k, 0]
        at = corner[which] + pixel // side * size + pixel % side
        value = patch.reshape(-1)[lit]
        canvas[at] = np.maximum(canvas[at], value)
        strokes = stroke.reshape(-1)[lit]
        at, value, which = at[strokes], value[strokes], which[strokes]
        win = value >= best[at]
        mask[at[win]] = cls[idx[which[win]], k]
        best[at[win]] = value[win]

    keep = present[..., None]
    out.classes[part, :nd] = np.where(present, cls, -1)
    out.sources[part, :nd] = np.where(present, src, -1)
    out.boxes[part, :nd] = np.where(keep, boxes, 0)
    out.placements[part, :nd] = np.where(keep, np.concatenate([xy, sides[..., None]], 2), -1)
    if layout.clutter:
        cu = u[:, 1 + 2 * nd + 2 * nd * nt:]
        out.clutter[part] = _add_clutter(canvas, images, pool, cu, layout.clutter, size)


def _add_clutter(
    canvas: np.ndarray, images: np.ndarray, pool: np.ndarray, u: np.ndarray, most: int,
    size: int,
) -> np.ndarray:
    """Max-compose 1..``most`` fragments into flat ``canvas``; returns their records."""
    n, side = len(u), images.shape[-1]
    records = np.full((n, MAX_CLUTTER, 8), -1, np.int64)
    lo, hi = _CLUTTER_SIDES
    counts = _pick(u[:, 0], 1, most)
    span = np.arange(hi)
    for f in range(most):
        idx = np.flatnonzero(f < counts)
        if not len(idx):
            continue
        v = u[idx, 1 + 7 * f:8 + 7 * f]
        m, rows = len(idx), np.arange(len(idx))
        source = pool[_pick(v[:, 0], 0, len(pool) - 1)]
        w, h = _pick(v[:, 1], lo, hi), _pick(v[:, 2], lo, hi)
        # Centre the crop on the nth stroke pixel: find its row, then its column.
        strokes = images[source] >= STROKE_THRESHOLD
        per_row = strokes.sum(2)
        upto = per_row.cumsum(1)
        nth = (v[:, 3] * upto[:, -1]).astype(np.int64)
        cy = (upto > nth[:, None]).argmax(1)
        before = upto[rows, cy] - per_row[rows, cy]
        cx = (strokes[rows, cy].cumsum(1) > (nth - before)[:, None]).argmax(1)
        x0 = np.clip(cx - w // 2, 0, side - w)
        y0 = np.clip(cy - h // 2, 0, side - h)
        x = (v[:, 4] * (size - w + 1)).astype(np.int64)
        y = (v[:, 5] * (size - h + 1)).astype(np.int64)
        gain = _pick(v[:, 6], 128, 256)
        inside = ((span[:, None] < h[:, None, None]) & (span < w[:, None, None])).reshape(m, -1)
        r = np.minimum(y0[:, None] + span, side - 1)[:, :, None]
        c = np.minimum(x0[:, None] + span, side - 1)[:, None, :]
        crop = images[source[:, None, None], r, c].reshape(m, -1)
        value = ((crop.astype(np.uint16) * gain[:, None]) >> 8).astype(np.uint8)[inside]
        at = _flat(idx, x, y, hi, hi, size)[inside]
        canvas[at] = np.maximum(canvas[at], value)
        records[idx, f] = np.stack([source, x0, y0, w, h, x, y, gain], axis=1)
    return records


def scene_dataset(
    kind: str, split: str, count: int, seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """``count`` scenes of ``kind`` from MNIST's ``split`` digits, as its scene set."""
    from .data.load import load_dataset

    _layout(kind, None)
    digits = load_dataset("mnist", split, data_dir=data_dir)
    return make_scenes(kind, digits, count, seed).to_dataset(scene_set(kind).name)


def scene_entries() -> list[DatasetEntry]:
    """The catalogue's scene sets, ``mnist-<kind>-scenes``, on each kind's default canvas."""
    return [DatasetEntry(f"mnist-{kind}-scenes", f"MNIST {kind} scenes", "scenes",
                         (layout.size, layout.size, 1), tuple(CLASSES), scene_kind=kind,
                         polarity="light-on-dark")  # MNIST digits on black; not centred
            for kind, layout in _LAYOUTS.items()]


def write_scenes(
    scenes: Scenes, out_dir: str | os.PathLike[str], kind: str, progress: bool = False,
    format: str = "native",  # noqa: A002 (the option's name)
) -> Path:
    """Write PNGs and the annotations in ``format``: "native" (``annotations.json``, see the
    module docstring), "coco" or "yolo" (:mod:`convscope.scene_formats`); returns the path of
    the annotations file (YOLO: ``data.yaml``)."""
    _layout(kind, None)
    if format not in SCENE_FORMATS:
        raise ConvscopeError(f"unknown scenes format {format!r}: use one of "
                             f"{', '.join(SCENE_FORMATS)}")
    out = Path(out_dir)
    images, masks = image_dir(out, format), mask_dir(out, format)
    for folder in {out, images, masks}:
        folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in progress_bar(range(len(scenes)), desc="writing scenes", unit="scene",
                          disable=not progress, delay=1.0):
        entry: dict = {"file": f"scene_{i:05d}.png"}
        Image.fromarray(scenes.images[i, 0]).save(images / entry["file"])
        if kind == "segment":
            entry["mask"] = f"mask_{i:05d}.png"
            Image.fromarray(scenes.masks[i]).save(masks / entry["mask"])
        entry["objects"] = [
            {"class": int(scenes.classes[i, j]),
             "box": [int(v) for v in scenes.boxes[i, j]],
             "source_index": int(scenes.sources[i, j])}
            for j in np.flatnonzero(scenes.classes[i] >= 0)
        ]
        entries.append(entry)
    if format != "native":
        files = [entry["file"] for entry in entries]
        objects = [[(o["class"], o["box"]) for o in entry["objects"]] for entry in entries]
        if format == "coco":
            return write_coco(out, files, scenes.size, CLASSES, objects,
                              scenes.masks if kind == "segment" else None)
        return write_yolo(out, files, scenes.size, CLASSES, objects)
    path = out / "annotations.json"
    write_json_atomic(path, {"kind": kind, "size": scenes.size, "classes": CLASSES,
                             "background": BACKGROUND, "scenes": entries})
    return path
