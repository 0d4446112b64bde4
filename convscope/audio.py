"""Audio as convnet input: WAV reading, resampling, log-mel spectrograms as uint8 images.

A clip becomes a fixed-size image (1, N_MELS, FRAMES): resampled to SAMPLE_RATE, cut or padded
to CLIP_SAMPLES (see :func:`fix_length`), turned into a log-mel spectrogram (HTK mel scale,
triangles of peak 1, power in dB) and mapped from [loudest - TOP_DB, loudest] dB to 0..255.
Row 0 is the highest mel band (high pitch at the top, as spectrograms are drawn), column 0
the earliest frame. Everything is deterministic.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from convscope.errors import DataError

# ---- the feature parameters (shared by the FSDD loader and the server) ----------------------
SAMPLE_RATE = 8000  # Hz; other rates are resampled to this
N_FFT = 256  # 32 ms Hann window
HOP = 128  # 16 ms between frames
N_MELS = 32  # image height
FRAMES = 64  # image width
CLIP_SAMPLES = HOP * (FRAMES - 1)  # 8064 samples (1.008 s): centred STFT frames give FRAMES
F_MIN, F_MAX = 0.0, SAMPLE_RATE / 2
TOP_DB = 80.0  # dynamic range mapped to 0..255
FEATURES = {"rate": SAMPLE_RATE, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "frames": FRAMES,
            "f_min": F_MIN, "f_max": F_MAX, "top_db": TOP_DB, "version": 1}

MAX_SECONDS = 10.0  # longer WAVs are refused
MAX_FILE_BYTES = 64 * 2**20
SILENCE_PEAK = 1e-3  # clips whose peak |sample| stays below this count as silent

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
_CONVERT = ("convert it to 16-bit PCM WAV, e.g. `ffmpeg -i IN -c:a pcm_s16le -ac 1 OUT.wav` "
            "or `sox IN -b 16 -e signed-integer OUT.wav`")


# ---- reading --------------------------------------------------------------------------------


def read_wav(
    path_or_bytes: str | os.PathLike[str] | bytes, name: str | None = None
) -> tuple[np.ndarray, int]:
    """Decode an integer-PCM WAV (8/16/24/32-bit, any channels) to mono float32 in [-1, 1].

    Returns ``(samples, sample_rate)``; channels are averaged. ``name`` labels the audio in
    errors (default: the path, or "the uploaded audio" for bytes). Raises DataError for
    anything else: not RIFF/WAVE, float or compressed data, no samples, over MAX_SECONDS.
    """
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        data, label = bytes(path_or_bytes), name or "the uploaded audio"
    else:
        path = Path(path_or_bytes)
        label = name or str(path)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise DataError(f"{label}: file larger than {MAX_FILE_BYTES >> 20} MiB; "
                                f"trim it to at most {MAX_SECONDS:g} s of mono audio")
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {label}: {exc.strerror}") from exc
    fmt, body = _chunks(data, label)
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]  # first two bytes of the SubFormat GUID
    if tag == _FLOAT:
        raise DataError(f"{label}: 32/64-bit float WAV is not supported; {_CONVERT}")
    if tag != _PCM:
        raise DataError(f"{label}: compressed WAV (format tag 0x{tag:04x}) is not supported; "
                        f"{_CONVERT}")
    if bits not in (8, 16, 24, 32) or channels < 1 or rate < 1 \
            or block_align != channels * bits // 8:
        raise DataError(f"{label}: unsupported or inconsistent PCM format ({bits}-bit, "
                        f"{channels} channel(s), {rate} Hz, {block_align}-byte frames); "
                        f"{_CONVERT}")
    frames = len(body) // block_align
    if frames == 0:
        raise DataError(f"{label}: the WAV holds no audio samples; record or pick a clip "
                        f"that is not empty")
    if frames > MAX_SECONDS * rate:
        raise DataError(f"{label}: {frames / rate:.1f} s of audio is longer than the "
                        f"{MAX_SECONDS:g} s allowed; trim it to the part you want classified")
    pcm = _decode(body[: frames * block_align], bits).reshape(frames, channels)
    return pcm.mean(axis=1, dtype=np.float64).astype(np.float32), rate


def _chunks(data: bytes, label: str) -> tuple[bytes, bytes]:
    """The ``fmt `` and ``data`` chunk bodies of a RIFF/WAVE file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DataError(f"{label} is not a WAV file (no RIFF/WAVE header); {_CONVERT}")
    fmt = None
    offset = 12
    while offset + 8 <= len(data):
        kind, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = data[offset + 8:offset + 8 + size]  # a truncated last chunk keeps what is there
        if kind == b"fmt ":
            fmt = body
        elif kind == b"data":
            if fmt is None or len(fmt) < 16:
                break
            return fmt, body
        offset += 8 + size + (size & 1)
    raise DataError(f"{label}: damaged WAV file (no format chunk before the audio data); "
                    f"{_CONVERT}")


def _decode(raw: bytes, bits: int) -> np.ndarray:
    """Little-endian PCM bytes -> float32 in [-1, 1) (8-bit is unsigned, the rest signed)."""
    if bits == 8:
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    if bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] << 8 | b[:, 1] << 16 | b[:, 2] << 24) >> 8  # sign-extend via int32
        return (ints / 2.0**23).astype(np.float32)
    ints = np.frombuffer(raw, "<i2" if bits == 16 else "<i4")
    return (ints / 2.0 ** (bits - 1)).astype(np.float32)


