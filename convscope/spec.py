"""Network specs: plain lists of layer definitions in ConvNetJS's vocabulary.

A spec is a list of dicts, each with a ``type`` and ConvNetJS's field names, e.g.
``[{"type": "input", "sx": 28, "sy": 28, "depth": 1}, {"type": "conv", "sx": 5, "filters": 8}]``.
:func:`resolve` validates a spec completely, expands ConvNetJS's sugar (as its ``makeLayers``
does) and reports every layer's output volume, parameter count and multiply-adds. This module
does not need torch; :mod:`convscope.model` builds the network.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from convscope.errors import SpecError

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu")
POOL_KINDS = ("max", "avg")
DROPOUT_SCALINGS = ("inverted", "convnetjs")
CONV_INITS = ("dirac", "whiten")
SPEC_SUFFIXES = (".json", ".yaml", ".yml")
DOCUMENT_KEYS = ("layers", "name", "description", "dataset", "recipe")


@dataclass(frozen=True)
class Volume:
    """A W x H x D volume of activations (ConvNetJS's sx, sy, depth)."""

    sx: int
    sy: int
    depth: int

    def __str__(self) -> str:
        return f"{self.sx}x{self.sy}x{self.depth}"

    @property
    def numel(self) -> int:
        return self.sx * self.sy * self.depth

    @property
    def shape(self) -> tuple[int, int, int]:
        """PyTorch's per-example shape: (depth, sy, sx)."""
        return (self.depth, self.sy, self.sx)


@dataclass(frozen=True)
class Layer:
    """One resolved layer. ``index`` is its position in the resolved (sugar-expanded) list,
    or inside its residual block for ``children``. ``macs`` are multiply-adds for one example,
    counted for conv and fc only."""

    index: int
    type: str
    params: dict
    in_volume: Volume | None
    out_volume: Volume
    num_params: int
    macs: int
    children: tuple[Layer, ...] = ()


# ---- loading -------------------------------------------------------------------------------


def load_spec(source: list[dict] | dict | str | os.PathLike) -> list[dict]:
    """Return the layer list of a spec given as a Python list, a path to a .json/.yaml/.yml
    file, or JSON/YAML text; the document may be a bare list or a mapping with ``layers``.
    The result is a fresh copy; it is not validated (see :func:`resolve`)."""
    return load_spec_document(source)["layers"]


def load_spec_document(source: list[dict] | dict | str | os.PathLike) -> dict[str, Any]:
    """Like :func:`load_spec`, but return the whole document as a mapping: ``layers`` plus the
    optional ``name``, ``description``, ``dataset`` and ``recipe`` a spec file may carry."""
    data = _read(source)
    if isinstance(data, list):
        data = {"layers": data}
    if not isinstance(data, dict):
        raise SpecError("a spec must be a list of layer definitions or a mapping with 'layers', "
                        f"got {_describe(data)}")
    for key in data:
        if key not in DOCUMENT_KEYS:
            raise SpecError(f"unknown top-level key {key!r} in the spec"
                            f"{_suggest(key, DOCUMENT_KEYS)}; allowed: {', '.join(DOCUMENT_KEYS)}")
    if not isinstance(data.get("layers"), list):
        raise SpecError("a spec mapping needs 'layers': a list of layer definitions")
    return copy.deepcopy(data)


def _read(source: object) -> object:
    if isinstance(source, list | dict):
        return source
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source
        and Path(source.strip()).suffix.lower() in SPEC_SUFFIXES
    ):
        return _read_file(Path(os.fspath(source).strip()))
    if isinstance(source, str):
        try:
            return json.loads(source)
        except ValueError:
            pass
        try:
            return yaml.safe_load(source)
        except yaml.YAMLError as e:
            raise SpecError(f"the spec text is neither valid JSON nor YAML: {e}") from e
    raise SpecError(f"cannot load a spec from {_describe(source)}")


def _read_file(path: Path) -> object:
    if path.suffix.lower() not in SPEC_SUFFIXES:
        raise SpecError(f"spec file '{path}' must end in {', '.join(SPEC_SUFFIXES)}")
    if not path.is_file():
        raise SpecError(f"spec file '{path}' does not exist")
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise SpecError(f"cannot read spec file '{path}': {e}") from e


# ---- layer vocabulary ----------------------------------------------------------------------

_REQUIRED = object()
_SAME_AS_SX = object()


@dataclass(frozen=True)
class _Field:
    expect: str                      # completes "<field> must be ..."
    ok: Callable[[Any], bool]
    default: Any = _REQUIRED         # None: optional, left out of the resolved params


