"""The explorer's defects of issue 20 in a real browser (Debian's Chromium driven by Playwright)
against the real server: a reloaded Train page (and a second tab) follows the running job, live
runs are named, renamed, deleted and scored, offline Train says what is missing before Start,
the layouts keep their feedback in view at 800 px and on a 1024x768 tablet, rendered colours
meet WCAG AA contrast, and the arrow keys move between confusion cells."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from served import CHROMIUM, served, watched_page
from test_browser import write_mnist_from_bundle

from convscope.bundle import BUNDLED

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

BUNDLED_MNIST = BUNDLED / "samples" / "mnist.npz"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real app with the bundled models and a tiny MNIST data directory; yields its base
    URL and its live-runs folder."""
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("defects")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        patch.delenv("CONVSCOPE_DOWNLOAD_URL", raising=False)
        data = write_mnist_from_bundle(tmp / "data")
        with served(create_app(runs_dir=tmp / "runs", data_dir=str(data),
                               bundled_dir=BUNDLED)) as url:
            yield url, tmp / "runs" / "live"


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as on a fresh machine without the network: no data directory files, and
    downloads refused at once."""
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("offline")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        patch.setenv("CONVSCOPE_DOWNLOAD_URL", "http://127.0.0.1:9/")
        with served(create_app(runs_dir=tmp / "runs", data_dir=str(tmp / "no-data"),
                               bundled_dir=BUNDLED)) as url:
            yield url


@pytest.fixture
def page(browser, server: tuple[str, Path]) -> Iterator[object]:
    with watched_page(browser, server[0]) as tab:
        yield tab


def wait_for_text(page, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)",
                           arg=[selector, text])


def start_long_run(page) -> None:
    """Start the default layer list for 100 epochs at batch size 4 and wait for progress."""
    page.goto("/#/train?model=mnist-convnetjs")
    page.get_by_label("Epochs").fill("100")
    page.get_by_label("Batch size").fill("4")
    page.get_by_role("button", name="Start").click()
    wait_for_text(page, ".train-status", "epoch 1 of 100")


def finished_run(page) -> str:
    """A one-epoch run trained through the API; its model id once it has finished."""
    started = page.request.post("/api/train", data={
        "spec": [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
                 {"type": "softmax", "num_classes": 10}], "epochs": 1, "batch_size": 32})
    assert started.ok, started.text()
    job = started.json()
    deadline = time.monotonic() + 60
    while page.request.get(f"/api/train/{job['job']}").json()["state"] != "done":
        assert time.monotonic() < deadline, "the one-epoch run did not finish"
        time.sleep(0.2)
    return job["model_id"]


def test_reload_and_a_second_tab_follow_the_running_job(page, browser, server):
    start_long_run(page)
    page.wait_for_function("() => document.querySelectorAll('.chart canvas').length > 0")
    page.reload()
    wait_for_text(page, ".train-status", "epoch")  # re-attached: its progress, not empty
    assert page.get_by_role("button", name="Stop").is_enabled()
    assert not page.get_by_role("button", name="Start").is_enabled()
    assert "training loss (batch): " in page.locator(".chart-key").first.inner_text()
    with watched_page(browser, server[0]) as second:
        second.goto("/#/train")
        wait_for_text(second, ".train-status", "epoch")
        assert second.get_by_role("button", name="Stop").is_enabled()
        # a Start while it runs names the run and offers to follow or stop it (no API route)
        page.get_by_role("button", name="Stop").click()
        wait_for_text(second, ".train-status", "Stopped")
    wait_for_text(page, ".train-status", "Stopped")
    status = page.locator(".train-status").inner_text()
    assert "kept. Test accuracy" in status and "evaluated when stopped" in status
    row = page.locator(".live-runs .run-row").first
    row.wait_for()
    assert " on mnist · " in row.locator(".run-name").inner_text()
    assert "%" in row.locator(".run-score").inner_text()


def test_start_while_a_run_trains_offers_to_follow_or_stop_it(page, browser, server):
    with watched_page(browser, server[0], expected="409") as earlier:
        earlier.goto("/#/train")  # open before the run starts: it knows of none
        earlier.locator(".live-runs h3").wait_for()
        start_long_run(page)
        earlier.get_by_role("button", name="Start").click()
        busy = earlier.locator(".notice", has_text="already training")
        busy.wait_for()
        assert "/api/" not in busy.inner_text() and " on mnist · " in busy.inner_text()
        busy.get_by_role("button", name="Stop it").click()
        wait_for_text(earlier, ".train-status", "Stopped")
    wait_for_text(page, ".train-status", "Stopped")


def test_live_runs_are_renamed_and_deleted(page, server):
    page.goto("/#/train")
    model_id = finished_run(page)
    page.reload()
    row = page.locator(".live-runs .run-row", has=page.locator(f"a[href$='{model_id}']"))
    row.wait_for()
    assert "%" in row.locator(".run-score").inner_text()  # its test score
    row.get_by_role("button", name="Rename").click()
    page.get_by_label("new name").fill("my first softmax")
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator(".live-runs .run-name", has_text="my first softmax").wait_for()
    picker = page.locator("#model-picker option", has_text="my first softmax")
    assert picker.count() == 1
    run_dirs = [p for p in server[1].iterdir() if (p / "title.txt").is_file()
                and "my first softmax" in (p / "title.txt").read_text()]
    assert len(run_dirs) == 1  # the name is kept for the next start of the explorer
    row = page.locator(".live-runs .run-row", has_text="my first softmax")
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Delete for good?").click()
    page.wait_for_function("""() => ![...document.querySelectorAll('.live-runs .run-name')]
        .some(a => a.innerText.includes('my first softmax'))""")
    assert page.locator("#model-picker option", has_text="my first softmax").count() == 0
    assert not run_dirs[0].exists()


def test_offline_train_says_what_is_missing_before_start(browser, offline):
    with watched_page(browser, offline) as page:
        page.goto("/#/train")
        note = page.locator(".data-note")
        wait_for_text(page, ".data-note", "training files are not in")
        assert "\n" not in note.inner_text().strip() and "/api/" not in note.inner_text()
        page.get_by_role("button", name="Start").click()
        error = page.locator(".train-form .error")
        error.wait_for()
        assert "could not be downloaded" in error.inner_text()
        assert "\n" not in error.inner_text().strip()
        assert "Waiting for the first snapshot" not in page.locator("main").inner_text()


# ---- layouts, colour and access, stale state ------------------------------------------------

# WCAG AA from the rendered colours: every visible element with its own text, its computed text
# colour over the background it really shows on (ancestors' backgrounds blended), needs 4.5:1
# (3:1 for large text); inactive (disabled) controls are exempt, as WCAG says.
CONTRAST_FAILURES = """() => {
  const parse = (s) => {
    const m = s.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const v = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1];
  };
  const lin = (c) => (c / 255 <= 0.04045 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4);
  const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const over = (top, under) => top.slice(0, 3).map((c, i) => c * top[3] + under[i] * (1 - top[3]));
  function background(el) {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const bg = parse(getComputedStyle(e).backgroundColor);
      if (bg && bg[3] > 0) {
        layers.push(bg);
        if (bg[3] >= 1) break;
      }
    }
    return layers.reverse().reduce((under, layer) => over(layer, under), [255, 255, 255]);
  }
  const failures = [];
  for (const el of document.querySelectorAll("body *")) {
    if (!el.checkVisibility() || ["SCRIPT", "STYLE", "OPTION"].includes(el.tagName)) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    if (el.closest("[disabled]")) continue;
    const style = getComputedStyle(el);
    const bg = background(el);
    const [a, b] = [lum(over(parse(style.color), bg)), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) {
      failures.push(`"${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}:1 ` +
                    `(${style.color} on rgb(${bg.map(Math.round)}))`);
    }
  }
  return failures;
}"""

# Wholly visible: inside the window and below the sticky top bar.
IN_VIEW = """(el) => {
  const r = el.getBoundingClientRect();
  const below = document.querySelector('.topbar').getBoundingClientRect().bottom;
  return r.top >= below && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
}"""


@pytest.fixture
def bundled(browser, offline) -> Iterator[object]:
    """A page on the explorer as a fresh machine serves it (bundled models and samples)."""
    with watched_page(browser, offline) as tab:
        yield tab


@pytest.mark.parametrize("view", ["confusion?model=mnist-convnetjs",
                                  "confusion?model=cifar10-convnetjs&show=samples",
                                  "network?model=mnist-convnetjs", "train",
                                  "predict?model=mnist-convnetjs",
                                  "convolution?model=mnist-convnetjs",
                                  "scenes?model=mnist-unet", "audio?model=fsdd-convnet",
                                  "maps?model=cifar10-convnetjs",
                                  "weights?model=mnist-convnetjs"])
def test_rendered_colours_meet_wcag_aa(bundled, view):
    bundled.goto("/#/" + view)
    ready = {"confusion": ".cm-cell", "network": ".layer-preview canvas", "train": ".live-runs h3",
             "predict": ".probabilities .bar-value", "convolution": ".conv-equation *",
             "scenes": ".maps-layout .map-tile", "audio": ".maps-layout .map-tile",
             "maps": ".maps-layout .map-tile", "weights": "main canvas"}
    bundled.locator(ready[view.split("?")[0]]).first.wait_for()
    assert bundled.evaluate(CONTRAST_FAILURES) == []


def test_arrow_keys_move_between_confusion_cells(bundled):
    bundled.goto("/#/confusion?model=mnist-convnetjs")
    live = bundled.locator(".cm-live")
    live.locator('.cm-cell[data-a="0"][data-p="0"]').focus()
    bundled.keyboard.press("ArrowRight")
    bundled.keyboard.press("ArrowDown")
    bundled.keyboard.press("ArrowDown")
    focused = bundled.evaluate("() => [document.activeElement.dataset.a, "
                               "document.activeElement.dataset.p]")
    assert focused == ["2", "1"]
    assert live.locator(".cm-side h3").inner_text() == "2 misclassified as 1"
    bundled.keyboard.press("ArrowLeft")
    bundled.keyboard.press("ArrowLeft")  # stops at the edge
    assert live.locator(".cm-side h3").inner_text() == "2 misclassified as 0"
    for _ in range(3):
        bundled.keyboard.press("ArrowUp")
    assert live.locator(".cm-side h3").inner_text() == "0 correctly classified as 0"


def test_the_matrix_says_which_images_it_scored(bundled):
    bundled.goto("/#/confusion?model=cifar10-convnetjs")
    scope = bundled.locator(".cm-scope")
    scope.wait_for()
    text = scope.inner_text()
    assert "bundled sample (300 images)" in text and "of 300 correct" in text
    strip = bundled.locator(".comparison-item[aria-pressed=true] strong").inner_text()
    assert f"test accuracy in the strip, {strip}" in text and "10,000" in text


def test_canvases_have_accessible_names(bundled):
    for view, ready in (("predict?model=mnist-convnetjs", ".predict-layers canvas"),
                        ("weights?model=mnist-convnetjs", "main canvas"),
                        ("network?model=mnist-convnetjs", ".layer-preview canvas")):
        bundled.goto("/#/" + view)
        bundled.locator(ready).first.wait_for()
        unnamed = bundled.evaluate("""() => [...document.querySelectorAll('main canvas')]
            .filter(c => !(c.getAttribute('aria-label') || c.title)).length""")
        assert unnamed == 0, view
        assert bundled.locator("main canvas").count() > 3


def test_mask_colours_are_distinct(bundled):
    bundled.goto("/#/scenes?model=mnist-unet")
    palette = bundled.evaluate("async () => (await import('/static/views/scenes.js')).PALETTE")

    def lab(rgb):
        def linear(c):
            c /= 255
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
        r, g, b = map(linear, rgb)
        x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
        y = 0.2126 * r + 0.7152 * g + 0.0722 * b
        z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
        f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
        return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])

    colours = [lab(c) for c in palette]
    closest = min(np.linalg.norm(np.subtract(colours[i], colours[j]))
                  for i in range(10) for j in range(i + 1, 10))
    assert closest > 25  # CIE76 distance: 5 and 7 were about 11 apart


def test_loss_ticks_are_round_and_uncertain_outputs_are_flagged(bundled):
    bundled.goto("/#/train")
    ticks = bundled.evaluate("""async () => {
        const {niceTicks} = await import('/static/chart.js');
        return [niceTicks(0, 2.31).ticks, niceTicks(0.58, 1.7).ticks, niceTicks(0, 0.58).ticks];
    }""")
    assert ticks == [[0, 0.5, 1, 1.5, 2, 2.5], [0.5, 1, 1.5, 2], [0, 0.2, 0.4, 0.6]]
    hints = bundled.evaluate("""async () => {
        const {outOfDistributionHint} = await import('/static/ood.js');
        const tone = [0.02, 0.03, 0.05, 0.04, 0.06, 0.05, 0.1, 0.05, 0.55, 0.05];
        const seven = [0, 0, 0, 0, 0, 0, 0, 0.99, 0.01, 0];
        return [outOfDistributionHint(tone, 'sound')?.textContent ?? null,
                outOfDistributionHint(seven)];
    }""")
    assert "55%" in hints[0] and "unlike anything" in hints[0] and hints[1] is None


def in_view(locator) -> bool:
    return locator.evaluate(IN_VIEW)


@pytest.mark.parametrize("size", [(800, 800), (1024, 768)])
def test_layouts_keep_the_feedback_in_view(bundled, size):
    bundled.set_viewport_size({"width": size[0], "height": size[1]})
    bundled.goto("/#/convolution?model=mnist-convnetjs")
    source, target = bundled.locator(".conv-input"), bundled.locator(".conv-map")
    bundled.locator(".conv-equation *").first.wait_for()
    source.scroll_into_view_if_needed()
    assert in_view(source) and in_view(target)  # the input and its map together
    figures = bundled.locator(".conv-grids figure.grid")
    tops = [figures.nth(i).bounding_box()["y"] for i in range(figures.count())]
    assert len(tops) == 3 and max(tops) - min(tops) < 2  # patch x filter = products, one line
    for view in ("maps?model=mnist-convnetjs", "scenes?model=mnist-unet",
                 "audio?model=fsdd-convnet"):
        bundled.goto("/#/" + view)
        tile = bundled.locator(".maps-layout .map-tile").nth(3)
        tile.scroll_into_view_if_needed()
        tile.hover()
        frame = bundled.locator(".maps-layout .zoom-frame")
        assert in_view(frame) and in_view(tile), view  # the zoom beside the tile hovered
    bundled.goto("/#/network?model=cifar10-convnetjs")
    strip = bundled.locator(".network-scroll")
    strip.locator("svg").wait_for()
    overflows = strip.evaluate("s => s.scrollWidth > s.clientWidth + 2")
    cue = bundled.locator(".scroll-cue")
    assert cue.is_visible() == overflows
    if overflows:
        assert "More layers to the right" in cue.inner_text()
        strip.evaluate("s => s.scrollTo(s.scrollWidth, 0)")
        bundled.wait_for_function("() => document.querySelector('.scroll-cue')"
                                  ".innerText.includes('Earlier layers')")


INKED = """c => [...c.getContext('2d').getImageData(0, 0, c.width, c.height).data]
    .some((v, i) => i % 4 === 0 && v > 0)"""


def test_no_stale_state_after_an_upload(browser, offline, tmp_path):
    from PIL import Image

    with watched_page(browser, offline, expected="400") as page:
        page.goto("/#/predict?model=mnist-convnetjs")
        page.locator(".probabilities .bar-value").first.wait_for()
        pad = page.locator("canvas.pad")
        box = pad.bounding_box()
        page.mouse.move(box["x"] + 80, box["y"] + 60)
        page.mouse.down()
        page.mouse.move(box["x"] + 160, box["y"] + 200, steps=8)
        page.mouse.up()
        assert pad.evaluate(INKED)
        picture = tmp_path / "digit.png"
        Image.new("L", (28, 28), 255).save(picture)
        page.locator("input[type=file]").first.set_input_files(str(picture))
        page.wait_for_function(f"() => !({INKED})(document.querySelector('canvas.pad'))")
        page.goto("/#/predict?model=cifar10-convnetjs")  # its pictures are not MNIST's digits
        page.locator(".probabilities .bar-value").first.wait_for()
        header = page.locator(".view-header").inner_text()
        assert "MNIST" not in header and "scaled to the network's input" in header
        page.goto("/#/audio?model=fsdd-convnet")
        page.locator(".audio-figures canvas").first.wait_for()
        broken = tmp_path / "broken.wav"
        broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
        page.locator("input[type=file]").set_input_files(str(broken))
        page.locator(".audio-message .error").wait_for()
        assert page.locator(".audio-figures canvas").count() == 0  # the old clip is gone
        assert "No prediction" in page.locator(".probabilities").inner_text()
        assert "/api/" not in page.locator(".audio-message").inner_text()


# The widest option of each picker (the top bar's and the view's), measured in its own font, against
# the room the picker gives its text (its width less padding and the arrow).
CUT_LABELS = """() => {
  const context = document.createElement('canvas').getContext('2d');
  return [...document.querySelectorAll('select')].flatMap((select) => {
    const style = getComputedStyle(select);
    context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    const room = select.clientWidth - padding - 20;
    return [...select.options].filter((o) => context.measureText(o.text).width > room)
      .map((o) => `${select.id}: ${o.text}`);
  });
}"""


@pytest.mark.parametrize("width", [800, 1280])
def test_picker_labels_are_not_cut(bundled, width):
    bundled.set_viewport_size({"width": width, "height": 800})
    bundled.goto("/#/scenes?model=mnist-unet")
    bundled.locator(".maps-layout .map-tile").first.wait_for()
    assert bundled.locator("#dataset-picker option", has_text="scenes").count() >= 1
    assert bundled.evaluate(CUT_LABELS) == []


def test_the_stored_test_matrix_agrees_with_the_strip(bundled):
    bundled.goto("/#/confusion?model=cifar10-convnetjs")
    bundled.locator(".cm-scope").wait_for()
    bundled.locator("label.field", has_text="Matrix of").locator("select").select_option("stored")
    bundled.wait_for_function("() => document.querySelector('.cm-scope')?.innerText"
                              ".includes('stored when the run was scored')")
    strip = bundled.locator(".comparison-item[aria-pressed=true] strong").inner_text()
    scope = bundled.locator(".cm-scope").inner_text()
    assert "of 10,000 correct" in scope and f"correct, {strip}" in scope
    accuracy = bundled.locator(".cm-accuracy .cm-score").inner_text()
    assert accuracy == f"{round(float(strip[:-1]))}%"  # the matrix's own box: the same number
    cells = bundled.locator(".cm-live .cm-cell")
    assert cells.count() == 100
    total = sum(int(t) for t in cells.all_inner_texts())
    assert total == 10_000
    assert bundled.evaluate(CONTRAST_FAILURES) == []
