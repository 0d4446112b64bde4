"""Why this prediction (issue 20, point 13): Grad-CAM, SmoothGrad saliency and occlusion maps
checked against computations written out by hand here, and ``convscope explain``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from convscope.augment import to_input
from convscope.bundle import bundled_sample
from convscope.cli import main
from convscope.explain import (
    ExplainError,
    default_layer,
    explain,
    gradcam,
    map_layers,
    occlusion,
    resolve_layer,
    saliency,
)
from convscope.explain_methods import ALL as EXPLAIN_METHODS
from convscope.model import build_model
from convscope.module_graph import volume_of
from convscope.predict import fit_any, input_volume, preparation
from convscope.runs import open_run

MODEL = "mnist-convnetjs"


def tiny_net(activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), activation(), nn.Conv2d(3, 4, 3),
                         activation(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))


def node_of(model: nn.Module, x: torch.Tensor, index: int):
    return resolve_layer(model, volume_of((1, *x.shape)), index)


def cam_by_hand(head: nn.Module, tail: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """Grad-CAM written out: maps A = head(x); g = d score / d A; weights = mean of g over
    positions; ReLU(sum_k weight_k A_k)."""
    maps = head(x[None]).detach().requires_grad_(True)
    (grads,) = torch.autograd.grad(tail(maps)[0, target], maps)
    cam = torch.zeros(maps.shape[-2:])
    for k in range(maps.shape[1]):
        cam += grads[0, k].mean() * maps[0, k].detach()
    return cam.clamp(min=0)


@pytest.mark.parametrize("target", [0, 3])
def test_gradcam_at_the_input_resolution_is_the_hand_computation(target):
    net = tiny_net()
    x = torch.randn(2, 8, 8)
    expected = cam_by_hand(net[:1], net[1:], x, target)  # conv 0 keeps 8x8: no resizing
    found = gradcam(net, x, target, node_of(net, x, 1))  # node 1: module "0"
    assert found.shape == (8, 8)
    assert expected.abs().max() > 0
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-6)


def test_gradcam_on_a_smaller_layer_is_resized_to_the_input():
    net = tiny_net()
    x = torch.randn(2, 8, 8)
    small = cam_by_hand(net[:3], net[3:], x, 2)  # conv 2: 6x6
    expected = F.interpolate(small[None, None], size=(8, 8), mode="bilinear",
                             align_corners=False)[0, 0]
    found = explain(net, x, "gradcam", target=2, layer=3)  # node 3: module "2"
    assert found.layer == 3 and found.target == 2
    assert node_of(net, x, 3).name == "2" and node_of(net, x, "2").index == 2
    torch.testing.assert_close(found.map, expected, rtol=1e-4, atol=1e-6)


def test_gradcam_on_a_specnet_defaults_to_its_final_feature_maps():
    net = build_model([{"type": "input", "sx": 10, "sy": 10, "depth": 1},
                       {"type": "conv", "sx": 3, "filters": 4, "pad": 1},
                       {"type": "relu"}, {"type": "pool", "sx": 2},
                       {"type": "conv", "sx": 3, "filters": 5, "pad": 1}, {"type": "relu"},
                       {"type": "fc", "num_neurons": 3}, {"type": "softmax", "num_classes": 3}])
    x = torch.randn(1, 10, 10)
    found = explain(net, x, "gradcam", classes=["a", "b", "c"])
    assert found.layer == 5  # the last conv's ReLU
    assert found.target == int(net(x[None])[0].argmax())  # the predicted class by default
    tail = nn.Sequential(*net.blocks[6:8])  # fc, the softmax's fc (not the softmax)
    small = cam_by_hand(lambda v: net.forward_all(v)[5], lambda a: tail(a).flatten(1), x,
                        found.target)
    expected = F.interpolate(small[None, None], size=(10, 10), mode="bilinear",
                             align_corners=False)[0, 0]
    torch.testing.assert_close(found.map, expected, rtol=1e-4, atol=1e-6)
    assert explain(net, x, "gradcam", target="c", classes=["a", "b", "c"]).target == 2


def test_plain_gradient_matches_finite_differences():
    net = tiny_net(nn.Tanh).double()
    x = torch.randn(2, 6, 6, dtype=torch.float64)
    found = saliency(net, x, 1, samples=1, noise=0.0)
    eps = 1e-6
    grads = torch.zeros_like(x)
    with torch.no_grad():
        for index in np.ndindex(*x.shape):
            up, down = x.clone(), x.clone()
            up[index] += eps
            down[index] -= eps
            grads[index] = (net(up[None])[0, 1] - net(down[None])[0, 1]) / (2 * eps)
    torch.testing.assert_close(found.double(), grads.abs().amax(0), rtol=1e-4, atol=1e-6)


def test_smoothgrad_averages_the_gradients_of_noisy_copies():
    net = tiny_net()
    x = torch.randn(2, 6, 6)
    samples, noise, seed = 5, 0.2, 7
    found = saliency(net, x, 4, samples=samples, noise=noise, seed=seed)
    sigma = noise * float(x.max() - x.min())
    draws = torch.randn(samples, *x.shape, generator=torch.Generator().manual_seed(seed))
    total = torch.zeros(6, 6)
    for k in range(samples):  # one noisy copy at a time
        copy = (x + sigma * draws[k]).requires_grad_(True)
        (grad,) = torch.autograd.grad(net(copy[None])[0, 4], copy)
        total += grad.abs().amax(0)
    torch.testing.assert_close(found, total / samples, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(found, saliency(net, x, 4, samples=1, noise=0.0))


@pytest.mark.parametrize(("window", "stride"), [(3, 2), (2, 1), (4, 3)])
def test_occlusion_is_the_mean_score_drop_of_the_windows_covering_each_pixel(window, stride):
    net = tiny_net()
    x = torch.randn(2, 7, 7)
    found = occlusion(net, x, 3, window=window, stride=stride)
    with torch.no_grad():
        base = net(x[None])[0, 3].item()
        fill = [x[c].mean().item() for c in range(2)]
        drops = [[[] for _ in range(7)] for _ in range(7)]
        tops = sorted({*range(0, 7 - window + 1, stride), 7 - window})
        for top in tops:
            for left in tops:
                covered = x.clone()
                for c in range(2):
                    for i in range(top, top + window):
                        for j in range(left, left + window):
                            covered[c, i, j] = fill[c]
                drop = base - net(covered[None])[0, 3].item()
                for i in range(top, top + window):
                    for j in range(left, left + window):
                        drops[i][j].append(drop)
    expected = torch.tensor([[sum(d) / len(d) for d in row] for row in drops])
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-5)


def test_the_localizer_explains_its_class_head_not_its_box():
    run = open_run("mnist-localizer")
    x = torch.zeros(1, 64, 64) - 0.5
    x[:, 20:40, 30:34] = 0.5  # a bar: some class
    classes = [str(k) for k in range(10)]
    found = explain(run.model, x, "occlusion", classes=classes)
    assert found.target < 10
    with pytest.raises(ExplainError, match="does not exist"):
        explain(run.model, x, "saliency", target=11, classes=classes)  # a box output
    maps = {n.index: n for n in map_layers(run.model, volume_of((1, 1, 64, 64)))}
    box_conv = next(i for i, n in maps.items() if n.type == "conv" and n.out_volume.sx == 8)
    with pytest.raises(ExplainError, match=f"does not change with layer {box_conv} "):
        explain(run.model, x, "gradcam", layer=box_conv, classes=classes)  # the box head's


def test_the_localizer_class_head_is_cam_so_gradcam_is_hirescam():
    """mnist-localizer's class scores average 10 class maps: on those maps Grad-CAM's
    position-averaged gradients lose nothing, and it equals HiResCAM."""
    run = open_run("mnist-localizer")
    x = torch.zeros(1, 64, 64) - 0.5
    x[:, 20:40, 30:34] = 0.5
    classes = [str(k) for k in range(10)]
    grad_cam = explain(run.model, x, "gradcam", classes=classes)
    assert grad_cam.layer == default_layer(run.model, volume_of((1, 1, 64, 64))).index
    assert run.model.layers[grad_cam.layer].out_volume.depth == 10
    hires = explain(run.model, x, "hirescam", classes=classes)
    assert torch.allclose(grad_cam.map, hires.map, atol=1e-6)
    assert grad_cam.map.max() > 0


def test_bad_choices_are_one_line_errors():
    net = tiny_net()
    x = torch.randn(2, 8, 8)
    assert [n.index for n in map_layers(net, volume_of((1, 2, 8, 8)))] == [1, 2, 3, 4]
    for call, match in [(lambda: explain(net, x, "lime"), "unknown method"),
                        (lambda: explain(net, x, "gradcam", layer="6"), "choose one of"),
                        (lambda: explain(net, x, "gradcam", layer="nope"), "choose one of"),
                        (lambda: explain(net, x, "occlusion", target=9), "index 0..4"),
                        (lambda: explain(net, x[0], "saliency"), "depth, height, width")]:
        with pytest.raises(ExplainError, match=match) as caught:
            call()
        assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory):
    sample = bundled_sample("mnist")
    if sample is None:
        pytest.skip("no bundled MNIST sample")
    folder = tmp_path_factory.mktemp("digits")
    Image.fromarray(sample.images[0, 0].numpy()).save(folder / "seven.png")
    return folder / "seven.png"


@pytest.mark.parametrize("method", ["gradcam", "saliency", "occlusion"])
def test_cli_writes_an_overlay_and_the_raw_map(method, digit_png, tmp_path, capsys):
    out = tmp_path / "maps"
    args = ["explain", MODEL, str(digit_png), "--method", method, "--out", str(out), "--class", "3"]
    assert main([*args, "--samples", "4"] if method == "saliency" else args) == 0
    line = capsys.readouterr().out.strip()
    assert f"{method}" in line and "class 3" in line and "\n" not in line
    run = open_run(MODEL)
    volume = input_volume(run)  # 24x24: ConvNetJS's crop of MNIST
    raw = np.load(out / f"seven.{method}.npy", allow_pickle=False)
    assert raw.shape == (volume.sy, volume.sx) and raw.dtype == np.float32
    image = fit_any(digit_png, volume, preparation(run))
    options = {"samples": 4} if method == "saliency" else {}
    expected = explain(run.model, to_input(image), method, "3", None,
                       [str(k) for k in range(10)], **options)
    np.testing.assert_allclose(raw, expected.map.numpy(), rtol=1e-5, atol=1e-6)
    scale = -(-224 // volume.sx)  # enlarged to 224 px or more
    with Image.open(out / f"seven.{method}.png") as png:
        assert png.mode == "RGB" and png.size == (volume.sx * scale, volume.sy * scale)
        pixels = np.asarray(png)
    grey = np.asarray(image[0].repeat_interleave(scale, 0).repeat_interleave(scale, 1))
    tinted = np.abs(pixels.astype(int) - grey[..., None]).max(2) > 8
    strongest = np.unravel_index(raw.argmax(), raw.shape)
    assert tinted[strongest[0] * scale, strongest[1] * scale]  # the map shows where it is strongest


@pytest.mark.parametrize(("extra", "match"), [
    (["--layer", "99"], "layer 99 has no maps"),
    (["--class", "cat"], "class 'cat' does not exist"),
    (["--samples", "0"], "1..256 samples"),
])
def test_cli_bad_choices_are_one_line(extra, match, digit_png, tmp_path, capsys):
    assert main(["explain", MODEL, str(digit_png), "--method",
                 "saliency" if "--samples" in extra else "gradcam", "--out", str(tmp_path),
                 *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err
    assert not list(tmp_path.iterdir())


def test_cli_bad_files_and_models(digit_png, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    out = tmp_path / "out"
    assert main(["explain", MODEL, str(broken), str(digit_png), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "broken.png" in captured.err
    assert (out / "seven.gradcam.npy").exists() and not (out / "broken.gradcam.npy").exists()
    for model, match in [("no-such-model", "no-such-model"), ("mnist-unet", "segmentation")]:
        assert main(["explain", model, str(digit_png), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and match in err and "\n" not in err


# ---- top images per filter (issue 20, point 14) ----

FIELD_SPEC = [{"type": "input", "sx": 13, "sy": 11, "depth": 2},
              {"type": "conv", "sx": 3, "filters": 3, "pad": 1},
              {"type": "conv", "sx": 5, "filters": 3, "stride": 2, "pad": 2},
              {"type": "conv", "sx": 3, "filters": 2}]


def gradient_support(net, x: torch.Tensor, layer: int, channel: int, px: int, py: int):
    """The bounding box (x, y, w, h) of the input pixels that output (px, py) depends on."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net.forward_all(x[None])[layer][0, channel, py, px], x)
    rows, cols = torch.nonzero(grad.abs().sum(0) > 0, as_tuple=True)
    return [int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1),
            int(rows.max() - rows.min() + 1)]


