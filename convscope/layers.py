"""PyTorch modules for resolved spec layers.

Every module takes and returns 4-D tensors (N, depth, sy, sx); a 1x1xD volume (the output of
fc, softmax or global_pool) is (N, D, 1, 1), so any layer can follow any other.
"""

from __future__ import annotations

import torch
from torch import nn

from convscope.spec import Layer


class FullyConnected(nn.Linear):
    """ConvNetJS's fc: flattens the incoming volume and returns (N, num_neurons, 1, 1).

    The flatten order is PyTorch's NCHW (index ``(d*H + y)*W + x``); ConvNetJS stores volumes
    with depth fastest (``(y*W + x)*D + d``), so fc weights from a ConvNetJS snapshot must be
    permuted on import. Parameter names are nn.Linear's (``weight``, ``bias``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))[:, :, None, None]


class Residual(nn.Module):
    """output = input + body(input)."""

    def __init__(self, body: nn.Sequential) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Concat(nn.Module):
    """A skip connection: the input with an earlier layer's output stacked along the depth."""

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, skip], dim=1)


class InputOffset(nn.Module):
    """The input layer with an ``offset``: output = input + offset."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offset

    def extra_repr(self) -> str:
        return f"offset={self.offset}"


class ConvNetJSDropout(nn.Dropout):
    """Dropout as ConvNetJS computes it: training zeroes values with probability ``p`` without
    rescaling the rest; prediction multiplies every value by ``p``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x) * (1 - self.p)
        return x * self.p


def make_module(layer: Layer) -> nn.Module:
    """The module computing ``layer`` (the input layer is an nn.Identity, or an
    :class:`InputOffset` when it has a nonzero ``offset``).

    Average pooling ignores padded positions (``count_include_pad=False``), as ConvNetJS's
    windows skip out-of-range input. batchnorm is always nn.BatchNorm2d: on a 1x1xD volume,
    held as (N, D, 1, 1), it computes exactly what nn.BatchNorm1d computes on (N, D).
    """
    p, vol = layer.params, layer.in_volume
    match layer.type:
        case "input":
            return InputOffset(p["offset"]) if p.get("offset") else nn.Identity()
        case "conv":
            return nn.Conv2d(vol.depth, p["filters"], (p["sy"], p["sx"]), p["stride"], p["pad"],
                             bias=p["bias"])
        case "pool" if p["kind"] == "max":
            return nn.MaxPool2d((p["sy"], p["sx"]), p["stride"], p["pad"])
        case "pool":
            return nn.AvgPool2d((p["sy"], p["sx"]), p["stride"], p["pad"], count_include_pad=False)
        case "global_pool":
            return nn.AdaptiveMaxPool2d(1) if p["kind"] == "max" else nn.AdaptiveAvgPool2d(1)
        case "fc":
            return FullyConnected(vol.numel, p["num_neurons"], bias=p["bias"])
        case "relu":
            return nn.ReLU()
        case "sigmoid":
            return nn.Sigmoid()
        case "tanh":
            return nn.Tanh()
        case "gelu":
            return nn.GELU()
        case "batchnorm":
            return nn.BatchNorm2d(vol.depth)
        case "dropout" if p.get("scaling") == "convnetjs":
            return ConvNetJSDropout(p["drop_prob"])
        case "dropout":
            return nn.Dropout(p["drop_prob"])
        case "softmax":
            return nn.Softmax(dim=1)
        case "upsample":
            return nn.Upsample(scale_factor=p["factor"], mode="nearest")
        case "concat":
            return Concat()
        case "residual":
            return Residual(nn.Sequential(*(make_module(child) for child in layer.children)))
    raise ValueError(f"no module for layer type {layer.type!r}")
