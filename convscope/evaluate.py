"""Evaluation: accuracy, per-class recall and precision, and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .augment import fit_batch, prepare_images, to_input
from .device import model_device


@dataclass
class Evaluation:
    """Results of a model on a labelled dataset; ``confusion[actual][predicted]``."""

    classes: list[str]
    confusion: list[list[int]]
    predictions: list[int] = field(repr=False)
    confidences: list[float] = field(repr=False)

    @property
    def total(self) -> int:
        return sum(map(sum, self.confusion))

    @property
    def correct(self) -> int:
        return sum(self.confusion[i][i] for i in range(len(self.classes)))

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def recall(self) -> list[float | None]:
        """Per actual class: correct / samples of that class (None if there are none)."""
        return [row[i] / sum(row) if sum(row) else None for i, row in enumerate(self.confusion)]

    @property
    def precision(self) -> list[float | None]:
        """Per predicted class: correct / samples predicted as that class (None if none were)."""
        columns = list(zip(*self.confusion, strict=True))
        return [col[i] / sum(col) if sum(col) else None for i, col in enumerate(columns)]

    def __repr__(self) -> str:
        from .notebook import evaluation_repr

        return evaluation_repr(self)

    def _repr_html_(self) -> str:
        from .notebook import evaluation_html

        return evaluation_html(self)

    def to_dict(self, samples: bool = False) -> dict:
        data = {"accuracy": self.accuracy, "correct": self.correct, "total": self.total,
                "classes": self.classes, "recall": self.recall, "precision": self.precision,
                "confusion": self.confusion}
        if samples:
            data.update(predictions=self.predictions, confidences=self.confidences)
        return data


def input_size(model: torch.nn.Module, images: torch.Tensor) -> tuple[int, int, int]:
    """(depth, height, width) a model expects: from a spec network, else the data's own."""
    volume = getattr(model, "input_volume", None)
    if volume is not None:
        return volume.depth, volume.sy, volume.sx
    return tuple(images.shape[1:])


@torch.no_grad()
def predict(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities' argmax and max for uint8 images (N, C, H, W), in eval mode."""
    depth, height, width = input_size(model, images)
    images = prepare_images(images, height, width, depth)
    was_training = model.training
    model.eval()
    device = model_device(model)
    preds, confs = [], []
    for start in range(0, images.shape[0], batch_size):
        batch = fit_batch(images[start : start + batch_size], height, width).to(device)
        probs = torch.softmax(model(to_input(batch)).float(), dim=1)
        conf, pred = probs.max(dim=1)
        preds.append(pred.cpu())
        confs.append(conf.cpu())
    model.train(was_training)
    return torch.cat(preds), torch.cat(confs)


def evaluate(model: torch.nn.Module, dataset, batch_size: int = 1000) -> Evaluation:
    """Evaluate ``model`` on a :class:`convscope.data.Dataset` (no augmentation)."""
    preds, confs = predict(model, dataset.images, batch_size)
    k = len(dataset.classes)
    flat = dataset.labels.cpu() * k + preds
    confusion = torch.bincount(flat, minlength=k * k).reshape(k, k)
    return Evaluation(list(dataset.classes), confusion.tolist(), preds.tolist(), confs.tolist())


def _pct(value: float | None) -> str:
    return "  -  " if value is None else f"{100 * value:5.1f}"


def format_report(ev: Evaluation) -> str:
    """Text report: accuracy, confusion matrix with a recall column and a precision row; the
    class names in full (the columns as wide as the longest)."""
    names = list(ev.classes)
    width = max(6, max(len(n) for n in names) + 1, len(str(ev.total)) + 1)
    lines = [f"accuracy {100 * ev.accuracy:.2f}% ({ev.correct} / {ev.total})", "",
             "confusion matrix (rows: actual, columns: predicted)"]
    header = " " * width + "".join(f"{n:>{width}}" for n in names) + f"{'recall%':>9}"
    lines.append(header)
    for name, row, rec in zip(names, ev.confusion, ev.recall, strict=True):
        cells = "".join(f"{v:>{width}}" for v in row)
        lines.append(f"{name:>{width}}{cells}{_pct(rec):>9}")
    lines.append(f"{'prec%':>{width}}" + "".join(f"{_pct(p):>{width}}" for p in ev.precision))
    return "\n".join(lines)
