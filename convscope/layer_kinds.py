"""Layer kinds: one description per ``type`` a spec layer may have.

A :class:`LayerKind` says everything convscope knows about a kind of layer without torch: its
fields, ConvNetJS's sugar it expands, its output volume, parameter count and multiply-adds
(read by :mod:`convscope.spec`), its label (:mod:`convscope.summary`, the explorer), whether
it has weights to show, whether it may appear in an "ordinary" (fully connected) network, and
its ConvNetJS JSON (:mod:`convscope.convnetjs.export`). The torch module computing a kind is
registered beside it with :func:`convscope.layers.register_module`. Adding a layer kind::

    register_layer_kind(LayerKind("scale", {"by": number(1.0)}, label=lambda p: f"x{p['by']}"))
    register_module("scale", lambda layer: Scale(layer.params["by"]))

This module does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from convscope.errors import SpecError
from convscope.registries import Registry

if TYPE_CHECKING:
    from convscope.spec import Layer

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu")
POOL_KINDS = ("max", "avg")
DROPOUT_SCALINGS = ("inverted", "convnetjs")
CONV_INITS = ("dirac", "whiten")


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


def window_output(volume: Volume, sx: int, sy: int, stride: int, pad: int, depth: int,
                  what: str = "filter") -> Volume:
    """The output volume of a conv/pool window sliding over ``volume``: per axis
    floor((in + 2*pad - f) / stride) + 1. Raises SpecError when the window does not fit."""
    if volume.sx + 2 * pad < sx or volume.sy + 2 * pad < sy:
        raise SpecError(f"a {sx}x{sy} {what} with pad {pad} does not fit the {volume} input "
                        "volume")
    return Volume((volume.sx + 2 * pad - sx) // stride + 1,
                  (volume.sy + 2 * pad - sy) // stride + 1, depth)


# ---- fields --------------------------------------------------------------------------------

REQUIRED = object()  # a Field default: the field must be given
SAME_AS_SX = object()  # a Field default: the value of the layer's ``sx``


@dataclass(frozen=True)
class Field:
    """One field of a layer kind: ``ok`` checks a value, ``expect`` completes "<field> must be
    ..."; ``default`` is filled in when the field is left out (None: optional, left out of the
    resolved params; :data:`REQUIRED`: must be given)."""

    expect: str
    ok: Callable[[Any], bool]
    default: Any = REQUIRED


def _int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _real(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def positive(default: Any = REQUIRED) -> Field:
    return Field("a positive integer", _int_at_least(1), default)


def non_negative(default: Any = REQUIRED) -> Field:
    return Field("a non-negative integer", _int_at_least(0), default)


def choice(options: tuple[str, ...], default: Any) -> Field:
    return Field("one of " + ", ".join(repr(o) for o in options),
                 lambda v: isinstance(v, str) and v in options, default)


def flag(default: bool | None) -> Field:
    return Field("true or false", lambda v: isinstance(v, bool), default)


def number(default: float | None) -> Field:
    return Field("a finite number", lambda v: _real(v) and abs(v) < float("inf"), default)


def probability(default: float | None) -> Field:
    return Field("a number in [0, 1)", lambda v: _real(v) and 0 <= v < 1, default)


# ---- the description -----------------------------------------------------------------------

Params = dict[str, Any]


@dataclass(frozen=True)
class LayerKind:
    """What convscope knows about one kind of layer, named by the spec's ``type``.

    - ``fields``: its fields, in the order the resolved params keep; ``aliases``: other
      accepted field names (ConvNetJS's).
    - ``expand``: ConvNetJS's sugar, the (type, params) of the layers one definition makes
      (None: itself).
    - ``out``: its output volume for (params, input volume; None for the input layer), raising
      SpecError (without the layer's name) when the layer does not fit; None: the input volume.
    - ``num_params``: learned parameters for (params, input volume); ``macs``: multiply-adds
      per example for (params, input volume, output volume). None counts 0.
    - ``label``: the summary's label for its params (None: the name).
    - ``has_weights``: its module has a ``weight`` and ``bias`` that the explorer shows.
    - ``ordinary``: it may appear in an "ordinary" (fully connected) network.
    - ``convnetjs``: its ConvNetJS JSON for (layer, module), None to leave it out, raising
      :class:`NoConvNetJS` for params ConvNetJS lacks (None: ConvNetJS has no such layer).
    - ``example``: fields of a layer that fits an 8x8x4 input volume (the tests build every
      kind from it).
    - ``viewer_name``: its name in ConvnetViewer's style (``CONV``, ``MAX_POOL``), a string or
      a function of its params (None: the name in capitals); :func:`viewer_names` numbers them.
    """

    name: str
    fields: dict[str, Field] = field(default_factory=dict)
    out: Callable[[Params, Volume | None], Volume] | None = None
    num_params: Callable[[Params, Volume], int] | None = None
    macs: Callable[[Params, Volume, Volume], int] | None = None
    label: Callable[[Params], str] | None = None
    has_weights: bool = False
    ordinary: bool = False
    expand: Callable[[Params], list[tuple[str, Params]]] | None = None
    convnetjs: Callable[[Layer, Any], dict | None] | None = None
    example: Params = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    viewer_name: str | Callable[[Params], str] | None = None

    def output(self, params: Params, volume: Volume | None) -> Volume:
        """The output volume on ``volume`` (checked; see ``out``)."""
        if self.out is None:
            assert volume is not None
            return volume
        return self.out(params, volume)

    def label_of(self, params: Params) -> str:
        """The label of a layer of this kind, e.g. 'conv 5x5 x8 s1 p2'."""
        return self.name if self.label is None else self.label(params)

    def viewer_name_of(self, params: Params) -> str:
        """Its ConvnetViewer-style name without the number, e.g. 'MAX_POOL'."""
        if self.viewer_name is None:
            return self.name.upper()
        return self.viewer_name if isinstance(self.viewer_name, str) else self.viewer_name(params)


class NoConvNetJS(Exception):
    """Raised by a kind's ``convnetjs`` for a layer ConvNetJS cannot represent; the message
    completes "ConvNetJS has no ..."."""


_KINDS: Registry[LayerKind] = Registry("layer kind")


def register_layer_kind(kind: LayerKind) -> LayerKind:
    """Make ``kind`` known to specs, summaries, the explorer and the export; returns it."""
    return _KINDS.add(kind.name, kind)


def unregister_layer_kind(name: str) -> None:
    """Forget the layer kind ``name`` (for tests that register their own)."""
    _KINDS.remove(name)


def layer_kind(name: str) -> LayerKind:
    """The registered kind ``name`` (KeyError if there is none)."""
    return _KINDS[name]


def layer_kinds() -> tuple[LayerKind, ...]:
    """Every registered kind, in registration order."""
    return tuple(_KINDS.values())


def layer_label(layer: Layer) -> str:
    """A resolved layer's type with its key hyperparameters, e.g. 'conv 5x5 x8 s1 p2'."""
    return layer_kind(layer.type).label_of(layer.params)


def viewer_names(layers) -> list[str]:
    """ConvnetViewer-style names of resolved layers (anything with ``type`` and ``params``: a
    module's leaf of no registered kind is its class name in capitals), numbered per name in
    order: CONV_0, LOCAL_RESPONSE_NORM_0, MAX_POOL_0, CONV_1, ..., FC_0."""
    seen: dict[str, int] = {}
    names = []
    for layer in layers:
        base = layer_kind(layer.type).viewer_name_of(layer.params) \
            if layer.type in _KINDS else layer.type.upper()
        names.append(f"{base}_{seen.get(base, 0)}")
        seen[base] = seen.get(base, 0) + 1
    return names


# ---- ConvNetJS JSON helpers (duck-typed on the module's tensors: no torch import) ------------


def convnetjs_base(layer: Layer) -> dict:
    """The keys every ConvNetJS layer has: its output sizes and ``layer_type``."""
    out = layer.out_volume
    return {"out_sx": out.sx, "out_sy": out.sy, "out_depth": out.depth, "layer_type": layer.type}


def _vol(values: Any, sx: int, sy: int, depth: int) -> dict:
    """A Vol with ``values`` (a tensor) already in storage order ((sx*y)+x)*depth+d."""
    return {"sx": sx, "sy": sy, "depth": depth,
            "w": values.detach().cpu().double().flatten().tolist()}


def _biases(module: Any, count: int, scale: float = 1.0) -> dict:
    if module.bias is None:
        return {"sx": 1, "sy": 1, "depth": count, "w": [0.0] * count}
    return _vol(module.bias * scale, 1, 1, count)


def _window_json(layer: Layer) -> dict:
    p = layer.params
    return {"sx": p["sx"], "sy": p["sy"], "stride": p["stride"],
            "in_depth": layer.in_volume.depth, **convnetjs_base(layer), "pad": p["pad"]}


def _plain_json(layer: Layer, _module: Any) -> dict:
    return convnetjs_base(layer)


# ---- the built-in kinds --------------------------------------------------------------------


def _activation_sugar(kind: str) -> Callable[[Params], list[tuple[str, Params]]]:
    """conv/fc sugar: ``activation`` adds that layer after it, ``drop_prob`` a dropout after."""
    def expand(values: Params) -> list[tuple[str, Params]]:
        values = dict(values)
        activation = values.pop("activation", None)
        drop_prob = values.pop("drop_prob", None)
        expanded = [(kind, values)]
        if activation is not None:
            expanded.append((activation, {}))
        if drop_prob is not None:
            expanded.append(("dropout", {"drop_prob": drop_prob}))
        return expanded
    return expand


def _no_bias(p: Params) -> str:
    return "" if p.get("bias", True) else " nobias"


def _conv_out(p: Params, vin: Volume) -> Volume:
    out = window_output(vin, p["sx"], p["sy"], p["stride"], p["pad"], p["filters"])
    weights = p["sx"] * p["sy"] * vin.depth
    if p.get("init") == "whiten" and p["filters"] != 2 * weights:
        raise SpecError(f"init 'whiten' needs 2 x {p['sx']} x {p['sy']} x {vin.depth} = "
                        f"{2 * weights} filters (each patch direction and its negative), got "
                        f"{p['filters']}")
    return out


def _conv_json(layer: Layer, module: Any) -> dict:
    p, depth = layer.params, layer.in_volume.depth
    weight = module.weight.permute(0, 2, 3, 1)  # PyTorch [f, c, sy, sx] -> Vol storage (y, x, c)
    return {"sx": p["sx"], "sy": p["sy"], "stride": p["stride"], "in_depth": depth,
            **convnetjs_base(layer), "l1_decay_mul": 0.0, "l2_decay_mul": 1.0, "pad": p["pad"],
            "filters": [_vol(w, p["sx"], p["sy"], depth) for w in weight],
            "biases": _biases(module, p["filters"])}


CONV = LayerKind(
    "conv",
    {"sx": positive(), "sy": positive(SAME_AS_SX), "filters": positive(),
     "stride": positive(1), "pad": non_negative(0), "bias": flag(True),
     "activation": choice(ACTIVATIONS, None), "drop_prob": probability(None),
     # init (optional): "dirac" starts the first filters as the identity (each passes one
     # input channel through); "whiten" sets the filters, before training, to whiten the
     # input's patches (each eigenvector of their covariance and its negative, scaled by
     # 1/sqrt(eigenvalue)) and keeps them fixed: airbench's first layer
     "init": choice(CONV_INITS, None)},
    out=_conv_out,
    num_params=lambda p, vin: p["filters"] * (p["sx"] * p["sy"] * vin.depth + int(p["bias"])),
    macs=lambda p, vin, out: out.numel * p["sx"] * p["sy"] * vin.depth,
    label=lambda p: (f"conv {p['sx']}x{p['sy']} x{p['filters']} s{p['stride']} p{p['pad']}"
                     + _no_bias(p) + (f" {p['init']}" if p.get("init") else "")),
    has_weights=True, expand=_activation_sugar("conv"), convnetjs=_conv_json,
    example={"sx": 3, "sy": 2, "filters": 6, "stride": 2, "pad": 1})


def _pool_out(p: Params, vin: Volume) -> Volume:
    if 2 * p["pad"] > min(p["sx"], p["sy"]):
        raise SpecError(f"pad {p['pad']} is more than half the {p['sx']}x{p['sy']} window, "
                        "which PyTorch pooling refuses")
    return window_output(vin, p["sx"], p["sy"], p["stride"], p["pad"], vin.depth, "window")


def _pool_json(layer: Layer, _module: Any) -> dict:
    p = layer.params
    if p["kind"] != "max":
        raise NoConvNetJS("average pooling")
    return {"sx": p["sx"], "sy": p["sy"], "stride": p["stride"],
            "in_depth": layer.in_volume.depth, **convnetjs_base(layer), "pad": p["pad"]}


POOL = LayerKind(
    "pool",
    {"sx": positive(), "sy": positive(SAME_AS_SX), "stride": positive(2), "pad": non_negative(0),
     "kind": choice(POOL_KINDS, "max")},
    out=_pool_out,
    label=lambda p: f"pool {p['kind']} {p['sx']}x{p['sy']} s{p['stride']} p{p['pad']}",
    convnetjs=_pool_json, example={"sx": 3, "stride": 2, "pad": 1},
    viewer_name=lambda p: f"{p['kind'].upper()}_POOL")

GLOBAL_POOL = LayerKind(
    "global_pool", {"kind": choice(POOL_KINDS, "max")},
    out=lambda p, vin: Volume(1, 1, vin.depth), label=lambda p: f"global_pool {p['kind']}",
    example={"kind": "avg"}, viewer_name=lambda p: f"GLOBAL_{p['kind'].upper()}_POOL")


def _fc_json(layer: Layer, module: Any) -> dict:
    # convscope flattens (d, y, x); ConvNetJS reads the incoming Vol as (y, x, d); a scaled fc
    # is exported with the scale folded into its weights and biases
    p, vin = layer.params, layer.in_volume
    scale = p.get("scale", 1.0)
    weight = module.weight.reshape(-1, *vin.shape).permute(0, 2, 3, 1) * scale
    return {**convnetjs_base(layer), "num_inputs": vin.numel, "l1_decay_mul": 0.0,
            "l2_decay_mul": 1.0, "filters": [_vol(w, 1, 1, vin.numel) for w in weight],
            "biases": _biases(module, p["num_neurons"], scale)}


FC = LayerKind(
    "fc",
    # scale (optional): the outputs are multiplied by it (a small scale on the class scores
    # slows their learning, as airbench's 1/9)
    {"num_neurons": positive(), "bias": flag(True), "activation": choice(ACTIVATIONS, None),
     "drop_prob": probability(None), "scale": number(None)},
    out=lambda p, vin: Volume(1, 1, p["num_neurons"]),
    num_params=lambda p, vin: p["num_neurons"] * (vin.numel + int(p["bias"])),
    macs=lambda p, vin, out: vin.numel * p["num_neurons"],
    label=lambda p: (f"fc {p['num_neurons']}{_no_bias(p)}"
                     + (f" x{p['scale']:.3g}" if p.get("scale") is not None else "")),
    has_weights=True, ordinary=True, expand=_activation_sugar("fc"), convnetjs=_fc_json,
    example={"num_neurons": 5, "scale": 0.5})

ACTIVATION_KINDS = tuple(
    LayerKind(name, ordinary=True, convnetjs=None if name == "gelu" else _plain_json)
    for name in ACTIVATIONS)

BATCHNORM = LayerKind(
    "batchnorm",
    # scale false: the per-channel scale stays 1 (not trained), only the shift is learned;
    # momentum: the weight of each batch in the running statistics used for prediction
    # (PyTorch's convention; default 0.1)
    {"scale": flag(None),
     "momentum": Field("a number in (0, 1]", lambda v: _real(v) and 0 < v <= 1, None)},
    num_params=lambda p, vin: 2 * vin.depth,
    label=lambda p: "batchnorm shift only" if p.get("scale") is False else "batchnorm",
    ordinary=True, example={"scale": False})

DROPOUT = LayerKind(
    "dropout",
    # scaling (optional): "inverted" (PyTorch, the default) or "convnetjs" (no rescaling in
    # training, outputs multiplied by drop_prob at prediction, as ConvNetJS does); an inverted
    # dropout is the identity at prediction, so the ConvNetJS export leaves it out
    {"drop_prob": probability(0.5), "scaling": choice(DROPOUT_SCALINGS, None)},
    label=lambda p: f"dropout {p['drop_prob']:g}", ordinary=True,
    convnetjs=lambda layer, _module: ({**convnetjs_base(layer),
                                       "drop_prob": layer.params["drop_prob"]}
                                      if layer.params.get("scaling") == "convnetjs" else None),
    example={"drop_prob": 0.25, "scaling": "convnetjs"})


def _softmax_sugar(values: Params) -> list[tuple[str, Params]]:
    """softmax gets an fc of num_classes before itself (ConvNetJS's makeLayers)."""
    scale = {"scale": values["scale"]} if "scale" in values else {}
    fc = {"num_neurons": values["num_classes"], "bias": values.get("bias", True), **scale}
    return [("fc", fc), ("softmax", {"num_classes": values["num_classes"]})]


SOFTMAX = LayerKind(
    "softmax",
    # bias and scale (optional) go to the fc of num_classes that softmax puts before itself
    {"num_classes": positive(), "bias": flag(None), "scale": number(None)},
    label=lambda p: f"softmax {p['num_classes']}", ordinary=True, expand=_softmax_sugar,
    convnetjs=lambda layer, _module: {**convnetjs_base(layer),
                                      "num_inputs": layer.in_volume.numel},
    example={"num_classes": 5})


def _input_json(layer: Layer, _module: Any) -> dict:
    # ConvNetJS ignores input_offset (feed it byte/255 - 0.5 + input_offset); the import reads
    # it back
    offset = layer.params.get("offset")
    return {**convnetjs_base(layer), "input_offset": offset} if offset else convnetjs_base(layer)


INPUT = LayerKind(
    "input",
    # offset (optional): added to every input value; 0.5 turns convscope's byte/255 - 0.5 into
    # the byte/255 that ConvNetJS's own MNIST demo fed its networks
    {"sx": positive(), "sy": positive(), "depth": positive(), "offset": number(None)},
    out=lambda p, _vin: Volume(p["sx"], p["sy"], p["depth"]), ordinary=True,
    convnetjs=_input_json, aliases={"out_sx": "sx", "out_sy": "sy", "out_depth": "depth"},
    example={"sx": 8, "sy": 8, "depth": 4, "offset": 0.5})

def _lrn_json(layer: Layer, _module: Any) -> dict:
    p = layer.params
    return {"k": p["k"], "n": p["n"], "alpha": p["alpha"], "beta": p["beta"],
            **convnetjs_base(layer)}


LRN = LayerKind(
    "lrn",
    # local response normalisation across channels, as ConvNetJS computes it: each value a_i
    # divided by (k + alpha/n * sum of a_j^2 over j = i-floor(n/2) .. i+floor(n/2), clipped to
    # the channels that exist) ** beta. ConvNetJS divides alpha by n: the AlexNet paper's
    # alpha 1e-4 with n 5 is alpha 5e-4 here
    {"k": Field("a positive number", lambda v: _real(v) and 0 < v < float("inf")),
     "n": positive(),
     "alpha": Field("a non-negative number", lambda v: _real(v) and 0 <= v < float("inf")),
     "beta": number(REQUIRED)},
    label=lambda p: f"lrn n{p['n']} k{p['k']:g} a{p['alpha']:g} b{p['beta']:g}",
    convnetjs=_lrn_json, example={"k": 2, "n": 3, "alpha": 0.5, "beta": 0.75},
    viewer_name="LOCAL_RESPONSE_NORM")

# residual and concat refer to other layers: convscope.spec works out their volumes
RESIDUAL = LayerKind(
    "residual",
    {"layers": Field("a non-empty list of layer definitions",
                     lambda v: isinstance(v, list) and len(v) > 0)},
    example={"layers": [
        {"type": "conv", "sx": 3, "pad": 1, "filters": 4}, {"type": "batchnorm"},
        {"type": "relu"}]})

UPSAMPLE = LayerKind(
    "upsample",
    # nearest-neighbour upsampling by an integer factor (the decoder of a segmentation net)
    {"factor": positive(2)},
    out=lambda p, vin: Volume(vin.sx * p["factor"], vin.sy * p["factor"], vin.depth),
    label=lambda p: f"upsample x{p['factor']}", example={"factor": 3})

CONCAT = LayerKind(
    "concat",
    # skip connection: stack the output of the earlier layer ``from`` (its index in the resolved
    # list, as `convscope summary` numbers it) onto this layer's input, along the depth
    {"from": non_negative()},
    label=lambda p: f"concat + layer {p['from']}", example={"from": 0})

BRANCH = LayerKind(
    "branch",
    # a second head: start a new path from the output of the earlier layer ``from`` (its index
    # in the resolved list); this layer's own input goes no further, unless a later concat
    # stacks it back (a localizer's box head, then its class head from the shared maps)
    {"from": non_negative()},
    label=lambda p: f"branch from layer {p['from']}", example={"from": 0})


# ---- WaveNet: one layer for the whole dilated stack (convscope.wavenet.model computes it) ----

WAVENET_HEADER = 4  # digit, speaker (255: none), has-mel flag, reserved
MU_LAW_CLASSES = 256


def wavenet_packed_length(p: Params) -> int:
    """Values of the packed clip a wavenet layer reads: the header, the mu-law codes of
    ``samples`` samples, then the ``mels`` x ``frames`` log-mel image (convscope.wavenet)."""
    return WAVENET_HEADER + p["samples"] + p["mels"] * p["frames"]


def _wavenet_out(p: Params, vin: Volume) -> Volume:
    if vin.numel != wavenet_packed_length(p):
        raise SpecError(f"a wavenet layer reads a packed clip of {wavenet_packed_length(p)} "
                        f"values (4 + samples + mels x frames); its input volume {vin} holds "
                        f"{vin.numel}")
    return Volume(p["samples"], 1, MU_LAW_CLASSES)


def _wavenet_sizes(p: Params) -> tuple[int, int, int, int, int, int]:
    """(layers, residual, skip, head, conditioning channels, gate width x layers)."""
    layers, c = len(p["dilations"]), p["channels"]
    return layers, c, p["skip"], p["head"], p["cond"], layers * 2 * c


def _wavenet_params(p: Params, _vin: Volume) -> int:
    layers, c, skip, head, cond, gates = _wavenet_sizes(p)
    embeddings = MU_LAW_CLASSES * c + (p["digits"] + len(p["speakers"]) + 1) * gates
    mel = p["mels"] * cond * 3 + cond + (p["cond_layers"] - 1) * (cond * cond * 3 + cond) \
        + cond * gates + gates
    stack = layers * (2 * c * c * 2 + 2 * c + c * (c + skip) + c + skip)
    return embeddings + mel + stack + skip * head + head + head * MU_LAW_CLASSES + MU_LAW_CLASSES


def _wavenet_macs(p: Params, _vin: Volume, _out: Volume) -> int:
    layers, c, skip, head, cond, gates = _wavenet_sizes(p)
    mel = p["frames"] * (p["mels"] * 3 * cond + (p["cond_layers"] - 1) * cond * cond * 3
                         + cond * gates)
    upsampling = p["frames"] * gates  # each gate's frames to the sample, one matrix product
    # kernel-2 gates; the skips; the residuals but the last (which nothing reads); the head
    stack = layers * (2 * c * 2 * c + c * skip) + (layers - 1) * c * c
    per_sample = upsampling + stack + skip * head + head * MU_LAW_CLASSES
    return mel + p["samples"] * per_sample


def _dilations_ok(v: object) -> bool:
    return isinstance(v, list) and 0 < len(v) <= 64 and all(_int_at_least(1)(d) for d in v)


def _names_ok(v: object) -> bool:
    return isinstance(v, list) and len(v) <= 1000 and all(
        isinstance(s, str) and 0 < len(s) <= 64 for s in v) and len(set(v)) == len(v)


WAVENET = LayerKind(
    "wavenet",
    # causal dilated convolutions (kernel 2) with gated tanh x sigmoid units, residual and skip
    # connections, a 256-way mu-law output per sample; global conditioning on the digit and
    # speaker (``speakers``: their names), local conditioning on the log-mel image through
    # ``cond_layers`` convs of ``cond`` filters over its frames (3 wide); while training, the
    # spectrogram of a share ``mel_dropout`` of the clips is withheld; its codes are of audio
    # pre-emphasised by ``preemphasis`` (0: none; convscope.wavenet.codec)
    {"samples": positive(), "mels": positive(), "frames": positive(), "channels": positive(),
     "skip": positive(), "head": positive(), "cond": positive(), "cond_layers": positive(1),
     "mel_dropout": probability(0.3), "preemphasis": probability(0.0),
     "dilations": Field("a list of 1 to 64 positive integers", _dilations_ok),
     "digits": positive(10),
     "speakers": Field("a list of distinct names (at most 64 characters each)", _names_ok, [])},
    out=_wavenet_out, num_params=_wavenet_params, macs=_wavenet_macs,
    label=lambda p: f"wavenet {len(p['dilations'])} layers x{p['channels']} "
                    f"(receptive field {1 + sum(p['dilations'])})",
    example={"samples": 220, "mels": 4, "frames": 8, "channels": 4, "skip": 5, "head": 6,
             "cond": 3, "cond_layers": 2, "dilations": [1, 2, 4], "speakers": ["a", "b"]})

for _kind in (INPUT, CONV, POOL, GLOBAL_POOL, FC, *ACTIVATION_KINDS, BATCHNORM, DROPOUT, SOFTMAX,
              RESIDUAL, UPSAMPLE, CONCAT, BRANCH, LRN, WAVENET):
    register_layer_kind(_kind)