def _int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _positive(default: Any = _REQUIRED) -> _Field:
    return _Field("a positive integer", _int_at_least(1), default)


def _choice(options: tuple[str, ...], default: Any) -> _Field:
    return _Field("one of " + ", ".join(repr(o) for o in options),
                  lambda v: isinstance(v, str) and v in options, default)


def _flag(default: bool | None) -> _Field:
    return _Field("true or false", lambda v: isinstance(v, bool), default)


def _number(default: float | None) -> _Field:
    return _Field("a finite number",
                  lambda v: isinstance(v, int | float) and not isinstance(v, bool)
                  and abs(v) < float("inf"), default)


def _probability(default: float | None) -> _Field:
    return _Field("a number in [0, 1)",
                  lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1,
                  default)


_FIELDS: dict[str, dict[str, _Field]] = {
    # offset (optional): added to every input value; 0.5 turns convscope's byte/255 - 0.5 into
    # the byte/255 that ConvNetJS's own MNIST demo fed its networks
    "input": {"sx": _positive(), "sy": _positive(), "depth": _positive(), "offset": _number(None)},
    "conv": {"sx": _positive(), "sy": _positive(_SAME_AS_SX), "filters": _positive(),
             "stride": _positive(1), "pad": _Field("a non-negative integer", _int_at_least(0), 0),
             "bias": _flag(True), "activation": _choice(ACTIVATIONS, None),
             "drop_prob": _probability(None),
             # init (optional): "dirac" starts the first filters as the identity (each passes one
             # input channel through); "whiten" sets the filters, before training, to whiten the
             # input's patches (each eigenvector of their covariance and its negative, scaled by
             # 1/sqrt(eigenvalue)) and keeps them fixed: airbench's first layer
             "init": _choice(CONV_INITS, None)},
    "pool": {"sx": _positive(), "sy": _positive(_SAME_AS_SX), "stride": _positive(2),
             "pad": _Field("a non-negative integer", _int_at_least(0), 0),
             "kind": _choice(POOL_KINDS, "max")},
    "global_pool": {"kind": _choice(POOL_KINDS, "max")},
    # scale (optional): the outputs are multiplied by it (a small scale on the class scores
    # slows their learning, as airbench's 1/9)
    "fc": {"num_neurons": _positive(), "bias": _flag(True),
           "activation": _choice(ACTIVATIONS, None), "drop_prob": _probability(None),
           "scale": _number(None)},
    **{name: {} for name in ACTIVATIONS},
    # scale false: the per-channel scale stays 1 (not trained), only the shift is learned;
    # momentum: the weight of each batch in the running statistics used for prediction
    # (PyTorch's convention; default 0.1)
    "batchnorm": {"scale": _flag(None), "momentum": _Field(
        "a number in (0, 1]", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
        and 0 < v <= 1, None)},
    # scaling (optional): "inverted" (PyTorch, the default) or "convnetjs" (no rescaling in
    # training, outputs multiplied by drop_prob at prediction, as ConvNetJS does)
    "dropout": {"drop_prob": _probability(0.5), "scaling": _choice(DROPOUT_SCALINGS, None)},
    # bias and scale (optional) go to the fc of num_classes that softmax puts before itself
    "softmax": {"num_classes": _positive(), "bias": _flag(None), "scale": _number(None)},
    "residual": {"layers": _Field("a non-empty list of layer definitions",
                                  lambda v: isinstance(v, list) and len(v) > 0)},
    # nearest-neighbour upsampling by an integer factor (the decoder of a segmentation net)
    "upsample": {"factor": _positive(2)},
    # skip connection: stack the output of the earlier layer ``from`` (its index in the resolved
    # list, as `convscope summary` numbers it) onto this layer's input, along the depth
    "concat": {"from": _Field("a non-negative integer", _int_at_least(0))},
}
LAYER_TYPES = tuple(_FIELDS)
_INPUT_ALIASES = {"out_sx": "sx", "out_sy": "sy", "out_depth": "depth"}  # ConvNetJS's names


# ---- resolving -----------------------------------------------------------------------------


