"""Decoded-array cache: ``.npz`` files keyed by the source files' path, size and mtime.

One entry per (tag, extra, source directory): when the sources change, the entry is replaced.
The cache is capped (``CONVSCOPE_CACHE_MAX``, default 2 GB): after a write the least recently
used entries are removed until the rest fit, and an entry larger than the cap is not written
(one line says so). ``convscope cache info`` / ``clear`` (:func:`cache_info`,
:func:`clear_cache`) show and empty it.

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
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.data.paths import decoded_cache_dir
from convscope.data.tempfiles import TempFile, remove_stale
from convscope.errors import DataError

FORMAT = 1
Arrays = dict[str, np.ndarray]
MAX_ENV = "CONVSCOPE_CACHE_MAX"
DEFAULT_MAX = 2_000_000_000  # bytes: 2 GB
ENTRY = re.compile(r"[A-Za-z0-9_.-]+-[0-9a-f]{16}\.npz")  # the names of convscope's entries
UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
         "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
         "tib": 2**40}


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
    limit = cache_limit()
    arrays = _read(path, key) if limit else None
    if arrays is None:
        remove_stale(path.parent, ".tmp", lambda name: name.endswith(".npz"))
        arrays = build()
        size = sum(a.nbytes for a in arrays.values())
        if size > limit:
            if limit:
                print(f"note: the decoded {tag} data ({human_size(size)}) is larger than the "
                      f"decoded cache's cap ({human_size(limit)}), so it is not cached; raise "
                      f"{MAX_ENV} to cache it", file=sys.stderr)
            return arrays
        _write(path, key, arrays)
        evict(limit, keep=path)
    else:
        _touch(path)
    return arrays


def parse_size(text: str) -> int:
    """A byte count as ``CONVSCOPE_CACHE_MAX`` takes it: ``2G``, ``500MB``, ``1.5GiB``,
    ``123456`` (bytes); K/M/G/T are powers of 1000, KiB/MiB/GiB/TiB of 1024."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", text)
    unit = UNITS.get(match[2].lower()) if match else None
    if unit is None:
        raise DataError(f"{MAX_ENV}={text!r} is not a size: give bytes or a number with K, M, "
                        "G or T (e.g. 2G, 500M), or 0 to turn the decoded cache off")
    return int(float(match[1]) * unit)


def cache_limit() -> int:
    """The decoded cache's cap in bytes: ``$CONVSCOPE_CACHE_MAX``, else 2 GB (0: no cache)."""
    text = os.environ.get(MAX_ENV)
    return DEFAULT_MAX if text is None or not text.strip() else parse_size(text)


def human_size(size: int) -> str:
    """``size`` bytes for people: "0 B", "12.3 kB", "1.5 GB"."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@dataclass
class Entry:
    """One file of the decoded cache: its path, size in bytes and last use (a POSIX time)."""

    path: Path
    size: int
    used: float


def cache_entries(folder: Path | None = None) -> list[Entry]:
    """convscope's entries in the decoded cache ``folder`` (default: the one in use), least
    recently used first: files named as convscope names them that hold its ``meta`` array
    (other files in the folder are never counted or removed)."""
    folder = decoded_cache_dir() if folder is None else folder
    try:
        paths = [p for p in folder.iterdir() if ENTRY.fullmatch(p.name)]
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            info = path.stat()
            with zipfile.ZipFile(path) as archive:
                ours = "meta.npy" in archive.namelist()
        except (OSError, zipfile.BadZipFile):
            continue
        if ours:
            found.append(Entry(path, info.st_size, info.st_mtime))
    return sorted(found, key=lambda e: (e.used, e.path.name))


def evict(limit: int, keep: Path | None = None) -> list[Entry]:
    """Remove the least recently used entries until the cache holds at most ``limit`` bytes
    (never ``keep``, the entry just written); returns those removed."""
    entries = cache_entries(keep.parent if keep is not None else None)
    total = sum(e.size for e in entries)
    removed = []
    for entry in entries:
        if total <= limit:
            break
        if entry.path == keep:
            continue
        try:
            entry.path.unlink()
        except FileNotFoundError:  # another process removed it
            pass
        except OSError:
            continue
        total -= entry.size
        removed.append(entry)
    return removed


def clear_cache() -> tuple[list[Entry], Path]:
    """Remove every convscope entry (and temp files left by killed builds) from the decoded
    cache; returns the entries removed and the folder."""
    folder = decoded_cache_dir()
    remove_stale(folder, ".tmp", lambda name: ENTRY.fullmatch(name) is not None)
    removed = []
    for entry in cache_entries(folder):
        try:
            entry.path.unlink()
            removed.append(entry)
        except FileNotFoundError:
            pass
    return removed, folder


def cache_info_text() -> str:
    """``convscope cache info``: where the decoded cache is, its cap, and each entry."""
    folder, limit = decoded_cache_dir(), cache_limit()
    entries = cache_entries(folder)
    total = sum(e.size for e in entries)
    where = "" if folder.is_dir() else " (not created yet)"
    lines = [f"decoded cache: {folder}{where} ($CONVSCOPE_CACHE; a copy of decoded datasets "
             "and image folders, made again when removed)",
             f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {human_size(total)}; "
             f"cap {human_size(limit)} (${MAX_ENV}); `convscope cache clear` empties it"]
    now = time.time()
    lines += [f"  {human_size(e.size):>9}  used {_ago(now - e.used):>9}  {e.path.name}"
              for e in reversed(entries)]
    return "\n".join(lines)


def _ago(seconds: float) -> str:
    for unit, scale in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= scale:
            return f"{int(seconds // scale)} {unit} ago"
    return "just now"


def _touch(path: Path) -> None:
    """Mark an entry as just used (its mtime: the cache's least-recently-used order)."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache still serves its entries
        pass


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
