"""Live training jobs: :func:`convscope.train` in a background thread, its progress kept for the
WebSocket, the network offered in the catalog (kind ``live``) from the moment it starts.

A job keeps every epoch, done and error message, but only the latest progress (at most about
5 per second) and snapshot (about 1 per second: first-layer filters and every layer's
activations for a fixed input); a client reading the stream gets what it has not yet seen.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..augment import to_input
from ..callbacks import Callback
from ..config import OPTIMIZERS
from ..data import DATASETS
from ..data.download import DownloadUnavailable
from ..device import scoring_precision
from ..errors import ConvscopeError
from ..finetune import load_source
from ..model import SpecNet, build_model
from ..probes import activations, layer_weights, network_graph
from ..registry import list_models
from ..spec import Layer, activation_values, resolve
from ..tasks import get_task
from ..trainer import train
from .catalog import Catalog, Entry, slug
from .encode import tensor_json
from .errors import ApiError, log
from .inputs import fit_to_volume
from .live_plan import plan
from .live_runs import missing_data, run_title, save_title, stopped_score
from .samples import Samples

DEPTH = DATASETS.view(lambda d: d.depth if d.kind == "images" else None)  # live-trainable


def live_trainable(task: str, dataset: str) -> bool:
    """Whether the explorer trains a ``task`` model on ``dataset`` live: a task that classifies,
    on a catalogued image set."""
    return get_task(task).classifies and dataset in DEPTH


def trainable_registry() -> list[dict]:
    """Every registry model the explorer can train live, in registry order."""
    return [{"name": e.name, "dataset": e.dataset, "description": e.description,
             "params": sum(layer.num_params for layer in resolve(e.spec))}
            for e in list_models()
            if not e.untrained and e.dataset is not None
            and live_trainable(e.recipe.get("task", "classify"), e.dataset)]


def _live_dataset(name: str) -> str:
    if name not in DEPTH:
        raise ValueError(f"live training takes one of {', '.join(DEPTH)}, not {name!r}")
    return name


PROGRESS_SECONDS, SNAPSHOT_SECONDS = 0.2, 1.0
PACE_SECONDS = 0.05  # a paced snapshot waits at most this long for a reader to take it
MAX_FILTERS = 64
MAX_SNAPSHOT_WEIGHTS = 100_000  # weighted layers small enough to send whole in each snapshot
MAX_PARAMS = 10_000_000
MAX_ACTIVATION_BYTES = 2 * 1024**3  # cifar10-94 in its parts of 1000 needs about 1.4 GiB
BYTES_PER_VALUE = 4  # float32
MAX_INPUT_SIDE = 64
MAX_HISTORY = 1000  # progress messages kept for a page that attaches late (halved when full)


class TrainRequest(BaseModel):
    """``POST /api/train``: exactly one of ``model`` (a registry name) or ``spec``."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    spec: list[dict] | None = None
    dataset: Annotated[str, AfterValidator(_live_dataset)] | None = None
    epochs: int | None = Field(None, ge=1, le=100)
    batch_size: int | None = Field(None, ge=1, le=4096)
    lr: float | None = Field(None, gt=0, le=10)
    optimizer: Literal[OPTIMIZERS] | None = None
    # the chapter's L1 demo: a snapshot after every this many examples, each one delivered
    # before the next is taken (training waits up to PACE_SECONDS for a reader)
    snapshot_every: int | None = Field(None, ge=1, le=10_000)
    # fine-tuning (convscope.finetune): a model id of GET /api/models to start from; the
    # output layer's size and the freeze, checked by the training settings table as the CLI's
    init_from: str | None = None
    num_classes: int | None = None
    freeze: str | None = None

    @model_validator(mode="after")
    def _one_network(self) -> TrainRequest:
        if self.model is not None and self.spec is not None:
            raise ValueError("give one of 'model' (a registry name) or 'spec', not both")
        if self.model is None and self.spec is None and self.init_from is None:
            raise ValueError("give 'model' (a registry name), 'spec', or 'init_from' (a model "
                             "to fine-tune)")
        return self


