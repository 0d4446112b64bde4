"""Every task through the one trainer: localize, detect and segment on scenes of learnable
fake digits, their output checks, evaluation and `convscope eval`; short real-data runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_mnist

import convscope
from convscope.cli import main
from convscope.data import Dataset
from convscope.errors import ConvscopeError
from convscope.tasks import get_task


def _input(side: int) -> dict:
    return {"type": "input", "sx": side, "sy": side, "depth": 1}


def _conv(filters: int, stride: int = 1, size: int = 3) -> dict:
    return {"type": "conv", "sx": size, "filters": filters, "stride": stride, "pad": size // 2,
            "activation": "relu"}


LOCALIZER = [_input(64), _conv(8, 2), _conv(8, 2), {"type": "pool", "sx": 4},
             {"type": "fc", "num_neurons": 14}]
DETECTOR = [_input(96), _conv(8, 2), _conv(8, 2), _conv(16, 2), _conv(16, 2),
            {"type": "conv", "sx": 1, "filters": 15}]
SEGMENTER = [_input(96), _conv(8), {"type": "pool", "sx": 2}, _conv(8),
             {"type": "upsample"}, {"type": "concat", "from": 1},
             {"type": "conv", "sx": 1, "filters": 11}]
SMALL = {"scenes": 120, "test_scenes": 20, "epochs": 1, "batch_size": 20, "val_fraction": 0.2,
         "progress": False}


@pytest.fixture
def digits(tmp_path: Path, data_cache: Path) -> Path:
    return write_mnist(tmp_path / "data", train=300, test=100)


@pytest.mark.parametrize(("task", "spec", "metric"), [
    ("localize", LOCALIZER, "mean_iou"), ("detect", DETECTOR, "map50"),
    ("segment", SEGMENTER, "miou")])
def test_scene_task_trains_evaluates_and_reloads(task, spec, metric, digits, tmp_path, capsys):
    run = convscope.train(spec, task=task, out=tmp_path / "run", data_dir=str(digits), **SMALL)
    assert run.config.task == task and run.data_info["task"] == task
    assert run.data_info["train"] == 96 and run.data_info["test"] == 20
    test = run.results["test"]
    assert 0 <= test[metric] <= 1 and test["total"] == 20
    assert f"val_{metric}" in run.metrics[-1]
    assert main(["eval", str(run.path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["task"] == task and shown[metric] == pytest.approx(test[metric])
    assert main(["eval", str(run.path)]) == 0
    assert get_task(task).metric_label in capsys.readouterr().out


def test_a_registered_model_brings_its_task(digits, tmp_path):
    run = convscope.train("mnist-yolo", out=tmp_path / "run", data_dir=str(digits),
                          **{**SMALL, "scenes": 40, "test_scenes": 8})
    assert run.config.task == "detect" and run.config.data == "mnist"
    assert "map50" in run.results["test"]


@pytest.mark.parametrize(("task", "spec", "hint"), [
    ("localize", DETECTOR, "end the network with an fc of 14 neurons"),
    ("detect", LOCALIZER, "end the network with a conv of 15 filters"),
    ("segment", DETECTOR, "end the network with a 1x1 conv of 11 filters at full resolution"),
    ("classify", DETECTOR, "one score per class (softmax 10)")])
def test_a_network_that_does_not_fit_the_task_is_refused(task, spec, hint, digits, tmp_path):
    data = {"data": "mnist"} if task == "classify" else {}
    with pytest.raises(ConvscopeError, match=hint.replace("(", r"\(").replace(")", r"\)")):
        convscope.train(spec, task=task, out=tmp_path / "run", data_dir=str(digits),
                        **data, **SMALL)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_scene_tasks_need_mnist_digits(digits, tmp_path):
    with pytest.raises(ConvscopeError, match="scenes made of MNIST digits"):
        convscope.train(LOCALIZER, "cifar10", task="localize", out=tmp_path / "run", **SMALL)


def test_check_output_messages_name_the_volume():
    like = Dataset("x", torch.zeros(2, 1, 96, 96, dtype=torch.uint8),
                   torch.zeros(2, dtype=torch.int64), [str(d) for d in range(10)])
    get_task("detect").check_output(torch.zeros(2, 15, 12, 12), like)
    get_task("segment").check_output(torch.zeros(2, 11, 96, 96), like)
    with pytest.raises(ConvscopeError, match="S x S x 15 volume"):
        get_task("detect").check_output(torch.zeros(2, 15, 12, 6), like)
    with pytest.raises(ConvscopeError, match="96x96x11 volume"):
        get_task("segment").check_output(torch.zeros(2, 11, 48, 48), like)


@pytest.mark.realdata
def test_localizer_beats_a_fixed_box_on_real_digits(real_data_dir, tmp_path):
    run = convscope.train("mnist-localizer", out=tmp_path / "run", data_dir=str(real_data_dir),
                          scenes=4000, test_scenes=300, epochs=2, progress=False)
    test = get_task("localize")
    truth = test.load_data(run.config)[2].targets["boxes"][:, 0]
    from convscope.metrics import box_iou_paired

    fixed = box_iou_paired(truth.mean(0).expand_as(truth), truth).mean().item()
    assert run.results["test"]["accuracy"] >= 0.5  # chance: 0.1
    assert run.results["test"]["mean_iou"] >= fixed + 0.2


@pytest.mark.realdata
def test_detector_finds_real_digits(real_data_dir, tmp_path):
    run = convscope.train("mnist-yolo", out=tmp_path / "run", data_dir=str(real_data_dir),
                          scenes=8000, test_scenes=200, epochs=2, progress=False)
    assert run.results["test"]["map50"] >= 0.3  # finding nothing scores 0


@pytest.mark.realdata
def test_segmenter_beats_all_background_on_real_digits(real_data_dir, tmp_path):
    run = convscope.train("mnist-unet", out=tmp_path / "run", data_dir=str(real_data_dir),
                          scenes=5000, test_scenes=100, epochs=4, progress=False)
    # all background scores about 0.97 / 11 = 0.09 (the background IoU alone)
    assert run.results["test"]["miou"] >= 0.25
