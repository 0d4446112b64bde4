"""Semantic segmentation: a class for every pixel (10 digits + background). The network is
fully convolutional and outputs an H x W x 11 volume of class scores (see ``mnist-unet``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convscope.config import TrainConfig
from convscope.data import Dataset
from convscope.errors import ConvscopeError
from convscope.metrics import iou_per_class, mean_iou, segmentation_confusion
from convscope.tasks._scenes import load_scenes
from convscope.tasks.base import Split, Task, model_outputs


class Segment(Task):
    name = "segment"
    default_model = "mnist-unet"
    default_data = "mnist"
    metric = "miou"
    metric_label = "mean IoU"

    def load_data(self, config: TrainConfig) -> Split:
        return load_scenes("segment", config)

    def check_output(self, output: torch.Tensor, dataset: Dataset) -> None:
        k = len(dataset.classes) + 1
        size = tuple(dataset.images.shape[-2:])
        if output.ndim != 4 or output.shape[1] != k or tuple(output.shape[-2:]) != size:
            raise ConvscopeError(
                f"the model outputs shape {tuple(output.shape)}; segmentation needs a "
                f"{size[1]}x{size[0]}x{k} volume (a score per class and background for every "
                f"pixel): end the network with a 1x1 conv of {k} filters at full resolution")

    def loss(self, output: torch.Tensor, targets: dict[str, torch.Tensor], config: TrainConfig,
             size: tuple[int, int]) -> tuple[torch.Tensor, None]:
        masks = targets["masks"].long()
        return F.cross_entropy(output.float(), masks,
                               label_smoothing=config.label_smoothing), None

    def predict(self, model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Per-pixel classes (N, H, W), uint8: 0-9 digits, 10 background."""
        parts = [out.argmax(1).to(torch.uint8) for _, out in model_outputs(model, images)]
        return torch.cat(parts)

    def evaluate(self, model: torch.nn.Module, dataset: Dataset) -> dict:
        k = len(dataset.classes) + 1
        confusion = torch.zeros(k, k, dtype=torch.int64)
        for start, out in model_outputs(model, dataset.images):
            target = dataset.targets["masks"][start:start + len(out)]
            confusion += segmentation_confusion(out.argmax(1), target.long(), k)
        correct = int(confusion.diag().sum())
        return {"miou": mean_iou(confusion), "iou": iou_per_class(confusion),
                "pixel_accuracy": correct / int(confusion.sum()), "total": len(dataset),
                "classes": [*dataset.classes, "background"]}

    def report(self, result: dict) -> str:
        per_class = ", ".join(f"{c}: {v:.3f}" for c, v in
                              zip(result["classes"], result["iou"], strict=True) if v is not None)
        return (f"mean IoU {result['miou']:.4f} over {len(result['classes'])} classes, pixel "
                f"accuracy {100 * result['pixel_accuracy']:.2f}% on {result['total']} scenes\n"
                f"IoU per class: {per_class}")


SEGMENT = Segment()
