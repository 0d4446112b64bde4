"""``/api/runs``: the runs the explorer knows (``--runs``, the runs directory, live training and
the bundled models), each with its settings and scores, and the curves of one
(``metrics.jsonl`` per epoch, ``steps.jsonl`` per logged step), read through
:mod:`convscope.runs`. A run directory is untrusted data: one that cannot be read is listed with
its reason and never breaks the others."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from fastapi import APIRouter

from ...errors import ConvscopeError
from ...runs import METRICS, MODEL, STEPS, Run, load_run, read_lines
from ...tasks import get_task
from ..catalog import slug
from ..errors import ApiError
from .state import Explorer

MAX_POINTS = 2000  # points of a curve sent; longer logs are thinned evenly (the last kept)
SETTINGS = ("model", "data", "task", "epochs", "batch_size", "lr", "optimizer", "schedule",
            "augment", "weight_decay", "seed")  # shown first; the rest on request


def thinned(lines: list[dict], limit: int = MAX_POINTS) -> list[dict]:
    """At most ``limit`` of ``lines``, evenly spaced, the first and the last always kept."""
    if len(lines) <= limit:
        return lines
    step = (len(lines) - 1) / (limit - 1)
    return [lines[round(i * step)] for i in range(limit)]


def numeric(line: dict) -> dict:
    """The finite numbers of a log line (a run's file may hold anything)."""
    return {k: v for k, v in line.items() if isinstance(k, str) and type(v) in (int, float)
            and math.isfinite(v)}


def path_id(path: Path) -> str:
    """``dir-<name>-<hash of its path>``: the id of a run directory the catalog does not name."""
    return f"dir-{slug(path.name)}-{hashlib.sha1(str(path).encode()).hexdigest()[:6]}"


class RunList:
    """The run directories on offer, found afresh on each request, by stable id: the catalog's
    id for a bundled model or a run it offers, else (live training, finished or not, and runs
    it skipped) :func:`path_id`."""

    def __init__(self, explorer: Explorer) -> None:
        self.explorer = explorer

    def paths(self) -> dict[str, tuple[Path, dict]]:
        """id -> (run directory, ``{"kind", "model_id"}``)."""
        found: dict[Path, tuple[str, dict]] = {}
        for entry in self.explorer.catalog.entries():
            if entry.path is not None:
                resolved = entry.path.resolve()
                run_id = path_id(resolved) if entry.kind == "live" else entry.id
                found.setdefault(resolved, (run_id, {"kind": entry.kind, "model_id": entry.id}))
        skipped = [Path(s["path"]) for s in self.explorer.catalog.skipped()]
        live = self.explorer.jobs.live_dir  # runs this explorer trains, finished or not
        scanned = sorted(p.parent for p in live.glob("*/config.yaml")) if live.is_dir() else []
        for path in [*skipped, *scanned]:
            resolved = path.resolve()
            if resolved not in found:
                kind = "live" if resolved.parent == live.resolve() else "run"
                found[resolved] = (path_id(resolved), {"kind": kind, "model_id": None})
        return {run_id: (path, about) for path, (run_id, about) in found.items()}

    def get(self, run_id: str) -> tuple[Path, dict]:
        known = self.paths()
        if run_id not in known:
            raise ApiError(404, f"unknown run {run_id!r}; the Runs page lists the runs on offer")
        return known[run_id]


def run_summary(run_id: str, path: Path, about: dict) -> dict:
    """One row of the runs table: name, settings, epochs done and scores, or ``error``."""
    row = {"id": run_id, "name": path.name, "path": str(path), **about}
    try:
        return {**row, **run_facts(load_run(path))}
    except ConvscopeError as exc:  # also a task this server does not know
        return {**row, "error": str(exc)}
    except OSError as exc:
        return {**row, "error": f"{path}: unreadable ({exc.strerror})"}


def model_name(info: dict) -> str:
    """How the table names a run's model: its registry name or file, else "spec, N layers"."""
    ref, spec = info.get("ref"), info.get("spec")
    if isinstance(ref, str) and ref and not ref.startswith("<"):
        return Path(ref).name if info.get("kind") != "registry" else ref
    if isinstance(spec, list):
        return f"spec, {len(spec)} layers"
    return str(info.get("kind") or "model")


def run_facts(run: Run) -> dict:
    """What the table shows of a readable run: settings, epochs, the test score, the last
    epoch's numbers and whether it has finished."""
    config = run.config.to_dict()
    task = get_task(run.config.task)
    test = (run.results or {}).get("test")
    score = test.get(task.metric) if isinstance(test, dict) else None
    return {
        "settings": {k: config[k] for k in SETTINGS if k in config},
        "all_settings": config,
        "model": model_name(run.model_info),
        "epochs_done": len(run.metrics),
        "last": numeric(run.metrics[-1]) if run.metrics else {},
        "metric": {"name": task.metric, "label": task.metric_label,
                   "value": score if type(score) in (int, float) else None},
        "finished": (run.path / MODEL).is_file() and run.results is not None,
        "modified": max((p.stat().st_mtime for p in run.path.iterdir() if p.is_file()),
                        default=0.0),
    }


def run_curves(path: Path) -> dict:
    """A run's curves: each epoch's numbers and each logged step's (thinned)."""
    try:
        epochs = read_lines(path / METRICS)
        steps = read_lines(path / STEPS)
    except (ConvscopeError, OSError) as exc:
        raise ApiError(409, str(exc)) from None
    return {"epochs": [numeric(line) for line in thinned(epochs)],
            "steps": [numeric(line) for line in thinned(steps)],
            "steps_total": len(steps)}


def runs_router(explorer: Explorer) -> APIRouter:
    """The runs table and each run's curves."""
    router = APIRouter()
    runs = RunList(explorer)

    @router.get("/api/runs")
    def list_runs() -> dict:
        rows = [run_summary(run_id, path, about) for run_id, (path, about)
                in runs.paths().items()]
        return {"runs": rows}

    @router.get("/api/runs/{run_id}/curves")
    def curves(run_id: str) -> dict:
        path, _ = runs.get(run_id)
        return {"id": run_id, **run_curves(path)}

    return router
