"""What the explorer says about live runs: their names (model and start time), a renamed run's
title (kept in the run directory), the score of a stopped run, and the training data a live job
still needs (said before Start, in one line)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from .._io import write_text_atomic
from ..data import DATASETS
from ..data.load import missing_files
from ..data.registry import DatasetSpec
from ..errors import ConvscopeError
from .catalog import MAX_TITLE, TITLE_FILE, Catalog, Entry
from .errors import ApiError, log


def spec_label(spec: list[dict]) -> str:
    """A short name for a layer list: its weighted layers' sizes, e.g. ``conv8-conv16 net``."""
    parts = [f"conv{layer.get('filters', '')}" if layer.get("type") == "conv" else
             f"fc{layer.get('num_neurons', '')}" for layer in spec
             if isinstance(layer, dict) and layer.get("type") in ("conv", "fc")]
    return f"{'-'.join(parts)} net" if parts else "softmax net"


def run_title(label: str, dataset: str, started: datetime) -> str:
    """A live run's name: what trains, on what, and when it started."""
    return f"{label} on {dataset} · {started:%b %d %H:%M:%S}"


def save_title(run_dir: Path, title: str) -> None:
    """Keep ``title`` in ``run_dir`` so the explorer names the run so after a restart (a run
    that cannot be written keeps its name until then: logged, never an error)."""
    if not run_dir.is_dir():
        return
    try:
        write_text_atomic(run_dir / TITLE_FILE, title + "\n")
    except ConvscopeError as exc:
        log.warning("cannot keep the name of %s: %s", run_dir, exc)


def checked_title(title: str) -> str:
    """``title`` stripped; 400 when empty, too long or holding control characters."""
    title = title.strip()
    if not title or len(title) > MAX_TITLE or any(ord(c) < 32 for c in title):
        raise ApiError(400, f"a run's name is 1 to {MAX_TITLE} characters on one line")
    return title


def own_run(entry: Entry, live_dir: Path) -> bool:
    """Whether ``entry`` is a run the explorer trained (live now, or kept in ``live_dir``)."""
    if entry.kind == "live":
        return True
    if entry.kind != "run" or entry.path is None:
        return False
    return entry.path.resolve().parent == live_dir.resolve()


def rename(catalog: Catalog, entry: Entry, title: str, live_dir: Path) -> Entry:
    """Give a live run a new name, in the catalog and in its run directory."""
    if not own_run(entry, live_dir):
        raise ApiError(400, f"{entry.title} is not a run trained in the explorer; only those "
                            "can be renamed here")
    entry.title = checked_title(title)
    if entry.path is not None:
        save_title(entry.path, entry.title)
    return entry


def delete(catalog: Catalog, entry: Entry, live_dir: Path, running: bool) -> None:
    """Remove a finished live run from the catalog and delete its run directory."""
    if not own_run(entry, live_dir):
        raise ApiError(400, f"{entry.title} is not a run trained in the explorer; only those "
                            "can be deleted here")
    if running:
        raise ApiError(409, f"{entry.title} is still training; stop it before deleting it")
    catalog.remove(entry.id)
    if entry.path is not None and entry.path.resolve().parent == live_dir.resolve():
        shutil.rmtree(entry.path, ignore_errors=True)


def stopped_score(run, dataset: str, epochs: list[dict]) -> tuple[float | None, str | None]:
    """A stopped run's accuracy and what it was measured on: the test set, evaluated when it
    stopped, else the last validation score it logged, else nothing."""
    try:
        evaluation = run.evaluate("test")
        return evaluation.accuracy, (f"{dataset} test set ({evaluation.total:,} images), "
                                     "evaluated when stopped")
    except Exception as exc:  # noqa: BLE001 (the run stays offered without a test score)
        log.warning("cannot evaluate the stopped run %s: %s", run.path, exc)
    scored = [e for e in epochs if e.get("val_acc") is not None]
    if not scored:
        return None, None
    last = scored[-1]
    return last["val_acc"], (f"last validation score (epoch {last['epoch']}) before it was "
                             "stopped; not a test score")


def missing_data(dataset: str, data_dir: str | None, failure: str | None = None) -> str | None:
    """One line saying which training files of ``dataset`` are missing and how to get them
    (None when they are all there); ``failure``: why downloading them failed."""
    found = missing_files(dataset, "train", data_dir)
    if found is None or not found[1]:
        return None
    folder, missing = found
    source: DatasetSpec = DATASETS[dataset].source
    where = source.urls[0].split("/")[2]
    if failure is not None:
        return (f"{dataset}'s training files could not be downloaded from {where} ({failure}); "
                f"put {', '.join(missing)} in {folder}, or restart with "
                "`convscope serve --data-dir DIR` where they are")
    return (f"{dataset}'s training files are not in {folder} yet: Start downloads them from "
            f"{where} (needs the internet), or put them there first")
