"""The explorer's live job feed: snapshots reuse the network built once, never rebuilding it."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import torch

from convscope.model import SpecNet, build_model
from convscope.server.live import LiveFeed

NET = [{"type": "input", "sx": 8, "sy": 8, "depth": 1},
       {"type": "conv", "sx": 3, "filters": 2, "activation": "relu"},
       {"type": "softmax", "num_classes": 3}]


class FakeJob:
    def __init__(self) -> None:
        self.published, self.stop_requested = [], threading.Event()

    def publish(self, message: dict) -> None:
        self.published.append(message)


def test_snapshots_load_the_training_weights_into_two_networks_built_once(monkeypatch):
    entry = SimpleNamespace(model=build_model(NET).eval())
    job, first = FakeJob(), entry.model
    feed = LiveFeed(job, entry, torch.zeros(1, 1, 8, 8))
    built = []
    original = SpecNet.__init__
    monkeypatch.setattr(SpecNet, "__init__",
                        lambda self, *a, **k: built.append(1) or original(self, *a, **k))
    seen = []
    for seed in range(3):
        torch.manual_seed(seed)
        training = build_model(NET).train()  # what the trainer would be training
        feed.snapshot(training)
        seen.append(entry.model)
        assert not entry.model.training
        for name, value in training.state_dict().items():
            assert torch.equal(entry.model.state_dict()[name], value)
    assert len(built) == 3  # only the three "training" networks of this test
    assert seen[0] is not first and seen[1] is first and seen[2] is seen[0]
    assert [m["type"] for m in job.published] == ["snapshot"] * 3


@pytest.mark.parametrize("hook", ["on_step", "on_epoch_end"])
def test_the_feed_stops_the_run_when_the_job_is_asked_to(hook: str):
    job = FakeJob()
    feed = LiveFeed(job, SimpleNamespace(model=build_model(NET).eval()), None)
    session = SimpleNamespace(module=build_model(NET))
    event = {"epoch": 0, "step": 1, "steps_per_epoch": 2, "epochs": 1, "loss": 1.0,
             "accuracy": 0.5, "examples_per_s": 9.0}
    assert getattr(feed, hook)(session, event) is True
    job.stop_requested.set()
    assert getattr(feed, hook)(session, event) is False
