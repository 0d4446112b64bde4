"""Network specs: plain lists of layer definitions in ConvNetJS's vocabulary.

A spec is a list of dicts, each with a ``type`` and ConvNetJS's field names, e.g.
``[{"type": "input", "sx": 28, "sy": 28, "depth": 1}, {"type": "conv", "sx": 5, "filters": 8}]``.
:func:`resolve` validates a spec completely, expands ConvNetJS's sugar (as its ``makeLayers``
does) and reports every layer's output volume, parameter count and multiply-adds, as each
layer's kind in :mod:`convscope.layer_kinds` describes them. This module does not need torch;
:mod:`convscope.model` builds the network.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from convscope.errors import SpecError
from convscope.layer_kinds import (
    REQUIRED,
    SAME_AS_SX,
    LayerKind,
    Volume,
    layer_kind,
    layer_kinds,
)

SPEC_SUFFIXES = (".json", ".yaml", ".yml")
DOCUMENT_KEYS = ("layers", "name", "description", "dataset", "recipe")
MAX_NESTING = 32  # residual blocks inside residual blocks
MAX_LAYERS = 2_000  # layer definitions, those inside residual blocks included
MAX_VALUES = 100_000  # every list, mapping and value of a spec document


@dataclass(frozen=True)
class Layer:
    """One resolved layer. ``index`` is its position in the resolved (sugar-expanded) list,
    or inside its residual block for ``children``. ``num_params`` and ``macs`` (multiply-adds
    for one example) are counted as its :class:`~convscope.layer_kinds.LayerKind` says."""

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
    check_size(data)
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
        except RecursionError:
            raise SpecError(_too_deep()) from None
        try:
            return yaml.safe_load(source)
        except yaml.YAMLError as e:
            raise SpecError(f"the spec text is neither valid JSON nor YAML: {e}") from e
        except RecursionError:
            raise SpecError(_too_deep()) from None
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
    except RecursionError:
        raise SpecError(f"spec file '{path}': {_too_deep()}") from None


def check_size(data: object) -> None:
    """Refuse a spec (or spec document) with more than :data:`MAX_NESTING` residual blocks
    inside each other, :data:`MAX_LAYERS` layers or :data:`MAX_VALUES` values, before anything
    walks it recursively: this walk is iterative and stops at the first limit passed."""
    stack, layers, values = [(data, 0, 0)], 0, 0  # (value, lists and mappings around, blocks)
    while stack:
        value, depth, blocks = stack.pop()
        values += 1
        if blocks > MAX_NESTING or depth > 2 * MAX_NESTING + 8:
            raise SpecError(_too_deep())
        if values > MAX_VALUES:
            raise SpecError(f"the spec holds more than {MAX_VALUES:,} values; a spec is a list "
                            "of layer definitions of a few fields each")
        if isinstance(value, dict):
            layers += "type" in value
            stack.extend((item, depth + 1, blocks + (key == "layers" and "type" in value))
                         for key, item in value.items())
        elif isinstance(value, list):
            layers += len(value) if len(value) > MAX_LAYERS else 0  # refused without a walk
            stack.extend((item, depth + 1, blocks) for item in value[:MAX_LAYERS + 1])
        if layers > MAX_LAYERS:
            raise SpecError(f"the spec has more than {MAX_LAYERS:,} layers (counting those in "
                            f"residual blocks); convscope builds networks of at most "
                            f"{MAX_LAYERS:,}")


def _too_deep() -> str:
    return (f"the spec is nested too deeply: at most {MAX_NESTING} residual blocks inside each "
            "other are allowed; flatten the network")


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
    check_size(spec)
    return _resolve_list(spec, None, "")


def _resolve_list(defs: list, volume: Volume | None, outer: str) -> list[Layer]:
    """Resolve ``defs`` applied to ``volume``; ``outer`` prefixes messages in residual blocks."""
    layers: list[Layer] = []
    for i, definition in enumerate(defs):
        where = f"{outer}layer {i} ({_type_name(definition)})"
        kind = layer_kind(_check_type(where, definition))
        _check_position(where, kind.name, i, len(defs), nested=bool(outer))
        values = _read_fields(where, kind, definition)
        expanded = kind.expand(values) if kind.expand else [(kind.name, values)]
        for sub_kind, params in expanded:
            layer = _make_layer(where, layer_kind(sub_kind), params, volume, layers, bool(outer))
            layers.append(layer)
            volume = layer.out_volume
    return layers


def _earlier_output(where: str, kind: str, source: int, earlier: list[Layer],
                    nested: bool) -> Volume:
    """The output volume of the earlier layer ``source`` that a concat or branch reads,
    checked."""
    if nested:
        raise SpecError(f"{where}: {kind} cannot be used inside a residual block")
    if source >= len(earlier):
        raise SpecError(f"{where}: 'from' must name an earlier layer (0-{len(earlier) - 1} in the "
                        f"resolved list, see `convscope summary`), got {source}")
    return earlier[source].out_volume


def _concat_source(where: str, source: int, earlier: list[Layer], volume: Volume | None,
                   nested: bool) -> Volume:
    """The output volume of the layer a concat stacks onto its input, checked."""
    skip = _earlier_output(where, "concat", source, earlier, nested)
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
    known = [k.name for k in layer_kinds()]
    if kind not in known:
        raise SpecError(f"{where}: unknown layer type {kind!r}{_suggest(kind, known)}; "
                        f"known types: {', '.join(known)}")
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


def _read_fields(where: str, kind: LayerKind, definition: dict) -> dict[str, Any]:
    """Check every field of ``definition`` and fill in defaults, in the kind's field order."""
    fields = kind.fields
    values: dict[str, Any] = {}
    for key, value in definition.items():
        if key == "type":
            continue
        name = kind.aliases.get(key, key)
        if name not in fields:
            accepted = [*fields, *kind.aliases]
            listing = (f"{kind.name} accepts: {', '.join(accepted)}" if fields
                       else f"{kind.name} takes none")
            raise SpecError(f"{where}: unknown field {key!r}{_suggest(key, accepted)}; {listing}")
        if name in values:
            raise SpecError(f"{where}: '{name}' is given twice (once as '{key}')")
        if not fields[name].ok(value):
            raise SpecError(f"{where}: {name} must be {fields[name].expect}, got {value!r}")
        values[name] = value
    for name, field in fields.items():
        if name in values or field.default is None:
            continue
        if field.default is REQUIRED:
            raise SpecError(f"{where}: missing field '{name}'")
        values[name] = values["sx"] if field.default is SAME_AS_SX else field.default
    return {name: values[name] for name in fields if name in values}


