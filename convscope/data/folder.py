"""Image-folder datasets: ``<root>[/train|/val|/test]/<class>/<image>`` with PNG or JPEG files.

A ``val/`` folder (next to ``train/``) is the validation split; without one, training holds
out ``val_fraction`` of the training split (see :func:`convscope.data.load.train_and_val`).

Files without a picture's suffix (``convscope.images.IMAGE_SUFFIXES``) are skipped with one
warning; hidden files and folders (``.DS_Store``) are skipped silently."""

from __future__ import annotations

import json
import math
import re
import statistics
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from convscope.data.cache import cached_arrays
from convscope.data.dataset import Dataset
from convscope.errors import DataError
from convscope.images import DECODED_FORMATS, is_picture
from convscope.progress import progress_bar

# Files with a picture's suffix (convscope.images.IMAGE_SUFFIXES) are read as images (a GIF,
# an unsupported or a damaged one is an error); any other file (notes.txt, Thumbs.db,
# desktop.ini) is skipped, with one warning per folder.
MAX_PIXELS = 40_000_000
DEFAULT_LONG_SIDE = 256  # the default size's longer side at most (a 1600x1200 photo: 256x192)
PROGRESS_IMAGES = 200  # decoding more images shows a progress bar at once; fewer, after 1 s
FIT_VERSION = "crop+exif+draft-v2"  # how images are fitted: part of the cache key
ORIENTATION = 0x0112  # the EXIF tag that says how a camera held the picture
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
SPLIT_FOLDERS = ("train", "val", "test")
_WARNED: set[str] = set()
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)


@dataclass(frozen=True)
class Decoded:
    """How a run decoded its image folder: the ``classes`` (from its training split) and each
    image's ``size`` (width, height) and ``channels`` (1: grey, 3: RGB). Given these,
    :func:`load_folder` reads one split without the others (``eval`` after ``train/`` is
    gone)."""

    classes: tuple[str, ...]
    size: tuple[int, int]
    channels: int


def load_folder(root: Path, split: str = "train", size: tuple[int, int] | None = None,
                decoded: Decoded | None = None) -> Dataset:
    """Load one split of an image folder; every image is fitted to ``size`` (W, H).

    An image is fitted keeping its aspect ratio: scaled (bilinear) until it covers ``size``,
    then centre-cropped (torchvision's Resize + CenterCrop). ``size`` defaults to the median
    width and height of the training images (read from the file headers), scaled down to at
    most ``DEFAULT_LONG_SIDE`` pixels on the longer side, so one large photo among small images
    sets neither the size nor the memory. Images become grey (C=1) when every image of all
    splits is grey, else RGB (C=3); alpha is dropped. A photo's EXIF orientation is applied
    (as a viewer shows it). With ``decoded`` (how a run decoded it), only ``split`` is read,
    fitted as ``decoded`` says (``size`` is then not used).
    """
    if decoded is not None:
        return _load_decoded(root, split, decoded)
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise DataError(f"image size must be (width, height) with both >= 1, got {size}")
    dirs = split_dirs(root)
    train_dir = dirs["train"]
    classes = _class_dirs(train_dir)
    if not classes:
        raise DataError(
            f"{train_dir} has no class subfolders; put the images in {train_dir}/<class>/"
        )
    if split not in dirs:
        raise DataError(
            f"{root} has no {split} split: create {root / split}/<class>/ with the {split} "
            "images, or hold out part of the training split instead"
        )
    skipped: list[Path] = []
    files = {
        name: _list_images(folder, classes, skipped, require_all=name == "train")
        for name, folder in dirs.items()
    }
    if skipped:
        _warn_skipped(root, skipped)
    chosen = files[split]
    if not chosen:
        raise DataError(f"the {split} split of {root} has no images; add PNG or JPEG files")
    every = [p for items in files.values() for p, _ in items]  # train first
    name = root.resolve().name

    def build() -> dict[str, np.ndarray]:
        modes = [_probe(path) for path in every]
        grey = all(mode in GREY_MODES for mode, _ in modes)
        target = size or default_size([s for _, s in modes[: len(files["train"])]])
        images = _decode([p for p, _ in chosen], "L" if grey else "RGB", target)
        return {"images": images, "labels": np.array([y for _, y in chosen], dtype=np.int64)}

    arrays = cached_arrays(
        f"folder-{name}-{split}", every, build,
        extra=json.dumps({"size": size, "fit": FIT_VERSION}),
    )
    return Dataset(
        name, torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"]), classes
    )


