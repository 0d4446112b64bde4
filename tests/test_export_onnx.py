"""Export to ONNX, checked with onnxruntime: the same logits and probabilities (1e-5) as
convscope on real images (the fake data dir's without $CONVSCOPE_DATA), any batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_convnetjs_import import ml4a_dir
from test_export_convnetjs import TINY, sample_images

import convscope
from convscope.augment import fit_batch, to_input
from convscope.cli import main
from convscope.convnetjs import import_convnetjs
from convscope.onnx_export import export_onnx

ort = pytest.importorskip("onnxruntime")

MODERN = [  # layers ConvNetJS lacks
    {"type": "input", "sx": 32, "sy": 32, "depth": 3},
    {"type": "conv", "sx": 3, "filters": 8, "pad": 1, "bias": False},
    {"type": "batchnorm"},
    {"type": "gelu"},
    {"type": "residual", "layers": [{"type": "conv", "sx": 3, "filters": 8, "pad": 1},
                                    {"type": "relu"}]},
    {"type": "pool", "sx": 2, "kind": "avg"},
    {"type": "global_pool", "kind": "avg"},
    {"type": "fc", "num_neurons": 10},
]


def assert_onnx_matches(model: torch.nn.Module, path: Path, images: torch.Tensor) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    volume = model.input_volume
    x = to_input(fit_batch(images, volume.sy, volume.sx))
    with torch.no_grad():
        logits = model.float().eval()(x)
    names = [output.name for output in session.get_outputs()]
    for batch in (x[:1], x):
        outputs = dict(zip(names, session.run(None, {"input": batch.numpy()}), strict=True))
        expected = logits[: len(batch)]
        np.testing.assert_allclose(outputs["logits"], expected.numpy(), rtol=0, atol=1e-5)
        if model.num_classes is not None:
            np.testing.assert_allclose(outputs["probabilities"],
                                       torch.softmax(expected, 1).numpy(), rtol=0, atol=1e-5)
    assert names == (["logits", "probabilities"] if model.num_classes else ["logits"])


def test_onnx_export_of_a_trained_run(fake_data, tmp_path: Path):
    root, _ = fake_data
    run = convscope.train(convscope.build_model(TINY), "mnist", out=tmp_path / "run",
                          data_dir=str(root), epochs=1, batch_size=8, progress=False)
    assert main(["export", str(run.path), "--format", "onnx"]) == 0
    assert_onnx_matches(run.model, run.path / "model.onnx", sample_images("mnist", 300, root))


def test_onnx_export_of_layers_convnetjs_lacks(fake_data, tmp_path: Path):
    root, _ = fake_data
    torch.manual_seed(0)
    model = convscope.build_model(MODERN).eval()
    path = export_onnx(model, tmp_path / "modern.onnx", model.input_volume.shape)
    assert_onnx_matches(model, path, sample_images("cifar10", 300, root))


@pytest.mark.realdata
def test_onnx_export_of_the_chapter_cifar_convnet(tmp_path: Path):
    run = import_convnetjs(ml4a_dir() / "cifar10_snapshot_convnet.json", tmp_path / "run")
    assert main(["export", str(run.path), "--format", "onnx", "--out",
                 str(tmp_path / "c.onnx")]) == 0
    assert_onnx_matches(run.model, tmp_path / "c.onnx", sample_images("cifar10", 500))


def test_an_exported_run_carries_what_a_runtime_needs(tmp_path: Path, capsys):
    """ONNX metadata_props: class names, input volume, normalisation, fit, preparation, task."""
    import json

    import onnx

    out = tmp_path / "digits.onnx"
    assert main(["export", "mnist-convnetjs", "--format", "onnx", "--out", str(out)]) == 0
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["classes"]) == [str(k) for k in range(10)]
    assert json.loads(props["input"]) == [24, 24, 1]
    assert json.loads(props["input_scale"]) == pytest.approx(1 / 255)
    assert json.loads(props["input_offset"]) == -0.5
    assert props["polarity"] == "light-on-dark" and props["centre"] == "mnist"
    assert props["task"] == "classify" and "centre-cropped" in props["fit"]
    assert props["producer"].startswith("convscope ")
    out = tmp_path / "scenes.onnx"
    assert main(["export", "mnist-yolo", "--format", "onnx", "--out", str(out)]) == 0
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["task"] == "detect" and props["centre"] == "none"
