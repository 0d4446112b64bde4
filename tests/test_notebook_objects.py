"""Notebook objects: one-line reprs and HTML displays of Run, Evaluation, SpecNet and Dataset,
and progress bars that become plain lines in logs (convscope.notebook, convscope.progress)."""

from __future__ import annotations

import base64
import io
import re
import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import write_mnist
from PIL import Image

import convscope
from convscope import progress
from convscope.bundle import bundled_model_dirs
from convscope.data import Dataset
from convscope.evaluate import Evaluation
from convscope.progress import LineProgress, progress_bar

NET = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
       {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
       {"type": "pool", "sx": 2},
       {"type": "softmax", "num_classes": 10}]


@pytest.fixture
def run(tmp_path: Path, data_cache: Path) -> convscope.Run:
    data = write_mnist(tmp_path / "data", train=200, test=50)
    return convscope.train(NET, "mnist", out=tmp_path / "run", data_dir=str(data), epochs=2,
                           batch_size=16, lr=0.01, log_every=3, progress=False)


def _one_line(text: str) -> None:
    assert "\n" not in text and len(text) < 120, text


def _images(html: str) -> list[Image.Image]:
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    return [Image.open(io.BytesIO(base64.b64decode(uri))) for uri in uris]


def test_a_runs_repr_is_one_line_and_its_html_shows_model_curves_and_confusion(run):
    text = repr(run)
    _one_line(text)
    accuracy = 100 * run.results["test"]["accuracy"]
    assert text.startswith("Run('") and "/run': a spec on mnist, 2 epochs, " in text
    assert text.endswith(f"test accuracy {accuracy:.2f}%)")
    html = run._repr_html_()
    assert "conv 5x5 x4 s2" in html and "12x12x4" in html  # the summary table
    assert html.count("<svg") == 2  # loss and accuracy
    loss_chart = html[html.index("<svg"):html.index("</svg>")]
    assert "train loss (steps)" in loss_chart and "val loss" in loss_chart
    lines = re.findall(r'<polyline points="([^"]+)"', loss_chart)
    assert len(lines[0].split()) == len(run.steps) == 7  # 22 steps, a line every 3
    confusion = run.results["test"]["confusion"]
    cells = [int(v) for v in re.findall(r"padding:2px 4px\">(\d+)</td>", html)]
    assert cells == [v for row in confusion for v in row]
    assert "<script" not in html and "http" not in html


def test_every_bundled_runs_repr_and_html(tmp_path: Path):
    for name, path in bundled_model_dirs().items():
        loaded = convscope.load_run(path)
        _one_line(repr(loaded))
        assert name in repr(loaded) and "test " in repr(loaded)
        assert loaded._repr_html_().startswith("<div>")


def test_a_long_path_and_an_unfinished_run_still_give_one_line(run, tmp_path: Path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 8)
    deep.mkdir(parents=True)
    for name in ("config.yaml", "metrics.jsonl"):
        (deep / name).write_bytes((run.path / name).read_bytes())
    loaded = convscope.load_run(deep)
    _one_line(repr(loaded))
    assert "..." in repr(loaded) and "unfinished (2 of 2 epochs)" in repr(loaded)
    assert "confusion" not in loaded._repr_html_()


def test_evaluation_repr_and_html_escape_class_names():
    ev = Evaluation(["<b>cat</b>", "dog"], [[3, 1], [0, 4]], [], [])
    assert repr(ev) == "Evaluation(accuracy 87.50% (7 / 8), 2 classes)"
    html = ev._repr_html_()
    assert "&lt;b&gt;cat&lt;/b&gt;" in html and "<b>cat</b>" not in html
    assert "75.0%" in html and "100.0%" in html  # cat's recall, dog's recall / cat's precision


def test_specnet_repr_is_one_line_and_its_html_is_the_summary():
    net = convscope.build_model(NET)
    params = sum(p.numel() for p in net.parameters())
    assert repr(net) == f"SpecNet(6 layers: 28x28x1 -> 1x1x10, {params:,} parameters)"
    assert "softmax 10" in net._repr_html_()
    assert "Conv2d" in repr(net.blocks)  # the torch modules are still there to print


def test_dataset_repr_has_no_tensor_and_its_html_shows_images():
    images = torch.arange(5 * 3 * 8 * 6, dtype=torch.int64).remainder(256).to(torch.uint8)
    ds = Dataset("toy", images.reshape(5, 3, 8, 6), torch.tensor([0, 1, 2, 1, 0]),
                 ["red", "green", "blue"])
    assert repr(ds) == "Dataset('toy', 5 images 6x8x3, 3 classes: red, green, blue)"
    html = ds._repr_html_()
    shown = _images(html)
    assert len(shown) == 5 and shown[0].mode == "RGB"
    assert shown[0].size == (6 * 7, 8 * 7)  # scaled up to about 56 pixels high
    assert shown[0].resize((6, 8), Image.Resampling.NEAREST).tobytes() == \
        images.reshape(5, 3, 8, 6)[0].permute(1, 2, 0).numpy().tobytes()
    assert re.findall(r"<figcaption>(\w+)</figcaption>", html) == \
        ["red", "green", "blue", "green", "red"]
    many = Dataset("many", torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]),
                   [f"class number {i}" for i in range(50)])
    _one_line(repr(many))
    assert repr(many).endswith("...)")


def test_line_progress_prints_a_line_per_tenth(capsys: pytest.CaptureFixture):
    with LineProgress(total=200, desc="epoch 1/2", unit="batch") as bar:
        for _ in range(200):
            bar.update()
            bar.set_postfix(loss="0.123")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and "\r" not in "".join(lines)
    assert lines[0].startswith("epoch 1/2:  10% (20/200 batch)") and "loss=0.123" in lines[0]
    assert lines[-1].startswith("epoch 1/2: 100% (200/200 batch)")
    resumed = LineProgress(total=10, initial=6)  # a resumed epoch: no line for tenths passed
    for _ in range(4):
        resumed.update()
    assert len(capsys.readouterr().err.splitlines()) == 4
    assert list(LineProgress(range(3), delay=60)) == [0, 1, 2]  # quick: no line at all
    assert capsys.readouterr().err == ""


def test_progress_bar_is_a_bar_only_on_a_terminal_or_in_a_notebook(
        monkeypatch: pytest.MonkeyPatch):
    assert not sys.stderr.isatty()  # pytest captures it
    assert isinstance(progress_bar(total=3), LineProgress)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert not isinstance(progress_bar(total=3, disable=True), LineProgress)
    assert not isinstance(progress_bar(total=3), LineProgress)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    shell = type("Shell", (type("ZMQInteractiveShell", (), {}),), {})()  # Colab's subclasses it
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert progress.in_notebook() and not isinstance(progress_bar(total=3), LineProgress)


def test_training_into_a_log_prints_lines_not_redraws(tmp_path: Path, data_cache: Path,
                                                      capfd: pytest.CaptureFixture):
    data = write_mnist(tmp_path / "data", train=200, test=50)
    convscope.train(NET, "mnist", out=tmp_path / "run", data_dir=str(data), epochs=1,
                    batch_size=16, lr=0.01)
    err = capfd.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("epoch 1/1:")]
    assert len(lines) == 10 and "100% (11/11 batch)" in lines[-1]  # 180 examples, 16 a step


def test_no_module_uses_plain_tqdm():
    root = Path(convscope.__file__).parent
    users = [p.relative_to(root).as_posix() for p in root.rglob("*.py")
             if re.search(r"^\s*(from tqdm|import tqdm)", p.read_text(), re.M)]
    assert users == ["progress.py"]
