"""Training end to end on small learnable data in the official MNIST format, and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_mnist
from safetensors import safe_open
from safetensors.torch import load_file

import convscope
from convscope import batches
from convscope.augment import AUGMENTATIONS, alternating_flips, fit_batch, to_input
from convscope.config import TrainConfig
from convscope.errors import ConvscopeError, RunError

TINY = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
        {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
        {"type": "pool", "sx": 2},
        {"type": "dropout", "drop_prob": 0.2},
        {"type": "softmax", "num_classes": 10}]


@pytest.fixture
def squares(tmp_path: Path, data_cache: Path) -> Path:
    return write_mnist(tmp_path / "data", train=600, test=200)


def test_train_writes_a_complete_run(squares: Path, tmp_path: Path):
    run = convscope.train(TINY and convscope.build_model(TINY), "mnist", out=tmp_path / "run",
                          data_dir=str(squares), epochs=2, batch_size=16, lr=0.01,
                          optimizer="adam", progress=False)
    files = sorted(p.name for p in run.path.iterdir()
                   if p.name not in ("confusion.png", "curves.png"))  # with matplotlib
    assert files == ["checkpoint.safetensors", "config.yaml", "metrics.jsonl",
                     "model.safetensors", "results.json", "steps.jsonl"]
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    assert config["train"]["epochs"] == 2 and config["train"]["augment"] == "shift"
    assert config["model"]["spec"] == TINY
    assert config["data"]["train"] == 540 and config["data"]["val"] == 60
    lines = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert {"train_loss", "train_acc", "val_acc", "examples_per_s"} <= set(lines[0])
    assert run.results["test"]["accuracy"] > 0.9  # a trivial task: the loop must learn it
    assert run.results["test"]["total"] == 200

    loaded = convscope.load_run(run.path)
    test = convscope.load_dataset("mnist", "test", data_dir=squares)
    again = convscope.evaluate(loaded.model, test)
    assert again.confusion == run.results["test"]["confusion"]


def _train_cli(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "convscope", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _position(checkpoint: Path) -> dict | None:
    try:
        with safe_open(str(checkpoint), framework="pt") as f:
            return json.loads(f.metadata()["meta"])["position"]
    except Exception:
        return None


@pytest.mark.slow
def test_resume_after_kill_9_reaches_identical_weights(tmp_path: Path, data_cache: Path):
    data = write_mnist(tmp_path / "data", train=3000, test=100)
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(TINY))
    env = {**os.environ, "CONVSCOPE_CACHE": str(data_cache), "OMP_NUM_THREADS": "1"}
    common = ["--model", str(spec), "--data", "mnist", "--data-dir", str(data),
              "--epochs", "2", "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.02",
              "--checkpoint-every", "25", "--seed", "7"]

    whole = _train_cli([*common, "--out", str(tmp_path / "whole")], env)
    assert whole.wait(timeout=300) == 0, whole.stdout.read()

    killed = _train_cli([*common, "--out", str(tmp_path / "killed")], env)
    checkpoint = tmp_path / "killed" / "checkpoint.safetensors"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill -9 in the middle of the second epoch
        position = _position(checkpoint) if checkpoint.exists() else None
        if position and position["epoch"] == 1 and position["step"] >= 50:
            break
        assert killed.poll() is None, "training ended before it could be killed"
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    position = _position(checkpoint)
    assert position["epoch"] == 1 and 0 < position["step"] < 375

    resumed = subprocess.run([sys.executable, "-m", "convscope", "train", "--resume",
                              str(tmp_path / "killed")], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming" in resumed.stdout

    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    metrics = [[json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
               for d in ("whole", "killed")]
    strip = [[{k: v for k, v in m.items() if k not in ("seconds", "examples_per_s")}
              for m in ms] for ms in metrics]
    assert strip[0] == strip[1] and len(strip[0]) == 2


def test_existing_run_dir_is_not_overwritten(squares: Path, tmp_path: Path):
    kwargs = dict(out=tmp_path / "run", data_dir=str(squares), epochs=1, progress=False)
    convscope.train(convscope.build_model(TINY), "mnist", **kwargs)
    with pytest.raises(RunError, match="already holds a run"):
        convscope.train(convscope.build_model(TINY), "mnist", **kwargs)
    with pytest.raises(RunError, match="already finished"):
        convscope.resume(tmp_path / "run")


def test_model_and_data_must_agree(squares: Path, tmp_path: Path):
    with pytest.raises(ConvscopeError, match="3-channel input but the data has 1"):
        convscope.train("cifar10-convnetjs", "mnist", out=tmp_path / "r", data_dir=str(squares),
                        progress=False)
    five = TINY[:-1] + [{"type": "softmax", "num_classes": 5}]
    with pytest.raises(ConvscopeError, match="data has 10 classes"):
        convscope.train(convscope.build_model(five), "mnist", out=tmp_path / "r2",
                        data_dir=str(squares), progress=False)


def test_user_module_trains_and_reloads(squares: Path, tmp_path: Path):
    source = tmp_path / "mine.py"
    source.write_text("import torch\n\ndef make():\n    return torch.nn.Sequential("
                      "torch.nn.Flatten(), torch.nn.Linear(784, 10))\n")
    run = convscope.train(f"{source}:make", "mnist", out=tmp_path / "run",
                          data_dir=str(squares), epochs=1, lr=0.01, progress=False)
    assert run.model_info["kind"] == "module"
    assert convscope.load_run(run.path, trust_code=True).model[1].weight.shape == (10, 784)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_eval_json_and_text(squares: Path, tmp_path: Path, data_cache: Path):
    convscope.train(convscope.build_model(TINY), "mnist", out=tmp_path / "run",
                    data_dir=str(squares), epochs=1, progress=False)
    env = {**os.environ, "CONVSCOPE_CACHE": str(data_cache)}
    out = _cli("eval", str(tmp_path / "run"), "--json", env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["total"] == 200 and len(report["confusion"]) == 10
    assert sum(map(sum, report["confusion"])) == 200
    text = _cli("eval", str(tmp_path / "run"), env=env)
    assert "confusion matrix" in text.stdout and "recall%" in text.stdout


def test_cli_reports_errors_without_traceback(tmp_path: Path):
    out = _cli("train", "--model", "lenet6", "--out", str(tmp_path / "r"))
    assert out.returncode == 2
    assert "cannot resolve model 'lenet6'" in out.stderr and "did you mean 'lenet5'" in out.stderr
    assert "Traceback" not in out.stderr
    out = _cli("eval", str(tmp_path))
    assert out.returncode == 2 and "not a convscope run directory" in out.stderr


def test_a_run_says_what_it_trains_and_where(squares: Path, tmp_path: Path, capsys):
    convscope.train(convscope.build_model(TINY), "mnist", out=tmp_path / "run",
                    data_dir=str(squares), epochs=1, batch_size=16, progress=True)
    assert (f"training the given network on mnist: 540 examples (60 held out for validation), "
            f"1 epoch of 33 steps of 16, fp32, on the CPU ({torch.get_num_threads()} thread"
            ) in capsys.readouterr().out


def test_asking_for_a_gpu_where_there_is_none_names_the_fix(squares: Path, tmp_path: Path):
    # conftest's cpu_only hides any GPU, here and from the CLI's process
    with pytest.raises(ConvscopeError, match="sees no GPU; use --device cpu"):
        convscope.train("lenet5", "mnist", out=tmp_path / "r", data_dir=str(squares),
                        device="cuda", progress=False)
    out = _cli("train", "--model", "lenet5", "--data-dir", str(squares), "--device", "cuda",
               "--out", str(tmp_path / "cli"))
    assert out.returncode == 2 and "sees no GPU; use --device cpu" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.realdata
def test_convnetjs_mnist_net_reaches_97_percent_in_one_epoch(real_data_dir: Path, tmp_path):
    run = convscope.train("mnist-convnetjs", "mnist", out=tmp_path / "run", epochs=1,
                          data_dir=str(real_data_dir), progress=False)
    assert run.results["test"]["total"] == 10_000
    assert run.results["test"]["accuracy"] >= 0.97


def test_on_event_streams_steps_and_can_stop_the_run(squares: Path, tmp_path: Path):
    events = []

    def watch(event: dict) -> bool:
        events.append({k: v for k, v in event.items() if k != "model"})
        return not (event["kind"] == "step" and event["epoch"] == 1 and event["step"] == 3)

    run = convscope.train(convscope.build_model(TINY), "mnist", out=tmp_path / "run",
                          data_dir=str(squares), epochs=3, batch_size=16, progress=False,
                          on_event=watch)
    kinds = [e["kind"] for e in events]
    assert kinds.count("epoch") == 1 and kinds[-1] == "step"
    assert events[0]["steps_per_epoch"] == 33 and 0 <= events[0]["accuracy"] <= 1
    assert run.results is None and (run.path / "model.safetensors").exists()
    finished = convscope.resume(run.path, progress=False)  # a stopped run can be resumed
    assert finished.results["test"]["total"] == 200
    assert len(finished.metrics) == 3


def test_a_spec_list_trains_reproducibly(squares: Path, tmp_path: Path):
    runs = [convscope.train(TINY, "mnist", out=tmp_path / f"run{i}", data_dir=str(squares),
                            epochs=1, progress=False, seed=3) for i in range(2)]
    weights = [load_file(str(r.path / "model.safetensors")) for r in runs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("augment", list(AUGMENTATIONS))
def test_batches_made_in_chunks_are_those_of_single_steps(augment: str,
                                                           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(batches, "CHUNK_BYTES", 3 * (4 * 3 * 8 * 8 * 5))  # 3 steps of 5 images
    images = torch.randint(0, 256, (40, 3, 10, 10), dtype=torch.uint8)
    config = TrainConfig(batch_size=5, augment=augment, seed=7)
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    alternate = AUGMENTATIONS[augment][1] == "alternate"
    first_flips = torch.rand(40, generator=torch.Generator().manual_seed(1)) < 0.5 \
        if alternate else None
    epoch, steps = 1, range(2, 7)  # resumed at step 2: a chunk of 3 steps, then one of 2
    made = list(batches.training_batches(images, order, config, epoch, steps, (8, 8), first_flips))
    assert len(made) == len(steps)
    for step, (index, x) in zip(steps, made, strict=True):
        assert torch.equal(index, order[step * 5:(step + 1) * 5])
        flips = alternating_flips(first_flips[index], epoch) if alternate else None
        alone = fit_batch(images[index], 8, 8, augment, batches.generator(7, epoch, step), flips)
        assert torch.equal(x, to_input(alone))
        assert x.is_contiguous(memory_format=torch.channels_last)
