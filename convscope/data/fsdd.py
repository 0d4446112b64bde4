"""The Free Spoken Digit Dataset as spectrogram images (see :mod:`convscope.audio`).

Recordings ``{digit}_{speaker}_{take}.wav`` live in ``<data_dir>/fsdd/recordings/``. Dataset
names: ``fsdd`` (the official split: takes 0-4 test, 5-49 train) and ``fsdd-holdout-<speaker>``
(speaker-independent: test = all of that speaker's recordings, train = everyone else's).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import torch

from convscope.audio import FEATURES, FRAMES, N_MELS, is_silent, read_wav, spectrogram_images
from convscope.data.cache import cached_arrays
from convscope.data.catalog import DatasetEntry
from convscope.data.dataset import Dataset
from convscope.errors import DataError

FOLDER = Path("fsdd") / "recordings"
HOLDOUT = re.compile(r"fsdd-holdout-(?P<speaker>.+)")
TEST_TAKES = 5  # takes 0-4 are the official test set
CLASSES = [str(d) for d in range(10)]
_FILE = re.compile(r"(?P<digit>[0-9])_(?P<speaker>[a-z]+)_(?P<take>[0-9]+)\.wav")
_SOURCE = "github.com/Jakobovski/free-spoken-digit-dataset (its folder recordings/)"
log = logging.getLogger(__name__)


Recording = tuple[Path, int, str, int]
"""``(path, digit, speaker, take)`` of one WAV file."""


def recordings(root: str | Path, skip_bad: bool = False) -> list[Recording]:
    """``(path, digit, speaker, take)`` of every WAV in ``root``, sorted by file name.

    A file whose name does not follow the pattern raises DataError, or with ``skip_bad`` is
    left out with a logged warning.
    """
    root = Path(root)
    files = sorted(root.glob("*.wav")) if root.is_dir() else []
    if not files:
        raise DataError(f"no FSDD recordings in {root}: put the 3,000 WAV files from {_SOURCE} "
                        f"there, or pass --data-dir (or set CONVSCOPE_DATA) to a directory "
                        f"that holds {FOLDER}/")
    found = []
    for path in files:
        match = _FILE.fullmatch(path.name)
        if match is None:
            problem = (f"{path}: FSDD file names must read <digit>_<speaker>_<take>.wav; "
                       f"rename or remove this file")
            if not skip_bad:
                raise DataError(problem)
            log.warning("skipping a bad FSDD recording: %s", problem)
            continue
        found.append((path, int(match["digit"]), match["speaker"], int(match["take"])))
    return found


def speakers(root: str | Path) -> list[str]:
    """The speakers in ``root``, sorted (``targets["speaker"]`` indexes this list)."""
    return sorted({speaker for _, _, speaker, _ in recordings(root)})


def load_fsdd(root: str | Path, split: str, holdout_speaker: str | None = None) -> Dataset:
    """FSDD ``split`` ("train"/"test") as uint8 spectrogram images (N, 1, N_MELS, FRAMES).

    ``root`` is the recordings folder. Labels are the digits; ``targets`` holds ``speaker``
    (index into :func:`speakers`) and ``take``. With ``holdout_speaker`` the test split is
    all of that speaker's clips and the train split everyone else's; else takes decide.
    Decoded images are cached (keyed on the files and the feature parameters). A recording
    that cannot be used (misnamed, damaged, silent) raises DataError naming it.
    """
    return load_fsdd_recordings(root, split, holdout_speaker)[0]


def load_fsdd_recordings(
    root: str | Path, split: str, holdout_speaker: str | None = None, skip_bad: bool = False
) -> tuple[Dataset, list[Recording]]:
    """:func:`load_fsdd` and the recordings of its samples, in order. With ``skip_bad``,
    unusable recordings are left out with a logged warning each; DataError when none is left.
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    found = recordings(root, skip_bad)
    names = sorted({speaker for _, _, speaker, _ in found})
    if holdout_speaker is not None and holdout_speaker not in names:
        raise DataError(f"unknown FSDD speaker {holdout_speaker!r}; use one of: "
                        f"{', '.join(names)} (e.g. fsdd-holdout-{names[0]})")
    paths = [path for path, _, _, _ in found]
    arrays = cached_arrays("fsdd", paths, lambda: _decode(paths),
                           extra=json.dumps(FEATURES, sort_keys=True))
    images, usable = torch.from_numpy(arrays["images"]), torch.ones(len(found), dtype=torch.bool)
    for index, problem in zip(arrays.get("bad", []), arrays.get("why", []), strict=True):
        if not skip_bad:
            raise DataError(str(problem))
        log.warning("skipping a bad FSDD recording: %s", problem)
        usable[int(index)] = False
    if not usable.any():
        raise DataError(f"none of the {len(found)} FSDD recordings in {root} can be used (see "
                        f"the warnings); restore the original files from {_SOURCE}")
    digits = torch.tensor([digit for _, digit, _, _ in found])
    speaker = torch.tensor([names.index(s) for _, _, s, _ in found])
    take = torch.tensor([t for _, _, _, t in found])
    if holdout_speaker is None:
        in_test = take < TEST_TAKES
    else:
        in_test = speaker == names.index(holdout_speaker)
    keep = usable & (in_test if split == "test" else ~in_test)
    name = "fsdd" if holdout_speaker is None else f"fsdd-holdout-{holdout_speaker}"
    full = Dataset(name, images, digits, list(CLASSES), {"speaker": speaker, "take": take})
    return full.subset(keep), [r for r, kept in zip(found, keep.tolist(), strict=True) if kept]


ENTRY = DatasetEntry(
    "fsdd", "Free Spoken Digit Dataset", "recordings", (FRAMES, N_MELS, 1), tuple(CLASSES),
    "none", {"train": 2_700, "test": 300},
    loader=lambda split, data_dir: load_fsdd(data_dir / FOLDER, split))
"""The official split in the catalogue (``fsdd-holdout-<speaker>`` is loaded by name)."""


def _decode(paths: list[Path], chunk: int = 250) -> dict[str, np.ndarray]:
    """Spectrogram ``images`` of the WAVs at ``paths``, in batches of ``chunk`` clips; the
    indices of those that cannot be used (``bad``, zero images) and ``why``, one line each."""
    images = np.zeros((len(paths), 1, N_MELS, FRAMES), dtype=np.uint8)
    bad, why = [], []
    for start in range(0, len(paths), chunk):
        good, clips = [], []
        for index in range(start, min(start + chunk, len(paths))):
            try:
                clip = read_wav(paths[index])
                if is_silent(clip[0]):
                    raise DataError(f"{paths[index]} is silent (or empty); remove it or restore "
                                    f"the original file from {_SOURCE}")
            except DataError as exc:
                bad.append(index)
                why.append(str(exc))
                continue
            good.append(index)
            clips.append(clip)
        if clips:
            images[good] = spectrogram_images(clips).numpy()
    return {"images": images, "bad": np.array(bad, dtype=np.int64), "why": np.array(why, dtype=str)}
