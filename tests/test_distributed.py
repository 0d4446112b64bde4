"""Data-parallel training: 2 processes (gloo on 127.0.0.1) equal one process on the same
global batch, from scratch and when resuming; sharding and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import convscope
from convscope.cli import build_parser
from convscope.distributed import World, check_batch_size, launch
from convscope.errors import ConvscopeError

# batchnorm after a conv and after an fc (synchronised over the processes); no dropout, whose
# masks are drawn per process
NET = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
       {"type": "conv", "sx": 5, "filters": 4, "stride": 2},
       {"type": "batchnorm"}, {"type": "relu"},
       {"type": "pool", "sx": 2},
       {"type": "fc", "num_neurons": 12}, {"type": "batchnorm"}, {"type": "relu"},
       {"type": "softmax", "num_classes": 10}]


def _settings(fake_data) -> dict:
    # 20 MNIST examples: 18 train (3 steps of 6 an epoch, shift augmentation), 2 validation
    return dict(data_dir=str(fake_data[0]), epochs=2, batch_size=6, optimizer="sgd", lr=0.05,
                momentum=0.9, seed=1, progress=False)


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = (load_file(str(p / "model.safetensors")) for p in (a, b))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.allclose(wa[key], wb[key], rtol=1e-5, atol=1e-6), key


def _assert_same_metrics(a: list[dict], b: list[dict]) -> None:
    assert [m["epoch"] for m in a] == [m["epoch"] for m in b] == [1, 2]
    for one, two in zip(a, b, strict=True):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
        assert (two["train_acc"], two["val_acc"]) == (one["train_acc"], one["val_acc"])
        assert two["processes"] == 2 and "processes" not in one


def test_two_processes_equal_one_on_the_same_global_batch(fake_data, tmp_path: Path):
    settings = _settings(fake_data)
    one = convscope.train(NET, "mnist", out=tmp_path / "one", **settings)
    two = convscope.train(NET, "mnist", out=tmp_path / "two", nproc=2, **settings)
    assert sorted(p.name for p in two.path.iterdir()) == sorted(p.name for p in one.path.iterdir())
    _assert_same_weights(one.path, two.path)
    _assert_same_metrics(one.metrics, two.metrics)
    assert two.results["test"]["confusion"] == one.results["test"]["confusion"]
    initial = convscope.build_model(NET).state_dict()  # training moved the weights
    assert not torch.allclose(initial["blocks.1.weight"], two.model.state_dict()["blocks.1.weight"])


@pytest.mark.slow
def test_a_run_resumed_in_two_processes_ends_where_one_process_does(fake_data, tmp_path: Path):
    settings = _settings(fake_data)
    one = convscope.train(NET, "mnist", out=tmp_path / "one", **settings)
    stopped = convscope.train(NET, "mnist", out=tmp_path / "resumed", **settings,
                              on_event=lambda event: event["kind"] != "epoch")  # after epoch 1
    assert stopped.results is None and len(stopped.metrics) == 1
    resumed = convscope.resume(stopped.path, progress=False, nproc=2)
    _assert_same_weights(one.path, resumed.path)
    lines = [json.loads(x) for x in (resumed.path / "metrics.jsonl").read_text().splitlines()]
    assert [m.get("processes", 1) for m in lines] == [1, 2]
    assert resumed.results["test"]["confusion"] == one.results["test"]["confusion"]


def test_the_global_batch_must_split_evenly(fake_data, tmp_path: Path):
    settings = {**_settings(fake_data), "batch_size": 5}
    with pytest.raises(ConvscopeError, match="divisible by 2"):
        convscope.train(NET, "mnist", out=tmp_path / "run", nproc=2, **settings)
    with pytest.raises(ConvscopeError, match="--nproc must be at least 1"):
        convscope.train(NET, "mnist", out=tmp_path / "run", nproc=0, **settings)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConvscopeError, match="needs a single process"):
        convscope.train(NET, "mnist", out=tmp_path / "run", nproc=3, on_event=print,
                        **{**settings, "batch_size": 6})


def test_shards_are_contiguous_slices_of_the_global_batch():
    batch = torch.arange(12)
    shards = [World(rank, 3).shard(batch) for rank in range(3)]
    assert torch.equal(torch.cat(shards), batch) and [len(s) for s in shards] == [4, 4, 4]
    assert World().shard(batch) is batch
    with pytest.raises(ConvscopeError, match="does not split evenly over 3"):
        World(1, 3).shard(torch.arange(10))
    assert build_parser().parse_args(["train", "--nproc", "2"]).nproc == 2


@pytest.mark.slow
def test_an_error_in_a_worker_is_raised_in_the_launcher():
    with pytest.raises(ConvscopeError, match="a global batch of 5 examples"):
        launch(1, check_batch_size, 5, 2)
