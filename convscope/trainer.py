"""The training loop: seeded, checkpointed, resumable to the same final weights.

Every random choice of step ``s`` in epoch ``e`` (shuffle order, crops, flips, dropout) is drawn
from generators seeded by ``(seed, e, s)``, so a run resumed from any checkpoint replays exactly
the steps an uninterrupted run would have taken.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from ._io import write_json_atomic
from .augment import (
    AUGMENTATIONS,
    alternating_flips,
    augmented,
    concatenated,
    draw,
    fit_batch,
    prepare_images,
    to_input,
)
from .checkpoint import load_checkpoint, save_checkpoint, save_model
from .config import TrainConfig, resolve_config
from .data import Dataset
from .device import autocast_for, pick_device
from .distributed import World, check_batch_size, joined, launch, sync_batchnorm
from .errors import ConvscopeError, RunError
from .evaluate import input_size
from .flat_optimizer import FlatOptimizer, can_flatten
from .layers import fit_whitening, has_whitening
from .lookahead import Lookahead
from .runs import CHECKPOINT, CONFIG, MODEL, RESULTS, Run, build_from_info, load_run
from .tasks import Task, get_task, task_names
from .tta import with_tta

CHECKPOINT_SECONDS = 60.0
CHUNK_BYTES = 8 * 2**20  # the model input of a chunk of training steps, made at once
BATCHNORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d,
              torch.nn.SyncBatchNorm)
OnEvent = Callable[[dict], bool | None] | None


def _seed_for(*parts: int) -> int:
    value = 0x9E3779B9
    for part in parts:
        value = (value * 1_000_003 + part + 1) % (2**62)
    return value


def _generator(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed_for(*parts))


def param_groups(config: TrainConfig, module: torch.nn.Module) -> list[dict]:
    """The trainable parameters, with batchnorm shifts in a group of their own when
    ``bias_lr_scale`` speeds them up (its weight decay shrinks to match: the same decay per
    step). Each group's ``lr_scale`` multiplies the scheduled learning rate."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    if config.bias_lr_scale == 1:
        return [{"params": trainable, "lr_scale": 1.0}]
    shifts = {id(m.bias) for m in module.modules()
              if isinstance(m, BATCHNORMS) and m.bias is not None}
    return [{"params": [p for p in trainable if id(p) in shifts],
             "lr_scale": config.bias_lr_scale,
             "weight_decay": config.weight_decay / config.bias_lr_scale},
            {"params": [p for p in trainable if id(p) not in shifts], "lr_scale": 1.0}]


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        nesterov = config.nesterov and config.momentum > 0
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               nesterov=nesterov, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adadelta(params, lr=config.lr, weight_decay=config.weight_decay)


def build_optimizer(config: TrainConfig,
                    module: torch.nn.Module) -> FlatOptimizer | torch.optim.Optimizer:
    """The run's optimizer over :func:`param_groups`, stepping each group as one flat tensor
    (:class:`FlatOptimizer`) where its parameters share a dtype and device."""
    groups = param_groups(config, module)
    if can_flatten(groups):
        return FlatOptimizer(groups, partial(make_optimizer, config))
    return make_optimizer(config, groups)


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """The schedule as a pure function of the global step (nothing to checkpoint)."""
    progress = step / max(1, total)
    if config.schedule == "onecycle":
        warm = 0.25
        if progress < warm:
            return config.lr * (0.1 + 0.9 * progress / warm)
        return config.lr * (1 - progress) / (1 - warm)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = Path(config.model.split(":")[0]).stem if ("/" in config.model or ":" in config.model) \
        else config.model
    return Path("runs") / f"{name}-{Path(config.data).name}-{stamp}"


