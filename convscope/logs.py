"""Training logs, as :class:`~convscope.callbacks.Callback` s on the training events.

    <run>/steps.jsonl      every ``log_every`` steps: the mean training loss since the line
                           before and the learning rate (``{"kind": "step", ...}``)
    <run>/results.csv      ``log csv``: one row per epoch in Ultralytics' ``results.csv`` columns
    <run>/tensorboard/     ``log tensorboard``: the same numbers as TensorBoard scalars
    <run>/curves.png, confusion.png    a finished run's figures, with matplotlib installed

The epoch lines themselves (with ``val_loss`` where there is a validation split) stay in
``metrics.jsonl`` (:class:`~convscope.callbacks.MetricsLog`). Only the main process writes.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from ._io import append_text, write_text_atomic
from .callbacks import Callback
from .errors import ConvscopeError
from .plot import CONFUSION, CURVES, FigureFiles
from .runs import RESULTS_CSV, STEPS, read_lines

if TYPE_CHECKING:
    from .config import TrainConfig
    from .session import TrainingSession

TENSORBOARD = "tensorboard"  # the run's TensorBoard folder
LOG_FILES = (STEPS, RESULTS_CSV, CURVES, CONFUSION)  # the files written whole (atomically)
# a metrics.jsonl key -> its results.csv column (Ultralytics' names where it has one)
CSV_COLUMNS = {"epoch": "epoch", "seconds": "time", "train_loss": "train/loss",
               "train_acc": "train/accuracy", "val_acc": "metrics/accuracy_top1",
               "val_loss": "val/loss", "lr": "lr/pg0"}


def log_callbacks(config: TrainConfig) -> list[Callback]:
    """The logs a run's settings ask for: steps.jsonl always (unless ``log_every`` is 0),
    results.csv and TensorBoard as ``config.log`` says, and the figures of a finished run
    (curves.png, confusion.png, unless ``figures`` is off) where matplotlib is installed."""
    wanted = set(config.log.split("+")) - {"none"}
    return [*([FigureFiles()] if config.figures else []),
            *([StepLog()] if config.log_every else []),
            *([CsvLog()] if "csv" in wanted else []),
            *([TensorBoardLog()] if "tensorboard" in wanted else [])]


class _EveryNSteps(Callback):
    """Gathers the training loss and hands :meth:`log_step` a line every ``log_every`` steps."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step(self, session: TrainingSession, event: dict) -> None:
        self.losses.append(event["loss"])
        every = session.config.log_every
        if not every or session.global_step % every or not session.world.main:
            return
        line = {"kind": "step", "epoch": session.epoch + 1, "step": session.steps_done,
                "steps_per_epoch": session.per_epoch, "global_step": session.global_step,
                "loss": sum(self.losses) / len(self.losses), "lr": event["lr"]}
        self.losses = []
        self.log_step(session, line)

    def log_step(self, session: TrainingSession, line: dict) -> None:
        raise NotImplementedError


class StepLog(_EveryNSteps):
    """steps.jsonl: one line every ``log_every`` steps; a resumed run first drops the lines
    past its checkpoint, so the log reads as one uninterrupted run's."""

    def on_start(self, session: TrainingSession) -> None:
        path = session.run.path / STEPS
        if not session.world.main or not path.exists():
            return
        lines = read_lines(path)
        kept = [line for line in lines if line.get("global_step", 0) <= session.global_step]
        if len(kept) < len(lines):
            write_text_atomic(path, "".join(json.dumps(line) + "\n" for line in kept))

    def log_step(self, session: TrainingSession, line: dict) -> None:
        append_text(session.run.path / STEPS, json.dumps(line) + "\n")


class CsvLog(Callback):
    """results.csv, rewritten after every epoch from the run's metrics lines."""

    def on_epoch_end(self, session: TrainingSession, line: dict) -> None:
        if session.world.main:
            write_text_atomic(session.run.path / RESULTS_CSV,
                              results_csv(session.run.metrics, session.task.metric))


def results_csv(metrics: list[dict], metric: str = "accuracy") -> str:
    """Epoch lines as Ultralytics-style CSV text: ``time`` is the training seconds so far, a
    task's headline ``val_<metric>`` becomes ``metrics/<metric>``, a number an epoch lacks is
    an empty cell."""
    columns = dict(CSV_COLUMNS)
    if metric != "accuracy":
        columns[f"val_{metric}"] = f"metrics/{metric}"
    present = [key for key in columns if any(key in line for line in metrics)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([columns[key] for key in present])
    elapsed = 0.0
    for line in metrics:
        elapsed += line.get("seconds") or 0.0
        row = {**line, "seconds": elapsed} if "seconds" in line else line
        writer.writerow([_cell(row.get(key)) for key in present])
    return out.getvalue()


def _cell(value) -> str:
    return "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


class TensorBoardLog(_EveryNSteps):
    """TensorBoard scalars in ``<run>/tensorboard``, on the global step: ``train/loss_step``
    and ``lr/pg0`` every ``log_every`` steps, the epoch numbers (results.csv's names) at each
    epoch's end. A resumed run purges the events past its checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConvscopeError("log tensorboard needs the tensorboard package: "
                                 "pip install tensorboard (or log csv)") from None
        self.make_writer, self.writer = SummaryWriter, None

    def on_start(self, session: TrainingSession) -> None:
        if session.world.main:
            self.writer = self.make_writer(log_dir=str(session.run.path / TENSORBOARD),
                                           purge_step=session.global_step or None)

    def log_step(self, session: TrainingSession, line: dict) -> None:
        self.writer.add_scalar("train/loss_step", line["loss"], line["global_step"])
        self.writer.add_scalar("lr/pg0", line["lr"], line["global_step"])

    def on_epoch_end(self, session: TrainingSession, line: dict) -> None:
        if self.writer is None:
            return
        step = line["epoch"] * session.per_epoch
        for key, name in CSV_COLUMNS.items():
            if key not in ("epoch", "seconds", "lr") and key in line:
                self.writer.add_scalar(name, line[key], step)
        if f"val_{session.task.metric}" in line and session.task.metric != "accuracy":
            self.writer.add_scalar(f"metrics/{session.task.metric}",
                                   line[f"val_{session.task.metric}"], step)
        self.writer.flush()

    def on_stop(self, session: TrainingSession) -> None:
        self._close()

    def on_finish(self, session: TrainingSession, results: dict) -> None:
        self._close()

    def on_error(self, session: TrainingSession, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
