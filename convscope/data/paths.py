"""Where datasets and decoded-array caches live on disk."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "CONVSCOPE_DATA"
CACHE_ENV = "CONVSCOPE_CACHE"


def user_cache_root() -> Path:
    """The per-user cache root: ``$XDG_CACHE_HOME/convscope`` or ``~/.cache/convscope``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "convscope"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Pick the data directory: explicit argument > ``$CONVSCOPE_DATA`` > user cache dir.

    The default is ``<user cache>/convscope/data``. The directory is not created here.
    """
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    return user_cache_root() / "data"


def decoded_cache_dir() -> Path:
    """Directory of decoded-array caches: ``$CONVSCOPE_CACHE`` or ``<user cache>/decoded``
    (capped by ``$CONVSCOPE_CACHE_MAX``: :mod:`convscope.data.cache`)."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    return user_cache_root() / "decoded"