def _make_layer(where: str, kind: LayerKind, params: dict[str, Any], volume: Volume | None,
                earlier: list[Layer], nested: bool) -> Layer:
    """A layer of ``kind`` applied to ``volume`` (None only for the input layer), following
    the ``earlier`` layers of its list. residual and concat refer to other layers."""
    index = len(earlier)
    if kind.name == "residual":
        return _residual(where, index, volume, params["layers"])
    if kind.name == "concat":
        skip = _concat_source(where, params["from"], earlier, volume, nested)
        return Layer(index, kind.name, params, volume,
                     Volume(volume.sx, volume.sy, volume.depth + skip.depth), 0, 0)
    if kind.name == "branch":
        return Layer(index, kind.name, params, volume,
                     _earlier_output(where, "branch", params["from"], earlier, nested), 0, 0)
    try:
        out = kind.output(params, volume)
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None
    if volume is None:
        return Layer(index, kind.name, params, None, out, 0, 0)
    num_params = kind.num_params(params, volume) if kind.num_params else 0
    macs = kind.macs(params, volume, out) if kind.macs else 0
    return Layer(index, kind.name, params, volume, out, num_params, macs)


def _residual(where: str, index: int, volume: Volume, defs: list) -> Layer:
    """A residual block: output = input + inner(input), the inner layers resolved as children."""
    children = tuple(_resolve_list(defs, volume, f"{where}, inner "))
    if children[-1].out_volume != volume:
        raise SpecError(f"{where}: the inner layers turn the {volume} input volume into "
                        f"{children[-1].out_volume}; a residual block (output = input + "
                        "inner(input)) must keep the volume unchanged")
    return Layer(index, "residual", {}, volume, volume, sum(c.num_params for c in children),
                 sum(c.macs for c in children), children)


# ---- message helpers -----------------------------------------------------------------------


def _suggest(word: object, options: tuple[str, ...] | list[str]) -> str:
    """' (did you mean 'x'?)' for the closest option, or ''."""
    matches = difflib.get_close_matches(word, options, n=1) if isinstance(word, str) else []
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


# ---- memory --------------------------------------------------------------------------------


def activation_values(layers: list[Layer] | tuple[Layer, ...]) -> int:
    """The values ``layers`` output for one example, residual blocks' inner layers included:
    about what training keeps per example for the backward pass (multiply by the batch size
    and the bytes per value). Pure arithmetic on the resolved spec: nothing is allocated."""
    return sum(layer.out_volume.numel + activation_values(layer.children) for layer in layers)
