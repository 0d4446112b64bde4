"""Detection, YOLO-style: one pass, an S x S grid of cells, each predicting a box, its
objectness and class probabilities; the most confident boxes are kept after non-maximum
suppression. The network's output is an S x S x (5 + K) volume (see :mod:`convscope.yolo`)."""

from __future__ import annotations

import torch

from convscope import yolo
from convscope.config import TrainConfig
from convscope.data import Dataset
from convscope.errors import ConvscopeError
from convscope.metrics import mean_average_precision
from convscope.tasks._scenes import load_scenes
from convscope.tasks.base import BOX_NAMES, GENERAL_VIEWS, Split, Task, model_outputs

Detections = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
MIN_SCORE = 0.01  # the explorer gets detections down to this score (its slider filters them)
LOSS_WEIGHTS = {"obj_pos_weight": 5.0, "box_weight": 1.0, "class_weight": 1.0, "iou_weight": 2.0}
"""The :func:`convscope.yolo.yolo_loss` weights training uses (tuned on validation scenes)."""


def ground_truths(dataset: Dataset) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per scene: (boxes (k, 4) xywh, classes (k,)) without the padding rows."""
    boxes, classes = dataset.targets["boxes"].float(), dataset.targets["classes"]
    return [(b[c >= 0], c[c >= 0]) for b, c in zip(boxes, classes, strict=True)]


class Detect(Task):
    name = "detect"
    display_name = "a detection model (boxes around every digit)"
    scenes = True
    views = (*GENERAL_VIEWS, "scenes")
    home_view = "scenes"
    default_model = "mnist-yolo"
    default_data = "mnist"
    metric = "map50"
    metric_label = "mAP@0.5"

    def load_data(self, config: TrainConfig) -> Split:
        return load_scenes("detect", config)

    def check_output(self, output: torch.Tensor, dataset: Dataset) -> None:
        k = len(dataset.classes)
        if output.ndim != 4 or output.shape[1] != 5 + k or output.shape[2] != output.shape[3]:
            raise ConvscopeError(
                f"the model outputs shape {tuple(output.shape)}; YOLO-style detection needs an "
                f"S x S x {5 + k} volume (objectness, 4 box numbers and {k} class scores per "
                f"cell): end the network with a conv of {5 + k} filters (no fc, no softmax)")

    def loss(self, output: torch.Tensor, targets: dict[str, torch.Tensor], config: TrainConfig,
             size: tuple[int, int]) -> tuple[torch.Tensor, None]:
        output = output.float()
        encoded = yolo.encode_targets(targets["boxes"], targets["classes"], output.shape[-1],
                                      size[0], output.shape[1] - 5)
        return yolo.yolo_loss(output, encoded, **LOSS_WEIGHTS), None

    def channel_names(self, classes: list[str]) -> list[str]:
        """Per grid cell: objectness, the box, then the classes (see :mod:`convscope.yolo`)."""
        return ["objectness", *BOX_NAMES, *classes]

    def predict(self, model: torch.nn.Module, images: torch.Tensor,
                conf_threshold: float = 0.05) -> Detections:
        """Per image: kept boxes (x, y, w, h), their scores and classes, best first.

        Batches of 100 images, in the caller's precision (a bf16 run's evaluation runs under
        :func:`convscope.device.autocast_for`)."""
        found: Detections = []
        for _, out in model_outputs(model, images, batch_size=100):
            found.extend(yolo.decode(out, images.shape[-1], conf_threshold=conf_threshold))
        return found

    def prediction(self, model: torch.nn.Module, image: torch.Tensor, classes: list[str]) -> dict:
        """Detections down to :data:`MIN_SCORE`, and the grid's objectness per cell."""
        [(_, output)] = model_outputs(model, image[None])
        boxes, scores, found = yolo.decode(output, image.shape[-1], conf_threshold=MIN_SCORE)[0]
        grid = output.shape[-1]
        return {"detections": [{"box": box, "score": score, "class": c} for box, score, c in
                               zip(boxes.tolist(), scores.tolist(), found.tolist(), strict=True)],
                "grid": {"size": grid, "cell": image.shape[-1] / grid,
                         "objectness": output[0, 0].sigmoid().tolist()},
                "min_score": MIN_SCORE}

    def evaluate(self, model: torch.nn.Module, dataset: Dataset) -> dict:
        found = self.predict(model, dataset.images, conf_threshold=0.01)
        result = mean_average_precision(found, ground_truths(dataset), len(dataset.classes))
        return {"map50": result["map"], "ap50": result["ap"], "total": len(dataset),
                "objects": sum(len(c) for _, c in ground_truths(dataset)),
                "classes": list(dataset.classes)}

    def report(self, result: dict) -> str:
        per_class = ", ".join(f"{c}: {ap:.3f}" for c, ap in
                              zip(result["classes"], result["ap50"], strict=True) if ap is not None)
        return (f"mAP@0.5 {result['map50']:.4f} on {result['total']} scenes "
                f"({result['objects']} digits)\nAP@0.5 per class: {per_class}")


DETECT = Detect()
