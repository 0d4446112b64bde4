"""Any nn.Module in the explorer: a small ResNet-style module (two residual blocks, nested
containers) trained in the test, served with ``--trust-code`` and inspected through forward
hooks: every leaf module listed with its volume, activations and weights of a nested conv, the
prediction, and the skip branches. Real MNIST digits where $CONVSCOPE_DATA has them (else the
test is skipped), and the same checks on generated digits that always run."""

from __future__ import annotations

import base64
import gzip
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import idx_bytes, real_dir, write_mnist
from fastapi.testclient import TestClient
from torch import nn

import convscope
from convscope.augment import to_input
from convscope.model import SpecNet
from convscope.probes import activations, conv_step, layer_weights, network_graph
from convscope.server import create_app
from convscope.spec import Volume

MODULE_SOURCE = '''
import torch
from torch import nn


class Block(nn.Module):
    """conv-bn-relu-conv-bn, plus the block's input (the skip), then relu."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + x)


class SmallResNet(nn.Module):
    def __init__(self, channels=8, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, stride=2, padding=1),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        self.layer1 = nn.Sequential(Block(channels), Block(channels))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(channels, num_classes))

    def forward(self, x):
        return self.head(self.layer1(self.stem(x)))


def make(channels=8, num_classes=10):
    return SmallResNet(channels, num_classes)
'''
NESTED_CONV = "layer1.1.conv2"
SETTINGS = {"epochs": 1, "batch_size": 32, "lr": 0.01, "progress": False}


def first_records(path: Path, count: int, record: int, header: int) -> np.ndarray:
    """The first ``count`` records of a gzipped IDX file (read without decoding the rest)."""
    with gzip.open(path, "rb") as f:
        f.read(header)
        return np.frombuffer(f.read(count * record), dtype=np.uint8).copy()


def write_real_subset(root: Path, train: int, test: int) -> Path:
    """MNIST-format files holding the first real digits of $CONVSCOPE_DATA (skips without)."""
    source = real_dir("mnist") / "mnist"
    (root / "mnist").mkdir(parents=True)
    for prefix, n in (("train", train), ("t10k", test)):
        images = first_records(source / f"{prefix}-images-idx3-ubyte.gz", n, 784, 16)
        labels = first_records(source / f"{prefix}-labels-idx1-ubyte.gz", n, 1, 8)
        for kind, array, dims in (("images", images.reshape(n, 28, 28), "idx3"),
                                  ("labels", labels, "idx1")):
            (root / "mnist" / f"{prefix}-{kind}-{dims}-ubyte.gz").write_bytes(
                gzip.compress(idx_bytes(array), compresslevel=1))
    return root


