"""Read a ConvNetJS snapshot (``Net.toJSON()`` output) into a convscope spec and weights.

Each ConvNetJS layer becomes one spec layer (an ``fc`` followed by ``softmax`` becomes one
``softmax`` definition, which convscope expands back into the same two layers), so layer ``i``
of the snapshot is layer ``i`` of the SpecNet and its weights are ``blocks.<i>.weight/bias``.
Weights are permuted from the Vol storage order ``((sx*y)+x)*depth+d`` into PyTorch layouts.

ConvNetJS semantics kept: zero padding for conv; max pooling skips window positions outside
the input (PyTorch's implicit -inf padding); dropout multiplies by ``drop_prob`` at prediction
(``scaling: convnetjs``); fc reads the incoming volume in ConvNetJS's (y, x, d) order (its
weights are reordered for convscope's (d, y, x) flatten). The stored output sizes must be those
the declared input gives, as in every snapshot ConvNetJS writes; a different-sized input is
fitted to the declared one by convscope's data pipeline (see :mod:`convscope.convnetjs.chapter`
for ConvNetJS's own handling of larger inputs).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from convscope.errors import SpecError
from convscope.layer_kinds import REQUIRED, Volume, layer_kind, layer_kinds, window_output
from convscope.model import SpecNet, build_model

# the kinds convscope can write to ConvNetJS, each read back by the _Layer method of its name
SUPPORTED = tuple(kind.name for kind in layer_kinds() if kind.convnetjs is not None)
NOT_SUPPORTED = tuple(kind for kind in ("lrn", "maxout", "svm", "regression", "quadtransform")
                      if kind not in SUPPORTED)  # ConvNetJS has these


class SnapshotError(SpecError):
    """A ConvNetJS snapshot that cannot be imported (names the file and the layer)."""


@dataclass(frozen=True)
class Snapshot:
    """A checked snapshot: the spec, its float64 weights (SpecNet state-dict keys) and where
    it came from (``name``: file name, ``sha256`` of the file's bytes, None for a dict)."""

    name: str
    sha256: str | None
    spec: list[dict]
    state: dict[str, torch.Tensor]

    def model(self, dtype: torch.dtype = torch.float64) -> SpecNet:
        """A SpecNet in eval mode with the snapshot's weights (exact in float64)."""
        net = build_model(self.spec).to(dtype)
        net.load_state_dict(self.state)
        return net.eval()


def read_snapshot(source: str | os.PathLike | dict, input_offset: float | None = None
                  ) -> Snapshot:
    """Read and check a ConvNetJS snapshot file (or its parsed JSON).

    ``input_offset`` is added to convscope's ``byte/255 - 0.5`` inputs by the network's input
    layer (0.5 for networks trained on ``byte/255``, as ConvNetJS's MNIST demo did); None
    takes the input layer's ``input_offset`` (written by convscope's export), else 0.
    Any problem raises SnapshotError naming the layer.
    """
    if isinstance(source, dict):
        name, digest, data = "<snapshot>", None, source
    else:
        path = Path(source)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise SnapshotError(f"cannot read ConvNetJS snapshot '{path}': "
                                f"{exc.strerror}") from None
        name, digest = path.name, hashlib.sha256(raw).hexdigest()
        data = _parse(name, raw)
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list) or not layers:
        raise SnapshotError(f"{name}: a ConvNetJS snapshot is an object with a non-empty "
                            "'layers' list (what Net.toJSON() returns)")
    spec, state = _convert(name, layers, input_offset)
    snapshot = Snapshot(name, digest, spec, state)
    try:
        snapshot.model()
    except SpecError as exc:
        raise SnapshotError(f"{name}: {exc}") from None
    return snapshot


def _parse(name: str, raw: bytes) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"{name}: not a text (UTF-8) file: {exc}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise SnapshotError(f"{name}: nested too deeply to be a ConvNetJS snapshot") from None
    except json.JSONDecodeError as exc:
        begun = re.findall(r'"layer_type"\s*:\s*"([^"]*)"', text[: exc.pos])
        where = f" after layer {len(begun) - 1} ({begun[-1]}) began" if begun else ""
        cut = "; the file is cut short (truncated)" if exc.pos >= len(text.rstrip()) else ""
        raise SnapshotError(f"{name}: not valid JSON{where}: {exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno}{cut}") from None


