"""``convscope import-weights``: pretrained weights a user brings (a safetensors or ONNX file)
mapped onto a registered model or spec, written as a run directory.

Names in the file are not trusted to follow convscope's: the file's tensors are put in layer
order (ONNX: the order the graph's nodes first use them; safetensors: their names, numbers
compared as numbers, so ``features.2`` comes before ``features.10``), and each of the
network's tensors, layer by layer, takes the first remaining one of its shape. A torchvision
AlexNet or VGG-16 (``features.*`` then ``classifier.*``) therefore maps as it is. Any tensor
without a home, or a layer without a tensor, refuses the whole file with one line naming the
first mismatching layer; nothing is written then. Pickled files (.pt, .pth) are never read.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from convscope._io import write_json_atomic
from convscope.checkpoint import save_model
from convscope.config import TrainConfig
from convscope.data import DATASETS
from convscope.errors import RunError
from convscope.extras import require
from convscope.layer_kinds import layer_label
from convscope.model import SpecNet
from convscope.runs import MODEL, RESULTS, Run, load_run
from convscope.user_module import resolve_model_ref

FORMATS = {".safetensors": "safetensors", ".onnx": "onnx"}


class WeightsError(RunError):
    """Weights that cannot be mapped onto the network (names the file and the layer)."""


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_safetensors(path: Path) -> list[tuple[str, torch.Tensor]]:
    """The tensors of a safetensors file, in name order (numbers as numbers)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return [(name, f.get_tensor(name)) for name in sorted(f.keys(), key=_natural)]
    except Exception as exc:  # noqa: BLE001 (a damaged file raises many kinds of error)
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None


def read_onnx(path: Path) -> list[tuple[str, torch.Tensor]]:
    """The initializers of an ONNX model, in the order its graph's nodes first use them."""
    onnx = require("onnx", "onnx", feature="importing ONNX weights")
    numpy_helper = require("onnx.numpy_helper", "onnx", feature="importing ONNX weights")

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
        initializers = {t.name: t for t in graph.initializer}
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in initializers.values()):
            raise WeightsError(f"{path}: its weights are stored in separate files; save the "
                               "ONNX model with its weights inside (save_as_external_data=False)")
        order = [name for node in graph.node for name in node.input if name in initializers]
        order = list(dict.fromkeys([*order, *initializers]))  # unused ones last
        return [(name, torch.from_numpy(numpy_helper.to_array(initializers[name]).copy()))
                for name in order]
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 (a damaged file raises many kinds of error)
        raise WeightsError(f"{path}: not a readable ONNX model ({exc})") from None


def read_weights(path: Path) -> list[tuple[str, torch.Tensor]]:
    """The floating-point tensors of a safetensors or ONNX file, in layer order."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise WeightsError(f"{path}: import-weights reads .safetensors and .onnx files (never "
                           "pickled .pt/.pth files: convert them with safetensors.torch."
                           "save_file first)")
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    tensors = read_safetensors(path) if kind == "safetensors" else read_onnx(path)
    return [(name, t) for name, t in tensors if t.is_floating_point() and t.dim() > 0]


def _shape(shape: torch.Size | tuple) -> str:
    return "x".join(str(n) for n in shape) or "scalar"


def map_weights(net: SpecNet, tensors: list[tuple[str, torch.Tensor]], file: str
                ) -> dict[str, torch.Tensor]:
    """The state dict of ``net`` made of ``tensors``: each of the network's floating-point
    tensors, in layer order, takes the first remaining file tensor of its shape."""
    state = net.state_dict()
    left = list(tensors)
    mapped: dict[str, torch.Tensor] = {}
    for key, target in state.items():
        if not target.is_floating_point():
            continue  # e.g. batchnorm's num_batches_tracked
        found = next((i for i, (_, t) in enumerate(left) if t.shape == target.shape), None)
        if found is None:
            index = int(key.split(".")[1])
            nearest = f"; the next unused tensor is '{left[0][0]}' ({_shape(left[0][1].shape)})" \
                if left else "; the file has no tensors left"
            raise WeightsError(f"{file}: layer {index} ({layer_label(net.layers[index])}) "
                               f"needs a {key.rsplit('.', 1)[-1]} of shape "
                               f"{_shape(target.shape)}, and the file has none left{nearest}")
        name, tensor = left.pop(found)
        if not torch.isfinite(tensor).all():
            raise WeightsError(f"{file}: tensor '{name}' holds NaN or infinite values")
        mapped[key] = tensor.to(target.dtype)
    if left:
        shown = ", ".join(f"'{n}' ({_shape(t.shape)})" for n, t in left[:3])
        raise WeightsError(f"{file}: {len(left)} of its {len(tensors)} tensors fit no layer "
                           f"of the network ({shown}{', ...' if len(left) > 3 else ''}): "
                           "it holds weights for a different network")
    return {**state, **mapped}


def import_weights(model_ref: str, source: str | os.PathLike, out: str | os.PathLike) -> Run:
    """Map the weights in ``source`` onto the registered model or spec file ``model_ref`` and
    write them as a run directory ``out`` (its results empty: not evaluated)."""
    described = resolve_model_ref(model_ref)
    if described.spec is None:
        raise WeightsError(f"{model_ref}: import-weights maps weights onto a registered model "
                           "or a spec file, not Python code")
    run_dir = Path(out)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunError(f"{run_dir} exists and is not empty; choose another --out")
    path = Path(source)
    net = SpecNet(described.spec)
    state = map_weights(net, read_weights(path), path.name)
    net.load_state_dict(state)
    volume, classes = net.input_volume, _classes(described.dataset, net)
    source_info = {"format": FORMATS[path.suffix.lower()], "file": path.name,
                   "sha256": _sha256(path)}
    model_info = {"kind": described.kind, "ref": model_ref, "spec": described.spec,
                  "source": source_info}
    data = described.dataset or "imagenet"
    run = Run(run_dir, TrainConfig(model=model_ref, data=data), model_info,
              {"name": data, "classes": classes, "input": [volume.sx, volume.sy, volume.depth]})
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(run_dir / MODEL, net, {"source": source_info})
    write_json_atomic(run_dir / RESULTS, {})
    run.write_config()
    return load_run(run_dir)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _classes(dataset: str | None, net: SpecNet) -> list[str]:
    """The dataset's class names, else numbers for each output (ImageNet's 1000)."""
    if dataset in DATASETS:
        return list(DATASETS[dataset].classes)
    return [str(i) for i in range(net.layers[-1].out_volume.depth)]
