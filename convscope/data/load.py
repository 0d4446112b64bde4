"""``load_dataset``: catalogued datasets from the data directory (downloaded on demand) or
folders."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from convscope.data.cache import cached_arrays
from convscope.data.catalog import DATASETS
from convscope.data.cifar import read_class_names
from convscope.data.dataset import Dataset, train_val_split
from convscope.data.download import DownloadUnavailable, fetch_missing, mirrors
from convscope.data.folder import Decoded, load_folder, split_dirs
from convscope.data.fsdd import FOLDER as FSDD_FOLDER
from convscope.data.fsdd import HOLDOUT as FSDD_HOLDOUT
from convscope.data.fsdd import load_fsdd
from convscope.data.paths import DATA_ENV, resolve_data_dir
from convscope.data.registry import DatasetSpec
from convscope.errors import DataError

SPLITS = ("train", "test")  # every dataset's; an image folder may also have "val"


def load_dataset(
    name_or_path: str | os.PathLike[str],
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    size: tuple[int, int] | None = None,
    base_url: str | None = None,
    decoded: Decoded | None = None,
) -> Dataset:
    """Load ``split`` ("train" or "test"; "val" for an image folder with a ``val/`` folder)
    of a catalogued dataset (see ``DATASETS``), of ``fsdd-holdout-<speaker>``, or of an image
    folder.

    Datasets with files are read from ``<data_dir>/<spec.folder>/``; missing files are
    downloaded there when ``download`` is true (from ``base_url`` or ``$CONVSCOPE_DOWNLOAD_URL``
    when given). ``size`` (width, height) and ``decoded`` (how a run decoded the folder: only
    ``split`` is then read) apply to image folders only.
    """
    path = Path(name_or_path).expanduser()
    holdout = FSDD_HOLDOUT.fullmatch(name_or_path) if isinstance(name_or_path, str) else None
    entry = DATASETS.get(name_or_path) if isinstance(name_or_path, str) else None
    folder = entry is None and holdout is None and path.is_dir()
    if split not in SPLITS and not (split == "val" and folder):
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    if entry is not None or holdout is not None:
        if size is not None:
            raise DataError(f"size applies to image folders only; {name_or_path} has fixed size")
        if entry is None:
            root = resolve_data_dir(data_dir) / FSDD_FOLDER
            return load_fsdd(root, split, holdout["speaker"])
        return entry.load(split, resolve_data_dir(data_dir), download, base_url)
    if folder:
        return load_folder(path, split, size, decoded)
    loadable = [entry.name for entry in DATASETS.values() if entry.kind != "scenes"]
    raise DataError(
        f"{str(name_or_path)!r} is neither a known dataset ({', '.join(loadable)}, "
        "fsdd-holdout-<speaker>) nor an existing image folder (one subfolder of PNG/JPEG files "
        "per class)"
    )


def train_and_val(
    name_or_path: str, val_fraction: float, data_dir: str | None = None,
    size: tuple[int, int] | None = None, decoded: Decoded | None = None,
) -> tuple[Dataset, Dataset]:
    """The training and validation sets: an image folder's ``val/`` split where it has one
    (``val_fraction`` is then not used), else ``val_fraction`` of the training split held out
    (see :func:`train_val_split`); ``decoded``: see :func:`load_dataset`."""
    full = load_dataset(name_or_path, "train", data_dir=data_dir, size=size, decoded=decoded)
    path = Path(name_or_path).expanduser()
    if name_or_path not in DATASETS and path.is_dir() and "val" in split_dirs(path):
        return full, load_dataset(name_or_path, "val", data_dir=data_dir, size=size,
                                  decoded=decoded)
    return train_val_split(full, val_fraction, seed=0)


def _locate(folder: Path, name: str) -> Path | None:
    """``folder/name``, or its uncompressed twin for a ``.gz`` name, if present."""
    for candidate in (name, name.removesuffix(".gz")):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def missing_files(
    name: str, split: str = "train", data_dir: str | os.PathLike[str] | None = None
) -> tuple[Path, list[str]] | None:
    """Where catalogued dataset ``name``'s ``split`` files go and which of them are not there
    yet (nothing is read or downloaded); None for a dataset without downloadable files."""
    entry = DATASETS.get(name)
    if entry is None or entry.source is None:
        return None
    folder = resolve_data_dir(data_dir) / entry.source.folder
    return folder, [n for n in entry.source.splits[split] if _locate(folder, n) is None]


def load_known(
    spec: DatasetSpec, split: str, data_dir: Path, download: bool, base_url: str | None
) -> Dataset:
    """Split ``split`` of the dataset whose files ``spec`` describes, fetching missing ones."""
    folder = data_dir / spec.folder
    names = spec.splits[split]
    missing = [n for n in names if _locate(folder, n) is None]
    if missing:
        if not download:
            raise DataError(_missing_message(spec, split, folder, missing, base_url, None))
        try:
            fetch_missing(spec, folder, missing, base_url)
        except DownloadUnavailable as exc:
            still = [n for n in missing if _locate(folder, n) is None]
            raise DataError(
                _missing_message(spec, split, folder, still, base_url, str(exc))
            ) from exc
    paths = [_locate(folder, n) or folder / n for n in names]
    arrays = cached_arrays(
        f"{spec.name}-{split}",
        paths,
        lambda: dict(zip(("images", "labels"), spec.reader(paths), strict=True)),
    )
    classes = list(spec.classes)
    if spec.classes_file and (folder / spec.classes_file).is_file():
        classes = read_class_names(folder / spec.classes_file, len(spec.classes))
    return Dataset(
        spec.name, torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"]), classes
    )


def _missing_message(
    spec: DatasetSpec,
    split: str,
    folder: Path,
    missing: list[str],
    base_url: str | None,
    failure: str | None,
) -> str:
    """Which files are needed, where they go, and how to get them there."""
    url = mirrors(spec, base_url)[0].rstrip("/") + "/"
    if spec.archive is None:
        source = "Download them from " + ", ".join(url + n for n in missing)
    else:
        archive = spec.archive
        checksum = f"md5 {archive.md5}" if archive.md5 else f"sha256 {archive.sha256}"
        source = (
            f"Download {url}{archive.name} ({checksum}) and extract its "
            f"{spec.archive_prefix or 'files'} into {folder.parent}"
        )
    why = f"Downloading failed: {failure}." if failure else "Downloading is turned off."
    paths = "\n".join(f"  {folder / n}" for n in missing)
    return (
        f"{spec.name} {split} split: {len(missing)} file(s) missing:\n{paths}\n{why}\n"
        f"{source}, so that the files above exist, or pass --data-dir (or set {DATA_ENV}) to "
        f"a directory that already holds {spec.folder}/ with them."
    )
