"""Export to ConvNetJS JSON: the layout ConvNetJS's toJSON writes, refusals naming the layer, a
lossless round trip, and ConvNetJS itself (the ``convnetjs`` npm package under node) loading
the files and predicting what convscope predicts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import real_dir
from test_convnetjs_import import ml4a_dir

import convscope
from convscope.augment import center_crop
from convscope.cli import main
from convscope.convnetjs import (
    ExportError,
    import_convnetjs,
    load_exact,
    read_snapshot,
    to_convnetjs,
)
from convscope.convnetjs.chapter import convnetjs_input
from convscope.model import SpecNet

CONVNETJS = "convnetjs@0.3.0"
TINY = [
    {"type": "input", "sx": 28, "sy": 28, "depth": 1, "offset": 0.5},
    {"type": "conv", "sx": 5, "sy": 3, "filters": 4, "stride": 2, "pad": 1, "activation": "relu"},
    {"type": "pool", "sx": 3, "stride": 2, "pad": 1},
    {"type": "conv", "sx": 3, "filters": 3, "activation": "tanh", "drop_prob": 0.2},
    {"type": "fc", "num_neurons": 6, "activation": "sigmoid"},
    {"type": "dropout", "drop_prob": 0.3, "scaling": "convnetjs"},
    {"type": "softmax", "num_classes": 10},
]
NODE_SCRIPT = r"""
const [modulePath, netPath, batchPath] = process.argv.slice(2);
const convnetjs = require(modulePath);
const fs = require("fs");
const json = JSON.parse(fs.readFileSync(netPath, "utf8"));
const net = new convnetjs.Net();
net.fromJSON(json);
const offset = json.layers[0].input_offset || 0;
const batch = JSON.parse(fs.readFileSync(batchPath, "utf8"));
const out = batch.images.map((bytes) => {
  const x = new convnetjs.Vol(batch.sx, batch.sy, batch.depth, 0.0);
  for (let i = 0; i < bytes.length; i++) x.w[i] = bytes[i] / 255.0 - 0.5 + offset;
  return Array.from(net.forward(x).w);
});
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="session")
def convnetjs_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The convnetjs npm package installed in a temp dir (skip without node, npm or network)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed to run ConvNetJS itself")
    prefix = tmp_path_factory.mktemp("npm")
    try:
        subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        "--ignore-scripts", CONVNETJS], check=True, capture_output=True,
                       timeout=180)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"cannot install {CONVNETJS} from the npm registry: "
                    f"{output.decode(errors='replace').strip()[-200:] or exc}")
    return prefix / "node_modules" / "convnetjs"


def convnetjs_probabilities(module: Path, net: Path, images: torch.Tensor) -> torch.Tensor:
    """ConvNetJS's softmax output for uint8 images (N, C, H, W), computed by node."""
    n, depth, height, width = images.shape
    batch = net.parent / "batch.json"
    batch.write_text(json.dumps({"sx": width, "sy": height, "depth": depth,
                                 "images": images.permute(0, 2, 3, 1).reshape(n, -1).tolist()}))
    script = net.parent / "forward.js"
    script.write_text(NODE_SCRIPT)
    done = subprocess.run([shutil.which("node"), str(script), str(module), str(net), str(batch)],
                          check=True, capture_output=True, text=True, timeout=120)
    return torch.tensor(json.loads(done.stdout), dtype=torch.float64)


def convscope_probabilities(model: SpecNet, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model.double().eval()(convnetjs_input(images)), dim=1)


def assert_same_predictions(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-6)
    assert torch.equal(theirs.argmax(1), ours.argmax(1))


def sample_images(dataset: str, count: int, fake: Path | None = None) -> torch.Tensor:
    """Official test images when $CONVSCOPE_DATA has them, else the fake data dir's."""
    try:
        data_dir = real_dir(dataset)
    except pytest.skip.Exception:
        if fake is None:
            raise
        data_dir = fake
    return convscope.load_dataset(dataset, "test", data_dir=data_dir).images[:count]


