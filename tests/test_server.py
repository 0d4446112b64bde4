"""The explorer's HTTP API (docs/api.md) end to end, on tiny runs trained on tiny generated data."""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import cifar_bytes, write_mnist
from fastapi.testclient import TestClient
from PIL import Image

import convscope
from convscope.augment import to_input
from convscope.data import DATASETS
from convscope.errors import RunError
from convscope.probes import activations
from convscope.server import create_app
from convscope.tasks import get_task
from convscope.tta import with_tta

MNIST_CONV = [{"type": "input", "sx": 24, "sy": 24, "depth": 1},
              {"type": "conv", "sx": 5, "filters": 4, "pad": 2, "activation": "relu"},
              {"type": "pool", "sx": 2},
              {"type": "conv", "sx": 3, "filters": 4, "stride": 2},
              {"type": "softmax", "num_classes": 10}]
MNIST_FC = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
            {"type": "fc", "num_neurons": 6, "activation": "sigmoid"},
            {"type": "softmax", "num_classes": 10}]
CIFAR_CONV = [{"type": "input", "sx": 32, "sy": 32, "depth": 3},
              {"type": "conv", "sx": 3, "filters": 4, "stride": 2, "activation": "relu"},
              {"type": "pool", "sx": 3, "stride": 3},
              {"type": "softmax", "num_classes": 10}]


def decode(tensor: dict) -> torch.Tensor:
    assert tensor["dtype"] == "float32"
    data = np.frombuffer(base64.b64decode(tensor["data"]), dtype="<f4")
    return torch.from_numpy(data.reshape(tensor["shape"]).copy())


def decode_bytes(tensor: dict) -> torch.Tensor:
    assert tensor["dtype"] == "uint8"
    data = np.frombuffer(base64.b64decode(tensor["data"]), dtype=np.uint8)
    return torch.from_numpy(data.reshape(tensor["shape"]).copy())


