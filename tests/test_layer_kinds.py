"""Layer kinds: one description per kind is all convscope needs (a new kind registered here in a
few lines reaches specs, models, the CLI summary and the explorer), and every registered kind's
description agrees with the torch module that computes it."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convscope
from convscope.cli import main
from convscope.convnetjs import ExportError, to_convnetjs
from convscope.convnetjs.snapshot import SUPPORTED, _Layer
from convscope.errors import SpecError
from convscope.layer_kinds import (
    LayerKind,
    layer_kind,
    layer_kinds,
    number,
    register_layer_kind,
    unregister_layer_kind,
)
from convscope.layers import register_module, unregister_module
from convscope.model import READS_EARLIER, build_model
from convscope.probes import LayerNotFound, layer_weights
from convscope.server.catalog import Entry

INPUT = {"type": "input", "sx": 8, "sy": 8, "depth": 4}
SCALED = [INPUT, {"type": "fc", "num_neurons": 6}, {"type": "scale", "by": 0.5},
          {"type": "softmax", "num_classes": 3}]


class Scale(nn.Module):
    def __init__(self, by: float) -> None:
        super().__init__()
        self.by = by

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.by


@pytest.fixture
def scale_kind():
    """A new layer kind, ``scale``: multiplies its input by the constant ``by``."""
    register_layer_kind(LayerKind("scale", {"by": number(1.0)}, ordinary=True,
                                  label=lambda p: f"scale x{p['by']:g}", example={"by": 2.0}))
    register_module("scale", lambda layer: Scale(layer.params["by"]))
    yield layer_kind("scale")
    unregister_layer_kind("scale")
    unregister_module("scale")


def test_a_new_kind_resolves_and_builds(scale_kind):
    layers = convscope.resolve(SCALED)
    assert [la.type for la in layers] == ["input", "fc", "scale", "fc", "softmax"]
    assert layers[2].params == {"by": 0.5} and str(layers[2].out_volume) == "1x1x6"
    net = build_model(SCALED).eval()
    x = torch.randn(2, 4, 8, 8)
    outputs = net.forward_all(x)
    torch.testing.assert_close(outputs[2], outputs[1] * 0.5)
    with pytest.raises(SpecError, match=r"layer 1 \(scale\): by must be a finite number"):
        convscope.resolve([INPUT, {"type": "scale", "by": "half"}])


def test_a_new_kind_is_in_the_cli_summary(scale_kind, tmp_path: Path, capsys):
    path = tmp_path / "scaled.json"
    path.write_text(json.dumps(SCALED))
    assert main(["summary", str(path)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[3].split()[:3] == ["2", "scale", "x0.5"] and rows[3].split()[3] == "1x1x6"


def test_a_new_kind_is_in_the_explorer_description(scale_kind):
    entry = Entry(id="scaled", title="scaled", kind="run", dataset="mnist",
                  classes=["a", "b", "c"], spec=SCALED)
    layer = entry.describe()["layers"][2]
    assert layer["type"] == "scale" and layer["label"] == "scale x0.5"
    assert layer["has_weights"] is False and layer["params"] == {"by": 0.5}
    assert entry.family == "ordinary"
    with pytest.raises(LayerNotFound, match=r"layer 2 \(scale x0.5\) has no weights"):
        layer_weights(build_model(SCALED), 2)
    with pytest.raises(ExportError, match=r"layer 2 \(scale\): ConvNetJS has no scale layer"):
        to_convnetjs(build_model(SCALED))


def test_a_kind_is_registered_once():
    with pytest.raises(ValueError, match="already registered"):
        register_layer_kind(LayerKind("conv"))
    with pytest.raises(ValueError, match="factory of layer kind 'conv' is already registered"):
        register_module("conv", lambda layer: nn.Identity())
    with pytest.raises(SpecError, match="unknown layer type 'scale'"):
        convscope.resolve(SCALED)


def _example_spec(kind: LayerKind) -> list[dict]:
    layer = {"type": kind.name, **kind.example}
    return [layer] if kind.name == "input" else [INPUT, layer]


def _macs(block: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of the matrix products and convolutions ``block`` computes on ``x``
    (torch's own count of each operation, whichever module or function calls it)."""
    with FlopCounterMode(display=False) as counter:
        block(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("name", [kind.name for kind in layer_kinds()])
def test_the_description_matches_the_module(name: str):
    """Output volume, parameters and multiply-adds of every registered kind, built from its
    example, are what its torch module produces and has."""
    net = build_model(_example_spec(layer_kind(name))).eval()
    x = torch.randn(1, *net.input_volume.shape)
    with torch.no_grad():
        outputs = net.forward_all(x)
    inputs = [x, *outputs[:-1]]
    for layer, block, out, inp in zip(net.layers, net.blocks, outputs, inputs, strict=True):
        assert tuple(out.shape[1:]) == layer.out_volume.shape, layer
        assert layer.num_params == sum(p.numel() for p in block.parameters()), layer
        if layer.type not in READS_EARLIER:  # (they add no multiply-adds)
            with torch.no_grad():
                assert layer.macs == _macs(block, inp), layer
    assert name in [la.type for la in net.layers]


def test_every_exportable_kind_can_be_imported():
    assert SUPPORTED == ("input", "conv", "pool", "fc", "relu", "sigmoid", "tanh", "dropout",
                         "softmax", "lrn")
    # a kind with weights needs a reader of its own; one without is read from its fields
    assert all(callable(getattr(_Layer, name, None)) or not layer_kind(name).has_weights
               for name in SUPPORTED)


def test_spec_and_layer_kinds_do_not_import_torch():
    package = Path(convscope.__file__).parent
    for module in ("spec.py", "layer_kinds.py", "registries.py"):
        tree = ast.parse((package / module).read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {m for m in imported if m.split(".")[0] == "torch"}, module
        assert {m for m in imported if m.startswith("convscope")} <= {
            "convscope.errors", "convscope.layer_kinds", "convscope.registries",
            "convscope.spec"}, module
