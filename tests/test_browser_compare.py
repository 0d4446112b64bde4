"""Share, keep and compare, in Chromium against the real server (bundled models and samples,
two tiny runs trained here): a copied link reopens the same view (a drawing on Predict, a
layer and map on Maps, a pinned confusion cell), figures save as PNG and the matrix as CSV,
two models answer the same input side by side, and the Runs page overlays past runs' curves.
Writes docs/screenshots/compare.png and runs.png.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from served import CHROMIUM, served, watched_page
from test_browser import CANVAS_COLOURS, SCREENSHOTS, write_mnist_from_bundle

import convscope
from convscope.bundle import BUNDLED
from convscope.config import TrainConfig

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")
Image = pytest.importorskip("PIL.Image")

TEMPLATES = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
             {"type": "softmax", "num_classes": 10}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app with the bundled models and samples and two tiny runs in its runs directory
    (2 epochs each, different learning rates, the loss logged every 2 steps)."""
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("compare-browser")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        data = write_mnist_from_bundle(tmp / "data")
        for name, lr in (("tiny-slow", 1e-3), ("tiny-fast", 1e-2)):
            torch.manual_seed(0)
            convscope.train(TEMPLATES, "mnist", out=tmp / "runs" / name, data_dir=str(data),
                            epochs=2, batch_size=16, lr=lr, optimizer="adam", log_every=2,
                            progress=False)
        with served(create_app(runs_dir=tmp / "runs", data_dir=str(data),
                               bundled_dir=BUNDLED)) as url:
            yield url, tmp / "runs"


@pytest.fixture
def page(browser, server) -> Iterator[object]:
    with watched_page(browser, server[0]) as tab:
        yield tab


def data_url(locator) -> str:
    return locator.evaluate("canvas => canvas.toDataURL()")


def wait_for_address(page, text: str) -> str:
    page.wait_for_function("t => location.hash.includes(t)", arg=text)
    return page.url


