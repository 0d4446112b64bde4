"""What the explorer shows, computed on a SpecNet: every layer's activations, a layer's weights,
one output of a convolution with the arithmetic behind it, and the confusion matrix with the
samples in each cell. Plain functions on tensors, independent of HTTP.

Inputs ``x`` are in the model's input convention (see :func:`convscope.augment.to_input`).
Results are float32 CPU tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import Dataset
from .device import model_device
from .errors import ConvscopeError, SpecError
from .evaluate import Evaluation, evaluate
from .layer_kinds import layer_kind, layer_kinds, layer_label, window_output
from .model import SpecNet
from .spec import Layer


class ProbeError(ConvscopeError):
    """A probe asked of a layer, filter or position that cannot answer it."""


class LayerNotFound(ProbeError):
    """The layer does not exist, or (for weights) it has none."""


def has_weights(layer: Layer) -> bool:
    """Whether ``layer``'s kind has weights to show (:func:`layer_weights`)."""
    return layer_kind(layer.type).has_weights


def _layer(model: SpecNet, index: int) -> Layer:
    if not 0 <= index < len(model.layers):
        raise LayerNotFound(f"layer {index} does not exist: this network has layers "
                            f"0..{len(model.layers) - 1}")
    return model.layers[index]


@torch.no_grad()
def activations(model: SpecNet, x: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's output for ``x`` (D, H, W) or (N, D, H, W), in eval mode, as float32 CPU
    tensors of the same rank as ``x``: the input itself first."""
    single = x.dim() == 3
    was_training = model.training
    if was_training:  # (switching modes walks every module: only when needed)
        model.eval()
    try:
        outputs = model.forward_all((x[None] if single else x).to(model_device(model)))
    finally:
        if was_training:
            model.train()
    return [(out[0] if single else out).float().cpu() for out in outputs]


def layer_weights(model: SpecNet, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weights and bias (None without bias) of a layer whose kind ``has_weights``: conv
    (filters, depth, sy, sx); fc, or any 2-D weight, (num_neurons, *input volume shape), each
    row shaped like the layer's input volume."""
    layer = _layer(model, index)
    if not has_weights(layer):
        weighted = " and ".join(k.name for k in layer_kinds() if k.has_weights)
        raise LayerNotFound(f"layer {index} ({layer_label(layer)}) has no weights to show; "
                            f"{weighted} layers have")
    block = model.blocks[index]
    weights = block.weight.detach().float().cpu()
    if weights.dim() == 2:
        weights = weights.reshape(-1, *layer.in_volume.shape)
    bias = None if block.bias is None else block.bias.detach().float().cpu()
    return weights.contiguous(), bias


@dataclass(frozen=True)
class ConvStep:
    """One output value of a conv filter and its arithmetic: ``products = patch * weights``,
    ``sum = products.sum()``, ``output = sum + bias``. The window's top-left corner is
    (``x0``, ``y0``) in input pixels, negative where it hangs over the zero padding."""

    patch: torch.Tensor
    weights: torch.Tensor
    products: torch.Tensor
    sum: float
    bias: float
    output: float
    x0: int
    y0: int
    out_sx: int
    out_sy: int
    stride: int
    pad: int


def conv_step(model: SpecNet, x: torch.Tensor, layer: int, filter: int, ox: int, oy: int,
              stride: int | None = None, pad: int | None = None) -> ConvStep:
    """Output (``ox``, ``oy``) of filter ``filter`` of conv layer ``layer`` for network input
    ``x`` (D, H, W). ``stride`` and ``pad`` default to the layer's own; other values apply the
    real filter with them, the output size following (W - F + 2P) // S + 1."""
    spec = _layer(model, layer)
    if spec.type != "conv":
        raise ProbeError(f"layer {layer} is {layer_label(spec)}, not a conv layer; "
                         "a convolution step needs a conv layer")
    p, vol = spec.params, spec.in_volume
    stride = p["stride"] if stride is None else stride
    pad = p["pad"] if pad is None else pad
    if stride < 1 or pad < 0:
        raise ProbeError(f"stride must be at least 1 and pad at least 0, got {stride} and {pad}")
    sx, sy = p["sx"], p["sy"]
    try:
        out = window_output(vol, sx, sy, stride, pad, p["filters"])
    except SpecError as e:
        raise ProbeError(str(e)) from None
    out_sx, out_sy = out.sx, out.sy
    if not 0 <= filter < p["filters"]:
        raise ProbeError(f"filter {filter} does not exist: layer {layer} has filters "
                         f"0..{p['filters'] - 1}")
    if not (0 <= ox < out_sx and 0 <= oy < out_sy):
        raise ProbeError(f"output position ({ox}, {oy}) is outside the {out_sx}x{out_sy} output "
                         f"(stride {stride}, pad {pad})")
    source = activations(model, x)[layer - 1]
    x0, y0 = ox * stride - pad, oy * stride - pad
    left, top = max(x0, 0), max(y0, 0)
    right, bottom = min(x0 + sx, vol.sx), min(y0 + sy, vol.sy)
    patch = torch.zeros(vol.depth, sy, sx)
    if left < right and top < bottom:
        patch[:, top - y0:bottom - y0, left - x0:right - x0] = source[:, top:bottom, left:right]
    block = model.blocks[layer]
    weights = block.weight[filter].detach().float().cpu()
    products = patch * weights
    total = products.double().sum().item()
    bias = 0.0 if block.bias is None else block.bias[filter].item()
    return ConvStep(patch, weights, products, total, bias, total + bias, x0, y0, out_sx, out_sy,
                    stride, pad)


Cell = list[tuple[int, float]]


@dataclass(frozen=True)
class Confusion:
    """An evaluation plus, per cell ``cells[actual][predicted]``, the (sample index,
    confidence) pairs of the samples landing there, most confident first."""

    evaluation: Evaluation
    cells: list[list[Cell]]


def confusion_with_samples(model: torch.nn.Module, dataset: Dataset,
                           per_cell: int | None = 64) -> Confusion:
    """Evaluate ``model`` on ``dataset`` and keep at most ``per_cell`` samples per confusion
    cell (all of them for None), most confident first (ties: lower index first)."""
    evaluation = evaluate(model, dataset)
    labels, confidences = dataset.labels.tolist(), evaluation.confidences
    k = len(evaluation.classes)
    cells: list[list[Cell]] = [[[] for _ in range(k)] for _ in range(k)]
    for i in sorted(range(len(labels)), key=lambda i: -confidences[i]):
        cell = cells[labels[i]][evaluation.predictions[i]]
        if per_cell is None or len(cell) < per_cell:
            cell.append((i, confidences[i]))
    return Confusion(evaluation, cells)