def import_module_file(path: Path):
    spec = importlib.util.spec_from_file_location("resnet_for_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decode(tensor: dict) -> torch.Tensor:
    data = np.frombuffer(base64.b64decode(tensor["data"]), dtype="<f4")
    return torch.from_numpy(data.reshape(tensor["shape"]).copy())


@pytest.fixture(scope="module", params=["real", "generated"])
def world(request, tmp_path_factory: pytest.TempPathFactory):
    """A module object and the same module from its file, each trained one epoch on a few
    hundred digits; an app that trusts code and one that does not."""
    root = tmp_path_factory.mktemp(f"modules-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONVSCOPE_CACHE", str(root / "cache"))
        data = (write_real_subset(root / "data", 300, 100) if request.param == "real"
                else write_mnist(root / "data", 300, 100))
        file = root / "resnet_mod.py"
        file.write_text(MODULE_SOURCE)
        runs = root / "runs"
        torch.manual_seed(0)
        module = import_module_file(file).make()
        object_run = convscope.train(module, "mnist", out=runs / "resnet-object",
                                     data_dir=str(data), **SETTINGS)
        file_run = convscope.train((f"{file}:make", {"channels": 8}), "mnist",
                                   out=runs / "resnet-file", data_dir=str(data), **SETTINGS)
        trusted = create_app(runs_dir=runs, data_dir=str(data), trust_code=True)
        untrusted = create_app(runs_dir=runs, data_dir=str(data))
        with TestClient(trusted) as client, TestClient(untrusted) as plain:
            yield {"client": client, "plain": plain, "module": module, "data": data,
                   "object_run": object_run, "file_run": file_run, "runs": runs,
                   "kind": request.param}


def test_the_module_object_was_trained(world):
    run, module = world["object_run"], world["module"]
    assert run.results["test"]["total"] == 100 and np.isfinite(run.metrics[-1]["train_loss"])
    assert run.model is module  # trained in place


def test_every_leaf_module_is_listed_with_its_volume(world):
    module = world["module"]
    seen: dict[str, tuple] = {}

    def record(name: str):
        def hook(_module, _args, out) -> None:  # (returning a value would replace the output)
            seen.setdefault(name, tuple(out.shape[1:]))
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in module.named_modules()
             if name and not list(m.children())]
    with torch.no_grad():
        module.eval()(torch.zeros(1, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    layers = network_graph(module, Volume(28, 28, 1)).nodes
    assert [la.name for la in layers[1:]] == list(seen)  # the leaves, in call order
    for layer in layers[1:]:
        shape = seen[layer.name]
        assert layer.out_volume.numel == int(np.prod(shape))
        if len(shape) == 3:
            assert layer.out_volume.shape == shape
    assert layers[0].name == "(input)" and layers[0].out_volume == Volume(28, 28, 1)


def served_id(client: TestClient) -> str:
    models = client.get("/api/models").json()["models"]
    return next(m["id"] for m in models if m["title"] == "resnet-file")


def test_module_runs_are_skipped_without_trust(world):
    body = world["plain"].get("/api/models").json()
    assert all(m["title"] not in ("resnet-file", "resnet-object") for m in body["models"])
    reasons = {Path(s["path"]).name: s["reason"] for s in body["skipped"]}
    assert "--trust-code" in reasons["resnet-file"]
    assert "no code kept" in reasons["resnet-object"]


def test_module_runs_are_served_with_trust(world):
    client = world["client"]
    body = client.get("/api/models").json()
    reasons = {Path(s["path"]).name: s["reason"] for s in body["skipped"]}
    assert "resnet-object" in reasons  # no code to rebuild it from, trusted or not
    model_id = served_id(client)
    summary = next(m for m in body["models"] if m["id"] == model_id)
    net = world["file_run"].model
    assert summary["params"] == sum(p.numel() for p in net.parameters())
    assert summary["family"] == "convnet"
    described = client.get(f"/api/models/{model_id}").json()
    names = [la["name"] for la in described["layers"]]
    assert NESTED_CONV in names and "layer1.0.bn2" in names and "head.2" in names
    assert described["source"] == "module" and described["input"]["depth"] == 1


def test_skip_branches_are_described(world):
    client = world["client"]
    described = client.get(f"/api/models/{served_id(client)}").json()
    index = {la["name"]: la["index"] for la in described["layers"]}
    skips = {(b["from"], b["to"], b["kind"]) for b in described["branches"]}
    # block 0's input (the stem's relu) joins after its bn2; block 1's input is that join
    assert skips == {(index["stem.2"], index["layer1.1.conv1"], "add"),
                     (index["layer1.0.bn2"], index["head.0"], "add")}
    assert described["graph_note"] is None


def sample_input(world) -> tuple[dict, torch.Tensor]:
    test = convscope.load_dataset("mnist", "test", world["data"], download=False)
    return {"sample": {"dataset": "mnist", "index": 3}}, to_input(test.images[3])


def test_nested_conv_activations_equal_a_direct_hook(world):
    client, net = world["client"], world["file_run"].model
    model_id = served_id(client)
    index = {la["name"]: la["index"] for la in client.get(f"/api/models/{model_id}").json()
             ["layers"]}[NESTED_CONV]
    ref, x = sample_input(world)
    body = client.post(f"/api/models/{model_id}/activations",
                       json={**ref, "layers": [index]}).json()
    seen = []
    hook = net.get_submodule(NESTED_CONV).register_forward_hook(
        lambda m, args, out: seen.append(out.detach()))
    with torch.no_grad():
        net.eval()(x[None])
    hook.remove()
    [layer] = body["layers"]
    assert layer["index"] == index and layer["type"] == "conv"
    assert torch.allclose(decode(layer["output"]), seen[0][0], atol=1e-5)


def test_nested_conv_weights_equal_the_modules(world):
    client, net = world["client"], world["file_run"].model
    model_id = served_id(client)
    layers = client.get(f"/api/models/{model_id}").json()["layers"]
    nested = next(la for la in layers if la["name"] == NESTED_CONV)
    assert nested["has_weights"] and nested["params"]["filters"] == 8
    body = client.get(f"/api/models/{model_id}/layers/{nested['index']}/weights").json()
    assert torch.equal(decode(body["weights"]), net.get_submodule(NESTED_CONV).weight.detach())
    assert body["bias"] is None
    relu = next(la for la in layers if la["name"] == "layer1.0.relu")
    assert client.get(f"/api/models/{model_id}/layers/{relu['index']}/weights").status_code \
        == 404


def test_predict_gives_probabilities(world):
    client, net = world["client"], world["file_run"].model
    model_id = served_id(client)
    ref, x = sample_input(world)
    body = client.post(f"/api/models/{model_id}/predict", json=ref).json()
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        expected = net.eval()(x[None]).softmax(1)[0]
    assert body["probabilities"] == pytest.approx(expected.tolist(), abs=1e-5)
    shown = client.post(f"/api/models/{model_id}/activations", json=ref).json()
    assert shown["prediction"] == body["class"]


def test_conv_step_of_a_nested_conv(world):
    client, net = world["client"], world["file_run"].model
    model_id = served_id(client)
    ref, x = sample_input(world)
    node = next(la for la in network_graph(net, Volume(28, 28, 1)).nodes
                if la.name == NESTED_CONV)
    source = activations(net, x)[node.index - 1]  # its input: bn1 -> relu
    expected = torch.nn.functional.conv2d(source[None], net.get_submodule(NESTED_CONV).weight,
                                          None, 1, 1)[0]
    assert conv_step(net, x, node.index, 2, 5, 7).output == \
        pytest.approx(expected[2, 7, 5].item(), abs=1e-4)
    body = client.post(f"/api/models/{model_id}/conv-step",
                       json={**ref, "layer": node.index, "filter": 2, "x": 5, "y": 7}).json()
    assert body["output"] == pytest.approx(expected[2, 7, 5].item(), abs=1e-4)


def test_spec_residual_blocks_are_opened():
    """A spec's residual block lists its inner layers before the block (the add), each
    inspectable, and its skip is a branch from the block's input to the add."""
    net = SpecNet([{"type": "input", "sx": 8, "sy": 8, "depth": 2},
                   {"type": "conv", "sx": 3, "filters": 4, "pad": 1},
                   {"type": "residual", "layers": [
                       {"type": "conv", "sx": 3, "filters": 4, "pad": 1},
                       {"type": "relu"}]},
                   {"type": "softmax", "num_classes": 3}])
    graph = network_graph(net)
    assert [n.type for n in graph.nodes] == ["input", "conv", "conv", "relu", "residual", "fc",
                                             "softmax"]
    assert [(b.source, b.target, b.kind) for b in graph.branches] == [(1, 4, "add")]
    x = torch.randn(2, 8, 8)
    outs = activations(net, x)
    inner = net.get_submodule(graph.nodes[2].name)
    assert torch.allclose(outs[2], inner(outs[1][None])[0], atol=1e-6)
    assert torch.allclose(outs[4], outs[1] + outs[3], atol=1e-6)
    assert torch.equal(layer_weights(net, 2)[0], inner.weight.detach())


def test_spec_branch_is_drawn_from_the_layer_it_reads():
    """A branch starts a second head from an earlier layer: an "input" branch to it, and its
    output is that layer's."""
    net = SpecNet([{"type": "input", "sx": 8, "sy": 8, "depth": 2},
                   {"type": "conv", "sx": 3, "filters": 4, "pad": 1},
                   {"type": "fc", "num_neurons": 3},
                   {"type": "branch", "from": 1}, {"type": "global_pool", "kind": "avg"},
                   {"type": "concat", "from": 2}])
    graph = network_graph(net)
    assert [(b.source, b.target, b.kind) for b in graph.branches] == [
        (1, 3, "input"), (2, 5, "concat")]
    outs = activations(net, torch.randn(2, 8, 8))
    assert torch.equal(outs[3], outs[1])
    assert torch.allclose(outs[5][:4, 0, 0], outs[1].mean(dim=(1, 2)), atol=1e-6)


def test_untraceable_module_is_a_plain_sequence():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.fc = nn.Linear(2 * 26 * 26, 3)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                x = -x
            return self.fc(self.conv(x).flatten(1))

    graph = network_graph(Branchy(), Volume(28, 28, 1))
    assert [n.name for n in graph.nodes] == ["(input)", "conv", "fc"]
    assert graph.branches == [] and graph.note.startswith("drawn as a plain sequence")


def test_serve_cli_takes_trust_code():
    """``convscope serve --help`` names --trust-code (the flag reaches create_app)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-m", "convscope", "serve", "--help"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--trust-code" in out.stdout


def test_probes_in_two_threads_do_not_mix():
    """The explorer runs a model in two threads at once: each hook records its own pass."""
    class Slow(nn.Module):
        def forward(self, x):
            time.sleep(0.05)  # so the passes overlap
            return x * 2

    net = nn.Sequential(Slow(), nn.Conv2d(1, 2, 3), nn.ReLU())
    xs = [torch.randn(1, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    expected = [activations(net, x) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda x: activations(net, x), xs))
    for mine, theirs in zip(expected, found, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=True))


def test_a_broken_module_run_is_skipped_with_one_line(world, tmp_path: Path):
    """A module run whose recorded input does not fit the module, or whose kept code was
    edited, is skipped with a one-line reason; the others are still served."""
    runs = tmp_path / "runs"
    for name in ("wrong-input", "edited", "good"):
        shutil.copytree(world["file_run"].path, runs / name)
    config = runs / "wrong-input" / "config.yaml"
    document = yaml.safe_load(config.read_text())
    document["data"]["input"] = [28, 28, 3]  # the module's stem takes one channel
    config.write_text(yaml.safe_dump(document))
    kept = next((runs / "edited" / "model_code").glob("*.py"))
    kept.write_text(kept.read_text() + "\nprint('edited')\n")
    app = create_app(runs_dir=runs, data_dir=str(world["data"]), trust_code=True,
                     bundled_dir=tmp_path / "no-bundled")
    with TestClient(app) as client:
        body = client.get("/api/models").json()
    assert [m["id"] for m in body["models"]] == ["run-good"]
    reasons = {Path(s["path"]).name: s["reason"] for s in body["skipped"]}
    assert "forward pass on a zero 28x28x3 input" in reasons["wrong-input"]
    assert "sha256 differs" in reasons["edited"]
    assert all("\n" not in reason for reason in reasons.values())
