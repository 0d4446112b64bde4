"""FSDD as spectrogram datasets: a small synthetic recordings folder, then the real one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_clip

from convscope.audio import FRAMES, N_MELS
from convscope.data import load_dataset
from convscope.data.fsdd import load_fsdd, speakers
from convscope.errors import DataError

SPEAKERS = ("bob", "alice")
DIGITS, TAKES = 3, 7  # takes 0-4 test, 5-6 train


@pytest.fixture
def fsdd_root(tmp_path: Path, data_cache: Path) -> Path:
    """``<data_dir>`` with fsdd/recordings/: a 0.2 s tone per digit/speaker/take."""
    folder = tmp_path / "data" / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    t = np.arange(1600) / 8000
    for digit in range(DIGITS):
        for s, speaker in enumerate(SPEAKERS):
            for take in range(TAKES):
                tone = 0.3 * np.sin(2 * np.pi * (300 + 700 * digit + 20 * s + take) * t)
                write_clip(folder / f"{digit}_{speaker}_{take}.wav", tone)
    return tmp_path / "data"


def test_official_split_follows_takes(fsdd_root: Path):
    train = load_dataset("fsdd", "train", data_dir=fsdd_root)
    test = load_dataset("fsdd", "test", data_dir=fsdd_root)
    assert (len(train), len(test)) == (DIGITS * 2 * 2, DIGITS * 2 * 5)
    assert train.name == test.name == "fsdd" and train.classes == [str(d) for d in range(10)]
    assert train.images.shape[1:] == (1, N_MELS, FRAMES) and train.images.dtype == torch.uint8
    assert bool((train.targets["take"] >= 5).all()) and bool((test.targets["take"] < 5).all())
    assert torch.bincount(test.labels).tolist() == [10] * DIGITS
    assert speakers(fsdd_root / "fsdd" / "recordings") == ["alice", "bob"]
    assert torch.bincount(train.targets["speaker"]).tolist() == [6, 6]
    assert not torch.equal(train.images[0], train.images[-1])


def test_holdout_speaker(fsdd_root: Path):
    test = load_dataset("fsdd-holdout-bob", "test", data_dir=fsdd_root)
    train = load_dataset("fsdd-holdout-bob", "train", data_dir=fsdd_root)
    assert test.name == "fsdd-holdout-bob" and len(test) == len(train) == DIGITS * TAKES
    assert test.targets["speaker"].unique().tolist() == [1]  # index into ["alice", "bob"]
    assert train.targets["speaker"].unique().tolist() == [0]
    official = load_fsdd(fsdd_root / "fsdd" / "recordings", "test")
    bob = official.subset(official.targets["speaker"] == 1)
    assert torch.equal(bob.images, test.subset(test.targets["take"] < 5).images)


def test_cache_is_used_and_refreshed(fsdd_root: Path, data_cache: Path):
    first = load_dataset("fsdd", "test", data_dir=fsdd_root)
    assert len(list(data_cache.glob("fsdd-*.npz"))) == 1
    clip = fsdd_root / "fsdd" / "recordings" / "0_alice_0.wav"
    write_clip(clip, 0.3 * np.sin(np.arange(800) * 0.5))
    os.utime(clip, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    second = load_dataset("fsdd", "test", data_dir=fsdd_root)
    assert not torch.equal(first.images[0], second.images[0])
    assert torch.equal(first.images[1:], second.images[1:])


def test_errors_name_the_fix(fsdd_root: Path, tmp_path: Path):
    with pytest.raises(DataError, match="unknown FSDD speaker 'carol'; use one of: alice, bob"):
        load_dataset("fsdd-holdout-carol", "test", data_dir=fsdd_root)
    with pytest.raises(DataError, match="Jakobovski/free-spoken-digit-dataset"):
        load_dataset("fsdd", "train", data_dir=tmp_path / "empty")
    with pytest.raises(DataError, match="fixed size"):
        load_dataset("fsdd", "train", data_dir=fsdd_root, size=(32, 32))
    folder = fsdd_root / "fsdd" / "recordings"
    write_clip(folder / "1_carol_0.wav", np.zeros(800))
    with pytest.raises(DataError, match="1_carol_0.wav is silent"):
        load_dataset("fsdd", "train", data_dir=fsdd_root)
    (folder / "1_carol_0.wav").unlink()
    write_clip(folder / "one_carol_0.wav", np.ones(800) * 0.1)
    with pytest.raises(DataError, match="one_carol_0.wav: FSDD file names must read"):
        load_dataset("fsdd", "train", data_dir=fsdd_root)


# ---- the real recordings ($CONVSCOPE_DATA/fsdd/recordings, skipped without them) -------------


@pytest.fixture(scope="module")
def real_fsdd(tmp_path_factory: pytest.TempPathFactory):
    """The real data dir, with a decoded cache shared by this module's real-data tests."""
    root = os.environ.get("CONVSCOPE_DATA")
    if not root:
        pytest.skip("CONVSCOPE_DATA is not set: no real data to test against")
    if len(list((Path(root) / "fsdd" / "recordings").glob("*.wav"))) != 3000:
        pytest.skip(f"{root}/fsdd/recordings does not hold the 3,000 FSDD recordings")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield Path(root)


@pytest.mark.realdata
def test_real_fsdd_splits(real_fsdd: Path):
    train = load_dataset("fsdd", "train", data_dir=real_fsdd)
    test = load_dataset("fsdd", "test", data_dir=real_fsdd)
    assert (len(train), len(test)) == (2700, 300)
    assert torch.bincount(train.labels).tolist() == [270] * 10
    assert torch.bincount(test.labels).tolist() == [30] * 10
    assert train.targets["take"].unique().tolist() == list(range(5, 50))
    assert test.targets["take"].unique().tolist() == list(range(5))
    assert torch.bincount(test.targets["speaker"]).tolist() == [50] * 6
    assert speakers(real_fsdd / "fsdd" / "recordings") == [
        "george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    held = load_dataset("fsdd-holdout-jackson", "test", data_dir=real_fsdd)
    assert len(held) == 500 and held.targets["speaker"].unique().tolist() == [1]
    assert len(load_dataset("fsdd-holdout-jackson", "train", data_dir=real_fsdd)) == 2500


@pytest.mark.realdata
def test_real_fsdd_short_training(real_fsdd: Path, tmp_path: Path):
    from convscope.trainer import train

    run = train("fsdd-convnet", "fsdd", out=tmp_path / "run", data_dir=str(real_fsdd), seed=0,
                epochs=3, progress=False)
    assert run.results["test"]["total"] == 300
    assert run.results["test"]["accuracy"] >= 0.8  # chance is 0.1
