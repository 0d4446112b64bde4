"""The chapter's famous architectures (lenet5-32, alexnet, vgg16): volumes, parameters and
multiply-adds against the published figures (from the spec alone: nothing big is built), how
they appear (CLI, explorer), and ``convscope import-weights`` mapping a user's safetensors or
ONNX file onto them."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import convscope
from convscope.cli import main
from convscope.import_weights import import_weights
from convscope.layer_kinds import viewer_names
from convscope.registry import get_model_entry
from convscope.server.encode import tensor_json

SHAPED = ("input", "conv", "pool", "fc")  # the layers a figure draws (not relu, lrn, dropout)

# (volumes of the shaped layers, parameters, multiply-adds per image)
PUBLISHED = {
    # the chapter's LeNet-5 figure: INPUT 32x32, C1 6@28x28, S2 6@14x14, C3 16@10x10, S4 16@5x5,
    # C5 120, F6 84, OUTPUT 10 (C3 fully connected: 2,416 rather than the paper's 1,516 weights)
    "lenet5-32": (["32x32x1", "28x28x6", "14x14x6", "10x10x16", "5x5x16", "1x1x120", "1x1x84",
                   "1x1x10"], 61_706, 416_520),
    # Krizhevsky et al. 2012 as one tower; 1.14 G multiply-adds (the 724 M often quoted is the
    # two-group network, whose conv2, conv4 and conv5 see half the channels)
    "alexnet": (["227x227x3", "55x55x96", "27x27x96", "27x27x256", "13x13x256", "13x13x384",
                 "13x13x384", "13x13x256", "6x6x256", "1x1x4096", "1x1x4096", "1x1x1000"],
                62_378_344, 1_135_256_096),
    # Simonyan and Zisserman 2014, configuration D: 138 M parameters, 15.5 G multiply-adds
    "vgg16": (["224x224x3", *["224x224x64"] * 2, "112x112x64", *["112x112x128"] * 2, "56x56x128",
               *["56x56x256"] * 3, "28x28x256", *["28x28x512"] * 3, "14x14x512",
               *["14x14x512"] * 3, "7x7x512", "1x1x4096", "1x1x4096", "1x1x1000"],
              138_357_544, 15_470_264_320),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_volumes_parameters_and_multiply_adds(name: str):
    entry = get_model_entry(name)
    layers = convscope.resolve(entry.spec)
    volumes, params, macs = PUBLISHED[name]
    assert [str(la.out_volume) for la in layers if la.type in SHAPED] == volumes
    assert sum(la.num_params for la in layers) == params
    assert sum(la.macs for la in layers) == macs
    assert entry.untrained


def test_alexnet_layers_and_torch_agree():
    layers = convscope.resolve(get_model_entry("alexnet").spec)
    assert [la.type for la in layers[:5]] == ["input", "conv", "relu", "lrn", "pool"]
    assert layers[3].params == {"k": 2, "n": 5, "alpha": 5e-4, "beta": 0.75}  # paper's 1e-4 * n
    assert viewer_names(layers)[1:5] == ["CONV_0", "RELU_0", "LOCAL_RESPONSE_NORM_0",
                                         "MAX_POOL_0"]
    assert viewer_names(layers)[16] == "FC_0"
    net = convscope.build_model(get_model_entry("alexnet").spec)
    assert sum(p.numel() for p in net.parameters()) == 62_378_344


def test_the_cli_marks_them_untrained(capsys):
    assert main(["models"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    for name in PUBLISHED:
        assert "[untrained]" in listed[name]
    assert "[untrained]" not in listed["lenet5"]
    assert re.search(r"alexnet\s+-\s+62,378,344", listed["alexnet"])
    assert main(["summary", "vgg16"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"total\s+138,357,544\s+15,470,264,320", out)
    assert "untrained: convscope has no weights for vgg16" in out
    assert main(["summary", "lenet5"]) == 0
    assert "untrained" not in capsys.readouterr().out


def _jpeg(width: int, height: int) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client():
    """The explorer as ``convscope serve`` starts it (bundled models, then the architectures)."""
    from starlette.testclient import TestClient

    from convscope.server import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


def test_the_explorer_offers_them_with_seeded_random_weights(client):
    listed = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert all(listed[name]["untrained"] for name in PUBLISHED)
    assert not any(m["untrained"] for m in listed.values() if m["kind"] != "untrained")
    described = client.get("/api/models/alexnet").json()
    assert described["untrained"] and described["seed"] == 0
    assert described["title"] == "alexnet (untrained)"
    assert described["totals"] == {"params": 62_378_344, "macs": 1_135_256_096}
    assert [la["viewer_name"] for la in described["layers"][1:5]] == [
        "CONV_0", "RELU_0", "LOCAL_RESPONSE_NORM_0", "MAX_POOL_0"]
    # a photo upload: only the requested layer is sent
    response = client.post("/api/models/alexnet/activations/upload?layers=3",
                           files={"image": ("photo.jpg", _jpeg(320, 240), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [la["index"] for la in body["layers"]] == [3]
    assert body["layers"][0]["output"]["shape"] == [96, 55, 55]
    assert len(body["probabilities"]) == 1000
    refused = client.get("/api/models/alexnet/layers/16/weights")  # fc 4096 on 6x6x256
    assert refused.status_code == 400
    assert "layer 16 has 37,748,736 weights, more than the 8,000,000" in refused.json()["error"]
    assert client.get("/api/models/alexnet/layers/22/weights").status_code == 200  # fc 1000
    first = client.get("/api/models/lenet5-32/layers/1/weights").json()["weights"]
    torch.manual_seed(0)
    fresh = convscope.build_model(get_model_entry("lenet5-32").spec)
    assert first["shape"] == list(fresh.blocks[1].weight.shape)
    assert first["data"] == tensor_json(fresh.blocks[1].weight)["data"]  # seed 0, reproducible


# ---- import-weights --------------------------------------------------------------------------

LENET = "lenet5-32"
# torchvision's naming: classifier.* sorts before features.*, yet the layers map in order
TORCHVISION_NAMES = {"blocks.1": "features.0", "blocks.4": "features.3", "blocks.7": "features.6",
                     "blocks.9": "classifier.1", "blocks.11": "classifier.4"}


@pytest.fixture
def lenet() -> convscope.SpecNet:
    torch.manual_seed(3)
    return convscope.build_model(get_model_entry(LENET).spec).eval()


def renamed(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in net.state_dict().items():
        prefix, suffix = key.rsplit(".", 1)
        out[f"{TORCHVISION_NAMES[prefix]}.{suffix}"] = value.clone()
    return out


def assert_same_outputs(run_dir: Path, net: convscope.SpecNet) -> None:
    run = convscope.load_run(run_dir)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(run.model(x), net(x), rtol=0, atol=0)


def test_import_safetensors(tmp_path: Path, lenet, capsys):
    weights = tmp_path / "lenet.safetensors"
    save_file(renamed(lenet), weights)
    assert main(["import-weights", LENET, str(weights), "--out", str(tmp_path / "run")]) == 0
    assert "mapped" in capsys.readouterr().out
    assert_same_outputs(tmp_path / "run", lenet)
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "format: safetensors" in config and "lenet.safetensors" in config
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == {}


def test_import_onnx_exported_from_torch(tmp_path: Path, lenet):
    from convscope.onnx_export import export_onnx

    onnx_path = export_onnx(lenet, tmp_path / "lenet.onnx", (1, 32, 32))
    import_weights(LENET, onnx_path, tmp_path / "run")
    assert_same_outputs(tmp_path / "run", lenet)


def test_import_onnx_built_with_onnx_helper(tmp_path: Path):
    """A two-layer ONNX graph with arbitrary initializer names, in graph order."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    spec = [{"type": "input", "sx": 6, "sy": 6, "depth": 2},
            {"type": "conv", "sx": 3, "filters": 4, "activation": "relu"},
            {"type": "softmax", "num_classes": 3}]
    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4)
    w2, b2 = rng.normal(size=(3, 64)), rng.normal(size=3)
    init = [numpy_helper.from_array(a.astype(np.float32), name)
            for name, a in (("zz_conv_w", w1), ("zz_conv_b", b1), ("aa_fc_w", w2),
                            ("aa_fc_b", b2))]
    nodes = [helper.make_node("Conv", ["x", "zz_conv_w", "zz_conv_b"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "aa_fc_w", "aa_fc_b"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 6, 6])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 3])], init)
    onnx.save(helper.make_model(graph), tmp_path / "net.onnx")
    (tmp_path / "net.json").write_text(json.dumps(spec))
    run = import_weights(str(tmp_path / "net.json"), tmp_path / "net.onnx", tmp_path / "run")
    torch.testing.assert_close(run.model.blocks[1].weight, torch.tensor(w1, dtype=torch.float32))
    torch.testing.assert_close(run.model.blocks[3].weight, torch.tensor(w2, dtype=torch.float32))


