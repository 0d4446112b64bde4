"""Reader for the CIFAR-10 binary version: 3073-byte records, label byte + RGB planes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from convscope.errors import DataError

RECORD_BYTES = 1 + 3 * 32 * 32
BATCH_RECORDS: int | None = 10_000
"""Records in every official batch file (data_batch_1..5.bin, test_batch.bin); None accepts any
positive count (the small batches tests write)."""


def _record_count(path: Path) -> int:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if BATCH_RECORDS is not None and size != BATCH_RECORDS * RECORD_BYTES:
        records = f"{size // RECORD_BYTES:,} records" + (
            f" and {size % RECORD_BYTES} extra bytes" if size % RECORD_BYTES else "")
        raise DataError(
            f"{path} is {size:,} bytes ({records}), but a CIFAR-10 binary batch is exactly "
            f"{BATCH_RECORDS * RECORD_BYTES:,} bytes ({BATCH_RECORDS:,} records of {RECORD_BYTES} "
            "bytes): it is truncated, has extra data or is not a CIFAR-10 batch; download it again"
        )
    if size == 0 or size % RECORD_BYTES:
        raise DataError(
            f"{path} is {size} bytes, not a positive multiple of the {RECORD_BYTES}-byte "
            "CIFAR-10 record: it is truncated or not a CIFAR-10 binary batch; download it again"
        )
    return size // RECORD_BYTES


def read_cifar(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate binary batches: uint8 images (N, 3, 32, 32) RGB and int64 labels in 0..9."""
    counts = [_record_count(p) for p in paths]
    images = np.empty((sum(counts), 3, 32, 32), dtype=np.uint8)
    labels = np.empty(sum(counts), dtype=np.int64)
    start = 0
    for path, count in zip(paths, counts, strict=True):
        try:
            records = np.fromfile(path, dtype=np.uint8).reshape(count, RECORD_BYTES)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {path}: {exc}; download it again") from exc
        bad = np.flatnonzero(records[:, 0] > 9)
        if bad.size:
            raise DataError(
                f"{path}: label {records[bad[0], 0]} of record {bad[0]} is outside 0..9; "
                "the file is corrupt or not a CIFAR-10 batch: download it again"
            )
        images[start : start + count] = records[:, 1:].reshape(count, 3, 32, 32)
        labels[start : start + count] = records[:, 0]
        start += count
    return images, labels


def read_class_names(path: Path, expected: int) -> list[str]:
    """Class names from a ``batches.meta.txt``-style file: one per line, blank lines ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read class names from {path}: {exc}") from exc
    names = [line.strip() for line in lines if line.strip()]
    if len(names) != expected:
        raise DataError(
            f"{path} lists {len(names)} class names, expected {expected} (one per line); "
            "fix or delete the file (the official names are used when it is missing)"
        )
    return names
