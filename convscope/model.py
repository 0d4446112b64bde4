"""SpecNet: the torch.nn.Module built from a spec, one module per resolved layer."""

from __future__ import annotations

import os

import torch
from torch import nn

from convscope.layers import make_module
from convscope.spec import Layer, load_spec, resolve

READS_EARLIER = ("concat", "branch")  # layer kinds whose module also takes an earlier output


class SpecNet(nn.Module):
    """A network built from a spec (anything :func:`convscope.spec.load_spec` accepts).

    The spec is fully validated before any module is built. Inputs are float tensors
    (N, depth, sy, sx); every layer's output is 4-D (N, depth, sy, sx), a 1x1xD volume being
    (N, D, 1, 1). Channels-last inputs and models work unchanged.

    Attributes: ``layers`` (the resolved layers), ``blocks`` (one module per layer),
    ``spec`` (the user's layer list, JSON-serialisable, to rebuild the model), ``input_volume``
    and ``num_classes`` (from a trailing softmax, else None).
    """

    def __init__(self, spec: list[dict] | dict | str | os.PathLike) -> None:
        super().__init__()
        self.spec = load_spec(spec)
        self.layers: list[Layer] = resolve(self.spec)
        self.blocks = nn.ModuleList(make_module(layer) for layer in self.layers)
        self.input_volume = self.layers[0].out_volume
        last = self.layers[-1]
        is_softmax = last.type == "softmax"
        self.num_classes: int | None = last.params["num_classes"] if is_softmax else None
        self._logit_layers = len(self.layers) - is_softmax

    def __repr__(self) -> str:
        """One line (``print(net.blocks)`` shows the torch modules)."""
        from convscope.notebook import model_repr

        return model_repr(self)

    def _repr_html_(self) -> str:
        from convscope.notebook import model_html

        return model_html(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits: the network without its trailing softmax (softmax is the loss layer, as in
        ConvNetJS; train with cross_entropy). A 1x1xD result is returned as (N, D)."""
        self._check_input(x)
        x = self._run(x, self._logit_layers)[-1]
        out = self.layers[self._logit_layers - 1].out_volume
        return x.flatten(1) if out.sx == out.sy == 1 else x

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every layer in order, 4-D: the input itself first and, for a trailing
        softmax, the class probabilities (N, num_classes, 1, 1) last."""
        self._check_input(x)
        return self._run(x, len(self.layers))

    def _run(self, x: torch.Tensor, count: int) -> list[torch.Tensor]:
        """The outputs of the first ``count`` layers (concat and branch layers read earlier
        outputs)."""
        outputs: list[torch.Tensor] = []
        for layer, block in zip(self.layers[:count], self.blocks[:count], strict=True):
            x = block(x, outputs[layer.params["from"]]) if layer.type in READS_EARLIER \
                else block(x)
            outputs.append(x)
        return outputs

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_volume.shape:
            depth, sy, sx = self.input_volume.shape
            raise ValueError(f"this network takes input of shape (N, {depth}, {sy}, {sx}) "
                             f"(a {self.input_volume} volume), got {tuple(x.shape)}")


def build_model(spec: list[dict] | dict | str | os.PathLike) -> SpecNet:
    """Validate ``spec`` and build its network (raises SpecError before building anything)."""
    return SpecNet(spec)
