"""The explorer page in a real browser (Debian's Chromium driven by Playwright) against the real
server, offering what ``convscope serve`` offers out of the box (the bundled models and sample
images) plus a tiny run trained here on MNIST-format files made from the bundled MNIST sample.

Each test opens one view, interacts with it like a user and asserts on what is drawn; the README's
1280x800 screenshots (docs/screenshots/<view>.png) are taken on the bundled models.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import idx_bytes
from served import CHROMIUM, served, watched_page

import convscope
from convscope.bundle import BUNDLED, bundled_model_dirs
from convscope.errors import DataError

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
BUNDLED_MNIST = BUNDLED / "samples" / "mnist.npz"

TEMPLATES = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
             {"type": "softmax", "num_classes": 10}]

# Non-blank: at least two different pixel colours in the canvas's bitmap.
CANVAS_COLOURS = """canvas => {
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length && seen.size < 3; i += 4) {
    seen.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2] + (d[i + 3] << 24));
  }
  return seen.size;
}"""


def write_mnist_from_bundle(root: Path) -> Path:
    """MNIST-format train and test files holding the 300 real digits bundled with convscope."""
    with np.load(BUNDLED_MNIST, allow_pickle=False) as arrays:
        images, labels = arrays["images"][:, 0], arrays["labels"].astype(np.uint8)
    (root / "mnist").mkdir(parents=True)
    for prefix in ("train", "t10k"):
        for kind, array, dims in (("images", images, "idx3"), ("labels", labels, "idx1")):
            path = root / "mnist" / f"{prefix}-{kind}-{dims}-ubyte.gz"
            path.write_bytes(gzip.compress(idx_bytes(array), compresslevel=1))
    return root


def write_summary(path: Path, labels: np.ndarray) -> None:
    """A ConvNetJS confusion summary (the ml4a format) of images 0..len(labels)-1, each tenth
    one misclassified as the next class."""
    confusion = np.zeros((10, 10), dtype=int)
    tops: list[list[list[dict]]] = [[[] for _ in range(10)] for _ in range(10)]
    for i, actual in enumerate(labels.tolist()):
        predicted = actual if i % 10 else (actual + 1) % 10
        confusion[actual, predicted] += 1
        tops[actual][predicted].append({"idx": i, "prob": 0.99 - i / 1000})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "confusion": confusion.tolist(), "tops": tops, "actuals": confusion.sum(1).tolist(),
        "predictions": confusion.sum(0).tolist(), "correct": int(np.trace(confusion)),
        "total": len(labels)}))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real app on 127.0.0.1 (free port) with the bundled models and samples and one tiny
    run; yields its base URL and its data directory."""
    from convscope.server import create_app, samples

    tmp = tmp_path_factory.mktemp("explorer")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        patch.delenv("CONVSCOPE_DOWNLOAD_URL", raising=False)
        data = write_mnist_from_bundle(tmp / "data")
        load = samples.load_dataset

        def training_files_only(name: str, split: str, *args, **kwargs):
            # The generated files are for training (and the chapter's images, which point at
            # training images); the views show the bundled samples, as `convscope serve` does.
            if split == "test":
                raise DataError("the page under test shows the bundled samples")
            return load(name, split, *args, **kwargs)

        patch.setattr(samples, "load_dataset", training_files_only)
        torch.manual_seed(0)  # the weights a built model starts from: same run, same pictures
        run = convscope.train(convscope.build_model(TEMPLATES), "mnist",
                              out=tmp / "runs" / "tiny-templates", data_dir=str(data), epochs=2,
                              batch_size=16, lr=3e-3, optimizer="adam", progress=False).path
        with served(create_app(runs=[run], runs_dir=tmp / "live", data_dir=str(data),
                               bundled_dir=BUNDLED)) as url:
            yield url, data


