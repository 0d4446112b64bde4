"""Run directories: what a training run leaves behind, and loading it back.

    <run>/config.yaml              resolved settings, the model (spec or reference), environment
    <run>/metrics.jsonl            one JSON line per finished epoch
    <run>/steps.jsonl              every ``log_every`` steps: training loss and learning rate
    <run>/results.csv              with ``log csv``: the epochs in Ultralytics' columns
    <run>/checkpoint.safetensors   latest training state (weights + optimizer + position)
    <run>/model.safetensors        final weights
    <run>/results.json             final evaluation on the official test set
    <run>/model_code/<name>.py     for a model from the user's Python file: the file as trained

A run directory is data: opening one never runs code, unless the user allows it
(``trust_code``, the CLI's ``--trust-code``) for a run whose model is kept Python code.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml

from . import __version__
from ._io import append_text, write_text_atomic, write_yaml_atomic
from .checkpoint import checked_meta, load_model_weights
from .config import TrainConfig
from .device import cpu_info
from .errors import ConvscopeError, DataError, RunError

if TYPE_CHECKING:
    from .user_module import KeptCode

CONFIG, METRICS, CHECKPOINT, MODEL, RESULTS = (
    "config.yaml", "metrics.jsonl", "checkpoint.safetensors", "model.safetensors", "results.json"
)
STEPS, RESULTS_CSV = "steps.jsonl", "results.csv"  # written by convscope.logs


def build_from_info(info: dict, run_dir: Path | None = None,
                    trust_code: bool = False) -> torch.nn.Module:
    """Build a fresh (untrained) model from the ``model`` section of a run's config: its spec,
    or its Python model from the copy kept in ``run_dir``, only if ``trust_code``
    (:func:`convscope.user_module.load_kept_code`)."""
    from .model import build_model
    from .user_module import load_kept_code

    spec = info.get("spec")
    if spec is None:
        return load_kept_code(run_dir, info, trust_code)
    if not isinstance(spec, list):  # a string would be read as a spec file's path
        raise RunError(f"{run_dir or 'this run'}: its config's model.spec is not a list of layers")
    return build_model(spec)


def check_weights(path: Path, spec: list) -> None:
    """Check ``path`` is a readable model file whose tensors have the names and shapes of the
    network ``spec`` builds, from the file's header and a weightless (meta) network."""
    from safetensors import SafetensorError, safe_open

    from .model import build_model

    with torch.device("meta"):
        wanted = {k: tuple(v.shape) for k, v in build_model(spec).state_dict().items()}
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise RunError(f"{path}: unreadable weights ({exc}); restore the file or retrain the "
                       "run") from None
    checked_meta(path, metadata, "model")  # the header checks of loading the weights
    if found != wanted:
        odd = sorted(k for k in found.keys() | wanted.keys() if found.get(k) != wanted.get(k))
        raise RunError(f"{path}: weights do not fit the run's spec ({odd[0]}: file has "
                       f"{found.get(odd[0])}, spec needs {wanted.get(odd[0])}"
                       + (f", and {len(odd) - 1} more)" if len(odd) > 1 else ")")
                       + "; restore the file or retrain the run")


def environment(precision: str | None = None) -> dict:
    """The versions, the machine and its CPU (model and the flags that decide conv speed)
    and, when given, the ``precision`` a run actually computed in ("fp32" or "bf16")."""
    used = {"precision": precision} if precision else {}
    return {"convscope": __version__, "torch": str(torch.__version__),
            "python": platform.python_version(), "machine": platform.machine(),
            "threads": torch.get_num_threads(), "cpu": cpu_info(), **used}


