"""What a network predicts for one input, decoded as its task's evaluation decodes it: class
probabilities (classify, audio), a class and a box (localize), boxes after non-maximum
suppression plus the grid's objectness (detect), a class per pixel (segment)."""

from __future__ import annotations

import torch

from .. import yolo
from ..augment import to_input
from ..model import SpecNet
from ..probes import activations
from ..tasks.localize import decode_boxes
from .encode import class_probabilities, tensor_json, uint8_json

MIN_SCORE = 0.01  # detections down to this score are sent (the page's slider filters them)


def prediction_json(net: SpecNet, image: torch.Tensor, task: str, classes: list[str]) -> dict:
    """The ``POST /api/models/{id}/predict`` response for uint8 ``image`` (D, H, W), already
    fitted to the network's input."""
    x = to_input(image)
    output = activations(net, x)[-1]
    height, width = image.shape[-2:]
    body: dict = {"task": task, "input": tensor_json(x), "classes": classes}
    if task == "detect":
        boxes, scores, found = yolo.decode(output[None], width, conf_threshold=MIN_SCORE)[0]
        grid = output.shape[-1]
        body["detections"] = [{"box": box, "score": score, "class": c} for box, score, c in
                              zip(boxes.tolist(), scores.tolist(), found.tolist(), strict=True)]
        body["grid"] = {"size": grid, "cell": width / grid,
                        "objectness": output[0].sigmoid().tolist()}
        body["min_score"] = MIN_SCORE
        return body
    if task == "segment":
        mask = output.argmax(0).to(torch.uint8)
        background = len(classes)
        body.update(mask=uint8_json(mask), background=background,
                    classes=[*classes, "background"],
                    pixels=torch.bincount(mask.flatten().long(), minlength=background + 1)
                    .tolist())
        return body
    probabilities = class_probabilities(net, output, task, classes)
    best = int(probabilities.argmax())
    body["probabilities"] = probabilities.tolist()
    body["class"], body["confidence"] = best, float(probabilities[best])
    if task == "localize":
        body["box"] = decode_boxes(output.flatten()[-4:][None], height, width)[0].tolist()
    return body
