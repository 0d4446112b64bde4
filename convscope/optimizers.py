"""The trainer's optimizers; Adadelta as a handful of operations on one flat buffer.

ConvNetJS's demos train with Adadelta on batches of 4 to 20 examples. At those sizes a step of
``torch.optim.Adadelta`` is mostly per-tensor overhead: about ten small operations for every
weight and bias tensor. :class:`FlatAdadelta` keeps its state in two flat buffers and updates
all parameters with the same arithmetic in about a dozen operations, whatever their number.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .config import TrainConfig


def make_optimizer(config: TrainConfig, params: Iterable[torch.nn.Parameter]
                   ) -> torch.optim.Optimizer:
    """The optimizer ``config`` names, with its learning rate, momentum and weight decay."""
    if config.optimizer == "sgd":
        nesterov = config.nesterov and config.momentum > 0
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=nesterov, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return FlatAdadelta(params, lr=config.lr, weight_decay=config.weight_decay)


class FlatAdadelta(torch.optim.Optimizer):
    """Adadelta (Zeiler 2012) with ``torch.optim.Adadelta``'s arithmetic and state names
    (``square_avg``, ``acc_delta`` per parameter, so checkpoints look the same), one parameter
    group, the state of all parameters in two flat buffers that the per-parameter state views."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay})
        if len(self.param_groups) != 1:
            raise ValueError("FlatAdadelta takes one parameter group")
        self._flat: tuple[torch.Tensor, torch.Tensor] | None = None

    def _params(self) -> list[torch.nn.Parameter]:
        return self.param_groups[0]["params"]

    def _buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The flat ``square_avg`` and ``acc_delta``, made on first use (zeros) or from loaded
        per-parameter state; each parameter's state becomes a view of them."""
        if self._flat is None:
            params = self._params()
            flats = []
            for key in ("square_avg", "acc_delta"):
                parts = [self.state[p][key].reshape(-1) if key in self.state[p]
                         else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
                         for p in params]
                flats.append(torch.cat(parts))
            for key, flat in zip(("square_avg", "acc_delta"), flats, strict=True):
                for p, view in zip(params, flat.split([p.numel() for p in params]), strict=True):
                    self.state[p][key] = view.view(p.shape)
            self._flat = flats[0], flats[1]
        return self._flat

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._flat = None  # rebuilt from the loaded per-parameter state on the next step

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        square_avg, acc_delta = self._buffers()
        if all(p.grad is not None for p in params):
            self._update(params, [p.grad for p in params], square_avg, acc_delta)
        else:  # like torch: parameters without a gradient (frozen ones) keep weights and state
            for p in params:
                if p.grad is not None:
                    self._update([p], [p.grad], self.state[p]["square_avg"].view(-1),
                                 self.state[p]["acc_delta"].view(-1))
        return loss

    def _update(self, params: list[torch.Tensor], grads: list[torch.Tensor],
                square_avg: torch.Tensor, acc_delta: torch.Tensor) -> None:
        """One Adadelta step of ``params`` whose state is the flat ``square_avg``/``acc_delta``
        (in the order of ``params``)."""
        group = self.param_groups[0]
        rho, eps, lr, decay = group["rho"], group["eps"], group["lr"], group["weight_decay"]
        grad = torch.cat([g.reshape(-1) for g in grads])
        if decay:
            grad.add_(torch.cat([p.reshape(-1) for p in params]), alpha=decay)
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        std = square_avg.add(eps).sqrt_()
        delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        updates = [d.view(p.shape) for p, d in zip(params, delta.split(
            [p.numel() for p in params]), strict=True)]
        torch._foreach_add_(params, updates, alpha=-lr)
