"""Why this prediction and top images per filter (issue 20, points 13 and 14) in a real browser
(Debian's Chromium driven by Playwright) against the real server with the bundled models and
samples: the map over the input on Predict follows its method, class and layer choosers and a
drawing; Maps shows a conv channel's top images with their patches. Writes
docs/screenshots/gradcam.png and top-images.png (1280x800)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from served import CHROMIUM, served

from convscope.bundle import BUNDLED, bundled_sample

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's Chromium is not installed at /usr/bin/chromium"),
    pytest.mark.skipif(bundled_sample("mnist") is None, reason="no bundled MNIST sample"),
]
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TINTED = """canvas => {  // pixels whose red, green and blue differ: the map's colour
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2]) n++;
  return n;
}"""
OVERLAY = ".explain-panel canvas"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("explorer-explain")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        (tmp / "data").mkdir()
        with served(create_app(runs_dir=tmp / "runs", data_dir=str(tmp / "data"),
                               bundled_dir=BUNDLED)) as url:
            yield url



def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def overlay_where(page, **attributes) -> object:
    selector = OVERLAY + "".join(f'[data-{k}="{v}"]' for k, v in attributes.items())
    page.locator(selector).wait_for()
    return page.locator(selector)


def test_the_map_over_the_input_follows_its_choosers_and_a_drawing(page):
    page.goto("/#/predict?model=mnist-convnetjs")
    page.get_by_role("button", name="Random sample").click()
    canvas = overlay_where(page, method="gradcam")
    assert canvas.evaluate(TINTED) > 0
    predicted = page.locator(".probabilities .prediction").inner_text()
    caption = page.locator(".explain-caption")
    assert f"for class {predicted.split()[1]}" in caption.inner_text()
    assert "on layer 6" in caption.inner_text()  # the final feature maps
    assert "strongest at" in canvas.get_attribute("aria-label")

    page.locator("select[data-explain=layer]").select_option("1")
    page.wait_for_function("() => document.querySelector('.explain-caption')"
                           ".innerText.includes('on layer 1')")
    page.locator("select[data-explain=class]").select_option("3")
    overlay_where(page, method="gradcam", **{"class": "3"})
    assert "for class 3" in caption.inner_text() and "on layer 1" in caption.inner_text()
    page.locator(".explain-panel").evaluate("e => e.scrollIntoView({block: 'end'})")
    screenshot(page, "gradcam")

    page.locator("select[data-explain=method]").select_option("occlusion")
    occluded = overlay_where(page, method="occlusion", **{"class": "3"})
    assert page.locator("select[data-explain=layer]").is_hidden()  # Grad-CAM's only
    assert "on layer" not in caption.inner_text() and "covered" in caption.inner_text()
    assert occluded.evaluate(TINTED) > 0
    page.locator("select[data-explain=method]").select_option("saliency")
    overlay_where(page, method="saliency")

    before = page.locator(OVERLAY).evaluate("c => c.toDataURL()")
    page.evaluate("() => window.scrollTo(0, 0)")  # the pad in view (the screenshot scrolled)
    pad = page.locator("canvas.pad").bounding_box()
    page.mouse.move(pad["x"] + 60, pad["y"] + 40)
    page.mouse.down()
    page.mouse.move(pad["x"] + 80, pad["y"] + 240, steps=6)  # a "1" on the left
    page.mouse.up()
    page.wait_for_function("([s, b]) => document.querySelector(s)?.toDataURL() !== b",
                           arg=[OVERLAY, before], timeout=30_000)  # the drawing's map


def test_a_conv_channel_shows_its_top_images_and_patches(page):
    page.goto("/#/maps?model=mnist-convnetjs&layer=4")
    page.get_by_role("button", name="Show the top images of map 0").click()
    grid = page.locator('.top-image-grid[data-channel="0"]')
    grid.wait_for()
    cards = grid.locator(".top-image-card")
    assert cards.count() == 9
    label = cards.first.get_attribute("aria-label")
    assert label.startswith("top 1: test image ")
    frame = cards.first.locator(".top-image").bounding_box()
    box = cards.first.locator(".patch-box").bounding_box()
    assert frame["x"] - 1 <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
    assert 0 < box["width"] <= frame["width"] + 1 and 0 < box["height"]
    patch = cards.first.locator("canvas.patch")
    assert patch.evaluate("c => c.width * c.height") > 0

    page.locator(".map-tile").nth(5).hover()  # another map: its top images come by themselves
    page.locator('.top-image-grid[data-channel="5"] .top-image-card').first.wait_for()
    page.locator(".top-images").evaluate("e => e.scrollIntoView({block: 'center'})")
    screenshot(page, "top-images")
