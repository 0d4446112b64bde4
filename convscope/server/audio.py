"""Spoken digits for the audio page: an uploaded or listed WAV as the spectrogram image the
network sees, plus what to draw of the clip (a waveform envelope and the window heard)."""

from __future__ import annotations

import numpy as np
import torch

from ..audio import (
    CLIP_SAMPLES,
    SAMPLE_RATE,
    loudest_start,
    read_wav,
    resample,
    spectrogram_image,
)
from .errors import ApiError
from .inputs import MAX_UPLOAD_BYTES

WAVEFORM_COLUMNS = 400


def read_upload(content: bytes) -> tuple[np.ndarray, int]:
    """An uploaded WAV as mono float32 samples and its rate: 413 past 5 MB; 400 (DataError)
    for anything :func:`convscope.audio.read_wav` refuses."""
    if len(content) > MAX_UPLOAD_BYTES:
        raise ApiError(413, f"the upload has {len(content):,} bytes; at most "
                            f"{MAX_UPLOAD_BYTES:,} (5 MB) are accepted: trim the recording to "
                            "the spoken digit")
    return read_wav(content, name="the uploaded audio")


def heard_window(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """The part of the clip the network hears, (start, end) in seconds: the whole clip when it
    is shorter than the network's window (it is centred in silence), else the window of highest
    energy, as :func:`convscope.audio.fix_length` chooses it."""
    x = resample(samples, rate, SAMPLE_RATE)
    if len(x) <= CLIP_SAMPLES:
        return 0.0, len(samples) / rate
    start = loudest_start(x)
    return start / SAMPLE_RATE, (start + CLIP_SAMPLES) / SAMPLE_RATE


def envelope(samples: np.ndarray, columns: int = WAVEFORM_COLUMNS) -> dict:
    """The lowest and highest sample of each of ``columns`` equal stretches of the clip."""
    parts = np.array_split(samples, min(columns, len(samples)))
    return {"min": [float(p.min()) for p in parts], "max": [float(p.max()) for p in parts]}


def analyse(samples: np.ndarray, rate: int) -> tuple[torch.Tensor, dict]:
    """The spectrogram image uint8 (1, mels, frames) of a clip and its description for the
    page (``rate``, ``seconds``, the ``window`` heard, the network's window length ``heard``
    in seconds, ``waveform``); silent clips raise DataError."""
    image = spectrogram_image(samples, rate)
    start, end = heard_window(samples, rate)
    return image, {"rate": rate, "seconds": len(samples) / rate,
                   "window": {"start": start, "end": end}, "heard": CLIP_SAMPLES / SAMPLE_RATE,
                   "waveform": envelope(samples)}