def _load_decoded(root: Path, split: str, decoded: Decoded) -> Dataset:
    """``split`` of ``root`` alone (the other splits may be gone), as ``decoded`` says."""
    folder = root / split
    if not folder.is_dir():
        splits = any((root / s).is_dir() for s in SPLIT_FOLDERS)
        if split != "train" or splits:
            raise DataError(f"{root} has no {split} split ({folder} is not a folder); restore "
                            "it, or score another split (eval --split)")
        folder = root
    skipped: list[Path] = []
    items = _list_images(folder, list(decoded.classes), skipped, require_all=False)
    if skipped:
        _warn_skipped(root, skipped)
    if not items:
        raise DataError(f"the {split} split of {root} has no images; add PNG or JPEG files")
    mode = "L" if decoded.channels == 1 else "RGB"

    def build() -> dict[str, np.ndarray]:
        images = _decode([p for p, _ in items], mode, decoded.size)
        return {"images": images, "labels": np.array([y for _, y in items], dtype=np.int64)}

    extra = {"size": list(decoded.size), "mode": mode, "classes": list(decoded.classes),
             "fit": FIT_VERSION}
    name = root.resolve().name
    arrays = cached_arrays(f"folder-{name}-{split}", [p for p, _ in items], build,
                           extra=json.dumps(extra))
    return Dataset(name, torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"]),
                   list(decoded.classes))


def default_augmentation(root: Path) -> str:
    """The default training augmentation of the image folder ``root``: "flip" (horizontal)
    when it loads as RGB (any training image in colour), "none" for grey folders (digits and
    letters must not be mirrored) and for folders that do not load (loading says why)."""
    try:
        train_dir = split_dirs(root)["train"]
        items = _list_images(train_dir, _class_dirs(train_dir), [], require_all=False)
        colour = any(_probe(path)[0] not in GREY_MODES for path, _ in items)
    except (DataError, OSError):
        return "none"
    return "flip" if colour else "none"


def parse_image_size(text: str) -> tuple[int, int]:
    """``"WxH"`` (e.g. ``"64x48"``) as (width, height); a DataError names the fix otherwise."""
    match = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", str(text))
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise DataError(f"image size {text!r} is not WxH with both >= 1, e.g. 64x48")
    return int(match[1]), int(match[2])


def default_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The median (width, height) of ``sizes``, its longer side at most ``DEFAULT_LONG_SIDE``
    (aspect ratio kept)."""
    w = int(statistics.median_low(w for w, _ in sizes))
    h = int(statistics.median_low(h for _, h in sizes))
    scale = min(1.0, DEFAULT_LONG_SIDE / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def split_dirs(root: Path) -> dict[str, Path]:
    """The split folders of ``root``: "train" (``root/train``, else ``root`` itself) and, next
    to a ``train/`` folder, "val" and "test" where present."""
    train = root / "train"
    if not train.is_dir():
        for split in SPLIT_FOLDERS[1:]:
            if (root / split).is_dir():
                raise DataError(
                    f"{root} has a {split}/ folder but no train/ folder; move the training "
                    f"class folders into {train}"
                )
        return {"train": root}
    return {s: root / s for s in SPLIT_FOLDERS if (root / s).is_dir()}


def class_names(root: Path) -> list[str]:
    """The classes of the image folder ``root``: its training split's class folders."""
    return _class_dirs(split_dirs(root)["train"])


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _list_images(
    folder: Path, classes: list[str], skipped: list[Path], require_all: bool
) -> list[tuple[Path, int]]:
    """(file, label) pairs: every non-hidden image file below each class folder, sorted; the
    other non-hidden files are added to ``skipped``."""
    unknown = sorted(set(_class_dirs(folder)) - set(classes))
    if unknown:
        raise DataError(
            f"{folder} has class folders {unknown} that the training split lacks; "
            f"the classes are {classes}"
        )
    items = []
    for label, cls in enumerate(classes):
        class_dir = folder / cls
        files = sorted(
            p
            for p in class_dir.rglob("*")
            if p.is_file() and not any(s.startswith(".") for s in p.relative_to(folder).parts)
        ) if class_dir.is_dir() else []  # fmt: skip
        skipped += [p for p in files if not is_picture(p)]
        files = [p for p in files if is_picture(p)]
        if require_all and not files:
            raise DataError(f"class folder {class_dir} has no images; add some or remove it")
        items += [(p, label) for p in files]
    return items


