"""What the explorer shows, computed on a SpecNet or any other ``nn.Module``: its nodes (every
layer or leaf module, residual blocks' insides included; :func:`network_graph`), every node's
activations (through forward hooks), a node's weights, one output of a convolution with the
arithmetic behind it, and the confusion matrix with the samples in each cell. Plain functions
on tensors, independent of HTTP.

Inputs ``x`` are in the model's input convention (see :func:`convscope.augment.to_input`).
Results are float32 CPU tensors.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import torch
from torch import nn

from .data import Dataset
from .device import model_device
from .errors import ConvscopeError, SpecError
from .evaluate import Evaluation, evaluate
from .layer_kinds import layer_kind, layer_kinds, layer_label, window_output
from .model import SpecNet
from .module_graph import (
    Branch,
    leaf_modules,
    module_branches,
    module_kind,
    module_label,
    module_macs,
    own_params,
    spec_branches,
    volume_of,
)
from .spec import MAX_LAYERS, Layer, Volume


class ProbeError(ConvscopeError):
    """A probe asked of a layer, filter or position that cannot answer it."""


class LayerNotFound(ProbeError):
    """The layer does not exist, or (for weights) it has none."""


MAX_NODES = MAX_LAYERS  # leaf modules of a module described for the explorer
MAX_TRACE_VALUES = 64 * 1024**2  # output values of all nodes for one example (256 MB)
INPUT, OUTPUT = "(input)", "(output)"  # names of nodes that are no module


@dataclass(frozen=True)
class Node:
    """One output the explorer shows, by ``index``: 0 is the input; then, for a SpecNet, its
    layers, those inside a residual block before the block (its add); for any other module,
    its leaf modules in the order a forward pass first calls them, and ``(output)`` when the
    module returns something other than its last leaf's output. ``name`` is the dotted module
    name (``layer1.0.conv1``; ``blocks.3.body.0`` in a SpecNet)."""

    index: int
    name: str
    type: str  # a layer kind (layer_kinds) or, for other modules, the module's class name
    label: str
    params: dict
    in_volume: Volume | None
    out_volume: Volume
    num_params: int
    macs: int
    has_weights: bool
    layer: Layer | None = None  # the spec layer, in a SpecNet
    input_from: int | None = None  # the node whose output is its input (None: another value)


@dataclass(frozen=True)
class Graph:
    """A network's nodes and its branches (see :class:`convscope.module_graph.Branch`);
    ``note`` says why branches could not be found (the nodes then read as a plain sequence)."""

    nodes: list[Node]
    branches: list[Branch]
    note: str | None = None


def has_weights(layer: Layer) -> bool:
    """Whether ``layer``'s kind has weights to show (:func:`layer_weights`)."""
    return layer_kind(layer.type).has_weights


def spec_graph(layers: list[Layer]) -> Graph:
    """The nodes of a resolved spec (no module needed): residual blocks' inner layers listed
    before their block, named by their module path in a SpecNet."""
    flat: list[tuple[Layer, str, int | None]] = []
    top: dict[int, int] = {}

    def walk(items: tuple[Layer, ...] | list[Layer], prefix: str) -> None:
        for layer in items:
            path = f"{prefix}{layer.index}"
            start = len(flat) if layer.type == "residual" else None
            if start is not None:
                walk(layer.children, path + ".body.")
            if prefix == "blocks.":
                top[layer.index] = len(flat)
            flat.append((layer, path, start))

    walk(layers, "blocks.")
    nodes = [Node(i, path, la.type, layer_label(la), la.params, la.in_volume, la.out_volume,
                  la.num_params, la.macs, has_weights(la), la,
                  None if i == 0 else i - 1 if start is None else start - 1)
             for i, (la, path, start) in enumerate(flat)]
    indexed = [(la, i, start) for i, (la, _, start) in enumerate(flat)]
    return Graph(nodes, spec_branches(indexed, top))


_TRACED: weakref.WeakKeyDictionary[nn.Module, Graph] = weakref.WeakKeyDictionary()


