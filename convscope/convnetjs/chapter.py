"""Reproducing the chapter: a network's predictions computed as ConvNetJS computes them, and
their comparison with a stored summary.

ConvNetJS computes in float64 (JavaScript numbers) on inputs ``byte/255 - 0.5`` and predicts
the index of the first maximum probability; :func:`predict_float64` does the same. For images
larger than the network's declared input it either centre-crops them (convscope's pipeline,
``fit="crop"``) or feeds them whole as ConvNetJS does (``fit="convnetjs"``): conv and pool
layers then compute only their stored output size from the top-left corner, which is how the
ml4a demos ran the 24x24 MNIST snapshots on 28x28 images.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from convscope.augment import center_crop
from convscope.data import Dataset
from convscope.errors import ConvscopeError
from convscope.model import SpecNet

from .summaries import ChapterSummary

PROB_TOLERANCE = 1e-6
FITS = ("crop", "convnetjs")


def convnetjs_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float64 ``byte/255 - 0.5``, as the ml4a demos and ConvNetJS compute it."""
    return images.to(torch.float64) / 255.0 - 0.5


@torch.no_grad()
def predict_float64(model: SpecNet, images: torch.Tensor, fit: str = "crop",
                    batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, its probability) per uint8 image (N, C, H, W), in float64."""
    if fit not in FITS:
        raise ConvscopeError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    net = model
    if next(model.parameters()).dtype != torch.float64 or model.training:
        net = copy.deepcopy(model).double().eval()
    volume = net.input_volume
    if images.shape[-2] < volume.sy or images.shape[-1] < volume.sx:
        raise ConvscopeError(f"the images ({images.shape[-1]}x{images.shape[-2]}) are smaller "
                             f"than the network's declared {volume} input")
    if fit == "crop":
        images = center_crop(images, volume.sy, volume.sx)
    preds, probs = [], []
    for start in range(0, images.shape[0], batch_size):
        x = convnetjs_input(images[start:start + batch_size])
        p = torch.softmax(_logits(net, x), dim=1)
        prob, pred = p.max(dim=1)  # the first maximum, as ConvNetJS
        preds.append(pred)
        probs.append(prob)
    return torch.cat(preds), torch.cat(probs)


def _logits(net: SpecNet, x: torch.Tensor) -> torch.Tensor:
    """The network up to its softmax; conv/pool outputs cut to their stored (declared) size."""
    for layer, block in zip(net.layers, net.blocks, strict=True):
        if layer.type == "softmax":
            break
        if layer.type == "fc" and x[0].numel() != layer.in_volume.numel:
            raise ConvscopeError(f"layer {layer.index} (fc) expects {layer.in_volume}, got "
                                 f"{tuple(x.shape[1:])}: fit the images to the declared input")
        x = block(x)
        out = layer.out_volume
        if layer.type in ("conv", "pool"):
            x = x[..., : out.sy, : out.sx]
    return x.flatten(1)


@dataclass
class Reproduction:
    """A network's results on a summary's samples next to the stored ones."""

    summary: ChapterSummary
    confusion: list[list[int]]
    predictions: torch.Tensor = field(repr=False)  # per sample, in the summary's order
    tops_checked: int
    tops_mismatched: int  # entries whose (actual, predicted) cell differs
    max_prob_diff: float  # over the entries in the same cell

    @property
    def correct(self) -> int:
        return sum(self.confusion[i][i] for i in range(len(self.confusion)))

    @property
    def exact(self) -> bool:
        """Same confusion matrix, and every stored top in its cell with its probability."""
        return (self.confusion == self.summary.confusion and self.tops_mismatched == 0
                and self.max_prob_diff <= PROB_TOLERANCE)


def reproduce(model: SpecNet, summary: ChapterSummary, samples: Dataset,
              fit: str = "crop") -> Reproduction:
    """Run ``model`` as ConvNetJS on the summary's ``samples`` (from
    :func:`~convscope.convnetjs.summaries.summary_dataset`) and compare with the summary."""
    preds, probs = predict_float64(model, samples.images, fit)
    labels = samples.labels
    k = len(summary.confusion)
    confusion = torch.bincount(labels * k + preds, minlength=k * k).reshape(k, k).tolist()
    first = summary.samples.start
    checked = mismatched = 0
    max_diff = 0.0
    for actual, row in enumerate(summary.tops):
        for predicted, cell in enumerate(row):
            for entry in cell:
                i = entry["idx"] - first
                checked += 1
                if int(labels[i]) != actual or int(preds[i]) != predicted:
                    mismatched += 1
                else:
                    max_diff = max(max_diff, abs(float(probs[i]) - entry["prob"]))
    return Reproduction(summary, confusion, preds, checked, mismatched, max_diff)
