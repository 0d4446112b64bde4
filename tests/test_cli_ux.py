"""The command line as a user meets it: help for every option (with a model's recipe values),
--version, a closed pipe, a torch-free --help, --config FILE, --resume --epochs N, the partial
batch, full class names, scenes in COCO and YOLO, and --device mps."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import write_mnist
from PIL import Image
from safetensors import safe_open

import convscope
from convscope import device as device_module
from convscope.cli import build_parser, main
from convscope.config import TrainConfig
from convscope.config_file import read_config_file
from convscope.evaluate import Evaluation, format_report
from convscope.optimizers import learning_rate
from convscope.registry import get_model_entry
from convscope.scenes import make_scenes, write_scenes

ROOT = Path(__file__).resolve().parents[1]
TINY = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
        {"type": "softmax", "num_classes": 10}]


def _python(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120, **kwargs)


@pytest.fixture
def data(tmp_path: Path, data_cache: Path) -> Path:
    return write_mnist(tmp_path / "data", train=200, test=50)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "net.json"
    path.write_text(json.dumps(TINY))
    return path


# ---- help, version, pipes, import time ---------------------------------------------------

def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions
                if isinstance(a, argparse._SubParsersAction)).choices


def test_every_option_of_every_subcommand_has_help():
    missing = [f"{name} {action.option_strings or action.dest}"
               for name, sub in _subcommands().items() for action in sub._actions
               if not action.help or len(action.help) < 8]
    assert not missing, missing


def test_train_help_with_a_model_shows_its_recipe_beside_the_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--model", "cifar10-sprint", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    recipe = get_model_entry("cifar10-sprint").recipe
    assert f"(default: 0.001; cifar10-sprint's recipe: {recipe['lr']})" in text
    assert f"(default: 64; cifar10-sprint's recipe: {recipe['batch_size']})" in text
    assert "every 60 s) (default: 0)" in text  # checkpoint_every: not in the recipe
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "(default: 64, or the model's recipe)" in " ".join(capsys.readouterr().out.split())
    assert main(["train", "--model=no-such-net", "--help"]) == 2
    assert "cannot resolve model 'no-such-net'" in capsys.readouterr().err


def test_version_is_the_packages(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    try:
        expected = version("convscope")
    except PackageNotFoundError:
        expected = convscope.__version__
    assert capsys.readouterr().out.strip() == f"convscope {expected}"


def test_a_closed_pipe_ends_quietly():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "convscope", "models"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the listing is written (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""


def test_a_closed_pipe_in_process_returns_141(monkeypatch: pytest.MonkeyPatch):
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["models"]) == 141


def test_help_and_the_parser_import_no_torch():
    script = ("import sys, contextlib, io\n"
              "import convscope, convscope.cli\n"
              "for argv in (['--help'], ['train', '--help'], ['eval', '--help']):\n"
              "    with contextlib.redirect_stdout(io.StringIO()), "
              "contextlib.suppress(SystemExit):\n"
              "        convscope.cli.main(argv)\n"
              "assert 'torch' not in sys.modules, 'torch imported'\n"
              "print(convscope.train.__name__, convscope.evaluate.__name__)\n")
    done = _python("-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["train", "evaluate"]  # the public API still there


def test_evaluate_stays_the_function_after_its_module_is_imported():
    import convscope.evaluate  # noqa: F401 (sets the package attribute)

    assert callable(convscope.evaluate) and convscope.evaluate.__name__ == "evaluate"
    from convscope import evaluate

    assert evaluate is convscope.evaluate
    assert convscope.tasks.get_task("classify").name == "classify"  # submodules as attributes
    assert not hasattr(convscope, "no_such_module")


# ---- --config FILE -----------------------------------------------------------------------

def test_config_file_gives_settings_and_options_override_it(tmp_path: Path, data: Path,
                                                             spec: Path, capsys):
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"model": str(spec), "data": "mnist", "epochs": 1,
                                        "batch-size": 32, "optimizer": "sgd", "lr": 0.05,
                                        "data_dir": str(data), "val_fraction": 0.2}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(settings), "--lr", "0.02", "--out", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    train = saved["train"]
    assert (train["batch_size"], train["optimizer"], train["val_fraction"]) == (32, "sgd", 0.2)
    assert train["lr"] == 0.02  # the option given wins over the file
    assert train["model"] == str(spec)

    # a run's own config.yaml trains it again: same settings, same model
    again = tmp_path / "again"
    assert main(["train", "--config", str(out / "config.yaml"), "--out", str(again)]) == 0
    redone = yaml.safe_load((again / "config.yaml").read_text())
    assert redone["train"] == train and redone["model"] == saved["model"]
    capsys.readouterr()


def test_a_runs_config_names_its_model_and_ignores_what_it_only_records(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "train": {"model": "<python>", "data": "mnist", "epochs": 3},
        "model": {"kind": "spec", "ref": "<python>", "spec": TINY},
        "data": {"classes": ["0"]}, "environment": {"torch": "x"}}))
    settings, model = read_config_file(path)
    assert model == TINY and settings == {"data": "mnist", "epochs": 3}
    path.write_text(yaml.safe_dump({
        "train": {"model": "f.py:make"}, "model": {"kind": "module", "ref": "f.py:make",
                                                    "kwargs": {"n": 5}}}))
    assert read_config_file(path)[1] == ("f.py:make", {"n": 5})


@pytest.mark.parametrize("content, message", [
    ({"batchsize": 32}, "unknown training setting 'batchsize'; did you mean batch_size"),
    ({"optimizer": "adamm"}, "optimizer 'adamm' is not one of: sgd"),
    ({"lr": "1e-3"}, "lr must be float"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ([1, 2], "expected a mapping of training settings"),
])
def test_a_bad_config_file_is_one_line_naming_it(tmp_path: Path, capsys, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --config {path}: ") and message in err
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_config_with_resume_is_refused(tmp_path: Path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--config", "x.yaml"]) == 2
    assert "leave out the other options" in capsys.readouterr().err


# ---- --resume --epochs N -----------------------------------------------------------------

def _position(run: Path) -> dict:
    with safe_open(str(run / "checkpoint.safetensors"), framework="pt") as f:
        return json.loads(f.metadata()["meta"])["position"]


def test_resume_with_epochs_extends_a_finished_run(tmp_path: Path, data: Path, spec: Path,
                                                   capsys):
    run = tmp_path / "run"
    common = ["--data-dir", str(data)]
    assert main(["train", "--model", str(spec), "--epochs", "1", "--schedule", "onecycle",
                 "--batch-size", "32", "--lr", "0.05", "--out", str(run), *common]) == 0
    first = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert main(["train", "--resume", str(run)]) == 2
    assert "extend it with `convscope train --resume" in capsys.readouterr().err

    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "at epoch 2 of 2" in out
    assert "onecycle learning-rate schedule runs again over epochs 2-2" in out
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics[0] == first[0]
    assert _position(run)["epoch"] == 2
    config = convscope.load_run(run).config
    assert (config.epochs, config.schedule_restart) == (2, 1)
    assert "test" in json.loads((run / "results.json").read_text())
    # the added epoch ran the schedule again: it ends where the first one ended
    assert metrics[1]["lr"] == pytest.approx(metrics[0]["lr"])
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2
    assert "would shorten it" in capsys.readouterr().err


def test_a_restarted_schedule_runs_again_over_the_added_epochs():
    config = TrainConfig(schedule="onecycle", epochs=4, schedule_restart=2, lr=1.0)
    plain = TrainConfig(schedule="onecycle", epochs=2, lr=1.0)
    total = 40  # 10 steps per epoch
    for step in range(20):
        assert learning_rate(config, step, total) == learning_rate(plain, step, 20)
        assert learning_rate(config, 20 + step, total) == learning_rate(plain, step, 20)
    with pytest.raises(convscope.errors.ConvscopeError, match="must be below epochs"):
        TrainConfig(epochs=2, schedule_restart=2)


# ---- reports, batches, devices -------------------------------------------------------------

def test_the_report_shows_full_class_names():
    classes = ["airplane", "automobile", "a-very-long-class-name"]
    report = format_report(Evaluation(classes, [[3, 1, 0], [0, 2, 0], [1, 0, 4]],
                                      [], []))
    rows = report.splitlines()[3:]
    assert all(name in rows[0] for name in classes)  # the header
    assert [row.split()[0] for row in rows[1:4]] == classes
    assert len({len(row.rstrip()) for row in rows[:4]}) == 1  # the columns line up


def test_the_start_line_states_a_left_out_partial_batch(tmp_path: Path, data: Path, spec: Path,
                                                        capsys):
    # 200 examples, 20 held out: 180 = 5 batches of 32 and 20 left out; batches of 36 fit
    convscope.train(str(spec), "mnist", out=tmp_path / "a", data_dir=str(data),
                    batch_size=32, val_fraction=0.1)
    start = capsys.readouterr().out.splitlines()[0]
    assert "5 steps of 32, " in start
    assert start.endswith("; the last 20 examples of each epoch's shuffled order are left out "
                          "(a partial batch)")
    convscope.train(str(spec), "mnist", out=tmp_path / "b", data_dir=str(data),
                    batch_size=36, val_fraction=0.1)
    start = capsys.readouterr().out.splitlines()[0]
    assert "5 steps of 36, " in start and "left out" not in start


def test_mps_is_refused_in_one_line_where_torch_offers_none(tmp_path: Path, data: Path,
                                                            spec: Path, capsys):
    if device_module.mps_available():
        pytest.skip("this PyTorch offers MPS")
    assert main(["train", "--model", str(spec), "--device", "mps", "--data-dir", str(data),
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--device mps was asked for, but this PyTorch offers no MPS" in err
    assert err.count("\n") == 1


def test_auto_prefers_cuda_then_mps_then_the_cpu(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "mps_available", lambda: True)
    assert device_module.pick_device("auto").type == "mps"
    assert device_module.pick_device("mps").type == "mps"
    monkeypatch.setattr(device_module, "mps_available", lambda: False)
    assert device_module.pick_device("auto").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_module.pick_device("auto").type == "cuda"
    assert device_module.resolve_precision("auto", torch.device("mps")) == "fp32"


# ---- scenes as COCO and YOLO -------------------------------------------------------------

def _rle_decode(rle: dict) -> np.ndarray:
    """COCO's uncompressed RLE, decoded independently of the writer."""
    height, width = rle["size"]
    flat, value, at = np.zeros(height * width, bool), False, 0
    for run in rle["counts"]:
        flat[at:at + run] = value
        at, value = at + run, not value
    assert at == height * width
    return flat.reshape(width, height).T


