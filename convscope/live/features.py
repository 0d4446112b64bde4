"""Per-frame features for the live view and the streams: :class:`FeatureExtractor` maps a batch
of frames (uint8 H x W x 3 or H x W arrays of any size) to one layer's activations, flattened,
or to the class probabilities, as float32 (N, size).

Each frame is fitted to the network's input as the explorer fits a picture
(:func:`convscope.predict.fit_any`, :mod:`convscope.images`: centre crop to the input's aspect,
one resize, the dataset's preparation) and the layer is read by a forward hook
(:func:`convscope.probes.node_outputs`). The default network, ``cifar10-94``, sees a 32x32 view
of the frame.
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
                 prep: Preparation = PLAIN) -> None:
        self.model, self.volume, self.task, self.prep = model.eval(), volume, task, prep
        self.nodes: list[Node] = network_graph(model, volume).nodes
        self.node = None if str(layer) == PROBS else resolve_node(self.nodes, layer)
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
        return len(self.classes) if self.node is None else self.node.out_volume.numel

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
            return x.reshape(x.shape[0], -1)
        found, returned = node_outputs(self.model, x, wanted)
        if self.node is not None:
            return found[self.node.index].reshape(x.shape[0], -1)
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

