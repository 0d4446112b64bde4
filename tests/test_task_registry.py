"""The task registry is the one list of tasks: a task registered in a few lines reaches the
config, the CLI and the explorer's model description; every task describes itself for the
explorer; and detection runs in its run's precision (fp32 runs were scored in bf16)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import convscope
from convscope.cli import build_parser
from convscope.config import TrainConfig
from convscope.data import Dataset
from convscope.device import autocast_for
from convscope.errors import ConvscopeError
from convscope.model import build_model
from convscope.registry import get_model_entry
from convscope.scenes import SCENE_KINDS
from convscope.server.catalog import Entry
from convscope.tasks import get_task, register_task, task_names, unregister_task
from convscope.tasks.base import GENERAL_VIEWS
from convscope.tasks.classify import Classify

DIGITS = [str(d) for d in range(10)]
APP_JS = Path(__file__).resolve().parent.parent / "convscope" / "static" / "app.js"
DESCRIPTION = {"name", "display_name", "classifies", "scenes", "views", "home_view", "metric",
               "metric_label"}


def test_a_task_registered_in_a_test_reaches_the_config_the_cli_and_the_api(tmp_path: Path):
    task = register_task(Classify("doodle", "mnist-convnetjs", "mnist", "a doodle classifier"))
    try:
        assert task_names()[-1] == "doodle" and get_task("doodle") is task
        assert TrainConfig(task="doodle", data="mnist").augment == "shift"
        args = build_parser().parse_args(["train", "--task", "doodle"])
        assert args.task == "doodle"
        spec = get_model_entry("mnist-convnetjs").spec
        entry = Entry("doodler", "doodler", "run", "mnist", DIGITS, spec, task="doodle")
        assert entry.describe()["task_info"] == task.describe()
        assert entry.summary()["task_info"]["display_name"] == "a doodle classifier"
        assert entry.metric == {"name": "accuracy", "label": "accuracy", "value": None}
    finally:
        unregister_task("doodle")
    assert "doodle" not in task_names()
    with pytest.raises(ConvscopeError, match="task 'doodle' is not one of"):
        TrainConfig(task="doodle")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--task", "doodle"])
    with pytest.raises(ConvscopeError, match="unknown task 'doodle'; choose one of: classify"):
        get_task("doodle")
    with pytest.raises(ConvscopeError, match="unknown task 'doodle'; choose one of: classify"):
        convscope.train("mnist-convnetjs", "mnist", task="doodle", out=tmp_path / "run")


def test_a_task_name_is_registered_once():
    with pytest.raises(ConvscopeError, match="already registered"):
        register_task(Classify("classify", "mnist-convnetjs", "mnist", "a second classifier"))
    assert get_task("classify").display_name == "an image classifier"


def test_live_training_takes_the_tasks_that_classify_images():
    from convscope.server.live import live_trainable

    assert live_trainable("classify", "mnist") and live_trainable("classify", "cifar10")
    assert not live_trainable("audio", "fsdd")  # classifies, but recordings
    assert not any(live_trainable(kind, "mnist") for kind in SCENE_KINDS)
    register_task(Classify("doodle", "mnist-convnetjs", "mnist", "a doodle classifier"))
    try:
        assert live_trainable("doodle", "mnist")  # no list of names to extend
    finally:
        unregister_task("doodle")


def _front_end_views() -> set[str]:
    block = APP_JS.read_text().split("const VIEWS = [", 1)[1].split("];", 1)[0]
    return set(re.findall(r'name: "(\w+)"', block))


@pytest.mark.parametrize("name", task_names())
def test_every_task_describes_itself_for_the_explorer(name):
    task = get_task(name)
    info = task.describe()
    assert set(info) == DESCRIPTION and info["name"] == name
    assert json.loads(json.dumps(info)) == info
    assert info["display_name"].startswith(("a ", "an ")) and info["metric_label"]
    # a WaveNet reads a packed 1-D clip: the image views are not offered for it (its own is)
    image_views = {"convolution", "maps", "weights"} if name == "wavenet" else set()
    assert set(GENERAL_VIEWS) - image_views <= set(info["views"]) <= _front_end_views()
    assert info["home_view"] in info["views"]
    assert not info["scenes"] or name in SCENE_KINDS  # scenes of its name can be made
    assert ("confusion" in info["views"]) == info["classifies"]


def _scenes(count: int = 3) -> Dataset:
    boxes = torch.tensor([[10, 10, 20, 20], [50, 40, 30, 30]]).expand(count, 2, 4)
    return Dataset("scenes", torch.randint(0, 256, (count, 1, 96, 96), dtype=torch.uint8),
                   torch.zeros(count, dtype=torch.int64), DIGITS,
                   {"boxes": boxes.clone(), "classes": torch.tensor([[3, -1]] * count)})


@pytest.mark.parametrize(("precision", "dtype"),
                         [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_detection_runs_in_its_runs_precision(precision, dtype):
    """Bug: Detect.predict forced bf16 autocast, so fp32 detection runs were scored in bf16."""
    torch.manual_seed(0)
    model = build_model(get_model_entry("mnist-yolo").spec)
    seen: list[torch.dtype] = []
    model.blocks[-1].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    task = get_task("detect")
    with autocast_for(precision, model):
        result = task.evaluate(model, _scenes())
        task.predict(model, _scenes().images)
    assert seen and set(seen) == {dtype}
    assert 0 <= result["map50"] <= 1