def network_graph(model: nn.Module, volume: Volume | None = None) -> Graph:
    """The nodes and branches of ``model``: a SpecNet's from its spec; any other module's from
    one forward pass of a zero input of ``volume`` with forward hooks on its leaf modules (done
    once per module and kept; ``volume`` is needed the first time), its branches from
    torch.fx."""
    if isinstance(model, SpecNet):
        return spec_graph(model.layers)
    graph = _TRACED.get(model)
    if graph is None:
        if volume is None:
            raise ProbeError(f"{type(model).__name__} has not been traced: give its input volume")
        graph = _TRACED[model] = _trace(model, volume)
    return graph


def _trace(model: nn.Module, volume: Volume) -> Graph:
    """Trace ``model`` on zeros of ``volume``: its leaf modules, in the order first called."""
    leaves = leaf_modules(model)
    if len(leaves) > MAX_NODES:
        raise ProbeError(f"the model has {len(leaves):,} leaf modules; the explorer shows at most "
                         f"{MAX_NODES:,}")
    x = torch.zeros(1, *volume.shape, device=model_device(model))
    try:
        seen, returned = _capture(model, list(leaves), x)
    except ProbeError:
        raise
    except Exception as exc:  # noqa: BLE001 (the user's code: one line says what failed)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ProbeError(f"its forward pass on a zero {volume} input (the run's data.input) "
                         f"failed: {type(exc).__name__}: {first}") from None
    called = list(seen)  # dicts keep the order of the first calls
    nodes = [Node(0, INPUT, "input", f"input {volume}", {}, None, volume, 0, 0, False)]
    made_by = {id(x): 0}  # output tensor -> the node that made it
    for module in called:
        given, out = seen[module]
        source = made_by.get(id(given)) if given is not None else None
        kind, params = module_kind(module, source == len(nodes) - 1)
        out_volume = volume_of(out.shape)
        nodes.append(Node(len(nodes), leaves[module], kind, module_label(leaves[module], module),
                          params, None if given is None else volume_of(given.shape), out_volume,
                          own_params(module), module_macs(module, out_volume),
                          _weighted(module), input_from=source))
        made_by[id(out)] = nodes[-1].index
    if not called or returned is not seen[called[-1]][1]:
        nodes.append(Node(len(nodes), OUTPUT, "output", "output (what the model returns)", {},
                          None, volume_of(returned.shape), 0, 0, False,
                          input_from=made_by.get(id(returned))))
    values = sum(node.out_volume.numel for node in nodes)
    if values > MAX_TRACE_VALUES:
        raise ProbeError(f"the model's layer outputs hold {values:,} values for one example; the "
                         f"explorer shows at most {MAX_TRACE_VALUES:,}")
    order = {node.name: node.index for node in nodes[1:] if node.name != OUTPUT}
    output = nodes[-1].index if nodes[-1].name == OUTPUT else None
    branches, why = module_branches(model, order, output)
    return Graph(nodes, branches, None if why is None else f"drawn as a plain sequence: {why}")


def _weighted(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv1d | nn.Conv2d | nn.Linear)


