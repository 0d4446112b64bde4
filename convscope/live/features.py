"""Per-frame features for the live view and the streams: :class:`FeatureExtractor` maps a batch
of frames (uint8 H x W x 3 or H x W arrays of any size) to one layer's activations, flattened,
or to the class probabilities, as float32 (N, size).

Each frame is fitted to the network's input as the explorer fits a picture
(:func:`convscope.predict.fit_any`, :mod:`convscope.images`: centre crop to the input's aspect,
one resize, the dataset's preparation) and the layer is read by a forward hook
(:func:`convscope.probes.node_outputs`), then pooled (:func:`pooled`). The default network,
``cifar10-94``, sees a 32x32 view of the frame.

The features "train your own" learns from (:func:`default_features`, one rule for any network,
chosen on MNIST *training* digits by ``benchmarks/few_shot.py``): the maps where the network's
last conv stage begins (the first layer output at the resolution of the last conv layer's
input), flattened, or average-pooled to a coarser grid where that would give more than
:data:`MAX_FEATURES` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..augment import to_input
from ..errors import ConvscopeError
from ..images import PLAIN, Preparation
from ..layer_kinds import Volume
from ..predict import fit_any, input_volume, preparation
from ..probes import INPUT, Node, network_graph, node_outputs
from ..runs import Run, open_run
from ..tasks import get_task

PROBS = "probs"  # the class probabilities instead of a layer
DEFAULT_MODEL = "cifar10-94"  # the bundled feature network (a 32x32 view of each frame)
FALLBACK_MODEL = "cifar10-convnetjs"  # where cifar10-94 is not bundled: the best bundled one
MODULE_INPUT = Volume(224, 224, 3)  # a Python module's input unless told (ImageNet's size)
POOLINGS = ("flat", "grid", "avg", "max")  # see pooled()
MAX_FEATURES = 4096  # "grid" pools maps to the finest grid giving at most this many values


def default_model() -> str:
    """The default feature network: :data:`DEFAULT_MODEL` where it is bundled, else
    :data:`FALLBACK_MODEL` (also a 32x32 CIFAR-10 net)."""
    from ..bundle import bundled_model_dirs

    return DEFAULT_MODEL if DEFAULT_MODEL in bundled_model_dirs() else FALLBACK_MODEL


class FeatureError(ConvscopeError):
    """A model or layer that cannot give features; names the fix."""


class FeatureExtractor:
    """``layer`` (:data:`PROBS`, a node index as :func:`convscope.probes.network_graph` numbers
    them, or a node's name such as ``blocks.5``) of ``model`` for batches of frames. ``volume``
    is the network's input; ``classes`` name the probabilities; ``task`` says how to read them;
    ``prep`` how a picture is prepared (inverted and centred for MNIST's)."""

    def __init__(self, model: nn.Module, layer: str | int = PROBS, *, volume: Volume,
                 classes: Sequence[str] = (), task: str = "classify",
                 prep: Preparation = PLAIN, pooling: str = "flat") -> None:
        self.model, self.volume, self.task, self.prep = model.eval(), volume, task, prep
        self.nodes: list[Node] = network_graph(model, volume).nodes
        self.node = None if str(layer) == PROBS else resolve_node(self.nodes, layer)
        self.pooling = check_pooling(pooling)
        out = self.nodes[-1].out_volume.numel
        self.classes = list(classes) if len(classes) == out else [str(i) for i in range(out)]
        if self.node is None and not get_task(task).classifies:
            raise FeatureError(f"a {task} model has no class probabilities: choose a layer "
                               f"(0..{len(self.nodes) - 1}) instead of probs")

    @classmethod
    def from_run(cls, run: Run, layer: str | int = PROBS, invert: str = "auto"
                 ) -> FeatureExtractor:
        """The extractor of a run's network, its pictures prepared as its dataset's are."""
        return cls(run.model, layer, volume=input_volume(run),
                   classes=[str(c) for c in run.data_info.get("classes") or []],
                   task=run.config.task, prep=preparation(run, invert))

    @classmethod
    def open(cls, ref: str | Path | None = None, layer: str | int = PROBS, *,
             trust_code: bool = False, volume: Volume | None = None,
             invert: str = "auto") -> FeatureExtractor:
        """A bundled model's name, a run directory, or ``file.py:factory`` (a Python module,
        e.g. a pretrained torchvision net: imported only with ``trust_code``; ``volume`` is its
        input, 224x224x3 unless given); None: :func:`default_model`."""
        text = str(ref) if ref is not None else default_model()
        if text.partition(":")[0].endswith(".py") and ":" in text:
            if not trust_code:
                raise FeatureError(f"{text} is Python code: importing it runs it; allow it with "
                                   "--trust-code (trust_code=True) if you trust the file")
            from ..user_module import load_user_module

            module = load_user_module(text)
            if not isinstance(module, nn.Module):
                raise FeatureError(f"{text} returned {type(module).__name__}, not an nn.Module")
            return cls(module, layer, volume=volume or MODULE_INPUT,
                       prep=Preparation(invert="on" if invert == "on" else "off"))
        return cls.from_run(open_run(text, trust_code), layer, invert)

    @property
    def layer_name(self) -> str:
        return PROBS if self.node is None else self.node.name

    @property
    def size(self) -> int:
        """How many values one frame gives."""
        if self.node is None:
            return len(self.classes)
        return pooled_size(self.node.out_volume, self.pooling)

    def fit(self, frames) -> torch.Tensor:
        """Frames (one H x W [x 3] uint8 array, a list of them, or an (N, H, W, 3) array) fitted
        to the network's input: uint8 (N, depth, sy, sx)."""
        if isinstance(frames, np.ndarray) and frames.ndim in (2, 3) and \
                not (frames.ndim == 3 and frames.shape[-1] not in (1, 3)):
            frames = [frames]
        fitted = [fit_any(np.ascontiguousarray(frame), self.volume, self.prep)
                  for frame in frames]
        if not fitted:
            return torch.empty(0, *self.volume.shape, dtype=torch.uint8)
        return torch.stack(fitted)

    @torch.inference_mode()
    def features_of(self, images: torch.Tensor) -> torch.Tensor:
        """The features of fitted uint8 images (N, depth, sy, sx): float32 (N, size)."""
        if images.shape[0] == 0:
            return torch.empty(0, self.size)
        x = to_input(images)
        wanted = [] if self.node is None else [self.node.index]
        if self.node is not None and self.node.name == INPUT:
            return pooled(x, self.pooling)
        found, returned = node_outputs(self.model, x, wanted)
        if self.node is not None:
            return pooled(found[self.node.index], self.pooling)
        task = get_task(self.task)
        return torch.stack([task.class_probabilities(self.model, out, self.classes)
                            for out in returned.reshape(returned.shape[0], -1)]).float()

    def __call__(self, frames) -> np.ndarray:
        """The features of ``frames`` (see :meth:`fit`): float32 (N, size)."""
        return self.features_of(self.fit(frames)).numpy()


def resolve_node(nodes: list[Node], layer: str | int) -> Node:
    """The node called ``layer``: its index (``"5"``, 5, negative from the end) or its name."""
    text = str(layer).strip()
    index = int(text) if text.lstrip("-").isdigit() else None
    if index is not None and -len(nodes) <= index < len(nodes):
        return nodes[index]
    for node in nodes:
        if node.name == text:
            return node
    shown = ", ".join(f"{n.index} {n.name}" for n in nodes[1:6])
    raise FeatureError(f"layer {text!r} is not one of this network's: give probs, an index "
                       f"0..{len(nodes) - 1} or a name ({shown}, ...; `convscope summary` lists "
                       "them)")


def check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise FeatureError(f"pooling must be one of {', '.join(POOLINGS)} (got {pooling!r})")
    return pooling


def grid_side(volume: Volume) -> int | None:
    """The side of the grid "grid" pooling keeps (None: the maps stay as they are)."""
    if volume.numel <= MAX_FEATURES:
        return None
    side = min(volume.sx, volume.sy)
    while side > 1 and side * side * volume.depth > MAX_FEATURES:
        side -= 1
    return side


def pooled_size(volume: Volume, pooling: str) -> int:
    """How many values :func:`pooled` gives for maps of ``volume``."""
    if pooling in ("avg", "max"):
        return volume.depth
    side = grid_side(volume) if pooling == "grid" else None
    return volume.numel if side is None else side * side * volume.depth


def pooled(maps: torch.Tensor, pooling: str = "flat") -> torch.Tensor:
    """A layer's output (N, depth, sy, sx) as float32 (N, values): ``flat`` as it is,
    flattened; ``avg``/``max`` one value per channel (global average or maximum); ``grid``
    flattened, average-pooled first to the finest square grid that gives at most
    :data:`MAX_FEATURES` values when the maps give more."""
    maps = maps.float()
    if maps.ndim == 2:
        return maps
    if pooling == "avg":
        return maps.mean(dim=(2, 3))
    if pooling == "max":
        return maps.amax(dim=(2, 3))
    if pooling == "grid":
        side = grid_side(Volume(maps.shape[3], maps.shape[2], maps.shape[1]))
        if side is not None:
            maps = torch.nn.functional.adaptive_avg_pool2d(maps, side)
    return maps.reshape(maps.shape[0], -1)


def before_classifier(nodes: list[Node]) -> Node:
    """The layer a classifier reads (ml4a's "encode up to numLayers - 1"): the last node whose
    output is not the size of the network's output."""
    out = nodes[-1].out_volume.numel
    for node in reversed(nodes[1:]):
        if node.out_volume.numel != out:
            return node
    return nodes[-1]


def default_features(nodes: list[Node]) -> tuple[Node, str]:
    """The features "train your own" learns from, for any network (``nodes``: its graph's):
    (node, pooling). Where the last conv stage begins: the first layer output at the
    resolution of the last conv layer's input, "grid"-pooled (flat up to
    :data:`MAX_FEATURES` values). A network without a conv layer working on maps larger than
    1x1: the layer before its classifier, flat. (Chosen on MNIST training digits against the
    other stages, global pooling and the layer before the classifier: ``benchmarks/few_shot.py``,
    docs/benchmarks.md.)"""
    convs = [n for n in nodes[1:] if n.type == "conv"]
    if convs:
        last = convs[-1]
        size = last.in_volume or last.out_volume
        for node in nodes[1:]:
            out = node.out_volume
            if (out.sx, out.sy) == (size.sx, size.sy) and out.sx * out.sy > 1:
                return node, "grid"
    return before_classifier(nodes), "flat"


def open_features(model: str | None = None, layer: str | int | None = None,
                  trust_code: bool = False, pooling: str | None = None
                  ) -> tuple[FeatureExtractor, dict]:
    """The extractor "train your own" records with: ``model`` (default: :func:`default_model`)
    at ``layer`` pooled by ``pooling`` (both default: :func:`default_features`; a given layer
    is flat unless ``pooling`` says), and the ``source`` an example set records for it. A
    layer is looked up by name first, as the source records it (a ``Sequential``'s names are
    digits that are not its node indices)."""
    model = str(model or default_model())
    extractor = FeatureExtractor.open(model, PROBS, trust_code=trust_code)
    if layer is None:
        node, rule = default_features(extractor.nodes)
        layer, pooling = node.index, pooling or rule
    else:
        layer = next((n.index for n in extractor.nodes if n.name == str(layer)), layer)
    extractor = FeatureExtractor(extractor.model, layer, volume=extractor.volume,
                                 classes=extractor.classes, task=extractor.task,
                                 prep=extractor.prep, pooling=pooling or "flat")
    return extractor, source_of(extractor, model)


def source_of(extractor: FeatureExtractor, model: str | None) -> dict:
    """What an example set records of the features ``extractor`` gives of ``model``."""
    return {"model": model, "layer": extractor.layer_name, "pooling": extractor.pooling,
            "size": extractor.size}


def recorded_features(source: dict) -> tuple[str | None, str | None]:
    """The (layer, pooling) a recorded ``source`` names, (None, None) where it names no
    layer; a source recorded before pooling existed read its layer flat."""
    layer = source.get("layer")
    return (None, None) if layer is None else (layer, source.get("pooling", "flat"))
