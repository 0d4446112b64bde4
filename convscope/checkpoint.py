"""Weights and training state as safetensors files, written atomically (write, fsync, rename).

Two kinds of file, told apart by their ``convscope`` metadata entry:
``model`` (weights only, the file other tools load) and ``checkpoint`` (weights, optimizer state
and the training position, for ``--resume``). Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ._io import atomic_write
from .errors import RunError

FORMAT_VERSION = "1"


def _tensors(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _save(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    metadata = {"convscope": meta.pop("kind"), "format_version": FORMAT_VERSION,
                "meta": json.dumps(meta)}
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def _open(path: Path, kind: str) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunError(
            f"{path}: not a safetensors file ({exc}); convscope reads weights only from the "
            f"model.safetensors / checkpoint.safetensors files that `convscope train` writes"
        ) from None
    if metadata.get("convscope") != kind:
        raise RunError(
            f"{path}: a safetensors file, but not a convscope {kind} file "
            f"(metadata 'convscope' is {metadata.get('convscope')!r}, expected {kind!r})"
        )
    return tensors, json.loads(metadata.get("meta", "{}"))


def save_model(path: Path, model: torch.nn.Module, meta: dict | None = None) -> None:
    """Write the model's weights (state dict) with optional JSON-able metadata."""
    _save(path, _tensors(model.state_dict(), ""), {"kind": "model", **(meta or {})})


def load_model_weights(path: Path, model: torch.nn.Module) -> dict:
    """Load weights written by :func:`save_model` into ``model``; returns the metadata."""
    tensors, meta = _open(path, "model")
    _load_state(model, tensors, path)
    return meta


def _load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0:3]
        raise RunError(f"{path}: weights do not fit this model: {' '.join(first)}") from None


def save_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, position: dict,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write weights, optimizer state, ``position`` (epoch, step, ...) and ``extra`` tensors
    (such as a lookahead's average) in one atomic file."""
    opt_state = optimizer.state_dict()
    tensors = _tensors(model.state_dict(), "model.") | _tensors(extra or {}, "extra.")
    scalars: dict[str, dict] = {}
    for index, state in opt_state["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    meta = {"kind": "checkpoint", "position": position,
            "param_groups": opt_state["param_groups"], "optim_scalars": scalars}
    _save(path, tensors, meta)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    extra: dict[str, torch.Tensor] | None = None) -> dict:
    """Restore a checkpoint into ``model``, ``optimizer`` and the ``extra`` tensors (copied in
    place); returns the saved position."""
    tensors, meta = _open(path, "checkpoint")
    _load_state(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, path)
    for name, value in (extra or {}).items():
        if f"extra.{name}" not in tensors:
            raise RunError(f"{path} has no saved {name!r}: it was written by a run with other "
                           "settings; start a new run")
        value.copy_(tensors[f"extra.{name}"])
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in meta["optim_scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta["position"]
