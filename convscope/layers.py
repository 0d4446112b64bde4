"""PyTorch modules for resolved spec layers: one registered factory per layer kind.

Every module takes and returns 4-D tensors (N, depth, sy, sx); a 1x1xD volume (the output of
fc, softmax or global_pool) is (N, D, 1, 1), so any layer can follow any other.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from convscope.registries import Registry
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


class Branch(nn.Module):
    """A second path: the output of an earlier layer, this layer's input left behind."""

    def forward(self, _x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return source


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


# ---- one module factory per layer kind (the kinds themselves: convscope.layer_kinds) ----------

ModuleFactory = Callable[[Layer], nn.Module]
_FACTORIES: Registry[ModuleFactory] = Registry("module factory of layer kind")


def register_module(kind: str, factory: ModuleFactory) -> ModuleFactory:
    """Build layers of ``kind`` (a registered :class:`~convscope.layer_kinds.LayerKind`) with
    ``factory(layer)``; returns the factory."""
    return _FACTORIES.add(kind, factory)


def unregister_module(kind: str) -> None:
    """Forget the module factory of ``kind`` (for tests that register their own kinds)."""
    _FACTORIES.remove(kind)


def module_for(kind: str) -> Callable[[ModuleFactory], ModuleFactory]:
    """Decorator form of :func:`register_module`."""
    return lambda factory: register_module(kind, factory)


def make_module(layer: Layer) -> nn.Module:
    """The module computing ``layer``, from its kind's registered factory."""
    factory = _FACTORIES.get(layer.type)
    if factory is None:
        raise ValueError(f"no module for layer type {layer.type!r}: register one with "
                         "convscope.layers.register_module")
    return factory(layer)


@module_for("input")
def _input(layer: Layer) -> nn.Module:
    """nn.Identity, or an :class:`InputOffset` when the layer has a nonzero ``offset``."""
    offset = layer.params.get("offset")
    return InputOffset(offset) if offset else nn.Identity()


@module_for("conv")
def _conv(layer: Layer) -> nn.Module:
    p, depth = layer.params, layer.in_volume.depth
    kind = WhiteningConv if p.get("init") == "whiten" else nn.Conv2d
    conv = kind(depth, p["filters"], (p["sy"], p["sx"]), p["stride"], p["pad"], bias=p["bias"])
    if p.get("init") == "dirac":
        nn.init.dirac_(conv.weight.data[:depth])
    return conv


@module_for("pool")
def _pool(layer: Layer) -> nn.Module:
    """Average pooling ignores padded positions (``count_include_pad=False``), as ConvNetJS's
    windows skip out-of-range input."""
    p = layer.params
    if p["kind"] == "max":
        return nn.MaxPool2d((p["sy"], p["sx"]), p["stride"], p["pad"])
    return nn.AvgPool2d((p["sy"], p["sx"]), p["stride"], p["pad"], count_include_pad=False)


@module_for("global_pool")
def _global_pool(layer: Layer) -> nn.Module:
    return nn.AdaptiveMaxPool2d(1) if layer.params["kind"] == "max" else nn.AdaptiveAvgPool2d(1)


@module_for("fc")
def _fc(layer: Layer) -> nn.Module:
    p = layer.params
    return FullyConnected(layer.in_volume.numel, p["num_neurons"], bias=p["bias"],
                          scale=p.get("scale"))


for _name, _activation in (("relu", nn.ReLU), ("sigmoid", nn.Sigmoid), ("tanh", nn.Tanh),
                           ("gelu", nn.GELU)):
    register_module(_name, lambda _layer, module=_activation: module())


@module_for("batchnorm")
def _batchnorm(layer: Layer) -> nn.Module:
    """Always nn.BatchNorm2d: on a 1x1xD volume, held as (N, D, 1, 1), it computes exactly what
    nn.BatchNorm1d computes on (N, D)."""
    norm = nn.BatchNorm2d(layer.in_volume.depth, momentum=layer.params.get("momentum", 0.1))
    norm.weight.requires_grad_(layer.params.get("scale", True))
    return norm


@module_for("dropout")
def _dropout(layer: Layer) -> nn.Module:
    p = layer.params
    return (ConvNetJSDropout if p.get("scaling") == "convnetjs" else nn.Dropout)(p["drop_prob"])


register_module("softmax", lambda _layer: nn.Softmax(dim=1))
register_module("upsample",
                lambda layer: nn.Upsample(scale_factor=layer.params["factor"], mode="nearest"))
register_module("concat", lambda _layer: Concat())
register_module("branch", lambda _layer: Branch())
register_module("residual", lambda layer: Residual(
    nn.Sequential(*(make_module(child) for child in layer.children))))


class LocalResponseNorm(nn.Module):
    """ConvNetJS's local response normalisation across channels: a_i / (k + alpha/n * sum of
    a_j^2 for j within floor(n/2) channels of i) ** beta. Unlike nn.LocalResponseNorm, an even
    ``n`` still sums a window centred on i (2 * floor(n/2) + 1 channels), as ConvNetJS does."""

    def __init__(self, k: float, n: int, alpha: float, beta: float) -> None:
        super().__init__()
        self.k, self.n, self.alpha, self.beta = k, n, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.n // 2
        squares = nn.functional.pad(x.square(), (0, 0, 0, 0, half, half))  # zero channels
        sums = squares.unfold(1, 2 * half + 1, 1).sum(-1)
        return x / (self.k + self.alpha / self.n * sums).pow(self.beta)

    def extra_repr(self) -> str:
        return f"k={self.k}, n={self.n}, alpha={self.alpha}, beta={self.beta}"


register_module("lrn", lambda layer: LocalResponseNorm(**layer.params))


@module_for("wavenet")
def _wavenet(layer: Layer) -> nn.Module:
    from convscope.wavenet.model import WaveNet  # the stack lives with its generation code

    return WaveNet(**layer.params)
