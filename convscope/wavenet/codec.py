"""Mu-law coding of audio samples and the packed clip a WaveNet reads (torch-free).

A clip is one uint8 row (the ``input`` of a ``wavenet`` spec layer)::

    [digit, speaker, has_mel, 0 | mu-law codes of SAMPLES samples | the MELS x FRAMES
     log-mel image of convscope.audio.spectrogram_image, row by row]

``speaker`` is an index into the model's ``speakers`` (NO_SPEAKER: none given); ``has_mel`` 0
means "no spectrogram": the model then generates from the digit and speaker alone.
"""

from __future__ import annotations

import numpy as np

from convscope.layer_kinds import MU_LAW_CLASSES, WAVENET_HEADER

MU = MU_LAW_CLASSES - 1
SILENCE = 128  # the code of a zero sample (what comes before a clip's first sample)
NO_SPEAKER = 255
PEAK = 0.8  # training clips are scaled to this peak |sample| before coding


def mu_law_encode(samples: np.ndarray) -> np.ndarray:
    """Samples in [-1, 1] -> uint8 codes 0..255 (mu = 255; 128 is silence)."""
    x = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    return np.floor((y + 1.0) / 2.0 * MU + 0.5).astype(np.uint8)


def mu_law_decode(codes: np.ndarray) -> np.ndarray:
    """uint8 codes -> float32 samples in [-1, 1] (the inverse of :func:`mu_law_encode` up to
    the quantisation step)."""
    y = 2.0 * np.asarray(codes, dtype=np.float64) / MU - 1.0
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(MU)) / MU).astype(np.float32)


def pack(codes: np.ndarray, mel: np.ndarray, digit: int, speaker: int,
         has_mel: bool = True) -> np.ndarray:
    """One packed clip (a uint8 row); ``has_mel`` False: the model ignores ``mel``."""
    header = np.array([digit, speaker, int(has_mel), 0], np.uint8)
    return np.concatenate([header, np.asarray(codes, np.uint8).ravel(),
                           np.asarray(mel, np.uint8).ravel()])


def packed_length(samples: int, mels: int, frames: int) -> int:
    return WAVENET_HEADER + samples + mels * frames


def normalised(samples: np.ndarray) -> np.ndarray:
    """A clip scaled to peak :data:`PEAK` (silence stays silence)."""
    x = np.asarray(samples, dtype=np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    return x * (PEAK / peak) if peak > 0 else x
