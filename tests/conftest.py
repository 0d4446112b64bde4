"""Shared fixtures: the CPU as every test's device (tests/test_cuda.py excepted), an isolated
decoded cache and small data files in official formats."""

from __future__ import annotations

import gzip
import os
import struct
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from convscope import device
from convscope.data import DATASETS

_SEES_GPU = torch.cuda.is_available  # the real check, for the ``gpu`` fixture


@pytest.fixture(scope="session", autouse=True)
def cpu_only():
    """The suite checks the CPU path, whose results are exact and repeatable; tests/test_cuda.py
    checks the GPU path through the ``gpu`` fixture. On a machine with a GPU, hide it from the
    other tests and the processes they start, so that device "auto" means the CPU there too.
    bf16 counts as emulated there too (as on most CPUs), so precision "auto" means fp32: the
    tests that check auto's bf16 side say so (``native_bf16`` patched back)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "is_available", lambda: False)
        mp.setenv("CUDA_VISIBLE_DEVICES", "")
        mp.setattr(device, "native_bf16", lambda _device: False)
        mp.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # no native bf16, fp32 kernels as fast
        yield


@pytest.fixture(scope="session", autouse=True)
def small_cifar_batches():
    """Tests write CIFAR-10 batches of a few records: the reader's check that a batch holds
    exactly 10,000 records is off for them (tests/test_hostile_datafiles.py turns it on)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("convscope.data.cifar.BATCH_RECORDS", None)
        yield


@pytest.fixture(scope="session", autouse=True)
def local_test_client():
    """Test clients speak as a browser on this machine does: ``Host: 127.0.0.1`` instead of
    Starlette's ``testserver``, a name the explorer refuses (server/origin.py), for requests
    and WebSockets alike (Starlette puts a WebSocket's relative URL on testserver whatever the
    base URL). A test that passes ``base_url`` gets its own."""
    from starlette.testclient import TestClient

    init, connect = TestClient.__init__, TestClient.websocket_connect

    def local_init(self, app, base_url: str = "http://127.0.0.1", *args, **kwargs) -> None:
        init(self, app, base_url, *args, **kwargs)

    def on_base_url(self, url: str, *args, **kwargs):
        return connect(self, str(self.base_url.copy_with(scheme="ws").join(url)), *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TestClient, "__init__", local_init)
        mp.setattr(TestClient, "websocket_connect", on_base_url)
        yield


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo ``cpu_only`` for one test: the GPU is visible to it and its processes."""
    monkeypatch.setattr(torch.cuda, "is_available", _SEES_GPU)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def write_clip(path: Path, samples: np.ndarray, rate: int = 8000) -> None:
    """A mono 16-bit WAV of ``samples`` (floats in [-1, 1]), as FSDD's recordings are."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.round(samples * 32767).astype("<i2").tobytes())


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file (uint8 data) for ``array``: magic 0x0000080<ndim>, big-endian dims, data."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary records: one label byte, then the 3x32x32 RGB planes."""
    return np.concatenate([labels[:, None], images.reshape(len(images), -1)], axis=1).tobytes()


@pytest.fixture
def data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the decoded-array cache at a temp dir and clear any download URL override."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CONVSCOPE_CACHE", str(cache))
    monkeypatch.delenv("CONVSCOPE_DOWNLOAD_URL", raising=False)
    return cache