# ---- signal helpers -------------------------------------------------------------------------


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling by zero-padding or truncating the spectrum (FFT method).

    Frequencies above the lower Nyquist limit are removed (no aliasing). The clip is treated
    as periodic, so a loud start/end can ring into the other end; speech clips start and end
    near silence.
    """
    x = np.asarray(samples, dtype=np.float64)
    if rate == target or len(x) == 0:
        return x.astype(np.float32)
    n_out = max(1, round(len(x) * target / rate))
    spectrum = np.fft.rfft(x)
    out = np.zeros(n_out // 2 + 1, dtype=np.complex128)
    keep = min(len(spectrum), len(out))
    out[:keep] = spectrum[:keep]
    if n_out < len(x) and n_out % 2 == 0:
        out[-1] = 0.0  # a tone exactly at the new Nyquist frequency is ambiguous
    elif n_out > len(x) and len(x) % 2 == 0:
        out[len(x) // 2] *= 0.5  # the old Nyquist bin splits into +/- frequencies
    return (np.fft.irfft(out, n_out) * (n_out / len(x))).astype(np.float32)


def is_silent(samples: np.ndarray) -> bool:
    """True for empty clips and clips whose peak |sample| is below SILENCE_PEAK (-60 dBFS)."""
    x = np.asarray(samples)
    return x.size == 0 or float(np.abs(x).max()) < SILENCE_PEAK


def _require_sound(samples: np.ndarray) -> None:
    if is_silent(samples):
        raise DataError("the audio is empty or silent (peak below -60 dBFS); record the spoken "
                        "digit closer to the microphone or pick another clip")


def loudest_start(samples: np.ndarray, length: int = CLIP_SAMPLES) -> int:
    """Start of the ``length``-sample window of highest energy (the first on ties); 0 for clips
    that are not longer than ``length``."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) <= length:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(x**2)])
    return int(np.argmax(energy[length:] - energy[:-length]))


def fix_length(samples: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Exactly ``length`` samples: shorter clips are centred in silence; longer ones keep the
    window of highest energy (:func:`loudest_start`)."""
    x = np.asarray(samples, dtype=np.float32)
    if len(x) <= length:
        left = (length - len(x)) // 2
        return np.pad(x, (left, length - len(x) - left))
    start = loudest_start(x, length)
    return x[start:start + length]


# ---- features -------------------------------------------------------------------------------


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 * log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_centers(n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """Centre frequencies (Hz) of the mel bands: equally spaced in mel between the edges."""
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))[1:-1]


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE,
                   f_min: float = F_MIN, f_max: float | None = None) -> torch.Tensor:
    """Triangular HTK mel filters (n_mels, n_fft // 2 + 1) over the rFFT bins.

    Filter m rises from centre m-1 to a peak of 1 at centre m and falls to 0 at centre m+1
    (unnormalised, so between the first and last centres the filters sum to 1).
    """
    f_max = rate / 2 if f_max is None else f_max
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32))


def log_mel(samples: np.ndarray, rate: int = SAMPLE_RATE, n_mels: int = N_MELS,
            n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """Mel power spectrogram in dB (10 log10, floor 1e-10), low band first.

    ``samples`` is one clip (time,) -> (n_mels, frames), or equally long clips (clips, time)
    -> (clips, n_mels, frames). Frames are centred (zero padding): ``1 + time // hop`` of them.
    Raises DataError for empty or silent clips.
    """
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"log_mel takes (time,) or (clips, time) samples, got {x.shape}")
    for clip in x.reshape(-1, x.shape[-1]) if x.size else [x]:
        _require_sound(clip)
    stft = torch.stft(torch.from_numpy(x), n_fft, hop_length=hop, window=torch.hann_window(n_fft),
                      center=True, pad_mode="constant", return_complex=True)
    power = stft.real.square() + stft.imag.square()
    mel = mel_filterbank(n_mels, n_fft, rate) @ power
    return 10.0 * torch.log10(mel.clamp_min(1e-10))


def spectrogram_image(samples: np.ndarray, rate: int) -> torch.Tensor:
    """The convnet's input for a clip: uint8 (1, N_MELS, FRAMES), see the module docstring."""
    return spectrogram_images([(samples, rate)])[0]


def spectrogram_images(clips: Iterable[tuple[np.ndarray, int]]) -> torch.Tensor:
    """:func:`spectrogram_image` of many ``(samples, rate)`` clips: uint8 (N, 1, N_MELS, FRAMES),
    computed in one batch (each clip still scaled to its own loudest value)."""
    fixed = []
    for samples, rate in clips:
        _require_sound(samples)  # before resampling, whose ringing could lift a silent clip
        fixed.append(fix_length(resample(samples, rate, SAMPLE_RATE)))
    if not fixed:
        return torch.zeros((0, 1, N_MELS, FRAMES), dtype=torch.uint8)
    db = log_mel(np.stack(fixed))
    floor = db.amax(dim=(1, 2), keepdim=True) - TOP_DB
    image = ((db - floor) * (255.0 / TOP_DB)).clamp_(0.0, 255.0).round_().to(torch.uint8)
    return image.flip(1).unsqueeze(1)
