"""Muon for conv filters: Nesterov momentum whose step is orthogonalised, on normalised filters.

Muon (Keller Jordan, 2024) replaces each filter bank's momentum step ``G`` (``out x in*kh*kw``)
by an approximation of its nearest semi-orthogonal matrix ``U V^T`` (``G = U S V^T``): every
direction the gradient points in moves the same amount, however small its singular value. A few
iterations of an odd matrix polynomial approximate it (:func:`orthogonalise`). Each filter bank
is rescaled to norm ``sqrt(out)`` before its step; the batchnorm after it makes the network
blind to that scale, so the rescaling only keeps the step's relative size fixed. (It is meant
for networks whose convs each feed a batchnorm, as airbench's do: for a conv without one, the
rescaling changes what the network computes.)

:class:`Muon` steps the groups marked ``"orthogonal": True`` that way and every other group as
:class:`convscope.sgd.SGD` does, so one optimizer (one state dict, torch SGD's format) serves a
network whose filters use Muon and whose biases, shifts and classifier use SGD.
"""

from __future__ import annotations

import torch

from .sgd import SGD

# the quintic's coefficients: the steepest slope at zero that still maps (0, 1] near 1 in 3 steps
_QUINTIC = (3.4445, -4.7750, 2.0315)


def orthogonalise(g: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """About ``U V^T`` for the matrix ``g`` (``U S V^T``): its singular values pushed into
    roughly (0.5, 1.5) by ``steps`` Newton-Schulz iterations of ``a X + b X X^T X + c (X X^T)^2
    X``, in float32 whatever ``g``'s dtype."""
    a, b, c = _QUINTIC
    x = g.float()
    x = x / (x.norm() + eps)  # every singular value <= 1
    wide = x.shape[0] <= x.shape[1]
    if not wide:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.T).to(g.dtype)


class Muon(SGD):
    """:class:`~convscope.sgd.SGD` whose groups with ``"orthogonal": True`` take Muon's step:
    Nesterov momentum of the raw gradient (no weight decay), the parameter rescaled to norm
    ``sqrt(len(p))``, then ``p -= lr * orthogonalise(step)``."""

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            if group.get("orthogonal"):
                self._muon_step(group)
            else:
                self._step_group(group)

    def _muon_step(self, group: dict) -> None:
        momentum, lr = group["momentum"], group["lr"]
        for p in group["params"]:
            if p.grad is None:
                continue
            update = self._momentum_step(p, p.grad, momentum, group["nesterov"])
            p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))
            p.add_(orthogonalise(update.reshape(len(p), -1)).view(p.shape), alpha=-lr)
