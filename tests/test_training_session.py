"""The training session's callbacks, and model references described rather than built."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from conftest import write_mnist
from safetensors.torch import load_file

import convscope
from convscope.callbacks import Callback
from convscope.user_module import resolve_model_ref

TINY = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
        {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
        {"type": "pool", "sx": 2},
        {"type": "dropout", "drop_prob": 0.2},
        {"type": "softmax", "num_classes": 10}]
SETTINGS = {"epochs": 2, "batch_size": 64, "seed": 5, "progress": False}


@pytest.fixture
def squares(tmp_path: Path, data_cache: Path) -> Path:
    return write_mnist(tmp_path / "data", train=300, test=100)


class Recorder(Callback):
    """Writes down every hook it hears; asks to stop after ``stop_after`` steps."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.heard, self.stop_after, self.steps = [], stop_after, 0

    def on_start(self, session):
        self.heard.append(("start", session.epoch, session.steps_done))

    def on_epoch_start(self, session):
        self.heard.append(("epoch_start", session.epoch))

    def on_step(self, session, event):
        self.steps += 1
        self.heard.append(("step", event["epoch"], event["step"]))
        assert isinstance(session.module, torch.nn.Module) and event["loss"] > 0
        return self.steps != self.stop_after

    def on_epoch_end(self, session, line):
        self.heard.append(("epoch_end", line["epoch"], session.epoch))

    def on_stop(self, session):
        self.heard.append(("stop", session.epoch, session.steps_done))

    def on_finish(self, session, results):
        self.heard.append(("finish", results["test"]["total"]))


def test_callbacks_hear_every_step_epoch_and_the_finish(squares: Path, tmp_path: Path):
    recorder = Recorder()
    run = convscope.train(TINY, "mnist", out=tmp_path / "run", data_dir=str(squares),
                          callbacks=[recorder], **SETTINGS)
    per_epoch = 270 // 64
    assert recorder.heard == [
        ("start", 0, 0),
        ("epoch_start", 0), *[("step", 0, s) for s in range(1, per_epoch + 1)], ("epoch_end", 1, 1),
        ("epoch_start", 1), *[("step", 1, s) for s in range(1, per_epoch + 1)], ("epoch_end", 2, 2),
        ("finish", 100)]
    assert run.model is not None and not run.model.training


def test_a_callback_stops_the_run_and_it_resumes_to_the_same_weights(squares: Path,
                                                                     tmp_path: Path):
    whole = convscope.train(TINY, "mnist", out=tmp_path / "whole", data_dir=str(squares),
                            **SETTINGS)
    stopper = Recorder(stop_after=6)
    stopped = convscope.train(TINY, "mnist", out=tmp_path / "part", data_dir=str(squares),
                              callbacks=[stopper], **SETTINGS)
    assert stopped.results is None and stopper.heard[-1] == ("stop", 1, 2)
    assert ("finish", 100) not in stopper.heard
    later = Recorder()
    resumed = convscope.resume(stopped.path, progress=False, callbacks=[later])
    assert later.heard[0] == ("start", 1, 2) and later.heard[-1] == ("finish", 100)
    a, b = (load_file(str(r.path / "model.safetensors")) for r in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


FACTORY = """
from pathlib import Path
import torch

def make():
    calls = Path(__file__).with_name("calls.txt")
    calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))
"""


def test_a_factory_runs_once_per_training_run(squares: Path, tmp_path: Path):
    user_file = tmp_path / "user_net.py"
    user_file.write_text(FACTORY)
    calls = tmp_path / "calls.txt"
    described = resolve_model_ref(f"{user_file}:make")  # a description: nothing is called
    assert described.kind == "module" and described.spec is None and not calls.exists()
    run = convscope.train(f"{user_file}:make", "mnist", out=tmp_path / "run",
                          data_dir=str(squares), epochs=1, progress=False)
    assert calls.read_text() == "x"  # built once, not once to resolve and again to train
    kept = {"file": "model_code/user_net.py", "factory": "make",
            "sha256": hashlib.sha256(FACTORY.encode()).hexdigest()}
    assert run.model_info == {"kind": "module", "ref": f"{user_file}:make", "spec": None,
                              "code": kept}  # the run keeps the code it was trained from
    assert (run.path / kept["file"]).read_text() == FACTORY
