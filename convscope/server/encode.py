"""JSON for the wire: tensors as ``{"shape", "dtype": "float32", "data": <base64 of
little-endian float32, C order>}`` (class maps as ``"dtype": "uint8"``), and non-finite
numbers (a diverged network) as null."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import torch
from fastapi.responses import JSONResponse

from ..augment import to_input
from ..module_graph import volume_of
from ..probes import activations, network_graph
from ..tasks import get_task
from .errors import ApiError


def tensor_json(tensor: torch.Tensor) -> dict:
    """The wire form of ``tensor`` (converted to float32)."""
    array = tensor.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False)
    return {"shape": list(array.shape), "dtype": "float32",
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def uint8_json(tensor: torch.Tensor) -> dict:
    """The wire form of a uint8 tensor (a class map): ``dtype`` "uint8", the bytes in C order."""
    array = tensor.detach().to("cpu", torch.uint8).contiguous().numpy()
    return {"shape": list(array.shape), "dtype": "uint8",
            "data": base64.b64encode(array.tobytes()).decode("ascii")}


def activations_json(net: torch.nn.Module, image: torch.Tensor, classes: list[str],
                     task: str = "classify", layers: list[int] | None = None) -> dict:
    """The activations response for the fitted uint8 ``image`` (D, H, W): the ``image`` bytes,
    the model ``input`` (:func:`convscope.augment.to_input`), the output of each layer (node
    of :func:`convscope.probes.network_graph`) in ``layers`` (default: every one) with its
    range, and the class probabilities (see ``Task.class_probabilities``; ``[]`` and
    prediction None where there are none)."""
    x = to_input(image)
    nodes = network_graph(net, volume_of((1, *x.shape))).nodes
    shown = range(len(nodes)) if layers is None else sorted(set(layers))
    unknown = [i for i in shown if not 0 <= i < len(nodes)]
    if unknown:
        raise ApiError(404, f"no layer {unknown[0]}: the network has layers "
                            f"0..{len(nodes) - 1}")
    outputs = activations(net, x)
    probabilities = get_task(task).class_probabilities(net, outputs[-1], classes)
    return {"image": uint8_json(image), "input": tensor_json(x),
            "layers": [{"index": i, "type": nodes[i].type, "min": outputs[i].min().item(),
                        "max": outputs[i].max().item(), "output": tensor_json(outputs[i])}
                       for i in shown],
            "probabilities": [] if probabilities is None else probabilities.tolist(),
            "prediction": None if probabilities is None else int(probabilities.argmax()),
            "classes": classes}


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Strict JSON text of ``value``; NaN and infinities become null."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False, separators=(",", ":"))


class StrictJSONResponse(JSONResponse):
    """A JSON response that stays valid JSON whatever numbers the network produced."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")
