"""The chapter's demos in the explorer, in a real browser (Debian's Chromium driven by
Playwright) against the real server: the L1 menu training live with its bars redrawn, the
chapter's own ConvNetJS snapshots offered as models, the softmax's and the per-channel
arithmetic computed in the page (checked against torch), readable deep-layer weights and the
fastest Convolution Play.

The data directory is made here: MNIST-format files of the 300 digits bundled with convscope,
and an ``ml4a/`` folder holding ConvNetJS snapshots exported from the bundled models.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from served import CHROMIUM, served, watched_page
from test_browser import write_mnist_from_bundle

import convscope
from convscope.bundle import BUNDLED, bundled_model_dirs
from convscope.convnetjs import to_convnetjs

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's Chromium is not installed at /usr/bin/chromium")
pytest.importorskip("playwright.sync_api")
pytest.importorskip("uvicorn")

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
SNAPSHOTS = {"mnist_snapshot_2layers.json": "mnist-ordinary",
             "mnist_snapshot_convnet.json": "mnist-convnetjs"}


def write_data(root: Path) -> Path:
    """MNIST-format files of the bundled digits, and the ml4a/ snapshots."""
    write_mnist_from_bundle(root)
    (root / "ml4a").mkdir()
    runs = bundled_model_dirs()
    for file, name in SNAPSHOTS.items():
        model = convscope.load_run(runs[name]).model
        (root / "ml4a" / file).write_text(json.dumps(to_convnetjs(model)))
    (root / "ml4a" / "broken_snapshot.json").write_text("{not json")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from convscope.server import create_app

    tmp = tmp_path_factory.mktemp("chapter")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        patch.delenv("CONVSCOPE_DOWNLOAD_URL", raising=False)
        data = write_data(tmp / "data")
        with served(create_app(runs_dir=tmp / "runs", data_dir=str(data),
                               bundled_dir=BUNDLED)) as url:
            yield url


@pytest.fixture
def page(browser, server: str) -> Iterator[object]:
    with watched_page(browser, server, timeout_ms=60_000) as tab:
        yield tab


def api(page, path: str) -> dict:
    return page.evaluate("async (p) => (await fetch(p)).json()", path)


def test_l1_menu_trains_live_and_redraws_templates_and_bars(page):
    page.goto("/#/weights?model=mnist-ordinary")
    page.locator(".two-layer").wait_for()
    # every redraw of the live picture, with the examples it had seen
    page.evaluate("""() => { window.draws = [];
      new MutationObserver(() => {
        const p = document.querySelector('.l1-picture');
        if (!p || !p.dataset.examples) return;
        const bars = [...p.querySelectorAll('.bar-stick')].map(b => b.style.height).join();
        const last = window.draws.at(-1);
        if (!last || last.examples !== p.dataset.examples) {
          window.draws.push({examples: p.dataset.examples, bars});
        }
      }).observe(document.body, {subtree: true, childList: true, attributes: true});
    }""")
    menu = page.locator("label.field", has_text="The chapter's nets").locator("select")
    options = menu.locator("option").all_inner_texts()
    for label in ("MNIST 2-layer", "MNIST 1-layer", "CIFAR 2-layer", "CIFAR 1-layer"):
        assert any(o.startswith(label) for o in options), options
    assert "mnist-ordinary" in options  # the bundled nets stay a choice
    menu.select_option("l1:mnist-ordinary")
    live = page.locator(".l1-picture .two-layer")
    live.wait_for()
    assert live.locator(".weight-image").count() == 10
    assert live.locator(".bar-cell").count() == 100
    page.wait_for_function("() => document.querySelector('.l1-status')?.innerText"
                           ".includes('Test accuracy')")
    draws = page.evaluate("window.draws")
    seen = [int(d["examples"]) for d in draws]
    # 270 training digits at batch 4: a snapshot after every 25 examples (7 steps, 28)
    assert len(seen) >= 5, seen
    assert seen == sorted(seen) and all(n % 4 == 0 for n in seen)
    steps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
    assert sum(step <= 28 for step in steps) >= 0.8 * len(steps), seen  # every chunk is drawn
    assert draws[0]["bars"] != draws[-1]["bars"]  # the bars learn
    screenshot = SCREENSHOTS / "weights-l1.png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot))

    page.locator(".l1-status a", has_text="Open it").click()  # the new model, in the picker
    page.locator(".weights-body .two-layer").wait_for()
    assert "model=live-" in page.url

    menu = page.locator("label.field", has_text="The chapter's nets").locator("select")
    menu.select_option("l1:mnist-templates")  # the 1-layer net: class templates
    templates = page.locator(".l1-picture .templates .weight-image")
    templates.first.wait_for()
    assert templates.count() == 10
    assert templates.nth(3).locator("figcaption").inner_text().startswith("3")
    page.wait_for_function("() => /trained|stopped/.test("
                           "document.querySelector('.l1-status')?.innerText)")


def test_train_a_fresh_one_trains_the_model_shown_and_offers_the_templates(page):
    page.goto("/#/weights?model=mnist-ordinary")
    page.get_by_role("link", name="Train a fresh one and watch").click()
    registry = page.get_by_label("registry model", exact=True)
    registry.wait_for()
    assert registry.input_value() == "mnist-ordinary"
    assert page.get_by_role("radio", name="Registry model").is_checked()
    assert registry.is_enabled() and page.get_by_label("layer list (JSON)").is_disabled()
    offered = registry.locator("option").all_inner_texts()
    assert "mnist-templates (mnist)" in offered and "cifar10-templates (cifar10)" in offered


def test_the_chapters_snapshots_are_offered_as_models(page):
    page.goto("/#/network?model=chapter-mnist_snapshot_convnet")
    page.locator(".layer-details, .volume").first.wait_for()
    models = api(page, "/api/models")
    chapter = {m["id"]: m for m in models["models"] if m["kind"] == "chapter"}
    assert set(chapter) == {"chapter-mnist_snapshot_2layers", "chapter-mnist_snapshot_convnet"}
    assert chapter["chapter-mnist_snapshot_convnet"]["chapter"]["file"] == \
        "mnist_snapshot_convnet.json"
    assert any(s["path"].endswith("broken_snapshot.json") for s in models["skipped"])
    described = api(page, "/api/models/chapter-mnist_snapshot_convnet")
    assert described["input"]["convention"] == "convnetjs"
    # the MNIST convnets were trained on byte/255: their input layer adds 0.5
    assert described["input"]["note"].startswith("byte/255,")
    assert described["layers"][0]["params"]["offset"] == 0.5
    two = api(page, "/api/models/chapter-mnist_snapshot_2layers")
    assert two["input"]["note"].startswith("byte/255 - 0.5 per channel")
    assert "offset" not in two["layers"][0]["params"]
    groups = page.locator("#model-picker optgroup").evaluate_all("gs => gs.map(g => g.label)")
    assert "The chapter's own networks (ConvNetJS snapshots)" in groups
    # its weights are the snapshot's: the same as the bundled model it was exported from
    mine = page.evaluate("""async () => {
      const {api} = await import('/static/api.js');
      const a = await api.weights('chapter-mnist_snapshot_convnet', 1);
      const b = await api.weights('mnist-convnetjs', 1);
      return Math.max(...Array.from(a.weights.data, (v, i) => Math.abs(v - b.weights.data[i])));
    }""")
    assert mine < 1e-6


def test_the_softmax_numbers_are_torchs(page):
    page.goto("/#/convolution?model=mnist-convnetjs")
    table = page.locator(".softmax-panel")
    table.wait_for()

    def column(key: str) -> list[float]:
        return [float(v) for v in page.locator(f".softmax-table td[data-{key}]")
                .evaluate_all(f"cs => cs.map(c => c.dataset.{key})")]

    scores, exps, probs = column("score"), column("exp"), column("prob")
    assert len(scores) == 10
    logits = torch.tensor(scores, dtype=torch.float64)
    assert exps == pytest.approx(torch.exp(logits - logits.max()).tolist(), rel=1e-12)
    assert float(table.get_attribute("data-sum")) == pytest.approx(
        float(torch.exp(logits - logits.max()).sum()), rel=1e-12)
    assert probs == pytest.approx(torch.softmax(logits, 0).tolist(), abs=1e-12)
    # the scores are the network's: the server's softmax layer (float32 torch) agrees
    served_probs = page.evaluate("""async () => {
      const {api} = await import('/static/api.js');
      const m = await api.model('mnist-convnetjs');
      const acts = await api.activations('mnist-convnetjs', {sample: {dataset: 'mnist', index: 0}});
      return Array.from(acts.layers[m.layers.length - 1].output.data);
    }""")
    assert probs == pytest.approx(served_probs, abs=1e-6)
    assert "softmax" in table.inner_text() and "sum" in table.inner_text()


def test_per_channel_subtotals_add_up_to_the_sum(page):
    page.goto("/#/convolution?model=mnist-convnetjs&layer=4")
    subtotals = page.locator(".conv-subtotals .subtotal")
    subtotals.first.wait_for()
    assert subtotals.count() == 8  # layer 4 reads the 8 maps of layer 3
    result = page.evaluate("""async () => {
      const {api} = await import('/static/api.js');
      const {convStep} = await import('/static/views/convolution/arithmetic.js');
      const id = 'mnist-convnetjs', input = {sample: {dataset: 'mnist', index: 5}};
      const acts = await api.activations(id, input, {layers: [3]});
      const {weights, bias} = await api.weights(id, 4);
      const at = {filter: 6, x: 4, y: 7, stride: 1, pad: 2};
      const mine = convStep(acts.layers[3].output, weights, bias, at);
      const theirs = await api.convStep(id, {...input, layer: 4, ...at});
      const area = theirs.products.data.length / 8;
      const perChannel = Array.from({length: 8}, (_, c) =>
        theirs.products.data.slice(c * area, (c + 1) * area).reduce((a, b) => a + b, 0));
      return {subtotals: mine.subtotals, sum: mine.sum, theirs: perChannel, theirSum: theirs.sum};
    }""")
    assert len(result["subtotals"]) == 8
    assert sum(result["subtotals"]) == pytest.approx(result["sum"], abs=1e-9)
    assert result["subtotals"] == pytest.approx(result["theirs"], abs=1e-5)
    assert result["sum"] == pytest.approx(result["theirSum"], abs=1e-5)
    shown = [float(v) for v in subtotals.evaluate_all("s => s.map(e => e.dataset.value)")]
    total = float(page.locator(".conv-sum").inner_text().split("=")[1].split()[0])
    assert sum(shown) == pytest.approx(total, abs=1e-3)  # the shown subtotals make the sum


def test_deep_layer_weights_are_a_heat_map_with_hover_values(page):
    page.goto("/#/weights?model=mnist-convnetjs&layer=7")
    heat = page.locator("canvas.weight-heatmap")
    heat.wait_for()
    text = page.locator(".layer-text").inner_text()
    assert "first-layer" not in text and "layer 7" in text and "4x4x16" in text
    weights = page.evaluate("""async () => {
      const {api} = await import('/static/api.js');
      const w = (await api.weights('mnist-convnetjs', 7)).weights;
      return {shape: w.shape, data: Array.from(w.data)};
    }""")
    rows, cols = weights["shape"][0], int(np.prod(weights["shape"][1:]))
    assert (rows, cols) == (10, 256)
    box = heat.bounding_box()
    for _ in range(2):
        heat.hover(position={"x": box["width"] - 30, "y": box["height"] - 10})
        row, col = int(heat.get_attribute("data-row")), int(heat.get_attribute("data-col"))
        assert float(heat.get_attribute("data-weight")) == pytest.approx(
            weights["data"][row * cols + col], abs=1e-7)
        assert row == rows - 1
        readout = page.locator(".heat-readout").inner_text()
        assert f"input {col}" in readout and "9: 9" in readout
        # sorted columns: the same readout maps to the right weight
        page.locator("label.field", has_text="Columns").locator("select").select_option("sorted")
        heat = page.locator("canvas.weight-heatmap")
        heat.wait_for()
    page.goto("/#/weights?model=mnist-convnetjs&layer=4")
    page.locator(".weight-grid").wait_for()
    text = page.locator(".layer-text").inner_text()
    assert "first-layer" not in text and "all 8 maps" in text


def test_fastest_play_fills_the_map_in_the_page(page):
    page.goto("/#/convolution?model=mnist-convnetjs")
    page.locator(".conv-sum").wait_for()
    page.get_by_label("speed").select_option("0")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("() => document.querySelector('.conv-stage')?.dataset.computed"
                           " === '576'", timeout=30_000)
    assert not [url for url in asked if "/api/" in url]  # every cell computed in the page
