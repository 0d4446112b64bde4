"""What happens around a training session's steps: progress, checkpoints, metrics, events.

A :class:`Callback` hears each step of a :class:`~convscope.session.TrainingSession`; one that
returns False from :meth:`Callback.on_step` or :meth:`Callback.on_epoch_end` stops the run
early (resumable). The session tells its callbacks in order, and a callback sees whether an
earlier one asked to stop in ``session.stopping``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .progress import progress_bar

if TYPE_CHECKING:
    from .session import TrainingSession

CHECKPOINT_SECONDS = 60.0
OnEvent = Callable[[dict], bool | None] | None


class Callback:
    """Hooks of a training session; each does nothing unless overridden."""

    def on_start(self, session: TrainingSession) -> None:
        """Before the first step (of this process: after a resume, at the saved position)."""

    def on_epoch_start(self, session: TrainingSession) -> None:
        """Before the first step of an epoch (or the first step left of it)."""

    def on_step(self, session: TrainingSession, event: dict) -> bool | None:
        """After an optimizer step; ``event`` holds its numbers. False stops the run."""

    def on_epoch_end(self, session: TrainingSession, line: dict) -> bool | None:
        """After an epoch, with its metrics line; ``session.epoch`` has already moved on to
        the next epoch. False stops the run (unless that was the last epoch)."""

    def on_stop(self, session: TrainingSession) -> None:
        """After a run stopped early has saved its checkpoint and weights."""

    def on_finish(self, session: TrainingSession, results: dict) -> None:
        """After the final weights and ``results`` (the test scores) are saved."""

    def on_error(self, session: TrainingSession, error: BaseException) -> None:
        """When training ends with ``error`` (raised on to the caller): an interrupt, a write
        error."""


class MetricsLog(Callback):
    """Appends each epoch's line to the run's metrics.jsonl (the main process only)."""

    def on_epoch_end(self, session: TrainingSession, line: dict) -> None:
        if session.world.main:
            session.run.append_metrics(line)


class EventCallback(Callback):
    """``on_event(event)`` after every step (``event["kind"] == "step"``) and epoch
    (``"epoch"``), with the current numbers and ``event["model"]``; False stops the run."""

    def __init__(self, on_event: Callable[[dict], bool | None]) -> None:
        self.on_event = on_event

    def on_step(self, session: TrainingSession, event: dict) -> bool | None:
        return self.on_event({"kind": "step", **event, "model": session.module})

    def on_epoch_end(self, session: TrainingSession, line: dict) -> bool | None:
        return self.on_event({"kind": "epoch", **line, "model": session.module})


class Checkpointing(Callback):
    """Saves the training state after every epoch and within one every ``checkpoint_every``
    steps (else about every minute), so a run resumes close to where it stopped."""

    def __init__(self) -> None:
        self.last_save = time.monotonic()

    def on_start(self, session: TrainingSession) -> None:
        self.last_save = time.monotonic()

    def on_step(self, session: TrainingSession, event: dict) -> None:
        every = session.config.checkpoint_every
        due = (session.steps_done % every == 0) if every else \
            time.monotonic() - self.last_save > CHECKPOINT_SECONDS
        if session.stopping:  # stopping saves its own checkpoint
            return
        if due and session.steps_done < session.per_epoch and session.world.main:
            session.save_checkpoint()
            self.last_save = time.monotonic()

    def on_epoch_end(self, session: TrainingSession, line: dict) -> None:
        if session.world.main:
            session.save_checkpoint()
        self.last_save = time.monotonic()


class Progress(Callback):
    """What a person watching sees: the run's plan, a bar per epoch, a line per epoch and
    the test score."""

    def __init__(self) -> None:
        self.bar = None  # progress_bar's

    def on_start(self, session: TrainingSession) -> None:
        config = session.config
        name = "the given network" if config.model == "<python>" else config.model
        print(f"training {name} on {config.data}: {session.examples:,} examples "
              f"({len(session.val_set):,} held out for validation), "
              f"{count(config.epochs, 'epoch')} of {count(session.per_epoch, 'step')} of "
              f"{config.batch_size}{_parts(config)}, {session.precision_text()}, on "
              f"{session.device_text()}"
              f"{session.left_out_text()}")

    def on_epoch_start(self, session: TrainingSession) -> None:
        self.bar = progress_bar(total=session.per_epoch, initial=session.steps_done,
                                unit="batch",
                                desc=f"epoch {session.epoch + 1}/{session.config.epochs}")

    def on_step(self, session: TrainingSession, event: dict) -> None:
        tally, accuracy = session.tally, event["accuracy"]
        self.bar.update(1)
        self.bar.set_postfix(refresh=False, loss=f"{tally['loss'] / tally['seen']:.3f}",
                             **({"acc": f"{100 * accuracy:.1f}%"} if accuracy is not None
                                else {}), ex_s=f"{event['examples_per_s']:.0f}")

    def on_epoch_end(self, session: TrainingSession, line: dict) -> None:
        self._close()
        if session.stopping and session.epoch < session.config.epochs:
            return
        train_acc = f", train acc {100 * line['train_acc']:.2f}%" if "train_acc" in line else ""
        val = f", val {session.task.headline(session.val_eval)}" if session.val_eval else ""
        print(f"epoch {line['epoch']}: train loss {line['train_loss']:.4f}{train_acc}{val}, "
              f"{line['examples_per_s']:.0f} examples/s")

    def on_stop(self, session: TrainingSession) -> None:
        self._close()

    def on_error(self, session: TrainingSession, error: BaseException) -> None:
        self._close()

    def on_finish(self, session: TrainingSession, results: dict) -> None:
        if "test" in results:
            print(f"test {session.task.headline(results['test'])}, run: {session.run.path}")

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _parts(config) -> str:
    """`` (in parts of N)`` when ``micro_batch`` splits each batch."""
    micro = config.micro_batch
    return f" (in parts of {micro})" if 0 < micro < config.batch_size else ""


def count(n: int, noun: str) -> str:
    """``"1 epoch"``, ``"1,200 steps"``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
