"""The WaveNet view in a real browser (Debian's Chromium driven by Playwright) against the real
server, with a tiny WaveNet run and the bundled FSDD recordings (no data directory): the stack
is drawn from the model's dilations, hovering an output highlights its receptive field, a
generated digit streams in and plays, Stop ends one early, and the image views are not offered.
Writes docs/screenshots/wavenet.png (1280x800)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _wavenet_run import DILATIONS, tiny_wavenet_run
from served import CHROMIUM, served, watched_page

from convscope.bundle import BUNDLED, bundled_model_dirs

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
MODEL = "run-tiny-wavenet"
FIELD = 1 + sum(DILATIONS)
# every data-samples value the generated waveform took, in order
WATCH_SAMPLES = """() => {
  window.seenSamples = [];
  const canvas = document.querySelector('.wavenet-generated');
  new MutationObserver((records) => records.forEach(
    (r) => window.seenSamples.push(Number(canvas.dataset.samples))
  )).observe(canvas, {attributes: true, attributeFilter: ['data-samples']});
}"""
TEAL = """([selector, x, y]) => {
  const canvas = document.querySelector(selector);
  const ratio = canvas.width / canvas.getBoundingClientRect().width;
  const [r, g, b] = canvas.getContext('2d').getImageData(Math.round(x * ratio),
                                                          Math.round(y * ratio), 1, 1).data;
  return g > r + 30 && b > r + 20;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with the tiny WaveNet run, no data directory: the bundled recordings."""
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("explorer-wavenet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        run = tiny_wavenet_run(tmp)
        (tmp / "empty").mkdir()
        with served(create_app(runs=[run], data_dir=str(tmp / "empty"),
                               bundled_dir=BUNDLED)) as url:
            yield url



def open_view(page) -> None:
    page.goto(f"/#/wavenet?model={MODEL}")
    page.wait_for_selector(".wavenet-stack[data-field]")
    page.wait_for_function("() => document.querySelector('.wavenet-clip')?.dataset.field")


def test_the_stack_is_drawn_from_the_models_dilations_and_hover_shows_the_field(page):
    if not (BUNDLED / "samples" / "fsdd").is_dir():
        pytest.skip("no bundled FSDD recordings (run scripts/make_bundle.py)")
    stack = page.request.get(f"/api/models/{MODEL}/wavenet").json()
    assert stack["dilations"] == DILATIONS and stack["receptive_field"] == FIELD
    open_view(page)
    canvas = page.locator(".wavenet-stack")
    assert canvas.get_attribute("data-dilations") == ",".join(map(str, DILATIONS))
    assert "receptive field, 1 + the sum of the dilations" in page.inner_text(".view-header")
    assert f"dilations {', '.join(map(str, DILATIONS))}:" in canvas.get_attribute("aria-label")

    def field_of(selector: str) -> tuple[int, int]:
        first, last = page.get_attribute(selector, "data-field").split("..")
        return int(first), int(last)

    # hover the clip: the output sample under the mouse, its field in the stack and the clip
    page.locator(".wavenet-clip").scroll_into_view_if_needed()
    box = page.locator(".wavenet-clip").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    page.wait_for_function("() => Number(document.querySelector('.wavenet-stack')"
                           ".dataset.output) > 0")
    t = int(canvas.get_attribute("data-output"))
    assert abs(t - (0.3 * box["width"] - 92) / (box["width"] - 92) * 8064) < 40
    assert field_of(".wavenet-stack") == (t - FIELD, t - 1) == field_of(".wavenet-clip")
    # hovering the stack itself moves the output within its window, the field with it
    canvas.scroll_into_view_if_needed()
    stack_box = canvas.bounding_box()
    page.mouse.move(stack_box["x"] + stack_box["width"] - 30,
                    stack_box["y"] + stack_box["height"] * 0.6)  # (below the PNG button)
    moved = int(canvas.get_attribute("data-output"))
    assert moved > t and field_of(".wavenet-stack") == (moved - FIELD, moved - 1)
    # the highlighted output node is drawn in the accent colour, a node far left of it is not
    first, last = map(int, canvas.get_attribute("data-window").split(".."))
    assert first <= moved - FIELD and moved <= last
    x_of = lambda u: 92 + (u - first + 0.5) / (last - first + 1) * (stack_box["width"] - 100)  # noqa: E731
    out_y = 18  # the output row is the top row
    assert page.evaluate(TEAL, [".wavenet-stack", x_of(moved), out_y])
    assert not page.evaluate(TEAL, [".wavenet-stack", x_of(first), out_y])
    # zoomed in to 24 samples: the same output and field, the window narrower
    page.select_option("select[aria-label='samples shown']", "24")
    first, last = map(int, canvas.get_attribute("data-window").split(".."))
    assert last - first + 1 == 24 and first <= moved <= last
    assert field_of(".wavenet-stack") == (moved - FIELD, moved - 1)
    # every layer's activations are drawn, the field outlined in them
    assert page.locator(".wavenet-layers").get_attribute("aria-label").startswith(
        f"activations over time of the {len(DILATIONS)} layers")


def test_generate_streams_the_waveform_and_plays(page):
    open_view(page)
    page.evaluate(WATCH_SAMPLES)
    page.select_option("select[aria-label='digit to say']", "2")
    page.select_option("select[aria-label='speaker']", "theo")
    page.fill("input[aria-label='seconds to generate']", "0.5")
    page.click("button:has-text('Generate')")
    page.wait_for_function("() => document.querySelector('.generate-status')"
                           ".innerText.startsWith('done')")
    seen = page.evaluate("window.seenSamples")
    assert len(seen) >= 4 and seen == sorted(seen) and seen[-1] == 4000, seen  # it grew
    assert page.get_attribute(".wavenet-spectrogram", "data-frames") == str(1 + 4000 // 128)
    page.click("button:has-text('Play')")
    page.wait_for_function("() => document.querySelector('.generate-status')"
                           ".innerText.startsWith('playing 0.50 s')")
    page.wait_for_selector(".generate-status[data-played='yes']", timeout=10_000)
    assert page.get_attribute(".generate-status", "data-peak") == "0.800"  # played at PEAK


def test_stop_ends_a_generation_early(page):
    open_view(page)
    page.fill("input[aria-label='seconds to generate']", "10")
    page.click("button:has-text('Generate')")
    page.wait_for_function("() => Number(document.querySelector('.wavenet-generated')"
                           "?.dataset.samples) > 0")
    page.click("button:has-text('Stop')")
    page.wait_for_function("() => document.querySelector('.generate-status')"
                           ".innerText.startsWith('stopped')")
    assert int(page.get_attribute(".wavenet-generated", "data-samples")) < 80_000
    assert page.is_enabled("button:has-text('Play')")


def test_a_bad_request_is_one_line_on_the_page(page):
    open_view(page)
    page.fill("input[aria-label='seconds to generate']", "0")
    page.click("button:has-text('Generate')")
    page.wait_for_selector(".wavenet-generate .error")
    assert "--seconds must be above 0 and at most 10" in page.inner_text(".wavenet-generate "
                                                                         ".error")
    page.fill("input[aria-label='seconds to generate']", "0.1")
    page.fill("input[aria-label='sampling temperature']", "3")  # the page sends what it shows
    page.click("button:has-text('Generate')")
    page.wait_for_function("() => document.querySelector('.wavenet-generate .error')"
                           "?.innerText.includes('--temperature must be a number from 0 to 2')")


def test_an_uploaded_wav_is_analysed_and_one_too_long_is_refused(browser, server, tmp_path):
    import numpy as np
    from conftest import write_clip

    long, spoken = tmp_path / "long.wav", tmp_path / "spoken.wav"
    write_clip(long, 0.2 * np.sin(np.arange(40_000) / 5.0))
    write_clip(spoken, 0.3 * np.sin(np.arange(6000) / 4.0) * np.hanning(6000))
    with watched_page(browser, server, expected="status of 400") as page:
        open_view(page)
        page.set_input_files("input[type=file]", str(long))
        page.wait_for_selector(".wavenet-recording .error")
        assert "5.00 s is not the length of a spoken digit (0.1-3 s); trim it to the one word" \
            in page.inner_text(".wavenet-recording .error")
        page.select_option("select[aria-label=\"the uploaded recording's digit\"]", "4")
        page.set_input_files("input[type=file]", str(spoken))
        page.wait_for_function("() => document.querySelector('.wavenet-recording p.small')"
                               ".innerText.startsWith('the uploaded audio: digit 4 (no speaker')")
        assert page.locator(".wavenet-recording .error").count() == 0


def test_image_views_are_not_offered_and_the_network_view_works(page):
    page.goto(f"/#/maps?model={MODEL}")
    page.wait_for_selector(".notice a")
    assert "The Maps view draws each layer's maps of an image" in page.inner_text(".notice")
    assert page.get_attribute(".notice a", "href") == f"#/wavenet?model={MODEL}"
    for view in ("maps", "convolution", "weights"):
        assert page.locator(f"#nav a[data-view='{view}']").is_hidden()
    page.goto(f"/#/network?model={MODEL}")
    page.wait_for_selector(".view-network")
    page.wait_for_timeout(500)
    assert f"wavenet {len(DILATIONS)} layers" in page.inner_text(".view-network")


@pytest.mark.parametrize("width", [800, 1440])
def test_readable_at_800_and_1440_px(browser, server, width):
    with watched_page(browser, server) as tab:
        tab.set_viewport_size({"width": width, "height": 900})
        open_view(tab)
        assert tab.evaluate("document.documentElement.scrollWidth") <= width
        for canvas in tab.locator("canvas").all():
            assert canvas.get_attribute("aria-label"), canvas.get_attribute("class")


def test_screenshot(page):
    """docs/screenshots/wavenet.png: a recording hovered, one second generated."""
    model = screenshot_model()
    page.goto(f"/#/wavenet?model={model}")
    page.wait_for_function("() => document.querySelector('.wavenet-clip')?.dataset.field")
    page.locator(".wavenet-clip").scroll_into_view_if_needed()
    box = page.locator(".wavenet-clip").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    page.click("button:has-text('Generate')")
    page.wait_for_function("() => document.querySelector('.generate-status')"
                           ".innerText.startsWith('done')", timeout=60_000)
    page.evaluate("window.scrollTo(0, 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "wavenet.png"), full_page=True)


def screenshot_model() -> str:
    """The bundled fsdd-wavenet when the bundle has one, else the tiny run."""
    return "fsdd-wavenet" if "fsdd-wavenet" in bundled_model_dirs() else MODEL
