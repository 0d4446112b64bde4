"""Fine-tuning: a run that starts from another run's (or a bundled model's) weights, and the
size of a spec network's output layer.

``init_from`` (``--init-from``) names the source: a run directory or a bundled model
(``cifar10-convnetjs``; :func:`convscope.runs.open_run`). The new run trains the source's
network, or the ``--model`` given, whose layers must have the source's shapes. Every weight is
the source's except the output layer's (the last layer with weights, the fc before a softmax)
when its size differs: that layer is made fresh. The source's input volume and input
convention are kept; an image folder is fitted to the network's input size unless
``image_size`` says otherwise. config.yaml records ``train.init_from`` (a bundled name or the
run's absolute path) and ``model.init`` (the source's weights' sha256), which a resume before
the first checkpoint checks.

``num_classes`` (``--num-classes``; default: the data's class count) sizes the output layer of
a spec network trained on a classifying task, with or without ``init_from``: ``--model
cifar10-convnetjs --data my-2-class-folder`` trains a 2-class CIFAR-10 convnet. A Python
model's size is its factory's business (``--model-args``).

``freeze="features"`` trains only the output layer: every other parameter keeps its value
(batchnorm layers there keep their running statistics too).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .checkpoint import read_model_tensors
from .config import TrainConfig
from .data.catalog import DATASETS, get_dataset
from .data.folder import class_names
from .errors import ConvscopeError, RunError, SpecError
from .runs import CHECKPOINT, MODEL, Run, open_run
from .spec import resolve
from .tasks import get_task
from .user_module import ModelDescription

OUTPUT_FIELDS = {"softmax": "num_classes", "fc": "num_neurons"}  # a spec's last layer: its size


@dataclass(frozen=True)
class Source:
    """The run whose weights a fine-tuning run starts from."""

    name: str  # as config.yaml records it: a bundled model's name or the run's absolute path
    run: Run
    sha256: str  # of its model.safetensors

    @property
    def weights(self) -> Path:
        return self.run.path / MODEL

    @property
    def record(self) -> dict:
        """The ``init`` entry of the new run's ``model`` section."""
        return {"from": self.name, "weights_sha256": self.sha256}


def open_source(init_from: str) -> Source:
    """The run or bundled model ``init_from`` names, with its final weights."""
    path = Path(init_from).expanduser()
    try:
        run = open_run(path if path.exists() else init_from)
    except RunError as exc:
        raise RunError(f"init_from: {exc}") from None
    weights = run.path / MODEL
    if not weights.is_file():
        raise RunError(f"init_from: {run.path} has no {MODEL} yet; finish it first "
                       f"(convscope train --resume {run.path})")
    name = str(path.resolve()) if path.exists() else init_from
    return Source(name, run, hashlib.sha256(weights.read_bytes()).hexdigest())


def describe_source(source: Source) -> ModelDescription:
    """The source's network, to train again (its spec; its task and data are the defaults)."""
    spec, config = source.run.model_info.get("spec"), source.run.config
    if not isinstance(spec, list):
        raise SpecError(f"init_from {source.name}: its model is Python code "
                        f"({source.run.model_info.get('ref')}); give that model with --model "
                        "FILE.py:FACTORY too, and its weights are loaded into it")
    return ModelDescription("spec", config.model, spec, {"task": config.task}, config.data)


def output_size(spec: list) -> int | None:
    """The outputs of a spec's last layer when it is a softmax or an fc, else None."""
    last = spec[-1] if spec and isinstance(spec[-1], dict) else {}
    return last.get(OUTPUT_FIELDS.get(last.get("type"), ""))


def with_output_size(spec: list, size: int) -> list:
    """A copy of ``spec`` whose last layer (a softmax or an fc) gives ``size`` outputs."""
    if output_size(spec) is None:
        raise SpecError("num_classes sizes a network that ends in a softmax or an fc layer; "
                        "this one ends otherwise: change its last layer instead")
    spec = copy.deepcopy(spec)
    spec[-1][OUTPUT_FIELDS[spec[-1]["type"]]] = size
    resolve(spec)  # still a valid network
    return spec


def data_classes(config: TrainConfig) -> int | None:
    """How many classes ``config.data`` has (a catalogued dataset or an image folder; None
    when it cannot be told without loading it)."""
    if config.data in DATASETS:
        return len(get_dataset(config.data).classes)
    path = Path(config.data).expanduser()
    try:
        return len(class_names(path)) or None if path.is_dir() else None
    except (ConvscopeError, OSError):
        return None  # loading the data says what is wrong


