"""Figures (convscope.plot, the optional matplotlib extra): the one-line error without it and,
where it is installed, every figure and the PNG files a finished run gets."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_mnist
from PIL import Image

import convscope
from convscope import plot
from convscope.bundle import bundled_model_dirs
from convscope.errors import ConvscopeError
from convscope.evaluate import Evaluation

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
    assert str(error.value) == 'plotting needs matplotlib: pip install "convscope[plot]"'


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
