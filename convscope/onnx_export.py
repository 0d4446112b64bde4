"""Export a network to ONNX: input ``input`` (N, depth, height, width) float32 in convscope's
input convention (``byte/255 - 0.5``), outputs ``logits`` and, for a network ending in softmax,
``probabilities``; the batch dimension is dynamic. The file's ``metadata_props`` say what a
runtime needs to feed it (:func:`run_metadata`): class names, input volume, normalisation, how
a picture is fitted (crop) and prepared (polarity, centring), task.

Uses PyTorch's TorchScript-based exporter (``dynamo=False``): the default dynamo exporter of
torch 2.13 needs the ``onnxscript`` package, which convscope does not depend on.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import torch

from ._io import atomic_write
from .extras import require

OPSET = 17


class _Outputs(torch.nn.Module):
    """Logits, plus probabilities when ``with_probabilities``."""

    def __init__(self, model: torch.nn.Module, with_probabilities: bool) -> None:
        super().__init__()
        self.model, self.with_probabilities = model, with_probabilities

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.model(x)
        return (logits, torch.softmax(logits, dim=1)) if self.with_probabilities else (logits,)


FIT = ("the picture's centred part of the input's aspect ratio, centre-cropped to the input "
       "when at most twice its size, else resized once (bilinear); EXIF orientation applied")


def run_metadata(run) -> dict[str, str]:
    """The ONNX metadata of a run's network (string keys and values; lists and numbers as
    JSON): ``classes``, ``input`` ([width, height, depth]), ``input_scale`` and
    ``input_offset`` (input = byte * scale + offset), ``fit`` (:data:`FIT`), ``polarity`` and
    ``centre`` (the data's catalogue entry: "light-on-dark" pictures are inverted when their
    background is light; "mnist": the digit centred as MNIST's were), ``task``, ``producer``."""
    from . import __version__
    from .augment import BYTE_SCALE, INPUT_OFFSET
    from .data.catalog import dataset_name, preparation_for

    prep = preparation_for(dataset_name(str(run.config.data), run.config.task))
    return {"classes": json.dumps([str(c) for c in run.data_info.get("classes") or []]),
            "input": json.dumps(list(run.data_info.get("input") or [])),
            "input_scale": json.dumps(1 / BYTE_SCALE), "input_offset": json.dumps(INPUT_OFFSET),
            "fit": FIT, "polarity": prep.polarity, "centre": prep.centre or "none",
            "task": run.config.task, "producer": f"convscope {__version__}"}


def _with_metadata(path: Path, metadata: dict[str, str]) -> None:
    onnx = require("onnx", "onnx", feature="ONNX export")

    graph = onnx.load(str(path))
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))


def export_onnx(model: torch.nn.Module, path: str | os.PathLike,
                input_shape: tuple[int, int, int],
                metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` (in eval mode, float32, on the CPU) to ``path`` as ONNX; ``input_shape``
    is (depth, height, width); ``metadata``: the file's ``metadata_props`` (see
    :func:`run_metadata`). Returns the path."""
    require("onnx", "onnx", feature="ONNX export")  # before any work: one line if it is missing
    model = copy.deepcopy(model).float().cpu().eval()
    with_probabilities = getattr(model, "num_classes", None) is not None
    names = ["logits", "probabilities"] if with_probabilities else ["logits"]
    example = torch.zeros(2, *input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)  # the TorchScript exporter
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)  # shape checks

        def write(tmp: Path) -> None:
            torch.onnx.export(
                _Outputs(model, with_probabilities), (example,), str(tmp), dynamo=False,
                input_names=["input"], output_names=names, opset_version=OPSET,
                dynamic_axes={name: {0: "batch"} for name in ["input", *names]})
            if metadata:
                _with_metadata(tmp, metadata)
        atomic_write(Path(path), write)
    return Path(path)
