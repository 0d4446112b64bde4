"""Dataset type, splits, data-dir resolution, MNIST/CIFAR readers and the decoded cache."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import patch_source

from convscope.data import (
    DATASETS,
    Dataset,
    load_dataset,
    resolve_data_dir,
    train_val_split,
)
from convscope.errors import DataError

CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()


def make_ds(n: int = 50) -> Dataset:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 3).clone()
    return Dataset("toy", images, torch.arange(n) % 4, ["a", "b", "c", "d"])


def test_dataset_basics() -> None:
    ds = make_ds(10)
    assert len(ds) == 10
    assert ds.volume == (3, 2, 1)
    sub = ds.subset(torch.tensor([7, 2]))
    assert sub.labels.tolist() == [3, 2]
    assert sub.images[:, 0, 0, 0].tolist() == [7, 2]
    assert sub.classes == ds.classes and sub.images.is_contiguous()
    assert len(ds.subset(ds.labels == 0)) == 3
    with pytest.raises(ValueError, match="labels must lie"):
        Dataset("bad", ds.images, ds.labels + 4, ds.classes)
    with pytest.raises(ValueError, match="uint8"):
        Dataset("bad", ds.images.float(), ds.labels, ds.classes)


def test_train_val_split_is_deterministic_and_disjoint() -> None:
    ds = make_ds(50)
    train, val = train_val_split(ds, 0.2, seed=3)
    again_train, again_val = train_val_split(ds, 0.2, seed=3)
    _, other_val = train_val_split(ds, 0.2, seed=4)
    ids = lambda d: d.images[:, 0, 0, 0].tolist()  # noqa: E731
    assert (len(train), len(val)) == (40, 10)
    assert ids(val) == ids(again_val) and ids(train) == ids(again_train)
    assert ids(val) != ids(other_val)
    assert sorted(ids(train) + ids(val)) == list(range(50))
    assert ids(val) == sorted(ids(val))


def test_train_val_split_zero_fraction() -> None:
    ds = make_ds(5)
    train, val = train_val_split(ds, 0.0)
    assert train is ds
    assert len(val) == 0 and val.images.shape == (0, 1, 2, 3) and val.classes == ds.classes
    with pytest.raises(ValueError):
        train_val_split(ds, 1.0)


def test_resolve_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("CONVSCOPE_DATA")
    assert resolve_data_dir() == tmp_path / "xdg" / "convscope" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir() == Path.home() / ".cache" / "convscope" / "data"


def test_mnist_round_trip(fake_data) -> None:
    root, arrays = fake_data
    for split, n in (("train", 20), ("test", 10)):
        ds = load_dataset("mnist", split, root, download=False)
        assert ds.name == "mnist" and ds.classes == [str(d) for d in range(10)]
        assert ds.images.shape == (n, 1, 28, 28) and ds.images.dtype == torch.uint8
        assert ds.labels.dtype == torch.int64 and ds.volume == (28, 28, 1)
        assert np.array_equal(ds.images[:, 0].numpy(), arrays[f"mnist-{split}-images"])
        assert np.array_equal(ds.labels.numpy(), arrays[f"mnist-{split}-labels"])


def test_mnist_accepts_uncompressed_files(fake_data) -> None:
    root, arrays = fake_data
    for gz in (root / "mnist").glob("train-*.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    ds = load_dataset("mnist", "train", root, download=False)
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["mnist-train-images"])


def test_cifar_round_trip(fake_data) -> None:
    root, arrays = fake_data
    for split, n in (("train", 30), ("test", 10)):
        ds = load_dataset("cifar10", split, root, download=False)
        assert ds.classes == CLASSES
        assert ds.images.shape == (n, 3, 32, 32) and ds.volume == (32, 32, 3)
        assert np.array_equal(ds.images.numpy(), arrays[f"cifar10-{split}-images"])
        assert np.array_equal(ds.labels.numpy(), arrays[f"cifar10-{split}-labels"])


def test_cifar_classes_default_without_meta_file(fake_data) -> None:
    root, _ = fake_data
    (root / "cifar-10-batches-bin" / "batches.meta.txt").unlink()
    assert load_dataset("cifar10", "test", root, download=False).classes == CLASSES


def _rewrite_gz(path: Path, edit) -> None:
    path.write_bytes(gzip.compress(edit(gzip.decompress(path.read_bytes()))))


@pytest.mark.parametrize(
    ("name", "edit", "match"),
    [
        ("train-images-idx3-ubyte.gz", lambda b: b[:-5], "expected 15696 bytes"),
        ("train-images-idx3-ubyte.gz", lambda b: b + b"x", "longer than its header"),
        ("train-images-idx3-ubyte.gz", lambda b: b"\0\0\x08\x01" + b[4:], "magic 0x00000801"),
        ("train-labels-idx1-ubyte.gz", lambda b: b[:-1] + b"\x0c", "label 12 at index 19"),
    ],
)
def test_mnist_bad_files(fake_data, name: str, edit, match: str) -> None:
    root, _ = fake_data
    _rewrite_gz(root / "mnist" / name, edit)
    with pytest.raises(DataError, match=match) as err:
        load_dataset("mnist", "train", root, download=False)
    assert name in str(err.value)


def test_mnist_truncated_gzip_stream(fake_data) -> None:
    root, _ = fake_data
    path = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        load_dataset("mnist", "test", root, download=False)


def test_mnist_count_mismatch_names_both_files(fake_data) -> None:
    root, _ = fake_data
    labels = struct.pack(">II", 0x801, 9) + bytes(9)
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(DataError, match="10 images.*9 labels") as err:
        load_dataset("mnist", "test", root, download=False)
    assert "t10k-images-idx3-ubyte.gz" in str(err.value)
    assert "t10k-labels-idx1-ubyte.gz" in str(err.value)


def test_cifar_bad_files(fake_data) -> None:
    root, _ = fake_data
    batch = root / "cifar-10-batches-bin" / "test_batch.bin"
    good = batch.read_bytes()
    batch.write_bytes(good[:-1])
    with pytest.raises(DataError, match="test_batch.bin is 30729 bytes.*3073"):
        load_dataset("cifar10", "test", root, download=False)
    batch.write_bytes(good[:3073] + b"\x0a" + good[3074:])
    with pytest.raises(DataError, match="test_batch.bin: label 10 of record 1"):
        load_dataset("cifar10", "test", root, download=False)


def test_cifar_bad_meta_file(fake_data) -> None:
    root, _ = fake_data
    (root / "cifar-10-batches-bin" / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match="batches.meta.txt lists 2 class names"):
        load_dataset("cifar10", "test", root, download=False)


def test_missing_files_without_download(fake_data) -> None:
    root, _ = fake_data
    (root / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_dataset("mnist", "train", root, download=False)
    msg = str(err.value)
    listed = [line.strip() for line in msg.splitlines() if line.startswith("  ")]
    assert listed == [str(root / "mnist" / "train-labels-idx1-ubyte.gz")]
    assert "turned off" in msg and "--data-dir" in msg and "CONVSCOPE_DATA" in msg


def test_unknown_name_and_split(tmp_path: Path, data_cache: Path) -> None:
    with pytest.raises(DataError, match="neither a known dataset"):
        load_dataset(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("mnist", "val")
    with pytest.raises(DataError, match="image folders only"):
        load_dataset("mnist", size=(8, 8))
    assert list(DATASETS) == ["mnist", "cifar10", "fsdd", "mnist-localize-scenes",
                              "mnist-detect-scenes", "mnist-segment-scenes"]


def test_cache_is_used_and_rebuilt(fake_data, monkeypatch: pytest.MonkeyPatch) -> None:
    root, arrays = fake_data
    cache = Path(os.environ["CONVSCOPE_CACHE"])
    load_dataset("mnist", "train", root, download=False)
    (entry,) = cache.glob("mnist-train-*.npz")
    mnist = DATASETS["mnist"]

    def fail(paths):
        raise AssertionError("decoded again although the cache is valid")

    patch_source(monkeypatch, "mnist", reader=fail)
    ds = load_dataset("mnist", "train", root, download=False)
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["mnist-train-images"])

    monkeypatch.setitem(DATASETS, "mnist", mnist)
    for damage in (b"garbage", entry.read_bytes()[:-100], entry.read_bytes()[:5000]):
        entry.write_bytes(damage)
        ds = load_dataset("mnist", "train", root, download=False)
        assert np.array_equal(ds.labels.numpy(), arrays["mnist-train-labels"])
    assert list(cache.glob("*.tmp")) == []


def test_cache_follows_source_changes(fake_data) -> None:
    root, _ = fake_data
    assert load_dataset("mnist", "test", root, download=False).labels[0] == 0
    labels = struct.pack(">II", 0x801, 10) + bytes([5] * 10)
    path = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(labels))
    os.utime(path, ns=(1, 1))
    assert load_dataset("mnist", "test", root, download=False).labels.tolist() == [5] * 10


def test_unwritable_cache_only_warns(fake_data, monkeypatch: pytest.MonkeyPatch) -> None:
    root, arrays = fake_data
    blocker = root.parent / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("CONVSCOPE_CACHE", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="cannot write the decoded-array cache"):
        ds = load_dataset("mnist", "test", root, download=False)
    assert np.array_equal(ds.labels.numpy(), arrays["mnist-test-labels"])


def test_loading_never_writes_into_the_data_dir(fake_data) -> None:
    root, _ = fake_data
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    load_dataset("mnist", "train", root)
    load_dataset("cifar10", "test", root)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