def resolve(spec: list[dict]) -> list[Layer]:
    """Validate ``spec`` and resolve it into layers with volumes, parameters and multiply-adds.

    ConvNetJS sugar is expanded: ``activation`` on conv/fc adds the activation layer after it,
    ``drop_prob`` on conv/fc adds a dropout layer after that, and ``softmax`` always gets an fc
    of ``num_classes`` inserted before it. ``Layer.index`` is therefore the position in the
    resolved list, while error messages name a layer by its position in ``spec`` (the user's
    list) as ``layer <index> (<type>): <reason>``. The first problem found raises SpecError.
    """
    if not isinstance(spec, list) or not spec:
        raise SpecError("a spec must be a non-empty list of layer definitions, "
                        f"got {_describe(spec)}")
    return _resolve_list(spec, None, "")


def _resolve_list(defs: list, volume: Volume | None, outer: str) -> list[Layer]:
    """Resolve ``defs`` applied to ``volume``; ``outer`` prefixes messages in residual blocks."""
    layers: list[Layer] = []
    for i, definition in enumerate(defs):
        where = f"{outer}layer {i} ({_type_name(definition)})"
        kind = _check_type(where, definition)
        _check_position(where, kind, i, len(defs), nested=bool(outer))
        values = _read_fields(where, kind, definition)
        for sub_kind, params in _expand(kind, values):
            if sub_kind == "concat":
                skip = _concat_source(where, params["from"], layers, volume, nested=bool(outer))
                layer = Layer(len(layers), sub_kind, params, volume,
                              Volume(volume.sx, volume.sy, volume.depth + skip.depth), 0, 0)
            else:
                layer = _make_layer(where, len(layers), sub_kind, params, volume)
            layers.append(layer)
            volume = layer.out_volume
    return layers


def _concat_source(where: str, source: int, earlier: list[Layer], volume: Volume | None,
                   nested: bool) -> Volume:
    """The output volume of the layer a concat stacks onto its input, checked."""
    if nested:
        raise SpecError(f"{where}: concat cannot be used inside a residual block")
    if source >= len(earlier):
        raise SpecError(f"{where}: 'from' must name an earlier layer (0-{len(earlier) - 1} in the "
                        f"resolved list, see `convscope summary`), got {source}")
    skip = earlier[source].out_volume
    if volume is None or (skip.sx, skip.sy) != (volume.sx, volume.sy):
        raise SpecError(f"{where}: layer {source} outputs {skip} but this layer's input is "
                        f"{volume}; concat needs the same width and height")
    return skip


def _type_name(definition: object) -> str:
    kind = definition.get("type") if isinstance(definition, dict) else None
    return kind if isinstance(kind, str) else "?"


def _check_type(where: str, definition: object) -> str:
    if not isinstance(definition, dict):
        raise SpecError(f"{where}: a layer definition must be a mapping with a 'type', "
                        f"got {_describe(definition)}")
    if "type" not in definition:
        hint = (" (it has 'layer_type': this looks like a ConvNetJS snapshot, not a spec)"
                if "layer_type" in definition else "")
        raise SpecError(f"{where}: missing field 'type'{hint}")
    kind = definition["type"]
    if kind not in LAYER_TYPES:
        raise SpecError(f"{where}: unknown layer type {kind!r}{_suggest(kind, LAYER_TYPES)}; "
                        f"known types: {', '.join(LAYER_TYPES)}")
    return kind


def _check_position(where: str, kind: str, i: int, count: int, nested: bool) -> None:
    if kind == "input" and nested:
        raise SpecError(f"{where}: a residual block cannot contain an 'input' layer")
    if kind == "input" and i > 0:
        raise SpecError(f"{where}: only the first layer may be 'input'")
    if kind != "input" and i == 0 and not nested:
        raise SpecError(f"{where}: the first layer must be 'input'")
    if kind == "softmax" and (nested or i < count - 1):
        raise SpecError(f"{where}: softmax must be the last layer of the network "
                        "(it is the loss layer)")


def _read_fields(where: str, kind: str, definition: dict) -> dict[str, Any]:
    """Check every field of ``definition`` and fill in defaults, in the vocabulary's order."""
    fields = _FIELDS[kind]
    values: dict[str, Any] = {}
    for key, value in definition.items():
        if key == "type":
            continue
        name = _INPUT_ALIASES.get(key, key) if kind == "input" else key
        if name not in fields:
            accepted = [*fields, *(_INPUT_ALIASES if kind == "input" else ())]
            listing = f"{kind} accepts: {', '.join(accepted)}" if fields else f"{kind} takes none"
            raise SpecError(f"{where}: unknown field {key!r}{_suggest(key, accepted)}; {listing}")
        if name in values:
            raise SpecError(f"{where}: '{name}' is given twice (once as '{key}')")
        if not fields[name].ok(value):
            raise SpecError(f"{where}: {name} must be {fields[name].expect}, got {value!r}")
        values[name] = value
    for name, field in fields.items():
        if name in values or field.default is None:
            continue
        if field.default is _REQUIRED:
            raise SpecError(f"{where}: missing field '{name}'")
        values[name] = values["sx"] if field.default is _SAME_AS_SX else field.default
    return {name: values[name] for name in fields if name in values}