@pytest.fixture
def page(browser, server: tuple[str, Path]) -> Iterator[object]:
    """A 1280x800 page on the explorer; the test fails if the page logs an error."""
    with watched_page(browser, server[0]) as tab:
        yield tab


def open_view(page, hash_path: str) -> None:
    page.goto("/#/" + hash_path)


def screenshot(page, view: str) -> None:
    """Save the view once every image in it has loaded."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_function("[...document.images].every(img => img.complete)")
    page.screenshot(path=str(SCREENSHOTS / f"{view}.png"))


def colours(locator) -> int:
    return locator.evaluate(CANVAS_COLOURS)


def wait_for_text(page, selector: str, text: str) -> None:
    """Wait until the first element matching ``selector`` shows ``text``."""
    page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)",
                           arg=[selector, text])


def wait_for_marker_change(page, selector: str, before: str) -> str:
    page.wait_for_function("([s, b]) => document.querySelector(s).dataset.marker !== b",
                           arg=[selector, before])
    return page.locator(selector).get_attribute("data-marker")


def test_network_view_draws_the_volumes_and_opens_a_layer(page):
    # How fast it appears is benchmarks' business; here: the drawing is complete, a column
    # per layer of the model's description, each with its volume, and a layer opens.
    open_view(page, "network?model=mnist-convnetjs")
    page.locator("svg.network-svg").wait_for()
    layers = page.request.get("/api/models/mnist-convnetjs").json()["layers"]
    columns = page.locator("svg.network-svg g.layer-col")
    assert columns.count() == len(layers)
    for column, layer in zip(columns.all(), layers, strict=True):
        volume = layer["out_volume"]
        assert column.get_attribute("data-layer") == str(layer["index"])
        assert column.locator("text.volume").text_content() == \
            f"{volume['sx']}x{volume['sy']}x{volume['depth']}"
        assert column.locator("polygon, rect:not(.layer-hit)").count() > 0  # its drawing
    text = page.locator("main").inner_text()
    for label in ("24x24x1", "conv 5x5 x8 s1 p2", "24x24x8", "12x12x8", "conv 5x5 x16 s1 p2",
                  "4x4x16", "1x1x10", "208 params", "3,216 params"):
        assert label in text
    assert page.locator("#model-picker").input_value() == "mnist-convnetjs"
    page.locator("g.layer-col", has_text="pool max 2x2 s2 p0").click()
    details = page.locator(".layer-details")
    assert "Layer 3: pool max 2x2 s2 p0 → 12x12x8" in details.inner_text()
    screenshot(page, "network")
    details.get_by_role("link", name="Activation maps").click()
    page.locator(".pool-input").wait_for()
    assert "#/maps" in page.url and "layer=3" in page.url


def test_convolution_hover_moves_the_window_and_shows_the_sum(page):
    open_view(page, "convolution?model=mnist-convnetjs&filter=2")
    page.locator(".conv-sum").wait_for()
    formula = page.locator(".formula")
    assert "(24 - 5 + 2·2) / 1 + 1 = 24" in formula.inner_text()
    assert "24x24x8" in formula.inner_text()
    conv_map = page.locator("canvas.conv-map")
    assert conv_map.get_attribute("data-marker") == "0,0"
    assert colours(conv_map) > 2
    page.locator("canvas.conv-input").hover(position={"x": 150, "y": 120})
    x, y = wait_for_marker_change(page, "canvas.conv-map", "0,0").split(",")
    wait_for_text(page, ".conv-equation", f"output ({x}, {y})")
    equation = page.locator(".conv-equation").inner_text()
    assert "Σ products = " in equation and "+ bias" in equation and "(25 products)" in equation
    screenshot(page, "convolution")

    all_filters = page.get_by_role("button", name="All filters")
    all_filters.click()
    drawing = page.locator("canvas.conv-all")
    assert colours(drawing) > 2
    drawing.evaluate("canvas => canvas.scrollIntoView({block: 'center'})")  # all of it shows
    box = drawing.bounding_box()
    before = drawing.get_attribute("data-marker")
    drawing.hover(position={"x": box["width"] / 2 + 20, "y": 60})
    wait_for_marker_change(page, "canvas.conv-all", before)
    screenshot(page, "convolution-all")
    all_filters.click()

    stride = page.get_by_label("Stride")
    stride.fill("2")
    stride.press("Enter")
    assert "(24 - 5 + 2·2) / 2 + 1 = 12.5, rounded down to 12" in formula.inner_text()
    x, y = (int(v) for v in conv_map.get_attribute("data-marker").split(","))
    page.get_by_role("button", name="step forward").click()
    x, y = (x + 1, y) if x + 1 < 12 else (0, y + 1)  # row by row over the 12x12 output
    wait_for_text(page, ".conv-equation", f"output ({x}, {y})")


def test_the_pages_convolution_steps_equal_the_servers(page):
    """The step-through computes in the page from the layer input and weights it holds: the
    same numbers as POST /conv-step (probes.conv_step), the layer's own settings and others."""
    with page.expect_request(lambda r: r.url.endswith("/activations")) as asked:
        open_view(page, "convolution?model=mnist-convnetjs")
    assert json.loads(asked.value.post_data)["layers"] == [0, 1]  # the layer's input and output
    page.locator(".conv-sum").wait_for()
    result = page.evaluate("""async () => {
      const {api} = await import('/static/api.js');
      const {convStep} = await import('/static/views/convolution/arithmetic.js');
      const id = 'mnist-convnetjs';
      const model = await api.model(id);
      const input = {sample: {dataset: 'mnist', index: 3}};
      const found = [];
      for (const [layer, filter, x, y, stride, pad] of [[1, 2, 0, 0, 1, 2], [1, 7, 13, 9, 1, 2],
          [1, 0, 23, 23, 1, 2], [1, 3, 5, 2, 2, 0], [4, 11, 3, 5, 1, 2], [4, 15, 0, 3, 3, 1]]) {
        const acts = await api.activations(id, input, {layers: [layer - 1]});
        const {weights, bias} = await api.weights(id, layer);
        const at = {filter, x, y, stride, pad};
        const mine = convStep(acts.layers[layer - 1].output, weights, bias, at);
        const theirs = await api.convStep(id, {...input, layer, filter, x, y, stride, pad});
        const gap = (a, b) => Math.max(0, ...Array.from(a.data, (v, i) => Math.abs(v - b.data[i])));
        found.push({type: model.layers[layer].type, output: [mine.output, theirs.output],
                    sum: [mine.sum, theirs.sum], bias: [mine.bias, theirs.bias],
                    window: [mine.window, theirs.window],
                    shapes: [mine.products.shape, theirs.products.shape],
                    gaps: [gap(mine.patch, theirs.patch), gap(mine.weights, theirs.weights),
                            gap(mine.products, theirs.products)]});
      }
      return found;
    }""")
    assert len(result) == 6
    for step in result:
        assert step["type"] == "conv"
        assert step["output"][0] == pytest.approx(step["output"][1], abs=1e-6)
        assert step["sum"][0] == pytest.approx(step["sum"][1], abs=1e-6)
        assert step["bias"][0] == step["bias"][1]
        assert step["window"][0] == step["window"][1] and step["shapes"][0] == step["shapes"][1]
        assert step["gaps"] == [0, 0, 0]  # patch, weights and float32 products exactly
    assert result[0]["window"][0] == {"x0": -2, "y0": -2}  # in the padding


