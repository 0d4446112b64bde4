"""The real MNIST and CIFAR-10 files in $CONVSCOPE_DATA (skipped when they are absent)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from conftest import real_dir

from convscope.data import load_dataset

pytestmark = pytest.mark.realdata

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CIFAR_CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()


def timed_twice(name: str, split: str, root: Path):
    load_dataset(name, split, root, download=False)
    start = time.perf_counter()
    ds = load_dataset(name, split, root, download=False)
    return ds, time.perf_counter() - start


def test_real_mnist(data_cache: Path) -> None:
    root = real_dir("mnist")
    train, seconds = timed_twice("mnist", "train", root)
    assert seconds < 5
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == MNIST_TRAIN_COUNTS
    assert 0 < float(train.images.float().mean()) < 255
    test = load_dataset("mnist", "test", root, download=False)
    assert len(test) == 10000 and torch.bincount(test.labels).tolist() == MNIST_TEST_COUNTS


def test_real_cifar10(data_cache: Path) -> None:
    root = real_dir("cifar10")
    train, seconds = timed_twice("cifar10", "train", root)
    assert seconds < 5
    assert train.images.shape == (50000, 3, 32, 32) and train.classes == CIFAR_CLASSES
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    # training image 0 is a frog whose red channel starts 59 43 50 68 98 119 139 145 149
    assert int(train.labels[0]) == 6
    assert train.images[0, 0, 0, :9].tolist() == [59, 43, 50, 68, 98, 119, 139, 145, 149]
    test = load_dataset("cifar10", "test", root, download=False)
    assert len(test) == 10000 and torch.bincount(test.labels).tolist() == [1000] * 10
