"""Shared by the benchmark scripts: machine description, watching the load of other processes
and sections of docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from convscope.device import cpu_info

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
T = TypeVar("T")
HEADER = ("# Benchmarks\n\nEvery number here is written by a script in `benchmarks/`; "
          "each section says how.\n")


def cpu_model(limit: bool = True) -> str:
    """The CPU's model and the flags that decide conv speed (``convscope.device.cpu_info``),
    with the oneDNN ISA limit where ``ONEDNN_MAX_CPU_ISA`` sets one (unless ``limit`` is
    False)."""
    info = cpu_info()
    text = info["model"] or "unknown CPU"
    if info["flags"] is not None:
        text += f" ({' '.join(info['flags']) or 'no AVX2'})"
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA") if limit else None
    return text + (f", oneDNN limited to {isa}" if isa else "")


def start_server(data_dir: str, runs: Sequence[str] = ()) -> tuple[subprocess.Popen, str]:
    """`convscope serve` (of the bundled models and ``runs``) on a free port with ``data_dir``
    as its data: the process and the URL it printed."""
    server = subprocess.Popen(
        [sys.executable, "-m", "convscope", "serve", *runs, "--port", "0", "--no-browser",
         "--data-dir", data_dir], stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if "http://" not in line:
        server.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return server, line.split()[-1]


def machine() -> str:
    """One line: CPU (model, flags, ISA limit), cores, Python, torch, numpy, threads."""
    return (f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; "
            f"Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), numpy {np.__version__}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])


def _busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (/proc/stat); None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process (all threads) and its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def watched(fn: Callable[[], T]) -> tuple[T, dict]:
    """Call ``fn`` and watch the machine meanwhile. Returns its result and ``wall_s``,
    ``others_cpu`` (the CPU cores other processes kept busy on average; None where
    /proc/stat is missing) and ``load_avg`` (the higher 1-minute load average, start or end)."""
    load, busy, own = os.getloadavg()[0], _busy_seconds(), _own_seconds()
    start = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    busy_after, own_after = _busy_seconds(), _own_seconds()
    others = None if busy is None or busy_after is None else \
        max(0.0, (busy_after - busy) - (own_after - own)) / wall
    return result, {"wall_s": wall, "others_cpu": others,
                    "load_avg": max(load, os.getloadavg()[0])}


def _wait_for_quiet(busy: float, timeout: float = 60.0) -> None:
    """Wait (up to ``timeout`` s) for a second in which other processes use <= ``busy`` cores."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (watched(lambda: time.sleep(1.0))[1]["others_cpu"] or 0.0) <= busy:
            return


def watched_quietly(fn: Callable[[], T], busy: float, retries: int) -> tuple[T, dict]:
    """:func:`watched`, run again (after waiting for a quiet second) while other processes kept
    more than ``busy`` cores busy, at most 1 + ``retries`` times in all. The last run's result
    and record, with the number of ``tries``."""
    for attempt in range(1 + retries):
        result, load = watched(fn)
        quiet = load["others_cpu"] is None or load["others_cpu"] <= busy
        if quiet or attempt == retries:
            return result, {**load, "tries": attempt + 1}
        print(f"    disturbed: other processes used {load['others_cpu']:.2f} cores; "
              "running it again", flush=True)
        _wait_for_quiet(busy)
    raise AssertionError("unreachable")


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else HEADER
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else \
        text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")


def append_record(log: Path, record: dict) -> None:
    """Add one run's record to a JSON-lines log."""
    with Path(log).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_records(log: Path) -> list[dict]:
    """Every record of a JSON-lines log, oldest first."""
    lines = Path(log).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def latest_per_seed(records: list[dict], group: Callable[[dict], object],
                    settings: Callable[[dict], object]) -> list[dict]:
    """Per ``group``, the latest record of each seed among those whose ``settings`` equal the
    group's latest record's (older settings stay in the log, out of the report)."""
    latest = {group(r): settings(r) for r in records}
    chosen = {(group(r), r["seed"]): r for r in records if settings(r) == latest[group(r)]}
    return list(chosen.values())
