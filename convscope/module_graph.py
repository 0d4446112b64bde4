"""What a network looks like to the explorer, for a SpecNet and for any other ``nn.Module``: the
kind, hyperparameters and size of each leaf module, and the branches between them (residual
skips joining at an add, U-Net concatenations).

A module's graph cannot be known from forward hooks alone: :func:`module_branches` asks
``torch.fx.symbolic_trace`` where the adds and concatenations are; a module it cannot trace is
described as a plain sequence (and says so). A spec's branches come from the spec itself
(:func:`spec_branches`). Torch-free of the server; :mod:`convscope.probes` runs the modules.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .spec import Layer, Volume

JOINS = {operator.add: "add", operator.iadd: "add", torch.add: "add", "add": "add",
         "add_": "add", torch.cat: "concat", torch.concat: "concat", "cat": "concat"}


def volume_of(shape: Sequence[int]) -> Volume:
    """The volume of one example of a batch tensor's ``shape``: (N, D, H, W) as W x H x D,
    (N, D) as 1x1xD, (N, D, L) (a 1-D signal) as L x 1 x D, anything else as 1x1x(size)."""
    dims = list(shape[1:])
    if len(dims) == 3:
        return Volume(dims[2], dims[1], dims[0])
    if len(dims) == 2:
        return Volume(dims[1], 1, dims[0])
    size = 1
    for d in dims:
        size *= d
    return Volume(1, 1, size)


def _pair(value) -> int | None:
    """One int for a square hyperparameter (``3`` or ``(3, 3)``), else None."""
    if isinstance(value, int):
        return value
    if isinstance(value, tuple) and len(set(value)) == 1 and isinstance(value[0], int):
        return value[0]
    return None


def module_kind(module: nn.Module, follows_previous: bool) -> tuple[str, dict]:
    """The layer kind the explorer treats ``module`` as, and that kind's params: a square conv
    ("conv", with ``sx``, ``sy``, ``stride``, ``pad``, ``filters``), Linear ("fc"),
    activations, batch norm, dropout, global average pooling, softmax, and a square max pool
    reading the previous node's output ("pool"); any other module keeps its class name."""
    if isinstance(module, nn.Conv2d) and module.groups == 1 and _pair(module.dilation) == 1:
        k, s, p = _pair(module.kernel_size), _pair(module.stride), _pair(module.padding)
        if None not in (k, s, p) and module.padding_mode == "zeros":
            return "conv", {"sx": k, "sy": k, "stride": s, "pad": p,
                            "filters": module.out_channels, "bias": module.bias is not None}
    if isinstance(module, nn.Linear):
        return "fc", {"num_neurons": module.out_features, "bias": module.bias is not None}
    if isinstance(module, nn.MaxPool2d) and follows_previous and _pair(module.dilation) == 1:
        k, s, p = _pair(module.kernel_size), _pair(module.stride or module.kernel_size), \
            _pair(module.padding)
        if None not in (k, s, p) and not module.ceil_mode:
            return "pool", {"sx": k, "sy": k, "stride": s, "pad": p, "kind": "max"}
    for cls, kind in ((nn.ReLU, "relu"), (nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh"),
                      (nn.GELU, "gelu"), (nn.BatchNorm1d, "batchnorm"),
                      (nn.BatchNorm2d, "batchnorm"), (nn.Dropout, "dropout")):
        if isinstance(module, cls):
            return kind, {}
    if isinstance(module, nn.AdaptiveAvgPool2d) and _pair(module.output_size) == 1:
        return "global_pool", {"kind": "avg"}
    return type(module).__name__, {}


def module_label(name: str, module: nn.Module) -> str:
    """``layer1.0.conv1: Conv2d 3x3 x16 s1 p1``: the dotted name and what the module is."""
    what = type(module).__name__
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        size = "x".join(str(k) for k in module.kernel_size)
        stride, pad = _pair(module.stride), _pair(module.padding)
        what += (f" {size} x{module.out_channels} s{module.stride if stride is None else stride}"
                 f" p{module.padding if pad is None else pad}")
    elif isinstance(module, nn.Linear):
        what += f" {module.in_features}->{module.out_features}"
    return f"{name}: {what}"


def module_macs(module: nn.Module, out_volume: Volume) -> int:
    """Multiply-adds for one example: convolutions and Linear layers only (as the spec counts)."""
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        per_output = module.in_channels // module.groups
        for k in module.kernel_size:
            per_output *= k
        return out_volume.numel * per_output
    if isinstance(module, nn.Linear):
        return out_volume.numel * module.in_features
    return 0


def own_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def leaf_modules(model: nn.Module) -> dict[nn.Module, str]:
    """Every leaf module (one without children) by its dotted name; a module registered under
    two names keeps the first."""
    leaves: dict[nn.Module, str] = {}
    for name, module in model.named_modules():
        if name and not any(True for _ in module.children()):
            leaves.setdefault(module, name)
    return leaves


# ---- branches ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Branch:
    """The output of node ``source`` skips the nodes between it and node ``target`` and joins
    the path just before ``target`` (``kind`` "add" or "concat"), or is ``target``'s input
    ("input", when it is not the node just before)."""

    source: int
    target: int
    kind: str

    def to_dict(self) -> dict:
        return {"from": self.source, "to": self.target, "kind": self.kind}


def spec_branches(flat: Sequence[tuple[Layer, int, int | None]], top_index: dict[int, int]
                  ) -> list[Branch]:
    """A spec's branches: each residual block's skip, from the node before its first inner
    layer to the block (its add), each concat from the layer it stacks and each branch from
    the layer it reads (an "input"). ``flat`` holds
    (layer, node index, node index where the residual's body starts) for every node;
    ``top_index`` maps top-level layer positions to node indices."""
    found = []
    for layer, index, body_start in flat:
        if layer.type == "residual" and body_start is not None:
            found.append(Branch(body_start - 1, index, "add"))
        elif layer.type in ("concat", "branch") and layer.params.get("from") in top_index:
            kind = "concat" if layer.type == "concat" else "input"
            found.append(Branch(top_index[layer.params["from"]], index, kind))
    return found


def module_branches(model: nn.Module, order: dict[str, int], output_index: int | None
                    ) -> tuple[list[Branch], str | None]:
    """The branches of ``model`` between its nodes (``order``: dotted leaf name -> node index;
    the input is node 0; ``output_index``: the node of the model's returned value, if it is
    not its last leaf's), found by ``torch.fx.symbolic_trace``. Returns (branches, None), or
    ([], why) when the module cannot be traced."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # noqa: BLE001 (any user code: tracing is best effort)
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return [], f"torch.fx cannot trace it ({type(exc).__name__}: {reason})"
    sources: dict[str, tuple[frozenset[int], str]] = {}  # fx value -> (nodes, pending join)
    found: set[Branch] = set()

    def reach(target: int, arg_sources: frozenset[int], kind: str) -> None:
        for source in arg_sources:
            if source < target - 1:  # the node just before is the plain path
                found.add(Branch(source, target, kind))

    for node in graph.nodes:
        args = [a for a in node.all_input_nodes if a.name in sources]
        merged = frozenset().union(*(sources[a.name][0] for a in args)) if args else frozenset()
        kinds = {sources[a.name][1] for a in args} - {"input"}
        pending = kinds.pop() if len(kinds) == 1 else ("add" if kinds else "input")
        if node.op == "placeholder":
            sources[node.name] = (frozenset({0}), "input")
        elif node.op == "call_module" and node.target in order:
            target = order[node.target]
            reach(target, merged, pending)
            for arg in args:  # a joined value is, from now on, the join before this node
                if sources[arg.name][1] != "input":
                    sources[arg.name] = (frozenset({target - 1}), "input")
            sources[node.name] = (frozenset({target}), "input")
        elif node.op in ("call_function", "call_method") and len(args) > 1 \
                and node.target in JOINS:
            sources[node.name] = (merged, JOINS[node.target])
        elif node.op == "output":
            if output_index is not None:
                reach(output_index, merged, pending)
        elif args:
            sources[node.name] = (merged, pending)
    return sorted(found, key=lambda b: (b.target, b.source)), None
