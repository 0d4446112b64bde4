"""The models on offer: bundled defaults, user runs and live training jobs, by URL-safe id.

Ids are looked up here, never used as paths. A run is checked when it is added (its config,
spec, description and the names and shapes of its weights, without loading them); a bad one
is skipped with its reason (logged, and listed by ``GET /api/models``) and never breaks the
others. Weights are loaded on first use and kept. A run's config never makes the catalog
import code: runs of Python models are skipped, unless the explorer was started with
``--trust-code`` (``trust_code``): then a run's kept model code (``<run>/model_code/``,
:func:`convscope.user_module.load_kept_code`) is imported, its weights loaded and its leaf
modules traced when it is added.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from ..bundle import bundled_model_dirs
from ..checkpoint import load_model_weights
from ..data import DATASETS
from ..data.catalog import dataset_name
from ..device import scoring_precision
from ..errors import ConvscopeError, RunError
from ..layer_kinds import layer_kind, viewer_names
from ..model import SpecNet
from ..probes import Graph, network_graph, spec_graph
from ..registry import ModelEntry, list_models
from ..runs import CONFIG, MODEL, Run, check_weights, load_run
from ..spec import Layer, Volume, resolve
from ..tasks import get_task
from ..user_module import OBJECT
from .errors import ApiError, log
from .inputs import input_convention


@dataclass
class Entry:
    """One model of the catalog. ``path`` is its run directory (None while a live job has
    not finished); ``model`` the network with weights, once loaded (live: the latest)."""

    id: str
    title: str
    kind: str  # "bundled" | "run" | "live"
    dataset: str
    classes: list[str]
    spec: list[dict]
    path: Path | None = None
    test_accuracy: float | None = None
    accuracy_source: str | None = None
    registry: str | None = None  # the registry name it was trained from, if any
    model: torch.nn.Module | None = field(default=None, repr=False)
    task: str = "classify"  # what it learned (convscope.tasks.task_names())
    metric_value: float | None = None  # the task's headline test number, when evaluated
    tta: str = "none"  # how its runs score: test-time augmentation (convscope.config.TTA_MODES)
    precision: str = "auto"  # and arithmetic (convscope.device.scoring_precision)
    module_input: Volume | None = None  # a Python module's input volume (its spec is empty)
    untrained: bool = False  # a registered architecture shown with seeded random weights
    stored_test: dict | None = None  # the test confusion its run measured (stored_matrix)

    @cached_property
    def layers(self) -> list[Layer]:
        return resolve(self.spec) if self.spec else []

    @property
    def input_volume(self) -> Volume:
        return self.module_input if self.module_input is not None else self.layers[0].out_volume

    @property
    def graph(self) -> Graph:
        """The nodes and branches every view reads: a spec's from the spec, a Python module's
        traced (:func:`convscope.probes.network_graph`)."""
        if self.module_input is not None:
            return network_graph(self.model, self.module_input)
        return spec_graph(self.layers)

    @property
    def num_params(self) -> int:
        if self.module_input is not None:
            return sum(p.numel() for p in self.model.parameters())
        return sum(la.num_params for la in self.layers)

    @property
    def family(self) -> str:
        """"convnet" with any conv layer, "ordinary" for fc-only networks, else "other"."""
        if self.module_input is not None:
            types = {node.type for node in self.graph.nodes[1:]}
            return "convnet" if types & {"conv", "Conv1d"} else "other"
        types = set(_types(self.layers))
        if "conv" in types:
            return "convnet"
        return "ordinary" if all(layer_kind(t).ordinary for t in types) else "other"

    @property
    def metric(self) -> dict:
        """The task's headline test metric: ``name`` (results.json key), ``label``, ``value``
        (None when not evaluated)."""
        task = get_task(self.task)
        value = self.test_accuracy if task.metric == "accuracy" else self.metric_value
        return {"name": task.metric, "label": task.metric_label, "value": value}

    def summary(self) -> dict:
        return {"id": self.id, "title": self.title, "kind": self.kind, "dataset": self.dataset,
                "family": self.family, "params": self.num_params,
                "test_accuracy": self.test_accuracy, "accuracy_source": self.accuracy_source,
                "registry": self.registry, "task": self.task, "metric": self.metric,
                "tta": self.tta, "task_info": get_task(self.task).describe(),
                "untrained": self.untrained}

    def describe(self) -> dict:
        """The network description every view reads (``GET /api/models/{id}``): ``layers``, the
        nodes of :attr:`graph` (every layer or leaf module, by index, with its dotted module
        ``name``), and ``branches`` between them (``{"from", "to", "kind"}``: a residual skip
        joining at an add, a concatenation), or ``graph_note`` saying why there are none."""
        graph, task = self.graph, get_task(self.task)
        macs = sum(la.macs for la in self.layers) if self.layers else \
            sum(node.macs for node in graph.nodes)
        return {
            "id": self.id, "title": self.title, "dataset": self.dataset, "classes": self.classes,
            "task": self.task, "metric": self.metric, "tta": self.tta,
            "untrained": self.untrained, "seed": UNTRAINED_SEED if self.untrained else None,
            "task_info": task.describe(),
            "input": input_convention(self.input_volume),
            "output_names": task.output_names(self.classes, graph.nodes[-1].out_volume.depth),
            "layers": [{"index": n.index, "name": n.name, "type": n.type, "label": n.label,
                        "params": n.params, "in_volume": _volume(n.in_volume),
                        "out_volume": _volume(n.out_volume), "num_params": n.num_params,
                        "macs": n.macs, "has_weights": n.has_weights,
                        "input_from": n.input_from, "viewer_name": viewer}
                       for n, viewer in zip(graph.nodes, viewer_names(graph.nodes), strict=True)],
            "branches": [branch.to_dict() for branch in graph.branches],
            "graph_note": graph.note,
            "source": "module" if self.module_input is not None else "spec",
            "totals": {"params": self.num_params, "macs": macs},
        }


UNTRAINED_SEED = 0  # the seed of an untrained architecture's random weights


def untrained_entry(registered: ModelEntry, entry_id: str) -> Entry:
    """A catalog entry for a registered architecture convscope has no weights for: built with
    random weights seeded by :data:`UNTRAINED_SEED` on first use."""
    dataset = registered.dataset or "imagenet"
    depth = resolve(registered.spec)[-1].out_volume.depth  # ImageNet's classes, by number
    classes = list(DATASETS[dataset].classes) if dataset in DATASETS else \
        [str(i) for i in range(depth)]
    return Entry(entry_id, f"{registered.name} (untrained)", "untrained", dataset, classes,
                 registered.spec, registry=registered.name, untrained=True)


def _types(layers: list[Layer]) -> list[str]:
    return [t for la in layers for t in (la.type, *_types(list(la.children)))]


def _volume(volume: Volume | None) -> dict | None:
    return None if volume is None else {"sx": volume.sx, "sy": volume.sy, "depth": volume.depth}


def entry_from_run(run: Run, entry_id: str, kind: str, title: str,
                   registry: str | None = None) -> Entry:
    """A catalog entry for a finished (or stopped) run of a spec network (``registry``: the
    registry name it was trained from)."""
    spec = run.model_info.get("spec")
    if run.model_info.get("kind") == OBJECT:
        raise RunError(f"its model is a Python object ({run.model_info.get('class')}) with no "
                       "code kept, so the explorer cannot rebuild it; train it from a file "
                       "(`--model file.py:factory`) to keep its code in the run")
    if spec is None and not run.trust_code:
        raise RunError(f"its model is Python code ({run.model_info.get('ref')!r}); the explorer "
                       "never imports a run's code unless started with `convscope serve "
                       "--trust-code` (for runs you trust as you trust their code)")
    if spec is not None and not isinstance(spec, list):
        raise RunError(f"{run.path / CONFIG}: model.spec is not a list of layers")
    if not (run.path / MODEL).is_file():
        raise RunError(f"{run.path}: no {MODEL} yet; finish it with "
                       f"`convscope train --resume {run.path}`")
    task = run.config.task
    test = (run.results or {}).get("test") or {}
    source = None
    if "total" in test:
        shown = DATASETS.get(dataset_name(run.config.data, task))
        what = shown.kind if shown is not None else "images"  # an image folder
        named = run.config.data if shown is not None else Path(run.config.data).name  # a folder
        source = f"{named} test set ({test['total']:,} {what}), measured at training"
        if run.config.tta != "none":
            source += f" with {run.config.tta} test-time augmentation"
    metric = test.get(get_task(task).metric)
    classes = list(run.data_info.get("classes") or [])
    return Entry(entry_id, title, kind, dataset_name(run.config.data, task),
                 list(run.data_info.get("classes") or []), spec or [], run.path,
                 test.get("accuracy"), source, registry, task=task,
                 metric_value=metric if isinstance(metric, int | float) else None,
                 tta=run.config.tta, precision=scoring_precision(run.config.precision),
                 module_input=None if spec is not None else _input_volume(run),
                 stored_test=stored_matrix(test.get("confusion"), len(classes)))


def stored_matrix(matrix, n: int) -> dict | None:
    """A run's stored test confusion (``results.json``) as the confusion endpoint gives one,
    its scores recomputed from the counts; None unless it is an n x n table of counts."""
    if not (n and isinstance(matrix, list) and len(matrix) == n and all(
            isinstance(row, list) and len(row) == n
            and all(type(v) is int and v >= 0 for v in row) for row in matrix)):
        return None
    total = sum(map(sum, matrix))
    correct = sum(matrix[i][i] for i in range(n))
    rows = [sum(row) for row in matrix]
    columns = [sum(row[j] for row in matrix) for j in range(n)]
    return {"confusion": matrix, "total": total, "correct": correct,
            "accuracy": correct / total if total else None,
            "recall": [matrix[i][i] / rows[i] if rows[i] else None for i in range(n)],
            "precision": [matrix[j][j] / columns[j] if columns[j] else None for j in range(n)]}


MAX_MODULE_INPUT_SIDE = 4096  # pixels on a side of a Python module's input


def _input_volume(run: Run) -> Volume:
    """A Python module run's input volume, from its config's ``data.input`` (W, H, depth)."""
    given = run.data_info.get("input")
    if not (isinstance(given, list) and len(given) == 3
            and all(type(v) is int and 1 <= v <= MAX_MODULE_INPUT_SIDE for v in given)):
        raise RunError(f"{run.path / CONFIG}: data.input is not [width, height, depth] "
                       f"(whole numbers 1..{MAX_MODULE_INPUT_SIDE}); restore the file or retrain")
    return Volume(*given)


def checked_entry(path: Path, kind: str, registry: set[str], unique_id,
                  trust_code: bool = False) -> Entry:
    """The catalog entry of the run at ``path``, after checking everything the explorer will
    need: its config, spec, description and the names and shapes of its weights (read from
    the file's header). ``unique_id(base)`` makes the id. With ``trust_code``, a run of kept
    Python code is imported, its weights loaded and its modules traced here."""
    run = load_run(path, trust_code)
    ref = run.model_info.get("ref", "")
    name = ref if ref in registry else None
    title = name if kind == "bundled" and name else (saved_title(path) or path.name)
    base = slug(path.name) if kind == "bundled" else "run-" + slug(path.name)
    entry = entry_from_run(run, "", kind, title, name)
    if entry.module_input is not None:
        entry.model = run.model  # imports the kept code; loads and checks the weights
    entry.summary(), entry.describe()  # resolves the spec or traces the module; the task
    if entry.module_input is None:
        check_weights(path / MODEL, entry.spec)
    entry.id = unique_id(base)
    return entry


TITLE_FILE = "title.txt"  # a run's name in the explorer, when renamed there or trained live
MAX_TITLE = 80


def saved_title(run_dir: Path) -> str | None:
    """The name a run directory keeps in :data:`TITLE_FILE`, if any and readable (a regular
    file; its first few hundred bytes, whitespace collapsed, at most :data:`MAX_TITLE`)."""
    path = run_dir / TITLE_FILE
    try:
        if not path.is_file():  # never a FIFO or a device that would block the catalog
            return None
        with path.open("rb") as file:
            text = file.read(4 * MAX_TITLE).decode("utf-8", errors="replace")
    except OSError:
        return None
    cleaned = "".join(c for c in text if c.isprintable() or c.isspace())
    return " ".join(cleaned.split())[:MAX_TITLE] or None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-.") or "model"


def find_runs(folder: Path) -> list[Path]:
    """Run directories directly in ``folder`` and in its ``live/`` subfolder."""
    found = [*folder.glob("*/config.yaml"), *folder.glob("live/*/config.yaml")]
    return sorted(path.parent for path in found)


class Catalog:
    """Models by id, in the order added: bundled ones first, then runs, then live jobs."""

    def __init__(self, bundled_dir: Path, runs: list[Path], runs_dir: Path | None,
                 trust_code: bool = False) -> None:
        self._trust_code = trust_code  # may runs' kept Python model code be imported?
        self._entries: dict[str, Entry] = {}
        self._skipped: list[dict] = []  # runs not offered: {"path", "reason"}
        self._lock = threading.Lock()
        registry = {e.name for e in list_models()}
        for path in bundled_model_dirs(bundled_dir).values():
            self._add_run(path, "bundled", explicit=False, registry=registry)
        for path in runs:
            self._add_run(Path(path), "run", explicit=True, registry=registry)
        if bundled_model_dirs(bundled_dir):  # convscope's own: trained ones, then untrained
            for registered in (e for e in list_models() if e.untrained):
                self.add(untrained_entry(registered, self._unique_id(slug(registered.name))))
        scanned = find_runs(runs_dir) if runs_dir is not None and runs_dir.is_dir() else []
        given = {Path(p).resolve() for p in runs}
        for path in scanned:
            if path.resolve() not in given:
                self._add_run(path, "run", explicit=False, registry=registry)

    def _add_run(self, path: Path, kind: str, explicit: bool, registry: set[str]) -> None:
        """Add the run at ``path`` once :func:`checked_entry` accepts it; a bad one given
        explicitly is an error, else skipped with its reason."""
        try:
            entry = checked_entry(path, kind, registry, self._unique_id, self._trust_code)
        except Exception as exc:  # noqa: BLE001 (a run directory is untrusted data)
            reason = str(exc) if isinstance(exc, ConvscopeError) else \
                f"{type(exc).__name__}: {exc}"
            if explicit:
                raise RunError(f"cannot offer {path} in the explorer: {reason}") from None
            log.warning("skipping run %s: %s", path, reason)
            with self._lock:
                self._skipped.append({"path": str(path), "reason": reason})
            return
        self.add(entry)

    def add_chapter_snapshots(self, data_dir: str | None) -> None:
        """Offer the chapter's ConvNetJS snapshots of ``<data_dir>/ml4a/`` (kind ``chapter``,
        :mod:`convscope.server.chapter_models`); bad ones are skipped with their reason."""
        from .chapter_models import chapter_entries  # it builds on this module

        entries, skipped = chapter_entries(data_dir, self._unique_id)
        for entry in entries:
            self.add(entry)
        with self._lock:
            self._skipped.extend(skipped)

    def skipped(self) -> list[dict]:
        """The runs found but not offered, each ``{"path", "reason"}``."""
        with self._lock:
            return list(self._skipped)

    def _unique_id(self, base: str) -> str:
        with self._lock:
            candidate, n = base, 2
            while candidate in self._entries:
                candidate, n = f"{base}-{n}", n + 1
            return candidate

    def add(self, entry: Entry) -> None:
        with self._lock:
            self._entries[entry.id] = entry

    def remove(self, entry_id: str) -> None:
        with self._lock:
            self._entries.pop(entry_id, None)

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def get(self, entry_id: str) -> Entry:
        with self._lock:
            entry = self._entries.get(entry_id)
        if entry is None:
            raise ApiError(404, f"unknown model {entry_id!r}; choose one the explorer lists "
                                "(it may have been deleted)")
        return entry

    def model(self, entry_id: str) -> torch.nn.Module:
        """The entry's network with its weights, loaded on first use (from the spec it was
        checked with; a run changed since then gets a 409 naming the problem). A Python
        module's was loaded when its run was added."""
        entry = self.get(entry_id)
        with self._lock:
            if entry.model is None and entry.untrained:
                with torch.random.fork_rng():
                    torch.manual_seed(UNTRAINED_SEED)
                    entry.model = SpecNet(entry.spec).eval()
            if entry.model is None:  # live entries always have one; others have a path
                try:
                    model = SpecNet(entry.spec)
                    load_model_weights(entry.path / MODEL, model)
                except (ConvscopeError, OSError, ValueError, RuntimeError) as exc:
                    raise ApiError(409, f"model {entry_id!r} cannot be loaded: {exc}; fix or "
                                        "remove the run and restart the explorer") from None
                entry.model = model.eval()
            return entry.model
