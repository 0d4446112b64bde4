"""Export a network to ONNX: input ``input`` (N, depth, height, width) float32 in convscope's
input convention (``byte/255 - 0.5``), outputs ``logits`` and, for a network ending in softmax,
``probabilities``; the batch dimension is dynamic.

Uses PyTorch's TorchScript-based exporter (``dynamo=False``): the default dynamo exporter of
torch 2.13 needs the ``onnxscript`` package, which convscope does not depend on.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch

from ._io import atomic_write

OPSET = 17


class _Outputs(torch.nn.Module):
    """Logits, plus probabilities when ``with_probabilities``."""

    def __init__(self, model: torch.nn.Module, with_probabilities: bool) -> None:
        super().__init__()
        self.model, self.with_probabilities = model, with_probabilities

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.model(x)
        return (logits, torch.softmax(logits, dim=1)) if self.with_probabilities else (logits,)


def export_onnx(model: torch.nn.Module, path: str | os.PathLike,
                input_shape: tuple[int, int, int]) -> Path:
    """Write ``model`` (in eval mode, float32, on the CPU) to ``path`` as ONNX; ``input_shape``
    is (depth, height, width). Returns the path."""
    model = copy.deepcopy(model).float().cpu().eval()
    with_probabilities = getattr(model, "num_classes", None) is not None
    names = ["logits", "probabilities"] if with_probabilities else ["logits"]
    example = torch.zeros(2, *input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)  # the TorchScript exporter
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)  # shape checks
        atomic_write(Path(path), lambda tmp: torch.onnx.export(
            _Outputs(model, with_probabilities), (example,), str(tmp), dynamo=False,
            input_names=["input"], output_names=names, opset_version=OPSET,
            dynamic_axes={name: {0: "batch"} for name in ["input", *names]}))
    return Path(path)