def first_tensor(value) -> torch.Tensor | None:
    """A module's output as one tensor: itself, or the first tensor of a tuple or list."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, list | tuple):
        return next((v for v in value if isinstance(v, torch.Tensor)), None)
    return None


@torch.no_grad()
def _capture(model: nn.Module, modules: list[nn.Module], x: torch.Tensor
             ) -> tuple[dict[nn.Module, tuple[torch.Tensor | None, torch.Tensor]], torch.Tensor]:
    """Run ``model`` on the batch ``x`` in eval mode with forward hooks on ``modules``: the
    (input, output) tensors of each module's first call, in call order, and what the model
    returns (a SpecNet runs every layer, its trailing softmax included). Only this thread's
    forward pass is recorded: another thread running the same model meanwhile is not."""
    seen: dict[nn.Module, tuple[torch.Tensor | None, torch.Tensor]] = {}
    caller = threading.get_ident()  # the explorer runs a model in two threads at once

    def hook(module: nn.Module, args: tuple, output) -> None:
        out = first_tensor(output)
        if threading.get_ident() == caller and module not in seen and out is not None:
            seen[module] = (first_tensor(args), out)

    handles = [module.register_forward_hook(hook) for module in dict.fromkeys(modules)]
    was_training = model.training
    if was_training:  # (switching modes walks every module: only when needed)
        model.eval()
    try:
        returned = model.forward_all(x)[-1] if isinstance(model, SpecNet) else model(x)
    finally:
        for handle in handles:
            handle.remove()
        if was_training:
            model.train()
    returned = first_tensor(returned)
    if returned is None:
        raise ProbeError(f"{type(model).__name__} returned no tensor; the explorer shows models "
                         "that return one")
    return seen, returned


def _as_volume(t: torch.Tensor) -> torch.Tensor:
    """A batch tensor as (N, depth, sy, sx), as :func:`volume_of` reads its shape."""
    v = volume_of(t.shape)
    return t.reshape(t.shape[0], v.depth, v.sy, v.sx)


def _node_io(model: nn.Module, x: torch.Tensor) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
    """The (input, output) of every node of ``model`` for the batch ``x`` (N, D, H, W)."""
    x = x.to(model_device(model))
    graph = network_graph(model, volume_of(x.shape))
    modules = {node.index: model.get_submodule(node.name) for node in graph.nodes
               if node.name not in (INPUT, OUTPUT)}
    seen, returned = _capture(model, list(modules.values()), x)
    found = []
    for node in graph.nodes:
        if node.name == INPUT:
            found.append((None, x))
        elif node.name == OUTPUT:
            found.append((None, returned))
        elif modules[node.index] in seen:
            found.append(seen[modules[node.index]])
        else:
            raise ProbeError(f"module {node.name} was not called for this input")
    return found


def activations(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every node's output (:func:`network_graph`) for ``x`` (D, H, W) or (N, D, H, W), in eval
    mode, as float32 CPU tensors of the same rank as ``x``, each shaped (D, H, W) as its
    volume: the input itself first."""
    single = x.dim() == 3
    outputs = [_as_volume(out) for _, out in _node_io(model, x[None] if single else x)]
    return [(out[0] if single else out).float().cpu() for out in outputs]


def node_outputs(model: nn.Module, x: torch.Tensor, indices: list[int]
                 ) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """The outputs of only the nodes ``indices`` (:func:`network_graph`) for the batch ``x``
    (N, D, H, W), each (N, depth, sy, sx) as its volume, and what the model returns, all as
    float32 CPU tensors: one forward pass hooking only those nodes' modules (the live view's
    and the feature streams' per-frame work)."""
    x = x.to(model_device(model))
    nodes = network_graph(model, volume_of(x.shape)).nodes
    for index in indices:
        if not 0 <= index < len(nodes):
            raise LayerNotFound(f"layer {index} does not exist: this network has layers "
                                f"0..{len(nodes) - 1}")
    modules = {i: model.get_submodule(nodes[i].name) for i in indices
               if nodes[i].name not in (INPUT, OUTPUT)}
    seen, returned = _capture(model, list(modules.values()), x)
    found = {}
    for index in indices:
        if nodes[index].name == INPUT:
            found[index] = x
        elif nodes[index].name == OUTPUT:
            found[index] = returned
        elif modules[index] in seen:
            found[index] = seen[modules[index]][1]
        else:
            raise ProbeError(f"module {nodes[index].name} was not called for this input")
    return ({i: _as_volume(t).float().cpu() for i, t in found.items()},
            returned.float().cpu())


def _node(model: nn.Module, index: int, volume: Volume | None = None) -> Node:
    nodes = network_graph(model, volume).nodes
    if not 0 <= index < len(nodes):
        raise LayerNotFound(f"layer {index} does not exist: this network has layers "
                            f"0..{len(nodes) - 1}")
    return nodes[index]


