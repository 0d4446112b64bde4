"""Figures (convscope.plot, the optional matplotlib extra): the one-line error without it and,
where it is installed, every figure and the PNG files a finished run gets."""

from __future__ import annotations

import base64
import io
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from conftest import write_mnist
from PIL import Image

import convscope
from convscope import plot
from convscope.bundle import bundled_model_dirs
from convscope.cli import main
from convscope.errors import ConvscopeError
from convscope.evaluate import Evaluation
from convscope.report import write_report

NET = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
       {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
       {"type": "pool", "sx": 2},
       {"type": "softmax", "num_classes": 10}]
ORDINARY = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
            {"type": "fc", "num_neurons": 6, "activation": "relu"},
            {"type": "softmax", "num_classes": 10}]


@pytest.fixture
def without_matplotlib(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    plot._figure_class.cache_clear()
    yield
    plot._figure_class.cache_clear()


def _train(tmp_path: Path, spec=NET) -> convscope.Run:
    data = write_mnist(tmp_path / "data", train=200, test=50)
    return convscope.train(spec, "mnist", out=tmp_path / "run", data_dir=str(data), epochs=2,
                           batch_size=16, lr=0.01, log_every=3, progress=False)


def test_without_matplotlib_a_figure_is_one_line_naming_the_extra(without_matplotlib):
    ev = Evaluation(["a", "b"], [[1, 0], [0, 1]], [], [])
    with pytest.raises(ConvscopeError) as error:
        plot.confusion(ev)
    assert str(error.value) == ('plotting needs the matplotlib package, which is not installed: '
                                'pip install "convscope[plot]"')


def test_without_matplotlib_a_run_trains_and_has_no_figures(without_matplotlib, tmp_path: Path,
                                                            data_cache: Path):
    run = _train(tmp_path)
    assert run.results["test"]["accuracy"] > 0
    assert not (run.path / "curves.png").exists() and not (run.path / "confusion.png").exists()


def test_the_plot_extra_is_declared():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(requirement.startswith("matplotlib") for requirement in extras["plot"])


def _png(fig) -> Image.Image:
    return Image.open(io.BytesIO(fig._repr_png_()))


def test_a_finished_run_gets_its_figures_and_every_figure_draws(tmp_path: Path,
                                                                data_cache: Path):
    pytest.importorskip("matplotlib")
    run = _train(tmp_path)
    for name in ("curves.png", "confusion.png"):
        picture = Image.open(run.path / name)
        assert picture.format == "PNG" and picture.width > 300
    curves = plot.curves(run)
    assert len(curves.axes) == 2
    loss_lines = {line.get_label(): line for line in curves.axes[0].get_lines()}
    assert set(loss_lines) == {"train loss (steps)", "train loss", "val loss"}
    assert list(loss_lines["val loss"].get_ydata()) == [m["val_loss"] for m in run.metrics]
    assert len(loss_lines["train loss (steps)"].get_xdata()) == len(run.steps) == 7
    matrix = plot.confusion(run).axes[0].images[0].get_array()
    confusion = torch.tensor(run.results["test"]["confusion"], dtype=torch.float64)
    assert torch.allclose(torch.as_tensor(matrix.data),
                          confusion / confusion.sum(1, keepdim=True).clamp_min(1))
    image = convscope.load_dataset("mnist", "test", data_dir=run.config.data_dir).images[0]
    assert len(plot.filters(run).axes) == 4  # 4 filters, one row
    maps = plot.activation_maps(run, image, 1)
    assert [ax.images[0].get_array().shape for ax in maps.axes] == [(12, 12)] * 4
    assert len(plot.layer_maps(run, image).axes) == 4 * 8  # input + conv, relu, pool rows
    step = plot.conv_step(run, image, filter=1, x=3, y=4)
    assert "output (3, 4)" in step.get_suptitle()
    patch = step.axes[1].images[0].get_array()
    assert patch.shape == (5, 5)
    assert _png(step).size == (1200, 340)


def test_templates_show_hidden_units_and_their_bars(tmp_path: Path, data_cache: Path):
    pytest.importorskip("matplotlib")
    run = _train(tmp_path, ORDINARY)
    fig = plot.templates(run)
    assert len(fig.axes) == 12  # 6 units: an image and bars each
    bars = [patch.get_height() for patch in fig.axes[6 + 2].patches]
    weights = run.model.blocks[3].weight.detach()[:, 2]  # unit 2 -> each class
    assert bars == pytest.approx(weights.tolist())
    with pytest.raises(ConvscopeError, match="no conv layer"):
        plot.filters(run)


def test_figures_of_the_bundled_models(tmp_path: Path):
    pytest.importorskip("matplotlib")
    bundled = bundled_model_dirs()
    cifar = convscope.load_run(bundled["cifar10-convnetjs"])
    colour = plot.filters(cifar).axes[0].images[0].get_array()
    assert colour.shape[2] == 3  # RGB filters
    assert plot.save(plot.confusion(cifar), tmp_path / "c.png").stat().st_size > 1000
    assert plot.curves(convscope.load_run(bundled["mnist-yolo"])).axes  # no accuracy: one chart
    with pytest.raises(ConvscopeError, match="no confusion matrix"):
        plot.confusion(convscope.load_run(bundled["mnist-yolo"]))


# ---- convscope report ---------------------------------------------------------------------

VOID = {"meta", "img", "br", "hr", "input", "link", "circle", "rect", "polyline"}


class _Page(HTMLParser):
    """Checks that tags nest and collects what a page would load."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.sources: list[str] = []
        self.captions: list[str] = []
        self._caption = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        self.sources += [values[key] for key in ("src", "href") if key in values]
        if tag not in VOID:
            self.open.append(tag)
        self._caption = tag == "figcaption"

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.sources += [value for key, value in attrs if key in ("src", "href")]

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if self._caption:
            self.captions.append(data)
            self._caption = False


def _parsed(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    assert page.open == []
    return page


def test_report_is_one_self_contained_page(tmp_path: Path, data_cache: Path,
                                           capsys: pytest.CaptureFixture):
    run = _train(tmp_path)
    assert main(["report", str(run.path), "--data-dir", run.config.data_dir]) == 0
    out = run.path / "report.html"
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "http" not in text and "<script" not in text
    page = _parsed(text)
    assert page.sources and all(s.startswith("data:image/png;base64,") for s in page.sources)
    pictures = [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1])))
                for s in page.sources]
    assert all(p.format == "PNG" for p in pictures)
    assert text.count("<svg") == 2  # loss and accuracy
    test = run.results["test"]
    for row in test["confusion"]:  # every count of the confusion matrix, in order
        for count in row:
            assert f">{count}</td>" in text
    assert "<td style=\"text-align:left;padding:1px 8px\">batch_size</td>" in text
    filters, confused = page.captions[:4], page.captions[4:]
    assert filters == ["0", "1", "2", "3"]  # the conv layer's 4 filters
    wrong = {(a, p) for a, row in enumerate(test["confusion"]) for p, n in enumerate(row)
             if n and a != p}
    pairs = {tuple(int(c) for c in caption.split(" ")[0::2][:2]) for caption in confused}
    assert len(confused) <= 16 and pairs <= wrong
    assert bool(confused) == bool(wrong)


def test_report_of_a_bundled_model_and_its_errors(tmp_path: Path, monkeypatch,
                                                  capsys: pytest.CaptureFixture):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "nothing"))  # the bundled sample
    assert main(["report", "mnist-yolo"]) == 0
    text = (tmp_path / "mnist-yolo-report.html").read_text()
    assert "mAP@0.5" in text and "only for classifiers" in text
    _parsed(text)
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "no such run directory" in err


def test_report_opens_offline_in_a_browser(tmp_path: Path, monkeypatch):
    """The report of a bundled model in Chromium: no request leaves the page, every picture
    loads, no console error; its screenshot is docs/screenshots/report.png."""
    from served import CHROMIUM, chromium
    from test_browser import SCREENSHOTS

    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "nothing"))  # the bundled sample
    out = write_report("cifar10-convnetjs", tmp_path / "report.html")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        problems, requests = [], []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(out.as_uri())
        page.wait_for_function("[...document.images].every(img => img.complete)")
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(sizes) >= 16 + 10 and all(sizes)  # 16 filters, the confused examples
        assert page.locator("svg polyline").count() == 3  # train loss, train and val accuracy
        assert page.locator("h2").all_inner_texts()[:3] == ["Settings", "Machine", "Data"]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
    assert problems == []
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
