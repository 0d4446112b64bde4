"""`convscope.train(model=...)` with an nn.Module object and with a factory's keyword arguments
(issue 19, point 2): both train, score and reload; bad arguments get one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_mnist
from torch import nn

import convscope
from convscope.errors import ConvscopeError, RunError

FACTORY = """import torch

def make(hidden=8, num_classes=10):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, num_classes))
"""


@pytest.fixture
def digits(tmp_path: Path, data_cache: Path) -> Path:
    return write_mnist(tmp_path / "data", train=200, test=50)


def _net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))


def _factory(tmp_path: Path) -> Path:
    source = tmp_path / "mine.py"
    source.write_text(FACTORY)
    return source


def test_a_module_object_trains_scores_and_reloads_its_weights(digits: Path, tmp_path: Path):
    net = _net()
    run = convscope.train(net, "mnist", out=tmp_path / "run", data_dir=str(digits), epochs=1,
                          lr=0.01, progress=False)
    assert run.model is net and "accuracy" in run.results["test"]  # scored in-process
    info = yaml.safe_load((run.path / "config.yaml").read_text())["model"]
    assert info["kind"] == "object" and info["class"] == "torch.nn.modules.container.Sequential"
    assert "Linear(in_features=784, out_features=16" in info["repr"]
    assert not (run.path / "model_code").exists()

    loaded = convscope.load_run(run.path, trust_code=True)
    with pytest.raises(RunError, match=r"trained from a Python object .*load_weights_into"):
        _ = loaded.model
    fresh = loaded.load_weights_into(_net())
    assert torch.equal(fresh[3].weight, net[3].weight) and loaded.model is fresh
    with pytest.raises(RunError, match="do not fit"):
        loaded.load_weights_into(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))


def test_the_explorer_and_eval_refuse_an_object_run_saying_why(digits: Path, tmp_path: Path):
    from convscope.server.catalog import entry_from_run

    run = convscope.train(_net(), "mnist", out=tmp_path / "run", data_dir=str(digits), epochs=1,
                          progress=False)
    with pytest.raises(RunError, match=r"Python object \(torch\.nn.*Sequential\)"):
        entry_from_run(convscope.load_run(run.path), "x", "run", "x")
    evaluated = subprocess.run([sys.executable, "-m", "convscope", "eval", str(run.path),
                                "--data-dir", str(digits)], capture_output=True, text=True,
                               timeout=120)
    assert evaluated.returncode == 2 and "Traceback" not in evaluated.stderr
    assert evaluated.stderr.startswith("error: ") and "load_weights_into" in evaluated.stderr


def test_a_factory_with_keyword_arguments_reloads_with_them(digits: Path, tmp_path: Path):
    source = _factory(tmp_path)
    run = convscope.train((f"{source}:make", {"hidden": 5, "num_classes": 10}), "mnist",
                          out=tmp_path / "run", data_dir=str(digits), epochs=1, progress=False)
    assert "accuracy" in run.results["test"]
    info = yaml.safe_load((run.path / "config.yaml").read_text())["model"]
    assert info["kwargs"] == {"hidden": 5, "num_classes": 10}
    source.write_text("raise SystemExit('the original file is not imported again')\n")
    model = convscope.load_run(run.path, trust_code=True).model
    assert model[1].out_features == 5 and model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert torch.equal(model[1].weight, run.model[1].weight)

    config = run.path / "config.yaml"
    config.write_text(config.read_text().replace("kwargs:", "kwargs: [1]\n  was:"))
    with pytest.raises(RunError, match=r"config.yaml: model.kwargs: .*must be a dict"):
        _ = convscope.load_run(run.path, trust_code=True).model


@pytest.mark.parametrize("model, message", [
    (("mine.py:make", [5]), "must be a dict"),
    (("mine.py:make", {"hidden": object()}), "must be JSON values"),
    (("mine.py:make", {"hidden": (5,)}), "lists, not tuples"),
    (("mine.py:make", {"hidden": float("nan")}), "must be JSON values"),
    (("mine.py:make", {"hidden": 5}, {}), "is a pair"),
    (("mnist-convnetjs", {"hidden": 5}), "for a 'file.py:factory' model"),
    (("mine.py:make", {"width": 5}), r"calling make\(\*\*\{'width': 5\}\).*unexpected keyword"),
])
def test_bad_keyword_arguments_get_one_line_errors(model, message, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    _factory(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConvscopeError, match=message) as caught:
        convscope.train(model, "mnist", out=tmp_path / "run", epochs=1, progress=False)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists()


def test_cli_model_args_must_be_json(digits: Path, tmp_path: Path):
    source = _factory(tmp_path)
    base = [sys.executable, "-m", "convscope", "train", "--model", f"{source}:make",
            "--data-dir", str(digits), "--epochs", "1"]
    bad = subprocess.run([*base, "--model-args", "{hidden: 3}", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --model-args is not JSON")
    assert "Traceback" not in bad.stderr


def test_cli_model_args_are_recorded(digits: Path, tmp_path: Path):
    source = _factory(tmp_path)
    base = [sys.executable, "-m", "convscope", "train", "--model", f"{source}:make",
            "--data-dir", str(digits), "--epochs", "1"]
    done = subprocess.run([*base, "--model-args", '{"hidden": 3}', "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]
    assert info["kwargs"] == {"hidden": 3}
