"""A training session: one run's training state and its explicit steps.

:meth:`TrainingSession.step` (one optimizer step), :meth:`~TrainingSession.end_epoch`
(validation, the epoch's metrics line), :meth:`~TrainingSession.finish` (final weights and
test scores) or :meth:`~TrainingSession.stop` (a resumable early stop);
:meth:`~TrainingSession.fit` drives them and tells the :mod:`convscope.callbacks`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch

from ._io import write_json_atomic
from .augment import AUGMENTATIONS, fit_batch, prepare_images, to_input
from .batches import generator, seed_for, training_batches
from .callbacks import Callback, count
from .checkpoint import load_checkpoint, save_checkpoint, save_model
from .data import Dataset
from .data.location import folder_record
from .device import autocast_for, precision_text, resolve_precision, warn_if_emulated
from .distributed import World, sync_batchnorm
from .errors import ConvscopeError
from .evaluate import input_size
from .interrupts import StepInterrupts
from .layers import fit_whitening, has_whitening
from .lookahead import Lookahead
from .optimizers import build_optimizer, learning_rate, schedule_span, set_learning_rate
from .runs import CHECKPOINT, MODEL, RESULTS, Run, environment
from .tasks import Task, get_task
from .tasks.base import model_outputs
from .tta import scored_with_and_without, with_tta


class TrainingSession:
    """Trains ``module`` for ``run`` in ``world``, from the run's checkpoint if ``resume``."""

    def __init__(self, run: Run, module: torch.nn.Module, world: World, resume: bool,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.run, self.config, self.world = run, run.config, world
        self.task = get_task(self.config.task)
        self.callbacks = list(callbacks)
        self.stopping = False  # a callback asked to stop
        self.val_eval: dict | None = None  # the latest validation result
        self.accuracy: float | None = None  # training accuracy so far this epoch
        self._load_data(module)
        self._prepare(resume)

    # ---- setting up ---------------------------------------------------------------------

    def _load_data(self, module: torch.nn.Module) -> None:
        config, device = self.config, self.world.device
        train_set, self.val_set, self.test_set = self.task.load_data(
            config, **self.task.data_options(module))
        depth, height, width = input_size(module, train_set.images)
        images = prepare_images(train_set.images, height, width, depth)
        _check_output(self.task, module, fit_batch(images[:2], height, width), train_set)
        self.task.fit_to_data(module, train_set)
        self.run.data_info = {
            "name": config.data, "task": config.task, "classes": train_set.classes,
            "input": [width, height, depth], "train": len(train_set), "val": len(self.val_set),
            "test": len(self.test_set) if self.test_set else 0,
            **folder_record(config.data, self.run.path, train_set.volume)}
        self.size = (height, width)
        self.module = sync_batchnorm(module, self.world).to(device,
                                                            memory_format=torch.channels_last)
        self.images, self.labels = images.to(device), train_set.labels.to(device)
        self.targets = {key: value.to(device) for key, value in train_set.targets.items()}
        self.examples = images.shape[0]
        # whole batches only: steps of one shape, and no batch of one for batchnorm; the last
        # partial batch of each epoch's shuffled order is left out (said in the start line)
        self.per_epoch = max(1, self.examples // config.batch_size)
        self.left_out = max(0, self.examples - self.per_epoch * config.batch_size)
        self.total_steps = self.per_epoch * config.epochs

    def _prepare(self, resume: bool) -> None:
        """Whitening, optimizer, the position (saved or fresh) and the run directory."""
        config, world, module = self.config, self.world, self.module
        checkpoint = self.run.path / CHECKPOINT
        resuming = resume and checkpoint.exists()
        if not resuming and has_whitening(module):
            fit_whitening(module, to_input(fit_batch(self.images[:5000], *self.size)).to(
                world.device, memory_format=torch.channels_last))
        self.optimizer = build_optimizer(config, module)
        self.lookahead = Lookahead(module) if config.lookahead else None
        self.extra = self.lookahead.average if self.lookahead else None
        self.epoch, self.steps_done, self.tally = 0, 0, _new_tally()
        if resuming:
            saved = load_checkpoint(checkpoint, module, self.optimizer, self.extra,
                                    bounds=(config.epochs, self.per_epoch))
            self.epoch, self.steps_done, self.tally = saved["epoch"], saved["step"], saved["tally"]
            if world.main:
                print(self._resuming_text())
        self.precision = resolve_precision(config.precision, world.device)
        if world.main:
            warn_if_emulated(config.precision, world.device)
        if resume and world.main:
            self.run.truncate_metrics(self.epoch)
        elif world.main:  # the run directory exists: the trainer holds its lock
            self.run.write_config(self.precision)
        world.check_same((self.epoch, self.steps_done), "position to resume from")
        world.broadcast(module)
        self.autocast = autocast_for(self.precision, world.device)
        self.scored = with_tta(module, config.tta)
        self.first_flips = torch.rand(self.examples, generator=generator(config.seed, -1)) < 0.5 \
            if AUGMENTATIONS[config.augment][1] == "alternate" else None
        module.train()

    # ---- the steps ----------------------------------------------------------------------

    @property
    def position(self) -> dict:
        """Where training stands: what a checkpoint saves and a resume continues from."""
        return {"epoch": self.epoch, "step": self.steps_done, "tally": self.tally}

    def start_epoch(self) -> None:
        """Draw the epoch's order and ready its batches (from the current step on)."""
        config = self.config
        order = torch.randperm(self.examples, generator=generator(config.seed, self.epoch))
        self._batches = training_batches(self.images, order.to(self.world.device), config,
                                         self.epoch, range(self.steps_done, self.per_epoch),
                                         self.size, self.first_flips)
        self._started = time.perf_counter() - self.tally["seconds"]

    def step(self) -> dict:
        """One optimizer step on the next batch; returns the step's numbers."""
        config, world, module, tally = self.config, self.world, self.module, self.tally
        index, x = next(self._batches)
        count = len(index)
        rank = (world.rank,) if world.rank else ()  # rank 0 draws what one process draws
        _seed_dropout(seed_for(config.seed, self.epoch, self.steps_done, 1, *rank),
                      world.device)
        x, index = world.shard(x), world.shard(index)
        targets = {"labels": self.labels[index],
                   **{key: value[index] for key, value in self.targets.items()}}
        rate = learning_rate(config, self.global_step, self.total_steps)
        set_learning_rate(self.optimizer, config, self.global_step, self.total_steps)
        self.optimizer.zero_grad(set_to_none=True)
        loss, correct = self._gradients(x, targets)
        batch_loss, correct = world.reduce_step(module, loss, correct)
        if not math.isfinite(batch_loss):  # every rank sees the same loss and stops
            raise ConvscopeError(f"training diverged: the loss became {batch_loss} in epoch "
                                 f"{self.epoch + 1}, step {self.steps_done + 1}; train again "
                                 f"with a lower --lr (this run's is {config.lr})")
        self.optimizer.step()
        self.steps_done += 1
        if self.lookahead:
            step, span = schedule_span(config, self.global_step - 1, self.total_steps)
            self.lookahead.step(step + 1, span)  # (its steps count from 1)
        tally["loss"] += batch_loss * count
        tally["correct"] += correct or 0
        tally["seen"] += count
        tally["seconds"] = time.perf_counter() - self._started
        self.accuracy = tally["correct"] / tally["seen"] if correct is not None else None
        return {"epoch": self.epoch, "step": self.steps_done, "steps_per_epoch": self.per_epoch,
                "epochs": config.epochs, "loss": batch_loss, "accuracy": self.accuracy,
                "lr": rate, "examples_per_s": _rate(tally)}

    def _gradients(self, x: torch.Tensor, targets: dict) -> tuple[torch.Tensor, int | None]:
        """Backward the batch's mean loss, in parts of ``micro_batch`` examples when set (each
        part's loss weighted by its share of the batch); returns the loss and the correct
        count."""
        size = self.config.micro_batch or len(x)
        loss, correct = None, None
        for start in range(0, len(x), size):
            part = slice(start, start + size)
            share = (min(start + size, len(x)) - start) / len(x)
            with self.autocast:
                output = self.module(x[part])
            part_loss, part_correct = self.task.loss(
                output, {key: value[part] for key, value in targets.items()}, self.config,
                self.size)
            if share == 1:
                part_loss.backward()
                return part_loss, part_correct
            (part_loss * share).backward()
            part_loss = part_loss.detach().float() * share
            loss = part_loss if loss is None else loss + part_loss
            if part_correct is not None:
                correct = (correct or 0) + part_correct
        return loss, correct

    @property
    def global_step(self) -> int:
        return self.epoch * self.per_epoch + self.steps_done

    def end_epoch(self) -> dict:
        """Validate (the main process; the others wait) and return the epoch's metrics line."""
        tally, world = self.tally, self.world
        line = {"epoch": self.epoch + 1, "train_loss": tally["loss"] / tally["seen"],
                **({"train_acc": self.accuracy} if self.accuracy is not None else {}),
                "lr": learning_rate(self.config, (self.epoch + 1) * self.per_epoch - 1,
                                    self.total_steps),
                "seconds": tally["seconds"], "examples_per_s": _rate(tally),
                **({"processes": world.size} if world.size > 1 else {})}
        if len(self.val_set) and world.main:
            with self.autocast:
                self.val_eval = self.task.evaluate(self.scored, self.val_set)
                val_loss = self._val_loss()
            line.update(_val_numbers(self.val_eval, self.task), val_loss=val_loss)
        world.barrier()
        return line

    def _val_loss(self) -> float:
        """The training loss on the validation set (no augmentation, eval mode)."""
        total, val_set = 0.0, self.val_set
        for start, output in model_outputs(self.module, val_set.images,
                                           self.task.eval_batch_size):
            end = start + len(output)
            targets = {"labels": val_set.labels[start:end],
                       **{key: value[start:end] for key, value in val_set.targets.items()}}
            with torch.no_grad():
                loss, _ = self.task.loss(output, targets, self.config, self.size)
            total += float(loss) * len(output)
        return total / len(val_set)

    def next_epoch(self) -> None:
        self.epoch, self.steps_done, self.tally = self.epoch + 1, 0, _new_tally()

    def save_checkpoint(self) -> None:
        save_checkpoint(self.run.path / CHECKPOINT, self.module, self.optimizer, self.position,
                        self.extra)

    def stop(self) -> Run:
        """Stop early: a checkpoint (resumable) and the weights so far."""
        self.save_checkpoint()
        self.module.eval()
        save_model(self.run.path / MODEL, self.module,
                   {"config": self.config.to_dict(), "stopped": self.position})
        self.run.model = self.module
        self._tell("on_stop")
        return self.run

    def finish(self) -> Run:
        """The final weights, scored on the test set (and validation set) by the main process."""
        config, world, task, run = self.config, self.world, self.task, self.run
        self.module.eval()
        run.model = self.module
        if not world.main:
            world.barrier()  # while rank 0 writes the model and evaluates it
            return run
        save_model(run.path / MODEL, self.module, {"config": config.to_dict()})
        results = {}
        with self.autocast:
            if self.test_set is not None:
                results.update(self._test_results())
            if len(self.val_set):
                results["val"] = self.val_eval or task.evaluate(self.scored, self.val_set)
        results["environment"] = environment(self.precision)
        write_json_atomic(run.path / RESULTS, results)
        run.results = results
        self._tell("on_finish", results)
        world.barrier()
        return run

    def _test_results(self) -> dict:
        """The test set's evaluation; with test-time augmentation, also the accuracy on the
        images alone, from the same passes."""
        if self.config.tta == "none":
            return {"test": self.task.evaluate(self.scored, self.test_set)}
        test, plain = scored_with_and_without(
            self.scored, lambda scored: self.task.evaluate(scored, self.test_set))
        labels = self.test_set.labels.cpu()
        without = float((plain.argmax(1) == labels).float().mean())
        return {"test": test, "tta": {"mode": self.config.tta, "test_accuracy_without": without}}

    # ---- driving them -------------------------------------------------------------------

    def fit(self) -> Run:
        """Train to the last epoch (or a callback's stop) and return the run."""
        try:
            self._tell("on_start")
            with StepInterrupts() as interrupts:  # Ctrl-C, SIGTERM: stop after the step
                while self.epoch < self.config.epochs:
                    self.start_epoch()
                    self._tell("on_epoch_start")
                    while self.steps_done < self.per_epoch:
                        if interrupts.pending:
                            self._interrupted(interrupts)
                        if self._tell("on_step", self.step()):
                            return self.stop()
                    line = self.end_epoch()
                    self.next_epoch()
                    if self._tell("on_epoch_end", line) and self.epoch < self.config.epochs:
                        return self.stop()
            return self.finish()
        except BaseException as error:
            self._tell("on_error", error)
            raise

    def _interrupted(self, interrupts: StepInterrupts) -> None:
        """Stop as a callback would (checkpoint and weights so far), then let the interrupt
        go on (KeyboardInterrupt)."""
        if self.world.main:
            self.stop()
        interrupts.deliver()

    def _resuming_text(self) -> str:
        epochs, path = self.config.epochs, self.run.path
        if self.epoch >= epochs:
            return (f"resuming {path}: its training is complete ({count(epochs, 'epoch')}); "
                    f"finishing it (final weights and test scores)")
        restart = self.config.schedule_restart
        again = f"; its {self.config.schedule} learning-rate schedule runs again over epochs " \
            f"{restart + 1}-{epochs} (the run was extended)" if restart else ""
        return (f"resuming {path} at epoch {self.epoch + 1} of {epochs}, "
                f"step {self.steps_done} of {self.per_epoch}{again}")

    def _tell(self, hook: str, *args) -> bool:
        """Call ``hook`` of every callback in order; True once one has asked to stop."""
        for callback in self.callbacks:
            if getattr(callback, hook)(self, *args) is False:
                self.stopping = True
        return self.stopping

    def precision_text(self) -> str:
        """"bf16", or "fp32 (auto: this CPU has no native bf16; the recipe was tuned in
        bf16)"."""
        return precision_text(self.config.precision, self.world.device,
                              self.config.tuned_precision)

    def left_out_text(self) -> str:
        """What the start line says of the partial last batch each epoch leaves out."""
        if not self.left_out:
            return ""
        return (f"; the last {count(self.left_out, 'example')} of each epoch's shuffled order "
                "are left out (a partial batch)")

    def device_text(self) -> str:
        """"the CPU (2 threads)" or "NVIDIA H100 80GB HBM3 (cuda:0)", and how many processes."""
        device, processes = self.world.device, self.world.size
        text = (f"{torch.cuda.get_device_name(device)} ({device})" if device.type == "cuda"
                else "the Apple GPU (mps)" if device.type == "mps"
                else f"the CPU ({count(torch.get_num_threads(), 'thread')})")
        return text + (f", in each of {processes} processes" if processes > 1 else "")


def _check_output(task: Task, module: torch.nn.Module, images: torch.Tensor,
                  dataset: Dataset) -> None:
    with torch.no_grad():
        was = module.training
        module.eval()
        output = module(to_input(images[:2]))
        module.train(was)
    task.check_output(output, dataset)


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
    elif device.type == "mps":
        torch.mps.manual_seed(seed)


def _new_tally() -> dict:
    """Running sums of the current epoch (saved in checkpoints)."""
    return {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


def _rate(tally: dict) -> float:
    """Training examples per second so far this epoch."""
    return tally["seen"] / max(tally["seconds"], 1e-9)