def train(model: str | list | torch.nn.Module | None = None, data: str | None = None, *,
          task: str | None = None, out: str | Path | None = None, progress: bool = True,
          on_event: OnEvent = None, nproc: int = 1, **settings) -> Run:
    """Train a model: a registry name, a spec file, ``file.py:factory``, a spec (list of layer
    dicts; built after seeding, so runs repeat exactly) or a SpecNet (trained from its current
    weights). Without a model, the task's default model is trained.

    ``task`` is one of :func:`convscope.tasks.task_names` (default: the model's recipe, else
    classify); ``data`` defaults to the model's dataset, else the task's. ``settings`` are
    :class:`TrainConfig` fields; unset ones come from the model's recipe.
    ``on_event(event)`` is called after every step (``event["kind"] == "step"``) and epoch
    (``"epoch"``) with the current numbers and ``event["model"]``; returning False stops the
    run early, leaving a checkpoint (resumable) and the weights so far in model.safetensors.
    Returns the finished :class:`Run`, evaluated on the official test set.
    ``nproc > 1`` trains data-parallel in that many processes on this machine (see
    :mod:`convscope.distributed`; ``on_event`` is then unavailable).
    """
    from .model import SpecNet
    from .spec import load_spec
    from .user_module import resolve_model_ref

    if model is None:
        model = get_task(task or "classify").default_model
    given = model if isinstance(model, SpecNet) else None
    if given is not None:
        info = {"kind": "spec", "ref": "<python>", "spec": given.spec, "recipe": {}}
    elif isinstance(model, list | dict):
        info = {"kind": "spec", "ref": "<python>", "spec": load_spec(model), "recipe": {}}
    else:
        info = resolve_model_ref(str(model))[1]
    recipe = info.get("recipe") or {}
    task = task or recipe.get("task") or "classify"
    if task not in task_names():
        raise ConvscopeError(f"unknown task {task!r}; choose one of: {', '.join(task_names())}")
    data = data or info.get("dataset") or get_task(task).default_data
    config = resolve_config(recipe, {"model": info["ref"], "data": data, "task": task,
                                     **settings})
    run_dir = Path(out) if out else default_run_dir(config)
    if (run_dir / CONFIG).exists():
        raise RunError(f"{run_dir} already holds a run; continue it with "
                       f"`convscope train --resume {run_dir}` or choose another --out")
    if nproc != 1:
        _check_parallel(nproc, config, on_event)
        launch(nproc, train, model, data, task=task, out=run_dir, progress=progress, **settings)
        return load_run(run_dir)
    run = Run(run_dir, config, {k: info[k] for k in ("kind", "ref", "spec")}, {})
    torch.manual_seed(config.seed)
    module = given if given is not None else build_from_info(run.model_info)
    return _fit(run, module, position=None, progress=progress, on_event=on_event)


def resume(run_dir: str | Path, progress: bool = True, on_event: OnEvent = None,
           nproc: int = 1) -> Run:
    """Continue a run from its latest checkpoint (after a crash, kill or Ctrl-C), in ``nproc``
    processes (any number: checkpoints do not depend on it)."""
    run = load_run(run_dir)
    if (run.path / MODEL).exists() and (run.path / RESULTS).exists():
        raise RunError(f"{run.path} has already finished ({run.config.epochs} epochs); "
                       f"start a new run to train longer")
    if nproc != 1:
        _check_parallel(nproc, run.config, on_event)
        launch(nproc, resume, run_dir, progress)
        return load_run(run_dir)
    torch.manual_seed(run.config.seed)
    module = build_from_info(run.model_info)
    return _fit(run, module, position="resume", progress=progress, on_event=on_event)


def _check_parallel(processes: int, config: TrainConfig, on_event: OnEvent) -> None:
    if processes < 1:
        raise ConvscopeError(f"--nproc must be at least 1, got {processes}")
    if on_event is not None:
        raise ConvscopeError("on_event needs a single process; train with nproc=1")
    check_batch_size(config.batch_size, processes)


def _check_output(task: Task, module: torch.nn.Module, images: torch.Tensor,
                  dataset: Dataset) -> None:
    with torch.no_grad():
        was = module.training
        module.eval()
        output = module(to_input(images[:2]))
        module.train(was)
    task.check_output(output, dataset)


def _batch_targets(dataset: Dataset, labels: torch.Tensor, targets: dict[str, torch.Tensor],
                   index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"labels": labels[index], **{key: value[index] for key, value in targets.items()}}


def _val_numbers(result: dict, task: Task) -> dict:
    """The validation numbers of an epoch's metrics line: ``val_acc`` where there is an
    accuracy, and the task's headline metric."""
    numbers = {"val_acc": result["accuracy"]} if "accuracy" in result else {}
    if task.metric != "accuracy":
        numbers[f"val_{task.metric}"] = result[task.metric]
    return numbers


