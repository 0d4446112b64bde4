"""Where a network runs and in what arithmetic: the one owner of device choice and autocast.

The trainer, ``convscope eval``, the explorer and every task go through this module. A run's
``precision`` ("auto", "fp32" or "bf16") decides its arithmetic everywhere it runs: its training
steps and wherever it is scored. "auto" (the default) is bf16 where the device computes it
natively (:func:`native_bf16`), else fp32 (:func:`resolve_precision`, the one rule). Tasks never
choose a precision themselves; they run under the caller's :func:`autocast_for`.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConvscopeError

if TYPE_CHECKING:  # imported where used, so the CLI's parser (which reads DEVICES) is torch-free
    import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
EMULATED_BF16_SLOWDOWN = 9  # bf16 autocast against fp32 on a CPU without bf16 instructions
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")
# oneDNN's ISA limits (ONEDNN_MAX_CPU_ISA) below AVX512_CORE_BF16: bf16 is emulated there
_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                      "AVX512_CORE_VNNI")


def pick_device(name: str) -> torch.device:
    """The device ``name``: "auto" is CUDA when this PyTorch sees a GPU, else Apple's MPS
    where this PyTorch offers it, else the CPU."""
    import torch

    if name not in DEVICES:
        raise ConvscopeError(f"unknown device '{name}'; choose one of: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else
                            "mps" if mps_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConvscopeError("--device cuda was asked for, but this PyTorch build sees no GPU; "
                             "use --device cpu (or auto)")
    if name == "mps" and not mps_available():
        raise ConvscopeError("--device mps was asked for, but this PyTorch offers no MPS (Apple "
                             "silicon GPU) here; use --device cpu (or auto)")
    return torch.device(name)


def mps_available() -> bool:
    """Whether this PyTorch can run on Apple's MPS (Metal) GPU here."""
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def model_device(model: torch.nn.Module) -> torch.device:
    """The device ``model``'s parameters live on (the CPU for a model without any)."""
    import torch

    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU with bf16, or a CPU whose
    oneDNN reports bf16 support with AVX512-BF16 or AMX instructions, not limited below
    AVX512_CORE_BF16 by ``ONEDNN_MAX_CPU_ISA``. Elsewhere bf16 autocast is emulated and
    several times slower than fp32. On Apple's MPS bf16 is not counted as native: "auto" runs
    fp32 there (an explicit ``--precision bf16`` is still honoured)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_native_bf16()
    return False


@functools.cache
def _cpu_native_bf16() -> bool:
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or ""
    if limit.strip().upper() in _ISAS_WITHOUT_BF16:
        return False
    flags = cpu_info()["flags"]
    if flags is not None and not {"avx512_bf16", "amx_bf16"} & set(flags):
        return False  # oneDNN also says yes where AVX-512 alone emulates bf16
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: torch.device) -> str:
    """The arithmetic ("fp32" or "bf16") a run of ``precision`` computes in on ``device``:
    the one rule. "auto" is bf16 where :func:`native_bf16`, else fp32."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether a run of ``precision`` computes in bfloat16 on ``device``."""
    return resolve_precision(precision, device) == "bf16"


def scoring_precision(precision: str) -> str:
    """The precision a finished run of ``precision`` is scored in by ``convscope eval`` and
    the explorer: fp32 runs in fp32; bf16 and auto runs in bf16 only where it is native
    ("auto"), so scoring is never several times slower by surprise."""
    return "fp32" if precision == "fp32" else "auto"


def precision_text(precision: str, device: torch.device, tuned: str | None = None) -> str:
    """How a run of ``precision`` (a recipe tuned in ``tuned``) computes on ``device``, for
    its start line: "bf16", or "fp32 (auto: this CPU has no native bf16; the recipe was tuned
    in bf16)"."""
    used = resolve_precision(precision, device)
    notes = []
    if precision == "auto" and used != tuned and tuned is not None:
        where = "this CPU" if device.type == "cpu" else "this GPU"
        notes.append(f"auto: {where} {'has' if used == 'bf16' else 'has no'} native bf16")
    if tuned is not None and used != tuned:
        notes.append(f"the recipe was tuned in {tuned}")
    return used + (f" ({'; '.join(notes)})" if notes else "")


def warn_if_emulated(precision: str, device: torch.device) -> None:
    """Warn (on stderr) where bf16 was asked for explicitly but ``device`` only emulates it."""
    if precision == "bf16" and device.type == "mps":
        print("warning: --precision bf16 on MPS: its bf16 support depends on the macOS and "
              "PyTorch versions and is untested here; --precision auto (the default) picks "
              "fp32 there", file=sys.stderr)
    elif precision == "bf16" and not native_bf16(device):
        print(f"warning: --precision bf16 on a {device.type.upper()} without native bf16: "
              f"bf16 is emulated here, about {EMULATED_BF16_SLOWDOWN}x slower than fp32; "
              "--precision auto (the default) picks fp32 here", file=sys.stderr)


def autocast_for(precision: str, device: torch.device | torch.nn.Module) -> torch.autocast:
    """bfloat16 autocast on ``device`` (or a model's device) where a run of ``precision``
    computes in bf16 (:func:`uses_bf16`); else autocast off, so an enclosing bf16 region does
    not leak into an fp32 run."""
    import torch

    if isinstance(device, torch.nn.Module):
        device = model_device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16,
                          enabled=uses_bf16(precision, device))


@functools.cache
def cpu_info() -> dict:
    """This machine's CPU model and its flags that decide conv speed (:data:`CPU_FLAGS`;
    None where /proc/cpuinfo is unreadable)."""
    model, flags = platform.processor() or platform.machine(), None
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    model = fields.get("model name", model)
    if "flags" in fields:
        present = set(fields["flags"].split())
        flags = [flag for flag in CPU_FLAGS if flag in present]
    return {"model": model, "flags": flags}
