"""Hostile data files (issue 17, points 10-12): temp files that outlive kill -9, downloads onto
folders, exact CIFAR sizes, gzip bombs, file modes, bad FSDD recordings, corrupt files."""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import logging
import os
import shutil
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes, patch_source, real_dir, write_clip
from PIL import Image

from convscope.data import FileSpec, load_dataset
from convscope.data.cifar import RECORD_BYTES
from convscope.data.idx import IMAGES_MAGIC, read_idx
from convscope.data.tempfiles import STALE_AFTER_S
from convscope.errors import DataError
from convscope.server.errors import ApiError
from convscope.server.samples import Samples

MNIST_TEST = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
LONG_AGO = time.time() - 2 * STALE_AFTER_S


def one_line_naming(err: pytest.ExceptionInfo, path: Path) -> str:
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    return message


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def official_cifar(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CIFAR reader's exact 10,000-record check, which conftest turns off for small data."""
    monkeypatch.setattr("convscope.data.cifar.BATCH_RECORDS", 10_000)


@pytest.fixture
def served(fake_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fake MNIST files as a download mirror (a file:// URL) with their checksums."""
    folder = tmp_path / "served"
    shutil.copytree(fake_data[0] / "mnist", folder)
    files = {p.name: FileSpec(p.name, sha256=hashlib.sha256(p.read_bytes()).hexdigest())
             for p in folder.iterdir()}
    patch_source(monkeypatch, "mnist", files=files)
    return folder.as_uri()


# ---- point 10: temp files and downloads onto folders ----------------------------------------


def test_stale_temp_files_are_removed_by_the_next_download_and_cache_build(
    served: str, tmp_path: Path, data_cache: Path
) -> None:
    mnist = tmp_path / "target" / "mnist"
    mnist.mkdir(parents=True)
    data_cache.mkdir()
    stale = [mnist / f".{MNIST_TEST[0]}.ab12cd_3.part", data_cache / ".mnist-x.npz.zz99yy00.tmp"]
    kept = [mnist / f".{MNIST_TEST[1]}.fresh000.part",  # young: may be a live download's
            mnist / ".notes.txt.ab12cd_3.part",  # not a name of ours
            mnist / f".{MNIST_TEST[1]}.locked00.part",  # a live writer holds its lock
            data_cache / "mnist-x.npz.ab12cd_3.tmp"]  # not our pattern
    for path in stale + kept:
        path.write_bytes(b"x" * 100)
        if "fresh" not in path.name:
            os.utime(path, (LONG_AGO, LONG_AGO))
    with open(kept[2], "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert len(load_dataset("mnist", "test", tmp_path / "target", base_url=served)) == 10
    assert [p.exists() for p in stale] == [False, False]
    assert all(p.exists() for p in kept)


def test_download_onto_a_folder_says_so_and_leaves_nothing(served: str, tmp_path: Path) -> None:
    folder = tmp_path / "target" / "mnist"
    (folder / MNIST_TEST[0]).mkdir(parents=True)
    with pytest.raises(DataError, match="is a folder; move it away or remove it") as err:
        load_dataset("mnist", "test", tmp_path / "target", base_url=served)
    one_line_naming(err, folder / MNIST_TEST[0])
    assert sorted(p.name for p in folder.iterdir()) == [MNIST_TEST[0]]  # no .part, no labels


# ---- point 11: modes, exact CIFAR sizes, gzip bombs -------------------------------------------


def test_downloaded_and_cached_files_get_the_umask_mode(
    served: str, tmp_path: Path, data_cache: Path, umask_022
) -> None:
    load_dataset("mnist", "test", tmp_path / "target", base_url=served)
    written = [tmp_path / "target" / "mnist" / n for n in MNIST_TEST]
    written += list(data_cache.glob("*.npz"))
    assert len(written) == 3
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o644"}


def _cifar_test_dir(tmp_path: Path, records: int) -> Path:
    """A data dir whose test_batch.bin is ``records`` all-zero records (a sparse file)."""
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    with open(folder / "test_batch.bin", "wb") as f:
        f.truncate(records * RECORD_BYTES)
    return tmp_path / "data"


def test_cifar_batch_must_hold_exactly_10000_records(
    tmp_path: Path, data_cache: Path, official_cifar: None
) -> None:
    assert len(load_dataset("cifar10", "test", _cifar_test_dir(tmp_path, 10_000), False)) == 10_000
    shutil.rmtree(tmp_path / "data")
    root = _cifar_test_dir(tmp_path, 10_001)
    with pytest.raises(DataError, match="10,001 records.*exactly 30,730,000 bytes") as err:
        load_dataset("cifar10", "test", root, download=False)
    one_line_naming(err, root / "cifar-10-batches-bin" / "test_batch.bin")


@pytest.mark.realdata
def test_real_cifar_batches_pass_the_exact_check(data_cache: Path, official_cifar: None) -> None:
    assert len(load_dataset("cifar10", "test", real_dir("cifar10"), download=False)) == 10_000


def _gzip_bomb(path: Path, header: bytes, zeros: int) -> None:
    """``header`` then ``zeros`` zero bytes, gzipped, written in 1 MiB pieces."""
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header)
        piece = bytes(1 << 20)
        for _ in range(zeros >> 20):
            f.write(piece)


def test_gzip_bomb_is_refused_after_the_declared_size(tmp_path: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    expanded = 64 << 20
    _gzip_bomb(path, struct.pack(">IIII", IMAGES_MAGIC, 10, 28, 28), expanded)
    assert path.stat().st_size < expanded // 100
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="longer than its header says") as err:
            read_idx(path, IMAGES_MAGIC)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_line_naming(err, path)
    assert peak < expanded // 16, f"peak {peak:,} bytes"


# ---- point 12: one bad FSDD recording -------------------------------------------------------


@pytest.fixture
def recordings(tmp_path: Path, data_cache: Path) -> Path:
    """``<data>/fsdd/recordings`` with 6 good test clips (takes 0-1) and 2 training clips."""
    folder = tmp_path / "data" / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    t = np.arange(1600) / 8000
    for digit in range(3):
        for take in (0, 1, 7):
            tone = 0.3 * np.sin(2 * np.pi * (300 + 700 * digit + 20 * take) * t)
            write_clip(folder / f"{digit}_bob_{take}.wav", tone)
    return folder


def test_bad_fsdd_recordings_are_skipped_and_logged(
    recordings: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (recordings / "1_bob_0.wav").write_bytes(b"RIFF\x00\x00")  # damaged
    write_clip(recordings / "2_bob_1.wav", np.zeros(800))  # silent
    (recordings / "two_bob_0.wav").write_bytes(b"")  # misnamed
    samples = Samples(str(tmp_path / "data"), tmp_path / "no-bundle")
    with caplog.at_level(logging.WARNING):
        listed, note = samples.recordings()
        fsdd = samples.get("fsdd")
    assert note is None and [r.path.name for r in listed] == [
        "0_bob_0.wav", "0_bob_1.wav", "1_bob_1.wav", "2_bob_0.wav"]
    assert fsdd.dataset.labels.tolist() == [r.digit for r in listed]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in ("1_bob_0.wav", "2_bob_1.wav", "two_bob_0.wav"):
        (line,) = [w for w in warned if name in w]
        assert "\n" not in line and str(recordings / name) in line


def test_fsdd_is_unavailable_only_when_nothing_is_usable(
    recordings: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for path in recordings.iterdir():
        path.write_bytes(b"not a wav")
    samples = Samples(str(tmp_path / "data"), tmp_path / "no-bundle")
    with caplog.at_level(logging.WARNING), pytest.raises(ApiError, match="not available"):
        samples.get("fsdd")
    assert any("no spoken digits to offer" in r.getMessage() for r in caplog.records)
    assert samples.recordings()[1].startswith("no spoken digits to offer")


# ---- corrupt files: each a one-line DataError naming the file -------------------------------


def _png(size: tuple[int, int] = (8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("L", size, 128).save(out, format="PNG")
    return out.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring ``width`` x ``height`` (no pixel data)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(
        ">I", zlib.crc32(chunk))


MNIST_CASES = {
    "truncated": lambda good: gzip.compress(good[:-100]),
    "truncated gzip": lambda good: gzip.compress(good)[:-30],
    "empty": lambda good: b"",
    "wrong magic": lambda good: gzip.compress(b"\x00\x00\x08\x02" + good[4:]),
    "wrong dims": lambda good: gzip.compress(struct.pack(">IIII", IMAGES_MAGIC, 10, 32, 32)
                                             + bytes(10 * 32 * 32)),
    "huge dims": lambda good: gzip.compress(struct.pack(">IIII", IMAGES_MAGIC, 2**32 - 1, 28, 28)),
    "no images": lambda good: gzip.compress(struct.pack(">IIII", IMAGES_MAGIC, 0, 28, 28)),
    "plain, extra byte": lambda good: good + b"x",
}


@pytest.mark.parametrize("case", MNIST_CASES)
def test_corrupt_mnist_files(fake_data, case: str) -> None:
    root, arrays = fake_data
    path = root / "mnist" / MNIST_TEST[0]
    path.write_bytes(MNIST_CASES[case](idx_bytes(arrays["mnist-test-images"])))
    with pytest.raises(DataError) as err:
        load_dataset("mnist", "test", root, download=False)
    one_line_naming(err, path)


CIFAR_CASES = {
    "truncated": lambda good: good[:-1],
    "empty": lambda good: b"",
    "bad label": lambda good: b"\x0b" + good[1:],
    "extra record": lambda good: good + good[:RECORD_BYTES],
}


@pytest.mark.parametrize("case", [*CIFAR_CASES, "huge"])
def test_corrupt_cifar_files(
    tmp_path: Path, data_cache: Path, official_cifar: None, case: str
) -> None:
    root = _cifar_test_dir(tmp_path, 10_000 if case != "huge" else 0)
    path = root / "cifar-10-batches-bin" / "test_batch.bin"
    if case == "huge":
        with open(path, "wb") as f:
            f.truncate(1 << 40)  # sparse: 1 TiB declared by its size, nothing read
    else:
        path.write_bytes(CIFAR_CASES[case](path.read_bytes()))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", "test", root, download=False)
    one_line_naming(err, path)


FSDD_CASES = {
    "truncated": lambda good: good[:30],
    "empty": lambda good: b"",
    "wrong magic": lambda good: b"RIFX" + good[4:],
    "huge chunk": lambda good: good[:40] + struct.pack("<I", 2**32 - 1) + good[44:],
    "huge duration": lambda good: good[:24] + struct.pack("<II", 1, 2) + good[32:],
    "silent": lambda good: good[:44] + bytes(len(good) - 44),
}


@pytest.mark.parametrize("case", FSDD_CASES)
def test_corrupt_fsdd_recordings(recordings: Path, case: str) -> None:
    path = recordings / "1_bob_7.wav"
    path.write_bytes(FSDD_CASES[case](path.read_bytes()))
    if case == "huge chunk":  # the size is clamped to the data present: still a usable clip
        assert len(load_dataset("fsdd", "train", recordings.parent.parent)) == 3
        return
    with pytest.raises(DataError) as err:
        load_dataset("fsdd", "train", recordings.parent.parent)
    one_line_naming(err, path)


FOLDER_CASES = {
    "truncated": lambda: _png((64, 64))[:60],
    "empty": lambda: b"",
    "wrong magic": lambda: b"GIF89a" + bytes(40),
    "huge dims": lambda: _png_declaring(100_000, 100_000),
}


@pytest.mark.parametrize("case", FOLDER_CASES)
def test_corrupt_folder_images(tmp_path: Path, data_cache: Path, case: str) -> None:
    root = tmp_path / "images"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        (root / cls / "good.png").write_bytes(_png())
    path = root / "b" / "bad.png"
    path.write_bytes(FOLDER_CASES[case]())
    with pytest.raises(DataError) as err:
        load_dataset(str(root))
    one_line_naming(err, path)
