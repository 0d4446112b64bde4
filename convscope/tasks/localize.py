"""Localization: one digit per image; a class head plus a box (x, y, w, h) head.

The network's last layer gives ``K + 4`` numbers: K class scores, then the box as sigmoids of
(centre x, centre y, width, height) relative to the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convscope.config import TrainConfig
from convscope.data import Dataset
from convscope.errors import ConvscopeError
from convscope.metrics import box_iou_paired
from convscope.tasks._scenes import load_scenes
from convscope.tasks.base import BOX_NAMES, GENERAL_VIEWS, Split, Task, model_outputs


def decode_boxes(box_outputs: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The 4 box outputs (N, 4) as (x, y, w, h) boxes in pixels."""
    cx, cy, w, h = box_outputs.float().sigmoid().unbind(1)
    w, h = w * width, h * height
    return torch.stack([cx * width - w / 2, cy * height - h / 2, w, h], dim=1)


class Localize(Task):
    name = "localize"
    display_name = "a localization model (one digit: its class and box)"
    scenes = True
    views = (*GENERAL_VIEWS, "scenes")
    home_view = "scenes"
    default_model = "mnist-localizer"
    default_data = "mnist"
    metric = "mean_iou"
    metric_label = "mean box IoU"
    box_weight = 5.0

    def load_data(self, config: TrainConfig) -> Split:
        return load_scenes("localize", config)

    def check_output(self, output: torch.Tensor, dataset: Dataset) -> None:
        k = len(dataset.classes)
        if output.ndim != 2 or output.shape[1] != k + 4:
            raise ConvscopeError(
                f"the model outputs shape {tuple(output.shape)}; localization needs {k} class "
                f"scores plus 4 box numbers: end the network with an fc of {k + 4} neurons "
                "(no softmax)")

    def loss(self, output: torch.Tensor, targets: dict[str, torch.Tensor], config: TrainConfig,
             size: tuple[int, int]) -> tuple[torch.Tensor, int]:
        output = output.float()
        labels = targets["labels"]
        scores, box_out = output[:, :-4], output[:, -4:]
        height, width = size
        true = targets["boxes"][:, 0]
        scale = torch.tensor([width, height, width, height], device=true.device)
        centre = torch.cat([true[:, :2] + true[:, 2:] / 2, true[:, 2:]], dim=1) / scale
        pred = decode_boxes(box_out, height, width)
        iou = box_iou_paired(pred, true)
        loss = (F.cross_entropy(scores, labels, label_smoothing=config.label_smoothing)
                + self.box_weight * F.l1_loss(box_out.sigmoid(), centre) + (1 - iou).mean())
        return loss, int((scores.argmax(1) == labels).sum())

    def channel_names(self, classes: list[str]) -> list[str]:
        """The classes, then the box."""
        return [*classes, *BOX_NAMES]

    def predict(self, model: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Classes, their probabilities (and every class's) and boxes (x, y, w, h) for uint8
        images."""
        height, width = images.shape[-2:]
        parts = []
        for _, out in model_outputs(model, images):
            probs = out[:, :-4].softmax(1)
            confidence, label = probs.max(1)
            parts.append((label, confidence, probs, decode_boxes(out[:, -4:], height, width)))
        label, confidence, probs, boxes = (torch.cat(p) for p in zip(*parts, strict=True))
        return {"classes": label, "confidences": confidence, "probabilities": probs,
                "boxes": boxes}

    def class_probabilities(self, net: torch.nn.Module, output: torch.Tensor,
                            classes: list[str]) -> torch.Tensor:
        """The softmax of the class scores (the outputs before the 4 box numbers)."""
        return torch.softmax(output.flatten()[:len(classes)], 0)

    def prediction(self, model: torch.nn.Module, image: torch.Tensor, classes: list[str]) -> dict:
        found = {key: value[0] for key, value in self.predict(model, image[None]).items()}
        return {"probabilities": found["probabilities"].tolist(), "class": int(found["classes"]),
                "confidence": float(found["confidences"]), "box": found["boxes"].tolist()}

    def evaluate(self, model: torch.nn.Module, dataset: Dataset) -> dict:
        pred = self.predict(model, dataset.images)
        iou = box_iou_paired(pred["boxes"], dataset.targets["boxes"][:, 0].float())
        correct = pred["classes"] == dataset.labels
        return {"accuracy": correct.float().mean().item(), "correct": int(correct.sum()),
                "total": len(dataset), "mean_iou": iou.mean().item(),
                "iou_above_0.5": (iou >= 0.5).float().mean().item(),
                "both_right": (correct & (iou >= 0.5)).float().mean().item(),
                "classes": list(dataset.classes)}

    def report(self, result: dict) -> str:
        return (f"classification accuracy {100 * result['accuracy']:.2f}% "
                f"({result['correct']} / {result['total']})\n"
                f"mean box IoU {result['mean_iou']:.4f}; IoU >= 0.5 for "
                f"{100 * result['iou_above_0.5']:.2f}%; class right and IoU >= 0.5 for "
                f"{100 * result['both_right']:.2f}%")


LOCALIZE = Localize()
