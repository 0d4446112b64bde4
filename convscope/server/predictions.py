"""What a network predicts for one input: its task's own prediction (class probabilities,
a class and a box, detections, a class per pixel; see ``Task.prediction``) in wire form."""

from __future__ import annotations

import torch

from ..augment import to_input
from ..model import SpecNet
from ..tasks import get_task
from .encode import tensor_json, uint8_json


def prediction_json(net: SpecNet, image: torch.Tensor, task: str, classes: list[str]) -> dict:
    """The ``POST /api/models/{id}/predict`` response for uint8 ``image`` (D, H, W), already
    fitted to the network's input."""
    found = get_task(task).prediction(net, image, classes)
    wire = {key: _wire(value) for key, value in found.items()}
    return {"task": task, "input": tensor_json(to_input(image)), "classes": classes, **wire}


def _wire(value):
    if not isinstance(value, torch.Tensor):
        return value
    return uint8_json(value) if value.dtype == torch.uint8 else tensor_json(value)
