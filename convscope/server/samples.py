"""The datasets the explorer offers: the official test set from the data directory when it is
there, else the sample bundled with convscope (``bundled/samples/<name>.npz``), else none; and
any split of the data directory's files by itself (the images chapter summaries point to)."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..bundle import bundled_sample
from ..data import Dataset, load_dataset
from ..errors import ConvscopeError
from .errors import ApiError, log

NAMES = ("mnist", "cifar10")
MAX_SCALE = 16
OFFICIAL_TEST_SIZE = 10_000  # MNIST's and CIFAR-10's


@dataclass(frozen=True)
class SampleSet:
    """A dataset on offer and where it came from (``source``: "data-dir" or "bundled")."""

    dataset: Dataset
    source: str

    @property
    def description(self) -> str:
        """What the images are, e.g. "bundled sample (300 images)"; "official test set" only for
        the full one."""
        count = len(self.dataset)
        if self.source == "bundled":
            what = "bundled sample"
        elif count == OFFICIAL_TEST_SIZE:
            what = "official test set"
        else:
            what = "test set from the data directory"
        return f"{what} ({count:,} images)"

    def image(self, index: int) -> torch.Tensor:
        """Sample ``index`` as uint8 (C, H, W); 404 outside the dataset."""
        if not 0 <= index < len(self.dataset):
            raise ApiError(404, f"{self.dataset.name} has no sample {index}: indices run "
                                f"0..{len(self.dataset) - 1}")
        return self.dataset.images[index]

    def png(self, index: int, scale: int = 1) -> bytes:
        """Sample ``index`` as a PNG, each pixel a ``scale`` x ``scale`` square."""
        if not 1 <= scale <= MAX_SCALE:
            raise ApiError(400, f"scale must be 1..{MAX_SCALE}, got {scale}")
        pixels = self.image(index).permute(1, 2, 0).numpy()
        picture = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        if scale > 1:
            picture = picture.resize((picture.width * scale, picture.height * scale),
                                     Image.Resampling.NEAREST)
        out = io.BytesIO()
        picture.save(out, format="PNG")
        return out.getvalue()


class Samples:
    """Loads each dataset once, on first use, and keeps it in memory."""

    def __init__(self, data_dir: str | None, bundled_dir: Path) -> None:
        self.data_dir = data_dir
        self.bundled_dir = bundled_dir
        self._loaded: dict[str, SampleSet | None] = {}
        self._splits: dict[tuple[str, str], Dataset | None] = {}
        self._lock = threading.RLock()

    def available(self) -> list[SampleSet]:
        return [s for s in (self._find(name) for name in NAMES) if s is not None]

    def get(self, name: str) -> SampleSet:
        found = self._find(name) if name in NAMES else None
        if found is None:
            offered = ", ".join(s.dataset.name for s in self.available()) or "none"
            raise ApiError(404, f"dataset {name!r} is not available (offered: {offered}); "
                                "put the official test set in the data directory (--data-dir)")
        return found

    def _find(self, name: str) -> SampleSet | None:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load(name)
            return self._loaded[name]

    def split(self, name: str, split: str) -> Dataset | None:
        """Split ``split`` ("train" or "test") of ``name`` from the data directory, or None when
        it lacks the files (nothing is downloaded)."""
        with self._lock:
            if (name, split) not in self._splits:
                try:
                    found = load_dataset(name, split, self.data_dir, download=False)
                except ConvscopeError:
                    found = None
                self._splits[name, split] = found
            return self._splits[name, split]

    def _load(self, name: str) -> SampleSet | None:
        test = self.split(name, "test")
        if test is not None:
            return SampleSet(test, "data-dir")
        try:
            sample = bundled_sample(name, self.bundled_dir)
        except (OSError, KeyError, ValueError) as exc:
            log.warning("ignoring the bundled sample of %s in %s: %s", name, self.bundled_dir, exc)
            return None
        return None if sample is None else SampleSet(sample, "bundled")
