"""Precision follows the hardware (issue 18): "auto" (the default) is bf16 only where the device
computes it natively, a recipe states the precision it was tuned in, explicit bf16 without
native support warns, and every run records its CPU and the precision it computed in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_mnist

import convscope
from convscope import device
from convscope.config import TrainConfig
from convscope.device import autocast_for, precision_text, resolve_precision

CPU = torch.device("cpu")
TINY = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
        {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
        {"type": "pool", "sx": 2},
        {"type": "softmax", "num_classes": 10}]


@pytest.fixture
def squares(tmp_path: Path, data_cache: Path) -> Path:
    return write_mnist(tmp_path / "data", train=300, test=100)


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch):
    """Set whether this CPU counts as computing bf16 natively."""
    return lambda yes: monkeypatch.setattr(device, "native_bf16", lambda _device: yes)


def test_auto_is_the_default_and_picks_bf16_only_where_native(native):
    assert TrainConfig().precision == "auto"
    net = torch.nn.Linear(4, 2)
    native(False)
    assert resolve_precision("auto", CPU) == "fp32"
    with autocast_for("auto", net):
        assert net(torch.ones(1, 4)).dtype == torch.float32
    native(True)
    assert resolve_precision("auto", CPU) == "bf16"
    with autocast_for("auto", net):
        assert net(torch.ones(1, 4)).dtype == torch.bfloat16
    assert resolve_precision("fp32", CPU) == "fp32"  # explicit choices stay


def test_native_bf16_needs_bf16_instructions_and_an_isa_limit_that_allows_them(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)

    def native_with(flags: list[str] | None, limit: str | None = None) -> bool:
        monkeypatch.setattr(device, "cpu_info", lambda: {"model": "x", "flags": flags})
        if limit:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
        device._cpu_native_bf16.cache_clear()
        return device._cpu_native_bf16()

    try:
        assert native_with(["avx2", "avx512f", "avx512_bf16"])
        assert native_with(["avx2", "amx_bf16"])
        assert not native_with(["avx2", "avx512f"])  # oneDNN says yes, but emulates it
        assert native_with(None)  # no /proc/cpuinfo: oneDNN's word
        assert not native_with(["avx512f", "avx512_bf16"], "avx2")
        assert not native_with(["avx512f", "avx512_bf16"], "AVX512_CORE")
        assert native_with(["avx512f", "avx512_bf16"], "AVX512_CORE_AMX")
    finally:
        device._cpu_native_bf16.cache_clear()


def test_auto_picks_fp32_under_onednn_limited_to_avx2():
    code = ("import torch; from convscope.device import resolve_precision; "
            "print(resolve_precision('auto', torch.device('cpu')), "
            "torch.ops.mkldnn._is_mkldnn_bf16_supported())")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["fp32", "False"]  # oneDNN itself honours the limit too


def test_cpu_info_never_fails():
    info = device.cpu_info()
    assert isinstance(info["model"], str)
    assert info["flags"] is None or set(info["flags"]) <= set(device.CPU_FLAGS)


def test_precision_text_says_when_auto_leaves_the_tuned_precision(native):
    native(False)
    assert precision_text("auto", CPU, "bf16") == \
        "fp32 (auto: this CPU has no native bf16; the recipe was tuned in bf16)"
    assert precision_text("auto", CPU) == "fp32"
    assert precision_text("fp32", CPU, "fp32") == "fp32"
    native(True)
    assert precision_text("auto", CPU, "bf16") == "bf16"
    assert precision_text("fp32", CPU, "bf16") == "fp32 (the recipe was tuned in bf16)"


def test_the_start_line_names_the_change_and_the_run_records_cpu_and_precision(
        squares: Path, tmp_path: Path, capsys, native):
    native(False)
    run = convscope.train(TINY, "mnist", out=tmp_path / "run", data_dir=str(squares),
                          tuned_precision="bf16", progress=True)
    out = capsys.readouterr()
    assert ("of 64, fp32 (auto: this CPU has no native bf16; the recipe was tuned in bf16), "
            "on the CPU") in out.out
    assert "warning" not in out.err
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    results = json.loads((run.path / "results.json").read_text())
    assert config["train"]["precision"] == "auto"
    assert config["train"]["tuned_precision"] == "bf16"
    for environment in (config["environment"], results["environment"]):
        assert environment["precision"] == "fp32"
        assert environment["cpu"] == device.cpu_info()
        assert environment["torch"] == str(torch.__version__)


def test_a_recipe_tuned_in_bf16_runs_in_auto(squares: Path, tmp_path: Path):
    run = convscope.train("mnist-sprint", "mnist", out=tmp_path / "run", data_dir=str(squares),
                          epochs=1, progress=False)
    assert run.config.precision == "auto" and run.config.tuned_precision == "bf16"


def test_explicit_bf16_without_native_support_warns_of_the_slowdown(
        squares: Path, tmp_path: Path, capsys, native):
    native(False)
    convscope.train(TINY, "mnist", out=tmp_path / "run", data_dir=str(squares),
                    precision="bf16", progress=False)
    err = capsys.readouterr().err
    assert "--precision bf16" in err and "about 9x slower than fp32" in err
    native(True)
    convscope.train(TINY, "mnist", out=tmp_path / "run2", data_dir=str(squares),
                    precision="bf16", progress=False)
    assert "warning" not in capsys.readouterr().err


def test_eval_scores_a_bf16_run_in_fp32_where_bf16_is_not_native(
        squares: Path, tmp_path: Path, data_cache: Path, native):
    native(False)
    convscope.train(TINY, "mnist", out=tmp_path / "run", data_dir=str(squares),
                    precision="bf16", progress=False)
    env = {**os.environ, "CONVSCOPE_CACHE": str(data_cache), "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-m", "convscope", "eval", str(tmp_path / "run")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "fp32 (trained in bf16; this machine has no native bf16)" in out.stdout
    out = subprocess.run([sys.executable, "-m", "convscope", "eval", str(tmp_path / "run"),
                          "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert json.loads(out.stdout)["arithmetic"] == "fp32"  # "precision" is per class


def _stop_after(steps: int):
    seen = []

    def on_event(event: dict):
        seen.append(event)
        return not (event["kind"] == "step" and len(seen) == steps)
    return on_event


def test_an_auto_run_in_bf16_resumes_to_identical_weights(squares: Path, tmp_path: Path,
                                                          native):
    native(True)  # auto computes in bf16 (emulated where the CPU lacks it: still exact)
    settings = dict(data_dir=str(squares), epochs=2, batch_size=32, progress=False)
    whole = convscope.train(TINY, "mnist", out=tmp_path / "whole", **settings)
    convscope.train(TINY, "mnist", out=tmp_path / "cut", on_event=_stop_after(5), **settings)
    resumed = convscope.resume(tmp_path / "cut", progress=False)
    assert yaml.safe_load((tmp_path / "cut" / "config.yaml").read_text())[
        "environment"]["precision"] == "bf16"
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
