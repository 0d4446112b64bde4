"""``convscope explain``: for each picture, a PNG of the map over the input and the raw map as
``.npy`` at the input's resolution (:mod:`convscope.explain`). Pictures are fitted as
``convscope predict`` fits them (:func:`convscope.predict.fit_any`)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from ._io import atomic_write
from .augment import to_input
from .errors import ConvscopeError, ImageError
from .explain import EXPLAINED_TASKS, Explanation, explain
from .images import picture_file_bytes
from .predict import fit_any, image_files, input_volume, preparation
from .tasks import get_task

if TYPE_CHECKING:
    from .runs import Run

OVERLAY_SIDE = 224  # an overlay's shorter side is at least this (whole multiples of the input)
# a colour-blind-safe ramp (dark blue, teal, yellow), interpolated between these stops
RAMP = np.array([[13, 8, 135], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64)
MAX_ALPHA = 0.7  # the map's weight over the input where it is strongest


def normalised(found: torch.Tensor | np.ndarray) -> np.ndarray:
    """A map's positive part scaled to 0..1 (all zero where nothing is positive)."""
    values = np.clip(np.asarray(found, np.float64), 0, None)
    top = values.max() if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def colour(values: np.ndarray) -> np.ndarray:
    """0..1 values (H, W) as RGB bytes (H, W, 3) on :data:`RAMP`."""
    position = np.clip(values, 0, 1) * (len(RAMP) - 1)
    low = np.minimum(position.astype(int), len(RAMP) - 2)
    part = (position - low)[..., None]
    return ((1 - part) * RAMP[low] + part * RAMP[low + 1]).round().astype(np.uint8)


def overlay(image: torch.Tensor, found: torch.Tensor) -> np.ndarray:
    """The uint8 input ``image`` (D, H, W) in grey or colour with ``found`` (H, W) coloured
    over it, stronger where the map is; enlarged (nearest) to :data:`OVERLAY_SIDE` or more."""
    picture = image.permute(1, 2, 0).numpy().astype(np.float64)
    if picture.shape[2] == 1:
        picture = picture.repeat(3, axis=2)
    weight = normalised(found)
    alpha = MAX_ALPHA * np.sqrt(weight)[..., None]  # faint parts of the map stay visible
    blended = ((1 - alpha) * picture + alpha * colour(weight)).round().astype(np.uint8)
    scale = max(1, -(-OVERLAY_SIDE // min(blended.shape[:2])))
    return blended.repeat(scale, axis=0).repeat(scale, axis=1)


def png_bytes(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def _save_npy(path: Path, data: np.ndarray) -> None:
    with path.open("wb") as f:
        np.save(f, data, allow_pickle=False)


def _check_task(run: Run) -> None:
    task = run.config.task
    if task not in EXPLAINED_TASKS:
        raise ConvscopeError(f"{run.path.name} is {get_task(task).display_name}; explain "
                             "needs one class score per class (a classifier or a localizer)")


def explain_one(run: Run, path: Path, method: str, layer: str | None, target: str | None,
                out: Path, invert: str = "auto", samples: int | None = None
                ) -> tuple[Explanation, list[Path]]:
    """The map of one picture, written to ``out`` as ``<stem>.<method>.png`` (the overlay)
    and ``<stem>.<method>.npy`` (float32, the input's height x width)."""
    classes = [str(c) for c in run.data_info.get("classes") or []]
    image = fit_any(picture_file_bytes(path), input_volume(run), preparation(run, invert))
    options = {} if samples is None else {"samples": samples}
    found = explain(run.model, to_input(image), method, target, layer, classes, **options)
    written = [out / f"{path.stem}.{method}.png", out / f"{path.stem}.{method}.npy"]
    data = found.map.numpy().astype(np.float32)
    atomic_write(written[0], lambda tmp: tmp.write_bytes(png_bytes(overlay(image, found.map))))
    atomic_write(written[1], lambda tmp: _save_npy(tmp, data))
    return found, written


def explain_files(run: Run, paths: list[str | Path], method: str, layer: str | None,
                  target: str | None, out: str | Path, invert: str = "auto",
                  samples: int | None = None) -> int:
    """``convscope explain``: a map per picture named or found in a folder, one line each on
    stdout; one ``error:`` line on stderr for each picture that cannot be read. The number of
    those failures."""
    _check_task(run)
    preparation(run, invert)
    files, skipped = image_files(paths)
    if skipped:
        print(f"warning: skipped {skipped} file(s) that are not pictures", file=sys.stderr)
    if not files:
        raise ConvscopeError("no PNG or JPEG files to explain")
    out, failed = Path(out), 0
    classes = [str(c) for c in run.data_info.get("classes") or []]
    for path in files:
        try:
            found, written = explain_one(run, path, method, layer, target, out, invert, samples)
        except ImageError as exc:
            failed += 1
            print(f"error: {path}: {exc}", file=sys.stderr)
            continue
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            failed += 1
            print(f"error: {path}: {exc.strerror or exc}", file=sys.stderr)
            continue
        name = classes[found.target] if found.target < len(classes) else str(found.target)
        where = "" if found.layer is None else f" on layer {found.layer}"
        print(f"{path}: {method}{where} for class {name} (score {found.score:.3f}) -> "
              f"{', '.join(str(p) for p in written)}")
    return failed
