"""Mu-law coding of audio samples and the packed clip a WaveNet reads (torch-free).

A clip is one uint8 row (the ``input`` of a ``wavenet`` spec layer)::

    [digit, speaker, has_mel, 0 | mu-law codes of SAMPLES samples | the MELS x FRAMES
     log-mel image of convscope.audio.spectrogram_image, row by row]

The codes may be of pre-emphasised audio (a model's ``preemphasis`` a > 0, as LPCNet and
WaveRNN do): ``y[t] = x[t] - a x[t-1]`` lifts the quiet high frequencies of speech above
mu-law's quantisation noise, and :class:`DeEmphasis` turns generated codes back into audio.
``speaker`` is an index into the model's ``speakers`` (NO_SPEAKER: none given); ``has_mel`` 0
means "no spectrogram": the model then generates from the digit and speaker alone.
"""

from __future__ import annotations

import numpy as np

from convscope.layer_kinds import MU_LAW_CLASSES, WAVENET_HEADER
from convscope.wavenet import PEAK

MU = MU_LAW_CLASSES - 1
SILENCE = 128  # the code of a zero sample (what comes before a clip's first sample)
NO_SPEAKER = 255


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


def normalised(samples: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """A clip scaled to peak |sample| ``peak`` (default :data:`PEAK`; silence stays silence)."""
    x = np.asarray(samples, dtype=np.float32)
    top = float(np.abs(x).max()) if x.size else 0.0
    return x * (peak / top) if top > 0 else x


def pre_emphasis(samples: np.ndarray, coefficient: float) -> np.ndarray:
    """float32 ``y[t] = x[t] - coefficient * x[t-1]`` (``x[-1]`` = 0): 0 leaves them as they are."""
    x = np.asarray(samples, dtype=np.float64)
    y = x.copy()
    y[1:] -= coefficient * x[:-1]
    return y.astype(np.float32)


def de_emphasis_gain(coefficient: float) -> float:
    """The output gain of :class:`DeEmphasis`: sqrt(1 - a). The inverse filter amplifies the
    low frequencies up to 1 / (1 - a) (6.7x for a = 0.85); scaling by 1 - a never clips but
    leaves speech about 15 dB quiet; sqrt(1 - a) keeps 99% of FSDD's recordings under full
    scale, their median peak at 0.48 (a realdata test checks it). 1 for a = 0."""
    return float(np.sqrt(1.0 - coefficient))


class DeEmphasis:
    """The inverse of :func:`pre_emphasis`, ``x[t] = y[t] + a x[t-1]``, scaled by
    :func:`de_emphasis_gain`, over successive chunks of one stream (it carries the last
    sample): the same samples whether it is fed a clip whole or in chunks."""

    BLOCK = 256  # samples per matrix product

    def __init__(self, coefficient: float) -> None:
        self.coefficient, self.gain = float(coefficient), de_emphasis_gain(coefficient)
        self.last = 0.0  # the previous output, unscaled
        rows, columns = np.indices((self.BLOCK, self.BLOCK))
        lag = np.clip(rows - columns, 0, None)
        # within a block, x = matrix @ y + carry * last (a lower-triangular sum of powers of a)
        self.matrix = np.where(rows >= columns, self.coefficient ** lag, 0.0)
        self.carry = self.coefficient ** np.arange(1, self.BLOCK + 1)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        y = np.asarray(samples, dtype=np.float64)
        if self.coefficient == 0:
            return y.astype(np.float32)
        x = np.empty_like(y)
        for start in range(0, len(y), self.BLOCK):
            block = y[start:start + self.BLOCK]
            k = len(block)
            x[start:start + k] = self.matrix[:k, :k] @ block + self.carry[:k] * self.last
            self.last = float(x[start + k - 1])
        return (x * self.gain).astype(np.float32)