@pytest.mark.parametrize("change,message", [
    (lambda s: s.pop("classifier.4.weight"),
     "layer 11 (fc 10) needs a weight of shape 10x84, and the file has none left"),
    (lambda s: s.update({"features.3.weight": torch.zeros(16, 6, 3, 3)}),
     "layer 4 (conv 5x5 x16 s1 p0) needs a weight of shape 16x6x5x5, and the file has none "
     "left; the next unused tensor is 'classifier.1.bias' (84)"),
    (lambda s: s.update({"extra.weight": torch.zeros(7, 7)}),
     "1 of its 11 tensors fit no layer of the network ('extra.weight' (7x7))"),
    (lambda s: s.update({"features.0.bias": torch.full((6,), float("nan"))}),
     "tensor 'features.0.bias' holds NaN or infinite values"),
])
def test_mismatches_are_refused_in_one_line(tmp_path: Path, lenet, capsys, change, message):
    state = renamed(lenet)
    change(state)
    weights = tmp_path / "w.safetensors"
    save_file(state, weights)
    assert main(["import-weights", LENET, str(weights), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: w.safetensors: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize("name,content,message", [
    ("model.pth", b"\x80\x04", "never pickled .pt/.pth files"),
    ("bad.safetensors", b"garbage", "not a readable safetensors file"),
    ("bad.onnx", b"\x00\x01garbage", "not a readable ONNX model"),
])
def test_other_files_are_refused(tmp_path: Path, capsys, name: str, content: bytes,
                                 message: str):
    (tmp_path / name).write_bytes(content)
    assert main(["import-weights", LENET, str(tmp_path / name), "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_a_used_out_directory_is_refused(tmp_path: Path, lenet, capsys):
    save_file(renamed(lenet), tmp_path / "w.safetensors")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert main(["import-weights", LENET, str(tmp_path / "w.safetensors"), "--out",
                 str(tmp_path / "run")]) == 2
    assert "exists and is not empty; choose another --out" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["notes.txt"]
