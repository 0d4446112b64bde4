"""What a classifier says about pictures: :meth:`convscope.runs.Run.predict` and
``convscope predict``. Each picture is fitted exactly as the explorer fits an upload
(:func:`convscope.images.fit_image_bytes`, prepared as the run's data asks: inverted and
centred for MNIST-like data, see :func:`preparation`) and scored by the task's own prediction
(as ``POST /api/models/{id}/predict`` scores it)."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from .data.catalog import dataset_name, preparation_for
from .errors import ConvscopeError, ImageError
from .images import (
    ORIENTATION,
    PLAIN,
    Preparation,
    fit_box,
    fit_image_bytes,
    fit_picture,
    fit_prepared,
    is_picture,
    picture_file_bytes,
)
from .layer_kinds import Volume
from .tasks import get_task

if TYPE_CHECKING:
    from .runs import Run

DEFAULT_TOP = 3


BOX_MIN_SCORE = 0.25  # a detection shown by predict scores at least this


@dataclass
class Prediction:
    """What a run's network says about one picture. ``classes``: the ``top`` classes, most
    probable first, (class name, probability) (a classifier's, a localizer's); ``boxes``: the
    objects found, ``{"class", "score", "box": [x, y, w, h]}`` in the picture's own pixels
    (a localizer's one, a detector's best ``top`` scoring at least :data:`BOX_MIN_SCORE`);
    ``pixels``: a segmenter's (class name, pixel count) in the network's view, largest first,
    and ``mask`` its class index per pixel of that view (rows of ``classes_of_mask``)."""

    source: str
    classes: list[tuple[str, float]]
    boxes: list[dict] = field(default_factory=list)
    pixels: list[tuple[str, int]] = field(default_factory=list)
    mask: list[list[int]] | None = None
    mask_classes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        found: dict = {"path": self.source, "predictions": [
            {"class": name, "probability": p} for name, p in self.classes]}
        if self.boxes:
            found["boxes"] = self.boxes
        if self.mask is not None:
            found |= {"pixels": [{"class": name, "pixels": n} for name, n in self.pixels],
                      "mask": self.mask, "mask_classes": self.mask_classes}
        return found

    def text(self) -> str:
        """One line: the classes, then any boxes (x,y wxh) and pixel counts."""
        parts = [", ".join(f"{name} ({100 * p:.1f}%)" for name, p in self.classes)]
        if self.boxes:
            parts.append("boxes: " + ", ".join(
                f"{b['class']} ({100 * b['score']:.1f}%) at {b['box'][0]:.0f},{b['box'][1]:.0f} "
                f"{b['box'][2]:.0f}x{b['box'][3]:.0f}" for b in self.boxes))
        if self.mask is not None:
            parts.append("pixels: " + ", ".join(f"{name} {n}" for name, n in self.pixels))
        return f"{self.source}: " + "; ".join(p for p in parts if p)


def input_volume(run: Run) -> Volume:
    """The volume the run's network takes (its data's ``input``: width, height, depth)."""
    try:
        width, height, depth = (int(v) for v in run.data_info["input"])
    except (KeyError, TypeError, ValueError):
        raise ConvscopeError(f"{run.path}: its config.yaml names no input volume "
                             "(data.input: [width, height, depth])") from None
    return Volume(width, height, depth)


def preparation(run: Run, invert: str = "auto") -> Preparation:
    """How pictures are prepared for ``run``'s network: as its dataset's catalogue entry says
    (polarity, centring), with the user's ``invert`` choice (auto, on, off)."""
    return preparation_for(dataset_name(str(run.config.data), run.config.task), invert)


def fit_any(image, volume: Volume, prep: Preparation = PLAIN) -> torch.Tensor:
    """A path, PNG/JPEG bytes, a PIL picture, a uint8 array (H, W[, C]) or a uint8 tensor
    (C, H, W) fitted to ``volume`` as uint8 (depth, sy, sx), as the explorer fits uploads."""
    if isinstance(image, str | Path):
        return fit_image_bytes(picture_file_bytes(image), volume, max_bytes=None, prep=prep)
    if isinstance(image, bytes | bytearray):
        return fit_image_bytes(bytes(image), volume, max_bytes=None, prep=prep)
    if isinstance(image, Image.Image):
        return fit_picture(image, volume, prep)
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image if image.ndim == 3 else image[:, :, None]).permute(2, 0, 1)
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 3 \
            and image.shape[0] in (1, 3):
        return fit_prepared(image, volume, prep)
    raise ImageError(f"cannot predict on {type(image).__name__}: give a path, PNG/JPEG bytes, "
                     "a PIL image or uint8 pixels (H, W[, 3] array or C, H, W tensor)")


def predict_one(run: Run, image, top: int = DEFAULT_TOP, source: str = "",
                invert: str = "auto") -> Prediction:
    """What the run's network says about one picture (see :func:`fit_any`; ``invert``: see
    :func:`preparation`), decoded by its task's own prediction, as the explorer's."""
    if top < 1:
        raise ConvscopeError(f"top must be at least 1, got {top}")
    classes = [str(c) for c in run.data_info.get("classes") or []]
    volume = input_volume(run)
    if isinstance(image, str | Path):
        image = picture_file_bytes(image)  # read once: fitted, and measured for boxes
    fitted = fit_any(image, volume, preparation(run, invert))
    with torch.inference_mode():
        found = get_task(run.config.task).prediction(run.model, fitted, classes)
    boxes = "box" in found or "detections" in found
    return _decoded(found, classes, top, source, _to_picture(image, volume) if boxes else None)


