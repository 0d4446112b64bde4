"""Write a SpecNet as ConvNetJS JSON, as ``Net.toJSON()`` would: ``{"layers": [...]}`` with
``layer_type``, output sizes, filters and biases as Vols (``w`` as arrays) and activations as
separate layers, so ``net.fromJSON(json)`` in ConvNetJS runs the network.

Only layers ConvNetJS has can be exported: input, conv, max pool, fc, relu, sigmoid, tanh,
dropout and softmax. An ``inverted`` (PyTorch) dropout is the identity at prediction while
ConvNetJS's multiplies by ``drop_prob``, so it is left out; a ``convnetjs`` dropout is written.
An input ``offset`` is written as the input layer's ``input_offset`` (ConvNetJS ignores it:
feed ConvNetJS ``byte/255 - 0.5 + input_offset``); convscope's import reads it back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from convscope._io import write_text_atomic
from convscope.errors import ConvscopeError
from convscope.model import SpecNet
from convscope.spec import Layer, Volume


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


def _sizes(volume: Volume) -> dict:
    return {"out_sx": volume.sx, "out_sy": volume.sy, "out_depth": volume.depth}


def _vol(values: torch.Tensor, sx: int, sy: int, depth: int) -> dict:
    """A Vol with ``values`` already in storage order ((sx*y)+x)*depth+d."""
    return {"sx": sx, "sy": sy, "depth": depth,
            "w": values.detach().cpu().double().flatten().tolist()}


def _biases(block: torch.nn.Module, count: int, scale: float = 1.0) -> dict:
    bias = block.bias if block.bias is not None else torch.zeros(count)
    return _vol(bias * scale, 1, 1, count)


def _layer_json(layer: Layer, block: torch.nn.Module) -> dict | None:
    p, kind, vin, out = layer.params, layer.type, layer.in_volume, layer.out_volume
    base = {**_sizes(out), "layer_type": kind}
    if kind == "input":
        return {**base, "input_offset": p["offset"]} if p.get("offset") else base
    if kind in ("relu", "sigmoid", "tanh"):
        return base
    if kind == "dropout":
        return {**base, "drop_prob": p["drop_prob"]} if p.get("scaling") == "convnetjs" else None
    if kind == "softmax":
        return {**base, "num_inputs": vin.numel}
    if kind == "conv":
        # PyTorch [f, c, sy, sx] -> Vol(sx, sy, c) storage (fy, fx, c)
        weight = block.weight.permute(0, 2, 3, 1)
        return {"sx": p["sx"], "sy": p["sy"], "stride": p["stride"], "in_depth": vin.depth,
                **base, "l1_decay_mul": 0.0, "l2_decay_mul": 1.0, "pad": p["pad"],
                "filters": [_vol(w, p["sx"], p["sy"], vin.depth) for w in weight],
                "biases": _biases(block, p["filters"])}
    if kind == "pool" and p["kind"] == "max":
        return {"sx": p["sx"], "sy": p["sy"], "stride": p["stride"], "in_depth": vin.depth,
                **base, "pad": p["pad"]}
    if kind == "fc":
        # convscope flattens (d, y, x); ConvNetJS reads the incoming Vol as (y, x, d); a scaled
        # fc is exported with the scale folded into its weights and biases
        scale = p.get("scale", 1.0)
        weight = block.weight.reshape(-1, *vin.shape).permute(0, 2, 3, 1) * scale
        return {**base, "num_inputs": vin.numel, "l1_decay_mul": 0.0, "l2_decay_mul": 1.0,
                "filters": [_vol(w, 1, 1, vin.numel) for w in weight],
                "biases": _biases(block, p["num_neurons"], scale)}
    what = "average pooling" if kind == "pool" else f"{kind} layer"
    raise ExportError(f"layer {layer.index} ({kind}): ConvNetJS has no {what}; only input, "
                      "conv, max pool, fc, relu, sigmoid, tanh, dropout and softmax layers "
                      "can be exported to ConvNetJS")
