"""WAV reading, resampling, mel filterbank, log-mel and spectrogram images (synthetic audio)."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from convscope.audio import (
    CLIP_SAMPLES,
    FRAMES,
    N_MELS,
    fix_length,
    hz_to_mel,
    is_silent,
    log_mel,
    loudest_start,
    mel_centers,
    mel_filterbank,
    mel_to_hz,
    read_wav,
    resample,
    spectrogram_image,
)
from convscope.errors import DataError


def sine(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(round(rate * seconds)) / rate)


def write_wav(path: Path, ints: np.ndarray, rate: int, width: int) -> Path:
    """A PCM WAV written by the stdlib: ``ints`` (frames, channels) already in file encoding."""
    ints = ints.reshape(len(ints), -1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(ints.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 3:
            raw = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        else:
            raw = ints.astype({1: np.uint8, 2: "<i2", 4: "<i4"}[width]).tobytes()
        w.writeframes(raw)
    return path


def riff(fmt: bytes, data: bytes) -> bytes:
    """A RIFF/WAVE file from a raw ``fmt `` chunk body and ``data`` bytes."""
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_chunk(tag: int, channels: int, rate: int, bits: int, sub: int | None = None) -> bytes:
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if sub is not None:  # WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, mask, SubFormat GUID
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", sub) + bytes(14)
    return fmt


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


# ---- reading --------------------------------------------------------------------------------


def test_read_16bit_matches_stdlib_writer(tmp_path):
    ints = np.round(sine(440, 8000) * 32767).astype(np.int16)
    samples, rate = read_wav(write_wav(tmp_path / "a.wav", ints, 8000, 2))
    assert rate == 8000 and samples.dtype == np.float32 and samples.shape == (4000,)
    np.testing.assert_array_equal(samples, ints / 32768.0)
    assert read_wav((tmp_path / "a.wav").read_bytes())[0].tolist() == samples.tolist()


def test_read_stereo_mixes_to_mono(tmp_path):
    left = np.array([1000, -2000, 32767, 0])
    ints = np.stack([left, -left // 2], axis=1)
    samples, _ = read_wav(write_wav(tmp_path / "s.wav", ints, 8000, 2))
    np.testing.assert_allclose(samples, (left + (-left // 2)) / 2 / 32768.0, rtol=1e-6)


@pytest.mark.parametrize(("width", "ints", "expected"), [
    (1, [0, 128, 255, 64], [-1.0, 0.0, 127 / 128, -0.5]),  # 8-bit WAV is unsigned
    (3, [-2**23, 0, 2**23 - 1, -1, 2**22], [-1.0, 0.0, 1 - 2**-23, -(2**-23), 0.5]),
    (4, [-2**31, 0, 2**30, -1], [-1.0, 0.0, 0.5, -(2**-31)]),
])
def test_read_other_widths(tmp_path, width, ints, expected):
    samples, rate = read_wav(write_wav(tmp_path / "w.wav", np.array(ints), 11025, width))
    assert rate == 11025
    np.testing.assert_allclose(samples, expected, rtol=0, atol=1e-7)


def test_read_extensible_pcm_and_odd_chunks():
    data = np.array([100, -100, 32767], "<i2").tobytes()
    extra = b"LIST" + struct.pack("<I", 3) + b"abc" + b"\0"  # odd-sized chunk + pad byte
    blob = riff(fmt_chunk(0xFFFE, 1, 16000, 16, sub=1), data)
    blob = blob[:12] + extra + blob[12:]
    samples, rate = read_wav(blob)
    assert rate == 16000 and samples.tolist() == pytest.approx([100 / 32768, -100 / 32768,
                                                                32767 / 32768])


@pytest.mark.parametrize(("blob", "match"), [
    (riff(fmt_chunk(3, 1, 8000, 32), np.zeros(8, np.float32).tobytes()), "float"),
    (riff(fmt_chunk(0xFFFE, 1, 8000, 32, sub=3), bytes(32)), "float"),
    (riff(fmt_chunk(0x11, 1, 8000, 4), bytes(64)), "compressed.*0x0011"),
    (riff(fmt_chunk(1, 1, 8000, 12), bytes(64)), "unsupported or inconsistent"),
    (b"ID3\x04 this is an mp3, honest" * 4, "not a WAV"),
    (b"", "not a WAV"),
    (b"RIFF\x04\x00\x00\x00WAVEdata\x00\x00\x00\x00", "damaged"),
    (riff(fmt_chunk(1, 1, 8000, 16), b""), "no audio samples"),
    (riff(fmt_chunk(1, 1, 8000, 16), b"\x01"), "no audio samples"),  # half a frame
    (riff(fmt_chunk(1, 1, 8000, 8), bytes(88_001)), "longer than the 10 s"),
])
def test_read_refuses_with_reason_and_fix(blob, match):
    with pytest.raises(DataError, match=match) as info:
        read_wav(blob, name="clip.wav")
    assert str(info.value).startswith("clip.wav")
    if match in ("float", "not a WAV", "damaged"):
        assert "convert it to 16-bit PCM WAV" in str(info.value)


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    with pytest.raises(DataError, match="notes.wav is not a WAV"):
        read_wav(bad)
    with pytest.raises(DataError, match="cannot read .*missing.wav"):
        read_wav(tmp_path / "missing.wav")


# ---- resampling and silence -----------------------------------------------------------------


def test_resample_keeps_frequency_and_level():
    down = resample(sine(440, 16000), 16000, 8000)
    assert down.dtype == np.float32 and len(down) == 4000
    assert peak_hz(down, 8000) == pytest.approx(440, abs=2)
    up = resample(sine(1000, 8000), 8000, 22050)
    assert len(up) == 11025 and peak_hz(up, 22050) == pytest.approx(1000, abs=2)
    np.testing.assert_allclose(up, sine(1000, 22050), atol=1e-6)  # whole cycles: exact
    assert np.array_equal(resample(sine(300, 8000), 8000), sine(300, 8000).astype(np.float32))


def test_resample_removes_what_the_new_rate_cannot_hold():
    """A 6 kHz tone has no place below 4 kHz: it must vanish, not alias to 2 kHz."""
    down = resample(sine(6000, 16000) + sine(500, 16000), 16000, 8000)
    np.testing.assert_allclose(down, sine(500, 8000), atol=1e-5)


def test_is_silent():
    assert is_silent(np.zeros(100)) and is_silent(np.array([]))
    assert is_silent(np.full(100, 5e-4)) and not is_silent(np.full(100, 5e-3))
    assert not is_silent(sine(440, 8000))


def test_fix_length_pads_centred_and_crops_on_energy():
    short = np.ones(100, np.float32)
    padded = fix_length(short, 1000)
    assert len(padded) == 1000 and padded[:450].sum() == 0 and padded[450:550].sum() == 100
    long = np.zeros(30_000, np.float32)
    long[20_000:20_500] = 1.0  # the loud part
    long[:100] = 0.1
    cut = fix_length(long, 1000)
    assert len(cut) == 1000 and cut.sum() == 500
    assert loudest_start(long, 1000) == 19_500 and loudest_start(short, 1000) == 0
    assert fix_length(np.arange(1000, dtype=np.float32), 1000).tolist() == list(range(1000))


# ---- mel features ---------------------------------------------------------------------------


def test_mel_scale_is_htk():
    assert hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.1)
    assert mel_to_hz(hz_to_mel(np.array([0.0, 440.0, 4000.0]))) == pytest.approx([0, 440, 4000])


def test_filterbank_triangles_peak_at_centres_and_cover():
    rate, n_fft = 8000, 4096
    bank = mel_filterbank(40, n_fft, rate)
    bin_hz = rate / n_fft
    centres = mel_centers(40, 0.0, rate / 2)
    assert bank.shape == (40, n_fft // 2 + 1) and bank.dtype == torch.float32
    assert np.all(np.diff(centres) > 0) and np.all(np.diff(np.diff(centres)) > 0)  # mel spacing
    for m, centre in enumerate(centres):
        assert abs(int(bank[m].argmax()) * bin_hz - centre) <= bin_hz
        assert float(bank[m].max()) > 0.9
    inner = slice(int(np.ceil(centres[0] / bin_hz)), int(centres[-1] / bin_hz) + 1)
    torch.testing.assert_close(bank[:, inner].sum(0), torch.ones(inner.stop - inner.start))
    assert float(bank.sum(0).max()) <= 1 + 1e-6
    assert float(bank[:, 0].sum()) == float(bank[:, -1].sum()) == 0  # edges: DC and Nyquist
    small = mel_filterbank()  # the feature settings: every band sees at least one bin
    assert small.shape[0] == N_MELS and bool((small.max(1).values > 0.3).all())


def test_log_mel_puts_a_sine_in_its_band_at_its_level():
    centres = mel_centers()
    db = log_mel(sine(1000, 8000, amp=0.5)).mean(1)
    assert db.shape == (N_MELS,)
    assert int(db.argmax()) == int(np.argmin(np.abs(centres - 1000)))
    quieter = log_mel(sine(1000, 8000, amp=0.25)).mean(1)
    assert float(db.max() - quieter.max()) == pytest.approx(20 * np.log10(2), abs=0.05)
    high = log_mel(sine(3000, 8000)).mean(1)
    assert int(high.argmax()) == int(np.argmin(np.abs(centres - 3000)))


@pytest.mark.parametrize("clip", [np.zeros(4000), np.array([]), np.full(4000, 1e-4)])
def test_features_refuse_silence(clip):
    with pytest.raises(DataError, match="empty or silent"):
        log_mel(clip)
    with pytest.raises(DataError, match="empty or silent"):
        spectrogram_image(clip, 16000)


def test_spectrogram_image_layout():
    tone = sine(3500, 8000, seconds=0.3)
    image = spectrogram_image(tone, 8000)
    assert image.shape == (1, N_MELS, FRAMES) and image.dtype == torch.uint8
    assert int(image.max()) == 255 and torch.equal(image, spectrogram_image(tone, 8000))
    rows = image[0].float().mean(1)
    assert int(rows.argmax()) < 3  # high pitch at the top (row 0)
    low = spectrogram_image(sine(200, 8000, seconds=0.3), 8000)[0].float().mean(1)
    assert int(low.argmax()) > N_MELS - 8
    columns = image[0].float().mean(0)  # 0.3 s centred in 1.008 s: silence both sides
    assert columns[:15].max() == 0 and columns[-15:].max() == 0
    assert int(image[0, int(rows.argmax()), 24:40].min()) > 200
    assert CLIP_SAMPLES == 8064


def test_spectrogram_image_same_for_any_rate():
    envelope = np.hanning(4000)
    at8k = spectrogram_image(envelope * sine(700, 8000), 8000).int()
    at16k = spectrogram_image(np.repeat(envelope, 2) * sine(700, 16000), 16000).int()
    assert (at8k - at16k).abs().max() <= 3
