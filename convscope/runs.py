"""Run directories: what a training run leaves behind, and loading it back.

    <run>/config.yaml              resolved settings, the model (spec or reference), environment
    <run>/metrics.jsonl            one JSON line per finished epoch
    <run>/checkpoint.safetensors   latest training state (weights + optimizer + position)
    <run>/model.safetensors        final weights
    <run>/results.json             final evaluation on the official test set
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from . import __version__
from ._io import append_text, write_text_atomic, write_yaml_atomic
from .checkpoint import load_model_weights
from .config import TrainConfig
from .device import cpu_info
from .errors import ConvscopeError, RunError

CONFIG, METRICS, CHECKPOINT, MODEL, RESULTS = (
    "config.yaml", "metrics.jsonl", "checkpoint.safetensors", "model.safetensors", "results.json"
)


def build_from_info(info: dict) -> torch.nn.Module:
    """Build a fresh (untrained) model from the ``model`` section of a run's config."""
    from .user_module import ModelDescription

    return ModelDescription(info.get("kind", "spec"), info["ref"], info.get("spec")).build()


def environment(precision: str | None = None) -> dict:
    """The versions, the machine and its CPU (model and the flags that decide conv speed)
    and, when given, the ``precision`` a run actually computed in ("fp32" or "bf16")."""
    used = {"precision": precision} if precision else {}
    return {"convscope": __version__, "torch": str(torch.__version__),
            "python": platform.python_version(), "machine": platform.machine(),
            "threads": torch.get_num_threads(), "cpu": cpu_info(), **used}


@dataclass
class Run:
    """A run directory and what it holds; ``model`` has the final (or latest) weights, loaded
    from the run on first use unless the trainer set it."""

    path: Path
    config: TrainConfig
    model_info: dict
    data_info: dict
    metrics: list[dict] = field(default_factory=list)
    results: dict | None = None
    _model: torch.nn.Module | None = field(default=None, repr=False)

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = build_from_info(self.model_info)
            weights = self.path / MODEL
            if not weights.exists():
                raise RunError(f"{self.path}: no {MODEL} yet; finish it with "
                               f"`convscope train --resume {self.path}`")
            load_model_weights(weights, self._model)
            self._model.eval()
        return self._model

    @model.setter
    def model(self, module: torch.nn.Module) -> None:
        """Hand the run the network it has trained (so ``model`` needs no reload)."""
        self._model = module

    def write_config(self, precision: str | None = None) -> None:
        """config.yaml; ``precision``: the arithmetic the run computes in (its
        ``config.precision`` resolved on this machine)."""
        write_yaml_atomic(self.path / CONFIG, {
            "train": self.config.to_dict(), "model": self.model_info,
            "data": self.data_info, "environment": environment(precision),
        })

    def append_metrics(self, line: dict) -> None:
        self.metrics.append(line)
        append_text(self.path / METRICS, json.dumps(line) + "\n")

    def truncate_metrics(self, epochs_done: int) -> None:
        """Keep only the lines of epochs that the checkpoint being resumed has completed."""
        self.metrics = [m for m in self.metrics if m["epoch"] <= epochs_done]
        write_text_atomic(self.path / METRICS, "".join(json.dumps(m) + "\n" for m in self.metrics))


def load_run(path: str | Path) -> Run:
    """Open a run directory written by :func:`convscope.train`."""
    path = Path(path)
    config_path = path / CONFIG
    if not config_path.is_file():
        raise RunError(f"{path}: not a convscope run directory (no {CONFIG})")
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        config = TrainConfig.from_dict(data["train"])
        model_info, data_info = data["model"], data["data"]
    except (yaml.YAMLError, KeyError, TypeError, ConvscopeError) as exc:
        raise RunError(f"{config_path}: unreadable run configuration ({exc})") from None
    metrics = []
    if (path / METRICS).exists():
        for number, line in enumerate((path / METRICS).read_text().splitlines(), 1):
            try:
                metrics.append(json.loads(line))
            except json.JSONDecodeError:
                raise RunError(f"{path / METRICS}: line {number} is not JSON") from None
    results = None
    if (path / RESULTS).exists():
        results = json.loads((path / RESULTS).read_text(encoding="utf-8"))
    return Run(path, config, model_info, data_info, metrics, results)
