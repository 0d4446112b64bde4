"""HiResCAM, the resize option and the pointing game's rules (issue 20, point 13: the
pointing-game goal), each checked against an independent computation written out here."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from convscope.augment import to_input
from convscope.cli import main
from convscope.explain import (
    ExplainError,
    explain,
    gradcam,
    hirescam,
    maps_and_gradients,
    resolve_layer,
    to_input_size,
    weigh,
)
from convscope.module_graph import volume_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import pointing_game  # noqa: E402
from served import CHROMIUM  # noqa: E402

from convscope.bundle import bundled_sample  # noqa: E402


def fc_head_net() -> nn.Sequential:
    """A conv layer (6x6 maps) then a fully connected head that weighs positions differently."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(3 * 6 * 6, 4))


def gap_head_net() -> nn.Sequential:
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(1, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(5, 3))


def node(net: nn.Module, x: torch.Tensor, index: int):
    return resolve_layer(net, volume_of((1, *x.shape)), index)


@pytest.mark.parametrize("target", [0, 3])
def test_hirescam_under_an_fc_head_is_the_head_weights_times_the_maps(target):
    """score = sum W[t, k, i, j] A[k, i, j] + b, so d score / d A = W[t] (no autograd needed):
    HiResCAM = ReLU(sum_k W[t, k] * A[k]); nearest resize repeats each cell over its 2x2
    patch."""
    net = fc_head_net()
    x = torch.randn(2, 12, 12)
    with torch.no_grad():
        maps = net[:3](x[None])[0]  # (3, 6, 6): the pool's output
    weights = net[4].weight[target].detach().reshape(3, 6, 6)
    expected = (weights * maps).sum(0).clamp(min=0)
    assert expected.max() > 0
    found = hirescam(net, x, target, node(net, x, 3), resize="nearest")  # node 3: the pool
    assert found.shape == (12, 12)
    torch.testing.assert_close(found, expected.repeat_interleave(2, 0).repeat_interleave(2, 1),
                               rtol=1e-4, atol=1e-6)
    # Grad-CAM averages W[t, k] over positions first, so it differs from HiResCAM here
    grad_cam = (weights.mean((1, 2), keepdim=True) * maps).sum(0).clamp(min=0)
    torch.testing.assert_close(gradcam(net, x, target, node(net, x, 3), resize="nearest"),
                               grad_cam.repeat_interleave(2, 0).repeat_interleave(2, 1),
                               rtol=1e-4, atol=1e-6)
    assert not torch.allclose(grad_cam, expected)


def test_after_global_average_pooling_hirescam_and_gradcam_are_the_class_activation_map():
    """With GAP + linear, both are CAM (Zhou et al. 2016): ReLU(sum_k w[t, k] A_k) / (h w)."""
    net = gap_head_net()
    x = torch.randn(1, 7, 7)
    with torch.no_grad():
        maps = net[:2](x[None])[0]
    cam = (net[4].weight[1].detach()[:, None, None] * maps).sum(0).clamp(min=0) / 49
    for method in ("gradcam", "hirescam"):
        found = explain(net, x, method, target=1, layer=2)  # node 2: the ReLU, 7x7
        assert found.method == method and found.layer == 2
        torch.testing.assert_close(found.map, cam, rtol=1e-4, atol=1e-7)


