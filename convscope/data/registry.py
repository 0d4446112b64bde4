"""Where the downloadable datasets come from: official file names, mirrors, checksums, classes.

Their catalogue entries (:mod:`convscope.data.catalog`) point here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.data.cifar import read_cifar
from convscope.data.idx import read_mnist

Reader = Callable[[Sequence[Path]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FileSpec:
    """A downloadable file and its published checksums (sha256 preferred when known)."""

    name: str
    sha256: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """How to find, fetch and read one dataset below ``<data_dir>/<folder>/``.

    ``urls`` are mirrors tried in order. Without ``archive`` each file in ``files`` is
    fetched as ``<url>/<name>``; with it, ``<url>/<archive.name>`` is fetched and the
    members ``<archive_prefix><name>`` are extracted.
    """

    name: str
    folder: str
    splits: Mapping[str, tuple[str, ...]]
    reader: Reader
    classes: tuple[str, ...]
    urls: tuple[str, ...]
    files: Mapping[str, FileSpec]
    archive: FileSpec | None = None
    archive_prefix: str = ""
    classes_file: str | None = None


def _files(*specs: FileSpec) -> dict[str, FileSpec]:
    return {s.name: s for s in specs}


MNIST = DatasetSpec(
    name="mnist",
    folder="mnist",
    splits={
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    },
    reader=read_mnist,
    classes=tuple(str(d) for d in range(10)),
    urls=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    files=_files(
        FileSpec(
            "train-images-idx3-ubyte.gz",
            sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        FileSpec(
            "train-labels-idx1-ubyte.gz",
            sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            md5="d53e105ee54ea40749a09fcbcd1e9432",
        ),
        FileSpec(
            "t10k-images-idx3-ubyte.gz",
            sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            md5="9fb629c4189551a2d022fa330f9573f3",
        ),
        FileSpec(
            "t10k-labels-idx1-ubyte.gz",
            sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            md5="ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ),
)

CIFAR10 = DatasetSpec(
    name="cifar10",
    folder="cifar-10-batches-bin",
    splits={
        "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        "test": ("test_batch.bin",),
    },
    reader=read_cifar,
    classes=tuple("airplane automobile bird cat deer dog frog horse ship truck".split()),
    urls=("https://www.cs.toronto.edu/~kriz/",),
    files=_files(
        FileSpec(
            "data_batch_1.bin",
            sha256="cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
            md5="5dd7e06a14cb22eb9f671a540d1b7c25",
        ),
        FileSpec(
            "data_batch_2.bin",
            sha256="a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
            md5="5ea93a67294ea407fff1d09f752e9692",
        ),
        FileSpec(
            "data_batch_3.bin",
            sha256="bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
            md5="942cd6a4bcdd0dd3c604fbe906cb4421",
        ),
        FileSpec(
            "data_batch_4.bin",
            sha256="014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
            md5="ae636b3ba5c66a11e91e8cb52e771fcb",
        ),
        FileSpec(
            "data_batch_5.bin",
            sha256="755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
            md5="53f37980c15c3d472c316c40844f3f0d",
        ),
        FileSpec(
            "test_batch.bin",
            sha256="8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
            md5="803d5f7f4d78ea53de84dbe85f74fb6d",
        ),
        FileSpec("batches.meta.txt"),  # class names; no published checksum
    ),
    archive=FileSpec(
        "cifar-10-binary.tar.gz",
        sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        md5="c32a1d4ab5d03f1284b67883e8d87530",
    ),
    archive_prefix="cifar-10-batches-bin/",
    classes_file="batches.meta.txt",
)