def _seed_dropout(seed: int, device: torch.device) -> None:
    """Seed the global generators that dropout draws from (cheaper than torch.manual_seed,
    which also seeds every accelerator's generators)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)


def _device_text(device: torch.device, processes: int) -> str:
    """"the CPU (2 threads)" or "NVIDIA H100 80GB HBM3 (cuda:0)", and how many processes."""
    text = (f"{torch.cuda.get_device_name(device)} ({device})" if device.type == "cuda"
            else f"the CPU ({_count(torch.get_num_threads(), 'thread')})")
    return text + (f", in each of {processes} processes" if processes > 1 else "")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _new_tally() -> dict:
    """Running sums of the current epoch (saved in checkpoints)."""
    return {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


def _rate(tally: dict) -> float:
    """Training examples per second so far this epoch."""
    return tally["seen"] / max(tally["seconds"], 1e-9)


def _stop(run: Run, module: torch.nn.Module, optimizer, position: dict,
          extra: dict | None) -> Run:
    """Stop early on request: checkpoint (resumable) and the weights so far."""
    save_checkpoint(run.path / CHECKPOINT, module, optimizer, position, extra)
    module.eval()
    save_model(run.path / MODEL, module, {"config": run.config.to_dict(), "stopped": position})
    run._model = module
    return run


def _batches(images: torch.Tensor, order: torch.Tensor, config: TrainConfig, epoch: int,
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
        choices = concatenated([draw(batch, images.shape[-2:], height, width, config.augment,
                                     _generator(config.seed, epoch, step),
                                     None if flips is None else flips[i * batch:(i + 1) * batch])
                                for i, step in enumerate(chunk)])
        x = to_input(augmented(images[index], height, width, config.augment, choices))
        x = x.contiguous(memory_format=torch.channels_last)
        for i in range(len(chunk)):
            yield index[i * batch:(i + 1) * batch], x[i * batch:(i + 1) * batch]


def _fit(run: Run, module: torch.nn.Module, position, progress: bool, on_event: OnEvent) -> Run:
    with joined(pick_device(run.config.device)) as world:
        if world.size > 1:
            _check_parallel(world.size, run.config, on_event)
        return _loop(run, module, world, position, progress and world.main, on_event)


def _loop(run: Run, module: torch.nn.Module, world: World, position, progress: bool,
          on_event: OnEvent) -> Run:
    config = run.config
    task = get_task(config.task)
    device = world.device
    train_set, val_set, test_set = task.load_data(config)
    depth, height, width = input_size(module, train_set.images)
    images = prepare_images(train_set.images, height, width, depth)
    _check_output(task, module, fit_batch(images[:2], height, width), train_set)
    run.data_info = {"name": config.data, "task": config.task, "classes": train_set.classes,
                     "input": [width, height, depth], "train": len(train_set),
                     "val": len(val_set), "test": len(test_set) if test_set else 0}
    module = sync_batchnorm(module, world).to(device, memory_format=torch.channels_last)
    images, labels = images.to(device), train_set.labels.to(device)
    targets = {key: value.to(device) for key, value in train_set.targets.items()}
    checkpoint = run.path / CHECKPOINT
    resuming = position == "resume" and checkpoint.exists()
    if not resuming and has_whitening(module):
        fit_whitening(module, to_input(fit_batch(images[:5000], height, width)).to(
            device, memory_format=torch.channels_last))
    optimizer = build_optimizer(config, module)
    lookahead = Lookahead(module) if config.lookahead else None
    extra = lookahead.average if lookahead else None
    n = images.shape[0]
    per_epoch = max(1, n // config.batch_size)
    total_steps = per_epoch * config.epochs
    epoch, step, tally = 0, 0, _new_tally()
    if resuming:
        saved = load_checkpoint(checkpoint, module, optimizer, extra)
        epoch, step, tally = saved["epoch"], saved["step"], saved["tally"]
        if world.main:
            print(f"resuming {run.path} at epoch {epoch + 1}, step {step}")
    if progress:
        name = "the given network" if config.model == "<python>" else config.model
        print(f"training {name} on {config.data}: {n:,} examples ({len(val_set):,} "
              f"held out for validation), {_count(config.epochs, 'epoch')} of "
              f"{_count(per_epoch, 'step')} of {config.batch_size}, {config.precision}, on "
              f"{_device_text(device, world.size)}")
    if position == "resume" and world.main:
        run.truncate_metrics(epoch)
    elif world.main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config()
    world.check_same((epoch, step), "position to resume from")
    world.broadcast(module)
    autocast = autocast_for(config.precision, device)
    scored = with_tta(module, config.tta)
    first_flips = torch.rand(n, generator=_generator(config.seed, -1)) < 0.5 \
        if AUGMENTATIONS[config.augment][1] == "alternate" else None
    last_save = time.monotonic()
    val_eval = None  # the latest epoch's validation result, reused for results.json
    module.train()
    while epoch < config.epochs:
        order = torch.randperm(n, generator=_generator(config.seed, epoch)).to(device)
        batches = _batches(images, order, config, epoch, range(step, per_epoch), (height, width),
                           first_flips)
        bar = tqdm(total=per_epoch, initial=step, desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not progress, unit="batch", leave=True)
        started = time.perf_counter() - tally["seconds"]
        while step < per_epoch:
            index, x = next(batches)
            count = len(index)
            rank = (world.rank,) if world.rank else ()  # rank 0 draws what one process draws
            _seed_dropout(_seed_for(config.seed, epoch, step, 1, *rank), device)
            x, index = world.shard(x), world.shard(index)
            batch_targets = _batch_targets(train_set, labels, targets, index)
            for group in optimizer.param_groups:
                group["lr"] = group["lr_scale"] * learning_rate(config, epoch * per_epoch + step,
                                                                total_steps)
            with autocast:
                output = module(x)
            loss, correct = task.loss(output, batch_targets, config, (height, width))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            batch_loss, correct = world.reduce_step(module, loss, correct)
            optimizer.step()
            step += 1
            if lookahead:
                lookahead.step(epoch * per_epoch + step, total_steps)
            tally["loss"] += batch_loss * count
            tally["correct"] += correct or 0
            tally["seen"] += count
            tally["seconds"] = time.perf_counter() - started
            accuracy = tally["correct"] / tally["seen"] if correct is not None else None
            if progress:
                bar.update(1)
                bar.set_postfix(refresh=False, loss=f"{tally['loss'] / tally['seen']:.3f}",
                                **({"acc": f"{100 * accuracy:.1f}%"} if accuracy is not None
                                   else {}), ex_s=f"{_rate(tally):.0f}")
            stop = on_event is not None and on_event({
                "kind": "step", "epoch": epoch, "step": step, "steps_per_epoch": per_epoch,
                "epochs": config.epochs, "loss": batch_loss, "accuracy": accuracy,
                "examples_per_s": _rate(tally), "model": module}) is False
            due = (step % config.checkpoint_every == 0) if config.checkpoint_every else \
                time.monotonic() - last_save > CHECKPOINT_SECONDS
            if stop:
                bar.close()
                return _stop(run, module, optimizer, {"epoch": epoch, "step": step,
                                                      "tally": tally}, extra)
            if due and step < per_epoch and world.main:
                save_checkpoint(run.path / CHECKPOINT, module, optimizer,
                                {"epoch": epoch, "step": step, "tally": tally}, extra)
                last_save = time.monotonic()
        bar.close()
        line = {"epoch": epoch + 1, "train_loss": tally["loss"] / tally["seen"],
                **({"train_acc": accuracy} if accuracy is not None else {}),
                "lr": learning_rate(config, (epoch + 1) * per_epoch - 1, total_steps),
                "seconds": tally["seconds"],
                "examples_per_s": _rate(tally),
                **({"processes": world.size} if world.size > 1 else {})}
        if len(val_set) and world.main:  # the other ranks wait at the barrier
            with autocast:
                val_eval = task.evaluate(scored, val_set)
            line.update(_val_numbers(val_eval, task))
        if world.main:
            run.append_metrics(line)
        world.barrier()
        stop = on_event is not None and on_event({"kind": "epoch", **line, "model": module}) \
            is False
        epoch, step, tally = epoch + 1, 0, _new_tally()
        if world.main:
            save_checkpoint(run.path / CHECKPOINT, module, optimizer,
                            {"epoch": epoch, "step": 0, "tally": tally}, extra)
        last_save = time.monotonic()
        if stop and epoch < config.epochs:
            return _stop(run, module, optimizer, {"epoch": epoch, "step": 0, "tally": tally},
                         extra)
        if progress:
            train_acc = f", train acc {100 * accuracy:.2f}%" if accuracy is not None else ""
            val = f", val {task.headline(val_eval)}" if val_eval else ""
            print(f"epoch {epoch}: train loss {line['train_loss']:.4f}{train_acc}{val}, "
                  f"{line['examples_per_s']:.0f} examples/s")
    module.eval()
    run._model = module
    if not world.main:
        world.barrier()  # while rank 0 writes the model and evaluates it
        return run
    save_model(run.path / MODEL, module, {"config": config.to_dict()})
    results = {}
    with autocast:
        if test_set is not None:
            results["test"] = task.evaluate(scored, test_set)
        if len(val_set):
            results["val"] = val_eval or task.evaluate(scored, val_set)
        if config.tta != "none" and test_set is not None:
            results["tta"] = {"mode": config.tta, "test_accuracy_without": task.evaluate(
                module, test_set)["accuracy"]}
    write_json_atomic(run.path / RESULTS, results)
    run.results = results
    if progress and "test" in results:
        print(f"test {task.headline(results['test'])}, run: {run.path}")
    world.barrier()
    return run

