"""Ctrl-C and SIGTERM during training: the run stops between two steps, with a checkpoint.

:class:`StepInterrupts` holds a Ctrl-C (and a SIGTERM whose handler raises KeyboardInterrupt,
see :func:`sigterm_as_interrupt`) until the training loop reaches the end of a step, where the
position is consistent and a checkpoint can be saved; a second one stops at once.
:class:`Interrupted` is the KeyboardInterrupt that then leaves :func:`convscope.train`, naming
the run directory.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A training stopped by Ctrl-C or SIGTERM; ``run_dir`` is the run directory it wrote."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = Path(run_dir)


@contextmanager
def naming_run(run_dir: str | Path) -> Iterator[None]:
    """Let a KeyboardInterrupt leave as :class:`Interrupted` naming ``run_dir``."""
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt as exc:
        raise Interrupted(run_dir) from exc


@contextmanager
def reaching_workers(timeout: float = 60.0) -> Iterator[None]:
    """A launcher's interrupt (even a SIGTERM sent to it alone) reaches its worker processes
    as SIGTERM (which they treat as Ctrl-C: see :func:`sigterm_as_interrupt`), and the
    launcher waits for them to stop with a checkpoint (killing those that take ``timeout``)."""
    others = set(multiprocessing.active_children())  # not the launcher's: left alone
    try:
        yield
    except KeyboardInterrupt:
        workers = [p for p in multiprocessing.active_children() if p not in others]
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join(timeout)
            if worker.is_alive():
                worker.kill()
                worker.join()
        raise


def _raise_interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does, for the duration (main thread only;
    elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


RAISING = (signal.default_int_handler, _raise_interrupt)  # the handlers that are held


class StepInterrupts:
    """For the duration (main thread only), Ctrl-C and SIGTERM whose handlers raise
    KeyboardInterrupt (:data:`RAISING`) are held: ``pending`` turns True, and :meth:`deliver`
    runs the held signal's own handler (which raises KeyboardInterrupt) once the caller has
    saved its state. The same signal again (Ctrl-C pressed twice), or leaving with one still
    held, runs it at once."""

    def __init__(self) -> None:
        self.handlers: dict[int, object] = {}
        self.held: int | None = None

    @property
    def pending(self) -> bool:
        return self.held is not None

    def __enter__(self) -> StepInterrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                if signal.getsignal(signum) in RAISING:
                    self.handlers[signum] = signal.signal(signum, self._hold)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        for signum, handler in self.handlers.items():
            signal.signal(signum, handler)
        if kind is None:
            self.deliver()

    def _hold(self, signum: int, frame) -> None:
        if self.held == signum:  # asked twice: stop now
            self.handlers[signum](signum, frame)
        if self.held is not None:  # (Ctrl-C and a launcher's SIGTERM: one request)
            return
        self.held = signum
        print("\nstopping after this step, with a checkpoint (press Ctrl-C again to stop at "
              "once)", file=sys.stderr, flush=True)

    def deliver(self) -> None:
        """Run the held signal's handler (it raises KeyboardInterrupt), if one is held."""
        signum, self.held = self.held, None
        if signum is not None:
            self.handlers[signum](signum, None)