@dataclass
class Run:
    """A run directory and what it holds; ``model`` has the final (or latest) weights, loaded
    from the run on first use unless the trainer set it."""

    path: Path
    config: TrainConfig
    model_info: dict
    data_info: dict
    metrics: list[dict] = field(default_factory=list)
    results: dict | None = None
    _model: torch.nn.Module | None = field(default=None, repr=False)
    trust_code: bool = False  # may a Python model kept in the run be imported?
    kept_code: KeptCode | None = field(default=None, repr=False)  # to write with the config

    def __repr__(self) -> str:
        from .notebook import run_repr

        return run_repr(self)

    def _repr_html_(self) -> str:
        """A notebook's display: settings, result, model table, curves, confusion matrix."""
        from .notebook import run_html

        return run_html(self)

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = build_from_info(self.model_info, self.path, self.trust_code)
            weights = self.path / MODEL
            if not weights.exists():
                raise RunError(f"{self.path}: no {MODEL} yet; finish it with "
                               f"`convscope train --resume {self.path}`")
            load_model_weights(weights, self._model)
            self._model.eval()
        return self._model

    @model.setter
    def model(self, module: torch.nn.Module) -> None:
        """Hand the run the network it has trained (so ``model`` needs no reload)."""
        self._model = module

    def load_weights_into(self, module: torch.nn.Module) -> torch.nn.Module:
        """Load the run's final weights into ``module`` (built as the run's network was, e.g.
        for a run trained from an ``nn.Module`` object), checked name by name and shape by
        shape; the module, in eval mode, becomes the run's ``model``."""
        weights = self.path / MODEL
        if not weights.exists():
            raise RunError(f"{self.path}: no {MODEL} yet; finish it with "
                           f"`convscope train --resume {self.path}`")
        load_model_weights(weights, module)
        self._model = module.eval()
        return module

    def predict(self, images, top: int = 3, invert: str = "auto") -> list[dict]:
        """For each of ``images`` (a list of, or one of: paths, PNG/JPEG bytes, PIL images,
        uint8 arrays (H, W[, C]) or tensors (C, H, W)), fitted as the explorer fits an upload:
        ``{"path", "predictions": [{"class", "probability"}, ...]}``, the ``top`` classes most
        probable first (``path``: the path given, else ""); a localizer's and a detector's
        also ``"boxes": [{"class", "score", "box": [x, y, w, h]}]`` in the picture's pixels
        (a detector's ``top`` best), a segmenter's ``"pixels"``, ``"mask"`` (class index per
        pixel of the network's view) and ``"mask_classes"``
        (:class:`convscope.predict.Prediction`). ``invert`` ("auto", "on", "off"): whether a
        picture is inverted for light-on-dark data such as MNIST ("auto": where its background
        is light)."""
        from .predict import predict_one

        if not isinstance(images, list | tuple):  # one picture
            images = [images]
        return [predict_one(self, image, top, str(image) if isinstance(image, str | Path)
                            else "", invert).to_dict() for image in images]

    def data_config(self, data: str | None = None, data_dir: str | None = None,
                    split: str = "test") -> TrainConfig:
        """The run's settings with its data found (the run is not changed): ``data`` (a
        dataset name or folder, e.g. ``eval --data``) or else the data it was trained on; an
        image folder is looked for where it was, then beside the run, its fingerprint checked
        for the folders that ``split`` reads (:mod:`convscope.data.location`)."""
        from dataclasses import replace

        from .data.location import decoded_folder, is_folder_name, is_known, locate_folder

        record = self.data_info.get("folder")
        if record is not None:
            try:
                if not isinstance(record, dict):
                    raise DataError("data.folder is not a mapping")
                decoded_folder(self.data_info)
            except DataError as exc:
                raise RunError(f"{self.path / CONFIG}: {exc}; restore the file or retrain the "
                               "run") from None
        if isinstance(record, dict) and (data is None or is_folder_name(data)):
            data = locate_folder(self.config.data, record, self.path, data, split)
        elif data is None and not is_known(self.config.data) \
                and not Path(self.config.data).expanduser().is_dir():
            raise RunError(f"{self.path}: its data {self.config.data!r} is neither a known "
                           "dataset nor a folder here (a run that recorded a relative path "
                           "reads it from the current folder); give the image folder with "
                           "--data DIR, or run this from the folder it was trained in")
        return replace(self.config, data=data or self.config.data,
                       data_dir=data_dir or self.config.data_dir)

    @property
    def steps(self) -> list[dict]:
        """The lines of steps.jsonl (``epoch``, ``step``, ``steps_per_epoch``,
        ``global_step``, ``loss``, ``lr``), read each time: empty for a run without them."""
        return read_lines(self.path / STEPS)

    def evaluate(self, split: str = "test", dataset=None):
        """The run's network on ``dataset``, by default on the ``split`` ("test", "val" or
        "train") of the run's own data as it trained on it: an
        :class:`~convscope.evaluate.Evaluation` for a classifier, else the task's results
        (as in results.json)."""
        from .evaluate import evaluate
        from .tasks import get_task

        task = get_task(self.config.task)
        if dataset is None:
            if split not in ("train", "val", "test"):
                raise ConvscopeError(f"split {split!r} is not one of: train, val, test")
            config = self.data_config(split=split)  # found from any folder, as eval does
            dataset = task.load_split(config, split, self.data_info,  # only the split scored
                                      **task.data_options(self.model))
            if dataset is None or not len(dataset):
                raise ConvscopeError(f"{self.config.data} has no {split} split here")
        return evaluate(self.model, dataset) if task.classifies else \
            task.evaluate(self.model, dataset)

    def write_config(self, precision: str | None = None) -> None:
        """config.yaml; ``precision``: the arithmetic the run computes in (its
        ``config.precision`` resolved on this machine), after the user's model file if the run
        keeps one."""
        if self.kept_code is not None:
            self.kept_code.write(self.path)
        write_yaml_atomic(self.path / CONFIG, {
            "train": self.config.to_dict(), "model": self.model_info,
            "data": self.data_info, "environment": environment(precision),
        })

    def save_train_config(self) -> None:
        """Write ``config`` into config.yaml's ``train`` section, keeping the rest as recorded
        (``train --resume RUN --epochs N`` extending a run)."""
        document = yaml.safe_load((self.path / CONFIG).read_text(encoding="utf-8"))
        document["train"] = self.config.to_dict()
        write_yaml_atomic(self.path / CONFIG, document)

    def append_metrics(self, line: dict) -> None:
        self.metrics.append(line)
        append_text(self.path / METRICS, json.dumps(line) + "\n")

    def truncate_metrics(self, epochs_done: int) -> None:
        """Keep only the lines of epochs that the checkpoint being resumed has completed."""
        self.metrics = [m for m in self.metrics if m["epoch"] <= epochs_done]
        write_text_atomic(self.path / METRICS, "".join(json.dumps(m) + "\n" for m in self.metrics))


