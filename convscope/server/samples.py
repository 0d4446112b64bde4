"""The datasets the explorer offers: the official test set from the data directory when it is
there, else the sample bundled with convscope (``bundled/samples/<name>.npz``), else none; MNIST
test scenes made from those digits (``mnist-<kind>-scenes``); the FSDD test recordings of the
data directory, else the bundled ones (``bundled/samples/fsdd/``), as spectrogram images
(``fsdd``); and any split of the data directory's files by itself (the images chapter summaries
point to)."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..bundle import bundled_sample
from ..data import DATASETS, Dataset, DatasetEntry, load_dataset
from ..data.fsdd import ENTRY as FSDD
from ..data.fsdd import FOLDER as FSDD_FOLDER
from ..data.fsdd import load_fsdd_recordings
from ..data.paths import resolve_data_dir
from ..errors import ConvscopeError
from ..scenes import make_scenes
from .encode import uint8_json
from .errors import ApiError, log

SCENE_COUNT = 1000  # the first scenes of the test scenes a scene run is evaluated on
MAX_SCALE = 16


@dataclass(frozen=True)
class SampleSet:
    """A dataset on offer and where it came from (``source``: "data-dir" or "bundled");
    ``summary`` describes it when the default wording does not fit."""

    dataset: Dataset
    source: str
    summary: str | None = None

    @property
    def description(self) -> str:
        """What the images are, e.g. "bundled sample (300 images)"; "official test set" only for
        the full one."""
        if self.summary is not None:
            return self.summary
        count = len(self.dataset)
        entry = DATASETS.get(self.dataset.name)
        if self.source == "bundled":
            what = "bundled sample"
        elif entry is not None and count == (entry.splits or {}).get("test"):
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

    def truth(self, index: int) -> dict:
        """Sample ``index``'s label and, for scenes, its digits' boxes and its mask."""
        self.image(index)
        targets = self.dataset.targets
        objects = mask = None
        if "boxes" in targets and "classes" in targets:
            boxes, classes = targets["boxes"][index], targets["classes"][index]
            objects = [{"class": int(c), "box": [float(v) for v in box]}
                       for box, c in zip(boxes.tolist(), classes.tolist(), strict=True) if c >= 0]
        if "masks" in targets:
            mask = uint8_json(targets["masks"][index])
        return {"label": int(self.dataset.labels[index]), "objects": objects, "mask": mask}

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


@dataclass(frozen=True)
class Offer:
    """A dataset as ``GET /api/datasets`` lists it (known without loading it): its catalogue
    entry, its class names, where its samples come from and how many there are."""

    entry: DatasetEntry
    classes: list[str]
    source: str
    count: int

    @property
    def name(self) -> str:
        return self.entry.name

    def json(self) -> dict:
        return {**self.entry.json(), "classes": self.classes, "source": self.source,
                "count": self.count}


@dataclass(frozen=True)
class Recording:
    """An FSDD test recording; ``index`` is its sample index in the ``fsdd`` dataset."""

    index: int
    path: Path
    digit: int
    speaker: str
    take: int

    def json(self) -> dict:
        return {"index": self.index, "name": self.path.stem, "digit": self.digit,
                "speaker": self.speaker, "take": self.take}


class Samples:
    """Loads each dataset once, on first use, and keeps it in memory."""

    def __init__(self, data_dir: str | None, bundled_dir: Path) -> None:
        self.data_dir = data_dir
        self.bundled_dir = bundled_dir
        self._loaded: dict[str, SampleSet | None] = {}
        self._splits: dict[tuple[str, str], Dataset | None] = {}
        self._recordings: tuple[list[Recording], str | None] | None = None
        self._recordings_source: str | None = None  # "data-dir" or "bundled", once found
        self._recordings_test: Dataset | None = None  # their spectrogram images, in their order
        self._lock = threading.RLock()

    def offers(self) -> list[Offer]:
        """The datasets on offer; scenes and recordings are counted, not yet made or decoded."""
        offers = (self._offer(entry) for entry in DATASETS.values())
        return [offer for offer in offers if offer is not None]

    def _offer(self, entry: DatasetEntry) -> Offer | None:
        """``entry`` as offered, or None when there are no samples of it."""
        if entry.kind == "scenes":
            digits = self._find("mnist")
            if digits is None:
                return None
            return Offer(entry, list(entry.classes), digits.source, SCENE_COUNT)
        if entry.name == FSDD.name:
            listed, _ = self.recordings()
            if not listed:
                return None
            return Offer(entry, list(entry.classes), self._recordings_source, len(listed))
        found = self._find(entry.name)
        if found is None:
            return None
        return Offer(entry, found.dataset.classes, found.source, len(found.dataset))

    def get(self, name: str) -> SampleSet:
        found = self._find(name) if name in DATASETS else None
        if found is None:
            offered = ", ".join(o.name for o in self.offers()) or "none"
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

    def recordings(self) -> tuple[list[Recording], str | None]:
        """The usable FSDD test recordings (takes 0-4) of the data directory, else the bundled
        ones, in the ``fsdd`` dataset's order, and a note saying why there are none (else None).
        Unusable recordings are left out, with a logged warning each."""
        with self._lock:
            if self._recordings is None:
                found, note = [], None
                for source, root in (("data-dir", resolve_data_dir(self.data_dir) / FSDD_FOLDER),
                                     ("bundled", self.bundled_dir / FSDD.name)):
                    try:
                        test, found = load_fsdd_recordings(root, "test", skip_bad=True)
                    except ConvscopeError as exc:
                        note = note or f"no spoken digits to offer: {exc}"
                    else:
                        self._recordings_source, self._recordings_test = source, test
                        note = None if found else (f"no spoken digits to offer: {root} has no "
                                                   "test recordings (takes 0-4)")
                        break
                if note:
                    log.warning("%s", note)
                self._recordings = ([Recording(i, *r) for i, r in enumerate(found)],
                                    None if found else note)
            return self._recordings

    def recording(self, index: int) -> Recording:
        """Test recording ``index``; 404 when there is no such recording."""
        listed, note = self.recordings()
        if not 0 <= index < len(listed):
            raise ApiError(404, note or f"there is no recording {index}: indices run "
                                        f"0..{len(listed) - 1}")
        return listed[index]

    def _load(self, name: str) -> SampleSet | None:
        entry = DATASETS[name]
        if entry.kind == "scenes":
            return self._scenes(entry)
        if name == FSDD.name:
            return self._spoken_digits()
        test = self.split(name, "test")
        if test is not None:
            return SampleSet(test, "data-dir")
        try:
            sample = bundled_sample(name, self.bundled_dir)
        except (OSError, KeyError, ValueError) as exc:
            log.warning("ignoring the bundled sample of %s in %s: %s", name, self.bundled_dir, exc)
            return None
        return None if sample is None else SampleSet(sample, "bundled")

    def _spoken_digits(self) -> SampleSet | None:
        """The recordings of :meth:`recordings`, in its order, as the spectrogram images an
        audio network sees."""
        listed, _ = self.recordings()
        test = self._recordings_test
        if not listed or test is None:
            return None
        if self._recordings_source == "bundled":
            return SampleSet(test, "bundled",
                             f"the bundled FSDD test recordings ({len(test)} clips)")
        return SampleSet(test, "data-dir", f"FSDD test recordings (takes 0-4, {len(test):,} clips)")

    def _scenes(self, entry: DatasetEntry) -> SampleSet | None:
        """Scenes 0..SCENE_COUNT-1 (seed 0) of the scene set ``entry``, made of the offered MNIST
        test digits: from the data directory, the first of the test scenes a scene run is
        evaluated on."""
        digits = self._find("mnist")
        if digits is None:
            return None
        try:
            scenes = make_scenes(entry.scene_kind, digits.dataset, SCENE_COUNT, seed=0)
        except ConvscopeError as exc:
            log.warning("cannot make %s from %s: %s", entry.name, digits.description, exc)
            return None
        made_of = ("the data directory's MNIST test digits" if digits.source == "data-dir"
                   else f"the bundled sample's {len(digits.dataset):,} MNIST test digits")
        return SampleSet(scenes.to_dataset(entry.name), digits.source,
                         f"{SCENE_COUNT:,} test scenes (seed 0) made of {made_of}")