def _warn_skipped(folder: Path, skipped: list[Path]) -> None:
    """One warning for all the non-image files below ``folder``, naming the first two."""
    named = ", ".join(str(p.relative_to(folder)) for p in skipped[:2])
    more = f" and {len(skipped) - 2} more" if len(skipped) > 2 else ""
    message = (
        f"skipped {len(skipped)} non-image file{'s' if len(skipped) != 1 else ''} in {folder} "
        f"({named}{more}); only PNG and JPEG pictures are read"
    )
    if message not in _WARNED:  # once per process, though training loads train and test
        _WARNED.add(message)
        warnings.warn(message, stacklevel=3)


def _open(path: Path) -> Image.Image:
    """Open ``path`` lazily, refusing non-PNG/JPEG files and images over ``MAX_PIXELS``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path} is too large to decode safely ({exc}); shrink it") from exc
    except UnidentifiedImageError as exc:
        raise DataError(
            f"{path} is not an image (not PNG or JPEG); remove it from the class folder"
        ) from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    w, h = image.size
    problem = None
    if image.format not in DECODED_FORMATS:
        problem = f"is a {image.format} image; only PNG and JPEG are supported: convert it"
    elif w * h > MAX_PIXELS:
        problem = f"has {w}x{h} pixels, more than the limit of {MAX_PIXELS}; shrink it"
    if problem:
        image.close()
        raise DataError(f"{path} {problem}")
    return image


def _probe(path: Path) -> tuple[str, tuple[int, int]]:
    """(PIL mode, (width, height) as shown, EXIF orientation applied) from the file header."""
    with _open(path) as image:
        w, h = image.size
        turned = image.format == "JPEG" and _turned(image)
        return image.mode, (h, w) if turned else (w, h)


def _turned(image: Image.Image) -> bool:
    """Whether the EXIF orientation is a quarter turn (read from a JPEG's header; a PNG's
    EXIF would need a decode, so PNGs are taken as stored)."""
    try:
        return image.getexif().get(ORIENTATION) in (5, 6, 7, 8)
    except _DECODE_ERRORS:
        return False  # a damaged EXIF block: the decode says what is wrong


def _decode(paths: list[Path], mode: str, size: tuple[int, int]) -> np.ndarray:
    """Decode, turn upright (EXIF orientation), convert to ``mode`` and fit (bilinear resize +
    centre crop, aspect ratio kept) into a uint8 (N, C, H, W) array."""
    w, h = size
    out = np.empty((len(paths), h, w, 1 if mode == "L" else 3), dtype=np.uint8)
    delay = 0.0 if len(paths) > PROGRESS_IMAGES else 1.0
    with progress_bar(paths, desc="decoding images", unit="image", leave=False,
                      delay=delay) as bar:
        for i, path in enumerate(bar):
            out[i] = _decode_one(path, mode, (w, h)).reshape(h, w, -1)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _decode_one(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image upright, in ``mode``, fitted to ``size`` (W, H), as an (H, W[, C]) array."""
    with _open(path) as image:
        try:
            _draft(image, size)
            converted = ImageOps.exif_transpose(image).convert(mode)
            if converted.size != size:
                converted = ImageOps.fit(converted, size, Image.Resampling.BILINEAR)
            return np.asarray(converted)
        except _DECODE_ERRORS as exc:
            raise DataError(f"{path} is damaged and cannot be decoded ({exc})") from exc


def _draft(image: Image.Image, size: tuple[int, int]) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale when it still covers ``size`` (W, H) after
    the EXIF turn: a 24-megapixel photo decodes fast and small."""
    if image.format != "JPEG":
        return
    w, h = image.size
    shown = (h, w) if _turned(image) else (w, h)
    cover = max(size[0] / shown[0], size[1] / shown[1])
    image.draft(None, (math.ceil(w * cover), math.ceil(h * cover)))
