"""The ``wavenet`` layer's torch module: a stack of causal dilated convolutions.

Output sample ``t`` is the 256-way mu-law distribution of sample ``t`` given the samples
before it (the input is shifted right by one inside), the digit, the speaker and the log-mel
image (upsampled to the samples by linear interpolation between frame centres). Each layer:
``z = dilated_conv(x) + conditioning``, ``g = tanh(z_a) * sigmoid(z_b)``, then a 1x1 conv
splits into a residual (added to ``x``) and a skip (summed over the layers); the head is
relu, 1x1, relu, 1x1 to 256 logits. All convolutions are ``Conv2d`` over (N, C, 1, time).

``prototypes`` (a uint8 buffer, saved with the weights) holds, for each digit, the mean log-mel
image of its training recordings, by speaker and (last) over all of them (:func:`prototypes`):
generating from the labels alone conditions on that image, the digit's typical course over
time, which the labels' constant embeddings cannot give (a clip is much longer than the
receptive field). All zeros: none fitted (a run trained before they existed).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from convscope.audio import FRAMES
from convscope.augment import BYTE_SCALE, INPUT_OFFSET
from convscope.layer_kinds import MU_LAW_CLASSES, WAVENET_HEADER
from convscope.wavenet.codec import NO_SPEAKER, SILENCE


def receptive_field(dilations: list[int]) -> int:
    """How many past samples one output depends on: 1 (the shift) + the sum of the
    dilations (each kernel-2 layer reaches ``dilation`` further back)."""
    return 1 + sum(dilations)


@functools.lru_cache(maxsize=16)
def frame_interpolation(frames: int, samples: int) -> torch.Tensor:
    """(frames, samples) float64: linear interpolation between frame centres, frame f centred
    on sample ``f * samples / (frames - 1)`` (the last frame on the sample after the end).
    As a matrix, so the upsampling (and its backward pass) is one matrix product."""
    weights = torch.zeros(frames, samples, dtype=torch.float64)
    if frames == 1:
        return weights + 1.0
    position = torch.arange(samples, dtype=torch.float64) * (frames - 1) / samples
    low = position.floor().long().clamp(max=frames - 2)
    share = position - low
    columns = torch.arange(samples)
    weights[low, columns] = 1 - share
    weights[low + 1, columns] = share
    return weights


class WaveNet(nn.Module):
    """See the module docstring; ``mel_dropout``: while training, the share of clips whose
    spectrogram is withheld (so the model also generates from its labels alone)."""

    def __init__(self, samples: int, mels: int, frames: int, channels: int, skip: int,
                 head: int, cond: int, dilations: list[int], digits: int = 10,
                 speakers: list[str] | tuple[str, ...] = (), mel_dropout: float = 0.3,
                 speaker_dropout: float = 0.1) -> None:
        super().__init__()
        self.samples, self.mels, self.frames = samples, mels, frames
        self.channels, self.dilations = channels, list(dilations)
        self.digits, self.speakers = digits, list(speakers)
        self.mel_dropout, self.speaker_dropout = mel_dropout, speaker_dropout
        gates = len(dilations) * 2 * channels
        self.embed = nn.Embedding(MU_LAW_CLASSES, channels)
        self.digit = nn.Embedding(digits, gates)
        self.speaker = nn.Embedding(len(self.speakers) + 1, gates)  # the last: none given
        self.mel_in = nn.Conv2d(mels, cond, (1, 3), padding=(0, 1))
        self.mel_out = nn.Conv2d(cond, gates, 1)
        # padded by d on both sides, the first `samples` outputs read only the past (cheaper
        # than padding the input: no copy of it, forward or backward)
        self.gate = nn.ModuleList(nn.Conv2d(channels, 2 * channels, (1, 2), dilation=(1, d),
                                            padding=(0, d)) for d in dilations)
        self.out = nn.ModuleList(nn.Conv2d(channels, channels + skip, 1) for _ in dilations)
        self.head1 = nn.Conv2d(skip, head, 1)
        self.head2 = nn.Conv2d(head, MU_LAW_CLASSES, 1)
        self.register_buffer("prototypes", torch.zeros(
            digits, len(self.speakers) + 1, mels, FRAMES, dtype=torch.uint8))  # whole clips

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # weights saved before the prototypes existed keep the module's own (a fresh module's
        # are zeros: none fitted)
        state_dict.setdefault(prefix + "prototypes", self.prototypes.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def prototype(self, digit: int, speaker: int) -> torch.Tensor | None:
        """The uint8 (mels, frames) mean image of ``digit`` said by speaker index ``speaker``
        (``len(speakers)`` or more: anyone), or None when none was fitted."""
        image = self.prototypes[digit, min(speaker, len(self.speakers))]
        return image if bool(image.any()) else None

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.dilations)

    def unpack(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(codes (N, S) int64, digit (N,), speaker (N,), has_mel (N,) bool, mel (N, M, 1, F)
        float in [-0.5, 0.5]) of the model input ``x`` (convscope's byte / 255 - 0.5)."""
        flat = x.reshape(x.shape[0], -1).float()
        data = ((flat - INPUT_OFFSET) * BYTE_SCALE).round().clamp(0, 255).long()
        h, s = WAVENET_HEADER, self.samples
        digit = data[:, 0].clamp(max=self.digits - 1)
        speaker = data[:, 1]
        speaker = torch.where(speaker < len(self.speakers), speaker, len(self.speakers))
        mel = flat[:, h + s:].reshape(-1, self.mels, 1, self.frames)
        return data[:, h:h + s], digit, speaker, data[:, 2] > 0, mel

    def conditioning(self, digit: torch.Tensor, speaker: torch.Tensor, has_mel: torch.Tensor,
                     mel: torch.Tensor, samples: int) -> torch.Tensor:
        """(N, layers * 2C, 1, samples): what every layer adds to its gates at each sample."""
        if self.training:  # withhold some labels and spectrograms (seeded like dropout)
            n = digit.shape[0]
            keep_mel = torch.rand(n, device=digit.device) >= self.mel_dropout
            has_mel = has_mel & keep_mel
            drop = torch.rand(n, device=digit.device) < self.speaker_dropout
            speaker = torch.where(drop, len(self.speakers), speaker)
        local = self.mel_out(torch.tanh(self.mel_in(mel))).squeeze(2)  # (N, G, F)
        glob = self.digit(digit) + self.speaker(speaker)
        frames = local * has_mel.to(local.dtype)[:, None, None] + glob[:, :, None]
        # frame values upsampled to the samples last, where there are most of them (the
        # interpolation's weights sum to 1, so adding the labels first changes nothing)
        return (frames @ frame_interpolation(frames.shape[-1], samples).to(frames)).unsqueeze(2)

    def forward(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """Logits (N, 256, 1, S); ``keep``: a list that receives each layer's gated output
        (N, C, S) (the explorer's activations over time)."""
        codes, digit, speaker, has_mel, mel = self.unpack(x)
        cond = self.conditioning(digit, speaker, has_mel, mel, codes.shape[1])
        return self.run(codes, cond, keep)

    def run(self, codes: torch.Tensor, cond: torch.Tensor, keep: list | None = None):
        """Logits for ``codes`` (N, S) under the conditioning ``cond`` (N, G, 1, S)."""
        previous = F.pad(codes, (1, -1), value=SILENCE)  # sample t sees samples < t
        x = self.embed(previous).transpose(1, 2).unsqueeze(2).to(cond.dtype)
        skips, c, samples = 0, self.channels, codes.shape[1]
        layers = zip(self.gate, self.out, cond.split(2 * c, 1), strict=True)
        for gate, out, layer_cond in layers:  # (split, not slices: one backward copy)
            a, b = (gate(x)[..., :samples] + layer_cond).chunk(2, 1)
            g = torch.tanh(a) * torch.sigmoid(b)
            if keep is not None:
                keep.append(g.squeeze(2).detach())
            residual, skip = out(g).split([c, out.out_channels - c], 1)
            x = x + residual
            skips = skips + skip
        return self.head2(F.relu(self.head1(F.relu(skips))))


def prototypes(images: torch.Tensor, digits: torch.Tensor, speakers: torch.Tensor,
               shape: tuple[int, int]) -> torch.Tensor:
    """uint8 (digits, speakers + 1, mels, frames) mean images: of each digit said by each
    speaker (index ``speakers`` of ``images`` (N, mels, frames) uint8), and last of each digit
    said by anyone, which also stands in for a pair with no recording."""
    n_digits, n_speakers = shape
    out = torch.zeros(n_digits, n_speakers + 1, *images.shape[1:], dtype=torch.uint8)
    for d in range(n_digits):
        said = digits == d
        if not said.any():
            continue
        anyone = images[said].float().mean(0).round().to(torch.uint8)
        out[d] = anyone
        for s in range(n_speakers):
            pick = said & (speakers == s)
            if pick.any():
                out[d, s] = images[pick].float().mean(0).round().to(torch.uint8)
    return out


def speaker_index(speakers: list[str], name: str | None) -> int:
    """The packed speaker byte for ``name`` (NO_SPEAKER for None)."""
    return NO_SPEAKER if name is None else speakers.index(name)
