"""Progress bars: ``tqdm.auto`` bars on a terminal or in a notebook, plain lines in logs.

Every progress display in convscope comes from :func:`progress_bar`. Where stderr is neither a
terminal nor a notebook's (a log file, CI, a pipe), a bar's ``\\r`` redraws would flood the log,
so :class:`LineProgress` prints one line at each tenth of the way instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

from tqdm.auto import tqdm


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (IPython's ZMQ shell or a subclass, as Colab's),
    without importing IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") \
        else None
    return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)


def live_bars() -> bool:
    """Bars redraw in place: stderr is a terminal, or this is a notebook."""
    isatty = getattr(sys.stderr, "isatty", None)
    return in_notebook() or bool(isatty and isatty())


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, leave: bool = True, delay: float = 0.0,
                 unit_scale: bool = False, disable: bool = False):
    """A ``tqdm.auto`` bar where :func:`live_bars`, else a :class:`LineProgress`; both take
    ``update(n)``, ``set_postfix(**values)``, ``close()``, ``with`` and iteration."""
    if disable or live_bars():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave,
                    delay=delay, unit_scale=unit_scale, disable=disable)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial,
                        delay=delay, unit_scale=unit_scale)


class LineProgress:
    """A progress bar for logs: a line at each tenth of ``total`` passed (at the end only when
    the total is unknown), none before ``delay`` seconds."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", initial: int = 0, delay: float = 0.0,
                 unit_scale: bool = False, file=None) -> None:
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.n, self.desc, self.unit = iterable, total, initial, \
            desc, unit
        self.delay, self.unit_scale, self.file = delay, unit_scale, file
        self.postfix, self.started = "", time.monotonic()
        self.shown = self._tenths()  # a resumed epoch does not repeat the tenths it passed
        self.closed = False

    def _tenths(self) -> int:
        return 10 * self.n // self.total if self.total else 0

    def update(self, n: int = 1) -> None:
        self.n += n
        tenths = self._tenths()
        if tenths > self.shown:
            self.shown = tenths
            self._print()

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def close(self) -> None:
        if not self.closed and not self.total and self.n:
            self._print()
        self.closed = True

    def _count(self, n: int) -> str:
        return tqdm.format_sizeof(n) if self.unit_scale else f"{n:,}"

    def _print(self) -> None:
        seconds = time.monotonic() - self.started
        if seconds < self.delay:
            return
        done = f"{self._count(self.n)}/{self._count(self.total)}" if self.total \
            else self._count(self.n)
        share = f"{100 * self.n // self.total:3d}% " if self.total else ""
        text = f"{self.desc + ': ' if self.desc else ''}{share}({done} {self.unit}) " \
               f"{seconds:.1f}s{', ' + self.postfix if self.postfix else ''}"
        print(text, file=self.file or sys.stderr, flush=True)

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
