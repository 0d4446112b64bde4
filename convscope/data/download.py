"""Fetch missing dataset files over HTTP(S), verify their checksums, extract archives safely."""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from convscope.data.registry import DatasetSpec, FileSpec
from convscope.data.tempfiles import TempFile, remove_stale
from convscope.errors import DataError
from convscope.progress import progress_bar

URL_ENV = "CONVSCOPE_DOWNLOAD_URL"
TIMEOUT_S = 30.0
_CHUNK = 1 << 20
_NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException)


class DownloadUnavailable(DataError):
    """The files could not be fetched (no network, or the target is not writable)."""


def mirrors(spec: DatasetSpec, base_url: str | None = None) -> tuple[str, ...]:
    """Base URLs to try: ``base_url`` > ``$CONVSCOPE_DOWNLOAD_URL`` > the spec's mirrors."""
    override = base_url or os.environ.get(URL_ENV)
    return (override,) if override else spec.urls


def fetch_missing(
    spec: DatasetSpec, folder: Path, missing: Iterable[str], base_url: str | None = None
) -> None:
    """Download ``missing`` files of ``spec`` into ``folder``; each is verified, then renamed.

    Temp files that an interrupted download left in ``folder`` are removed first.
    """
    missing = list(missing)
    urls = mirrors(spec, base_url)
    for name in missing:
        _check_target(folder / name)
    ours = {*spec.files, *([spec.archive.name] if spec.archive else [])}
    remove_stale(folder, ".part", ours.__contains__)
    if spec.archive is None:
        for name in missing:
            with _download(spec.files[name], urls, folder) as part:
                _install(part, folder / name)
        return
    with _download(spec.archive, urls, folder) as archive:
        optional = [n for n in spec.files if n not in missing and not (folder / n).exists()]
        _extract(archive.path, spec.archive.name, spec, folder, missing, optional)


def _check_target(target: Path) -> None:
    """Refuse to download onto something that is not a regular file (a folder, a device)."""
    if target.exists() and not target.is_file():
        what = "a folder" if target.is_dir() else "not a regular file"
        raise DataError(f"cannot download {target.name}: {target} is {what}; move it away or "
                        "remove it, then try again")


def _install(part: TempFile, target: Path) -> None:
    """Rename the verified ``part`` to ``target`` (the temp file is removed if that fails)."""
    try:
        part.install(target)
    except OSError as exc:
        raise DataError(f"cannot save {target}: {exc.strerror or exc}; check that its folder "
                        "is writable and that nothing else (e.g. a folder) has that name") from exc


def _download(file: FileSpec, urls: tuple[str, ...], folder: Path) -> TempFile:
    """Fetch ``file`` from the first mirror that answers; returns the verified temp file."""
    failures = []
    for base in urls:
        url = base.rstrip("/") + "/" + file.name
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with progress_bar(total=total, unit="B", unit_scale=True, desc=file.name) as bar:
                    return _copy_verified(response, file, folder, url, bar.update)
        except _NETWORK_ERRORS as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
        except OSError as exc:  # not the network: writing the temp file failed
            raise DataError(f"cannot write {file.name} into {folder}: {exc}") from exc
    raise DownloadUnavailable("; ".join(failures))


def _copy_verified(
    stream: BinaryIO,
    file: FileSpec,
    folder: Path,
    source: str,
    progress: Callable[[int], object] | None = None,
) -> TempFile:
    """Copy ``stream`` to a temp file in ``folder`` (created if needed) and check its checksum.

    The temp file is deleted on any failure.
    """
    algo, expected = ("sha256", file.sha256) if file.sha256 else ("md5", file.md5)
    digest = hashlib.new(algo)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        part = TempFile(folder, file.name, ".part")
    except OSError as exc:
        raise DownloadUnavailable(f"cannot write to {folder}: {exc.strerror or exc}") from exc
    try:
        while chunk := stream.read(_CHUNK):
            part.file.write(chunk)
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
        part.file.flush()
        actual = digest.hexdigest()
        if expected is not None and actual != expected.lower():
            raise DataError(
                f"{file.name} from {source} has {algo} {actual}, expected {expected}; the file "
                f"was not kept. Try again later, or fetch it yourself and put it at "
                f"{folder / file.name}"
            )
    except BaseException:
        part.discard()
        raise
    return part


def _extract(
    archive: Path,
    source: str,
    spec: DatasetSpec,
    folder: Path,
    required: list[str],
    optional: list[str],
) -> None:
    """Extract only the expected regular-file members of the verified ``.tar.gz`` ``source``."""
    wanted = {spec.archive_prefix + n: n for n in [*required, *optional]}
    found = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name.removeprefix("./"))
                if name is None or name in found:
                    continue
                if not member.isfile():
                    raise DataError(
                        f"{source}: member {member.name} is not a regular file; refusing to "
                        "extract it. The archive is not the official one"
                    )
                with tar.extractfile(member) as stream:  # type: ignore[union-attr]
                    part = _copy_verified(stream, spec.files[name], folder, source)
                with part:
                    _install(part, folder / name)
                found.add(name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"cannot extract {source} into {folder}: {exc}") from exc
    absent = [n for n in required if n not in found]
    if absent:
        raise DataError(
            f"{source} lacks {', '.join(spec.archive_prefix + n for n in absent)}; "
            "it is not the official archive"
        )