def draw_one(page, pad) -> None:
    """A vertical stroke down the middle of the pad: a 1."""
    box = pad.bounding_box()
    x = box["x"] + box["width"] * 0.5
    page.mouse.move(x, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    for i in range(1, 13):
        page.mouse.move(x + i * 0.5, box["y"] + box["height"] * (0.2 + i * 0.05))
    page.mouse.up()


def input_of(page, code: str) -> dict:
    """The input reference the address code stands for, decoded by the page's own module."""
    return page.evaluate("""async (code) => {
      const {decodeInput} = await import('/static/widgets/address-input.js');
      return (await decodeInput(code)).input;
    }""", code)


def answer(page, model: str, input_ref: dict) -> dict:
    """The server's activations answer for ``input_ref`` (its prediction and probabilities)."""
    return page.evaluate("""async ([model, input]) => {
      const r = await fetch(`/api/models/${model}/activations`, {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({...input, layers: [0]})});
      const body = await r.json();
      return {prediction: body.prediction, probabilities: body.probabilities};
    }""", [model, input_ref])


def address_input(url: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(url).fragment.split("?", 1)[1])["input"][0]


def test_a_link_reopens_predict_with_the_drawing(browser, server, page):
    page.goto("/#/predict?model=mnist-convnetjs")
    page.locator(".probabilities .prediction").wait_for()
    draw_one(page, page.locator("canvas.pad"))
    url = wait_for_address(page, "input=p.d.84x84x1.z")
    assert len(url) < 4000  # a drawing travels compressed
    prediction = page.locator(".probabilities .prediction")
    drawn = answer(page, "mnist-convnetjs", input_of(page, address_input(url)))
    page.wait_for_function(
        "t => document.querySelector('.probabilities .prediction').innerText.startsWith(t)",
        arg=f"Prediction: {drawn['prediction']} ")
    shown, seen = prediction.inner_text(), data_url(page.locator("figure.seen canvas"))

    with watched_page(browser, server[0]) as other:
        other.goto(url)
        again = other.locator(".probabilities .prediction")
        again.wait_for()
        assert again.inner_text() == shown
        assert data_url(other.locator("figure.seen canvas")) == seen  # the very same input
        assert other.locator("canvas.pad").evaluate(CANVAS_COLOURS) > 1  # the drawing is back
        assert address_input(other.url) == address_input(url)


def test_a_link_reopens_maps_on_the_layer_map_and_sample(browser, server, page):
    page.goto("/#/maps?model=mnist-convnetjs")
    page.locator(".map-tile").first.wait_for()
    page.get_by_role("button", name="next sample").click()
    page.get_by_role("button", name="next sample").click()
    wait_for_address(page, "input=s.mnist.2")
    page.locator(".layer-button", has_text="conv 5x5 x16").click()
    page.get_by_role("button", name="conv 5x5 x16 s1 p2 - 5", exact=True).click()
    url = wait_for_address(page, "channel=5")
    assert "layer=4" in url and "input=s.mnist.2" in url
    page.mouse.move(0, 0)
    zoomed = data_url(page.locator(".zoom-frame canvas"))

    with watched_page(browser, server[0]) as other:
        other.goto(url)
        other.locator(".zoom-title").wait_for()
        assert other.locator(".zoom-title").inner_text() == "conv 5x5 x16 s1 p2 - 5"
        current = other.locator(".layer-button[aria-current=true] .layer-index")
        assert current.inner_text() == "4"
        other.wait_for_function("() => document.querySelector('.input-status').innerText"
                                ".startsWith('mnist sample 2')")
        assert data_url(other.locator(".zoom-frame canvas")) == zoomed


def test_a_link_reopens_the_pinned_confusion_cell(browser, server, page):
    page.goto("/#/confusion?model=mnist-convnetjs")
    cell = page.locator(".cm-live .cm-cell[data-a='3'][data-p='5']")
    cell.click()
    url = wait_for_address(page, "cell=3.5")
    page.mouse.move(0, 0)

    with watched_page(browser, server[0]) as other:
        other.goto(url)
        other.locator(".cm-live .cm-cell.active").wait_for()
        active = other.locator(".cm-live .cm-cell.active")
        assert (active.get_attribute("data-a"), active.get_attribute("data-p")) == ("3", "5")
        assert other.locator(".cm-live .cm-side h3").inner_text() == "3 misclassified as 5"


def saved(page, button) -> Path:
    with page.expect_download() as download:
        button.hover()
        button.click()
    return Path(download.value.path())


def test_the_matrix_saves_as_csv_and_figures_as_png(page):
    page.goto("/#/confusion?model=mnist-convnetjs")
    page.locator(".cm-live .cm-cell").first.wait_for()
    result = page.evaluate(
        "fetch('/api/models/mnist-convnetjs/confusion?samples=64').then(r => r.json())")
    rows = list(csv.reader(io.StringIO(saved(page, page.locator(".cm-live").get_by_role(
        "button", name="Save as CSV")).read_text())))
    classes = result["classes"]
    assert rows[0] == ["actual \\ predicted", *classes, "recall"]
    for a, row in enumerate(rows[1:len(classes) + 1]):
        assert row[0] == classes[a]
        assert [int(v) for v in row[1:-1]] == result["confusion"][a]
        assert float(row[-1]) == pytest.approx(result["recall"][a])
    assert rows[-1][0] == "precision"
    assert float(rows[-1][-1]) == pytest.approx(result["accuracy"])

    matrix = page.locator(".cm-live .cm-wrap")
    png = Image.open(saved(page, matrix.locator(":scope > .save-figure")))
    box = matrix.bounding_box()  # drawn at twice its size, with an 8-pixel margin
    assert abs(png.width - 2 * (box["width"] + 16)) <= 2
    assert abs(png.height - 2 * (box["height"] + 16)) <= 2
    pixels = png.convert("RGB")
    assert len(pixels.getcolors(maxcolors=1 << 20)) > 20  # cells in their colours, numbers, labels
    # the strongest diagonal cell is painted in its on-screen colour at its place on screen
    cell = page.locator(".cm-live .cm-cell[data-a='1'][data-p='1']")
    shown = [int(v) for v in re.findall(r"\d+", cell.evaluate(
        "e => getComputedStyle(e).backgroundColor"))[:3]]
    where = cell.bounding_box()
    x, y = (2 * (where["x"] - box["x"] + 8 + 3), 2 * (where["y"] - box["y"] + 8 + 3))
    painted = pixels.getpixel((int(x), int(y)))
    assert max(abs(a - b) for a, b in zip(painted, shown, strict=True)) <= 3
    assert len(set(shown)) > 1  # a colour, not white or grey

    page.goto("/#/network?model=mnist-convnetjs")  # an SVG figure
    figure = page.locator(".network-scroll")
    figure.locator("svg.network-svg").wait_for()
    png = Image.open(saved(page, figure.locator(":scope > .save-figure"))).convert("L")
    assert png.getextrema()[0] < 100  # the drawing's dark strokes and text came through


def test_two_models_answer_the_same_input_side_by_side(page):
    page.goto("/#/predict?model=mnist-convnetjs")
    page.locator(".probabilities .prediction").wait_for()
    page.get_by_label("second model to compare with").select_option("mnist-ordinary")
    url = wait_for_address(page, "vs=mnist-ordinary")
    second = page.locator(".compare-card .prediction")
    second.wait_for()
    ref = input_of(page, address_input(url))
    expected = answer(page, "mnist-ordinary", ref)
    assert second.inner_text().startswith(f"mnist-ordinary: {expected['prediction']} ")
    draw_one(page, page.locator("canvas.pad"))
    url = wait_for_address(page, "input=p.d.")
    drawn = answer(page, "mnist-ordinary", input_of(page, address_input(url)))
    page.wait_for_function(
        "t => document.querySelector('.compare-card .prediction')?.innerText.startsWith(t)",
        arg=f"mnist-ordinary: {drawn['prediction']} ")
    top = max(drawn["probabilities"])
    assert f"({100 * top:.1f}%)" in second.inner_text()
    verdict = page.locator(".compare-verdict").inner_text()
    assert verdict.startswith(("Both predict", "They disagree"))

    page.goto("/#/maps?model=mnist-convnetjs&vs=mnist-ordinary")
    page.locator(".compare-second .layer-button").first.wait_for()
    assert page.locator(".compare-second .layer-button").count() == 5  # mnist-ordinary's layers
    page.locator(".compare-second .layer-button", has_text="fc 10").first.click()
    wait_for_address(page, "vslayer=1")
    detail = page.locator(".compare-second .maps-detail h3")
    page.wait_for_function("() => document.querySelector('.compare-second .maps-detail h3')"
                           "?.innerText.startsWith('Layer 1: fc 10')")
    first_values = page.locator(".compare-second .maps-detail .tight").inner_text()
    page.get_by_role("button", name="next sample").click()  # one input for both panels
    page.wait_for_function("v => document.querySelector('.compare-second .maps-detail .tight')"
                           "?.innerText !== v", arg=first_values)
    assert detail.inner_text().startswith("Layer 1: fc 10")
    assert page.locator(".compare-title").all_inner_texts() == ["mnist-convnetjs",
                                                                 "mnist-ordinary"]
    page.mouse.move(0, 0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compare.png"))


def test_runs_page_overlays_the_curves_of_chosen_runs(browser, server, page):
    runs_dir = server[1]
    page.goto("/#/runs")
    table = page.locator(".runs-table")
    table.wait_for()
    names = table.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert any(n.startswith("tiny-slow") for n in names)
    assert any(n.startswith("mnist-convnetjs") for n in names)
    loss_key = page.locator(".runs-charts figure").nth(0).locator(".chart-key-item")
    page.wait_for_function("() => document.querySelectorAll('.runs-charts .chart-key-item')"
                           ".length >= 2")
    shown = loss_key.all_inner_texts()  # your own runs are shown first
    for name in ("tiny-slow", "tiny-fast"):
        last = json.loads((runs_dir / name / "metrics.jsonl").read_text().splitlines()[-1])
        assert f"{name} · train_loss: {last['train_loss']:.3f}" in shown
    assert page.locator(".runs-charts figure").nth(2).is_visible()  # steps.jsonl's curve
    assert page.locator(".runs-charts canvas").first.evaluate(CANVAS_COLOURS) > 2

    table.get_by_label("show mnist-convnetjs").check()
    page.wait_for_function("() => document.querySelector('.runs-charts figure .chart-key')"
                           ".innerText.includes('mnist-convnetjs · train_loss: 0.088')")
    assert len(loss_key.all_inner_texts()) == len(shown) + 1
    url = wait_for_address(page, "mnist-convnetjs")
    configs = (runs_dir / "tiny-slow", runs_dir / "tiny-fast",
               BUNDLED / "models" / "mnist-convnetjs")
    trains = [TrainConfig.from_dict(yaml.safe_load((path / "config.yaml").read_text())["train"])
              .to_dict() for path in configs]
    fixed = {"model", "data", "data_dir", "device", "task", "epochs", "batch_size", "lr",
             "optimizer", "augment"}
    differing = sorted(k for k in trains[0] if k not in fixed
                       and len({json.dumps(t.get(k)) for t in trains}) > 1)
    assert differing  # the bundled recipe differs from the tiny runs in more than lr
    cell = table.locator("tr", has_text="mnist-convnetjs").locator(".run-differing")
    assert [part.split(" ")[0] for part in cell.inner_text().split(", ")] == differing
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.querySelector('.runs-charts').scrollIntoView({block: 'start'});"
                  "window.scrollBy(0, -330)")  # the curves and the runs above them
    page.screenshot(path=str(SCREENSHOTS / "runs.png"))

    with watched_page(browser, server[0]) as other:
        other.goto(url)
        other.locator(".runs-table").wait_for()
        checked = other.locator(".runs-table input[type=checkbox]:checked")
        other.wait_for_function("() => document.querySelectorAll("
                                "'.runs-table input[type=checkbox]:checked').length === 3")
        assert sorted(checked.evaluate_all("boxes => boxes.map(b => b.dataset.run)")) == \
            sorted(url.split("runs=")[1].split("&")[0].replace("%2C", ",").split(","))
        other.evaluate("document.querySelector('.runs-table').dataset.old = 'yes'")
        other.get_by_role("button", name="Refresh").click()  # a fresh read keeps the choice
        other.wait_for_function("() => document.querySelector('.runs-table') && "
                                "!document.querySelector('.runs-table[data-old]') && "
                                "document.querySelectorAll('.runs-table input:checked').length"
                                " === 3")


def test_a_link_reopens_the_scene(browser, server, page):
    page.goto("/#/scenes?model=mnist-yolo")
    page.locator(".scene-canvas").wait_for()
    page.get_by_role("button", name="next scene").click()
    page.get_by_role("button", name="next scene").click()
    url = wait_for_address(page, "input=s.mnist-detect-scenes.2")
    page.wait_for_function("() => document.querySelector('.input-status').innerText"
                           " === 'test scene 2'")
    scene = data_url(page.locator("canvas.scene-canvas"))
    with watched_page(browser, server[0]) as other:
        other.goto(url)
        other.wait_for_function("() => document.querySelector('.input-status')?.innerText"
                                " === 'test scene 2'")
        assert data_url(other.locator("canvas.scene-canvas")) == scene


def test_a_damaged_link_says_so_in_one_line(page):
    page.goto("/#/predict?model=mnist-convnetjs&input=p.d.84x84x1.zAAAA")
    banner = page.locator("#banner .error")
    banner.wait_for()
    text = banner.inner_text()
    assert "the link's input cannot be read (its pixels are damaged, perhaps cut short)" in text
    assert "copy a fresh link" in text and "\n" not in text.strip()
    page.locator(".probabilities .prediction").wait_for()  # the view still works

    page.goto("/#/maps?model=mnist-convnetjs&input=s.mnist.99999")
    page.wait_for_function("() => document.querySelector('#banner .error')?.innerText"
                           ".includes('mnist sample 99999; this explorer offers 0 to 299')")


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("deflate", [True, False])
def test_the_address_form_of_pixels_round_trips(page, depth: int, deflate: bool):
    page.goto("/#/runs")
    page.locator(".runs-table").wait_for()
    same = page.evaluate("""async ([depth, deflate]) => {
      if (!deflate) window.CompressionStream = undefined;  // a browser without it
      const {encodeInput, decodeInput} = await import('/static/widgets/address-input.js');
      const width = 33, height = 17;
      const data = Array.from({length: width * height * depth}, (_, i) => (i * 7919) % 256);
      const input = {pixels: {width, height, depth, data}};
      const code = await encodeInput(input, 'uploaded me.png');
      const back = await decodeInput(code);
      return {code: code.slice(0, 16), same: JSON.stringify(back.input) === JSON.stringify(input),
              source: back.source};
    }""", [depth, deflate])
    assert same["same"] and same["source"] == "an uploaded image"
    assert same["code"].startswith(f"p.u.33x17x{depth}.{'z' if deflate else 'r'}")