def read_lines(path: Path) -> list[dict]:
    """The lines of a metrics or steps log: each a JSON object with an integer ``epoch``."""
    if not path.exists():
        return []
    metrics = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            metric = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            metric = None
        if not isinstance(metric, dict) or type(metric.get("epoch")) is not int:
            raise RunError(f"{path}: line {number} is not a metrics record (a JSON object with "
                           "an integer epoch); restore the file or delete that line")
        metrics.append(metric)
    return metrics


def open_run(name_or_path: str | Path, trust_code: bool = False) -> Run:
    """:func:`load_run` of a run directory, or of the bundled model called ``name_or_path``
    (``mnist-convnetjs``...) when no such path exists."""
    path = Path(name_or_path)
    if not path.exists():
        from .bundle import bundled_model_dirs
        from .registry import list_models

        name, bundled = str(name_or_path), bundled_model_dirs()
        if name in bundled:
            return load_run(bundled[name], trust_code)
        if name in {entry.name for entry in list_models()}:
            raise RunError(f"{name}: a named model without trained weights here; train it "
                           f"first (convscope train --model {name} --out runs/{name}) and "
                           f"give its run directory")
        raise RunError(f"{name}: no such run directory, and not a bundled model "
                       f"(bundled: {', '.join(bundled) or 'none'})")
    return load_run(path, trust_code)


def load_run(path: str | Path, trust_code: bool = False) -> Run:
    """Open a run directory written by :func:`convscope.train`; ``trust_code`` allows its
    ``model`` to import the Python model code the run keeps (see :func:`build_from_info`)."""
    path = Path(path)
    config_path = path / CONFIG
    if not config_path.is_file():
        raise RunError(f"{path}: not a convscope run directory (no {CONFIG})")
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        config = TrainConfig.from_dict(data["train"])
        model_info, data_info = data["model"], data["data"]
        if not isinstance(model_info, dict) or not isinstance(data_info, dict):
            raise TypeError("its model and data sections must be mappings")
    except (yaml.YAMLError, KeyError, TypeError, ConvscopeError, UnicodeDecodeError) as exc:
        raise RunError(f"{config_path}: unreadable run configuration ({exc})") from None
    except RecursionError:
        raise RunError(f"{config_path}: unreadable run configuration (nested too deeply)") from None
    metrics = read_lines(path / METRICS)
    results = None
    if (path / RESULTS).exists():
        try:
            results = json.loads((path / RESULTS).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            results = None
        if not isinstance(results, dict):
            raise RunError(f"{path / RESULTS}: not a JSON object; restore it, or delete it "
                           "(it holds the run's final test numbers)")
    return Run(path, config, model_info, data_info, metrics, results, trust_code=trust_code)
