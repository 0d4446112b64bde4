"""Temp files beside their target (downloads' ``.part``, decoded caches' ``.tmp``).

A :class:`TempFile` is locked (``flock``) for as long as its process uses it and gets the
normal file mode (0o666 less the umask) when it is installed. :func:`remove_stale` deletes the
ones a killed process left behind: only names of this module's pattern, only when nobody holds
the lock and the file is older than ``STALE_AFTER_S``.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from convscope._io import new_file_mode

try:
    import fcntl
except ImportError:  # not POSIX: staleness is judged by age alone
    fcntl = None  # type: ignore[assignment]

STALE_AFTER_S = 600.0
_RANDOM = r"[a-z0-9_]{8}"  # the random part of tempfile's names
log = logging.getLogger(__name__)


class TempFile:
    """``.<name>.<random><suffix>`` in ``folder``, open for writing (``file``) and locked until
    :meth:`install` renames it over its target or :meth:`discard` deletes it (a ``with`` block
    discards it unless it was installed)."""

    def __init__(self, folder: Path, name: str, suffix: str) -> None:
        fd, path = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=suffix)
        self.path = Path(path)
        self.file = os.fdopen(fd, "w+b")
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        self.installed = False

    def install(self, target: Path) -> None:
        """Close the file, give it the normal mode and rename it to ``target``."""
        self.file.close()
        os.chmod(self.path, new_file_mode())
        os.replace(self.path, target)
        self.installed = True

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        if not self.installed:
            self.discard()


def remove_stale(folder: Path, suffix: str, ours: Callable[[str], bool]) -> list[Path]:
    """Delete the :class:`TempFile` leftovers in ``folder`` whose target name passes ``ours``,
    when unlocked and older than ``STALE_AFTER_S``; returns the paths removed."""
    pattern = re.compile(r"\.(?P<name>.+)\." + _RANDOM + re.escape(suffix))
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    removed = []
    for path in entries:
        match = pattern.fullmatch(path.name)
        if match is not None and ours(match["name"]) and _remove_if_stale(path):
            log.info("removed %s, left behind by an interrupted convscope process", path)
            removed.append(path)
    return removed


def _remove_if_stale(path: Path) -> bool:
    """Unlink ``path`` if it is a regular file, old enough and not locked by a live writer."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or time.time() - info.st_mtime < STALE_AFTER_S:
            return False
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a live process is writing it
                return False
        path.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
