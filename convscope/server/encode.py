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

from ..model import SpecNet
from ..probes import activations
from ..tasks import get_task


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


def activations_json(net: SpecNet, x: torch.Tensor, classes: list[str],
                     task: str = "classify") -> dict:
    """The activations response for model input ``x`` (D, H, W): every layer's output with its
    range, and the class probabilities (see ``Task.class_probabilities``; ``[]`` and prediction
    None where there are none)."""
    outputs = activations(net, x)
    probabilities = get_task(task).class_probabilities(net, outputs[-1], classes)
    return {"input": tensor_json(x),
            "layers": [{"index": i, "type": layer.type, "min": out.min().item(),
                        "max": out.max().item(), "output": tensor_json(out)}
                       for i, (layer, out) in enumerate(zip(net.layers, outputs, strict=True))],
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
