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
from convscope.tasks.base import GENERAL_VIEWS, Split, Task, model_outputs


def soft_mean_iou(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Differentiable mean IoU of scores (N, K, H, W) against masks (N, H, W): per class,
    sum(p * true) / sum(p + true - p * true) over the batch with p the softmax, averaged over
    the classes present in ``masks``."""
    k = logits.shape[1]
    probs = logits.softmax(1)
    flat = masks.reshape(-1)
    right = probs.gather(1, masks[:, None]).reshape(-1)
    inter = torch.zeros(k, device=logits.device).index_add(0, flat, right)
    count = torch.bincount(flat, minlength=k).to(probs.dtype)
    union = probs.sum((0, 2, 3)) + count - inter
    present = count > 0
    return (inter[present] / union[present]).mean()


class Segment(Task):
    name = "segment"
    display_name = "a segmentation model (a class for every pixel)"
    scenes = True
    views = (*GENERAL_VIEWS, "scenes")
    home_view = "scenes"
    default_model = "mnist-unet"
    default_data = "mnist"
    metric = "miou"
    metric_label = "mean IoU"
    background_weight = 1.0
    jaccard_weight = 1.0
    digit_weight = 0.0

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
        logits, masks = output.float(), targets["masks"].long()
        k = logits.shape[1]
        weight = torch.ones(k, device=logits.device)
        weight[-1] = self.background_weight
        loss = F.cross_entropy(logits, masks, weight=weight,
                               label_smoothing=config.label_smoothing)
        fg = masks < k - 1
        if self.digit_weight and bool(fg.any()):
            digits = logits.permute(0, 2, 3, 1)[fg][:, :-1]
            loss = loss + self.digit_weight * F.cross_entropy(
                digits, masks[fg], label_smoothing=config.label_smoothing)
        if self.jaccard_weight:
            loss = loss + self.jaccard_weight * (1 - soft_mean_iou(logits, masks))
        return loss, None

    def channel_names(self, classes: list[str]) -> list[str]:
        """Per pixel: the classes, then background."""
        return [*classes, "background"]

    def predict(self, model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Per-pixel classes (N, H, W), uint8: 0-9 digits, 10 background."""
        parts = [out.argmax(1).to(torch.uint8) for _, out in model_outputs(model, images)]
        return torch.cat(parts)

    def prediction(self, model: torch.nn.Module, image: torch.Tensor, classes: list[str]) -> dict:
        """The class map, the background class and each class's pixel count."""
        mask = self.predict(model, image[None])[0]
        background = len(classes)
        return {"mask": mask, "background": background,
                "classes": [*classes, "background"],
                "pixels": torch.bincount(mask.flatten().long(), minlength=background + 1)
                .tolist()}

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
