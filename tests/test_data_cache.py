"""The decoded-array cache's cap (CONVSCOPE_CACHE_MAX, least recently used entries evicted
after a write) and ``convscope cache info`` / ``clear``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from convscope.cli import main
from convscope.data.cache import (
    DEFAULT_MAX,
    cache_entries,
    cache_limit,
    cached_arrays,
    parse_size,
)
from convscope.errors import DataError

KB = 1000


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    """Three source files, one per cache entry."""
    folder = tmp_path / "sources"
    folder.mkdir()
    paths = {}
    for name in "abc":
        paths[name] = folder / name / "data.bin"
        paths[name].parent.mkdir()
        paths[name].write_bytes(name.encode() * 10)
    return paths


def _load(name: str, path: Path, size: int, builds: list[str]) -> np.ndarray:
    """``size`` bytes of arrays cached for ``path``; ``builds`` records every decode."""

    def build() -> dict[str, np.ndarray]:
        builds.append(name)
        return {"images": np.full(size, ord(name), dtype=np.uint8)}

    return cached_arrays(f"test-{name}", [path], build)["images"]


def _entry(cache: Path, name: str) -> Path:
    (found,) = cache.glob(f"test-{name}-*.npz")
    return found


def test_least_recently_used_entries_go_when_a_write_passes_the_cap(data_cache, sources,
                                                                    monkeypatch):
    monkeypatch.setenv("CONVSCOPE_CACHE_MAX", "250k")
    builds: list[str] = []
    _load("a", sources["a"], 100 * KB, builds)
    _load("b", sources["b"], 100 * KB, builds)
    os.utime(_entry(data_cache, "a"), (1e9, 1e9))  # a was used long ago,
    os.utime(_entry(data_cache, "b"), (1.1e9, 1.1e9))  # b later,
    assert _load("a", sources["a"], 100 * KB, builds)[0] == ord("a")  # and a again just now
    assert builds == ["a", "b"]  # the read came from the cache
    _load("c", sources["c"], 100 * KB, builds)  # 300 kB > 250 kB: b, least recently used, goes
    assert sorted(p.name.split("-")[1] for p in data_cache.glob("*.npz")) == ["a", "c"]
    assert sum(e.size for e in cache_entries(data_cache)) <= 250 * KB
    _load("b", sources["b"], 100 * KB, builds)
    assert builds == ["a", "b", "c", "b"]


def test_an_entry_larger_than_the_cap_is_not_written(data_cache, sources, monkeypatch, capsys):
    monkeypatch.setenv("CONVSCOPE_CACHE_MAX", "50kB")
    builds: list[str] = []
    array = _load("a", sources["a"], 60 * KB, builds)
    assert array.shape == (60 * KB,) and int(array[0]) == ord("a")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "not cached" in lines[0] and "CONVSCOPE_CACHE_MAX" in lines[0]
    assert "60.0 kB" in lines[0] and "50.0 kB" in lines[0]
    assert not list(data_cache.glob("*.npz"))
    _load("a", sources["a"], 60 * KB, builds)
    assert builds == ["a", "a"]
    _load("b", sources["b"], 10 * KB, builds)  # a small one is still cached
    assert len(list(data_cache.glob("*.npz"))) == 1


def test_a_cap_of_zero_turns_the_cache_off_quietly(data_cache, sources, monkeypatch, capsys):
    monkeypatch.setenv("CONVSCOPE_CACHE_MAX", "0")
    builds: list[str] = []
    _load("a", sources["a"], 1 * KB, builds)
    _load("a", sources["a"], 1 * KB, builds)
    assert builds == ["a", "a"] and not data_cache.exists()
    assert capsys.readouterr().err == ""


def test_cap_sizes(monkeypatch):
    monkeypatch.delenv("CONVSCOPE_CACHE_MAX", raising=False)
    assert cache_limit() == DEFAULT_MAX == 2 * 10**9
    assert parse_size("2G") == parse_size("2 GB") == 2 * 10**9
    assert parse_size("500M") == 500 * 10**6 and parse_size("1.5GiB") == 3 * 2**29
    assert parse_size("123456") == 123456
    for bad in ("abc", "-1G", "2 parsecs", ""):
        with pytest.raises(DataError, match="CONVSCOPE_CACHE_MAX.*is not a size"):
            parse_size(bad)


def test_cache_info_and_clear(data_cache, sources, capsys, monkeypatch):
    monkeypatch.delenv("CONVSCOPE_CACHE_MAX", raising=False)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(data_cache) in out and "not created yet" in out and "0 entries, 0 B" in out
    builds: list[str] = []
    _load("a", sources["a"], 30 * KB, builds)
    _load("b", sources["b"], 20 * KB, builds)
    own = {p.name for p in data_cache.glob("*.npz")}
    sizes = sum(p.stat().st_size for p in data_cache.glob("*.npz"))
    (data_cache / "notes.txt").write_text("the user's own file")
    np.savez(data_cache / "mine-0123456789abcdef.npz", x=np.zeros(3))  # named like ours
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "2 entries" in out and f"{sizes / 1000:.1f} kB" in out and "cap 2.0 GB" in out
    assert all(name in out for name in own) and "mine-" not in out
    assert main(["cache", "clear"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("removed 2 decoded-cache entries from") and str(data_cache) in out
    assert f"freeing {sizes / 1000:.1f} kB" in out
    assert sorted(p.name for p in data_cache.iterdir()) == ["mine-0123456789abcdef.npz",
                                                             "notes.txt"]
    _load("a", sources["a"], 30 * KB, builds)
    assert builds == ["a", "b", "a"]  # cleared: decoded again


def test_a_bad_cap_is_one_line_from_the_cli(data_cache, tmp_path, monkeypatch, capsys):
    from conftest import write_mnist

    data = write_mnist(tmp_path / "data", train=20, test=10)
    monkeypatch.setenv("CONVSCOPE_CACHE_MAX", "lots")
    code = main(["train", "--model", "mnist-templates", "--data-dir", str(data), "--out",
                 str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "CONVSCOPE_CACHE_MAX='lots'" in err