class Job:
    """One training run and the messages it has produced, numbered in order."""

    def __init__(self, job_id: str, model_id: str, run_dir: Path, title: str = "",
                 settings: dict | None = None) -> None:
        self.id, self.model_id, self.run_dir, self.title = job_id, model_id, run_dir, title
        self.settings = settings or {}  # what it trains, as the Train form shows it
        self.started = time.time()
        self.state = "running"  # -> "stopping" -> "done" | "stopped" | "error"
        self.error: str | None = None
        self.test_accuracy: float | None = None
        self.score_source: str | None = None  # what test_accuracy was measured on
        self.stop_requested = threading.Event()
        self.snapshot_taken = threading.Event()  # a reader has the latest snapshot
        self.paced = False  # snapshots every ``snapshot_every`` examples, each delivered
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._seq = 0
        self._events: list[tuple[int, dict]] = []
        self._latest: dict[str, tuple[int, dict]] = {}
        self._history: list[dict] = []  # progress messages, thinned to at most MAX_HISTORY

    @property
    def finished(self) -> bool:
        return self.state in ("done", "stopped", "error")

    def publish(self, message: dict) -> None:
        """Add a progress, snapshot or epoch message."""
        with self._lock:
            self._seq += 1
            if message["type"] == "epoch":
                self._events.append((self._seq, message))
            else:  # progress, snapshot: only the latest is kept
                self._latest[message["type"]] = (self._seq, message)
            if message["type"] == "progress":
                self._history.append(message)
                if len(self._history) > MAX_HISTORY:
                    self._history = self._history[::2]

    def end(self, state: str, message: dict) -> None:
        """Publish the last message (done or error) and enter ``state``, together."""
        with self._lock:
            self._seq += 1
            self._events.append((self._seq, message))
            self.state = state

    def request_stop(self) -> bool:
        """Ask the training loop to stop at its next step; False if the job has ended."""
        with self._lock:
            if self.finished:
                return False
            self.state = "stopping"
        self.stop_requested.set()
        return True

    def since(self, cursor: int) -> tuple[list[dict], int]:
        """Messages numbered after ``cursor`` (latest progress and snapshot only), in order,
        and the new cursor."""
        with self._lock:
            fresh = [m for m in [*self._events, *self._latest.values()] if m[0] > cursor]
            if any(message["type"] == "snapshot" for _, message in fresh):
                self.snapshot_taken.set()
            return [message for _, message in sorted(fresh, key=lambda m: m[0])], self._seq

    def summary(self) -> dict:
        """What a list of jobs shows: ids, name, state, start time (seconds since the epoch)
        and its ``settings`` (the network, dataset and training settings the form shows)."""
        return {"job": self.id, "model_id": self.model_id, "title": self.title,
                "state": self.state, "started": self.started, "settings": self.settings}

    def status(self) -> dict:
        """The summary, the latest progress, every epoch, the progress so far (``history``,
        thinned: a page attaching late draws the curves from it), the score and the error."""
        with self._lock:
            progress = self._latest.get("progress", (0, None))[1]
            epochs = [m for _, m in self._events if m["type"] == "epoch"]
            history = list(self._history)
        return {**self.summary(), "progress": progress, "epochs": epochs, "history": history,
                "test_accuracy": self.test_accuracy, "score_source": self.score_source,
                "error": self.error}


