"""``convscope train --config FILE``: training settings read from a YAML file.

The file maps :class:`~convscope.config.TrainConfig` field names (``batch_size`` or
``batch-size``) to values, checked as the command line's are. A run's own ``config.yaml`` is
accepted too, so a run can be trained again: its ``train`` section gives the settings and its
``model`` section the network (a spec given as a Python list is kept there; a factory's keyword
arguments too); the sections it only records (:data:`RECORDED`) are ignored.
"""

from __future__ import annotations

import difflib
from dataclasses import fields
from pathlib import Path

import yaml

from .config import TrainConfig
from .errors import ConvscopeError

# sections of a run's config.yaml that record what a run was, not what to train
RECORDED = {"data": "the dataset's classes, input volume and split sizes",
            "environment": "the machine, CPU, versions and precision used"}


def read_config_file(path: str | Path) -> tuple[dict, object]:
    """``(settings, model)`` from ``path``: TrainConfig fields (model, data and task among
    them, where given), and for a run's config.yaml the model to train again (a reference, a
    spec list or ``(reference, keyword arguments)``; else None)."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
            str(exc).splitlines()[0]
        raise ConvscopeError(f"--config {path}: cannot read it as YAML ({reason})") from None
    if not isinstance(document, dict):
        raise ConvscopeError(f"--config {path}: expected a mapping of training settings "
                             "(e.g. 'epochs: 3'), got "
                             f"{type(document).__name__ if document is not None else 'nothing'}")
    model = None
    if isinstance(document.get("train"), dict) and "model" in document:  # a run's config.yaml
        model = _run_model(document["model"], path)
        document = document["train"]
    settings = {str(key).replace("-", "_"): value for key, value in document.items()}
    _check_names(settings, path)
    if model is not None:
        settings.pop("model", None)
    return settings, model


def _check_names(settings: dict, path: Path) -> None:
    known = [f.name for f in fields(TrainConfig)]
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else \
                "; see `convscope train --help` for the settings"
            raise ConvscopeError(f"--config {path}: unknown training setting {key!r}{hint}")


def _run_model(info: object, path: Path) -> object:
    """The model a run's ``model`` section names, in the form :func:`convscope.train` takes."""
    if not isinstance(info, dict) or not isinstance(info.get("ref"), str):
        raise ConvscopeError(f"--config {path}: its model section names no model")
    if info.get("kind") == "object":
        raise ConvscopeError(f"--config {path}: the run trained an nn.Module object, which "
                             "cannot be rebuilt from a file; give --model")
    if info["ref"] == "<python>" and isinstance(info.get("spec"), list):
        return info["spec"]  # a spec given as a Python list: the run keeps it whole
    kwargs = info.get("kwargs")
    return (info["ref"], kwargs) if isinstance(kwargs, dict) and kwargs else info["ref"]
