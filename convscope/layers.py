"""PyTorch modules for resolved spec layers.

Every module takes and returns 4-D tensors (N, depth, sy, sx); a 1x1xD volume (the output of
fc, softmax or global_pool) is (N, D, 1, 1), so any layer can follow any other.
"""

from __future__ import annotations

import torch
from torch import nn

from convscope.spec import Layer


class FullyConnected(nn.Linear):
    """ConvNetJS's fc: flattens the incoming volume and returns (N, num_neurons, 1, 1),
    multiplied by ``scale`` when one is given.

    The flatten order is PyTorch's NCHW (index ``(d*H + y)*W + x``); ConvNetJS stores volumes
    with depth fastest (``(y*W + x)*D + d``), so fc weights from a ConvNetJS snapshot must be
    permuted on import. Parameter names are nn.Linear's (``weight``, ``bias``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 scale: float | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x.flatten(1))[:, :, None, None]
        return out if self.scale is None else out * self.scale


class WhiteningConv(nn.Conv2d):
    """A conv whose filters whiten its input's patches (fitted by :func:`fit_whitening`
    before training) and stay fixed; only the bias trains."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight.requires_grad_(False)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Filters from the patches of ``x`` (N, depth, H, W): each eigenvector of their
        (uncentred) covariance scaled by 1/sqrt(eigenvalue + eps), then the same negated."""
        depth, height, width = self.weight.shape[1:]
        patches = x.float().unfold(2, height, 1).unfold(3, width, 1)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, depth * height * width)
        covariance = patches.T @ patches / patches.shape[0]
        values, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
        filters = (vectors.T / (values[:, None] + eps).sqrt()).flip(0)
        filters = filters.reshape(-1, depth, height, width)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))
        if self.bias is not None:
            self.bias.zero_()


class _Captured(Exception):
    def __init__(self, value: torch.Tensor) -> None:
        self.value = value


def has_whitening(model: nn.Module) -> bool:
    return any(isinstance(m, WhiteningConv) for m in model.modules())


def fit_whitening(model: nn.Module, x: torch.Tensor) -> None:
    """Fit every :class:`WhiteningConv` of ``model``, in order, to the inputs it receives when
    the model runs on ``x`` (in eval mode: batchnorm statistics are left alone)."""
    was_training = model.training
    model.eval()
    for conv in [m for m in model.modules() if isinstance(m, WhiteningConv)]:
        def capture(_module: nn.Module, inputs: tuple) -> None:
            raise _Captured(inputs[0])
        hook = conv.register_forward_pre_hook(capture)
        try:
            with torch.no_grad():
                model(x)
        except _Captured as captured:
            conv.fit(captured.value)
        finally:
            hook.remove()
    model.train(was_training)


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
            kind = WhiteningConv if p.get("init") == "whiten" else nn.Conv2d
            conv = kind(vol.depth, p["filters"], (p["sy"], p["sx"]), p["stride"], p["pad"],
                        bias=p["bias"])
            if p.get("init") == "dirac":
                nn.init.dirac_(conv.weight.data[:vol.depth])
            return conv
        case "pool" if p["kind"] == "max":
            return nn.MaxPool2d((p["sy"], p["sx"]), p["stride"], p["pad"])
        case "pool":
            return nn.AvgPool2d((p["sy"], p["sx"]), p["stride"], p["pad"], count_include_pad=False)
        case "global_pool":
            return nn.AdaptiveMaxPool2d(1) if p["kind"] == "max" else nn.AdaptiveAvgPool2d(1)
        case "fc":
            return FullyConnected(vol.numel, p["num_neurons"], bias=p["bias"],
                                  scale=p.get("scale"))
        case "relu":
            return nn.ReLU()
        case "sigmoid":
            return nn.Sigmoid()
        case "tanh":
            return nn.Tanh()
        case "gelu":
            return nn.GELU()
        case "batchnorm":
            norm = nn.BatchNorm2d(vol.depth, momentum=p.get("momentum", 0.1))
            norm.weight.requires_grad_(p.get("scale", True))
            return norm
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