def write_data(root: Path) -> Path:
    """MNIST whose class k is a bright square at a class-specific spot, and random CIFAR-10."""
    write_mnist(root, train=300, test=100)
    rng = np.random.default_rng(0)
    cifar = root / "cifar-10-batches-bin"
    cifar.mkdir()
    for names, n in (([f"data_batch_{i}.bin" for i in range(1, 6)], 50), (["test_batch.bin"], 20)):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        per = n // len(names)
        for i, name in enumerate(names):
            part = slice(i * per, (i + 1) * per)
            (cifar / name).write_bytes(cifar_bytes(images[part], labels[part]))
    return root


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` grey pixels, with (far too little) zero data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def encoded(image: np.ndarray, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """Generated data, three tiny runs (one also "bundled") and a client for the app."""
    root = tmp_path_factory.mktemp("server")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONVSCOPE_CACHE", str(root / "cache"))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        data = write_data(root / "data")
        runs = root / "runs"
        for name, spec, dataset in (("mnist-conv", MNIST_CONV, "mnist"),
                                    ("mnist-fc", MNIST_FC, "mnist"),
                                    ("cifar-conv", CIFAR_CONV, "cifar10")):
            torch.manual_seed(0)
            convscope.train(convscope.build_model(spec), dataset, out=runs / name,
                            data_dir=str(data), epochs=1, batch_size=16, lr=0.01,
                            progress=False)
        bundled = root / "bundled"
        shutil.copytree(runs / "mnist-fc", bundled / "models" / "tiny-fc")
        app = create_app([runs / "mnist-conv"], runs_dir=runs, data_dir=str(data),
                         bundled_dir=bundled)
        with TestClient(app) as client:
            yield {"client": client, "data": data, "runs": runs, "root": root}
        torch.set_num_threads(threads)


@pytest.fixture
def client(world) -> TestClient:
    return world["client"]


def sample_image(world, dataset: str, index: int) -> torch.Tensor:
    return convscope.load_dataset(dataset, "test", world["data"], download=False).images[index]


# ---- models --------------------------------------------------------------------------------


def test_models_lists_bundled_and_runs(client: TestClient):
    listed = client.get("/api/models").json()["models"]
    # after the bundled models, the untrained architectures (seeded random weights)
    assert [m["id"] for m in listed if m["kind"] == "untrained"] == ["lenet5-32", "alexnet",
                                                                     "vgg16"]
    models = {m["id"]: m for m in listed if m["kind"] != "untrained"}
    assert set(models) == {"tiny-fc", "run-mnist-conv", "run-mnist-fc", "run-cifar-conv"}
    assert models["tiny-fc"]["kind"] == "bundled" and models["run-mnist-conv"]["kind"] == "run"
    assert models["run-mnist-conv"]["family"] == "convnet"
    assert models["run-mnist-fc"]["family"] == "ordinary"
    assert models["run-cifar-conv"]["dataset"] == "cifar10"
    conv = models["run-mnist-conv"]
    assert conv["params"] == sum(la.num_params for la in convscope.resolve(MNIST_CONV))
    assert 0 <= conv["test_accuracy"] <= 1 and "100 images" in conv["accuracy_source"]
    assert {m["registry"] for m in models.values()} == {None}  # trained from built models


def test_models_name_their_registry_entry(world, tmp_path: Path):
    """A run trained from a registry name (config.yaml: model.ref) lists that name, whatever
    its id; a live job of a registry model too."""
    run = tmp_path / "registry-run"
    torch.manual_seed(0)
    convscope.train("mnist-templates", "mnist", out=run, data_dir=str(world["data"]), epochs=1,
                    batch_size=64, progress=False)
    bundled = tmp_path / "bundled" / "models"
    shutil.copytree(run, bundled / "my-templates")
    shutil.copytree(world["runs"] / "mnist-fc", bundled / "spec-net")
    with TestClient(create_app([run], runs_dir=tmp_path / "runs", data_dir=str(world["data"]),
                               bundled_dir=bundled.parent)) as client:
        models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
        assert models["my-templates"]["registry"] == "mnist-templates"
        assert models["my-templates"]["title"] == "mnist-templates"
        assert models["run-registry-run"]["registry"] == "mnist-templates"
        assert models["spec-net"]["registry"] is None
        job = client.post("/api/train", json={"model": "mnist-templates", "epochs": 1}).json()
        live = {m["id"]: m for m in client.get("/api/models").json()["models"]}[job["model_id"]]
        assert live["registry"] == "mnist-templates" and live["kind"] == "live"
        client.post(f"/api/train/{job['job']}/stop")


def test_model_description(client: TestClient):
    body = client.get("/api/models/run-mnist-conv").json()
    layers = convscope.resolve(MNIST_CONV)
    assert body["input"] == {"sx": 24, "sy": 24, "depth": 1, "scale": 1 / 255, "offset": -0.5}
    assert body["classes"] == [str(d) for d in range(10)]
    assert body["output_names"] == body["classes"]  # the softmax's channels
    assert [la["type"] for la in body["layers"]] == [la.type for la in layers]
    assert body["layers"][0]["in_volume"] is None
    conv = body["layers"][1]
    assert conv["label"] == "conv 5x5 x4 s1 p2" and conv["has_weights"]
    assert conv["out_volume"] == {"sx": 24, "sy": 24, "depth": 4}
    assert conv["in_volume"] == {"sx": 24, "sy": 24, "depth": 1}
    assert not body["layers"][2]["has_weights"]  # relu
    assert body["totals"] == {"params": sum(la.num_params for la in layers),
                              "macs": sum(la.macs for la in layers)}


def test_unknown_model_is_404(client: TestClient):
    for response in (client.get("/api/models/nope"),
                     client.get("/api/models/..%2F..%2Fetc/layers/1/weights"),
                     client.post("/api/models/nope/activations",
                                 json={"sample": {"dataset": "mnist", "index": 0}}),
                     client.get("/api/models/nope/confusion")):
        assert response.status_code == 404
        assert "error" in response.json()


# ---- datasets ------------------------------------------------------------------------------


def test_datasets_from_the_data_dir(client: TestClient, world):
    listed = {d["name"]: d for d in client.get("/api/datasets").json()["datasets"]}
    assert listed["mnist"]["source"] == "data-dir" and listed["mnist"]["count"] == 100
    assert listed["cifar10"]["classes"][0] == "airplane" and listed["cifar10"]["count"] == 20
    page = client.get("/api/datasets/mnist/samples?offset=95&limit=10").json()
    labels = convscope.load_dataset("mnist", "test", world["data"], download=False).labels
    assert page["total"] == 100 and page["source"] == "data-dir"
    assert page["samples"] == [{"index": i, "label": int(labels[i])} for i in range(95, 100)]
    assert client.get("/api/datasets/svhn/samples").status_code == 404
    assert client.get("/api/datasets/mnist/samples?offset=-1").status_code == 400
    assert client.get("/api/datasets/mnist/samples?limit=100000").status_code == 400


def test_sample_png(client: TestClient, world):
    response = client.get("/api/datasets/cifar10/samples/3.png?scale=2")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    picture = np.asarray(Image.open(io.BytesIO(response.content)))
    expected = sample_image(world, "cifar10", 3).permute(1, 2, 0).numpy()
    assert picture.shape == (64, 64, 3) and np.array_equal(picture[::2, ::2], expected)
    grey = np.asarray(Image.open(io.BytesIO(client.get("/api/datasets/mnist/samples/0.png")
                                           .content)))
    assert np.array_equal(grey, sample_image(world, "mnist", 0)[0].numpy())
    assert client.get("/api/datasets/mnist/samples/100.png").status_code == 404
    assert client.get("/api/datasets/mnist/samples/0.png?scale=0").status_code == 400
    assert client.get("/api/datasets/mnist/samples/x.png").status_code == 404


# ---- activations ---------------------------------------------------------------------------


def check_activations(body: dict, model_id: str, world, image: torch.Tensor) -> None:
    """The response equals the probes run on the run's model for ``image`` (uint8, fitted)."""
    net = convscope.load_run(world["runs"] / model_id.removeprefix("run-")).model
    x = to_input(image)
    assert torch.equal(decode(body["input"]), x)
    expected = activations(net, x)
    assert [la["index"] for la in body["layers"]] == list(range(len(net.layers)))
    for layer, out, spec in zip(body["layers"], expected, net.layers, strict=True):
        got = decode(layer["output"])
        assert tuple(got.shape) == spec.out_volume.shape and layer["type"] == spec.type
        assert torch.allclose(got, out, atol=1e-5)
        assert layer["min"] == pytest.approx(out.min().item(), abs=1e-5)
        assert layer["max"] == pytest.approx(out.max().item(), abs=1e-5)
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert body["prediction"] == int(np.argmax(body["probabilities"]))
    assert body["classes"] == net_classes(world, model_id)


def net_classes(world, model_id: str) -> list[str]:
    return convscope.load_run(world["runs"] / model_id.removeprefix("run-")).data_info["classes"]


def test_activations_of_a_sample(client: TestClient, world):
    body = client.post("/api/models/run-mnist-conv/activations",
                       json={"sample": {"dataset": "mnist", "index": 7}}).json()
    check_activations(body, "run-mnist-conv", world, sample_image(world, "mnist", 7)[:, 2:26, 2:26])


def test_activations_of_pixels_grey_and_rgb(client: TestClient, world):
    image = sample_image(world, "mnist", 5)[0]
    grey = {"width": 28, "height": 28, "depth": 1, "data": image.flatten().tolist()}
    body = client.post("/api/models/run-mnist-fc/activations", json={"pixels": grey}).json()
    check_activations(body, "run-mnist-fc", world, image[None])
    rgb = {"width": 28, "height": 28, "depth": 3,
           "data": image[:, :, None].expand(28, 28, 3).flatten().tolist()}
    body = client.post("/api/models/run-mnist-fc/activations", json={"pixels": rgb}).json()
    check_activations(body, "run-mnist-fc", world, image[None])  # grey again, exactly
    body = client.post("/api/models/run-cifar-conv/activations", json={"pixels": grey}).json()
    assert decode(body["input"]).shape == (3, 32, 32)  # grey -> RGB, resized 28 -> 32


def test_bad_inputs(client: TestClient):
    url = "/api/models/run-mnist-fc/activations"
    pixels = {"width": 28, "height": 28, "depth": 1, "data": [0] * 784}
    cases = [
        ({"sample": {"dataset": "mnist", "index": 100}}, 404),
        ({"sample": {"dataset": "mnist", "index": -1}}, 404),
        ({"sample": {"dataset": "imagenet", "index": 0}}, 404),
        ({"pixels": {**pixels, "data": [0] * 783}}, 400),
        ({"pixels": {**pixels, "data": [256] * 784}}, 400),
        ({"pixels": {**pixels, "depth": 2, "data": [0] * 784 * 2}}, 400),
        ({"pixels": {**pixels, "width": 513, "data": [0] * 513 * 28}}, 400),
        ({"pixels": pixels, "sample": {"dataset": "mnist", "index": 0}}, 400),
        ({}, 400),
        ({"pixel": pixels}, 400),
    ]
    for body, status in cases:
        response = client.post(url, json=body)
        assert response.status_code == status, (body.keys(), response.text)
        assert response.json()["error"]
    response = client.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert client.post(url, json={"pixels": pixels}).status_code == 200  # still serving


def test_upload(client: TestClient, world):
    url = "/api/models/run-mnist-fc/activations/upload"
    image = sample_image(world, "mnist", 3)[0].numpy()
    for fmt in ("PNG", "JPEG"):
        response = client.post(url, files={"image": ("x", encoded(image, fmt), "image/png")})
        assert response.status_code == 200
    body = client.post(url, files={"image": ("d.png", encoded(image), "image/png")}).json()
    check_activations(body, "run-mnist-fc", world, torch.from_numpy(image)[None])
    rgb = np.repeat(np.kron(image, np.ones((4, 6), np.uint8))[:, :, None], 3, axis=2)
    body = client.post(url, files={"image": ("big.png", encoded(rgb), "image/png")}).json()
    assert decode(body["input"]).shape == (1, 28, 28)  # 168x112 RGB: cropped square, resized


def test_an_upload_is_cropped_then_resized_once(client: TestClient,
                                                monkeypatch: pytest.MonkeyPatch):
    """A non-square upload: its centred square, resized ONCE (one bilinear filter) to the
    input, whatever its size; and turned as its EXIF orientation says. (MNIST's photo steps,
    inverting and centring a digit, are switched off here: tests/test_photos.py.)"""
    from dataclasses import replace

    monkeypatch.setitem(DATASETS, "mnist", replace(DATASETS["mnist"], polarity="any",
                                                   centre=None))
    rng = np.random.default_rng(1)
    for width, height in ((150, 90), (25, 70)):  # larger than twice the input, smaller
        colour = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        side = min(width, height)
        box = ((width - side) // 2, (height - side) // 2)
        box = (*box, box[0] + side, box[1] + side)
        for model_id, size, picture in (("run-cifar-conv", 32, Image.fromarray(colour)),
                                        ("run-mnist-fc", 28, Image.fromarray(colour[:, :, 0]))):
            body = client.post(f"/api/models/{model_id}/activations/upload",
                               files={"image": ("x.png", encoded(np.asarray(picture)))}).json()
            once = picture.resize((size, size), Image.Resampling.BILINEAR, box=box)
            expected = torch.from_numpy(np.asarray(once).reshape(size, size, -1).copy())
            assert torch.equal(decode_bytes(body["image"]), expected.permute(2, 0, 1))
            assert torch.equal(decode(body["input"]), to_input(expected.permute(2, 0, 1)))
    turned = Image.fromarray(rng.integers(0, 256, (30, 60), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    out = io.BytesIO()
    turned.save(out, format="PNG", exif=exif)
    url = "/api/models/run-mnist-fc/activations/upload"
    body = client.post(url, files={"image": ("t.png", out.getvalue())}).json()
    upright = client.post(url, files={"image": ("u.png", encoded(np.asarray(
        turned.transpose(Image.Transpose.ROTATE_270))))}).json()
    assert body["image"] == upright["image"]


def test_output_names_follow_the_task():
    def output_names(task, classes, depth):
        return get_task(task).output_names(classes, depth)

    digits = [str(d) for d in range(10)]
    assert output_names("classify", digits, 10) == digits
    assert output_names("localize", digits, 14)[9:] == ["9", "box x", "box y", "box w", "box h"]
    assert output_names("detect", digits, 15)[:6] == ["objectness", "box x", "box y", "box w",
                                                       "box h", "0"]
    assert output_names("segment", digits, 11)[-1] == "background"
    assert output_names("classify", digits, 6) == ["0", "1", "2", "3", "4", "5"]  # hidden fc


def test_activations_of_some_layers(client: TestClient, world):
    ref = {"sample": {"dataset": "mnist", "index": 7}}
    url = "/api/models/run-mnist-conv/activations"
    everything = client.post(url, json=ref).json()
    some = client.post(url, json={**ref, "layers": [4, 1]}).json()
    assert [la["index"] for la in some["layers"]] == [1, 4]
    assert some["layers"] == [everything["layers"][1], everything["layers"][4]]
    assert some["image"] == everything["image"] and some["input"] == everything["input"]
    assert some["probabilities"] == everything["probabilities"]  # from the last layer still
    image = sample_image(world, "mnist", 7)[:, 2:26, 2:26]
    assert torch.equal(decode_bytes(everything["image"]), image)
    upload = client.post("/api/models/run-mnist-fc/activations/upload?layers=0&layers=2",
                         files={"image": ("d.png", encoded(image[0].numpy()))}).json()
    assert [la["index"] for la in upload["layers"]] == [0, 2]
    assert client.post(url, json={**ref, "layers": []}).json()["layers"] == []
    for bad in ([9], [-1]):
        response = client.post(url, json={**ref, "layers": bad})
        assert response.status_code == 404 and "no layer" in response.json()["error"]
    assert client.post(url, json={**ref, "layers": "all"}).status_code == 400


def test_bad_uploads(client: TestClient):
    url = "/api/models/run-mnist-fc/activations/upload"

    def post(content: bytes) -> int:
        response = client.post(url, files={"image": ("f", content, "application/octet-stream")})
        assert response.json()["error"]
        return response.status_code

    assert post(b"this is not an image") == 400
    assert post(encoded(np.zeros((8, 8), np.uint8), "GIF")) == 400  # an image, not PNG/JPEG
    assert post(encoded(np.zeros((8, 8), np.uint8))[:40]) == 400  # truncated
    assert post(b"\0" * (5 * 1024 * 1024 + 1)) == 413
    assert post(png_header_only(5000, 5000)) == 413  # 25 megapixels
    assert post(png_header_only(30000, 30000)) == 413  # PIL's DecompressionBombError
    assert post(png_header_only(100, 100)) == 400  # claims pixels it does not hold
    response = client.post(url, files={"picture": ("f.png", encoded(np.zeros((8, 8), np.uint8)))})
    assert response.status_code == 400
    assert client.post("/api/models/nope/activations/upload",
                       files={"image": ("f", b"x")}).status_code == 404


# ---- weights and conv steps ----------------------------------------------------------------


def test_weights(client: TestClient, world):
    conv = client.get("/api/models/run-mnist-conv/layers/1/weights").json()
    net = convscope.load_run(world["runs"] / "mnist-conv").model
    assert torch.equal(decode(conv["weights"]), net.blocks[1].weight.detach())
    assert torch.equal(decode(conv["bias"]), net.blocks[1].bias.detach())
    fc = client.get("/api/models/run-mnist-fc/layers/1/weights").json()
    assert fc["weights"]["shape"] == [6, 1, 28, 28] and fc["bias"]["shape"] == [6]
    last = client.get("/api/models/run-mnist-fc/layers/3/weights").json()
    assert last["weights"]["shape"] == [10, 6, 1, 1]
    for index in (2, 0, 99, -1):
        response = client.get(f"/api/models/run-mnist-fc/layers/{index}/weights")
        assert response.status_code == 404 and response.json()["error"]


def test_conv_step(client: TestClient, world):
    net = convscope.load_run(world["runs"] / "mnist-conv").model
    image = sample_image(world, "mnist", 9)[:, 2:26, 2:26]
    outs = activations(net, to_input(image))
    ref = {"sample": {"dataset": "mnist", "index": 9}}
    for layer, stride, pad, x, y in ((1, None, None, 0, 0), (1, None, None, 23, 11),
                                     (4, None, None, 4, 4), (4, 1, 1, 11, 0), (1, 3, 0, 6, 6)):
        body = {**ref, "layer": layer, "filter": 3, "x": x, "y": y}
        if stride is not None:
            body.update(stride=stride, pad=pad)
        step = client.post("/api/models/run-mnist-conv/conv-step", json=body).json()
        block = net.blocks[layer]
        s = stride or block.stride[0]
        p = block.padding[0] if pad is None else pad
        expected = F.conv2d(outs[layer - 1][None], block.weight, block.bias, s, p)[0]
        assert step["output"] == pytest.approx(expected[3, y, x].item(), abs=1e-5)
        assert (step["stride"], step["pad"]) == (s, p)
        assert step["out_size"] == {"sx": expected.shape[2], "sy": expected.shape[1]}
        assert step["window"] == {"x0": x * s - p, "y0": y * s - p}
        products = decode(step["products"])
        assert torch.allclose(products, decode(step["patch"]) * decode(step["weights"]))
        assert step["sum"] == pytest.approx(products.sum().item(), abs=1e-5)
        assert step["output"] == pytest.approx(step["sum"] + step["bias"])
    bad = [({"layer": 2}, 400), ({"layer": 3}, 400), ({"filter": 4}, 400), ({"x": 24}, 400),
           ({"stride": 0}, 400), ({"layer": 9}, 404)]
    for change, status in bad:
        body = {**ref, "layer": 1, "filter": 0, "x": 0, "y": 0, **change}
        response = client.post("/api/models/run-mnist-conv/conv-step", json=body)
        assert response.status_code == status, (change, response.text)
    response = client.post("/api/models/run-mnist-conv/conv-step", json={**ref, "layer": 1})
    assert response.status_code == 400


# ---- confusion -----------------------------------------------------------------------------


def test_confusion(client: TestClient, world):
    body = client.get("/api/models/run-mnist-conv/confusion?samples=3").json()
    test = convscope.load_dataset("mnist", "test", world["data"], download=False)
    evaluation = convscope.evaluate(convscope.load_run(world["runs"] / "mnist-conv").model, test)
    assert body["source"] == "test set from the data directory (100 images)"
    assert body["dataset"] == "mnist"
    assert body["confusion"] == evaluation.confusion
    assert body["accuracy"] == evaluation.accuracy and body["total"] == 100
    assert body["recall"] == evaluation.recall and body["precision"] == evaluation.precision
    for actual, row in enumerate(body["cells"]):
        for predicted, cell in enumerate(row):
            assert len(cell) == min(3, evaluation.confusion[actual][predicted])
            confidences = [c["confidence"] for c in cell]
            assert confidences == sorted(confidences, reverse=True)
            for c in cell:
                assert test.labels[c["index"]] == actual
                assert evaluation.predictions[c["index"]] == predicted
    more = client.get("/api/models/run-mnist-conv/confusion").json()  # cached, 64 per cell
    assert sum(len(cell) for row in more["cells"] for cell in row) == 100
    assert client.get("/api/models/run-mnist-conv/confusion?samples=-1").status_code == 400


def test_confusion_scores_a_run_as_it_was_scored(world, tmp_path: Path):
    """A run with test-time augmentation and bf16 gets its confusion matrix from the same
    averaged views under bf16 autocast, as its results.json and `convscope eval` do."""
    torch.manual_seed(0)
    run = convscope.train(convscope.build_model(MNIST_CONV), "mnist", out=tmp_path / "tta",
                          data_dir=str(world["data"]), epochs=1, batch_size=16, lr=0.01,
                          tta="flip", precision="bf16", progress=False)
    test = convscope.load_dataset("mnist", "test", world["data"], download=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scored = convscope.evaluate(with_tta(run.model, "flip"), test)
        plain = convscope.evaluate(run.model, test)
    assert scored.confusion != plain.confusion  # else this test could not tell them apart
    with TestClient(create_app([run.path], runs_dir=tmp_path / "runs",
                               data_dir=str(world["data"]))) as client:
        body = client.get("/api/models/run-tta/confusion").json()
        model = client.get("/api/models/run-tta").json()
        listed = {m["id"]: m for m in client.get("/api/models").json()["models"]}["run-tta"]
    assert listed["accuracy_source"].endswith("with flip test-time augmentation")
    assert model["tta"] == body["tta"] == "flip"
    assert model["metric"]["value"] == run.results["test"]["accuracy"]
    assert body["accuracy"] == run.results["test"]["accuracy"]
    assert body["confusion"] == scored.confusion == run.results["test"]["confusion"]


def write_summary(path: Path, first: int, labels: list[int]) -> None:
    """A ConvNetJS confusion summary (the ml4a format) of global images first, first + 1, ...:
    image i predicted as its label, except every third one as the next class."""
    confusion = [[0] * 10 for _ in range(10)]
    tops = [[[] for _ in range(10)] for _ in range(10)]
    for i, actual in enumerate(labels):
        predicted = actual if i % 3 else (actual + 1) % 10
        confusion[actual][predicted] += 1
        tops[actual][predicted].append({"idx": first + i, "prob": 0.9 - i / 100})
    summary = {"confusion": confusion, "tops": tops,
               "actuals": [sum(row) for row in confusion],
               "predictions": [sum(column) for column in zip(*confusion, strict=True)],
               "correct": sum(confusion[k][k] for k in range(10)), "total": len(labels)}
    path.write_text(json.dumps(summary))


def test_chapter_summaries(client: TestClient, world):
    assert client.get("/api/chapter/summaries").json() == {"summaries": []}
    folder = world["data"] / "ml4a"
    folder.mkdir()
    # MNIST training images 59,990..59,999 (beyond the data dir's 300) and test images 0..4.
    write_summary(folder / "mnist_summary_convnet.json", 59_990, [k % 10 for k in range(15)])
    write_summary(folder / "cifar10_summary_2layers.json", 0, [k % 10 for k in range(12)])
    try:
        check_chapter_summaries(client, world)
        (folder / "mnist_summary_broken.json").write_text("{")
        response = client.get("/api/chapter/summaries")
        assert response.status_code == 400 and "mnist_summary_broken.json" in response.text
    finally:
        shutil.rmtree(folder)


def check_chapter_summaries(client: TestClient, world) -> None:
    cifar, mnist = client.get("/api/chapter/summaries?samples=2").json()["summaries"]
    assert mnist["name"] == "mnist_summary_convnet" and mnist["title"] == "MNIST convnet"
    assert mnist["dataset"] == "mnist" and mnist["samples"] == {"first": 59_990, "last": 60_004}
    assert mnist["total"] == 15 and mnist["correct"] == 10 and mnist["accuracy"] == 10 / 15
    assert mnist["confusion"][0][1] == 1 and mnist["cells"][0][1][0]["index"] == 59_990
    assert "recall" in mnist and "precision" in mnist and mnist["network"] is None
    assert max(len(cell) for row in mnist["cells"] for cell in row) == 2
    for e in (e for row in mnist["cells"] for cell in row for e in cell):
        train = e["index"] < 60_000
        assert e["split"] == ("train" if train else "test")
        assert e["split_index"] == (e["index"] if train else e["index"] - 60_000)
    assert mnist["images"] is False  # the data dir's training split has only 300 images
    assert cifar["title"] == "CIFAR ordinary" and cifar["images"] is True
    assert cifar["samples"] == {"first": 0, "last": 11}
    # The images the indices point to, from the data directory's files.
    picture = client.get("/api/chapter/images/cifar10/40.png?scale=2")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    train = convscope.load_dataset("cifar10", "train", world["data"], download=False)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(picture.content)))[::2, ::2],
                          train.images[40].permute(1, 2, 0).numpy())
    grey = client.get("/api/chapter/images/mnist/60003.png")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(grey.content))),
                          sample_image(world, "mnist", 3)[0].numpy())
    for path, message in (("mnist/59990.png", "train split has 300 images"),
                          ("mnist/70000.png", "test split has 100 images"),
                          ("svhn/1.png", "unknown dataset")):
        response = client.get(f"/api/chapter/images/{path}")
        assert response.status_code == 404 and message in response.json()["error"], path


def test_bundled_samples_without_a_data_dir(world, tmp_path: Path):
    test = convscope.load_dataset("mnist", "test", world["data"], download=False)
    samples = tmp_path / "bundled" / "samples"
    samples.mkdir(parents=True)
    np.savez(samples / "mnist.npz", images=test.images[:30].numpy(),
             labels=test.labels[:30].numpy(), classes=np.array(test.classes))
    app = create_app([world["runs"] / "mnist-conv"], data_dir=str(tmp_path / "empty"),
                     bundled_dir=tmp_path / "bundled")
    with TestClient(app) as client:
        listed = client.get("/api/datasets").json()["datasets"]
        assert listed[0] == {**DATASETS["mnist"].json(), "classes": test.classes,
                             "source": "bundled", "count": 30}
        scenes = [f"mnist-{kind}-scenes" for kind in ("localize", "detect", "segment")]
        assert [d["name"] for d in listed[1:]] == scenes  # made of the bundled digits
        assert {d["source"] for d in listed} == {"bundled"}
        scene = client.get("/api/datasets/mnist-detect-scenes/samples/999.png")
        assert scene.status_code == 200
        body = client.get("/api/models/run-mnist-conv/confusion").json()
        assert body["source"] == "bundled sample (30 images)" and body["total"] == 30
        assert [m["id"] for m in client.get("/api/models").json()["models"]] == ["run-mnist-conv"]
        assert client.get("/api/datasets/cifar10/samples").status_code == 404
    with TestClient(create_app(data_dir=str(tmp_path / "empty"),
                               bundled_dir=tmp_path / "none")) as client:
        assert client.get("/api/models").json() == {"models": [], "skipped": []}
        assert client.get("/api/datasets").json() == \
            {"datasets": [], "catalogue": [entry.json() for entry in DATASETS.values()]}


def test_unfinished_runs(world, tmp_path: Path):
    runs = tmp_path / "runs"
    shutil.copytree(world["runs"] / "mnist-fc", runs / "half-done")
    (runs / "half-done" / "model.safetensors").unlink()
    with pytest.raises(RunError, match="no model.safetensors yet"):
        create_app([runs / "half-done"], bundled_dir=tmp_path)
    with pytest.raises(RunError, match="not a convscope run"):
        create_app([tmp_path], bundled_dir=tmp_path)
    with TestClient(create_app(runs_dir=runs, bundled_dir=tmp_path)) as client:
        listed = client.get("/api/models").json()  # skipped, with a warning and the reason
        assert listed["models"] == [] and listed["skipped"][0]["path"] == str(runs / "half-done")
        assert "no model.safetensors yet" in listed["skipped"][0]["reason"]


def test_page_is_served(client: TestClient):
    response = client.get("/")
    assert response.status_code == 200 and "convscope" in response.text


def test_page_and_static_files(world, tmp_path: Path):
    (tmp_path / "index.html").write_text("<title>convscope page</title>")
    (tmp_path / "app.js").write_text("export const x = 1;")
    app = create_app(data_dir=str(world["data"]), bundled_dir=tmp_path, static_dir=tmp_path)
    with TestClient(app) as client:
        assert client.get("/").text == "<title>convscope page</title>"
        assert client.get("/static/app.js").text == "export const x = 1;"
        assert client.get("/static/../../etc/passwd").status_code == 404
        assert client.get("/static/nope.js").status_code == 404


def test_huge_bodies_are_refused(client: TestClient):
    response = client.post("/api/models/run-mnist-fc/activations", content=b" " * (17 << 20),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]


def test_missing_page_gives_a_message(world, tmp_path: Path):
    app = create_app(data_dir=str(world["data"]), bundled_dir=tmp_path, static_dir=tmp_path / "x")
    with TestClient(app) as client:
        response = client.get("/")
        assert response.status_code == 200 and "/api/models" in response.text
        assert client.get("/static/app.js").status_code == 404


# ---- live training -------------------------------------------------------------------------


def until_end(socket) -> list[dict]:
    messages = [socket.receive_json()]
    while messages[-1]["type"] not in ("done", "error"):
        messages.append(socket.receive_json())
    return messages


def test_live_training_streams_and_becomes_a_model(client: TestClient, world):
    response = client.post("/api/train", json={"spec": MNIST_CONV, "epochs": 2,
                                               "batch_size": 16, "lr": 0.01})
    assert response.status_code == 200
    job, model_id = response.json()["job"], response.json()["model_id"]
    listed = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert listed[model_id]["kind"] == "live" and listed[model_id]["dataset"] == "mnist"
    with client.websocket_connect(f"/api/train/{job}/ws") as socket:
        messages = until_end(socket)
    types = [m["type"] for m in messages]
    assert types.count("epoch") == 2 and "progress" in types and "snapshot" in types
    progress = next(m for m in messages if m["type"] == "progress")
    assert set(progress) == {"type", "epoch", "step", "steps_per_epoch", "epochs", "loss",
                             "accuracy", "examples_per_s"}
    assert progress["steps_per_epoch"] == 270 // 16 and progress["epochs"] == 2
    assert progress["epoch"] in (0, 1)  # 0-based: the epoch in progress
    snapshot = next(m for m in messages if m["type"] == "snapshot")
    assert snapshot["filters"]["shape"] == [4, 1, 5, 5]
    assert [decode(a["output"]).shape for a in snapshot["activations"]] == \
        [la.out_volume.shape for la in convscope.resolve(MNIST_CONV)]
    epoch = next(m for m in messages if m["type"] == "epoch")
    assert epoch["epoch"] == 1 and {"train_loss", "train_acc", "val_acc"} <= set(epoch)
    done = messages[-1]
    assert done["type"] == "done" and done["model_id"] == model_id and not done["stopped"]
    assert 0 <= done["test_accuracy"] <= 1
    status = client.get(f"/api/train/{job}").json()
    assert status["state"] == "done" and len(status["epochs"]) == 2
    assert status["test_accuracy"] == done["test_accuracy"] and status["error"] is None
    listed = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert listed[model_id]["test_accuracy"] == done["test_accuracy"]
    run_dirs = list((world["runs"] / "live").glob(f"*{job}"))
    assert len(run_dirs) == 1 and (run_dirs[0] / "results.json").is_file()
    body = client.post(f"/api/models/{model_id}/activations",
                       json={"sample": {"dataset": "mnist", "index": 0}}).json()
    net = convscope.load_run(run_dirs[0]).model
    expected = activations(net, to_input(sample_image(world, "mnist", 0)[:, 2:26, 2:26]))
    assert torch.allclose(decode(body["layers"][-1]["output"]), expected[-1], atol=1e-5)
    with client.websocket_connect(f"/api/train/{job}/ws") as socket:  # a late client
        replay = until_end(socket)
    assert sorted(m["type"] for m in replay) == ["done", "epoch", "epoch", "progress",
                                                 "snapshot"]  # latest progress and snapshot
    assert client.post(f"/api/train/{job}/stop").status_code == 409


def test_stopping_live_training(client: TestClient):
    response = client.post("/api/train", json={"model": "mnist-ordinary", "epochs": 100,
                                               "batch_size": 1})
    job, model_id = response.json()["job"], response.json()["model_id"]
    again = client.post("/api/train", json={"model": "mnist-ordinary"})
    assert again.status_code == 409 and "already running" in again.json()["error"]
    with client.websocket_connect(f"/api/train/{job}/ws") as socket:
        assert socket.receive_json()["type"] in ("progress", "snapshot")
        assert client.post(f"/api/train/{job}/stop").json() == {"stopped": True}
        done = until_end(socket)[-1]
    assert {k: done[k] for k in ("type", "model_id", "stopped")} == \
        {"type": "done", "model_id": model_id, "stopped": True}
    assert 0 <= done["test_accuracy"] <= 1  # scored on the test set when stopped
    assert "evaluated when stopped" in done["score_source"]
    assert client.get(f"/api/train/{job}").json()["state"] == "stopped"
    weights = client.get(f"/api/models/{model_id}/layers/1/weights").json()
    assert weights["weights"]["shape"] == [10, 1, 28, 28]


def test_bad_training_requests(client: TestClient):
    wrong_classes = [*MNIST_CONV[:-1], {"type": "softmax", "num_classes": 3}]
    for body in ({}, {"model": "lenet6"}, {"model": "lenet5", "spec": MNIST_CONV},
                 {"spec": CIFAR_CONV, "dataset": "mnist"}, {"spec": [{"type": "input"}]},
                 {"spec": MNIST_CONV, "epochs": 0}, {"spec": MNIST_CONV, "dataset": "svhn"},
                 {"spec": wrong_classes}, {"model": "../../etc/passwd"},
                 {"model": "lenet5", "out": "/tmp/x"}):
        response = client.post("/api/train", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]
    assert client.get("/api/train/nope").status_code == 404
    assert client.post("/api/train/nope/stop").status_code == 404
    with client.websocket_connect("/api/train/nope/ws") as socket:
        assert socket.receive_json()["type"] == "error"


def test_failed_training_reports_an_error(world, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_DOWNLOAD_URL", "http://127.0.0.1:9/")  # refused at once
    app = create_app(runs_dir=tmp_path / "runs", data_dir=str(tmp_path / "no-data"),
                     bundled_dir=tmp_path)
    with TestClient(app) as client:
        job = client.post("/api/train", json={"spec": MNIST_FC}).json()
        with client.websocket_connect(f"/api/train/{job['job']}/ws") as socket:
            error = until_end(socket)[-1]
        assert error["type"] == "error" and "mnist" in error["error"]
        assert client.get(f"/api/train/{job['job']}").json()["state"] == "error"
        assert client.get(f"/api/models/{job['model_id']}").status_code == 404


# ---- convscope serve -----------------------------------------------------------------------


def announced_url(server: subprocess.Popen, deadline: float) -> str:
    """The address ``convscope serve`` prints, waiting at most until ``deadline``."""
    lines = []
    while time.monotonic() < deadline:
        if select.select([server.stdout], [], [], deadline - time.monotonic())[0]:
            lines.append(server.stdout.readline())
            if lines[-1].startswith("convscope explorer: http://127.0.0.1:"):
                return lines[-1].split(": ", 1)[1].strip()
            if not lines[-1]:
                break  # the server exited
    raise AssertionError(f"no address announced; output: {''.join(lines)!r}")


def test_convscope_serve_answers(world, tmp_path: Path):
    env = {**os.environ, "CONVSCOPE_CACHE": str(world["root"] / "cache")}
    command = [sys.executable, "-m", "convscope", "serve", str(world["runs"] / "mnist-fc"),
               "--data-dir", str(world["data"]), "--port", "0", "--no-browser"]
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        url = announced_url(server, deadline=time.monotonic() + 60)
        assert httpx.get(url, timeout=20).status_code == 200
        models = httpx.get(url + "api/models", timeout=20).json()["models"]
        assert "run-mnist-fc" in [m["id"] for m in models]
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_chunked_bodies_are_capped_as_they_stream(client: TestClient):
    chunk = b" " * (1 << 20)
    response = client.post("/api/models/run-mnist-fc/activations",
                           content=(chunk for _ in range(40)),  # no Content-Length: chunked
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and "at most 16,777,216" in response.json()["error"]


def test_the_body_cap_stops_reading_at_the_limit():
    import asyncio

    from starlette.exceptions import HTTPException

    from convscope.server.limits import BodyLimit

    async def endless_reader(scope, receive, send):
        while (await receive())["more_body"]:
            pass

    reads, sent = 0, []

    async def receive():
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    async def send(message):
        sent.append(message)

    app = BodyLimit(endless_reader, limit=10_000)
    with pytest.raises(HTTPException) as caught:
        asyncio.run(app({"type": "http", "headers": []}, receive, send))
    assert caught.value.status_code == 413 and reads == 11  # 11,000 bytes: one chunk past