def layer_weights(model: nn.Module, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weights and bias (None without bias) of a node that ``has_weights``: conv
    (filters, depth, sy, sx), a 1-D conv as (filters, depth, 1, size); fc, or any 2-D weight,
    (num_neurons, *input volume shape), each row shaped like the node's input volume."""
    node = _node(model, index)
    if not node.has_weights:
        weighted = " and ".join(k.name for k in layer_kinds() if k.has_weights)
        raise LayerNotFound(f"layer {index} ({node.label}) has no weights to show; "
                            f"{weighted} layers have")
    block = model.get_submodule(node.name)
    weights = block.weight.detach().float().cpu()
    if weights.dim() == 3:
        weights = weights[:, :, None, :]
    if weights.dim() == 2:
        shape = node.in_volume.shape if node.in_volume is not None else (weights.shape[1],)
        fits = node.in_volume is not None and node.in_volume.numel == weights.shape[1]
        weights = weights.reshape(-1, *shape) if fits else weights[:, :, None, None]
    bias = None if block.bias is None else block.bias.detach().float().cpu()
    return weights.contiguous(), bias


@dataclass(frozen=True)
class ConvStep:
    """One output value of a conv filter and its arithmetic: ``products = patch * weights``,
    ``sum = products.sum()``, ``output = sum + bias``. The window's top-left corner is
    (``x0``, ``y0``) in input pixels, negative where it hangs over the zero padding."""

    patch: torch.Tensor
    weights: torch.Tensor
    products: torch.Tensor
    sum: float
    bias: float
    output: float
    x0: int
    y0: int
    out_sx: int
    out_sy: int
    stride: int
    pad: int


def conv_step(model: nn.Module, x: torch.Tensor, layer: int, filter: int, ox: int, oy: int,
              stride: int | None = None, pad: int | None = None) -> ConvStep:
    """Output (``ox``, ``oy``) of filter ``filter`` of conv layer ``layer`` for network input
    ``x`` (D, H, W). ``stride`` and ``pad`` default to the layer's own; other values apply the
    real filter with them, the output size following (W - F + 2P) // S + 1."""
    node = _node(model, layer, volume_of((1, *x.shape)))
    if node.type != "conv":
        raise ProbeError(f"layer {layer} is {node.label}, not a conv layer; "
                         "a convolution step needs a conv layer")
    p, vol = node.params, node.in_volume
    stride = p["stride"] if stride is None else stride
    pad = p["pad"] if pad is None else pad
    if stride < 1 or pad < 0:
        raise ProbeError(f"stride must be at least 1 and pad at least 0, got {stride} and {pad}")
    sx, sy = p["sx"], p["sy"]
    try:
        out = window_output(vol, sx, sy, stride, pad, p["filters"])
    except SpecError as e:
        raise ProbeError(str(e)) from None
    out_sx, out_sy = out.sx, out.sy
    if not 0 <= filter < p["filters"]:
        raise ProbeError(f"filter {filter} does not exist: layer {layer} has filters "
                         f"0..{p['filters'] - 1}")
    if not (0 <= ox < out_sx and 0 <= oy < out_sy):
        raise ProbeError(f"output position ({ox}, {oy}) is outside the {out_sx}x{out_sy} output "
                         f"(stride {stride}, pad {pad})")
    source = _node_io(model, x[None])[layer][0][0].float().cpu()
    x0, y0 = ox * stride - pad, oy * stride - pad
    left, top = max(x0, 0), max(y0, 0)
    right, bottom = min(x0 + sx, vol.sx), min(y0 + sy, vol.sy)
    patch = torch.zeros(vol.depth, sy, sx)
    if left < right and top < bottom:
        patch[:, top - y0:bottom - y0, left - x0:right - x0] = source[:, top:bottom, left:right]
    block = model.get_submodule(node.name)
    weights = block.weight[filter].detach().float().cpu()
    products = patch * weights
    total = products.double().sum().item()
    bias = 0.0 if block.bias is None else block.bias[filter].item()
    return ConvStep(patch, weights, products, total, bias, total + bias, x0, y0, out_sx, out_sy,
                    stride, pad)


Cell = list[tuple[int, float]]


@dataclass(frozen=True)
class Confusion:
    """An evaluation plus, per cell ``cells[actual][predicted]``, the (sample index,
    confidence) pairs of the samples landing there, most confident first."""

    evaluation: Evaluation
    cells: list[list[Cell]]


def confusion_with_samples(model: torch.nn.Module, dataset: Dataset,
                           per_cell: int | None = 64) -> Confusion:
    """Evaluate ``model`` on ``dataset`` and keep at most ``per_cell`` samples per confusion
    cell (all of them for None), most confident first (ties: lower index first)."""
    evaluation = evaluate(model, dataset)
    labels, confidences = dataset.labels.tolist(), evaluation.confidences
    k = len(evaluation.classes)
    cells: list[list[Cell]] = [[[] for _ in range(k)] for _ in range(k)]
    for i in sorted(range(len(labels)), key=lambda i: -confidences[i]):
        cell = cells[labels[i]][evaluation.predictions[i]]
        if per_cell is None or len(cell) < per_cell:
            cell.append((i, confidences[i]))
    return Confusion(evaluation, cells)