def _decoded(found: dict, classes: list[str], top: int, source: str, to_picture) -> Prediction:
    """A task's prediction dict (classify, localize, detect, segment) as a Prediction."""
    def name(index: int) -> str:
        return classes[index] if 0 <= index < len(classes) else str(index)

    ranked: list[tuple[str, float]] = []
    if "probabilities" in found:
        probabilities = found["probabilities"]
        ranked = sorted(((name(i), float(p)) for i, p in enumerate(probabilities)),
                        key=lambda c: -c[1])[:top]
    boxes = []
    if "box" in found:  # a localizer's one object
        boxes = [{"class": name(found["class"]), "score": float(found["confidence"]),
                  "box": to_picture(found["box"])}]
    for d in found.get("detections", []):
        if d["score"] >= BOX_MIN_SCORE and len(boxes) < top:
            boxes.append({"class": name(d["class"]), "score": float(d["score"]),
                          "box": to_picture(d["box"])})
    if "mask" not in found:
        return Prediction(source, ranked, boxes)
    names = [*classes, "background"]
    counts = sorted(((names[i], int(n)) for i, n in enumerate(found["pixels"]) if n),
                    key=lambda c: -c[1])
    return Prediction(source, ranked, boxes, counts, found["mask"].tolist(), names)


def picture_size(image) -> tuple[int, int] | None:
    """A picture's upright (width, height) as given (a path, bytes, PIL picture, array or
    tensor; EXIF turns counted), or None where it cannot be read cheaply."""
    try:
        if isinstance(image, str | Path | bytes | bytearray):
            source = image if isinstance(image, str | Path) else io.BytesIO(bytes(image))
            with Image.open(source) as picture:
                turned = picture.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)
                return picture.size[::-1] if turned else picture.size
        if isinstance(image, Image.Image):
            return image.size
        if isinstance(image, np.ndarray):
            return image.shape[1], image.shape[0]
        if isinstance(image, torch.Tensor):
            return image.shape[2], image.shape[1]
    except (OSError, ValueError):
        return None
    return None


def _to_picture(image, volume: Volume):
    """Map a box (x, y, w, h) in the network's view back to the picture's pixels: the view is
    the picture's centred part of the input's aspect ratio (:func:`fit_box`), resized."""
    size = picture_size(image)
    left, top, right, bottom = fit_box(size, volume) if size else (0, 0, volume.sx, volume.sy)
    sx, sy = (right - left) / volume.sx, (bottom - top) / volume.sy

    def convert(box) -> list[float]:
        x, y, w, h = (float(v) for v in box)
        return [round(left + x * sx, 1), round(top + y * sy, 1), round(w * sx, 1),
                round(h * sy, 1)]
    return convert


def image_files(paths: list[str | Path]) -> tuple[list[Path], int]:
    """The files to predict on: each file as given, and the pictures under each folder
    (recursively, sorted; a GIF among them is refused by name when read, see
    :func:`convscope.images.check_picture_name`); also the number of other files skipped in
    those folders."""
    files, skipped = [], 0
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        for found in sorted(p for p in path.rglob("*") if p.is_file()):
            if is_picture(found):
                files.append(found)
            else:
                skipped += 1
    return files, skipped


def format_predictions(predictions: list[Prediction], how: str) -> str:
    """``text`` (one line a picture), ``json`` (a list) or ``csv`` (path,class,probability
    rows; with boxes, one more row per box with its x,y,w,h; with masks, class,pixels rows)."""
    if how == "json":
        return json.dumps([p.to_dict() for p in predictions], indent=2)
    if how == "csv":
        return _csv(predictions)
    return "\n".join(p.text() for p in predictions)


def _csv(predictions: list[Prediction]) -> str:
    boxes = any(p.boxes for p in predictions)
    masks = any(p.mask is not None for p in predictions)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "kind", "class", "probability", "x", "y", "w", "h", "pixels"]
                    if boxes or masks else ["path", "class", "probability"])
    for p in predictions:
        if not (boxes or masks):
            writer.writerows([p.source, name, f"{prob:.6f}"] for name, prob in p.classes)
            continue
        writer.writerows([p.source, "class", name, f"{prob:.6f}", "", "", "", "", ""]
                         for name, prob in p.classes)
        writer.writerows([p.source, "box", b["class"], f"{b['score']:.6f}", *b["box"], ""]
                         for b in p.boxes)
        writer.writerows([p.source, "pixels", name, "", "", "", "", "", n]
                         for name, n in p.pixels)
    return out.getvalue().rstrip("\n")


def predict_files(run: Run, paths: list[str | Path], top: int, how: str = "text",
                  invert: str = "auto") -> int:
    """``convscope predict``: print the predictions for every picture named or found in a
    folder, and one ``error:`` line on stderr for each that cannot be read; the number of
    those failures."""
    preparation(run, invert)  # a wrong ``invert`` is one error, before any file
    files, skipped = image_files(paths)
    if skipped:
        print(f"warning: skipped {skipped} file(s) that are not pictures", file=sys.stderr)
    if not files:
        raise ConvscopeError("no PNG or JPEG files to predict on")
    predictions, failed = [], 0
    for path in files:
        try:
            predictions.append(predict_one(run, path, top, str(path), invert))
        except ImageError as exc:
            failed += 1
            print(f"error: {path}: {exc}", file=sys.stderr)
        except OSError as exc:
            failed += 1
            print(f"error: {path}: {exc.strerror or exc}", file=sys.stderr)
    if predictions or how == "json":
        print(format_predictions(predictions, how))
    return failed
