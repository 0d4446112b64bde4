"""Where a network runs and in what arithmetic: the one owner of device choice and autocast.

The trainer, ``convscope eval``, the explorer and every task go through this module. A run's
``precision`` ("fp32" or "bf16") decides its arithmetic everywhere it runs: its training steps
and wherever it is scored. Tasks never choose a precision themselves; they run under the
caller's :func:`autocast_for`.
"""

from __future__ import annotations

import torch

from .errors import ConvscopeError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


def pick_device(name: str) -> torch.device:
    """The device ``name`` ("auto": CUDA when this PyTorch sees a GPU, else the CPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConvscopeError("--device cuda was asked for, but this PyTorch build sees no GPU; "
                             "use --device cpu (or auto)")
    if name not in DEVICES:
        raise ConvscopeError(f"unknown device '{name}'; choose auto, cpu or cuda")
    return torch.device(name)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device ``model``'s parameters live on (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (on CPUs without bf16 instructions, bf16
    autocast is emulated and several times slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether a run of ``precision`` computes in bfloat16 on ``device`` (the one rule: a new
    precision, such as one that picks bf16 only where :func:`native_bf16`, goes here)."""
    return precision == "bf16"


def autocast_for(precision: str, device: torch.device | torch.nn.Module) -> torch.autocast:
    """bfloat16 autocast on ``device`` (or a model's device) where a run of ``precision``
    computes in bf16 (:func:`uses_bf16`); else autocast off, so an enclosing bf16 region does
    not leak into an fp32 run."""
    if isinstance(device, torch.nn.Module):
        device = model_device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16,
                          enabled=uses_bf16(precision, device))
