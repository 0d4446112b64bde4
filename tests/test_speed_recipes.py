"""The MNIST speed recipes and what their wall time pays for (issue 18, point 3): SGD without
torch.optim (so no torch._dynamo import at start), figures that a run can skip, the recipes'
settings, and the time-to-accuracy benchmark's CPU classes (``--isa-limit AVX2``). No timing
here: the times are measured by benchmarks/time_to_accuracy.py."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import write_mnist

from convscope.model import build_model
from convscope.registry import get_model_entry
from convscope.sgd import SGD

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import time_to_accuracy as bench  # noqa: E402

SPEC = [{"type": "input", "sx": 8, "sy": 8, "depth": 3},
        {"type": "conv", "sx": 3, "filters": 6, "pad": 1, "stride": 1},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "softmax", "num_classes": 5}]


def _train(net: torch.nn.Module, optimizer, steps: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(4, 3, 8, 8, generator=generator)
        y = torch.randint(0, 5, (4,), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x).flatten(1), y).backward()
        optimizer.step()


@pytest.mark.parametrize("settings", [
    {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    {"lr": 0.05, "momentum": 0.8, "nesterov": False, "weight_decay": 0.0},
    {"lr": 0.2, "momentum": 0.0, "nesterov": False, "weight_decay": 5e-4}])
def test_sgd_steps_and_state_are_torch_sgds_bit_for_bit(settings: dict):
    torch.manual_seed(0)
    theirs_net = build_model(SPEC)
    ours_net = copy.deepcopy(theirs_net)
    groups = lambda net: [{"params": list(net.parameters())[:2], "lr_scale": 1.0},  # noqa: E731
                          {"params": list(net.parameters())[2:], "lr_scale": 2.0}]
    theirs = torch.optim.SGD(groups(theirs_net), **settings)
    ours = SGD(groups(ours_net), **settings)
    _train(theirs_net, theirs, 5, seed=1)
    _train(ours_net, ours, 5, seed=1)
    for a, b in zip(theirs_net.parameters(), ours_net.parameters(), strict=True):
        assert torch.equal(a, b)
    mine, torchs = ours.state_dict(), theirs.state_dict()
    assert mine["param_groups"] == torchs["param_groups"]
    assert mine["state"].keys() == torchs["state"].keys()
    assert all(torch.equal(mine["state"][i]["momentum_buffer"], s["momentum_buffer"])
               for i, s in torchs["state"].items())
    # torch's state dict loads into ours (and ours into torch's): training goes on alike
    again = SGD(groups(ours_net), **{**settings, "lr": 1.0})
    again.load_state_dict(torchs)
    theirs.load_state_dict(ours.state_dict())
    _train(theirs_net, theirs, 3, seed=2)
    _train(ours_net, again, 3, seed=2)
    for a, b in zip(theirs_net.parameters(), ours_net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_sgd_rejects_a_state_of_other_groups():
    net = build_model(SPEC)
    state = SGD(net.parameters(), lr=0.1).state_dict()
    with pytest.raises(ValueError, match="other parameter groups"):
        SGD([{"params": [p]} for p in net.parameters()], lr=0.1).load_state_dict(state)


def test_a_run_without_figures_imports_neither_dynamo_nor_matplotlib(tmp_path: Path,
                                                                     data_cache: Path):
    data = write_mnist(tmp_path / "data", train=200, test=50)
    code = ("import sys; from convscope.cli import main; main(sys.argv[1:]); "
            "print([m for m in ('torch._dynamo', 'matplotlib') if m in sys.modules])")
    out = subprocess.run(
        [sys.executable, "-c", code, "train", "--recipe", "mnist-sprint", "--epochs", "1",
         "--no-figures", "--data-dir", str(data), "--out", str(tmp_path / "run"), "--device",
         "cpu"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "CONVSCOPE_CACHE": str(data_cache)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    run = tmp_path / "run"
    assert (run / "results.json").exists() and not (run / "curves.png").exists()


@pytest.mark.parametrize("name", ["mnist-sprint", "mnist-995"])
def test_the_mnist_speed_recipes_train_on_all_images_and_say_their_precision(name: str):
    recipe = get_model_entry(name).recipe
    assert recipe["tuned_precision"] in ("fp32", "bf16")
    assert recipe["val_fraction"] == 0.0  # all 60,000 training images, as timed
    assert recipe["figures"] is False  # a second of matplotlib is not part of a speed record
    assert recipe["optimizer"] == "sgd"  # convscope's SGD: no torch._dynamo at start


def _record(recipe: str, seed: int, acc: float, wall: float, limit: str | None) -> dict:
    return {"recipe": recipe, "dataset": "mnist", "seed": seed, "test_acc": acc, "wall_s": wall,
            "cpu_s": 2 * wall, "others_cpu": 0.0, "load_avg": 1.0, "train_s": wall - 2,
            "examples_per_s": 9000.0, "epochs": 1, "threads": 2,
            "settings": get_model_entry(recipe).recipe, "isa_limit": limit,
            "native_bf16": limit is None, "cpu": "Some CPU (avx2 avx512f avx512_bf16)",
            "precision": "bf16" if limit is None else "fp32"}


def test_the_report_has_a_row_per_target_and_cpu_class():
    runs = [_record("mnist-sprint", s, 0.991, 7.5 + s, None) for s in range(3)]
    runs += [_record("mnist-sprint", s, 0.9905, 9.0 + s, "AVX2") for s in range(3)]
    text = bench.report(runs, {"conv_best_gflops": 100.0, "matmul_gflops": 150.0,
                               "threads": 2, "runs": 5, "others_cpu": 0.0, "load_avg": 1.0})
    assert ("| MNIST 99% in <= 10 s | no native bf16 | Some CPU (avx2 avx512f avx512_bf16) "
            "| AVX2 | `ONEDNN_MAX_CPU_ISA=AVX2 convscope train --recipe mnist-sprint` | fp32 "
            "| 99.05 | 10.0 | met |") in text
    assert ("| MNIST 99% in <= 8 s | native bf16 | Some CPU (avx2 avx512f avx512_bf16) | none "
            "| `convscope train --recipe mnist-sprint` | bf16 | 99.10 | 8.5 | not met (8.5 s) |"
            ) in text
    assert "| `mnist-sprint` | AVX2 | 2 | 99.05 | - | 11.0 |" in text
    # the two classes are judged apart: the latest AVX2 runs do not replace the others
    assert len(bench.latest_runs(runs)) == 6


def test_time_run_limits_the_isa_and_records_the_cpu_class(monkeypatch, tmp_path: Path):
    seen = {}

    def fake_run(command, env, **_kwargs):
        out = Path(command[command.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps(
            {"test": {"accuracy": 0.99}, "environment": {"precision": "fp32"}}))
        (out / "metrics.jsonl").write_text(json.dumps({"seconds": 5.0,
                                                       "examples_per_s": 12000.0}) + "\n")
        seen["env"] = env
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.delenv(bench.ISA_ENV, raising=False)
    record = bench.time_run("mnist-sprint", 0, 2, None, isa_limit="AVX2")
    assert seen["env"][bench.ISA_ENV] == "AVX2" and seen["env"]["OMP_NUM_THREADS"] == "2"
    assert record["isa_limit"] == "AVX2" and record["native_bf16"] is False
    assert bench.cpu_class(record) == bench.NO_BF16
    assert "limited" not in record["cpu"]  # the CPU itself; the limit is its own column
    bench.time_run("mnist-sprint", 0, 2, None)
    assert bench.ISA_ENV not in seen["env"]
