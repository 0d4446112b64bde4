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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from .data.catalog import preparation_for
from .errors import ConvscopeError, ImageError
from .images import PLAIN, Preparation, fit_image_bytes, fit_picture, fit_prepared
from .layer_kinds import Volume
from .tasks import get_task

if TYPE_CHECKING:
    from .runs import Run

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_TOP = 3


@dataclass
class Prediction:
    """The ``top`` classes for one picture, most probable first: (class name, probability)."""

    source: str
    classes: list[tuple[str, float]]

    def to_dict(self) -> dict:
        return {"path": self.source, "predictions": [
            {"class": name, "probability": p} for name, p in self.classes]}


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
    return preparation_for(str(run.config.data), invert)


def fit_any(image, volume: Volume, prep: Preparation = PLAIN) -> torch.Tensor:
    """A path, PNG/JPEG bytes, a PIL picture, a uint8 array (H, W[, C]) or a uint8 tensor
    (C, H, W) fitted to ``volume`` as uint8 (depth, sy, sx), as the explorer fits uploads."""
    if isinstance(image, str | Path):
        return fit_image_bytes(Path(image).read_bytes(), volume, max_bytes=None, prep=prep)
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


def classifier_task(run: Run):
    """The run's task, which must classify (ConvscopeError otherwise)."""
    task = get_task(run.config.task)
    if not task.classifies:
        raise ConvscopeError(f"{run.path}: a {run.config.task} run; predict supports "
                             "classification for now (use the explorer for boxes and masks)")
    return task


def predict_one(run: Run, image, top: int = DEFAULT_TOP, source: str = "",
                invert: str = "auto") -> Prediction:
    """The ``top`` most probable classes for one picture (see :func:`fit_any`; ``invert``:
    see :func:`preparation`)."""
    if top < 1:
        raise ConvscopeError(f"top must be at least 1, got {top}")
    task = classifier_task(run)
    classes = [str(c) for c in run.data_info.get("classes") or []]
    fitted = fit_any(image, input_volume(run), preparation(run, invert))
    with torch.inference_mode():
        probabilities = task.prediction(run.model, fitted, classes)["probabilities"]
    names = classes if len(classes) == len(probabilities) else \
        [str(i) for i in range(len(probabilities))]
    ranked = sorted(zip(names, probabilities, strict=True), key=lambda c: -c[1])
    return Prediction(source, [(name, float(p)) for name, p in ranked[:top]])


def image_files(paths: list[str | Path]) -> tuple[list[Path], int]:
    """The files to predict on: each file as given, and the PNG and JPEG files under each
    folder (recursively, sorted); also the number of other files skipped in those folders."""
    files, skipped = [], 0
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        for found in sorted(p for p in path.rglob("*") if p.is_file()):
            if found.suffix.lower() in IMAGE_SUFFIXES:
                files.append(found)
            else:
                skipped += 1
    return files, skipped


def format_predictions(predictions: list[Prediction], how: str) -> str:
    """``text`` (one line a picture), ``json`` (a list) or ``csv`` (path,class,probability)."""
    if how == "json":
        return json.dumps([p.to_dict() for p in predictions], indent=2)
    if how == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["path", "class", "probability"])
        for p in predictions:
            writer.writerows([p.source, name, f"{prob:.6f}"] for name, prob in p.classes)
        return out.getvalue().rstrip("\n")
    return "\n".join(f"{p.source}: " + ", ".join(f"{name} ({100 * prob:.1f}%)"
                                                 for name, prob in p.classes)
                     for p in predictions)


def predict_files(run: Run, paths: list[str | Path], top: int, how: str = "text",
                  invert: str = "auto") -> int:
    """``convscope predict``: print the predictions for every picture named or found in a
    folder, and one ``error:`` line on stderr for each that cannot be read; the number of
    those failures."""
    classifier_task(run)
    preparation(run, invert)  # a wrong ``invert`` is one error, before any file
    files, skipped = image_files(paths)
    if skipped:
        print(f"warning: skipped {skipped} file(s) that are not PNG or JPEG", file=sys.stderr)
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
