"""Packaging: the extras match convscope.extras, the core works without any of them, the
licence files and metadata are there, the PyPI readme stands alone, and `python -m build`
makes a wheel and an sdist holding LICENSE and NOTICE."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from convscope import __version__
from convscope.extras import EXTRAS, package_of

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OPTIONAL = PROJECT["optional-dependencies"]
BUNDLED = ROOT / "convscope" / "bundled"
# Everything optional: the modules of every extra, and what only the tests or a log writer use.
BLOCKED = sorted({m for extra in EXTRAS.values() for m in extra.modules}
                 | {"onnxruntime", "tensorboard", "python_multipart"})


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in requirements}


def test_each_extra_of_convscope_extras_is_declared_with_its_pip_names():
    for name, extra in EXTRAS.items():
        assert _names(OPTIONAL[name]) == {package_of(m) for m in extra.modules}, name


def test_the_test_extra_brings_every_other_extra_and_the_test_tools():
    test = [Requirement(r) for r in OPTIONAL["test"]]
    itself = [r for r in test if r.name == "convscope"]
    assert itself and set(itself[0].extras) == set(EXTRAS)
    assert {"pytest", "ruff", "httpx", "playwright", "onnxruntime", "nbclient", "nbformat",
            "ipykernel", "build"} <= {r.name for r in test}


def test_the_core_declares_no_optional_package_and_torch_as_a_range():
    core = {Requirement(r).name.lower(): Requirement(r) for r in PROJECT["dependencies"]}
    assert set(core) == {"torch", "numpy", "pyyaml", "safetensors", "tqdm", "pillow"}
    torch = core["torch"].specifier
    assert not any(spec.operator == "==" for spec in torch)
    assert torch.contains("2.13.0") and torch.contains("2.14.1")  # a range, not one pin
    assert not torch.contains("2.15.0")  # only releases the suite has passed on


def test_constraints_pin_a_torch_inside_the_range_and_the_setup_uses_them():
    pins = [Requirement(line) for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    torch = next(r for r in pins if r.name == "torch")
    version = next(iter(torch.specifier)).version
    core = next(Requirement(r) for r in PROJECT["dependencies"] if r.startswith("torch"))
    assert core.specifier.contains(version)
    assert "-c constraints.txt" in (ROOT / "scripts" / "_env.sh").read_text()
    assert "-c constraints.txt" in (ROOT / "scripts" / "wheel_smoke.sh").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci and "scripts/wheel_smoke.sh" in ci


def test_metadata_licence_and_version():
    assert PROJECT["license"] == "MIT" and set(PROJECT["license-files"]) == {"LICENSE", "NOTICE"}
    assert PROJECT["authors"] and PROJECT["keywords"] and PROJECT["classifiers"]
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # SPDX instead
    assert "urls" not in PROJECT  # no project URL exists yet: none is invented
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "Copyright (c) 2026 the convscope developers" \
        in licence
    assert PROJECT["dynamic"] == ["version"] and __version__  # from convscope.__version__


def test_notice_names_every_bundled_sample_and_model_source_with_its_licence():
    notice = (ROOT / "NOTICE").read_text()
    for sample in (BUNDLED / "samples").iterdir():
        assert f"samples/{sample.name}" in notice, sample.name
    for model in (BUNDLED / "models").iterdir():
        prefix = model.name.split("-")[0]
        assert re.search(rf"\b{prefix}-", notice), model.name
    for licence in ("CC BY-SA 3.0", "CC BY-SA 4.0", "Krizhevsky", "Zohar Jackson", "LeCun"):
        assert licence in notice


def test_the_pypi_readme_has_no_relative_links_or_checkout_only_commands():
    readme = ROOT / PROJECT["readme"]
    assert readme != ROOT / "README.md"
    text = readme.read_text()
    links = re.findall(r"\]\(([^)]+)\)", text) + re.findall(r"<img[^>]+src=\"([^\"]+)", text)
    assert all(link.startswith("https://") for link in links), links
    for checkout_only in (".venv/", "scripts/", "bash ", "../"):
        assert checkout_only not in text, checkout_only
    assert "pip install convscope" in text and '"convscope[serve,plot]"' in text


def test_the_readme_keeps_its_two_newcomer_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert [b.strip() for b in blocks] == ["bash scripts/run.sh", "bash scripts/test.sh"]


CORE_ONLY = """
import json, sys
from pathlib import Path
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None  # as if not installed: import fails, find_spec gives None
tmp = Path(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from conftest import write_mnist
import numpy as np
from PIL import Image
import convscope
from convscope.cli import main

NET = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
       {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
       {"type": "pool", "sx": 2}, {"type": "softmax", "num_classes": 10}]
data = write_mnist(tmp / "data", train=200, test=50)
run = convscope.train(NET, "mnist", out=tmp / "run", data_dir=str(data), epochs=1,
                      batch_size=32, progress=False)
Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp / "digit.png")
(tmp / "w.onnx").write_bytes(b"not really onnx")
codes = {
    "eval": main(["eval", str(run.path), "--data-dir", str(data), "--json"]),
    "predict": main(["predict", str(run.path), str(tmp / "digit.png")]),
    "summary": main(["summary", "mnist-convnetjs"]),
    "serve": main(["serve", "--no-browser", "--port", "0"]),
    "export": main(["export", str(run.path), "--format", "onnx"]),
    "import-weights": main(["import-weights", "mnist-convnetjs", str(tmp / "w.onnx"),
                            "--out", str(tmp / "imported")]),
}
try:
    convscope.plot.confusion(run.evaluate())
    codes["plot"] = "drew"
