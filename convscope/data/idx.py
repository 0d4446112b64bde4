"""Reader for MNIST's IDX files (gzip-compressed or plain)."""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from convscope.errors import DataError

IMAGES_MAGIC = 0x00000803  # unsigned byte data, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte data, 1 dimension
IMAGE_SIZE = (28, 28)
MAX_DATA_BYTES = 1 << 30  # a file declaring more is refused unread (MNIST's largest: 47 MB)
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def _open(path: Path) -> BinaryIO:
    """``path`` opened for reading, through a streaming gunzip when it starts with gzip's
    magic."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")  # noqa: SIM115


def _read_into(stream: BinaryIO, out: memoryview) -> int:
    """Fill ``out`` from ``stream`` in chunks (never more than ``len(out)`` bytes are
    decompressed); returns the bytes read, fewer at the end of the stream."""
    filled = 0
    while filled < len(out):
        got = stream.readinto(out[filled : filled + _CHUNK])
        if not got:
            break
        filled += got
    return filled


def read_idx(path: Path, magic: int, item_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes whose magic number must be ``magic``.

    Only as many bytes as the header declares (plus one, to notice extra data) are read, so a
    gzip bomb is refused after that much. ``item_shape`` fixes the dimensions after the first.
    """
    try:
        with _open(path) as stream:
            return _read_idx(stream, path, magic, item_shape)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path} is a damaged gzip file ({exc}); it is probably truncated: "
            "delete it and download it again"
        ) from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_idx(
    stream: BinaryIO, path: Path, magic: int, item_shape: tuple[int, ...] | None
) -> np.ndarray:
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    head = np.empty(header, dtype=np.uint8)
    got = _read_into(stream, memoryview(head))
    found = int.from_bytes(head[:4].tobytes(), "big") if got >= 4 else None
    if found != magic:
        what = "no magic number (file too short)" if found is None else f"magic 0x{found:08x}"
        raise DataError(
            f"{path} has {what}, expected 0x{magic:08x} (IDX unsigned bytes, {ndim} dimensions); "
            "it is not the right MNIST file"
        )
    if got < header:
        raise DataError(
            f"{path} is truncated: {got} bytes, the IDX header alone needs {header} bytes; "
            "download it again"
        )
    dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i].tobytes(), "big") for i in range(ndim)]
    shape = " x ".join(map(str, dims))
    if item_shape is not None and tuple(dims[1:]) != item_shape:
        raise DataError(
            f"{path} declares a {shape} array, expected {' x '.join(map(str, item_shape))} "
            "items; it is not an MNIST file: download it again"
        )
    size = math.prod(dims)
    if size > MAX_DATA_BYTES:
        raise DataError(
            f"{path} declares a {shape} array ({size:,} bytes), more than the {MAX_DATA_BYTES:,} "
            "bytes allowed; the header is corrupt: download the file again"
        )
    data = np.empty(size + 1, dtype=np.uint8)  # one more byte shows whether more data follows
    got = _read_into(stream, memoryview(data))
    if got != size:
        problem, length = ("truncated", header + got) if got < size else (
            "longer than its header says", f"more than {header + size}")
        raise DataError(
            f"{path} is {problem}: {length} bytes (uncompressed), expected {header + size} bytes "
            f"for a {shape} array; download it again"
        )
    return data[:size].reshape(dims)


def read_mnist(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read an (images, labels) IDX pair: uint8 (N, 1, H, W) and int64 (N,) in 0..9."""
    images_path, labels_path = paths
    images = read_idx(images_path, IMAGES_MAGIC, IMAGE_SIZE)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) == 0:
        raise DataError(f"{images_path} holds no images; download it again")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            "labels; the two files do not belong together: download both again"
        )
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataError(
            f"{labels_path}: label {labels[bad[0]]} at index {bad[0]} is outside 0..9; "
            "the file is corrupt: download it again"
        )
    return images[:, None].copy(), labels.astype(np.int64)
