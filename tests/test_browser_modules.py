"""A ResNet-style nn.Module in the explorer, in Chromium: the run is trained here on the real
MNIST digits bundled with convscope and served with ``trust_code`` (``serve --trust-code``); the
Network view draws its skip arcs, and a conv nested two containers deep shows its maps and
weights. A spec with a residual block gets its arc too. The page must log no error.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from served import CHROMIUM, chromium, served, watched_page
from test_browser import CANVAS_COLOURS, SCREENSHOTS, write_mnist_from_bundle
from test_module_explorer import MODULE_SOURCE, NESTED_CONV

import convscope

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

RESIDUAL_SPEC = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
                 {"type": "conv", "sx": 3, "filters": 4, "stride": 2, "pad": 1,
                  "activation": "relu"},
                 {"type": "residual", "layers": [
                     {"type": "conv", "sx": 3, "filters": 4, "pad": 1, "activation": "relu"},
                     {"type": "conv", "sx": 3, "filters": 4, "pad": 1}]},
                 {"type": "softmax", "num_classes": 10}]
SETTINGS = {"epochs": 2, "batch_size": 16, "lr": 0.01, "progress": False}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app, trusting code, with the module run and the residual spec run."""
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("modules-browser")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        data = write_mnist_from_bundle(tmp / "data")
        file = tmp / "resnet_mod.py"
        file.write_text(MODULE_SOURCE)
        torch.manual_seed(0)
        convscope.train(f"{file}:make", "mnist", out=tmp / "runs" / "resnet", data_dir=str(data),
                        **SETTINGS)
        convscope.train(RESIDUAL_SPEC, "mnist", out=tmp / "runs" / "residual-spec",
                        data_dir=str(data), **SETTINGS)
        with served(create_app(runs_dir=tmp / "runs", data_dir=str(data),
                               trust_code=True)) as url:
            yield url


@pytest.fixture
def page(server: str) -> Iterator[object]:
    """A 1280x800 page on the explorer; the test fails if the page logs an error."""
    with chromium() as browser, watched_page(browser, server) as tab:
        yield tab


def layer_index(page, model: str, name: str) -> int:
    layers = page.request.get(f"/api/models/{model}").json()["layers"]
    return next(la["index"] for la in layers if la["name"] == name)


def test_network_view_draws_the_module_skips(page):
    page.goto("/#/network?model=run-resnet")
    page.locator("svg.network-svg").wait_for()
    arcs = page.locator("svg.network-svg g.branch")
    arcs.first.wait_for()
    assert arcs.count() == 2
    assert page.locator("svg.network-svg path.branch-arc.branch-add").count() == 2
    assert page.locator("svg.network-svg circle.branch-join").count() == 2
    conv2 = layer_index(page, "run-resnet", "layer1.0.bn2")
    head = layer_index(page, "run-resnet", "head.0")
    assert page.locator(f'g.branch[data-from="{conv2}"][data-to="{head}"]').count() == 1
    # the join sits in the gap before the layer that reads the sum: left of its column
    join = page.locator(f'g.branch[data-to="{head}"] circle').bounding_box()
    column = page.locator(f'g.layer-col[data-layer="{head}"]').bounding_box()
    assert join["x"] + join["width"] / 2 == pytest.approx(column["x"], abs=4)
    text = page.locator("main").inner_text()
    assert f"{NESTED_CONV}: Conv2d 3x3 x8 s1 p1" in text and "14x14x8" in text
    page.locator("g.layer-col", has_text=NESTED_CONV).click()
    assert f"Layer {layer_index(page, 'run-resnet', NESTED_CONV)}: {NESTED_CONV}" in \
        page.locator(".layer-details").inner_text()
    page.locator(".layer-details .layer-output canvas").first.wait_for()
    assert page.locator("g.layer-col", has_text="layer1.0.bn1").count() == 1  # named operators
    page.locator("g.layer-col", has_text="layer1.1.conv1").click()  # both arcs in sight
    page.locator(".layer-details .layer-output canvas").first.wait_for()
    # it reads the sum after the skip, not the layer before: no step-through of that input
    links = page.locator(".layer-details .actions").inner_text()
    assert "Activation maps" in links and "Step through the convolution" not in links
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "network-resnet-module.png"))


def test_maps_and_weights_of_a_nested_conv(page):
    index = layer_index(page, "run-resnet", NESTED_CONV)
    page.goto(f"/#/maps?model=run-resnet&layer={index}")
    tiles = page.locator(".map-tile")
    tiles.first.wait_for()
    assert tiles.count() == 8
    assert page.locator(".map-tile canvas").first.evaluate(CANVAS_COLOURS) > 1
    assert NESTED_CONV in page.locator(".maps-detail h3").inner_text()
    page.goto(f"/#/weights?model=run-resnet&layer={index}")
    page.locator(".weight-grid canvas").first.wait_for()
    assert page.locator(".weight-grid canvas").count() >= 8


def test_predict_view_shows_every_module_layer(page):
    page.goto("/#/predict?model=run-resnet")
    rows = page.locator(".predict-layers .live-layer")
    page.locator(".predict-layers").wait_for(state="attached")
    names = page.request.get("/api/models/run-resnet").json()["layers"]
    assert rows.count() == len(names) - 1
    assert NESTED_CONV in page.locator(".predict-layers").inner_text()


def test_network_view_draws_a_spec_residual_skip(page):
    page.goto("/#/network?model=run-residual-spec")
    page.locator("svg.network-svg g.branch").first.wait_for()
    assert page.locator("svg.network-svg g.branch").count() == 1
    block = page.request.get("/api/models/run-residual-spec").json()
    [branch] = block["branches"]
    assert block["layers"][branch["to"]]["type"] == "residual"
    assert block["layers"][branch["from"] + 1]["name"] == "blocks.3.body.0"


def test_network_view_draws_the_unet_concatenations(page):
    page.goto("/#/network?model=mnist-unet")
    arcs = page.locator("svg.network-svg path.branch-arc.branch-concat")
    arcs.first.wait_for()
    described = page.request.get("/api/models/mnist-unet").json()
    concats = [b for b in described["branches"] if b["kind"] == "concat"]
    assert arcs.count() == len(concats) == 4
    for branch in concats:
        assert described["layers"][branch["to"]]["type"] == "concat"
        assert page.locator(f'g.branch[data-from="{branch["from"]}"][data-to="{branch["to"]}"]'
                            " text.branch-mark").text_content() == "c"
