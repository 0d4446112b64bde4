"""The optional extras of ``pip install convscope[...]``: which packages each one brings, and the
one-line error naming the extra to install when a feature needs a package that is missing.

The core install trains, evaluates and predicts; everything else is an extra. A feature that
needs one calls :func:`require` at the moment it is used (never at import time), so
``import convscope`` and the core commands work without any extra.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

from convscope.errors import ConvscopeError


class MissingExtra(ConvscopeError):
    """A feature needs an optional package that is not installed; names the extra."""


@dataclass(frozen=True)
class Extra:
    """One extra: its name, what it is for, and the modules it provides (import names)."""

    name: str
    purpose: str
    modules: tuple[str, ...]

    @property
    def install(self) -> str:
        return f'pip install "convscope[{self.name}]"'


EXTRAS: dict[str, Extra] = {extra.name: extra for extra in (
    Extra("serve", "the web explorer (convscope serve)",
          ("fastapi", "starlette", "pydantic", "uvicorn", "websockets", "multipart")),
    Extra("onnx", "ONNX export and import", ("onnx",)),
    Extra("plot", "figures (convscope.plot, a run's curves.png and confusion.png)",
          ("matplotlib",)),
    Extra("osc", "OSC streams and camera capture (convscope stream)", ("pythonosc", "cv2")),
)}

# The pip name of a module whose import name differs from it (pyproject.toml's extras use these).
PACKAGE_OF = {"pythonosc": "python-osc", "cv2": "opencv-python-headless",
              "multipart": "python-multipart"}


def package_of(module: str) -> str:
    """The name ``pip install`` knows the package of ``module`` (``cv2.x``) by."""
    top = module.split(".")[0]
    return PACKAGE_OF.get(top, top)


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (empty when it is installed)."""
    return [name for name in EXTRAS[extra].modules if importlib.util.find_spec(name) is None]


def available(extra: str) -> bool:
    return not missing(extra)


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` (one of ``extra``'s); if it is missing, raise one line naming the
    feature that needs it and the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        entry = EXTRAS[extra]
        raise MissingExtra(f"{feature or entry.purpose} needs the {package_of(module)} package, "
                           f"which is not installed: {entry.install}") from None


def require_extra(extra: str, feature: str | None = None) -> None:
    """Check that every package of ``extra`` is installed, before a feature that needs them all
    (the web explorer) imports any; else the one line of :func:`require` for the first one."""
    for module in missing(extra)[:1]:
        require(module, extra, feature)
