"""The example notebook (examples/chapter.ipynb) runs from top to bottom with nbclient, offline
on the bundled MNIST sample and on real MNIST where the data directory has it, and shows what
it promises: the volumes, a convolution step checked by hand, figures, the two networks'
scores."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import real_dir
from PIL import Image

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("matplotlib")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "chapter.ipynb"
KERNEL = "convscope-test"
VOLUMES = ("28x28x1 -> 24x24x8 -> 24x24x8 -> 12x12x8 -> 8x8x16 -> 8x8x16 -> 4x4x16 -> 1x1x10 "
           "-> 1x1x10")


def _execute(folder: Path, data: Path, monkeypatch: pytest.MonkeyPatch):
    """The notebook executed in ``folder`` (its runs go there) with ``data`` as
    $CONVSCOPE_DATA; the kernel inherits this process's environment."""
    monkeypatch.setenv("CONVSCOPE_DATA", str(data))
    monkeypatch.setenv("CONVSCOPE_CACHE", str(folder / "cache"))
    # A kernel of this interpreter, whatever "python3" kernel the machine has installed.
    spec = folder / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(folder / "jupyter"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells)  # committed without outputs
    nbclient.NotebookClient(notebook, timeout=240, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(folder)}}).execute()
    return notebook


def _text(notebook) -> str:
    return "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs if output.output_type == "stream")


def _pictures(notebook) -> list[np.ndarray]:
    import base64

    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"]))))
            for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
            if "image/png" in output.get("data", {})]


def _check(notebook, folder: Path) -> dict[str, float]:
    text = _text(notebook)
    assert VOLUMES in text
    by_hand, by_net = map(float, re.search(r"by hand (\S+), by the network (\S+)", text).groups())
    assert by_hand == pytest.approx(by_net, abs=1e-4) and by_hand != 0
    pictures = _pictures(notebook)  # curves, conv step, filters, templates, two confusions
    assert len(pictures) == 6 and all(picture.std() > 0 for picture in pictures)
    html = [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.outputs if "text/html" in output.get("data", {})]
    assert html and "<table" in html[0]["data"]["text/html"]  # the run's rich display
    assert (folder / "chapter-runs" / "convnet" / "model.safetensors").exists()
    return {name: float(value) / 100 for name, value in
            re.findall(r"(ordinary|convnet) +[\d,]+ parameters +test accuracy +([\d.]+)%", text)}


@pytest.mark.slow
def test_the_chapter_notebook_runs_offline_on_the_bundled_sample(tmp_path, monkeypatch):
    notebook = _execute(tmp_path, tmp_path / "no-data", monkeypatch)
    assert "the bundled MNIST sample: 200 training and 100 test images" in _text(notebook)
    scores = _check(notebook, tmp_path)
    assert set(scores) == {"ordinary", "convnet"} and scores["convnet"] > 0.5


@pytest.mark.slow
@pytest.mark.realdata
def test_the_chapter_notebook_uses_real_mnist_when_the_data_directory_has_it(tmp_path,
                                                                             monkeypatch):
    notebook = _execute(tmp_path, real_dir("mnist"), monkeypatch)
    assert "real MNIST: 1000 training and 500 test images" in _text(notebook)
    scores = _check(notebook, tmp_path)
    assert scores["convnet"] > 0.8 and scores["convnet"] > scores["ordinary"]
