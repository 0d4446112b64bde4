"""Fit uint8 image batches to a model's input volume and augment them for training.

Images stay uint8 (N, C, H, W) until :func:`to_input` turns them into the model's input
convention, ConvNetJS's ``byte / 255 - 0.5``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .augment_kinds import AUGMENTATIONS, check_augmentation  # noqa: F401 (re-exported)
from .errors import ConvscopeError

BYTE_SCALE = 255.0  # the model input convention: byte / BYTE_SCALE + INPUT_OFFSET
INPUT_OFFSET = -0.5


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float model input in ConvNetJS's convention ``byte / 255 - 0.5``."""
    return images.float().div_(BYTE_SCALE).add_(INPUT_OFFSET)


def resize(images: torch.Tensor, height: int, width: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear resize of a whole uint8 dataset, in chunks to bound memory."""
    out = torch.empty((images.shape[0], images.shape[1], height, width), dtype=torch.uint8)
    for i in range(0, images.shape[0], chunk):
        part = F.interpolate(
            images[i : i + chunk].float(), size=(height, width), mode="bilinear",
            align_corners=False, antialias=True,
        )
        out[i : i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def center_crop(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (images.shape[-2] - height) // 2
    left = (images.shape[-1] - width) // 2
    return images[..., top : top + height, left : left + width]


class Choices(NamedTuple):
    """A batch's random choices: crop offsets into the padded images (``None``: centre crops)
    and which images to mirror (``None``: none)."""

    top: torch.Tensor | None
    left: torch.Tensor | None
    flip: torch.Tensor | None


def draw(n: int, image_size: tuple[int, int], height: int, width: int, augmentation: str,
         generator: torch.Generator, flips: torch.Tensor | None = None) -> Choices:
    """The random choices for ``n`` images of ``image_size``, from ``generator``: the rows of the
    crops, their columns, then the mirrors. ``flips`` (one bool per image, see
    :func:`alternating_flips`) says which images an alternating-flip augmentation mirrors;
    without it they are drawn too."""
    pad, flip = AUGMENTATIONS[augmentation]
    top = left = None
    if pad or tuple(image_size) != (height, width):
        rows, cols = image_size[0] + 2 * pad - height + 1, image_size[1] + 2 * pad - width + 1
        top = torch.randint(0, rows, (n,), generator=generator)
        left = torch.randint(0, cols, (n,), generator=generator)
    if flip == "alternate" and flips is not None:
        mirror = flips
    else:
        mirror = torch.rand(n, generator=generator) < 0.5 if flip else None
    return Choices(top, left, mirror)


def concatenated(choices: list[Choices]) -> Choices:
    """The choices of consecutive batches as those of one batch."""
    return Choices(*(None if parts[0] is None else torch.cat(parts)
                     for parts in zip(*choices, strict=True)))


def augmented(images: torch.Tensor, height: int, width: int, augmentation: str,
              choices: Choices) -> torch.Tensor:
    """``images`` cropped to ``height x width`` and mirrored as ``choices`` (see :func:`draw`)
    say."""
    if choices.top is None:
        images = center_crop(images, height, width)
    else:
        pad = AUGMENTATIONS[augmentation][0]
        if pad:
            images = F.pad(images, (pad, pad, pad, pad))
        # every window as a view (n, c, rows, cols, height, width); pick one per image: a
        # quarter of the time of gathering the pixels by row and column indices
        windows = images.unfold(2, height, 1).unfold(3, width, 1)
        images = windows[torch.arange(len(images), device=images.device), :,
                         choices.top.to(images.device), choices.left.to(images.device)]
    return images if choices.flip is None else flip_where(images, choices.flip)


def flip_where(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror (left-right) the images where ``flip`` (one bool per image) is true."""
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)


def alternating_flips(first: torch.Tensor, epoch: int) -> torch.Tensor:
    """Which images to flip in ``epoch``: the random ``first`` choice in even epochs, its
    opposite in odd ones."""
    return first ^ bool(epoch % 2)


def fit_batch(
    images: torch.Tensor,
    height: int,
    width: int,
    augmentation: str = "none",
    generator: torch.Generator | None = None,
    flips: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bring a uint8 batch to ``height x width``: augmented when a generator is given (see
    :func:`draw`).

    Images larger than the model's input are cropped (randomly when training, centred when
    evaluating); the dataset must already be at least that large (see :func:`prepare_images`).
    """
    if generator is None:
        return center_crop(images, height, width)
    choices = draw(len(images), images.shape[-2:], height, width, augmentation, generator, flips)
    return augmented(images, height, width, augmentation, choices)


def prepare_images(images: torch.Tensor, height: int, width: int, depth: int) -> torch.Tensor:
    """Check channels and resize a dataset that is smaller than (or not croppable to) the input."""
    if images.shape[1] != depth:
        raise ConvscopeError(
            f"the model expects {depth}-channel input but the data has {images.shape[1]} "
            f"channel(s); pick a model built for this dataset (see `convscope models`)"
        )
    h, w = images.shape[-2:]
    if h < height or w < width or h > 2 * height or w > 2 * width:
        return resize(images, height, width)
    return images