def test_maps_show_filters_beside_maps_and_pooling_winners(page):
    open_view(page, "maps?model=mnist-convnetjs&layer=1")
    tiles = page.locator(".map-tile")
    tiles.first.wait_for()
    assert tiles.count() == 8
    assert colours(tiles.nth(4).locator("canvas").last) > 1
    tiles.nth(5).hover()
    assert page.locator(".zoom-title").inner_text() == "conv 5x5 x8 s1 p2 - 5"
    screenshot(page, "maps")

    page.get_by_role("button", name="pool max 2x2 s2 p0").click()
    page.locator(".pool-input").wait_for()
    assert int(page.locator(".pool-input").get_attribute("data-winners")) > 0
    assert "equal the layer's output" in page.locator(".pool-panel").inner_text()

    page.get_by_role("button", name="softmax 10").click()
    bars = page.locator(".bars .bar-row")
    bars.first.wait_for()
    assert bars.count() == 10 and "Prediction:" in page.locator(".maps-detail").inner_text()


def test_weights_show_templates_and_two_layer_bars(page):
    open_view(page, "weights?model=run-tiny-templates")
    templates = page.locator(".templates .weight-image")
    templates.first.wait_for()
    assert templates.count() == 10
    assert templates.nth(7).locator("figcaption").inner_text().startswith("7")
    assert colours(templates.nth(3).locator("canvas")) > 2

    open_view(page, "weights?model=mnist-ordinary")
    grid = page.locator(".two-layer")
    grid.wait_for()
    assert grid.locator(".weight-image").count() == 10
    assert grid.locator(".bar-cell").count() == 100
    assert grid.locator(".row-name").first.inner_text() == "0"
    screenshot(page, "weights")


