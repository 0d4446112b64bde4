"""docs/python.md runs: every ```python block in order, in one namespace, as a reader would
(on small learnable MNIST-format files; blocks marked ``<!-- docs-test: plot -->`` need
matplotlib, ``<!-- docs-test: real-data -->`` the real datasets in $CONVSCOPE_DATA)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from conftest import real_dir, write_mnist

import convscope

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"
BLOCK = re.compile(r"(?:<!-- docs-test: ([\w-]+) -->\n)?```python\n(.*?)^```", re.S | re.M)
MARKERS = {None, "plot", "real-data"}


def _blocks() -> list[tuple[int, str | None, str]]:
    text = DOC.read_text(encoding="utf-8")
    blocks = [(text.count("\n", 0, m.start(2)) + 1, m.group(1), m.group(2))
              for m in BLOCK.finditer(text)]
    assert len(blocks) == text.count("```python") and blocks
    assert {marker for _, marker, _ in blocks} <= MARKERS
    return blocks


def _run(blocks: list[tuple[int, str | None, str]], namespace: dict) -> None:
    for line, _, code in blocks:  # a failure names the block's line in python.md
        exec(compile(code, f"{DOC}:{line}", "exec"), namespace)  # noqa: S102


def test_every_example_runs(tmp_path: Path, data_cache: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture):
    data = write_mnist(tmp_path / "data", train=600, test=200)
    monkeypatch.setenv("CONVSCOPE_DATA", str(data))
    monkeypatch.chdir(tmp_path)
    plotting = importlib.util.find_spec("matplotlib") is not None
    wanted = [b for b in _blocks() if b[1] is None or b[1] == "plot" and plotting]
    namespace: dict = {"__name__": "__docs__"}
    _run(wanted, namespace)
    out = capsys.readouterr().out
    assert "Run('runs/first': mnist-convnetjs on mnist, 2 epochs, test accuracy" in out
    assert isinstance(namespace["run"], convscope.Run) and namespace["losses"]
    assert namespace["run"].steps and namespace["evaluation"].total == 200
    for name in ("results.csv", "report.html", "steps.jsonl"):
        assert (tmp_path / "runs" / "first" / name).is_file()
    assert (tmp_path / "filters.png").is_file() == plotting


def test_the_real_data_examples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CONVSCOPE_DATA", str(real_dir("mnist")))  # (skips without it)
    monkeypatch.chdir(tmp_path)
    _run([b for b in _blocks() if b[1] == "real-data"], {"__name__": "__docs__"})
