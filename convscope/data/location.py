"""Where a run's data is, so that the run works from any folder, moved, or on another machine.

A catalogued dataset (``mnist``, ``cifar10``...) is recorded by its name, as typed. An image
folder is recorded by its absolute path (the run's ``train.data``) and, in the run's
``data.folder`` section, by its path relative to the run directory and a fingerprint of each
split. Loading finds the folder at the path given (``eval --data DIR``), else at the absolute
path, else at the relative path (the run and its data moved together), else says what is
missing and how to point the run at it.

The fingerprint of a split folder (``train/``, ``val/``, ``test/``; a folder without splits is
all ``train``) is ``sha256:`` and the first 16 hex digits of the sha256 of one
``<relative path>\\t<size in bytes>\\n`` line per image file in it (the files the loader reads:
image suffixes, no hidden files), sorted by path. Computing it only lists the files and reads
their sizes (no image is opened), and moving or copying the folder keeps it; adding, removing,
renaming or rewriting an image (to another size) changes it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from convscope.data.catalog import DATASETS
from convscope.data.folder import SPLIT_FOLDERS, Decoded, split_dirs
from convscope.errors import DataError
from convscope.images import IMAGE_SUFFIXES


def is_known(data: str) -> bool:
    """Whether ``data`` names a catalogued dataset or an FSDD hold-out."""
    from convscope.data.fsdd import HOLDOUT

    return data in DATASETS or HOLDOUT.fullmatch(data) is not None


def is_folder_name(data: str) -> bool:
    """Whether ``data`` names an image folder that exists here (not a known dataset)."""
    return not is_known(data) and Path(data).expanduser().is_dir()


def absolute_data(data: str) -> str:
    """``data`` as a run records it: an existing image folder as its absolute path, anything
    else (a catalogued dataset's name) unchanged."""
    return str(Path(data).expanduser().resolve()) if is_folder_name(data) else data


def fingerprint(folder: Path) -> str:
    """The fingerprint of one split folder (see the module docstring)."""
    digest = hashlib.sha256()
    for name, size in sorted(_image_files(str(folder), "")):
        digest.update(f"{name}\t{size}\n".encode())
    return "sha256:" + digest.hexdigest()[:16]


def _image_files(folder: str, prefix: str):
    """(relative POSIX path, size) of every non-hidden image file below ``folder``."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                yield from _image_files(entry.path, f"{prefix}{entry.name}/")
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                yield prefix + entry.name, entry.stat().st_size


def fingerprints(root: Path) -> dict[str, str]:
    """The fingerprint of each split of the image folder ``root``."""
    return {split: fingerprint(folder) for split, folder in split_dirs(root).items()}


def folder_record(data: str, run_dir: Path, images: tuple[int, int, int]) -> dict:
    """The ``data.folder`` section of a run trained on the image folder ``data`` (absolute),
    empty for other data: the folder's path relative to the run directory, each split's
    fingerprint and ``images``, the (width, height, channels) its images were decoded to (so
    one split loads later without the others)."""
    if not is_folder_name(data):
        return {}
    try:
        relative = os.path.relpath(data, Path(run_dir).resolve())
    except ValueError:  # another drive (Windows): no relative path
        relative = None
    return {"folder": {"relative": relative, "fingerprint": fingerprints(Path(data)),
                       "images": list(images)}}


def decoded_folder(data_info: dict) -> Decoded | None:
    """How the run whose ``data`` section is ``data_info`` decoded its image folder (None for
    other data and for runs made before convscope recorded it)."""
    folder = data_info.get("folder")
    images = folder.get("images") if isinstance(folder, dict) else None
    classes = data_info.get("classes")
    if images is None:
        return None
    if not (isinstance(images, list) and len(images) == 3
            and all(type(v) is int and 0 < v < 100_000 for v in images) and images[2] in (1, 3)
            and isinstance(classes, list) and classes
            and all(isinstance(c, str) for c in classes)):
        raise DataError(f"data.folder.images {images!r} or data.classes is not what "
                        "convscope writes ([width, height, 1 or 3] and class names)")
    return Decoded(tuple(classes), (images[0], images[1]), images[2])


def locate_folder(recorded: str, record: dict, run_dir: Path, given: str | None = None,
                  split: str = "test") -> str:
    """Where a run's image folder is now: ``given`` (checked to exist), else ``recorded`` (its
    absolute path), else its ``record["relative"]`` path from ``run_dir``. A DataError names
    the recorded path, its fingerprint and the fix when none is there; when the files that
    ``split`` reads differ from the recorded fingerprint, one warning line goes to stderr."""
    prints = record.get("fingerprint")
    prints = {s: p for s, p in prints.items() if isinstance(p, str)} \
        if isinstance(prints, dict) else {}
    if given is not None:
        found = Path(given).expanduser()
        if not found.is_dir():
            raise DataError(f"--data {given}: no such folder; give the image folder the run "
                            f"was trained on (recorded as {recorded}, {_shown(prints)})")
    else:
        relative = record.get("relative")
        relative = relative if isinstance(relative, str) else None
        candidates = [Path(recorded)] + ([Path(run_dir) / relative] if relative else [])
        found = next((p for p in candidates if p.is_dir()), None)
        if found is None:
            beside = f" nor at {os.path.normpath(Path(run_dir) / relative)}" if relative else ""
            raise DataError(f"{run_dir}: its image folder {recorded} is not there{beside} "
                            f"({_shown(prints)}); point the run at the folder's new place "
                            f"with --data DIR (`convscope eval {run_dir} --data DIR`, or "
                            f"`convscope train --resume {run_dir} --data DIR`)")
    read = split if split != "val" or "val" in prints else "train"  # a held-out val: train
    found = found.resolve()
    _check_fingerprint(found, prints, read)
    return str(found)


def _shown(prints: dict) -> str:
    return "fingerprint " + ", ".join(f"{s} {p}" for s, p in prints.items()) if prints \
        else "no fingerprint recorded"


def _check_fingerprint(found: Path, prints: dict, split: str) -> None:
    """One warning line if ``split``'s files differ from its recorded fingerprint."""
    folder = found / split
    if not folder.is_dir():  # a folder without splits is all train
        alone = split == "train" and not any((found / s).is_dir() for s in SPLIT_FOLDERS)
        folder = found if alone else None
    if split not in prints or folder is None:
        return
    now = fingerprint(folder)
    if now != prints[split]:
        print(f"warning: {folder}: the {split} images differ from those the run recorded "
              f"(fingerprint {now}, recorded {prints[split]}): files were added, removed or "
              "changed since training", file=sys.stderr)
