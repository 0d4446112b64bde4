"""Lookahead as airbench uses it: every few steps the weights are pulled back onto a running
average of themselves, more strongly as training ends, and the average is the final model."""

from __future__ import annotations

import torch


class Lookahead:
    """Every ``every`` steps: ``average += (1 - decay) * (weights - average)``, then
    ``weights = average``, with ``decay = 0.95**5 * (step / total)**3``; at the last step the
    weights become the average. Covers every floating-point entry of the model's state
    (weights and batchnorm statistics)."""

    def __init__(self, model: torch.nn.Module, every: int = 5) -> None:
        self.model = model
        self.every = every
        self.average = {name: value.detach().clone() for name, value in self._state().items()}

    def _state(self) -> dict[str, torch.Tensor]:
        return {name: value for name, value in self.model.state_dict().items()
                if value.is_floating_point()}

    @torch.no_grad()
    def step(self, step: int, total: int) -> None:
        """Call after optimizer step number ``step`` (counted from 1) of ``total``."""
        if step >= total:
            decay = 1.0
        elif step % self.every == 0:
            decay = 0.95 ** 5 * (step / total) ** 3
        else:
            return
        for name, value in self._state().items():
            average = self.average[name]
            average.lerp_(value, 1 - decay)
            value.copy_(average)
