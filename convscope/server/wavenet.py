"""The WaveNet page's computations: the dilated stack of a model, a recording as the network
hears it (its mu-law samples and every layer's gated activations over time) and a generation
streamed in chunks (samples and log-mel columns) as the fast generator produces them."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import (
    CLIP_SAMPLES,
    HOP,
    MAX_SECONDS,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    SILENCE_PEAK,
    is_silent,
    log_mel,
    spectrogram_image,
)
from ..wavenet import DEFAULT_TEMPERATURE, PEAK, TEMPERATURES
from ..wavenet.codec import NO_SPEAKER, DeEmphasis, mu_law_decode
from ..wavenet.data import clip_codes
from ..wavenet.fast import conditioning
from ..wavenet.generation import (
    DEFAULT_SECONDS,
    check_speech,
    decoded,
    find_wavenet,
    generate_with,
)
from ..wavenet.model import WaveNet
from .catalog import Catalog
from .encode import tensor_json
from .errors import ApiError

BUCKET = 32  # samples per column of the activity maps (4 ms)
CHUNK = 512  # samples per streamed message (64 ms, four spectrogram frames)
SILENT_DB = -100.0  # the log-mel value sent for frames of a still silent generation
MAX_SEED = 2**32 - 1


def wavenet_net(catalog: Catalog, model_id: str) -> WaveNet:
    """The WaveNet inside a catalog model; 400 naming the fix for any other model."""
    entry = catalog.get(model_id)
    net = find_wavenet(catalog.model(model_id))
    if net is None:
        raise ApiError(400, f"model {model_id!r} is a {entry.task} model for {entry.dataset}, "
                            "not a WaveNet; pick one trained with `convscope train --task "
                            "wavenet` (e.g. fsdd-wavenet)")
    return net


def stack_json(net: WaveNet) -> dict:
    """The stack as the page draws it: the real dilations, the receptive field (samples),
    the speakers and digits the model knows, the pre-emphasis of its codes, the generation
    limits and the peak a finished clip is played at (below ``silence_peak``: as drawn)."""
    return {"dilations": list(net.dilations), "receptive_field": net.receptive_field,
            "preemphasis": net.preemphasis,
            "channels": net.channels, "speakers": list(net.speakers), "digits": net.digits,
            "rate": SAMPLE_RATE, "clip_samples": CLIP_SAMPLES, "bucket": BUCKET,
            "default_seconds": DEFAULT_SECONDS, "max_seconds": MAX_SECONDS,
            "temperature": DEFAULT_TEMPERATURE, "temperatures": list(TEMPERATURES),
            "peak": PEAK, "silence_peak": SILENCE_PEAK}


def speaker_byte(net: WaveNet, speaker: str | None) -> int:
    """The speaker's index in the model's list; "none given" for any other name."""
    return net.speakers.index(speaker) if speaker in net.speakers else NO_SPEAKER


@torch.no_grad()
def analyse_recording(net: WaveNet, samples: np.ndarray, rate: int, digit: int,
                      speaker: str | None, name: str) -> dict:
    """A recording as the network hears it (fitted to one clip, pre-emphasised as the model
    says, peak-scaled, mu-law coded), conditioned on its digit, speaker and log-mel image: the
    decoded ``samples`` (de-emphasised again: the audio the codes stand for), the
    recording's ``span`` in them, each layer's gated activations as RMS over BUCKET-sample
    columns (``activity``: layers x channels x columns) and the model's NLL of the clip."""
    check_speech(samples, rate, name)
    if not isinstance(digit, int) or not 0 <= digit < net.digits:
        raise ApiError(400, f"digit {digit!r} is not one this model says; use "
                            f"0-{net.digits - 1}")
    codes, span = clip_codes(samples, rate, net.preemphasis)
    mel = spectrogram_image(samples, rate).numpy()[0]
    index = min(speaker_byte(net, speaker), len(net.speakers))
    cond = conditioning(net, digit, index, mel, CLIP_SAMPLES).float()  # (G, S)
    keep: list[torch.Tensor] = []
    target = torch.from_numpy(codes.astype(np.int64))[None]
    logits = net.run(target, cond[None, :, None, :], keep)[:, :, 0]  # (1, 256, S)
    nll = F.cross_entropy(logits, target, reduction="none")[0]
    gated = torch.cat(keep)  # (layers, C, S)
    columns = gated.shape[2] // BUCKET
    activity = gated[:, :, :columns * BUCKET].reshape(*gated.shape[:2], columns, BUCKET)
    return {"name": name, "digit": digit, "speaker": speaker if speaker in net.speakers else None,
            "rate": SAMPLE_RATE, "samples": tensor_json(torch.from_numpy(decoded(net, codes))),
            "span": [int(span[0]), int(span[1])],
            "activity": tensor_json(activity.square().mean(3).sqrt()),
            "nll": {"clip": float(nll.mean()), "speech": float(nll[span[0]:span[1]].mean()),
                    "uniform": math.log(256)}}


