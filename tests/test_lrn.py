"""The ``lrn`` layer kind: ConvNetJS's LocalResponseNormalizationLayer arithmetic, checked
against a direct loop, against ConvNetJS itself (the ``convnetjs`` npm package under node, layer
by layer), through the ConvNetJS export and import, and with gradients."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from test_export_convnetjs import convnetjs_module  # noqa: F401 (a fixture)

import convscope
from convscope.convnetjs import read_snapshot, to_convnetjs
from convscope.errors import SpecError
from convscope.layers import LocalResponseNorm


def lrn_loops(a: np.ndarray, k: float, n: int, alpha: float, beta: float) -> np.ndarray:
    """ConvNetJS's forward written out: a (depth, sy, sx), one value at a time."""
    depth, sy, sx = a.shape
    out = np.empty_like(a)
    half = n // 2
    for y in range(sy):
        for x in range(sx):
            for i in range(depth):
                den = sum(a[j, y, x] ** 2 for j in range(max(0, i - half),
                                                        min(i + half, depth - 1) + 1))
                out[i, y, x] = a[i, y, x] / (k + alpha / n * den) ** beta
    return out


@pytest.mark.parametrize("k,n,alpha,beta", [(2.0, 5, 5e-4, 0.75), (1.0, 3, 0.8, 0.5),
                                            (0.5, 4, 2.0, 1.0), (1.5, 1, 0.3, 2.0),
                                            (1.0, 9, 1.0, 0.75)])
def test_lrn_is_convnetjs_arithmetic(k: float, n: int, alpha: float, beta: float):
    a = np.random.default_rng(n).normal(size=(7, 3, 4)) * 3
    ours = LocalResponseNorm(k, n, alpha, beta)(torch.from_numpy(a)[None])[0].numpy()
    np.testing.assert_allclose(ours, lrn_loops(a, k, n, alpha, beta), rtol=1e-12, atol=1e-14)


def test_even_n_is_centred_unlike_torch():
    """ConvNetJS sums floor(n/2) channels on each side also for even n; torch's
    LocalResponseNorm sums n channels: the two differ there, and convscope follows ConvNetJS."""
    x = torch.randn(1, 6, 2, 2, dtype=torch.float64) * 4
    ours = LocalResponseNorm(1.0, 4, 1.0, 0.75)(x)
    assert not torch.allclose(ours, torch.nn.LocalResponseNorm(4, 1.0, 0.75, 1.0)(x))
    odd = LocalResponseNorm(2.0, 5, 1e-2, 0.75)(x)
    torch.testing.assert_close(odd, torch.nn.LocalResponseNorm(5, 1e-2, 0.75, 2.0)(x))


def test_gradients_flow():
    x = torch.randn(2, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(LocalResponseNorm(1.0, 3, 0.9, 0.75), (x,))
    net = convscope.build_model(SPEC)
    net(torch.randn(2, 3, 9, 9)).sum().backward()
    assert net.blocks[1].weight.grad.abs().sum() > 0  # through the lrn to the conv before it


SPEC = [{"type": "input", "sx": 9, "sy": 9, "depth": 3},
        {"type": "conv", "sx": 3, "filters": 6, "pad": 1},
        {"type": "lrn", "k": 1.0, "n": 3, "alpha": 0.9, "beta": 0.75},
        {"type": "pool", "sx": 3, "stride": 2},
        {"type": "softmax", "num_classes": 4}]


def test_summary_and_spec_errors():
    layers = convscope.resolve(SPEC)
    lrn = layers[2]
    assert (lrn.type, str(lrn.out_volume), lrn.num_params, lrn.macs) == ("lrn", "9x9x6", 0, 0)
    with pytest.raises(SpecError, match=r"layer 2 \(lrn\): k must be a positive number"):
        convscope.resolve([*SPEC[:2], {**SPEC[2], "k": 0}])
    with pytest.raises(SpecError, match=r"layer 2 \(lrn\): missing field 'beta'"):
        convscope.resolve([*SPEC[:2], {k: v for k, v in SPEC[2].items() if k != "beta"}])


def test_export_and_import_carry_lrn():
    torch.manual_seed(0)
    net = convscope.build_model(SPEC).double().eval()
    data = to_convnetjs(net)
    assert data["layers"][2] == {"k": 1.0, "n": 3, "alpha": 0.9, "beta": 0.75, "out_sx": 9,
                                 "out_sy": 9, "out_depth": 6, "layer_type": "lrn"}
    snapshot = read_snapshot(data)
    assert snapshot.spec[2] == SPEC[2]
    x = torch.randn(3, 3, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(snapshot.model()(x), net(x), rtol=0, atol=1e-12)
    bad = json.loads(json.dumps(data))
    bad["layers"][2]["alpha"] = -1
    with pytest.raises(SpecError, match=r"layer 2 \(lrn\): 'alpha' must be a non-negative"):
        read_snapshot(bad)


LAYERS_SCRIPT = r"""
const [modulePath, netPath, inputPath] = process.argv.slice(2);
const convnetjs = require(modulePath);
const fs = require("fs");
const net = new convnetjs.Net();
net.fromJSON(JSON.parse(fs.readFileSync(netPath, "utf8")));
const input = JSON.parse(fs.readFileSync(inputPath, "utf8"));
const x = new convnetjs.Vol(input.sx, input.sy, input.depth, 0.0);
for (let i = 0; i < input.w.length; i++) x.w[i] = input.w[i];
net.forward(x);
process.stdout.write(JSON.stringify(net.layers.map((layer) => Array.from(layer.out_act.w))));
"""


@pytest.mark.parametrize("n", [5, 4])
def test_convnetjs_computes_the_same_lrn(convnetjs_module: Path, tmp_path: Path, n: int):  # noqa: F811
    """ConvNetJS loads the export and computes every layer's output as convscope does."""
    torch.manual_seed(n)
    spec = [SPEC[0], {**SPEC[1], "filters": 7},
            {"type": "lrn", "k": 2.0, "n": n, "alpha": 0.5, "beta": 0.75}, *SPEC[3:]]
    net = convscope.build_model(spec).double().eval()
    (tmp_path / "net.json").write_text(json.dumps(to_convnetjs(net)))
    x = torch.randn(1, 3, 9, 9, dtype=torch.float64)
    (tmp_path / "input.json").write_text(json.dumps(
        {"sx": 9, "sy": 9, "depth": 3, "w": x[0].permute(1, 2, 0).flatten().tolist()}))
    (tmp_path / "layers.js").write_text(LAYERS_SCRIPT)
    done = subprocess.run([shutil.which("node"), str(tmp_path / "layers.js"),
                           str(convnetjs_module), str(tmp_path / "net.json"),
                           str(tmp_path / "input.json")],
                          check=True, capture_output=True, text=True, timeout=60)
    theirs = json.loads(done.stdout)
    with torch.no_grad():
        ours = net.forward_all(x)
    for index in (1, 2, 3):  # conv, lrn, pool: ConvNetJS stores (y, x, d)
        mine = ours[index][0].permute(1, 2, 0).flatten()
        torch.testing.assert_close(torch.tensor(theirs[index], dtype=torch.float64), mine,
                                   rtol=1e-9, atol=1e-12)
