"""Decoded-array cache: ``.npz`` files keyed by the source files' path, size and mtime.

One entry per (tag, extra, source directory): when the sources change, the entry is replaced.

Entries live in the per-user cache dir (never the data dir, which may be read-only), are
written atomically with the normal file mode, and are rebuilt whenever their stored key, shapes
or dtypes disagree or the file is damaged (the zip CRC is checked on read). Pickle is never
allowed. Temp files of builds that were killed are removed when the next build starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from convscope.data.paths import decoded_cache_dir
from convscope.data.tempfiles import TempFile, remove_stale
from convscope.errors import DataError

FORMAT = 1
Arrays = dict[str, np.ndarray]


def cached_arrays(
    tag: str, sources: Sequence[Path], build: Callable[[], Arrays], extra: str = ""
) -> Arrays:
    """Arrays for ``tag`` from the cache when ``sources`` are unchanged, else ``build()`` them."""
    sources = [p.resolve() for p in sources]
    try:
        stats = [p.stat() for p in sources]
    except OSError as exc:
        raise DataError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    stamps = [[str(p), s.st_size, s.st_mtime_ns] for p, s in zip(sources, stats, strict=True)]
    key = {"format": FORMAT, "tag": tag, "extra": extra, "sources": stamps}
    home = os.path.commonpath([str(p.parent) for p in sources])
    slot = hashlib.sha256(json.dumps([tag, extra, home]).encode()).hexdigest()
    path = decoded_cache_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', tag)}-{slot[:16]}.npz"
    arrays = _read(path, key)
    if arrays is None:
        remove_stale(path.parent, ".tmp", lambda name: name.endswith(".npz"))
        arrays = build()
        _write(path, key, arrays)
    return arrays


def _read(path: Path, key: dict) -> Arrays | None:
    """The cached arrays if ``path`` holds a sound entry for ``key``, else None."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(npz["meta"].tobytes())
            if meta["key"] != key:
                return None
            arrays = {}
            for name, info in meta["arrays"].items():
                array = npz[name]
                if list(array.shape) != info["shape"] or array.dtype.str != info["dtype"]:
                    return None
                arrays[name] = array
            return arrays
    except (
        OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, EOFError,
        zipfile.BadZipFile,
    ):  # fmt: skip
        return None


def _write(path: Path, key: dict, arrays: Arrays) -> None:
    """Store ``arrays`` atomically (temp file + rename); a failure only costs speed."""
    meta = {
        "key": key,
        "arrays": {n: {"shape": list(a.shape), "dtype": a.dtype.str} for n, a in arrays.items()},
    }
    blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with TempFile(path.parent, path.name, ".tmp") as part:
            np.savez(part.file, meta=blob, **arrays)
            part.install(path)
    except OSError as exc:
        warnings.warn(
            f"cannot write the decoded-array cache {path} ({exc}); the next load will decode "
            f"again. Set CONVSCOPE_CACHE to a writable directory to fix this",
            stacklevel=3,
        )