@pytest.fixture
def fake_data(tmp_path: Path, data_cache: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A data dir with small MNIST (20 train, 10 test) and CIFAR-10 (30 train, 10 test) files.

    Returns the data dir and the arrays written, keyed like ``"mnist-train-images"``.
    """
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    (root / "cifar-10-batches-bin").mkdir()
    arrays = {}
    for split, prefix, n in (("train", "train", 20), ("test", "t10k", 10)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        for kind, array, dims in (("images", images, "idx3"), ("labels", labels, "idx1")):
            path = root / "mnist" / f"{prefix}-{kind}-{dims}-ubyte.gz"
            path.write_bytes(gzip.compress(idx_bytes(array)))
            arrays[f"mnist-{split}-{kind}"] = array
    cifar = root / "cifar-10-batches-bin"
    for split, names, n in (
        ("train", [f"data_batch_{i}.bin" for i in range(1, 6)], 30),
        ("test", ["test_batch.bin"], 10),
    ):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = (np.arange(n, dtype=np.uint8) * 7) % 10
        per = n // len(names)
        for i, name in enumerate(names):
            part = slice(i * per, (i + 1) * per)
            (cifar / name).write_bytes(cifar_bytes(images[part], labels[part]))
        arrays[f"cifar10-{split}-images"] = images
        arrays[f"cifar10-{split}-labels"] = labels
    (cifar / "batches.meta.txt").write_text(
        "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"
    )
    return root, arrays


def patch_source(monkeypatch: pytest.MonkeyPatch, name: str, **changes) -> None:
    """Change fields of catalogued dataset ``name``'s download spec for one test."""
    entry = DATASETS[name]
    monkeypatch.setitem(DATASETS, name, replace(entry, source=replace(entry.source, **changes)))


def real_dir(name: str) -> Path:
    """The data dir ($CONVSCOPE_DATA) holding every file of dataset ``name``, or skip the test."""
    root = os.environ.get("CONVSCOPE_DATA")
    if not root:
        pytest.skip("CONVSCOPE_DATA is not set: no real data to test against")
    spec = DATASETS[name].source
    needed = [n for split in spec.splits.values() for n in split]
    missing = [n for n in needed if not (Path(root) / spec.folder / n).is_file()]
    if missing:
        pytest.skip(f"{root}/{spec.folder} lacks {', '.join(missing)}")
    return Path(root)


@pytest.fixture
def real_data_dir() -> Path:
    """The real-data directory with MNIST in it (skips without it)."""
    return real_dir("mnist")


def write_mnist(root: Path, train: int, test: int, seed: int = 0) -> Path:
    """Learnable MNIST-format files: class k is a bright 6x6 square at a class-specific spot."""
    rng = np.random.default_rng(seed)
    (root / "mnist").mkdir(parents=True)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            y, x = 2 + 8 * (k // 4), 2 + 7 * (k % 4)
            images[i, y:y + 6, x:x + 6] = 255
        for kind, array, dims in (("images", images, "idx3"), ("labels", labels, "idx1")):
            path = root / "mnist" / f"{prefix}-{kind}-{dims}-ubyte.gz"
            path.write_bytes(gzip.compress(idx_bytes(array), compresslevel=1))
    return root


@pytest.fixture
def digits(tmp_path: Path, data_cache: Path) -> Path:
    """MNIST-format files that mirroring keeps learnable: class k is a band of rows (k // 2)
    holding one centred square (k even) or two squares mirroring each other (k odd)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    for prefix, n in (("train", 600), ("t10k", 200)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            y = 1 + 5 * (k // 2)
            for x in ((11,) if k % 2 == 0 else (2, 20)):
                images[i, y:y + 6, x:x + 6] = 255
        for kind, array, dims in (("images", images, "idx3"), ("labels", labels, "idx1")):
            path = root / "mnist" / f"{prefix}-{kind}-{dims}-ubyte.gz"
            path.write_bytes(gzip.compress(idx_bytes(array), compresslevel=1))
    return root


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (tests/served.py's launch); a module that needs
    other flags (a fake camera) defines its own."""
    from served import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser, server: str):
    """A page on the module's ``server`` fixture (its URL) that fails the test if the page logs
    an error; a module that expects some errors, or needs another timeout, defines its own."""
    from served import watched_page

    with watched_page(browser, server) as tab:
        yield tab


def train_stopped_and_resumed(spec: list[dict], data_dir: Path, tmp_path: Path,
                              settings: dict, stop_at: tuple[int, int]):
    """Train ``spec`` on MNIST in ``data_dir`` whole, and again stopped after step
    ``stop_at`` = (epoch, step) then resumed; checks both end with the same weights and
    returns (whole, resumed)."""
    from safetensors.torch import load_file

    import convscope

    whole = convscope.train(spec, "mnist", out=tmp_path / "whole", data_dir=str(data_dir),
                            progress=False, **settings)
    stop = lambda event: not (event["kind"] == "step"  # noqa: E731
                              and (event["epoch"], event["step"]) == stop_at)
    stopped = convscope.train(spec, "mnist", out=tmp_path / "stopped",
                              data_dir=str(data_dir), progress=False, on_event=stop,
                              **settings)
    assert stopped.results is None
    resumed = convscope.resume(stopped.path, progress=False)
    a = load_file(str(whole.path / "model.safetensors"))
    b = load_file(str(resumed.path / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    return whole, resumed
