"""Self-contained runs (issue 19, point 1): a run finds its image folder and its model code from
any working directory, after the run (and its data) moved; ``eval`` reads only the split it
scores. Real files: small PNG folders, a user module, tiny trainings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_mnist
from PIL import Image

import convscope
from convscope.cli import main
from convscope.data.location import fingerprint
from convscope.errors import RunError

NET = [{"type": "input", "sx": 16, "sy": 12, "depth": 3},
       {"type": "conv", "sx": 3, "filters": 4, "activation": "relu"},
       {"type": "pool", "sx": 2},
       {"type": "softmax", "num_classes": 2}]
MODULE = """from torch import nn


def make(num_classes=2):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, num_classes))
"""


def write_folder(root: Path, train: int = 12, test: int = 5, seed: int = 0) -> Path:
    """``root/{train,test}/{left,right}/*.png``: 16x12 RGB pictures, bright on the class's
    half."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("test", test)):
        for k, name in enumerate(("left", "right")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 90, (12, 16, 3), dtype=np.uint8)
                pixels[:, 8 * k:8 * k + 8] += 150
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _eval(capsys, run: Path, *more: str) -> dict:
    code, out, err = _cli(capsys, "eval", str(run), "--json", *more)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def project(tmp_path: Path, data_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder holding an image folder ``pets``, ``net.json`` and ``mynet.py``; the
    current directory while the test trains (as a user types relative names)."""
    root = tmp_path / "project"
    write_folder(root / "pets")
    (root / "net.json").write_text(json.dumps(NET))
    (root / "mynet.py").write_text(MODULE)
    (tmp_path / "third").mkdir()
    monkeypatch.chdir(root)
    return root


def _train(capsys, model: str, out: str, *more: str) -> Path:
    code, _, err = _cli(capsys, "train", "--model", model, "--data", "pets", "--out", out,
                        "--epochs", "1", "--batch-size", "8", "--seed", "1", *more)
    assert code == 0, err
    return Path(out).resolve()


def _test_accuracy(run: Path) -> float:
    return json.loads((run / "results.json").read_text())["test"]["accuracy"]


def test_a_run_records_its_folder_by_absolute_path_relative_path_and_fingerprints(project,
                                                                                   capsys):
    run = _train(capsys, "net.json", "runs/spec")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["data"] == str(project / "pets")
    folder = saved["data"]["folder"]
    assert folder["relative"] == "../../pets"
    assert folder["fingerprint"] == {"train": fingerprint(project / "pets" / "train"),
                                     "test": fingerprint(project / "pets" / "test")}
    assert folder["images"] == [16, 12, 3]


def test_a_moved_project_evaluates_from_a_third_folder(project, capsys, monkeypatch):
    """A folder dataset and a spec model: the project (runs and data) moves, the run is
    scored from a third folder and finds its data beside it, with the same numbers."""
    run = _train(capsys, "net.json", "runs/spec")
    trained = _test_accuracy(run)
    moved = project.parent / "moved"
    shutil.move(project, moved)
    monkeypatch.chdir(project.parent / "third")
    result = _eval(capsys, moved / "runs" / "spec")
    assert result["data"] == str(moved / "pets") and result["total"] == 10
    assert result["accuracy"] == trained


def test_a_moved_module_run_works_from_a_third_folder(project, capsys, monkeypatch):
    """A run of mynet.py:make, moved on its own (the data stays) and the original mynet.py
    deleted: eval, predict, export and load_run(...).model work with --trust-code."""
    run = _train(capsys, "mynet.py:make", "runs/module")
    trained = _test_accuracy(run)
    moved = project.parent / "elsewhere" / "module"
    shutil.move(run, moved)
    (project / "mynet.py").unlink()
    monkeypatch.chdir(project.parent / "third")
    assert _eval(capsys, moved, "--trust-code")["accuracy"] == trained
    picture = project / "pets" / "test" / "right" / "0.png"
    code, out, err = _cli(capsys, "predict", str(moved), str(picture), "--json", "--trust-code")
    assert code == 0, err
    predicted = json.loads(out)[0]["predictions"]
    assert {p["class"] for p in predicted} == {"left", "right"}
    code, out, err = _cli(capsys, "export", str(moved), "--format", "onnx", "--trust-code")
    assert code == 0 and (moved / "model.onnx").stat().st_size > 0, err
    model = convscope.load_run(moved, trust_code=True).model
    assert sum(p.numel() for p in model.parameters()) == 3 * 4 * 9 + 4 + 16 * 2 + 2
    code, out, err = _cli(capsys, "summary", str(moved), "--trust-code")  # its recorded input
    assert code == 0 and "16x12x4" in out, err  # the conv's output on 16x12 pictures


@pytest.mark.parametrize("command", [["eval", "{run}"], ["predict", "{run}", "{picture}"],
                                     ["export", "{run}", "--format", "onnx"]])
def test_a_moved_module_run_without_trust_code_says_how_to_allow_it(project, capsys,
                                                                     monkeypatch, command):
    run = _train(capsys, "mynet.py:make", "runs/module")
    moved = project.parent / "elsewhere"
    shutil.move(run, moved)
    monkeypatch.chdir(project.parent / "third")
    picture = str(project / "pets" / "test" / "left" / "0.png")
    code, out, err = _cli(capsys, *(a.format(run=moved, picture=picture) for a in command))
    assert code == 2 and err.count("\n") == 1 and "--trust-code" in err, err
    with pytest.raises(RunError, match="trust_code=True"):
        _ = convscope.load_run(moved).model


def test_moved_data_gives_one_clear_line_then_data_points_at_it(project, capsys, monkeypatch):
    run = _train(capsys, "net.json", "runs/spec")
    trained = _test_accuracy(run)
    shutil.move(project / "pets", project.parent / "archive")
    monkeypatch.chdir(project.parent / "third")
    code, _, err = _cli(capsys, "eval", str(run))
    assert code == 2 and err.count("\n") == 1, err
    recorded = yaml.safe_load((run / "config.yaml").read_text())["data"]["folder"]
    assert str(project / "pets") in err and "--data DIR" in err
    assert recorded["fingerprint"]["test"] in err
    result = _eval(capsys, run, "--data", "../archive")
    assert result["accuracy"] == trained and result["total"] == 10
    assert capsys.readouterr().err == ""  # the same files: no warning


def test_changed_images_get_a_one_line_fingerprint_warning(project, capsys):
    run = _train(capsys, "net.json", "runs/spec")
    copy = project.parent / "copy"
    shutil.copytree(project / "pets", copy)  # new mtimes, the same files: the same fingerprint
    assert fingerprint(copy / "test") == fingerprint(project / "pets" / "test")
    (copy / "test" / "left" / "notes.txt").write_text("not an image: not fingerprinted")
    assert fingerprint(copy / "test") == fingerprint(project / "pets" / "test")
    shutil.copy(copy / "test" / "left" / "0.png", copy / "test" / "left" / "extra.png")
    code, out, err = _cli(capsys, "eval", str(run), "--data", str(copy), "--json")
    assert code == 0 and json.loads(out)["total"] == 11
    warning = [line for line in err.splitlines() if "fingerprint" in line]
    assert len(warning) == 1 and warning[0].startswith("warning: ")
    assert fingerprint(copy / "test") in warning[0]
    assert "the test images differ" in warning[0]  # only the split scored is checked


def test_eval_test_needs_no_training_folder(project, capsys, data_cache):
    run = _train(capsys, "net.json", "runs/spec")
    trained = _test_accuracy(run)
    shutil.rmtree(project / "pets" / "train")
    shutil.rmtree(data_cache)  # nothing decoded before: test/ is decoded on its own
    result = _eval(capsys, run, "--split", "test")
    assert result["accuracy"] == trained and result["total"] == 10
    code, _, err = _cli(capsys, "eval", str(run), "--split", "train")
    assert code == 2 and "pets has no train split" in err and err.count("\n") == 1


def test_eval_on_mnist_reads_only_the_test_files(tmp_path, data_cache, capsys, monkeypatch):
    data = write_mnist(tmp_path / "data", train=120, test=40)
    code, _, err = _cli(capsys, "train", "--model", "mnist-templates", "--data", "mnist",
                        "--data-dir", str(data), "--out", str(tmp_path / "run"),
                        "--epochs", "1", "--batch-size", "16")
    assert code == 0, err
    for path in (data / "mnist").glob("train-*"):
        path.unlink()
    shutil.rmtree(data_cache)

    def no_download(*args, **kwargs):
        raise AssertionError(f"eval fetched {args[2]}")

    monkeypatch.setattr("convscope.data.load.fetch_missing", no_download)
    result = _eval(capsys, tmp_path / "run")
    assert result["total"] == 40
    assert result["accuracy"] == _test_accuracy(tmp_path / "run")


def test_a_run_with_a_relative_data_path_still_evaluates_from_its_folder(project, capsys,
                                                                         monkeypatch):
    """Runs made before absolute paths: ``data: pets`` and no folder record."""
    run = _train(capsys, "net.json", "runs/spec")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["train"]["data"], config["data"]["name"] = "pets", "pets"
    del config["data"]["folder"]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert _eval(capsys, run)["accuracy"] == _test_accuracy(run)
    monkeypatch.chdir(project.parent / "third")
    code, _, err = _cli(capsys, "eval", str(run))
    assert code == 2 and err.count("\n") == 1 and "'pets'" in err and "--data DIR" in err
    assert _eval(capsys, run, "--data", str(project / "pets"))["total"] == 10


def _stopped_run(capsys) -> Path:
    """runs/spec of the project, as if stopped before its end (no weights, no results)."""
    run = _train(capsys, "net.json", "runs/spec")
    (run / "model.safetensors").unlink()
    (run / "results.json").unlink()
    return run


def test_resume_finds_a_folder_that_moved_with_the_run(project, capsys, monkeypatch):
    _stopped_run(capsys)
    moved = project.parent / "moved"
    shutil.move(project, moved)
    monkeypatch.chdir(project.parent / "third")
    finished = convscope.resume(moved / "runs" / "spec", progress=False)
    assert finished.results["test"]["total"] == 10


def test_resume_takes_data_pointing_at_a_folder_moved_elsewhere(project, capsys, monkeypatch):
    run = _stopped_run(capsys)
    shutil.move(project / "pets", project.parent / "archive")
    monkeypatch.chdir(project.parent / "third")
    code, _, err = _cli(capsys, "train", "--resume", str(run))
    assert code == 2 and err.count("\n") == 1 and "--resume" in err and "--data DIR" in err, err
    code, _, err = _cli(capsys, "train", "--resume", str(run), "--data", "../archive")
    assert code == 0, err
    assert _test_accuracy(run) is not None


@pytest.mark.parametrize("change", [{"images": [16, 12, 2]}, {"images": "16x12"},
                                    {"images": [16, 12, 3], "classes": None}])
def test_a_damaged_folder_record_is_one_line(project, capsys, change):
    run = _train(capsys, "net.json", "runs/spec")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["folder"]["images"] = change["images"]
    if "classes" in change:
        config["data"]["classes"] = change["classes"]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    code, _, err = _cli(capsys, "eval", str(run))
    assert code == 2 and err.count("\n") == 1 and "config.yaml: data.folder.images" in err, err
