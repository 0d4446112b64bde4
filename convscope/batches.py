"""Training batches: the model input of each step, made a chunk of steps at a time, each step's
crops and flips drawn from a generator seeded by ``(seed, epoch, step)``, so a run resumed from
any checkpoint replays exactly."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .augment import alternating_flips, augmented, concatenated, draw, to_input
from .config import TrainConfig

CHUNK_BYTES = 8 * 2**20  # the model input of a chunk of training steps, made at once


def seed_for(*parts: int) -> int:
    """A 62-bit seed mixed from ``parts`` (e.g. the run's seed, an epoch and a step)."""
    value = 0x9E3779B9
    for part in parts:
        value = (value * 1_000_003 + part + 1) % (2**62)
    return value


def generator(*parts: int) -> torch.Generator:
    """A generator seeded by :func:`seed_for` ``(*parts)``."""
    return torch.Generator().manual_seed(seed_for(*parts))


def training_batches(images: torch.Tensor, order: torch.Tensor, config: TrainConfig, epoch: int,
             steps: range, size: tuple[int, int],
             first_flips: torch.Tensor | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(indices, model input) of each of ``steps`` of an epoch, channels_last.

    They are made a chunk of steps at a time (one gather, crop, flip and conversion per chunk:
    at ConvNetJS's batch sizes, 4 and 20, making them step by step took a twelfth of the
    training time), each step's crops and flips drawn from its own generator: the batches are
    those that the steps would make one by one, wherever a run resumes."""
    height, width = size
    batch = config.batch_size
    per_chunk = max(1, CHUNK_BYTES // (4 * images.shape[1] * height * width * batch))
    for first in range(steps.start, steps.stop, per_chunk):
        chunk = range(first, min(steps.stop, first + per_chunk))
        index = order[first * batch:chunk.stop * batch]
        flips = None if first_flips is None else \
            alternating_flips(first_flips[index.cpu()], epoch)
        sizes = [min(batch, len(order) - step * batch) for step in chunk]  # the last may be short
        choices = concatenated([draw(n, images.shape[-2:], height, width, config.augment,
                                     generator(config.seed, epoch, step),
                                     None if flips is None else flips[i * batch:i * batch + n])
                                for i, (step, n) in enumerate(zip(chunk, sizes, strict=True))])
        x = to_input(augmented(images[index], height, width, config.augment, choices))
        x = x.contiguous(memory_format=torch.channels_last)
        for i in range(len(chunk)):
            yield index[i * batch:(i + 1) * batch], x[i * batch:(i + 1) * batch]