class Jobs:
    """Starts, tracks and stops live training jobs (one at a time)."""

    def __init__(self, catalog: Catalog, samples: Samples, live_dir: Path,
                 data_dir: str | None) -> None:
        self.catalog, self.samples = catalog, samples
        self.live_dir, self.data_dir = live_dir, data_dir
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"unknown training job {job_id!r}")
        return job

    def list(self) -> list[Job]:
        """Every job since the explorer started, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def running_model(self, model_id: str) -> bool:
        """Whether the live model ``model_id`` is still training."""
        return any(job.model_id == model_id and not job.finished for job in self.list())

    def start(self, request: TrainRequest) -> Job:
        """Check the request, add the live model to the catalog and start training it."""
        planned = plan(request, self.catalog, DEPTH, live_trainable)
        dataset, recipe = planned.dataset, planned.recipe
        config = planned.config
        _check_fits(resolve(planned.spec), dataset,
                    held_at_once(config.batch_size, config.micro_batch))
        net = build_model(planned.spec)  # built only once its sizes, from the spec, fit
        if planned.source is not None:  # its weights, or the CLI's one line on a mismatch
            load_source(net, planned.source, planned.name)
        with self._lock:
            running = next((job for job in self._jobs.values() if not job.finished), None)
            if running is not None:
                raise ApiError(409, f"{running.title} is already running: follow it or stop "
                                    "it on the Train page before starting another")
            job_id = secrets.token_hex(4)
            job = Job(job_id, f"live-{job_id}", self.live_dir / f"{slug(planned.name)}-{job_id}",
                      run_title(planned.name, dataset, datetime.now()), planned.shown)
            self._jobs[job_id] = job
        self.catalog.add(Entry(job.model_id, job.title, "live", dataset,
                               list(DATASETS[dataset].classes), net.spec,
                               registry=request.model, model=net.eval(),
                               tta=recipe.get("tta", "none"),
                               precision=scoring_precision(recipe.get("precision", "auto"))))
        model = planned.model if not isinstance(planned.model, list) else net.spec
        job.paced = request.snapshot_every is not None
        job.thread = threading.Thread(target=self._run, args=(job, model, dataset,
                                                              planned.settings,
                                                              request.snapshot_every),
                                      name=f"convscope-train-{job_id}", daemon=True)
        job.thread.start()
        return job

    def stop(self, job_id: str) -> None:
        job = self.get(job_id)
        if not job.request_stop():
            raise ApiError(409, f"training job {job_id} has already ended ({job.state})")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every running job and wait for it (each leaves a resumable run)."""
        with self._lock:
            running = [job for job in self._jobs.values() if not job.finished]
        for job in running:
            job.stop_requested.set()
        for job in running:
            if job.thread is not None:
                job.thread.join(timeout)

    def _fixed_input(self, dataset: str, net: SpecNet) -> torch.Tensor | None:
        """Sample 0 of the offered dataset, as the snapshots' input (None if not offered)."""
        try:
            image = self.samples.get(dataset).image(0)
        except ApiError:
            return None
        return to_input(fit_to_volume(image, net.input_volume))

    def _run(self, job: Job, model: str | list[dict] | None, dataset: str, settings: dict,
             snapshot_every: int | None = None) -> None:
        """Train ``model`` (a registry name, a spec, or None: the network of ``settings``'s
        ``init_from``) with a :class:`LiveFeed` (snapshots every
        ``snapshot_every`` examples, or every second); the catalog entry ends with the trained
        weights, or goes if training fails."""
        entry = self.catalog.get(job.model_id)
        feed = LiveFeed(job, entry, self._fixed_input(dataset, entry.model),
                        snapshot_every)
        try:
            run = train(model, dataset, out=job.run_dir, progress=False, callbacks=[feed],
                        data_dir=self.data_dir, **settings)
            test = (run.results or {}).get("test")
            entry.path = run.path
            stopped = run.results is None
            if test is not None:
                job.test_accuracy = test["accuracy"]
                job.score_source = f"{dataset} test set ({test['total']:,} images)"
            elif stopped:
                job.test_accuracy, job.score_source = stopped_score(run, dataset,
                                                                    job.status()["epochs"])
            entry.test_accuracy, entry.accuracy_source = job.test_accuracy, job.score_source
            save_title(run.path, entry.title)
            feed.snapshot(run.model)
            job.end("stopped" if stopped else "done",
                    {"type": "done", "model_id": job.model_id,
                     "test_accuracy": job.test_accuracy, "score_source": job.score_source,
                     "stopped": stopped})
        except Exception as exc:  # reported to the page; the server carries on
            if not isinstance(exc, ConvscopeError):
                log.exception("training job %s failed", job.id)
            job.error = _one_line(exc, dataset, self.data_dir)
            self.catalog.remove(job.model_id)
            job.end("error", {"type": "error", "error": job.error})


def _one_line(exc: Exception, dataset: str, data_dir: str | None) -> str:
    """A failed job's error in one line: a failed download says which files are missing and
    how to get them."""
    if isinstance(exc.__cause__, DownloadUnavailable):
        reason = str(exc.__cause__).split("; ")[0].rpartition(": ")[2][:80]
        missing = missing_data(dataset, data_dir, failure=reason or "no connection")
        if missing is not None:
            return missing
    if isinstance(exc, ConvscopeError):
        return " ".join(str(exc).split())
    return f"{type(exc).__name__}: {exc}"


class LiveFeed(Callback):
    """A live job's callback: it publishes every epoch, the latest progress (at most every
    ``PROGRESS_SECONDS``) and snapshots (every ``SNAPSHOT_SECONDS``), and stops the run when
    the job is asked to. Snapshots load the training weights into the entry's network (built
    once, with one copy to write into while the other is read: nothing is rebuilt).

    With ``every`` (examples), a snapshot is published each time that many more examples have
    been trained on, and the next step waits (up to :data:`PACE_SECONDS`) until a reader has
    taken it: the page redraws after every ``every`` examples, as the chapter's L1 demo does."""

    def __init__(self, job: Job, entry: Entry, x: torch.Tensor | None,
                 every: int | None = None) -> None:
        self.job, self.entry, self.x, self.every = job, entry, x, every
        self.spare = copy.deepcopy(entry.model)
        self.clock = {"progress": -1e9, "snapshot": -1e9}
        self.examples = self.last_snapshot = 0

    def on_step(self, session, event: dict) -> bool:
        if self._due("progress", PROGRESS_SECONDS):
            self.job.publish(_progress(event))
        if self.every is not None:
            self.examples = session.global_step * session.config.batch_size
            if self.examples - self.last_snapshot >= self.every:
                self.job.snapshot_taken.clear()
                self.snapshot(session.module)
                self.job.snapshot_taken.wait(PACE_SECONDS)
        elif self._due("snapshot", SNAPSHOT_SECONDS):
            self.snapshot(session.module)
        return not self.job.stop_requested.is_set()

    def on_epoch_end(self, session, line: dict) -> bool:
        self.job.publish({"type": "epoch", **line})
        return not self.job.stop_requested.is_set()

    def snapshot(self, module: torch.nn.Module) -> None:
        """Offer ``module``'s current weights as the entry's network, and publish a snapshot."""
        self.spare.load_state_dict(module.state_dict())
        self.entry.model, self.spare = self.spare, self.entry.model
        self.last_snapshot = self.examples
        paced = {"examples": self.examples} if self.every is not None else {}
        self.job.publish({**_snapshot(self.entry.model, self.x), **paced})

    def _due(self, kind: str, seconds: float) -> bool:
        now = time.monotonic()
        if now - self.clock[kind] < seconds:
            return False
        self.clock[kind] = now
        return True


