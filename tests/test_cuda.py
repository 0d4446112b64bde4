"""``--device cuda``: a GPU run keeps its batches and model on the GPU and trains like the same
run on the CPU; bf16 autocast with every airbench trick learns and resumes there; every
registered model computes on the GPU what it computes on the CPU. Skipped where PyTorch sees no
GPU (as in CI): run ``pytest tests/test_cuda.py`` on a machine with one."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_distributed import NET
from test_training_tricks import SETTINGS, TRICKS

import convscope
import convscope.batches as batches_module
from convscope.cli import main
from convscope.errors import ConvscopeError
from convscope.model import build_model
from convscope.probes import activations
from convscope.registry import get_model_entry, list_models

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="PyTorch sees no CUDA GPU on this machine"),
              pytest.mark.usefixtures("gpu")]


@pytest.fixture
def exact_fp32() -> Iterator[None]:
    """fp32 without TF32 and with deterministic kernels, so that GPU results compare closely
    with CPU ones and between runs."""
    flags = [(torch.backends.cuda.matmul, "allow_tf32", False),
             (torch.backends.cudnn, "allow_tf32", False),
             (torch.backends.cudnn, "deterministic", True),
             (torch.backends.cudnn, "benchmark", False)]
    saved = [getattr(owner, name) for owner, name, _ in flags]
    for owner, name, value in flags:
        setattr(owner, name, value)
    yield
    for (owner, name, _), value in zip(flags, saved, strict=True):
        setattr(owner, name, value)


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.mark.parametrize("name", [entry.name for entry in list_models()])
def test_every_registered_model_computes_on_the_gpu_what_it_computes_on_the_cpu(
        name: str, exact_fp32: None):
    torch.manual_seed(0)
    net = build_model(get_model_entry(name).spec).eval()
    x = torch.randn(3, *net.input_volume.shape)
    cpu = activations(net, x)
    gpu = activations(net.to("cuda"), x)  # the probes move the input to the model's device
    for layer, a, b in zip(net.layers, cpu, gpu, strict=True):
        assert b.device.type == "cpu"  # what the explorer's views read
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (layer, (a - b).abs().max())


def test_a_gpu_run_keeps_its_batches_on_the_gpu_and_trains_like_a_cpu_run(
        fake_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exact_fp32: None):
    batches = []  # the device of every chunk of training batches the trainer prepares
    prepare = batches_module.augmented
    monkeypatch.setattr(batches_module, "augmented", lambda images, *args: (
        batches.append(images.device.type) or prepare(images, *args)))
    settings = dict(data_dir=str(fake_data[0]), epochs=2, batch_size=6, optimizer="sgd",
                    lr=0.05, momentum=0.9, seed=1, progress=False)
    cpu = convscope.train(NET, "mnist", out=tmp_path / "cpu", device="cpu", **settings)
    batches.clear()
    gpu = convscope.train(NET, "mnist", out=tmp_path / "gpu", device="cuda", **settings)
    assert set(batches) == {"cuda"}  # 18 images, 3 steps per epoch
    assert gpu.config.device == "cuda"
    weights = [load_file(str(run.path / "model.safetensors")) for run in (cpu, gpu)]
    assert _max_difference(*weights) < 1e-4
    for one, two in zip(cpu.metrics, gpu.metrics, strict=True):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)


def test_bf16_with_every_trick_learns_and_resumes_on_the_gpu(digits: Path, tmp_path: Path,
                                                             exact_fp32: None):
    settings = dict(SETTINGS, precision="bf16", device="cuda", data_dir=str(digits),
                    progress=False)
    torch.manual_seed(SETTINGS["seed"])
    net = build_model(TRICKS)  # the weights train() builds from TRICKS with this seed
    seen = set()
    net.blocks[3].register_forward_hook(  # the dirac conv
        lambda module, args, out: seen.add((module.training, out.device.type, out.dtype)))
    whole = convscope.train(net, "mnist", out=tmp_path / "whole", **settings)
    assert (True, "cuda", torch.bfloat16) in seen  # training steps run under bf16 autocast
    assert (False, "cuda", torch.bfloat16) in seen  # and so does scoring
    assert whole.results["test"]["accuracy"] > 0.9

    stop = lambda event: not (event["kind"] == "step" and event["epoch"] == 1  # noqa: E731
                              and event["step"] == 7)
    stopped = convscope.train(TRICKS, "mnist", out=tmp_path / "stopped", on_event=stop,
                              **settings)
    assert stopped.results is None
    resumed = convscope.resume(stopped.path, progress=False)
    weights = [load_file(str(run.path / "model.safetensors")) for run in (whole, resumed)]
    assert _max_difference(*weights) < 1e-4

    with contextlib.redirect_stdout(io.StringIO()) as text:  # eval of a GPU run
        assert main(["eval", str(whole.path), "--json"]) == 0
    result = json.loads(text.getvalue())
    assert result["accuracy"] == pytest.approx(whole.results["test"]["accuracy"], abs=0.01)


@pytest.mark.skipif(torch.cuda.device_count() > 1, reason="needs a machine with one GPU")
def test_more_processes_than_gpus_is_refused_with_the_fix(fake_data, tmp_path: Path):
    with pytest.raises(ConvscopeError, match="GPU"):
        convscope.train(NET, "mnist", out=tmp_path / "two", device="cuda", nproc=2,
                        data_dir=str(fake_data[0]), epochs=1, batch_size=6, progress=False)
