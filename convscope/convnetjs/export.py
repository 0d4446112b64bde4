"""Write a SpecNet as ConvNetJS JSON, as ``Net.toJSON()`` would: ``{"layers": [...]}`` with
``layer_type``, output sizes, filters and biases as Vols (``w`` as arrays) and activations as
separate layers, so ``net.fromJSON(json)`` in ConvNetJS runs the network.

Each layer is written by its kind's ``convnetjs`` (:mod:`convscope.layer_kinds`); only kinds
ConvNetJS has can be exported: input, conv, max pool, fc, relu, sigmoid, tanh, dropout and
softmax. An ``inverted`` (PyTorch) dropout is the identity at prediction while ConvNetJS's
multiplies by ``drop_prob``, so it is left out; a ``convnetjs`` dropout is written. An input
``offset`` is written as the input layer's ``input_offset`` (ConvNetJS ignores it: feed
ConvNetJS ``byte/255 - 0.5 + input_offset``); convscope's import reads it back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from convscope._io import write_text_atomic
from convscope.errors import ConvscopeError
from convscope.layer_kinds import NoConvNetJS, layer_kind, layer_kinds
from convscope.model import SpecNet
from convscope.spec import Layer


class ExportError(ConvscopeError):
    """A network that ConvNetJS cannot represent (names the layer)."""


def to_convnetjs(model: torch.nn.Module) -> dict:
    """The ConvNetJS JSON of a SpecNet (weights as float64 numbers, exactly)."""
    if not isinstance(model, SpecNet):
        raise ExportError(f"only spec networks can be exported to ConvNetJS, not a "
                          f"{type(model).__name__} from a Python file")
    layers = []
    for layer, block in zip(model.layers, model.blocks, strict=True):
        data = _layer_json(layer, block)
        if data is not None:
            layers.append(data)
    return {"layers": layers}


def export_convnetjs(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write :func:`to_convnetjs` of ``model`` to ``path`` (atomically); returns the path."""
    data = to_convnetjs(model)
    path = Path(path)
    write_text_atomic(path, json.dumps(data, separators=(",", ":")))
    return path


def _layer_json(layer: Layer, block: torch.nn.Module) -> dict | None:
    """The layer's ConvNetJS JSON from its kind's ``convnetjs`` (None: left out)."""
    kind = layer_kind(layer.type)
    try:
        if kind.convnetjs is None:
            raise NoConvNetJS(f"{layer.type} layer")
        return kind.convnetjs(layer, block)
    except NoConvNetJS as missing:
        exportable = [k.name for k in layer_kinds() if k.convnetjs is not None]
        raise ExportError(f"layer {layer.index} ({layer.type}): ConvNetJS has no {missing}; "
                          f"only {', '.join(exportable[:-1])} and {exportable[-1]} layers can "
                          "be exported to ConvNetJS") from None
