"""The optimizer of a run and its learning-rate schedule: parameter groups (batchnorm shifts
may learn faster), torch's optimizers stepped over flat buffers, and the schedule as a pure
function of the step, which :func:`set_learning_rate` hands to the optimizer before each step."""

from __future__ import annotations

import math
from functools import partial

import torch

from .config import TrainConfig
from .flat_optimizer import FlatOptimizer, can_flatten
from .muon import Muon
from .sgd import SGD

BATCHNORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d,
              torch.nn.SyncBatchNorm)


def param_groups(config: TrainConfig, module: torch.nn.Module) -> list[dict]:
    """The trainable parameters, with batchnorm shifts in a group of their own when
    ``bias_lr_scale`` speeds them up (its weight decay shrinks to match: the same decay per
    step), and with the ``muon`` optimizer the conv filters in a group of their own (Muon's
    rate and momentum, no weight decay). Each group's ``lr_scale`` multiplies the scheduled
    learning rate."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    groups = []
    if config.optimizer == "muon":
        filters = [p for p in trainable if p.dim() == 4]
        groups.append({"params": filters, "lr_scale": config.muon_lr / config.lr,
                       "momentum": config.muon_momentum, "weight_decay": 0.0,
                       "orthogonal": True})
        trainable = [p for p in trainable if p.dim() != 4]
    if config.bias_lr_scale != 1:
        shifts = {id(m.bias) for m in module.modules()
                  if isinstance(m, BATCHNORMS) and m.bias is not None}
        groups.append({"params": [p for p in trainable if id(p) in shifts],
                       "lr_scale": config.bias_lr_scale,
                       "weight_decay": config.weight_decay / config.bias_lr_scale})
        trainable = [p for p in trainable if id(p) not in shifts]
    return [*groups, {"params": trainable, "lr_scale": 1.0}]


def make_optimizer(config: TrainConfig, params, fused: bool = False) -> torch.optim.Optimizer:
    """torch's optimizer named by ``config.optimizer`` over ``params`` (SGD: :class:`SGD`, the
    same update without importing torch.optim's machinery); ``fused`` asks for torch's fused
    kernels (SGD, Adam and AdamW have them; see benchmarks/optimizer_step.py)."""
    extra = {"fused": True} if fused else {}
    nesterov = config.nesterov and config.momentum > 0
    if config.optimizer == "muon":
        return Muon(params, lr=config.lr, momentum=config.momentum, nesterov=nesterov,
                    weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        make = torch.optim.SGD if fused else SGD  # SGD: torch's update, a second less start-up
        return make(params, lr=config.lr, momentum=config.momentum, nesterov=nesterov,
                    weight_decay=config.weight_decay, **extra)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, **extra)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **extra)
    return torch.optim.Adadelta(params, lr=config.lr, weight_decay=config.weight_decay)


def build_optimizer(config: TrainConfig,
                    module: torch.nn.Module) -> FlatOptimizer | torch.optim.Optimizer:
    """The run's optimizer over :func:`param_groups`, stepping each group as one flat tensor
    (:class:`FlatOptimizer`) where its parameters share a dtype and device."""
    groups = param_groups(config, module)
    if config.optimizer != "muon" and can_flatten(groups):  # Muon steps each filter bank
        return FlatOptimizer(groups, partial(make_optimizer, config))
    return make_optimizer(config, groups)


def schedule_span(config: TrainConfig, step: int, total: int) -> tuple[int, int]:
    """``(step, total)`` within the schedule's current span: the whole run, or with
    ``config.schedule_restart`` the steps before that epoch, then those from it on (a run
    extended by ``--resume --epochs N`` runs its schedule again over the added epochs)."""
    if not config.schedule_restart:
        return step, total
    restart = total * config.schedule_restart // config.epochs
    return (step, restart) if step < restart else (step - restart, total - restart)


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """The schedule as a pure function of the global step (nothing to checkpoint)."""
    step, total = schedule_span(config, step, total)
    progress = step / max(1, total)
    if config.schedule == "onecycle":
        warm = 0.25
        if progress < warm:
            return config.lr * (0.1 + 0.9 * progress / warm)
        return config.lr * (1 - progress) / (1 - warm)
    if config.schedule == "linear":
        return config.lr * (1 - progress)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr


def set_learning_rate(optimizer, config: TrainConfig, step: int, total: int) -> None:
    """The one way the learning rate reaches the optimizer: before every step, each group
    gets its ``lr_scale`` times the scheduled rate."""
    rate = learning_rate(config, step, total)
    for group in optimizer.param_groups:
        group["lr"] = group["lr_scale"] * rate