except convscope.errors.ConvscopeError as error:
    codes["plot"] = str(error)
print(json.dumps({"accuracy": run.results["test"]["accuracy"], "codes": codes}))
"""


def test_the_core_trains_evaluates_predicts_without_any_extra(tmp_path: Path):
    env = {**os.environ, "CONVSCOPE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CORE_ONLY, json.dumps(BLOCKED), str(tmp_path),
                           str(ROOT / "tests")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    codes = result["codes"]
    assert 0 <= result["accuracy"] <= 1
    assert codes["eval"] == codes["predict"] == codes["summary"] == 0
    assert codes["serve"] == codes["export"] == codes["import-weights"] == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and "Traceback" not in done.stderr, done.stderr[-3000:]
    for line, extra in zip(errors, ("serve", "onnx", "onnx"), strict=True):
        assert line.endswith(f'pip install "convscope[{extra}]"'), line
    assert "convscope serve needs the fastapi package" in errors[0]
    assert codes["plot"].endswith('pip install "convscope[plot]"')


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` (sdist, then the wheel from it) into a temporary folder."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


@pytest.mark.slow
def test_the_wheel_holds_licence_notice_data_and_metadata(dist: Path):
    wheel = next(dist.glob(f"convscope-{__version__}-py3-none-any.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"convscope-{__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        notice = archive.read(f"{info}/licenses/NOTICE").decode()
    assert f"{info}/licenses/LICENSE" in names
    assert notice == (ROOT / "NOTICE").read_text()
    for path in ("convscope/bundled/README.md", "convscope/bundled/samples/mnist.npz",
                 "convscope/bundled/models/mnist-convnetjs/model.safetensors",
                 "convscope/static/index.html"):
        assert path in names, path
    assert "License-Expression: MIT" in metadata
    assert "pip install convscope" in metadata  # the PyPI readme is the long description
    core = [line for line in metadata.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not any(package in line for line in core for package in ("fastapi", "onnx"))


@pytest.mark.slow
def test_the_sdist_holds_licence_notice_docs_and_constraints(dist: Path):
    import tarfile

    with tarfile.open(next(dist.glob(f"convscope-{__version__}.tar.gz"))) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for path in ("LICENSE", "NOTICE", "constraints.txt", "docs/pypi.md", "docs/python.md",
                 "examples/chapter.ipynb", "pyproject.toml", "convscope/bundled/samples/fsdd"):
        assert path in names, path
