"""Training: :func:`train` and :func:`resume`, each a :class:`~convscope.session.TrainingSession`
with its callbacks (the optimizer and schedule are in :mod:`convscope.optimizers`, the seeded
batches in :mod:`convscope.batches`).

Every random choice of step ``s`` in epoch ``e`` (shuffle order, crops, flips, dropout) is drawn
from generators seeded by ``(seed, e, s)``, so a run resumed from any checkpoint replays exactly
the steps an uninterrupted run would have taken.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import torch

from . import finetune
from .callbacks import Callback, Checkpointing, EventCallback, MetricsLog, OnEvent, Progress
from .config import TrainConfig, resolve_config
from .data.location import absolute_data
from .device import pick_device
from .distributed import check_batch_size, joined, launch
from .errors import ConvscopeError, RunError, WriteError
from .interrupts import naming_run, reaching_workers, sigterm_as_interrupt
from .logs import LOG_FILES, log_callbacks
from .run_lock import locked_run
from .runs import CHECKPOINT, CONFIG, METRICS, MODEL, RESULTS, Run, build_from_info, load_run
from .session import TrainingSession
from .tasks import get_task
from .user_module import OBJECT, ModelDescription, describe_object, resolve_model_ref

RUN_FILES = (CONFIG, METRICS, CHECKPOINT, MODEL, RESULTS, *LOG_FILES)  # the files training writes


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = Path(config.model.split(":")[0]).stem if ("/" in config.model or ":" in config.model) \
        else config.model.strip("<>")  # "<python>": a spec or module given as an object
    return Path("runs") / f"{name}-{Path(config.data).name}-{stamp}"


def train(model: str | list | tuple | torch.nn.Module | None = None, data: str | None = None,
          *, task: str | None = None, out: str | Path | None = None, progress: bool = True,
          on_event: OnEvent = None, callbacks: Sequence[Callback] = (), nproc: int = 1,
          **settings) -> Run:
    """Train a model: a registry name, a spec file, ``file.py:factory`` (with keyword
    arguments: ``("file.py:factory", {"num_classes": 5})``), a spec (list of layer dicts; built
    after seeding, so runs repeat exactly), a SpecNet or any ``nn.Module`` object (trained from
    its current weights, in place; its run keeps the weights but no code: reload them with
    :meth:`Run.load_weights_into`). Without a model, the task's default model is trained.

    ``task`` is one of the registered tasks (default: the model's recipe, else classify);
    ``data`` defaults to the model's dataset, else the task's. ``settings`` are
    :class:`TrainConfig` fields; unset ones come from the model's recipe. ``init_from`` (a run
    directory or bundled model) fine-tunes: without a model, its network; ``num_classes`` and
    ``freeze`` size and freeze the output layer (see :mod:`convscope.finetune`).
    ``callbacks`` (:class:`convscope.callbacks.Callback`) hear every step, epoch and the end;
    ``on_event(event)`` is the simplest one (:class:`~convscope.callbacks.EventCallback`): it
    is called after every step (``event["kind"] == "step"``) and epoch (``"epoch"``) with the
    current numbers and ``event["model"]``. A callback returning False stops the run early,
    leaving a checkpoint (resumable) and the weights so far in model.safetensors.
    Returns the finished :class:`Run`, evaluated on the official test set.
    ``nproc > 1`` trains data-parallel in that many processes on this machine (see
    :mod:`convscope.distributed`; callbacks are then unavailable).
    """
    source = finetune.open_source(settings["init_from"]) if settings.get("init_from") else None
    if source is not None:
        settings = {**settings, "init_from": source.name}  # found again from anywhere
    described, given = (finetune.describe_source(source), None) if source and model is None \
        else _describe(model, task)
    recipe = described.recipe
    task = task or recipe.get("task") or "classify"
    default_data = get_task(task).default_data  # an unknown task is refused here
    data = absolute_data(data or described.dataset or default_data)  # works from anywhere
    if isinstance(settings.get("data_dir"), str):
        settings["data_dir"] = str(Path(settings["data_dir"]).expanduser().absolute())
    config = resolve_config(recipe, {"model": described.ref, "data": data, "task": task,
                                     **settings})
    described = finetune.sized_for_data(described, config, given)
    finetune.fit_folder_to_input(config, described)  # the model's input size, unless chosen
    if source is not None:
        described = replace(described, about={**described.about, "init": source.record})
    run_dir = Path(out) if out else default_run_dir(config)
    callbacks = _with_event(callbacks, on_event)
    if nproc != 1:
        _check_new(run_dir)  # (one process checks under the run's lock, naming its holder)
        _check_parallel(nproc, config, callbacks)
        with naming_run(run_dir), reaching_workers():
            launch(nproc, train, model, data, task=task, out=run_dir, progress=progress,
                   **settings)
        run = load_run(run_dir, trust_code=True)  # the model the user named
        if described.kind == OBJECT:
            run.load_weights_into(given)  # the object has no code to rebuild it from
        return run
    run = Run(run_dir, config, described.run_info, {}, kept_code=described.code)
    torch.manual_seed(config.seed)
    module = given if given is not None else described.build()
    finetune.start(module, config, source)
    return _fit(run, module, resume=False, progress=progress, callbacks=callbacks)


def _check_new(run_dir: Path) -> None:
    if (run_dir / CONFIG).exists():
        raise RunError(f"{run_dir} already holds a run; continue it with "
                       f"`convscope train --resume {run_dir}` or choose another --out")


def _describe(model: str | list | tuple | dict | torch.nn.Module | None,
              task: str | None) -> tuple[ModelDescription, torch.nn.Module | None]:
    """What ``model`` names (nothing built), and the given module to train (else None)."""
    from .model import SpecNet
    from .spec import load_spec

    default = get_task(task or "classify").default_model
    model = default if model is None else model
    if isinstance(model, SpecNet):
        return ModelDescription("spec", "<python>", model.spec), model
    if isinstance(model, torch.nn.Module):
        return describe_object(model), model
    if isinstance(model, tuple) or (isinstance(model, list) and model
                                    and isinstance(model[0], str)):
        if len(model) != 2:
            raise ConvscopeError("a model with arguments is a pair ('file.py:factory', "
                                 f"{{...keyword arguments}}), got {len(model)} items")
        return resolve_model_ref(str(model[0] or default), model[1]), None
    if isinstance(model, list | dict):
        return ModelDescription("spec", "<python>", load_spec(model)), None
    return resolve_model_ref(str(model)), None


def resume(run_dir: str | Path, progress: bool = True, on_event: OnEvent = None,
           nproc: int = 1, callbacks: Sequence[Callback] = (), trust_code: bool = False,
           epochs: int | None = None, data: str | None = None,
           data_dir: str | None = None) -> Run:
    """Continue a run from its latest checkpoint (after a crash, kill or Ctrl-C), in ``nproc``
    processes (any number: checkpoints do not depend on it). ``trust_code`` allows a run of a
    Python model to import the code it keeps (:func:`convscope.runs.build_from_info`).
    ``epochs``: extend the run, finished or not, to that many epochs in all (:func:`extend`).
    ``data`` / ``data_dir``: where its data is now, if it moved (:meth:`Run.data_config`)."""
    run = load_run(run_dir, trust_code=trust_code)
    if epochs is not None and epochs != run.config.epochs:
        with locked_run(run.path, RUN_FILES):
            extend(load_run(run_dir, trust_code=trust_code), epochs)
        run = load_run(run_dir, trust_code=trust_code)
    _check_unfinished(run)
    run.config = run.data_config(data, data_dir, split="train")  # found, if it moved
    callbacks = _with_event(callbacks, on_event)
    if nproc != 1:
        _check_parallel(nproc, run.config, callbacks)
        with naming_run(run.path), reaching_workers():
            launch(nproc, resume, run_dir, progress, trust_code=trust_code, data=data,
                   data_dir=data_dir)
        return load_run(run_dir, trust_code=trust_code)
    torch.manual_seed(run.config.seed)
    module = build_from_info(run.model_info, run.path, trust_code)
    finetune.start_resumed(module, run)
    return _fit(run, module, resume=True, progress=progress, callbacks=callbacks)


def extend(run: Run, epochs: int) -> Run:
    """Make ``run`` a run of ``epochs`` epochs in all, to be resumed (its config.yaml says so;
    a finished run's results.json goes: its final scores are scored again at the new end).
    The epochs trained keep their learning rates; a decaying schedule (onecycle, cosine,
    linear) runs again over the added epochs (``schedule_restart``), a constant one carries
    on."""
    config, finished = run.config, _finished(run)
    if epochs <= config.epochs:
        raise RunError(f"{run.path} is a run of {config.epochs} epochs; --epochs {epochs} "
                       f"would shorten it: give more than {config.epochs}")
    restart = config.schedule_restart
    if config.schedule != "constant":
        if restart and not finished:
            raise RunError(f"{run.path} has not finished its {config.epochs} epochs, whose "
                           f"schedule restarts at epoch {restart}; finish it first "
                           f"(convscope train --resume {run.path}), then extend it")
        restart = config.epochs
    run.config = TrainConfig.from_dict({**config.to_dict(), "epochs": epochs,
                                        "schedule_restart": restart})
    run.save_train_config()
    (run.path / RESULTS).unlink(missing_ok=True)
    return run


def _finished(run: Run) -> bool:
    return (run.path / MODEL).exists() and (run.path / RESULTS).exists()


def _check_unfinished(run: Run) -> None:
    if _finished(run):
        raise RunError(f"{run.path} has already finished ({run.config.epochs} epochs); "
                       f"extend it with `convscope train --resume {run.path} --epochs N` "
                       "(N epochs in all), or start a new run")


def _with_event(callbacks: Sequence[Callback], on_event: OnEvent) -> list[Callback]:
    return [*callbacks, *([EventCallback(on_event)] if on_event is not None else [])]


def _check_parallel(processes: int, config: TrainConfig, callbacks: Sequence[Callback]) -> None:
    if processes < 1:
        raise ConvscopeError(f"--nproc must be at least 1, got {processes}")
    if callbacks:
        raise ConvscopeError("on_event (or any callback) needs a single process; "
                             "train with nproc=1")
    check_batch_size(config.batch_size, processes)


def _fit(run: Run, module: torch.nn.Module, resume: bool, progress: bool,
         callbacks: Sequence[Callback]) -> Run:
    """Train in a :class:`TrainingSession`, with the metrics log, ``callbacks``, checkpoints
    and (the main process's) progress; the main process holds the run directory's lock."""
    logs = log_callbacks(run.config)  # (refused before anything is written)
    with naming_run(run.path), joined(pick_device(run.config.device)) as world:
        if world.size > 1:
            _check_parallel(world.size, run.config, callbacks)
        shown = [Progress()] if progress and world.main else []
        # a worker stops with a checkpoint on its launcher's (or torchrun's) SIGTERM too
        stopping = sigterm_as_interrupt() if world.size > 1 else nullcontext()
        with _held(run, world.main, resume), stopping:
            session = TrainingSession(run, module, world, resume,
                                      [MetricsLog(), *logs, *callbacks, Checkpointing(),
                                       *shown])
            return session.fit()


@contextmanager
def _held(run: Run, main: bool, resume: bool) -> Iterator[None]:
    """The run directory, locked (by the main process) and checked again under the lock; a
    write error names the checkpoint to resume from, if there is one."""
    if not main:
        yield
        return
    with locked_run(run.path, RUN_FILES):
        if resume:
            _check_unfinished(run)
        else:
            _check_new(run.path)
        try:
            yield
        except WriteError as exc:
            if not (run.path / CHECKPOINT).exists():
                raise
            raise WriteError(f"{exc}; the run is kept up to its last checkpoint: continue it "
                             f"with `convscope train --resume {run.path}`") from None