def sized_for_data(described: ModelDescription, config: TrainConfig,
                   given: torch.nn.Module | None) -> ModelDescription:
    """``described`` with its output layer sized to ``config.num_classes``, else to the data's
    class count: for a spec network of a classifying task that is built here (not ``given``)."""
    wanted = config.num_classes
    if not get_task(config.task).classifies:
        if wanted is not None:
            raise ConvscopeError(f"num_classes is for classifying tasks, not {config.task}; "
                                 "leave it out")
        return described
    if described.spec is None or given is not None:
        if wanted is not None:
            raise ConvscopeError("num_classes resizes a spec network's output layer; give a "
                                 "Python model its class count yourself (--model-args "
                                 f"'{{\"num_classes\": {wanted}}}' for a factory taking one)")
        return described
    classes = data_classes(config)
    if wanted is not None and classes is not None and wanted != classes:
        raise ConvscopeError(f"num_classes is {wanted} but {config.data} has {classes} "
                             "classes; leave num_classes out to size the output layer to the data")
    have = output_size(described.spec)
    if config.num_classes is None and have is None:
        return described  # no output layer to size: the task's own check explains the fix
    wanted = wanted or classes
    if wanted is None or wanted == have:
        return described
    if have is not None:
        print(f"note: {described.ref}'s output layer has {have} outputs; training a fresh one "
              f"with {wanted} (one per class)")
    return replace(described, spec=with_output_size(described.spec, wanted))


def fit_folder_to_input(config: TrainConfig, described: ModelDescription) -> None:
    """Training a spec network on an image folder (fine-tuning or not): its images are fitted
    to the network's input size (``config.image_size``, unless the user chose one); a Python
    module's folder keeps the median size (:mod:`convscope.data.folder`)."""
    if config.image_size is not None or config.data in DATASETS or described.spec is None \
            or not Path(config.data).expanduser().is_dir():
        return
    volume = resolve(described.spec)[0].out_volume
    config.image_size = f"{volume.sx}x{volume.sy}"
    print(f"note: fitting the images of {config.data} to {config.image_size}, the input of "
          f"{described.ref} (--image-size to choose another size)")


def output_layer(module: torch.nn.Module) -> str:
    """The name of ``module``'s output layer: the last submodule with weights of its own."""
    names = [name for name, sub in module.named_modules()
             if next(sub.parameters(recurse=False), None) is not None]
    if not names:
        raise ConvscopeError("this network has no weights to fine-tune")
    return names[-1]


def load_source(module: torch.nn.Module, source: Source, model_name: str) -> list[str]:
    """Copy ``source``'s weights into ``module`` by name; the output layer's tensors whose
    shape differs stay fresh (returned). Any other difference is one ConvscopeError."""
    tensors, target = read_model_tensors(source.weights), module.state_dict()
    prefix = output_layer(module) + "."
    fresh = [key for key, value in target.items() if key.startswith(prefix)
             and key in tensors and tensors[key].shape != value.shape]
    odd = sorted(k for k in target.keys() | tensors.keys() if k not in fresh and (
        k not in target or k not in tensors or tensors[k].shape != target[k].shape))
    if odd:
        key = odd[0]
        mine, theirs = (_shape(t.get(key)) for t in (target, tensors))
        raise ConvscopeError(f"--model {model_name} does not match --init-from {source.name}: "
                             f"{key} is {mine} in the model but {theirs} in the source; leave "
                             "out --model to train the source's own network")
    module.load_state_dict({k: v for k, v in tensors.items() if k not in fresh}, strict=False)
    return fresh


def _shape(tensor: torch.Tensor | None) -> str:
    return "missing" if tensor is None else str(tuple(tensor.shape))


def freeze_features(module: torch.nn.Module) -> None:
    """Train only the output layer: every other parameter stops learning and every batchnorm
    outside it stops updating its running statistics."""
    keep = output_layer(module)
    for name, sub in module.named_modules():
        if name == keep:
            continue
        for parameter in sub.parameters(recurse=False):
            parameter.requires_grad_(False)
        if isinstance(sub, torch.nn.modules.batchnorm._BatchNorm):
            sub.momentum = 0.0


def start(module: torch.nn.Module, config: TrainConfig, source: Source | None) -> None:
    """Ready a new run's ``module``: the source's weights, then the freeze."""
    if source is not None:
        fresh = load_source(module, source, config.model)
        layer = output_layer(module)
        print(f"fine-tuning from {source.name}: " + (f"a fresh output layer ({layer})" if fresh
              else "every layer's weights") + (", features frozen" if config.freeze != "none"
                                               else ""))
    if config.freeze == "features":
        freeze_features(module)


def start_resumed(module: torch.nn.Module, run: Run) -> None:
    """Ready a resumed run's ``module``: the freeze and, before its first checkpoint, the
    source's weights again (checked to be the ones the run started from)."""
    config = run.config
    source = None
    if config.init_from and not (run.path / CHECKPOINT).exists():
        source = open_source(config.init_from)
        recorded = (run.model_info.get("init") or {}).get("weights_sha256")
        if source.sha256 != recorded:
            raise RunError(f"{run.path}: init_from {config.init_from} no longer holds the weights "
                           "the run started from (sha256 differs); restore them or start anew")
    start(module, config, source)
