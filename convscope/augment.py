"""Fit uint8 image batches to a model's input volume and augment them for training.

Images stay uint8 (N, C, H, W) until :func:`to_input` turns them into the model's input
convention, ConvNetJS's ``byte / 255 - 0.5``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConvscopeError

AUGMENTATIONS = {
    "none": (0, False),
    "shift": (2, False),  # up to 2 px translation (MNIST)
    "flip": (0, True),
    "crop+flip": (4, True),  # pad-4 random crops and horizontal flips (CIFAR-10)
    "shift+flip": (2, True),
    # up to 2 px translation; each image is flipped in every other epoch, starting from a random
    # half (airbench's alternating flip: every image is seen both ways within two epochs)
    "shift+altflip": (2, "alternate"),
}


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float model input in ConvNetJS's convention ``byte / 255 - 0.5``."""
    return images.float().div_(255.0).sub_(0.5)


def check_augmentation(name: str) -> str:
    if name not in AUGMENTATIONS:
        raise ConvscopeError(
            f"unknown augmentation '{name}'; choose one of: {', '.join(AUGMENTATIONS)}"
        )
    return name


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


def random_crop(
    images: torch.Tensor, height: int, width: int, pad: int, generator: torch.Generator
) -> torch.Tensor:
    """Per-sample random crops of ``height x width`` from the images zero-padded by ``pad``."""
    if pad:
        images = F.pad(images, (pad, pad, pad, pad))
    n, _, full_h, full_w = images.shape
    top = torch.randint(0, full_h - height + 1, (n,), generator=generator).to(images.device)
    left = torch.randint(0, full_w - width + 1, (n,), generator=generator).to(images.device)
    # every window as a view (n, c, rows, cols, height, width); pick one per image: a quarter
    # of the time of gathering the pixels by row and column indices
    windows = images.unfold(2, height, 1).unfold(3, width, 1)
    return windows[torch.arange(n, device=images.device), :, top, left]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return flip_where(images, flip)


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
    """Bring a uint8 batch to ``height x width``: augmented when a generator is given.

    Images larger than the model's input are cropped (randomly when training, centred when
    evaluating); the dataset must already be at least that large (see :func:`prepare_images`).
    ``flips`` (one bool per image, see :func:`alternating_flips`) says which images an
    alternating-flip augmentation mirrors; without it they are drawn at random.
    """
    pad, flip = AUGMENTATIONS[augmentation] if generator is not None else (0, False)
    if generator is None or (pad == 0 and images.shape[-2:] == (height, width)):
        images = center_crop(images, height, width)
    else:
        images = random_crop(images, height, width, pad, generator)
    if flip == "alternate" and flips is not None:
        images = flip_where(images, flips)
    elif flip:
        images = random_flip(images, generator)
    return images


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
