"""Weights and training state as safetensors files, written atomically (write, fsync, rename).

Two kinds of file, told apart by their ``convscope`` metadata entry:
``model`` (weights only, the file other tools load) and ``checkpoint`` (weights, optimizer state
and the training position, for ``--resume``). Nothing is ever unpickled, and everything read
is checked before use: metadata, the position, the optimizer's indices, state shapes and
settings (a damaged or hostile file gets a one-line :class:`RunError` naming it and the fix).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ._io import atomic_write
from .errors import RunError
from .flat_optimizer import FlatOptimizer

FORMAT_VERSION = "1"
FIXES = {"checkpoint": "start a new run or resume from an intact checkpoint",
         "model": "restore an intact copy of the file or train the model again"}


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
    return tensors, checked_meta(path, metadata, kind)


def checked_meta(path: Path, metadata: dict, kind: str) -> dict:
    """The JSON object ('meta') of the header ``metadata`` of a convscope ``kind`` file
    (``"model"`` or ``"checkpoint"``); a RunError names what is wrong otherwise."""
    if metadata.get("convscope") != kind:
        raise RunError(
            f"{path}: a safetensors file, but not a convscope {kind} file "
            f"(metadata 'convscope' is {metadata.get('convscope')!r}, expected {kind!r})"
        )
    try:
        meta = json.loads(metadata.get("meta", "{}"))
    except (ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        raise RunError(f"{path}: its metadata ('meta') is not a JSON object; {FIXES[kind]}")
    return meta


def save_model(path: Path, model: torch.nn.Module, meta: dict | None = None) -> None:
    """Write the model's weights (state dict) with optional JSON-able metadata."""
    _save(path, _tensors(model.state_dict(), ""), {"kind": "model", **(meta or {})})


def load_model_weights(path: Path, model: torch.nn.Module) -> dict:
    """Load weights written by :func:`save_model` into ``model``; returns the metadata."""
    tensors, meta = _open(path, "model")
    _load_state(model, tensors, path)
    return meta


