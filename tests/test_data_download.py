"""Downloads against a local HTTP server: verified files, bad checksums, mirrors, archives."""

from __future__ import annotations

import functools
import hashlib
import io
import shutil
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import patch_source

from convscope.data import DATASETS, FileSpec, load_dataset
from convscope.errors import DataError

MNIST_TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A local HTTP server: (folder it serves, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def serve_mnist(fake_data, served: Path, monkeypatch: pytest.MonkeyPatch, **checksums) -> None:
    """Copy the fake MNIST files to the server and register their checksums."""
    root, _ = fake_data
    files = {}
    for path in sorted((root / "mnist").iterdir()):
        shutil.copy(path, served / path.name)
        files[path.name] = FileSpec(path.name, sha256=sha256(path))
    files.update(checksums)
    patch_source(monkeypatch, "mnist", files=files)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_loads(fake_data, server, tmp_path, monkeypatch) -> None:
    served, url = server
    serve_mnist(fake_data, served, monkeypatch)
    target = tmp_path / "target"
    ds = load_dataset("mnist", "train", target, base_url=url)
    assert np.array_equal(ds.images[:, 0].numpy(), fake_data[1]["mnist-train-images"])
    assert leftovers(target / "mnist") == sorted(MNIST_TRAIN)
    monkeypatch.setenv("CONVSCOPE_DOWNLOAD_URL", url)
    assert len(load_dataset("mnist", "test", target)) == 10


def test_next_mirror_is_tried(fake_data, server, tmp_path, monkeypatch) -> None:
    served, url = server
    serve_mnist(fake_data, served, monkeypatch)
    patch_source(monkeypatch, "mnist", urls=(url + "gone/", url))
    assert len(load_dataset("mnist", "train", tmp_path / "target")) == 20


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_wrong_checksum_keeps_nothing(fake_data, server, tmp_path, monkeypatch, algo) -> None:
    served, url = server
    name = MNIST_TRAIN[0]
    serve_mnist(fake_data, served, monkeypatch, **{name: FileSpec(name, **{algo: "0" * 8})})
    actual = hashlib.new(algo, (served / name).read_bytes()).hexdigest()
    target = tmp_path / "target"
    with pytest.raises(DataError, match=f"{name} from {url}{name} has {algo} {actual}") as err:
        load_dataset("mnist", "train", target, base_url=url)
    assert "expected 00000000" in str(err.value) and "not kept" in str(err.value)
    assert name not in leftovers(target / "mnist")
    assert not [n for n in leftovers(target / "mnist") if n.endswith(".part")]


def test_unreachable_server_says_what_is_needed(tmp_path: Path, data_cache: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = tmp_path / "target"
    with pytest.raises(DataError, match="Downloading failed") as err:
        load_dataset("mnist", "train", target, base_url=f"http://127.0.0.1:{port}/")
    msg = str(err.value)
    for name in MNIST_TRAIN:
        assert f"  {target / 'mnist' / name}\n" in msg
    assert "--data-dir" in msg and "CONVSCOPE_DATA" in msg
    assert not target.exists()


def test_unwritable_data_dir(fake_data, server, tmp_path, monkeypatch) -> None:
    served, url = server
    serve_mnist(fake_data, served, monkeypatch)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(DataError, match=f"cannot write to {blocker / 'mnist'}") as err:
        load_dataset("mnist", "test", blocker, base_url=url)
    assert f"  {blocker / 'mnist' / 't10k-images-idx3-ubyte.gz'}\n" in str(err.value)


def add_member(tar: tarfile.TarFile, name: str, data: bytes = b"", link: str = "") -> None:
    info = tarfile.TarInfo(name)
    if link:
        info.type, info.linkname = tarfile.SYMTYPE, link
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data else None)


def serve_cifar(fake_data, served: Path, monkeypatch, link_member: bool = False) -> None:
    """Pack the fake CIFAR files (plus hostile members) into a served, registered archive."""
    folder = fake_data[0] / "cifar-10-batches-bin"
    archive = served / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_member(tar, "../evil.txt", b"x")
        add_member(tar, "cifar-10-batches-bin/../../evil.txt", b"x")
        add_member(tar, "cifar-10-batches-bin/readme.html", b"<p>")
        if link_member:
            add_member(tar, "cifar-10-batches-bin/test_batch.bin", link="/etc/passwd")
        for path in sorted(folder.iterdir()):
            add_member(tar, f"cifar-10-batches-bin/{path.name}", path.read_bytes())
    files = {n: FileSpec(n, sha256=sha256(folder / n)) for n in DATASETS["cifar10"].source.files}
    patch_source(monkeypatch, "cifar10", files=files,
                 archive=FileSpec(archive.name, md5=_md5(archive)))


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_archive_download_extracts_expected_members_only(
    fake_data, server, tmp_path, monkeypatch
) -> None:
    served, url = server
    serve_cifar(fake_data, served, monkeypatch)
    target = tmp_path / "target"
    ds = load_dataset("cifar10", "test", target, base_url=url)
    assert np.array_equal(ds.images.numpy(), fake_data[1]["cifar10-test-images"])
    assert ds.classes[0] == "airplane"
    assert leftovers(target / "cifar-10-batches-bin") == sorted(DATASETS["cifar10"].source.files)
    assert not list(tmp_path.rglob("evil.txt")) and leftovers(target) == ["cifar-10-batches-bin"]
    assert len(load_dataset("cifar10", "train", target, download=False)) == 30


def test_archive_with_link_member_is_refused(fake_data, server, tmp_path, monkeypatch) -> None:
    served, url = server
    serve_cifar(fake_data, served, monkeypatch, link_member=True)
    target = tmp_path / "target"
    with pytest.raises(DataError, match="test_batch.bin is not a regular file"):
        load_dataset("cifar10", "test", target, base_url=url)
    assert "test_batch.bin" not in leftovers(target / "cifar-10-batches-bin")
    assert not [n for n in leftovers(target / "cifar-10-batches-bin") if n.startswith(".")]