@dataclass
class GenerationRequest:
    """What the page asks to generate (checked by :func:`generation_request`)."""

    digit: int
    speaker: str | None = None
    seconds: float | None = None
    seed: int = 0
    recording: int | None = None  # a listed test recording to resynthesise (vocoder)
    temperature: float = DEFAULT_TEMPERATURE


def generation_request(message: object) -> GenerationRequest:
    """The page's JSON request, its types checked (the values by the generator)."""
    if not isinstance(message, dict) or set(message) - {"digit", "speaker", "seconds", "seed",
                                                        "recording", "temperature"}:
        raise ApiError(400, "send {\"digit\": D, \"speaker\": NAME or null, \"seconds\": T, "
                            "\"seed\": S, \"recording\": INDEX or null, \"temperature\": T} "
                            "(docs/api.md)")
    digit, speaker = message.get("digit"), message.get("speaker")
    seconds, seed = message.get("seconds"), message.get("seed", 0)
    recording = message.get("recording")
    temperature = message.get("temperature", DEFAULT_TEMPERATURE)
    if type(digit) is not int:
        raise ApiError(400, f"digit must be a whole number, got {digit!r}")
    if speaker is not None and not isinstance(speaker, str):
        raise ApiError(400, f"speaker must be a name or null, got {speaker!r}")
    for name, value in (("seconds", seconds), ("temperature", temperature)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value)):
            raise ApiError(400, f"{name} must be a number, got {value!r}")
    if type(seed) is not int or not 0 <= seed <= MAX_SEED:
        raise ApiError(400, f"seed must be a whole number 0..{MAX_SEED}, got {seed!r}")
    if recording is not None and type(recording) is not int:
        raise ApiError(400, f"recording must be a listed recording's index, got {recording!r}")
    return GenerationRequest(digit, speaker, seconds, seed, recording,
                             DEFAULT_TEMPERATURE if temperature is None else temperature)


class Stopped(Exception):
    """The page stopped the generation (or went away)."""


class StreamedGeneration:
    """Runs :func:`generate_with` and hands ``send`` one message per CHUNK samples: the
    decoded samples and the log-mel columns (dB) of the frames they complete; ``stop`` set
    ends it after the current sample."""

    def __init__(self, net: WaveNet, request: GenerationRequest, wav, send: Callable[[dict],
                 None], stop: threading.Event) -> None:
        self.net, self.request, self.wav, self.send, self.stop = net, request, wav, send, stop
        seconds = DEFAULT_SECONDS if request.seconds is None else request.seconds
        self.total = max(1, round(seconds * SAMPLE_RATE)) if 0 < seconds <= MAX_SECONDS else 0
        self.codes = np.zeros(max(self.total, 1), np.uint8)
        self.samples = np.zeros(max(self.total, 1), np.float32)  # decoded as they come
        self.audio = DeEmphasis(net.preemphasis)  # carries its state from chunk to chunk
        self.sent = 0  # samples sent
        self.frames = 0  # spectrogram frames sent

    def run(self) -> dict:
        """Generate; the closing message (``type`` "done")."""
        r, start, stopped = self.request, time.perf_counter(), False
        try:
            generate_with(self.net, r.digit, r.speaker, self.wav, r.seconds, r.seed,
                          self.on_sample, temperature=r.temperature)
        except Stopped:
            stopped = True
        wall = time.perf_counter() - start
        return {"type": "done", "samples": self.sent, "stopped": stopped,
                "seconds": self.sent / SAMPLE_RATE, "wall_s": wall,
                "samples_per_s": self.sent / wall if wall > 0 else None}

    def on_sample(self, t: int, code: int) -> None:
        self.codes[t] = code
        done = t + 1
        if done - self.sent >= CHUNK or done == self.total:
            self.send(self.chunk(done))
        if self.stop.is_set():
            if done > self.sent:
                self.send(self.chunk(done))
            raise Stopped

    def chunk(self, done: int) -> dict:
        """Samples ``sent..done`` and the frames they complete (every frame at the end)."""
        self.samples[self.sent:done] = self.audio(mu_law_decode(self.codes[self.sent:done]))
        samples = self.samples[:done]
        last = done == self.total or self.stop.is_set()
        frames = 1 + done // HOP if last else max(0, (done - N_FFT // 2) // HOP + 1)
        columns = []
        if frames > self.frames:
            db = torch.full((N_MELS, frames), SILENT_DB) if is_silent(samples) else log_mel(samples)
            columns = db[:, self.frames:frames].T.tolist()  # (new frames, mels)
        message = {"type": "chunk", "total": self.total, "frames": 1 + self.total // HOP,
                   "rate": SAMPLE_RATE, "start": self.sent,
                   "samples": [round(float(v), 5) for v in samples[self.sent:done]],
                   "first_frame": self.frames, "mel": columns}
        self.sent, self.frames = done, max(self.frames, frames)
        return message
