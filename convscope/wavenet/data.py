"""FSDD as packed WaveNet clips (see :mod:`convscope.wavenet.codec`): each recording
resampled to 8 kHz, fitted to ``CLIP_SAMPLES`` as the classifier's features are
(:func:`convscope.audio.fix_length`), pre-emphasised as the model says
(:func:`~convscope.wavenet.codec.pre_emphasis`), scaled to a fixed peak and mu-law coded, with
the classifier's own log-mel image.

Training and scoring read the middle WINDOW_SAMPLES of each clip (frames WINDOW_START to
WINDOW_START + WINDOW_FRAMES - 1 of its image, whose centres span exactly those samples): the
clips are short recordings centred in silence, and the window halves the cost of a step. The
network is convolutional, so it generates and resynthesises clips of any length.
"""

from __future__ import annotations

import numpy as np
import torch

from convscope.audio import CLIP_SAMPLES, HOP, SAMPLE_RATE, fix_length, read_wav, resample
from convscope.data import Dataset, load_dataset
from convscope.data.cache import cached_arrays
from convscope.data.fsdd import FOLDER, load_fsdd_recordings
from convscope.data.paths import resolve_data_dir
from convscope.wavenet.codec import mu_law_encode, normalised, pack, pre_emphasis


def clip_codes(samples: np.ndarray, rate: int,
               preemphasis: float = 0.0) -> tuple[np.ndarray, tuple[int, int]]:
    """The mu-law codes of a clip fitted to CLIP_SAMPLES and pre-emphasised by
    ``preemphasis``, and the span (start, end) of the recording inside it (the rest is the
    silence it was centred in)."""
    x = resample(samples, rate, SAMPLE_RATE)
    left = max(0, (CLIP_SAMPLES - len(x)) // 2)
    span = (left, left + min(len(x), CLIP_SAMPLES))
    return mu_law_encode(normalised(pre_emphasis(fix_length(x), preemphasis))), span


WINDOW_START = 16  # first frame of the window (frame f is centred on sample f * HOP)
WINDOW_FRAMES = 33
WINDOW_SAMPLES = HOP * (WINDOW_FRAMES - 1)  # 4,096 samples (0.512 s)


def _codes(paths: list, preemphasis: float) -> dict[str, np.ndarray]:
    codes = np.zeros((len(paths), CLIP_SAMPLES), np.uint8)
    spans = np.zeros((len(paths), 2), np.int64)
    for i, path in enumerate(paths):
        codes[i], spans[i] = clip_codes(*read_wav(path), preemphasis)
    return {"codes": codes, "spans": spans}


def load_clips(split: str, data_dir: str | None = None, preemphasis: float = 0.0) -> Dataset:
    """FSDD's official ``split`` ("train": takes 5-49, "test": takes 0-4) as packed windows
    (the codes pre-emphasised by ``preemphasis``, the model's):
    ``images`` uint8 (N, 1, 1, packed length), labels the digits; ``targets``: ``codes``
    (N, WINDOW_SAMPLES) uint8, ``span`` (N, 2: the recording's part of the window),
    ``speaker``, ``take`` and ``image``, the whole clip's (N, mels, frames) log-mel image."""
    spectrograms = load_dataset("fsdd", split, data_dir=data_dir)  # fetched and checked
    root = resolve_data_dir(data_dir) / FOLDER
    _, found = load_fsdd_recordings(root, split)
    paths = [path for path, _, _, _ in found]
    coding = f"peak-mu-law-v1-{CLIP_SAMPLES}" + (f"-preemphasis-{preemphasis!r}"
                                                   if preemphasis else "")
    arrays = cached_arrays(f"fsdd-wavenet-{split}", paths, lambda: _codes(paths, preemphasis),
                           extra=coding)
    first = WINDOW_START * HOP
    codes = np.ascontiguousarray(arrays["codes"][:, first:first + WINDOW_SAMPLES])
    spans = np.clip(arrays["spans"] - first, 0, WINDOW_SAMPLES)
    mels = spectrograms.images.numpy()[:, 0, :, WINDOW_START:WINDOW_START + WINDOW_FRAMES]
    speakers = spectrograms.targets["speaker"].numpy()
    rows = np.stack([pack(codes[i], mels[i], int(spectrograms.labels[i]), int(speakers[i]))
                     for i in range(len(paths))])
    return Dataset("fsdd-wavenet", torch.from_numpy(rows)[:, None, None, :],
                   spectrograms.labels.clone(), list(spectrograms.classes),
                   {"codes": torch.from_numpy(codes), "span": torch.from_numpy(spans),
                    "speaker": spectrograms.targets["speaker"].clone(),
                    "take": spectrograms.targets["take"].clone(),
                    "image": spectrograms.images[:, 0].clone()})