def test_confusion_cell_lists_its_images(page):
    open_view(page, "confusion?model=mnist-convnetjs")
    live = page.locator(".cm-live")
    cells = live.locator(".cm-cell")
    cells.first.wait_for()
    assert cells.count() == 100
    assert "bundled sample (300 images)" in page.locator(".view-header .source").inner_text()
    assert page.get_by_label("model to evaluate").input_value() == "mnist-convnetjs"
    diagonal = live.locator('.cm-cell[data-a="3"][data-p="3"]')
    diagonal.click()
    side = live.locator(".cm-side")
    assert side.locator("h3").inner_text() == "3 correctly classified as 3"
    count = int(diagonal.inner_text())
    images = side.locator(".cm-samples li")
    assert images.count() == min(count, 64) and count > 0
    percents = [float(t.rstrip("%")) for t in images.locator("span").all_inner_texts()]
    assert percents == sorted(percents, reverse=True)
    assert "recall" in live.locator(".cm-grid").inner_text()
    chapter = page.locator(".chapter-results")
    assert "--data-dir" in chapter.locator(".notice").inner_text()  # no summaries yet
    screenshot(page, "confusion")

    page.get_by_label("what the cells show").select_option("samples")
    page.locator(".cm-grid.cm-mode-samples").wait_for()
    assert live.locator(".cm-cell img").count() > 0


def test_confusion_shows_the_chapters_stored_results(page, server):
    data = server[1]
    with np.load(BUNDLED_MNIST, allow_pickle=False) as arrays:  # the data dir's training images
        write_summary(data / "ml4a" / "mnist_summary_convnet.json", arrays["labels"][:100])
    write_summary(data / "ml4a" / "cifar10_summary_2layers.json", np.arange(50) % 10)
    open_view(page, "confusion?model=mnist-convnetjs")
    chapter = page.locator(".chapter-results")
    chapter.locator(".cm-cell").first.wait_for()
    assert chapter.locator("h2").inner_text() == \
        "The chapter's original results (ConvNetJS, stored summary)"
    assert "MNIST training images 0–99" in chapter.inner_text()
    assert chapter.locator(".cm-cell").count() == 100
    assert chapter.locator(".cm-accuracy").inner_text().endswith("90%")
    chapter.locator('.cm-cell[data-a="2"][data-p="2"]').click()
    first = chapter.locator(".cm-side .cm-samples img").first
    assert "/api/chapter/images/mnist/" in first.get_attribute("src")
    page.wait_for_function("img => img.complete && img.naturalWidth === 56",
                           arg=first.element_handle())

    open_view(page, "confusion?model=cifar10-ordinary")  # no CIFAR-10 files: said, not shown
    chapter.locator(".cm-cell").first.wait_for()
    chapter.locator('.cm-cell[data-a="1"][data-p="1"]').click()
    assert "not served" in chapter.locator(".cm-side").inner_text()
    assert chapter.locator(".cm-side img").count() == 0


