"""The explorer at ImageNet scale, in Chromium: AlexNet (untrained, seeded random weights) drawn
as volumes on a log scale, relabelled ConvnetViewer's way, and its first layer's maps for an
uploaded photo (a generated JPEG), with only the layers shown sent."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image
from served import CHROMIUM, chromium, served, watched_page
from test_browser import CANVAS_COLOURS

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """`convscope serve` out of the box: the bundled models, then the architectures."""
    from convscope.server import create_app

    with served(create_app()) as url:
        yield url


@pytest.fixture
def page(base_url: str) -> Iterator[object]:
    with chromium() as browser, watched_page(browser, base_url, timeout_ms=30_000) as tab:
        yield tab


def photo() -> bytes:
    """A 400x300 JPEG: a smooth colour gradient with a bright disc, like a simple photo."""
    y, x = np.mgrid[0:300, 0:400]
    rgb = np.stack([x * 255 // 400, y * 255 // 300, (x + y) * 255 // 700], axis=-1)
    rgb[(x - 200) ** 2 + (y - 150) ** 2 < 60 ** 2] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_alexnet_network_and_maps_of_an_uploaded_photo(page):
    page.goto("/#/network?model=alexnet")
    svg = page.locator("svg.network-svg")
    svg.wait_for()
    text = page.locator("main").inner_text()
    for label in ("227x227x3", "55x55x96", "27x27x256", "6x6x256", "1x1x4096", "1x1x1000",
                  "62,378,344 parameters", "lrn n5 k2 a0.0005 b0.75", "Untrained",
                  "seed 0"):
        assert label in text, label
    assert "sizes on a log scale" in svg.text_content()
    # the 227x227 input is drawn larger than the 55x55 maps, those larger than 6x6, on one scale
    faces = svg.locator("g.layer-col rect:not(.layer-hit)")
    heights = [float(faces.nth(i).get_attribute("height")) for i in range(faces.count())]
    assert heights[0] > heights[1] > min(heights) >= 10 and max(heights) <= 130
    page.get_by_role("checkbox", name="ConvnetViewer names").check()
    for name in ("CONV_0", "LOCAL_RESPONSE_NORM_0", "MAX_POOL_0", "FC_0", "FC_2"):
        assert name in svg.text_content() and name in page.locator("table.summary").inner_text()
    assert "names=viewer" in page.url

    page.goto("/#/maps?model=alexnet&layer=1")
    page.locator(".map-grid canvas").first.wait_for()
    with page.expect_response(lambda r: "/activations" in r.url and r.request.method == "POST"
                              and "layers" in r.request.post_data if r.request.post_data
                              else False) as shown:
        with page.expect_response(lambda r: r.url.endswith("/activations/upload?layers=0")
                                  and r.ok) as uploaded:
            page.locator("input[type=file]").set_input_files(files=[{
                "name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo()}])
    assert len(uploaded.value.body()) < 2_000_000  # the input's bytes, not 2 million values
    assert shown.value.ok
    page.wait_for_function("() => document.querySelector('.input-status')"
                           "?.innerText.includes('photo.jpg')")
    assert "Layer 1: conv 11x11 x96 s4 p0 → 55x55x96" in page.locator(".maps-detail").inner_text()
    page.locator(".map-grid canvas").first.wait_for()
    assert page.locator(".map-grid canvas").first.evaluate(CANVAS_COLOURS) > 1


def test_vgg16_predict_asks_only_for_its_small_layers(page):
    """Predict on a net too big to send whole shows its small layers (the fc ones) and never
    asks for every layer (146 MiB of VGG-16's maps)."""
    asked: list[dict] = []
    page.on("request", lambda r: "/activations" in r.url and r.method == "POST"
            and asked.append({"url": r.url, "body": r.post_data or ""}))
    page.goto("/#/predict?model=vgg16")
    with page.expect_response(lambda r: "/activations" in r.url and r.ok, timeout=60_000):
        page.locator("input[type=file]").set_input_files(files=[{
            "name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo()}])
    page.locator(".predict-layers:not([hidden])").wait_for(timeout=60_000)
    section = page.locator(".predict-layers").inner_text()
    assert "The small layers for this input" in section
    assert "1x1x4096" in section or "4096" in section
    assert "224x224x64" not in section
    assert page.locator(".prediction").inner_text().startswith("Prediction:")
    assert asked and all("layers" in a["url"] or '"layers"' in a["body"] for a in asked), asked
    # no map of VGG-16 is computed here: the panel says so, with nothing to choose
    page.get_by_text("make one on the command line").wait_for()
    assert page.locator(".explain-controls").is_hidden()


def test_out_of_the_box_the_explorer_opens_on_a_trained_model_not_an_architecture(page):
    page.goto("/")
    page.wait_for_function("() => location.hash.includes('model=')")
    assert "model=mnist-convnetjs" in page.evaluate("location.hash")