@pytest.mark.parametrize(("layer", "px", "py"), [(1, 0, 0), (2, 3, 2), (3, 0, 0), (3, 2, 1),
                                                 (3, 3, 2)])
def test_a_patch_is_what_the_position_depends_on(layer, px, py):
    torch.manual_seed(1)
    net = build_model(FIELD_SPEC)
    from convscope.probes import network_graph
    from convscope.top_images import patch_box, receptive_field

    nodes = network_graph(net).nodes
    x = torch.randn(2, 11, 13)
    assert patch_box(receptive_field(nodes, layer), px, py, 13, 11) == \
        gradient_support(net, x, layer, 0, px, py)


def brute_force_tops(net, images: torch.Tensor, layer: int, k: int):
    """Per channel, the k images with the largest maximum of the channel's map (by sorting
    every image's maxima), and where each maximum is."""
    from convscope.probes import activations

    maps = activations(net, to_input(images))[layer]  # (N, C, H, W)
    flat = maps.flatten(2)
    best, where = flat.max(2)
    values = best.tolist()
    tops = [sorted(range(len(values)), key=lambda i, c=c: (-values[i][c], i))[:k]
            for c in range(best.shape[1])]
    width = maps.shape[-1]
    return torch.tensor(tops), [[(int(where[i, c]) % width, int(where[i, c]) // width)
                                 for i in row] for c, row in enumerate(tops)]


def test_top_images_are_the_most_exciting_by_brute_force(tmp_path, monkeypatch):
    from convscope import top_images as tops_module

    monkeypatch.setattr(tops_module, "BATCH", 7)  # several batches merged
    torch.manual_seed(2)
    net = build_model([{"type": "input", "sx": 12, "sy": 12, "depth": 1},
                       {"type": "conv", "sx": 3, "filters": 4, "pad": 1}, {"type": "relu"},
                       {"type": "pool", "sx": 2}, {"type": "conv", "sx": 3, "filters": 3},
                       {"type": "softmax", "num_classes": 10}])
    images = torch.randint(0, 256, (30, 1, 12, 12), dtype=torch.uint8)
    volume = volume_of((1, 1, 12, 12))
    found = tops_module.top_images(net, images, volume, k=5, cache=tmp_path)
    assert sorted(found.values) == [1, 4]
    for layer in (1, 4):
        expected, positions = brute_force_tops(net, images, layer, 5)
        assert found.indices[layer].tolist() == expected.tolist()
        assert [[tuple(p) for p in row] for row in found.positions[layer].tolist()] == positions
        listed = tops_module.channel_tops(net, found, volume, layer, 2)
        assert [t["index"] for t in listed] == expected[2].tolist()
    # computed once: the second call reads the cache (atomically written, no temp file left)
    assert [p.name for p in tmp_path.iterdir()] == [next(tmp_path.iterdir()).name]
    monkeypatch.setattr(tops_module, "compute_top_images", lambda *a, **k: 1 / 0)
    again = tops_module.top_images(net, images, volume, k=5, cache=tmp_path)
    assert again.indices[4].tolist() == found.indices[4].tolist()
    with torch.no_grad():  # other weights: another key, computed again
        net.blocks[1].weight.mul_(-1)
    with pytest.raises(ZeroDivisionError):
        tops_module.top_images(net, images, volume, k=5, cache=tmp_path)


def test_a_damaged_cache_file_is_computed_again(tmp_path):
    from convscope import top_images as tops_module

    net = tiny_net()
    images = torch.randint(0, 256, (6, 2, 8, 8), dtype=torch.uint8)
    volume = volume_of((1, 2, 8, 8))
    first = tops_module.top_images(net, images, volume, k=2, cache=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not an archive")
    again = tops_module.top_images(net, images, volume, k=2, cache=tmp_path)
    assert again.indices[3].tolist() == first.indices[3].tolist()
    with pytest.raises(Exception, match="channel 9 does not exist") as caught:
        tops_module.channel_tops(net, again, volume, 3, 9)
    assert "\n" not in str(caught.value)


# ---- the API ----

@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from convscope.server import create_app

    root = tmp_path_factory.mktemp("explain-api")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(root / "cache"))
        empty = root / "data"
        empty.mkdir()
        yield TestClient(create_app(data_dir=str(empty)))


def decode(tensor: dict) -> torch.Tensor:
    import base64

    data = np.frombuffer(base64.b64decode(tensor["data"]), dtype="<f4" if
                         tensor["dtype"] == "float32" else np.uint8)
    return torch.from_numpy(data.reshape(tensor["shape"]).copy())


def test_the_explain_route_gives_the_map_of_the_fitted_input(client):
    if bundled_sample("mnist") is None:
        pytest.skip("no bundled MNIST sample")
    sample = {"sample": {"dataset": "mnist", "index": 5}}
    activations = client.post(f"/api/models/{MODEL}/activations", json=sample).json()
    image = decode(activations["image"]).to(torch.uint8)
    for body in ({"method": "gradcam", "layer": 4, "class": 2}, {"method": "occlusion"},
                 {"method": "saliency", "samples": 3}):
        found = client.post(f"/api/models/{MODEL}/explain", json={**sample, **body})
        assert found.status_code == 200, found.text
        answer = found.json()
        expected = explain(open_run(MODEL).model, to_input(image), body["method"],
                           body.get("class"), body.get("layer"), answer["classes"],
                           body.get("samples", 16))
        torch.testing.assert_close(decode(answer["map"]), expected.map, rtol=1e-5, atol=1e-6)
        assert answer["class"] == expected.target and answer["layer"] == expected.layer
        assert [entry["index"] for entry in answer["layers"]] == [1, 2, 3, 4, 5, 6]
    pixels = {"pixels": {"width": 24, "height": 24, "depth": 1,
                         "data": image.flatten().tolist()}}  # the fitted bytes, sent back
    again = client.post(f"/api/models/{MODEL}/explain", json={**pixels, "class": 2,
                                                             "layer": 4}).json()
    torch.testing.assert_close(decode(again["map"]), decode(client.post(
        f"/api/models/{MODEL}/explain", json={**sample, "class": 2, "layer": 4}).json()["map"]))


@pytest.mark.parametrize(("model", "body", "status", "match"), [
    (MODEL, {"layer": 8}, 400, "layer 8 has no maps"),
    (MODEL, {"class": 10}, 400, "class '10' does not exist"),
    (MODEL, {"method": "lime"}, 400, "method"),
    (MODEL, {"samples": 500}, 400, "samples"),
    ("mnist-unet", {}, 400, "segment model"),
    ("no-such-model", {}, 404, "no-such-model"),
])
def test_the_explain_route_refuses_clearly(client, model, body, status, match):
    if bundled_sample("mnist") is None:
        pytest.skip("no bundled MNIST sample")
    found = client.post(f"/api/models/{model}/explain",
                        json={"sample": {"dataset": "mnist", "index": 0}, **body})
    assert found.status_code == status
    assert match in found.json()["error"] and "\n" not in found.json()["error"]


def test_the_top_images_route(client):
    sample = bundled_sample("mnist")
    if sample is None:
        pytest.skip("no bundled MNIST sample")
    answer = client.get(f"/api/models/{MODEL}/layers/4/top-images?channel=3").json()
    assert answer["layers"] == [1, 4] and answer["channels"] == 16
    run = open_run(MODEL)
    from convscope.top_images import compute_top_images

    volume = input_volume(run)
    expected = compute_top_images(run.model, sample.images, volume)
    assert [t["index"] for t in answer["images"]] == expected.indices[4][3].tolist()
    first = answer["images"][0]
    assert decode(first["image"]).shape == (1, 24, 24)  # the fitted input the patch is in
    x, y, w, h = first["box"]
    assert 0 <= x and x + w <= 24 and 0 <= y and y + h <= 24 and w * h > 0
    for url, status, match in [("layers/2/top-images", 404, "not a conv layer"),
                               ("layers/4/top-images?channel=16", 400, "channels 0..15")]:
        refused = client.get(f"/api/models/{MODEL}/{url}")
        assert refused.status_code == status and match in refused.json()["error"]


def test_the_pointing_game_counts_a_pixel_inside_a_box():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import pointing_game

    box = torch.tensor([10.0, 20.0, 5.0, 8.0])  # x, y, w, h
    assert pointing_game.inside((20, 10), box) and pointing_game.inside((27, 14), box)
    assert not pointing_game.inside((28, 14), box) and not pointing_game.inside((20, 15), box)
    net = build_model(pointing_game.PLAIN_SPEC)
    layer = resolve_layer(net, volume_of((1, 1, 64, 64)), None)
    assert layer.type == "relu" and layer.out_volume.sx == 8  # its final feature maps


def test_the_page_is_told_which_maps_the_explorer_computes(client):
    """GET .../explain gives each method's cost; the Predict panel offers only the allowed ones,
    so it never asks for a map it would be refused (VGG-16: none; AlexNet: not occlusion)."""
    allowed = {}
    for model in ("mnist-convnetjs", "alexnet", "vgg16"):
        found = client.get(f"/api/models/{model}/explain").json()
        allowed[model] = {m["method"] for m in found["methods"] if m["allowed"]}
        assert all((m["macs"] <= found["limit"]) == m["allowed"] for m in found["methods"])
        assert [(m["method"], m["label"], m["layer"]) for m in found["methods"]] == [
            (m.name, m.label, m.reads_layer) for m in EXPLAIN_METHODS]
    assert allowed["mnist-convnetjs"] == {"gradcam", "hirescam", "saliency", "occlusion"}
    assert "gradcam" in allowed["alexnet"] and "occlusion" not in allowed["alexnet"]
    assert allowed["vgg16"] == set()
