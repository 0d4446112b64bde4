"""Reader for MNIST's IDX files (gzip-compressed or plain)."""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from convscope.errors import DataError

IMAGES_MAGIC = 0x00000803  # unsigned byte data, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte data, 1 dimension
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the file starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path} is a damaged gzip file ({exc}); it is probably truncated: "
            "delete it and download it again"
        ) from exc


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes whose magic number must be ``magic``."""
    data = _read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        got = "no magic number (file too short)" if found is None else f"magic 0x{found:08x}"
        raise DataError(
            f"{path} has {got}, expected 0x{magic:08x} (IDX unsigned bytes, {ndim} dimensions); "
            "it is not the right MNIST file"
        )
    if len(data) < header:
        raise DataError(
            f"{path} is truncated: {len(data)} bytes, the IDX header alone needs {header} bytes; "
            "download it again"
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + math.prod(dims)
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        shape = " x ".join(map(str, dims))
        raise DataError(
            f"{path} is {problem}: {len(data)} bytes (uncompressed), expected {expected} bytes "
            f"for a {shape} array; download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_mnist(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read an (images, labels) IDX pair: uint8 (N, 1, H, W) and int64 (N,) in 0..9."""
    images_path, labels_path = paths
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
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
