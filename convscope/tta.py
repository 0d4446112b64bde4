"""Test-time augmentation: score each image as the mean of a classifier's logits over mirrored
and/or shifted views of it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import TTA_MODES


class AveragedViews(nn.Module):
    """``model`` scored on several views of each input: ``"flip"`` averages the image and its
    mirror; ``"flip+shift"`` gives that pair half the weight and the pair shifted one pixel up
    and left, and the pair shifted one pixel down and right, a quarter each (airbench's views;
    the edge is filled by reflection); ``"shift"`` does the same without mirrors (for images
    whose mirror is another thing, such as digits)."""

    def __init__(self, model: nn.Module, mode: str) -> None:
        super().__init__()
        if mode not in TTA_MODES or mode == "none":
            raise ValueError(f"unknown test-time augmentation {mode!r}")
        self.model = model
        self.mode = mode
        self.input_volume = getattr(model, "input_volume", None)
        self.plain: list[torch.Tensor] | None = None  # see :func:`scored_with_and_without`

    def _pair(self, x: torch.Tensor, plain: torch.Tensor | None = None) -> torch.Tensor:
        """The image and its mirror, or (mode "shift") the image alone; ``plain``: the
        model's logits on ``x``, when already computed."""
        plain = self.model(x).float() if plain is None else plain
        if self.mode == "shift":
            return plain
        return 0.5 * (plain + self.model(x.flip(-1)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = self.model(x).float()
        if self.plain is not None:  # recording the images' own logits
            self.plain.append(plain.detach().cpu())
        logits = self._pair(x, plain)
        if self.mode == "flip":
            return logits
        height, width = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        up_left = self._pair(padded[..., :height, :width])
        down_right = self._pair(padded[..., 2:, 2:])
        return 0.5 * logits + 0.25 * (up_left + down_right)


def scored_with_and_without(scored: AveragedViews, score):
    """``score(scored)`` (an evaluation on the views) and the plain model's logits on the
    images alone, taken from the same passes (N, classes), so they cost nothing more."""
    scored.plain = []
    try:
        result = score(scored)
        return result, torch.cat(scored.plain) if scored.plain else None
    finally:
        scored.plain = None


def with_tta(model: nn.Module, mode: str) -> nn.Module:
    """``model`` itself for mode ``"none"``, else it wrapped in :class:`AveragedViews`."""
    return model if mode == "none" else AveragedViews(model, mode)