def test_training_from_the_page_draws_curves_and_stops(page):
    open_view(page, "train?model=mnist-convnetjs")
    registry = page.get_by_label("registry model", exact=True)
    assert registry.input_value() == "mnist-convnetjs"  # the registry name of the model shown
    assert "cifar10-ordinary (cifar10)" in registry.locator("option").all_inner_texts()
    dataset = page.locator("label.field", has_text="Dataset").locator("select")
    page.get_by_role("radio", name="Registry model").check()
    registry.select_option("cifar10-ordinary")  # a registry model brings its dataset
    assert dataset.input_value() == "cifar10"
    registry.select_option("mnist-convnetjs")
    page.get_by_role("radio", name="Layer list").check()
    assert dataset.input_value() == "mnist"
    assert '"sx": 28, "sy": 28, "depth": 1' in page.get_by_label("layer list (JSON)").input_value()
    page.get_by_label("Epochs").fill("100")
    page.get_by_label("Batch size").fill("4")
    page.get_by_role("button", name="Start").click()
    wait_for_text(page, ".train-status", "epoch")
    page.locator(".live-filters canvas").first.wait_for()
    # two epochs of curves to show; a fast machine may be many epochs further on when it looks
    page.wait_for_function("""() => Number(document.querySelector('.train-status')
        ?.innerText.match(/epoch (\\d+) of 100/)?.[1]) >= 3""")
    loss = page.locator(".chart canvas").first
    assert colours(loss) > 2
    assert "training loss (batch): " in page.locator(".chart-key").first.inner_text()
    screenshot(page, "train")
    page.get_by_role("button", name="Stop").click()
    wait_for_text(page, ".train-status", "Stopped")
    assert page.get_by_role("button", name="Start").is_enabled()
    # the bundled models, the untrained architectures, the run and the new one
    architectures = [e for e in convscope.list_models() if e.untrained]
    assert page.locator("#model-picker option").count() == \
        len(bundled_model_dirs()) + len(architectures) + 2


def test_drawing_a_digit_changes_the_probabilities(page):
    open_view(page, "predict?model=mnist-convnetjs")
    values = page.locator(".probabilities .bar-value")
    values.first.wait_for()
    before = values.all_inner_texts()
    pad = page.locator("canvas.pad").bounding_box()
    page.mouse.move(pad["x"] + 90, pad["y"] + 60)
    page.mouse.down()
    for x, y in ((190, 60), (170, 120), (140, 190), (120, 240)):  # a "7"
        page.mouse.move(pad["x"] + x, pad["y"] + y, steps=6)
    page.mouse.up()
    page.wait_for_function("before => Array.from(document.querySelectorAll('.probabilities "
                           ".bar-value'), e => e.innerText).join() !== before.join()", arg=before)
    assert len(values.all_inner_texts()) == 10
    seen = page.locator(".seen canvas")
    assert colours(seen) > 1
    assert page.locator(".predict-layers h4", has_text="24x24x8").count() >= 1
    screenshot(page, "predict")