def _convert(name: str, layers: list, input_offset: float | None
             ) -> tuple[list[dict], dict[str, torch.Tensor]]:
    spec: list[dict] = []
    state: dict[str, torch.Tensor] = {}
    volume: Volume | None = None
    for i, layer in enumerate(layers):
        kind = layer.get("layer_type") if isinstance(layer, dict) else None
        at = _Layer(f"{name}: layer {i} ({kind if isinstance(kind, str) else '?'})", layer)
        at.check_type(kind, i, len(layers), spec)
        if kind == "input":
            definition, out, tensors = at.input(input_offset)
        else:
            read = getattr(at, kind, None) or at.fields_only  # a method per kind with weights
            definition, out, tensors = read(volume)
        at.check_stored(out)
        if kind == "softmax":
            spec[-1] = definition
        else:
            spec.append(definition)
        state.update({f"blocks.{i}.{key}": value for key, value in tensors.items()})
        volume = out
    return spec, state


class _Layer:
    """One snapshot layer being converted; every error names it (``where``)."""

    def __init__(self, where: str, data: object) -> None:
        self.where, self.data = where, data

    def fail(self, message: str) -> SnapshotError:
        return SnapshotError(f"{self.where}: {message}")

    def check_type(self, kind: object, i: int, count: int, spec: list[dict]) -> None:
        if not isinstance(self.data, dict) or not isinstance(kind, str):
            raise self.fail("a layer must be an object with a 'layer_type'")
        if kind in NOT_SUPPORTED:
            raise self.fail(f"ConvNetJS's {kind} layer has no convscope equivalent; convscope "
                            f"imports {', '.join(SUPPORTED)}")
        if kind not in SUPPORTED:
            raise self.fail(f"unknown layer type {kind!r}; convscope imports "
                            f"{', '.join(SUPPORTED)}")
        if (kind == "input") != (i == 0):
            raise self.fail("the first layer, and only the first, must be 'input'")
        if kind == "softmax" and (i < count - 1 or spec[-1]["type"] != "fc"):
            raise self.fail("softmax must be the last layer and follow an fc layer "
                            "(as ConvNetJS's makeLayers builds it)")

    def integer(self, key: str, default: int | None = None, low: int = 1) -> int:
        value = self.data.get(key, default)
        if value is None:
            raise self.fail(f"missing '{key}'")
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise self.fail(f"'{key}' must be an integer >= {low}, got {value!r}")
        return value

    def check_stored(self, out: Volume) -> None:
        """The stored out_sx/out_sy/out_depth must be the volume the layer computes."""
        stored = tuple(self.data.get(k) for k in ("out_sx", "out_sy", "out_depth"))
        if stored != (out.sx, out.sy, out.depth):
            shown = "x".join(str(v) for v in stored)
            raise self.fail(f"stored output size {shown} does not fit: on its input it makes "
                            f"{out}")

    def vol(self, what: str, key_or_value: object, shape: tuple[int, int, int]) -> np.ndarray:
        """The values of a Vol that must be ``shape`` (sx, sy, depth), in storage order."""
        vol = self.data.get(key_or_value) if isinstance(key_or_value, str) else key_or_value
        if not isinstance(vol, dict):
            raise self.fail(f"{what} must be a Vol object {{sx, sy, depth, w}}")
        size = tuple(vol.get(k) for k in ("sx", "sy", "depth"))
        if size != shape:
            raise self.fail(f"{what} is a {'x'.join(map(str, size))} Vol, but the layer needs "
                            f"{'x'.join(map(str, shape))}")
        w, n = vol.get("w"), math.prod(shape)
        if isinstance(w, dict) and len(w) == n:
            missing = next((k for k in range(n) if str(k) not in w), None)
            if missing is not None:
                raise self.fail(f"{what}: its 'w' object lacks index {missing}")
            w = [w[str(k)] for k in range(n)]
        if not isinstance(w, list | dict):
            raise self.fail(f"{what}: 'w' must be an array or an object keyed '0'..'{n - 1}'")
        if len(w) != n:
            raise self.fail(f"{what} holds {len(w)} weights, but a "
                            f"{'x'.join(map(str, shape))} Vol has {n}")
        bad = next((k for k, v in enumerate(w) if type(v) not in (int, float)
                    or not math.isfinite(v)), None)
        if bad is not None:
            raise self.fail(f"{what}: weight {bad} is {w[bad]!r}, not a finite number")
        return np.asarray(w, dtype=np.float64)

    def filters(self, count: int, shape: tuple[int, int, int]) -> list[np.ndarray]:
        filters = self.data.get("filters")
        if not isinstance(filters, list) or len(filters) != count:
            found = len(filters) if isinstance(filters, list) else "no"
            raise self.fail(f"has {found} filters, but out_depth says {count}")
        return [self.vol(f"filter {k}", f, shape) for k, f in enumerate(filters)]

    def check_in_depth(self, volume: Volume) -> None:
        if self.integer("in_depth", volume.depth) != volume.depth:
            raise self.fail(f"in_depth is {self.data['in_depth']}, but its input is {volume}")

    # ---- one method per layer type: (spec definition, output volume, tensors) ----------

    def input(self, offset: float | None) -> tuple[dict, Volume, dict]:
        volume = Volume(self.integer("out_sx"), self.integer("out_sy"), self.integer("out_depth"))
        offset = self.data.get("input_offset", 0) if offset is None else offset
        if type(offset) not in (int, float) or not math.isfinite(offset):
            raise self.fail(f"input_offset must be a finite number, got {offset!r}")
        definition = {"type": "input", "sx": volume.sx, "sy": volume.sy, "depth": volume.depth}
        return ({**definition, "offset": offset} if offset else definition), volume, {}

    def conv(self, volume: Volume) -> tuple[dict, Volume, dict]:
        count = self.integer("out_depth")
        sx, sy, stride, pad, out = self.window(volume, 1, count)
        filters = self.filters(count, (sx, sy, volume.depth))
        weight = np.stack([f.reshape(sy, sx, volume.depth).transpose(2, 0, 1) for f in filters])
        bias = self.vol("biases", "biases", (1, 1, count))
        definition = {"type": "conv", "sx": sx, "sy": sy, "filters": count, "stride": stride,
                      "pad": pad}
        return definition, out, {"weight": torch.from_numpy(weight),
                                 "bias": torch.from_numpy(bias)}

    def pool(self, volume: Volume) -> tuple[dict, Volume, dict]:
        sx, sy, stride, pad, out = self.window(volume, 2, volume.depth)
        return ({"type": "pool", "sx": sx, "sy": sy, "stride": stride, "pad": pad,
                 "kind": "max"}, out, {})

    def window(self, volume: Volume, default_stride: int, depth: int
               ) -> tuple[int, int, int, int, Volume]:
        """A conv/pool window's sx, sy, stride, pad and output volume (ConvNetJS defaults)."""
        sx = self.integer("sx")
        sy, stride = self.integer("sy", sx), self.integer("stride", default_stride)
        pad = self.integer("pad", 0, low=0)
        self.check_in_depth(volume)
        try:
            out = window_output(volume, sx, sy, stride, pad, depth, "window")
        except SpecError as e:
            raise self.fail(str(e)) from None
        return sx, sy, stride, pad, out

    def fc(self, volume: Volume) -> tuple[dict, Volume, dict]:
        count, inputs = self.integer("out_depth"), self.integer("num_inputs", volume.numel)
        if inputs != volume.numel:
            raise self.fail(f"num_inputs is {inputs}, but its input {volume} has "
                            f"{volume.numel} values")
        filters = self.filters(count, (1, 1, inputs))
        weight = np.stack([f.reshape(volume.sy, volume.sx, volume.depth).transpose(2, 0, 1)
                           .ravel() for f in filters])
        bias = self.vol("biases", "biases", (1, 1, count))
        return ({"type": "fc", "num_neurons": count}, Volume(1, 1, count),
                {"weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias)})

    def fields_only(self, volume: Volume) -> tuple[dict, Volume, dict]:
        """A kind without weights whose JSON holds its spec fields by name (lrn's k, n, alpha,
        beta): read by its :class:`~convscope.layer_kinds.LayerKind`, no method of its own."""
        kind = layer_kind(self.data["layer_type"])
        if kind.has_weights:
            raise self.fail(f"convscope cannot read the weights of a {kind.name} layer")
        definition = {"type": kind.name}
        for name, field in kind.fields.items():
            if name not in self.data:
                if field.default is REQUIRED:
                    raise self.fail(f"missing '{name}'")
                continue
            if not field.ok(self.data[name]):
                raise self.fail(f"'{name}' must be {field.expect}, got {self.data[name]!r}")
            definition[name] = self.data[name]
        try:
            out = kind.output(definition, volume)
        except SpecError as e:
            raise self.fail(str(e)) from None
        return definition, out, {}

    def relu(self, volume: Volume) -> tuple[dict, Volume, dict]:
        return {"type": self.data["layer_type"]}, volume, {}

    sigmoid = tanh = relu

    def dropout(self, volume: Volume) -> tuple[dict, Volume, dict]:
        p = self.data.get("drop_prob", 0.5)
        if type(p) not in (int, float) or not 0 <= p < 1:
            raise self.fail(f"drop_prob must be a number in [0, 1), got {p!r}")
        return {"type": "dropout", "drop_prob": p, "scaling": "convnetjs"}, volume, {}

    def softmax(self, volume: Volume) -> tuple[dict, Volume, dict]:
        inputs = self.integer("num_inputs", volume.numel)
        if inputs != volume.numel:
            raise self.fail(f"num_inputs is {inputs}, but its input {volume} has "
                            f"{volume.numel} values")
        return {"type": "softmax", "num_classes": volume.depth}, volume, {}