def _expand(kind: str, values: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """ConvNetJS's makeLayers sugar: one definition -> (type, params) of the layers it makes."""
    if kind == "softmax":
        scale = {"scale": values["scale"]} if "scale" in values else {}
        fc = {"num_neurons": values["num_classes"], "bias": values.get("bias", True), **scale}
        return [("fc", fc), ("softmax", {"num_classes": values["num_classes"]})]
    if kind not in ("conv", "fc"):
        return [(kind, values)]
    activation = values.pop("activation", None)
    drop_prob = values.pop("drop_prob", None)
    expanded = [(kind, values)]
    if activation is not None:
        expanded.append((activation, {}))
    if drop_prob is not None:
        expanded.append(("dropout", {"drop_prob": drop_prob}))
    return expanded


def _make_layer(where: str, index: int, kind: str, params: dict[str, Any],
                volume: Volume | None) -> Layer:
    """The layer ``kind`` applied to ``volume`` (None only for the input layer)."""
    if kind == "input":
        return Layer(index, kind, params, None, Volume(params["sx"], params["sy"], params["depth"]),
                     0, 0)
    assert volume is not None  # _check_position puts the input layer first
    num_params = macs = 0
    children: tuple[Layer, ...] = ()
    out = volume
    if kind == "conv":
        out = _window_output(where, "filter", params, volume, params["filters"])
        weights = params["sx"] * params["sy"] * volume.depth
        if params.get("init") == "whiten" and params["filters"] != 2 * weights:
            raise SpecError(f"{where}: init 'whiten' needs 2 x {params['sx']} x {params['sy']} x "
                            f"{volume.depth} = {2 * weights} filters (each patch direction and its "
                            f"negative), got {params['filters']}")
        num_params = params["filters"] * (weights + int(params["bias"]))
        macs = out.numel * weights
    elif kind == "pool":
        if 2 * params["pad"] > min(params["sx"], params["sy"]):
            raise SpecError(f"{where}: pad {params['pad']} is more than half the "
                            f"{params['sx']}x{params['sy']} window, which PyTorch pooling refuses")
        out = _window_output(where, "window", params, volume, volume.depth)
    elif kind == "global_pool":
        out = Volume(1, 1, volume.depth)
    elif kind == "fc":
        out = Volume(1, 1, params["num_neurons"])
        num_params = out.depth * (volume.numel + int(params["bias"]))
        macs = volume.numel * out.depth
    elif kind == "batchnorm":
        num_params = 2 * volume.depth
    elif kind == "upsample":
        out = Volume(volume.sx * params["factor"], volume.sy * params["factor"], volume.depth)
    elif kind == "residual":
        children = tuple(_resolve_list(params["layers"], volume, f"{where}, inner "))
        if children[-1].out_volume != volume:
            raise SpecError(f"{where}: the inner layers turn the {volume} input volume into "
                            f"{children[-1].out_volume}; a residual block (output = input + "
                            "inner(input)) must keep the volume unchanged")
        params = {}
        num_params = sum(child.num_params for child in children)
        macs = sum(child.macs for child in children)
    return Layer(index, kind, params, volume, out, num_params, macs, children)


def _window_output(where: str, what: str, params: dict[str, Any], volume: Volume,
                   depth: int) -> Volume:
    """Output volume of a conv/pool window: floor((in + 2*pad - f) / stride) + 1 per axis."""
    sx, sy, stride, pad = params["sx"], params["sy"], params["stride"], params["pad"]
    if volume.sx + 2 * pad < sx or volume.sy + 2 * pad < sy:
        raise SpecError(f"{where}: a {sx}x{sy} {what} with pad {pad} does not fit the "
                        f"{volume} input volume")
    return Volume((volume.sx + 2 * pad - sx) // stride + 1,
                  (volume.sy + 2 * pad - sy) // stride + 1, depth)


# ---- message helpers -----------------------------------------------------------------------


def _suggest(word: object, options: tuple[str, ...] | list[str]) -> str:
    """' (did you mean 'x'?)' for the closest option, or ''."""
    matches = difflib.get_close_matches(word, options, n=1) if isinstance(word, str) else []
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