def test_webcam_capture_gives_probabilities(page):
    open_view(page, "maps?model=mnist-convnetjs&layer=8")  # softmax: the probabilities
    values = page.locator(".maps-detail .bar-value")
    values.first.wait_for()
    cameras = page.evaluate("async () => (await navigator.mediaDevices.enumerateDevices())"
                            ".filter(d => d.kind === 'videoinput').length")
    if not cameras:
        pytest.skip("this Chromium offers no fake camera (--use-fake-device-for-media-stream)")
    before = values.all_inner_texts()
    page.get_by_role("button", name="Webcam").click()
    capture = page.get_by_role("button", name="Capture")
    page.wait_for_function("b => !b.disabled", arg=capture.element_handle())
    capture.click()
    wait_for_text(page, ".input-status", "webcam frame")
    page.wait_for_function("before => Array.from(document.querySelectorAll('.maps-detail "
                           ".bar-value'), e => e.innerText).join() !== before.join()", arg=before)
    percents = [float(text.rstrip("%")) for text in values.all_inner_texts()]
    assert len(percents) == 10 and sum(percents) == pytest.approx(100, abs=1)
    assert colours(page.locator(".input-thumb canvas")) > 1
    with page.expect_response(lambda r: r.url.endswith("/activations/upload") and r.ok):
        page.get_by_role("checkbox", name="live").check()  # about 2 frames a second
    page.get_by_role("button", name="Webcam").click()
    assert page.locator(".webcam").is_hidden()

    page.evaluate("() => { navigator.mediaDevices.getUserMedia = async () => { "
                  "throw new DOMException('denied', 'NotAllowedError'); }; }")
    page.get_by_role("button", name="Webcam").click()
    wait_for_text(page, ".webcam-message", "Camera access was refused")
    assert capture.is_disabled()


def test_page_helpers_compute_the_chapter_examples(page):
    open_view(page, "network")
    page.locator("svg.network-svg").wait_for()
    result = page.evaluate("""async () => {
      const maps = await import('/static/views/maps.js');
      const conv = await import('/static/views/convolution.js');
      const weights = await import('/static/views/weights.js');
      const input = await import('/static/input.js');
      const slice = [1, 0, 2, 3, 4, 6, 6, 8, 3, 1, 1, 0, 1, 2, 2, 4];  // the max-pool figure
      const pooled = maps.poolWinners(slice, 4, 4, {sx: 2, sy: 2, stride: 2, pad: 0}, 2, 2);
      return {maxima: Array.from(pooled.maxima), winners: Array.from(pooled.winners),
              formula: conv.sizeFormula(28, 5, 0, 1), bars: weights.barLevels([-1, 0, 3]),
              pixels: input.pixelsFromImage({shape: [3, 1, 2], data: [1, 2, 3, 4, 5, 6]}),
              range: input.inputRange({input: {scale: 1 / 255, offset: -0.5}})};
    }""")
    assert result["maxima"] == [6, 8, 3, 4]
    assert result["winners"] == [5, 7, 8, 15]
    assert result["formula"] == "(28 - 5 + 2·0) / 1 + 1 = 24"
    assert result["bars"] == [-0.5, -0.25, 0.5]
    assert result["pixels"] == {"width": 2, "height": 1, "depth": 3, "data": [1, 3, 5, 2, 4, 6]}
    assert result["range"] == {"min": -0.5, "max": 0.5}


# Text nodes that show a missing value instead of words.
MISSING_VALUES = """() => {
  const found = [];
  const walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent;
    if (/\\b(null|undefined|NaN)\\b|\\[object Object\\]/.test(text)) found.push(text.trim());
  }
  return found;
}"""


@pytest.mark.parametrize("model", ["mnist-convnetjs", "cifar10-ordinary"])  # convnet, fc only
@pytest.mark.parametrize("view", ["network", "convolution", "maps", "weights", "confusion",
                                  "train", "predict", "scenes", "audio"])
def test_no_view_shows_null_undefined_or_nan(page, view: str, model: str):
    open_view(page, f"{view}?model={model}")
    page.locator("main > *").first.wait_for()
    page.wait_for_load_state("networkidle")  # every request the view made has been answered
    assert page.evaluate(MISSING_VALUES) == []


