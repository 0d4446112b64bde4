"""Data-parallel training with torch.distributed (gloo on CPU, nccl on GPU).

Every process ("rank") holds the whole dataset and draws the same global batch order and
augmentation; it runs forward and backward on its contiguous share of each global batch, and
the gradients are averaged over the ranks, so a step equals a single-process step on the global
batch up to float rounding. BatchNorm layers are synchronised (statistics of the global batch).
The world is read from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR, MASTER_PORT); :func:`launch` sets them for N processes on this machine.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from .errors import ConvscopeError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: the defaults)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the process that writes the run directory and reports."""
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch (along the first dimension)."""
        if self.size == 1:
            return batch
        check_batch_size(len(batch), self.size)
        per = len(batch) // self.size
        return batch[self.rank * per:(self.rank + 1) * per]

    def reduce_step(self, module: nn.Module, loss: torch.Tensor,
                    correct: int | None) -> tuple[float, int | None]:
        """Average the gradients over the ranks (one all_reduce); returns the global batch's
        mean loss and number of correct examples."""
        if self.size == 1:
            return loss.item(), correct
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        tally = torch.tensor([loss.item(), float(correct or 0)], device=loss.device)
        flat = torch.cat([*(g.reshape(-1).float() for g in grads), tally])
        dist.all_reduce(flat)
        flat /= self.size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()
        total = flat[-2:].tolist()
        return total[0], None if correct is None else round(total[1] * self.size)

    def broadcast(self, module: nn.Module) -> None:
        """Give every rank rank 0's weights and buffers."""
        if self.size > 1:
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, 0)

    def check_same(self, values: tuple[int, ...], what: str) -> None:
        """Raise on every rank unless all ranks hold the same ``values``."""
        if self.size == 1:
            return
        mine = torch.tensor(values, dtype=torch.int64, device=self.device)
        everyone = [torch.empty_like(mine) for _ in range(self.size)]
        dist.all_gather(everyone, mine)
        if any(not torch.equal(other, everyone[0]) for other in everyone):
            raise ConvscopeError(
                f"the processes disagree on the {what} ({[v.tolist() for v in everyone]} by "
                f"rank); every machine must see the same run directory (a shared filesystem)")

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.size > 1:
            dist.barrier(device_ids=[self.device.index] if self.device.type == "cuda" else None)


def check_batch_size(batch_size: int, processes: int) -> None:
    """Raise unless a global batch of ``batch_size`` splits evenly over ``processes``."""
    if batch_size % processes:
        raise ConvscopeError(
            f"a global batch of {batch_size} examples does not split evenly over {processes} "
            f"processes; choose a --batch-size divisible by {processes} (the training set "
            f"size must also be at least the batch size)")


def world_from_env(device: torch.device) -> World:
    """The world torchrun (or :func:`launch`) describes; one process without its variables.
    On a GPU, each process on a machine takes the GPU numbered by its LOCAL_RANK."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(device=device)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(size)))
    if device.type == "cuda":
        if local_size > torch.cuda.device_count():
            raise ConvscopeError(
                f"{local_size} processes on this machine need one GPU each, but it has "
                f"{torch.cuda.device_count()}; start at most that many (--nproc or torchrun's "
                f"--nproc-per-node), or train on --device cpu")
        device = torch.device("cuda", local_rank)
    return World(rank, size, local_rank, local_size, device)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@contextmanager
def joined(device: torch.device) -> Iterator[World]:
    """Join the process group of the world described by the environment, for the duration
    (nothing to do for one process or a group that the caller has already started).

    Each process uses ``cores // processes on this machine`` threads unless OMP_NUM_THREADS
    is set (torchrun sets it to 1 when it starts several processes)."""
    world = world_from_env(device)
    if world.size == 1 or dist.is_initialized():
        yield world
        return
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ConvscopeError(f"WORLD_SIZE is {world.size} but {' and '.join(missing)} is not "
                             f"set; start the processes with torchrun or --nproc")
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, _cores() // world.local_size))
    cuda = world.device.type == "cuda"
    if cuda:
        torch.cuda.set_device(world.device)
    dist.init_process_group("nccl" if cuda else "gloo", rank=world.rank, world_size=world.size)
    try:
        world.barrier()
        yield world
    finally:
        dist.destroy_process_group()


class _AllReduce(torch.autograd.Function):
    """Sum over the ranks, differentiable: the gradient is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _AllReduce.apply(grad)


class _SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over all ranks.

    For CPU (gloo), where torch's SyncBatchNorm does not run; the all_reduces are
    differentiable, so the backward pass synchronises too. Otherwise a plain BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        values = x.float()
        count = values.numel() // values.shape[1] * dist.get_world_size()
        mean = _AllReduce.apply(values.sum((0, 2, 3))) / count
        centred = values - mean[None, :, None, None]
        var = _AllReduce.apply(centred.square().sum((0, 2, 3))) / count
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None \
                else 1.0 / float(self.num_batches_tracked)
            with torch.no_grad():
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * count / max(count - 1, 1), momentum)
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(x.dtype)


def sync_batchnorm(module: nn.Module, world: World) -> nn.Module:
    """``module`` with its BatchNorm2d layers synchronised over the ranks (unchanged for one
    process): torch's SyncBatchNorm on a GPU, :class:`_SyncBatchNorm2d` on the CPU."""
    if world.size == 1:
        return module
    if world.device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = _SyncBatchNorm2d(child.num_features, child.eps, child.momentum,
                                      child.affine, child.track_running_stats)
            synced.load_state_dict(child.state_dict())
            setattr(module, name, synced)
        else:
            sync_batchnorm(child, world)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exit_without(parent: int) -> None:
    """End this process once its launcher is gone (killed): the run cannot go on without it."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _worker(local_rank: int, nproc: int, port: int, fn: Callable, args: tuple, kwargs: dict,
            errors) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(local_rank),
                      WORLD_SIZE=str(nproc), LOCAL_RANK=str(local_rank),
                      LOCAL_WORLD_SIZE=str(nproc))
    threading.Thread(target=_exit_without, args=(os.getppid(),), daemon=True).start()
    try:
        fn(*args, **kwargs)
    except ConvscopeError as exc:
        errors.put(str(exc))
        sys.exit(1)


def launch(nproc: int, fn: Callable, *args, **kwargs) -> None:
    """Run ``fn(*args, **kwargs)`` in ``nproc`` new processes on this machine (127.0.0.1, a
    free port), as ranks 0 .. nproc-1 of one world; returns when all have finished. A
    ConvscopeError in a process is raised here with its message."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConvscopeError("--nproc starts its own processes; under torchrun leave it out")
    errors = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(_worker, args=(nproc, _free_port(), fn, args, kwargs, errors), nprocs=nproc)
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        if not errors.empty():
            raise ConvscopeError(errors.get()) from None
        raise