@pytest.fixture(scope="module")
def scene_digits():
    from test_scenes import synthetic_digits

    return synthetic_digits()


def _objects(scenes, i: int) -> list[tuple[int, list[int]]]:
    keep = np.flatnonzero(scenes.classes[i] >= 0)
    return [(int(scenes.classes[i, j]), [int(v) for v in scenes.boxes[i, j]]) for j in keep]


def test_coco_scenes_hold_the_boxes_and_masks(tmp_path: Path, scene_digits):
    scenes = make_scenes("segment", scene_digits, 6, seed=3)
    path = write_scenes(scenes, tmp_path, "segment", format="coco")
    document = json.loads(path.read_text())
    assert [c["name"] for c in document["categories"]] == [str(k) for k in range(10)]
    by_image = {image["id"]: image for image in document["images"]}
    found: dict[int, list] = {i: [] for i in range(len(scenes))}
    for annotation in document["annotations"]:
        image = by_image[annotation["image_id"]]
        index = int(image["file_name"][6:11])
        assert (tmp_path / image["file_name"]).is_file()
        assert (image["width"], image["height"]) == (scenes.size, scenes.size)
        cls = annotation["category_id"] - 1
        found[index].append((cls, annotation["bbox"]))
        mask = _rle_decode(annotation["segmentation"])
        x, y, w, h = annotation["bbox"]
        assert mask.sum() == annotation["area"] > 0
        assert not (mask[:y].any() or mask[y + h:].any() or mask[:, :x].any()
                    or mask[:, x + w:].any())
        assert (scenes.masks[index][mask] == cls).all()
    assert found == {i: _objects(scenes, i) for i in range(len(scenes))}
    assert len({a["id"] for a in document["annotations"]}) == len(document["annotations"])


