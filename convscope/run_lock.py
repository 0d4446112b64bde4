"""One training at a time per run directory: an OS-level lock (``flock``) on ``<run>/.lock``.

The lock file holds its holder (pid, host, start time, command), so a second training into the
same directory is refused with a message naming it. The operating system releases the lock when
the holder's process ends, however it ends: a killed run never blocks its own resume.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ._io import remove_stale_temps, writing
from .errors import RunError

try:
    import fcntl
except ImportError:  # no flock (Windows): runs go unlocked there
    fcntl = None

LOCK = ".lock"


@contextmanager
def locked_run(path: str | os.PathLike, temp_of: Iterable[str] = ()) -> Iterator[Path]:
    """Create the run directory ``path`` if needed and hold its lock for the duration; then
    remove the temp files of ``temp_of`` (file names) that a killed writer left in it.
    Raises :class:`RunError` naming the holder if another process holds the lock."""
    path = Path(path)
    with writing(path):
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path)
    try:
        remove_stale_temps(path, temp_of)
        yield path
    finally:
        _release(path, fd, created)


def _acquire(path: Path) -> int | None:
    lock = path / LOCK
    if fcntl is None:
        return None
    for _ in range(20):  # the holder may remove the file between our open and our lock
        with writing(lock):
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunError(f"{path} is in use by another training ({holder}); wait for it to "
                           f"end or stop it, or choose another --out") from None
        except OSError as exc:
            os.close(fd)
            raise RunError(f"cannot lock {lock} ({exc.strerror}); choose an --out on a "
                           f"local file system") from None
        if _same_file(fd, lock):
            try:
                _write_holder(fd, lock)
            except BaseException:
                os.close(fd)
                raise
            return fd
        os.close(fd)
    raise RunError(f"cannot lock {lock}: it keeps changing; is another training starting there?")


def _same_file(fd: int, lock: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(lock))
    except FileNotFoundError:
        return False


def _write_holder(fd: int, lock: Path) -> None:
    program = Path(sys.argv[0] if sys.argv else "python")
    name = program.parent.name if program.name == "__main__.py" else program.name  # -m convscope
    command = " ".join([name, *sys.argv[1:]])
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command[:200]}
    with writing(lock):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)


def _holder(fd: int) -> str:
    """Who holds the lock, in words (as far as its file says)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0))
        return (f"pid {int(holder['pid'])} on {str(holder['host'])[:80]}, started "
                f"{str(holder['started'])[:40]}: {str(holder['command'])[:200]}")
    except (OSError, ValueError, TypeError, KeyError):
        return "another process"


def _release(path: Path, fd: int | None, created: bool) -> None:
    """Remove the lock file (while still holding it) and let go; a directory this lock
    created and nothing else filled goes too."""
    if fd is not None:
        with suppress(OSError):
            (path / LOCK).unlink()
        os.close(fd)
    if created:
        with suppress(OSError):
            path.rmdir()