def test_bilinear_is_the_default_resize_and_bad_ones_are_refused():
    net = fc_head_net()
    x = torch.randn(2, 12, 12)
    coarse = hirescam(net, x, 1, node(net, x, 3), resize="nearest")[::2, ::2]
    expected = torch.nn.functional.interpolate(coarse[None, None], size=(12, 12),
                                               mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(explain(net, x, "hirescam", 1, 3).map, expected)
    with pytest.raises(ExplainError, match="unknown resize 'cubic'"):
        explain(net, x, "gradcam", 1, 3, resize="cubic")
    with pytest.raises(ExplainError, match="choose one of"):
        explain(net, x, "hirescam", 1, layer="nope")
    flat = nn.Sequential(nn.Flatten(), nn.Linear(2 * 12 * 12, 4))
    with pytest.raises(ExplainError, match="HiResCAM need one; use --method saliency"):
        explain(flat, x, "hirescam", 1)


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_a_batch_of_maps_is_the_maps_one_at_a_time(method):
    """The pointing game's batched path (several inputs, several classes) gives explain()'s
    maps: the inputs do not interact."""
    net = fc_head_net()
    inputs, targets = torch.randn(3, 2, 12, 12), torch.tensor([2, 0, 3])
    layer = node(net, inputs[0], 1)
    maps, grads = maps_and_gradients(net, inputs, targets, layer)
    batch = to_input_size(weigh(maps, grads, method), (12, 12), "nearest")
    for x, target, found in zip(inputs, targets, batch, strict=True):
        one = explain(net, x, method, int(target), 1, resize="nearest")
        torch.testing.assert_close(found, one.map, rtol=1e-5, atol=1e-6)
    with pytest.raises(ExplainError, match="does not read a layer"):
        weigh(maps, grads, "saliency")


def test_the_point_is_the_maximum_and_ties_land_at_their_centre():
    found = torch.zeros(8, 8)
    found[2, 5] = 3.0
    assert pointing_game.point(found) == (2, 5)
    found[1:4, 1:5] = 4.0  # a plateau (nearest resizing makes them): its central pixel
    assert pointing_game.point(found) == (2, 2)
    found = torch.zeros(8, 8)
    found[0, 0] = found[0, 7] = 1.0  # two apart: the one nearer their centroid (first of equals)
    assert pointing_game.point(found) == (0, 0)
    assert pointing_game.point(torch.zeros(8, 8)) is None  # a flat map points nowhere: a miss
    box = torch.tensor([1.0, 1.0, 3.0, 3.0])
    assert pointing_game.hit(torch.zeros(8, 8), box) is False


def test_the_plain_designs_final_maps_are_as_named():
    from convscope.model import build_model

    for name, spec in pointing_game.DESIGNS.items():
        layer = resolve_layer(build_model(spec), volume_of((1, 1, 64, 64)), None)
        assert layer.type == "relu" and f"{layer.out_volume.sx}x{layer.out_volume.sy}" == name


def test_the_validation_choice_is_the_best_and_ties_go_to_the_earlier_candidate():
    table = {("gradcam", 3, "bilinear"): 0.80, ("gradcam", 5, "nearest"): 0.85,
             ("gradcam", 7, "bilinear"): 0.85, ("hirescam", 3, "bilinear"): 0.99}
    assert pointing_game.best(table, "gradcam") == ("gradcam", 5, "nearest")
    assert pointing_game.best(table, "hirescam") == ("hirescam", 3, "bilinear")


def test_the_cli_offers_hirescam(tmp_path, capsys):
    from PIL import Image

    sample = bundled_sample("mnist")
    if sample is None:
        pytest.skip("no bundled MNIST sample")
    Image.fromarray(sample.images[0, 0].numpy()).save(tmp_path / "seven.png")
    out = tmp_path / "maps"
    assert main(["explain", "mnist-convnetjs", str(tmp_path / "seven.png"), "--method",
                 "hirescam", "--layer", "1", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert "hirescam on layer 1" in line and "\n" not in line
    raw = np.load(out / "seven.hirescam.npy", allow_pickle=False)
    assert raw.dtype == np.float32 and raw.ndim == 2 and raw.max() > 0


def test_the_explain_route_offers_hirescam(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from convscope.runs import open_run
    from convscope.server import create_app

    if bundled_sample("mnist") is None:
        pytest.skip("no bundled MNIST sample")
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    client = TestClient(create_app(data_dir=str(tmp_path / "data")))
    listed = client.get("/api/models/mnist-convnetjs/explain").json()["methods"]
    assert "hirescam" in {m["method"] for m in listed if m["allowed"]}
    sample = {"sample": {"dataset": "mnist", "index": 5}}
    found = client.post("/api/models/mnist-convnetjs/explain",
                        json={**sample, "method": "hirescam", "layer": 1, "class": 2}).json()
    assert found["method"] == "hirescam" and found["layer"] == 1 and found["class"] == 2
    activations = client.post("/api/models/mnist-convnetjs/activations", json=sample).json()
    image = torch.from_numpy(np.frombuffer(base64.b64decode(activations["image"]["data"]),
                                           np.uint8).reshape(activations["image"]["shape"]).copy())
    expected = explain(open_run("mnist-convnetjs").model, to_input(image), "hirescam", 2, 1)
    got = np.frombuffer(base64.b64decode(found["map"]["data"]), "<f4").reshape(
        found["map"]["shape"])
    np.testing.assert_allclose(got, expected.map.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not CHROMIUM.exists() or bundled_sample("mnist") is None,
                    reason="needs /usr/bin/chromium and the bundled MNIST sample")
def test_the_explorer_panel_offers_hirescam_with_its_layer(tmp_path, monkeypatch, browser):
    """The Predict panel's method list has HiResCAM, and with it the layer chooser."""
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("uvicorn")
    from served import served, watched_page

    from convscope.bundle import BUNDLED
    from convscope.server import create_app

    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    app = create_app(runs_dir=tmp_path / "runs", data_dir=str(tmp_path / "data"),
                     bundled_dir=BUNDLED)
    with served(app) as url, watched_page(browser, url) as page:
        page.goto("/#/predict?model=mnist-convnetjs")
        page.get_by_role("button", name="Random sample").click()
        page.locator('.explain-panel canvas[data-method="gradcam"]').wait_for()
        page.locator("select[data-explain=method]").select_option("hirescam")
        page.locator('.explain-panel canvas[data-method="hirescam"]').wait_for()
        assert page.locator("select[data-explain=layer]").is_visible()
        page.locator("select[data-explain=layer]").select_option("1")
        page.wait_for_function("() => document.querySelector('.explain-caption')"
                               ".innerText.includes('HiResCAM on layer 1')")
