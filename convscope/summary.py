"""Text summaries of networks: per layer, the output volume, parameters and multiply-adds.

Multiply-adds are for one example, counted as each layer's kind says (:mod:`convscope.layer_kinds`:
conv and fc); pooling, activations, normalisation, dropout and residual additions count 0.
"""

from __future__ import annotations

import torch
from torch import nn

from convscope.errors import SpecError
from convscope.layer_kinds import layer_kinds, layer_label
from convscope.spec import Layer

MODULE_NOTE = "mult-adds: per example, Conv2d and Linear only (other modules count 0)"


def summarize(layers: list[Layer]) -> str:
    """A table of resolved layers (residual children indented under their block) and totals."""
    rows = []

    def add(layer: Layer, index: str, indent: str) -> None:
        rows.append([index, indent + layer_label(layer), str(layer.out_volume),
                     f"{layer.num_params:,}", f"{layer.macs:,}"])
        for child in layer.children:
            add(child, f"{index}.{child.index}", indent + "  ")

    for layer in layers:
        add(layer, str(layer.index), "")
    rows.append(["", "total", "", f"{sum(la.num_params for la in layers):,}",
                 f"{sum(la.macs for la in layers):,}"])
    return _table(["#", "layer", "output", "params", "mult-adds"], rows, "lllrr") + "\n" + _note(
        {la.type for la in layers})


def _note(present: set[str]) -> str:
    """Which layer kinds count multiply-adds, e.g. 'mult-adds: per example, conv and fc only'
    (conv, fc and any other counting kind ``present`` in the network)."""
    counting = [kind.name for kind in layer_kinds() if kind.macs is not None
                and (kind.name in ("conv", "fc") or kind.name in present)]
    listed = f"{', '.join(counting[:-1])} and {counting[-1]}" if counting[1:] else counting[0]
    return (f"mult-adds: per example, {listed} only (pooling, activations, normalisation "
            "count 0)")


def summarize_module(module: nn.Module, input_shape: tuple[int, int, int]) -> str:
    """A table for any nn.Module, from one forward pass of a zero example of ``input_shape``
    (C, H, W) in eval mode (the module's mode is restored afterwards).

    One row per call of a leaf module (one without children): its output shape (W x H x D for
    a 3-D example shape, 1x1xD for 1-D), its own parameters (counted at its first call) and
    multiply-adds for Conv2d and Linear. The total counts every parameter of ``module``.
    """
    rows: list[list[str]] = []
    macs_total = 0
    counted: set[int] = set()

    def hook(name: str):
        def record(mod: nn.Module, _inputs: object, output: object) -> None:
            nonlocal macs_total
            params = 0
            if id(mod) not in counted:
                counted.add(id(mod))
                params = sum(p.numel() for p in mod.parameters(recurse=False))
            macs = _module_macs(mod, output)
            macs_total += macs
            rows.append([name or "(module)", type(mod).__name__, _shape_label(output),
                         f"{params:,}", f"{macs:,}"])
        return record

    handles = [mod.register_forward_hook(hook(name)) for name, mod in module.named_modules()
               if next(mod.children(), None) is None]
    first = next(module.parameters(), None)
    x = torch.zeros(1, *input_shape,
                    dtype=first.dtype if first is not None and first.is_floating_point()
                    else torch.float32,
                    device=first.device if first is not None else "cpu")
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(x)
    except Exception as e:
        raise SpecError(f"running {type(module).__name__} on a zero input of shape "
                        f"{tuple(x.shape)} failed: {type(e).__name__}: {e}") from e
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    total = sum(p.numel() for p in module.parameters())
    rows.append(["total", "", "", f"{total:,}", f"{macs_total:,}"])
    header = ["module", "type", "output", "params", "mult-adds"]
    return _table(header, rows, "lllrr") + "\n" + MODULE_NOTE


def _module_macs(mod: nn.Module, output: object) -> int:
    if not isinstance(output, torch.Tensor):
        return 0
    if isinstance(mod, nn.Conv2d):
        kh, kw = mod.kernel_size
        return output.numel() * (mod.in_channels // mod.groups) * kh * kw
    if isinstance(mod, nn.Linear):
        return output.numel() * mod.in_features
    return 0


def _shape_label(output: object) -> str:
    if not isinstance(output, torch.Tensor):
        return type(output).__name__
    shape = tuple(output.shape[1:])
    if len(shape) == 3:
        return f"{shape[2]}x{shape[1]}x{shape[0]}"
    if len(shape) == 1:
        return f"1x1x{shape[0]}"
    return str(shape)


def _table(header: list[str], rows: list[list[str]], align: str) -> str:
    """Columns padded to fit; ``align`` has 'l' or 'r' per column."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                         for c, w, a in zip(cells, widths, align, strict=True)).rstrip()

    return "\n".join(line(r) for r in [header, *rows])