def test_api_errors_are_shown_not_blank(browser, server):
    context = browser.new_context(base_url=server[0])  # its console shows the 404: not a failure
    page = context.new_page()
    open_view(page, "network?model=no-such-model")
    error = page.locator("main .error")
    error.wait_for(timeout=15_000)
    assert "unknown model 'no-such-model'" in error.inner_text()
    context.close()


def rename_classes(page) -> None:
    """Serve every model description with its classes renamed "digit 0", "digit 1", ...: MNIST's
    class names are the digits, which a unit's number cannot be told apart from."""
    def renamed(route):
        response = route.fetch()
        body = response.json()
        body["classes"] = [f"digit {c}" for c in body.get("classes", [])]
        body["output_names"] = [f"digit {c}" for c in body.get("output_names", [])]
        route.fulfill(response=response, json=body)

    page.route("**/api/models/*", renamed)


def bar_names(page, selector: str) -> list[str]:
    page.locator(f"{selector} .bar-name").first.wait_for()
    return page.locator(f"{selector} .bar-name").all_inner_texts()


def test_hidden_units_are_numbered_only_the_output_layer_names_classes(page):
    # mnist-ordinary: input, fc 10 (hidden), sigmoid, fc 10 (the class scores), softmax
    rename_classes(page)
    numbers = [str(i) for i in range(10)]
    classes = [f"digit {i}" for i in range(10)]
    open_view(page, "network?model=mnist-ordinary&layer=1")
    assert bar_names(page, ".layer-preview") == numbers
    page.get_by_role("button", name="layer 3: fc 10").click()
    page.wait_for_function("() => document.querySelector('.layer-preview .bar-name')?.innerText"
                           " === 'digit 0'")
    assert bar_names(page, ".layer-preview") == classes

    open_view(page, "maps?model=mnist-ordinary&layer=1")
    assert bar_names(page, ".maps-detail") == numbers
    page.get_by_role("button", name="softmax 10").click()
    page.locator(".maps-detail .prediction").wait_for()
    assert bar_names(page, ".maps-detail") == classes

    open_view(page, "train?model=mnist-ordinary")
    page.get_by_role("radio", name="Registry model").check()
    assert page.get_by_label("registry model", exact=True).input_value() == "mnist-ordinary"
    page.get_by_label("Epochs").fill("100")
    page.get_by_label("Batch size").fill("4")
    page.get_by_role("button", name="Start").click()
    hidden = page.locator(".live-layer", has_text="1: fc 10")
    hidden.locator(".bar-name").first.wait_for()  # a snapshot drawn with the run's description
    assert hidden.locator(".bar-name").all_inner_texts() == numbers
    scores = page.locator(".live-layer", has_text="3: fc 10").locator(".bar-name")
    assert scores.all_inner_texts() == classes
    page.get_by_role("button", name="Stop").click()
    wait_for_text(page, ".train-status", "Stopped")


def test_only_the_class_score_layers_name_their_units_by_class(page):
    open_view(page, "network")
    page.locator("svg.network-svg").wait_for()
    names = page.evaluate("""async () => {
      const {unitNames} = await import('/static/widgets/layer-output.js');
      const layer = (index, type) => ({index, type});
      const classes = ['a', 'b'];
      const net = {classes, output_names: classes, task: 'classify',
                   layers: [layer(0, 'input'), layer(1, 'fc'), layer(2, 'sigmoid'),
                            layer(3, 'fc'), layer(4, 'softmax')]};
      const localizer = {classes, task: 'localize', layers: [layer(0, 'input'), layer(1, 'fc')],
                         output_names: [...classes, 'box x', 'box y', 'box w', 'box h']};
      return [1, 2, 3, 4].map((i) => unitNames(net, net.layers[i], 2))
        .concat([unitNames(localizer, localizer.layers[1], 6), unitNames(net, undefined, 2)]);
    }""")
    assert names == [["0", "1"], ["0", "1"], ["a", "b"], ["a", "b"],
                     ["a", "b", "box x", "box y", "box w", "box h"], ["0", "1"]]