def test_export_writes_convnetjs_layout():
    data = to_convnetjs(convscope.build_model(TINY))
    layers = data["layers"]
    assert [la["layer_type"] for la in layers] == [
        "input", "conv", "relu", "pool", "conv", "tanh", "fc", "sigmoid", "dropout", "fc",
        "softmax"]  # the inverted (PyTorch) dropout after tanh is the identity at prediction
    assert layers[0] == {"out_sx": 28, "out_sy": 28, "out_depth": 1, "layer_type": "input",
                         "input_offset": 0.5}
    conv = layers[1]
    assert [conv[k] for k in ("sx", "sy", "stride", "pad", "in_depth")] == [5, 3, 2, 1, 1]
    assert (conv["out_sx"], conv["out_sy"], conv["out_depth"]) == (13, 14, 4)
    assert {(f["sx"], f["sy"], f["depth"], len(f["w"])) for f in conv["filters"]} == {(5, 3, 1, 15)}
    assert conv["biases"]["depth"] == 4 and isinstance(conv["biases"]["w"], list)
    assert layers[6]["num_inputs"] == 75 and layers[8]["drop_prob"] == 0.3
    assert layers[10] == {"out_sx": 1, "out_sy": 1, "out_depth": 10, "layer_type": "softmax",
                          "num_inputs": 10}


@pytest.mark.parametrize("layer,message", [
    ({"type": "batchnorm"}, "layer 2 (batchnorm): ConvNetJS has no batchnorm layer"),
    ({"type": "pool", "sx": 2, "kind": "avg"}, "layer 2 (pool): ConvNetJS has no average pooling"),
    ({"type": "global_pool"}, "layer 2 (global_pool): ConvNetJS has no global_pool layer"),
    ({"type": "gelu"}, "layer 2 (gelu): ConvNetJS has no gelu layer"),
    ({"type": "residual", "layers": [{"type": "relu"}]}, "layer 2 (residual): ConvNetJS has no"),
])
def test_export_refuses_what_convnetjs_lacks(layer: dict, message: str):
    spec = [TINY[0], {"type": "conv", "sx": 3, "filters": 2}, layer,
            {"type": "softmax", "num_classes": 10}]
    with pytest.raises(ExportError, match=re.escape(message)):
        to_convnetjs(convscope.build_model(spec))
    with pytest.raises(ExportError, match="only spec networks"):
        to_convnetjs(torch.nn.Linear(2, 2))


def test_round_trip_through_convnetjs_json_is_exact():
    spec = [*TINY[:3], {"type": "conv", "sx": 3, "filters": 3, "activation": "tanh"}, *TINY[4:]]
    torch.manual_seed(0)
    model = convscope.build_model(spec).double()
    again = read_snapshot(to_convnetjs(model)).model()
    assert [(la.type, la.out_volume) for la in again.layers] == [
        (la.type, la.out_volume) for la in model.layers]
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_a_scaled_fc_exports_with_its_scale_folded_in():
    spec = [*TINY[:3], {"type": "softmax", "num_classes": 10, "scale": 1 / 9}]
    torch.manual_seed(0)
    model = convscope.build_model(spec).double()
    again = read_snapshot(to_convnetjs(model)).model()
    x = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    assert torch.allclose(again(x), model(x), atol=1e-12)


def test_convnetjs_runs_an_exported_convscope_trained_network(
        convnetjs_module: Path, fake_data, tmp_path: Path):
    root, _ = fake_data
    run = convscope.train(convscope.build_model(TINY), "mnist", out=tmp_path / "run",
                          data_dir=str(root), epochs=1, batch_size=8, progress=False)
    net = tmp_path / "net.json"
    assert main(["export", str(run.path), "--format", "convnetjs", "--out", str(net)]) == 0
    images = sample_images("mnist", 40, fake=root)
    theirs = convnetjs_probabilities(convnetjs_module, net, images)
    assert_same_predictions(convscope_probabilities(load_exact(run), images), theirs)


@pytest.mark.realdata
@pytest.mark.parametrize("name,offset", [("cifar10_snapshot_convnet.json", None),
                                         ("mnist_snapshot_convnet.json", 0.5)])
def test_convnetjs_runs_exported_chapter_snapshots(convnetjs_module: Path, tmp_path: Path,
                                                   name: str, offset: float | None):
    run = import_convnetjs(ml4a_dir() / name, tmp_path / "run", input_offset=offset)
    net = tmp_path / "net.json"
    assert main(["export", str(run.path), "--format", "convnetjs", "--out", str(net)]) == 0
    model = load_exact(run)
    volume = model.input_volume
    images = center_crop(sample_images(run.config.data, 25), volume.sy, volume.sx)
    theirs = convnetjs_probabilities(convnetjs_module, net, images)
    assert_same_predictions(convscope_probabilities(model, images), theirs)
    original = json.loads((ml4a_dir() / name).read_text())
    assert json.loads(net.read_text())["layers"][1]["filters"][0]["w"] == [
        original["layers"][1]["filters"][0]["w"][str(i)] for i in range(25 * volume.depth)]
    assert np.isclose(theirs.sum(1), 1).all()
