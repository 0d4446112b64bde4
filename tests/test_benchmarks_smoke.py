"""The harness of benchmarks/speed_side_by_side.py: specs become ConvNetJS layer_defs, images
are written in ConvNetJS's Vol order, the trainer's own clock is summed over epochs, and
convnetjs_train.js trains ConvNetJS's MNIST demo net under node on the Python side's images.
And benchmarks/load.py runs end to end, briefly."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import load as load_bench  # noqa: E402
import optimizer_step  # noqa: E402
import speed_side_by_side as bench  # noqa: E402
from _report import read_records  # noqa: E402

from convscope.bundle import bundled_model_dirs  # noqa: E402
from convscope.errors import ConvscopeError  # noqa: E402
from convscope.registry import get_model_entry  # noqa: E402
from convscope.spec import resolve  # noqa: E402


@pytest.fixture(scope="module")
def convnetjs_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark's npm install into a temp dir (skip without node, npm or the registry)."""
    if not shutil.which("node"):
        pytest.skip("node is needed to run ConvNetJS itself")
    try:
        return bench.install_convnetjs(tmp_path_factory.mktemp("npm"))
    except ConvscopeError as exc:
        pytest.skip(str(exc))


def learnable_images(count: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 1, side, side) images: class k is a bright 6x6 square at its own spot."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(count) % 10
    images = torch.randint(0, 60, (count, 1, side, side), generator=generator, dtype=torch.uint8)
    for i, k in enumerate(labels.tolist()):
        y, x = 1 + 8 * (k // 3), 1 + 7 * (k % 3)
        images[i, 0, y:y + 6, x:x + 6] = 255
    return images, labels


def test_layer_defs_are_convnetjs_vocabulary():
    spec = get_model_entry("cifar10-convnetjs").spec
    defs = bench.convnetjs_layer_defs(spec)
    assert defs[0] == {"type": "input", "out_sx": 32, "out_sy": 32, "out_depth": 3}
    assert defs[1:] == spec[1:]
    for layer, message in [
        ({"type": "pool", "sx": 2, "kind": "avg"}, "layer 2 (pool): ConvNetJS has no kind avg"),
        ({"type": "conv", "sx": 3, "filters": 2, "bias": False}, "(conv): ConvNetJS has no bias"),
        ({"type": "batchnorm"}, "layer 2 (batchnorm): ConvNetJS has no batchnorm layer"),
    ]:
        with pytest.raises(ConvscopeError, match=re.escape(message)):
            bench.convnetjs_layer_defs([spec[0], spec[1], layer, spec[-1]])


def test_images_are_written_in_vol_order(tmp_path: Path):
    images = torch.arange(2 * 3 * 2 * 4, dtype=torch.uint8).reshape(2, 3, 2, 4)  # N, C, H, W
    images_path, labels_path = bench.write_convnetjs_data(images, torch.tensor([7, 2]), tmp_path)
    data = images_path.read_bytes()
    n, c, y, x = 1, 2, 1, 3
    assert data[n * 24 + (4 * y + x) * 3 + c] == images[n, c, y, x]  # ((sx*y)+x)*depth+d
    assert len(data) == 48 and labels_path.read_bytes() == bytes([7, 2])


def test_trainer_clock_sums_the_trainers_tallies_over_epochs():
    clock = bench.TrainerClock(steps=3, batch_size=10)
    assert clock({"kind": "step", "step": 1, "examples_per_s": 50.0}) is True
    assert clock({"kind": "epoch", "seconds": 2.0, "examples_per_s": 50.0}) is True
    assert clock({"kind": "step", "step": 1, "examples_per_s": 20.0}) is True
    assert clock({"kind": "step", "step": 2, "examples_per_s": 25.0}) is False  # 3 steps done
    assert clock.examples_per_s == pytest.approx((100 + 20) / (2.0 + 0.8))


def test_convnetjs_trains_the_mnist_demo_net(convnetjs_module: Path, tmp_path: Path):
    spec = get_model_entry("mnist-convnetjs").spec
    images, labels = learnable_images(40, 24)
    result = bench.run_convnetjs(convnetjs_module, bench.convnetjs_layer_defs(spec),
                                 bench.DEMO_TRAINERS["mnist-convnetjs"], images, labels, 400,
                                 tmp_path)
    assert result["examples"] == 400 and result["examples_per_s"] > 0
    assert result["params"] == sum(layer.num_params for layer in resolve(spec)) == 5994
    assert math.isfinite(result["loss_first"]) and result["loss_last"] < result["loss_first"] / 2


def test_load_benchmark_runs_against_a_real_server(tmp_path: Path):
    """benchmarks/load.py for a second: a real `convscope serve`, four clients, a record."""
    if "mnist-convnetjs" not in bundled_model_dirs():
        pytest.skip("the bundled models are not installed")
    log = tmp_path / "load.jsonl"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "load.py"
    done = subprocess.run([sys.executable, str(script), "--seconds", "1", "--clients", "4",
                           "--warmup", "0.3", "--layers", "one", "--log", str(log)],
                          capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| layers per request | requests/s | p50 ms | p99 ms |" in done.stdout
    record = read_records(log)[-1]
    assert record["requests"] > 0 and record["errors"] == 0, record
    assert record["server_peak_mib"] > 0 and record["client_cpu_s"] >= 0
    assert set(record["models"]) == set(load_bench.MODELS)


def test_optimizer_step_benchmark_times_every_way_from_the_same_start():
    row = optimizer_step.measure("mnist-convnetjs", steps=3, repeats=1)
    assert all(row[way] > 0 for way in optimizer_step.WAYS)
    _, _, flat_net = optimizer_step.optimizer_for("flat", "mnist-convnetjs")
    fused, _, fused_net = optimizer_step.optimizer_for("flat over fused", "mnist-convnetjs")
    assert optimizer_step.same_weights(flat_net, fused_net)  # the same start
    fused.step()
    assert not optimizer_step.same_weights(flat_net, fused_net)  # the check can fail
    assert "| mnist-convnetjs | sgd | 5,994 | 1 |" in optimizer_step.report([row], 3, 1)