def _check_fits(layers: list[Layer], dataset: str, batch_size: int) -> None:
    """Refuse networks that cannot train on ``dataset`` or would swamp the server, from the
    resolved spec alone (before anything is allocated)."""
    volume, classes = layers[0].out_volume, len(DATASETS[dataset].classes)
    num_classes = layers[-1].params["num_classes"] if layers[-1].type == "softmax" else None
    if volume.depth != DEPTH[dataset]:
        raise ApiError(400, f"the network takes {volume.depth}-channel input but {dataset} has "
                            f"{DEPTH[dataset]}; set the input layer's depth to {DEPTH[dataset]}")
    if num_classes != classes:
        raise ApiError(400, f"the network must end in softmax with num_classes {classes} to "
                            f"train on {dataset}")
    if max(volume.sx, volume.sy) > MAX_INPUT_SIDE:
        raise ApiError(400, f"the input volume {volume} is too large for live training "
                            f"(at most {MAX_INPUT_SIDE} per side)")
    params = sum(layer.num_params for layer in layers)
    if params > MAX_PARAMS:
        raise ApiError(400, f"the network has {_count(params)} parameters; live training takes "
                            f"at most {MAX_PARAMS:,}")
    _check_activations(activation_values(layers) * BYTES_PER_VALUE, batch_size)


def held_at_once(batch_size: int, micro_batch: int = 0) -> int:
    """Examples whose layer outputs a training step holds at once: a batch computed in parts
    (``micro_batch``) holds one part's."""
    return min(micro_batch or batch_size, batch_size)


def _check_activations(per_example: int, batch_size: int) -> None:
    """Refuse a network whose layer outputs for one training batch pass the memory cap."""
    if per_example * batch_size <= MAX_ACTIVATION_BYTES:
        return
    fits, gib = MAX_ACTIVATION_BYTES // per_example, -(-per_example * batch_size // 1024**3)
    fix = (f"set batch_size to at most {fits:,}" if fits >= 1 else
           "use fewer filters or neurons, or smaller padding")
    raise ApiError(400, f"training this network at batch size {batch_size:,} needs about "
                        f"{_count(gib)} GiB for its layer outputs; live training takes at most "
                        f"{MAX_ACTIVATION_BYTES // 1024**3} GiB: {fix}")


def _count(n: int) -> str:
    """``n`` with thousands separators, or its order of magnitude when absurdly large."""
    return f"{n:,}" if n < 10**15 else f"about 10^{int(n.bit_length() * 0.30103)}"


def _progress(event: dict) -> dict:
    return {"type": "progress", "epoch": event["epoch"], "step": event["step"],
            "steps_per_epoch": event["steps_per_epoch"], "epochs": event["epochs"],
            "loss": event["loss"], "accuracy": event["accuracy"],
            "examples_per_s": event["examples_per_s"]}


def _snapshot(net: SpecNet, x: torch.Tensor | None) -> dict:
    first = next((n.index for n in network_graph(net).nodes if n.has_weights), None)
    filters = None if first is None else tensor_json(layer_weights(net, first)[0][:MAX_FILTERS])
    outputs = [] if x is None else activations(net, x)
    return {"type": "snapshot", "filters": filters, "weights": _small_weights(net),
            "activations": [{"index": i, "output": tensor_json(out)}
                            for i, out in enumerate(outputs)]}


def _small_weights(net: SpecNet) -> list[dict]:
    """The first two weighted layers' weights and biases, whole, when small enough (the L1
    demo's templates and bars); [] otherwise."""
    found = []
    for node in [n for n in network_graph(net).nodes if n.has_weights][:2]:
        weights, bias = layer_weights(net, node.index)
        if weights.numel() > MAX_SNAPSHOT_WEIGHTS:
            break
        found.append({"index": node.index, "weights": tensor_json(weights),
                      "bias": None if bias is None else tensor_json(bias)})
    return found