def read_model_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a model file written by :func:`save_model`, checked as loading checks
    them (nothing is built: fine-tuning matches them to another network by name and shape)."""
    return _open(path, "model")[0]


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
                    extra: dict[str, torch.Tensor] | None = None,
                    bounds: tuple[int, int] | None = None) -> dict:
    """Restore a checkpoint into ``model``, ``optimizer`` and the ``extra`` tensors (copied in
    place); returns the saved position, checked to lie within ``bounds`` (epochs, steps per
    epoch) when given. Everything is checked before anything is loaded."""
    tensors, meta = _open(path, "checkpoint")
    _check_meta(path, meta)
    if bounds is not None:
        check_position(path, meta["position"], *bounds)
    saved_extra = {name: _saved_extra(path, tensors, name, value)
                   for name, value in (extra or {}).items()}
    state = optimizer_state(path, tensors, meta["optim_scalars"], _parameters(optimizer))
    _check_groups(path, meta["param_groups"], optimizer.state_dict()["param_groups"])
    _load_state(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, path)
    for name, value in (extra or {}).items():
        value.copy_(saved_extra[name])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RunError(f"{path}: the saved optimizer state does not fit this run's optimizer "
                       f"({first}); {FIXES['checkpoint']}") from None
    return meta["position"]


# ---- checking what a checkpoint holds --------------------------------------------------------


def _saved_extra(path: Path, tensors: dict[str, torch.Tensor], name: str,
                 value: torch.Tensor) -> torch.Tensor:
    """The saved ``extra.<name>`` tensor (such as a lookahead's average), shaped as ``value``."""
    if f"extra.{name}" not in tensors:
        raise RunError(f"{path} has no saved {name!r}: it was written by a run with other "
                       "settings; start a new run")
    saved = tensors[f"extra.{name}"]
    if saved.shape != value.shape or not saved.is_floating_point():
        raise _damaged(path, f"the saved {name!r} is a {_shape(saved)} tensor, this run needs "
                             f"{_shape(value)}")
    return saved


TALLY = ("loss", "correct", "seen", "seconds")  # the epoch's running sums (session._new_tally)


def _damaged(path: Path, what: str) -> RunError:
    return RunError(f"{path}: {what}; {FIXES['checkpoint']}")


def _check_meta(path: Path, meta: dict) -> None:
    """The metadata entries a checkpoint needs, each of the right JSON type."""
    for key, kind in (("position", dict), ("param_groups", list), ("optim_scalars", dict)):
        if not isinstance(meta.get(key), kind):
            found = "missing" if key not in meta else f"a {type(meta[key]).__name__}"
            raise _damaged(path, f"its metadata entry {key!r} is {found}, not a "
                                 f"{'list' if kind is list else 'mapping'}")


def _count(value: object, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high


def _number(value: object) -> bool:
    return _finite(value) and value >= 0


def check_position(path: Path, position: dict, epochs: int, steps_per_epoch: int) -> None:
    """A saved position lies within the run: epoch 0..``epochs`` (``epochs``: every epoch done,
    at step 0), step 0..``steps_per_epoch``, and the epoch's running sums are sane numbers."""
    epoch, step, tally = position.get("epoch"), position.get("step"), position.get("tally")
    if not (_count(epoch, epochs) and _count(step, steps_per_epoch)) or \
            (epoch == epochs and step != 0):
        raise _damaged(path, f"its position (epoch {_brief(epoch)}, step {_brief(step)}) is "
                             f"outside this run ({epochs} epochs of {steps_per_epoch} steps, "
                             "counted from 0)")
    if not (isinstance(tally, dict) and all(_number(tally.get(key)) for key in TALLY)
            and all(isinstance(tally[key], int) for key in ("correct", "seen"))
            and step <= tally["seen"] and tally["correct"] <= tally["seen"]):
        raise _damaged(path, f"its running sums of the epoch ({_brief(tally)}) are not "
                             f"{', '.join(TALLY)} counted over {step} steps")


def _parameters(optimizer) -> list[torch.Tensor]:
    """The optimizer's parameters, in the order its state dict numbers them."""
    groups = optimizer.params if isinstance(optimizer, FlatOptimizer) else \
        [group["params"] for group in optimizer.param_groups]
    return [param for group in groups for param in group]


def optimizer_state(path: Path, tensors: dict[str, torch.Tensor], scalars: dict,
                    params: list[torch.Tensor]) -> dict[int, dict]:
    """The per-parameter optimizer state saved as ``optim.<index>.<name>`` tensors and
    ``scalars``, checked against ``params`` (see :func:`_check_entries`)."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            index, _, name = key[6:].partition(".")
            state.setdefault(_index(path, index, len(params)), {})[name] = value
    for index, values in scalars.items():
        if not isinstance(values, dict):
            raise _damaged(path, f"its optimizer numbers of parameter {_brief(index)} are "
                                 f"{_brief(values)}, not a mapping")
        state.setdefault(_index(path, index, len(params)), {}).update(values)
    for name in {name for entry in state.values() for name in entry}:
        _check_entries(path, name, [(entry[name], params[i]) for i, entry in state.items()
                                    if name in entry])
    return state


def _check_entries(path: Path, name: str, pairs: list[tuple[object, torch.Tensor]]) -> None:
    """One state entry (``exp_avg``, ``step``...) over the parameters that have it: tensors of
    floats, each the shape of its parameter or each a single number (a step count); or, saved
    as numbers, None (no buffer yet) or a step count."""
    tensors = [(value, param) for value, param in pairs if isinstance(value, torch.Tensor)]
    if tensors and len(tensors) < len(pairs) or not tensors and not all(
            value is None or name == "step" and _finite(value) for value, _ in pairs):
        other = next(v for v, _ in pairs if not isinstance(v, torch.Tensor))
        raise _damaged(path, f"its optimizer state {name!r} holds {_brief(other)}, not a "
                             "tensor per parameter")
    if all(v.is_floating_point() for v, _ in tensors) and (
            all(v.shape == p.shape for v, p in tensors) or all(v.dim() == 0 for v, _ in tensors)):
        return
    value, param = next((v, p) for v, p in tensors
                        if v.shape != p.shape or not v.is_floating_point())
    raise _damaged(path, f"its optimizer state {name!r} is a {_shape(value)} tensor for a "
                         f"{_shape(param)} parameter")


def _index(path: Path, text: object, count: int) -> int:
    if not (isinstance(text, str) and text.isdecimal() and int(text) < count):
        raise _damaged(path, f"its optimizer state names parameter {_brief(text)}, but this "
                             f"run's optimizer has parameters 0 to {count - 1}")
    return int(text)


def _check_groups(path: Path, saved: list, fresh: list[dict]) -> None:
    """The saved parameter groups are this optimizer's: as many, each over the same parameter
    indices, each setting of the same kind (a number, a flag, a pair of numbers)."""
    if not all(isinstance(group, dict) for group in saved):
        raise _damaged(path, "its optimizer parameter groups are not all mappings")
    if len(saved) != len(fresh):
        raise _damaged(path, f"it saved {len(saved)} optimizer parameter groups, this run's "
                             f"optimizer has {len(fresh)}")
    for number, (group, own) in enumerate(zip(saved, fresh, strict=True)):
        if group.get("params") != own["params"]:
            raise _damaged(path, f"its optimizer parameter group {number} holds other "
                                 "parameters than this run's")
        for key, value in own.items():
            if key in group and _kind(group[key]) != _kind(value):
                raise _damaged(path, f"its optimizer setting {key!r} is {_brief(group[key])}, "
                                     f"not {_kind(value)}")


def _kind(value: object) -> str:
    """What an optimizer setting is: "a flag" (None counts as one: torch's "use the default"),
    "a number", "a list of numbers" (betas) or its type's name."""
    if value is None or isinstance(value, bool):
        return "a flag"
    if isinstance(value, int | float):
        return "a number" if _finite(value) else "not a finite number"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} numbers" if all(_kind(v) == "a number" for v in value) \
            else "a list of other values"
    return f"a {type(value).__name__}"


def _finite(value: object) -> bool:
    """A number JSON wrote that torch takes: a finite float, or an int within 64 bits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) if isinstance(value, float) else abs(value) < 2**63


def _shape(tensor: torch.Tensor) -> str:
    return f"{'x'.join(map(str, tensor.shape)) or 'single-number'} {str(tensor.dtype)[6:]}"


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
