"""Generate spoken digits with a trained WaveNet run: from its labels, or resynthesised from
a recording's log-mel spectrogram (a vocoder). ``convscope generate`` is this module's
:func:`generate` and :func:`write_wav`."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope._io import atomic_write
from convscope.audio import (
    CLIP_SAMPLES,
    MAX_SECONDS,
    SAMPLE_RATE,
    is_silent,
    read_wav,
    spectrogram_image,
)
from convscope.errors import ConvscopeError, DataError
from convscope.wavenet import DEFAULT_TEMPERATURE, PEAK, TEMPERATURES
from convscope.wavenet.codec import NO_SPEAKER, DeEmphasis, mu_law_decode, normalised
from convscope.wavenet.fast import FastWaveNet, conditioning, gumbel_noise
from convscope.wavenet.model import WaveNet

SPEECH_SECONDS = (0.1, 3.0)  # what a recording of one spoken digit may last
DEFAULT_SECONDS = CLIP_SAMPLES / SAMPLE_RATE  # one clip: 1.008 s


@dataclass
class GeneratedClip:
    """``samples`` float32 at ``rate`` Hz, and the mu-law ``codes`` they decode from (see
    :func:`decoded`)."""

    samples: np.ndarray
    codes: np.ndarray
    rate: int = SAMPLE_RATE

    def write(self, path: str | Path, peak: float | None = PEAK) -> Path:
        """Write a 16-bit PCM WAV (atomically) scaled to peak |sample| ``peak`` (default the
        training clips' 0.8: the model hears levels only relative to the clip's loudest, so
        what it draws comes out at no level in particular, often quiet; None or 0: as drawn;
        a silent clip stays silent; outside 0-1: ConvscopeError); returns the path."""
        check_peak(peak)
        samples = self.samples if not peak or is_silent(self.samples) else \
            normalised(self.samples, peak)
        return write_wav(path, samples, self.rate)


def find_wavenet(model) -> WaveNet | None:
    """The WaveNet inside a network (a run's ``SpecNet``), or None when it has none."""
    return next((m for m in model.modules() if isinstance(m, WaveNet)), None)


def wavenet_of(run) -> WaveNet:
    """The WaveNet inside a run's network; ConvscopeError naming the fix when it has none."""
    found = find_wavenet(run.model)
    if found is None:
        raise ConvscopeError(f"{run.path} is not a WaveNet run (its model is "
                             f"{run.config.model}, task {run.config.task}); train one with "
                             f"`convscope train --task wavenet`")
    return found


def check_peak(peak: float | None) -> None:
    """ConvscopeError unless ``peak`` (a clip's written level) is None or 0 to 1."""
    if peak is not None and not 0 <= peak <= 1:  # (also false for nan)
        raise ConvscopeError(f"--peak must be from 0 to 1 (0: as drawn), got {peak:g}")


def check_speech(samples: np.ndarray, rate: int, name: str) -> None:
    """DataError unless a recording (``name`` in the message) lasts SPEECH_SECONDS."""
    seconds, (low, high) = len(samples) / rate, SPEECH_SECONDS
    if not low <= seconds <= high:
        raise DataError(f"{name}: {seconds:.2f} s is not the length of a spoken digit "
                        f"({low:g}-{high:g} s); trim it to the one word")


def speech_clip(path: str | Path) -> tuple[np.ndarray, int]:
    """A WAV of one spoken digit: DataError unless it lasts SPEECH_SECONDS."""
    samples, rate = read_wav(path)
    check_speech(samples, rate, str(path))
    return samples, rate


def generate(run, digit: int, speaker: str | None = None, from_wav: str | Path | None = None,
             seconds: float | None = None, seed: int = 0, on_sample=None, *,
             temperature: float = DEFAULT_TEMPERATURE, prototype: bool = True) -> GeneratedClip:
    """Generate ``seconds`` of audio (default one clip, 1.008 s) with a WaveNet ``run`` (a
    :class:`~convscope.runs.Run`, a run directory or a bundled model's name): digit
    ``digit`` said by ``speaker`` (None: any), or, with ``from_wav``, that recording
    resynthesised from its log-mel spectrogram. Each sample is drawn from the softmax of the
    logits divided by ``temperature``. Same seed, same clip."""
    from convscope.runs import Run, open_run

    run = run if isinstance(run, Run) else open_run(run)
    return generate_with(wavenet_of(run), digit, speaker, from_wav, seconds, seed, on_sample,
                         temperature=temperature, prototype=prototype)


def label_conditioning(net: WaveNet, digit: int, speaker: int, samples: int,
                       prototype: bool = True):
    """The conditioning of ``samples`` samples from the labels: over the first clip, the
    model's prototype image of the digit said by ``speaker`` (its typical course over time,
    see :mod:`convscope.wavenet.model`) where it has one and ``prototype`` is set; after it,
    and without one, the labels' embeddings alone."""
    cond = conditioning(net, digit, speaker, None, samples)
    image = net.prototype(digit, speaker) if prototype else None
    if image is not None:
        first = min(samples, CLIP_SAMPLES)
        cond[:, :first] = conditioning(net, digit, speaker, image.numpy(), CLIP_SAMPLES)[:, :first]
    return cond


def generate_with(net: WaveNet, digit: int, speaker: str | None = None,
                  from_wav: str | Path | None = None, seconds: float | None = None,
                  seed: int = 0, on_sample=None, *, temperature: float = DEFAULT_TEMPERATURE,
                  prototype: bool = True) -> GeneratedClip:
    """:func:`generate` with a :class:`WaveNet` module (the explorer's loaded model): the
    digit, speaker, length and temperature are checked here, each with a one-line
    ConvscopeError. ``prototype`` False: from the labels without the model's prototype
    image (see :func:`label_conditioning`)."""
    if not isinstance(digit, int) or not 0 <= digit < net.digits:
        raise ConvscopeError(f"digit {digit!r} is not one this model says; use 0-{net.digits - 1}")
    if speaker is not None and speaker not in net.speakers:
        raise ConvscopeError(f"unknown speaker {speaker!r}; this model knows: "
                             f"{', '.join(net.speakers) or 'none'} (or leave --speaker out)")
    longest = DEFAULT_SECONDS if from_wav is not None else MAX_SECONDS
    seconds = DEFAULT_SECONDS if seconds is None else seconds
    if not 0 < seconds <= longest:
        why = "a recording's spectrogram covers one clip" if from_wav else "the longest allowed"
        raise ConvscopeError(f"--seconds must be above 0 and at most {longest:g} ({why}), "
                             f"got {seconds:g}")
    low, high = TEMPERATURES
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not low <= temperature <= high:
        raise ConvscopeError(f"--temperature must be a number from {low:g} to {high:g} (1: the "
                             f"model's own odds, lower: surer), got {temperature!r}")
    samples = max(1, round(seconds * SAMPLE_RATE))
    index = min(NO_SPEAKER if speaker is None else net.speakers.index(speaker),
                len(net.speakers))
    if from_wav is not None:
        mel = spectrogram_image(*speech_clip(from_wav)).numpy()[0]  # (mels, frames)
        cond = conditioning(net, digit, index, mel, CLIP_SAMPLES)[:, :samples]
    else:
        cond = label_conditioning(net, digit, index, samples, prototype)
    # argmax(logits + T * gumbel) draws from softmax(logits / T)
    noise = gumbel_noise(seed, samples) * float(temperature)
    codes = FastWaveNet(net).generate(cond, noise, on_sample)
    return GeneratedClip(decoded(net, codes), codes)


def decoded(net: WaveNet, codes: np.ndarray) -> np.ndarray:
    """The audio of a clip's mu-law ``codes`` under ``net``'s coding (de-emphasised where
    its codes are pre-emphasised)."""
    return DeEmphasis(net.preemphasis)(mu_law_decode(codes))


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """A mono 16-bit PCM WAV of float samples in [-1, 1], written atomically."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
              + b"data" + struct.pack("<I", len(pcm)))
    path = Path(path)
    atomic_write(path, lambda tmp: tmp.write_bytes(header + pcm))
    return path


__all__ = ["GeneratedClip", "generate", "generate_with", "write_wav"]