def test_yolo_scenes_round_trip_the_boxes(tmp_path: Path, scene_digits):
    scenes = make_scenes("detect", scene_digits, 5, seed=1)
    path = write_scenes(scenes, tmp_path, "detect", format="yolo")
    data = yaml.safe_load(path.read_text())
    assert data["nc"] == 10 and data["names"][3] == "3"
    assert (tmp_path / data["train"]).is_dir()
    assert (tmp_path / "classes.txt").read_text().split() == [str(k) for k in range(10)]
    size = scenes.size
    for i in range(len(scenes)):
        image = Image.open(tmp_path / "images" / f"scene_{i:05d}.png")
        assert np.array_equal(np.asarray(image), scenes.images[i, 0])
        rows = [line.split() for line in
                (tmp_path / "labels" / f"scene_{i:05d}.txt").read_text().splitlines()]
        boxes = []
        for cls, cx, cy, w, h in rows:
            cx, cy, w, h = (float(v) * size for v in (cx, cy, w, h))
            boxes.append((int(cls), [round(cx - w / 2), round(cy - h / 2), round(w), round(h)]))
        assert boxes == _objects(scenes, i)


def test_scenes_cli_writes_coco(tmp_path: Path, data: Path, capsys):
    out = tmp_path / "scenes"
    assert main(["scenes", "detect", "--count", "3", "--format", "coco", "--out", str(out),
                 "--data-dir", str(data)]) == 0
    assert f"annotations: {out / 'instances.json'}" in capsys.readouterr().out
    assert len(json.loads((out / "instances.json").read_text())["images"]) == 3
    with pytest.raises(SystemExit):
        main(["scenes", "detect", "--format", "voc", "--out", str(out)])
    assert "invalid choice: 'voc'" in capsys.readouterr().err
