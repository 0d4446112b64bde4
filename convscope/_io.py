"""Private file helpers: atomic writes so a killed process never leaves a half-written file,
and the one place where an OS error while writing becomes a one-line :class:`WriteError`."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import yaml

from .errors import WriteError

TEMP_SUFFIX = ".tmp"  # atomic_write's temp files: .<name>.<8 random characters>.tmp
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how Rust-backed writers (safetensors) say it


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Report an OS error raised while writing ``path`` as a :class:`WriteError` that names the
    path and the fix (free space, a writable --out)."""
    try:
        yield
    except Exception as exc:
        code = exc.errno if isinstance(exc, OSError) else _rust_errno(exc)
        if code is None and not isinstance(exc, OSError):
            raise
        raise write_error(path, code, exc) from None


def _rust_errno(exc: Exception) -> int | None:
    match = _RUST_OS_ERROR.search(str(exc))
    return int(match[1]) if match else None


def write_error(path: Path, code: int | None, exc: Exception | None = None) -> WriteError:
    reason = os.strerror(code) if code else str(exc)
    if code in NO_SPACE:
        fix = "free some space there (or choose another --out) and try again"
    elif code in NOT_WRITABLE:
        fix = "choose a writable --out (or make the directory writable)"
    else:
        fix = "check the path, or choose another --out"
    return WriteError(f"cannot write {path} ({reason}); {fix}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, fsync it, rename it over ``path``."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=TEMP_SUFFIX,
                                        dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            write(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give it normal permissions
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)


def append_text(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` and flush it (for logs written a line at a time)."""
    with writing(path), open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()


def _temp_prefix(name: str) -> str:
    return f".{name}."


def remove_stale_temps(directory: Path, names: Iterable[str]) -> list[Path]:
    """Remove the temp files that :func:`atomic_write` of ``names`` in ``directory`` left
    behind when its process was killed. Call it only while holding what keeps every other
    writer of ``directory`` out (a run's lock), or a live writer's temp file goes too."""
    removed = []
    for name in names:
        pattern = re.compile(re.escape(_temp_prefix(name)) + r"[a-z0-9_]{8}"
                             + re.escape(TEMP_SUFFIX))
        for tmp in Path(directory).glob(f".*{TEMP_SUFFIX}"):
            if pattern.fullmatch(tmp.name) and tmp.is_file() and not tmp.is_symlink():
                with suppress(FileNotFoundError):
                    tmp.unlink()
                removed.append(tmp)
    return removed


def _umask() -> int:
    """The process umask; read from /proc where it can be, since setting it (the only portable
    way to read it) briefly affects files other threads create."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file (0o666 less the umask); mkstemp's files get 0600."""
    return 0o666 & ~_umask()


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: Path, data: object) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_yaml_atomic(path: Path, data: object) -> None:
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))
