"""The ``wavenet`` layer's torch module: a stack of causal dilated convolutions.

Output sample ``t`` is the 256-way mu-law distribution of sample ``t`` given the samples
before it (the input is shifted right by one inside), the digit, the speaker and the log-mel
image (upsampled to the samples by linear interpolation between frame centres). Each layer:
``z = dilated_conv(x) + conditioning``, ``g = tanh(z_a) * sigmoid(z_b)``, then a 1x1 conv
splits into a residual (added to ``x``) and a skip (summed over the layers); the head is
relu, 1x1, relu, 1x1 to 256 logits. The weights are ``Conv2d``'s over (N, C, 1, time); the
stack computes them as matrix products over (N, time, C) (:meth:`WaveNet.stack`), where each
kernel-2 dilated conv is one product with the input beside its copy ``dilation`` samples back.

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
    spectrogram is withheld (so the model also generates from its labels alone);
    ``preemphasis``: the coefficient of the pre-emphasis its codes are of (0: none)."""

    def __init__(self, samples: int, mels: int, frames: int, channels: int, skip: int,
                 head: int, cond: int, dilations: list[int], digits: int = 10,
                 speakers: list[str] | tuple[str, ...] = (), cond_layers: int = 1,
                 mel_dropout: float = 0.3, speaker_dropout: float = 0.1,
                 preemphasis: float = 0.0) -> None:
        super().__init__()
        self.samples, self.mels, self.frames = samples, mels, frames
        self.preemphasis = preemphasis  # what its codes are of (convscope.wavenet.codec)
        self.channels, self.dilations = channels, list(dilations)
        self.digits, self.speakers = digits, list(speakers)
        self.mel_dropout, self.speaker_dropout = mel_dropout, speaker_dropout
        gates = len(dilations) * 2 * channels
        self.embed = nn.Embedding(MU_LAW_CLASSES, channels)
        self.digit = nn.Embedding(digits, gates)
        self.speaker = nn.Embedding(len(self.speakers) + 1, gates)  # the last: none given
        self.mel_in = nn.Conv2d(mels, cond, (1, 3), padding=(0, 1))
        self.mel_more = nn.ModuleList(nn.Conv2d(cond, cond, (1, 3), padding=(0, 1))
                                      for _ in range(cond_layers - 1))
        self.mel_out = nn.Conv2d(cond, gates, 1)
        # the stack reads these convs' weights (see stack); called as modules, padded by d on
        # both sides, their first `samples` outputs read only the past, as the stack computes
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

    def frame_conditioning(self, digit: torch.Tensor, speaker: torch.Tensor,
                           has_mel: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """(N, layers * 2C, frames): what every layer adds to its gates at each frame centre."""
        if self.training:  # withhold some labels and spectrograms (seeded like dropout)
            n = digit.shape[0]
            keep_mel = torch.rand(n, device=digit.device) >= self.mel_dropout
            has_mel = has_mel & keep_mel
            drop = torch.rand(n, device=digit.device) < self.speaker_dropout
            speaker = torch.where(drop, len(self.speakers), speaker)
        local = torch.tanh(self.mel_in(mel))
        for conv in self.mel_more:  # residual: each sees 2 frames further
            local = local + torch.tanh(conv(local))
        local = self.mel_out(local).squeeze(2)  # (N, G, F)
        glob = self.digit(digit) + self.speaker(speaker)
        return local * has_mel.to(local.dtype)[:, None, None] + glob[:, :, None]

    def conditioning(self, digit: torch.Tensor, speaker: torch.Tensor, has_mel: torch.Tensor,
                     mel: torch.Tensor, samples: int) -> torch.Tensor:
        """(N, layers * 2C, 1, samples): what every layer adds to its gates at each sample
        (the frames' values interpolated; the weights sum to 1, so the labels' constant
        embeddings pass unchanged)."""
        frames = self.frame_conditioning(digit, speaker, has_mel, mel)
        return (frames @ frame_interpolation(frames.shape[-1], samples).to(frames)).unsqueeze(2)

    def forward(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """Logits (N, 256, 1, S); ``keep``: a list that receives each layer's gated output
        (N, C, S) (the explorer's activations over time)."""
        codes, digit, speaker, has_mel, mel = self.unpack(x)
        frames = self.frame_conditioning(digit, speaker, has_mel, mel)
        # the gates' biases added to the frames (the interpolation's weights sum to 1), then
        # each layer's frames upsampled to the samples as it needs them, (N, S, 2C) at a time
        frames = frames + torch.cat([gate.bias for gate in self.gate])[:, None]
        upsample = frame_interpolation(frames.shape[-1], codes.shape[1]).to(frames).t()
        parts = frames.split(2 * self.channels, 1)
        return self.stack(codes, (upsample @ p.transpose(1, 2) for p in parts), frames.dtype, keep)

    def run(self, codes: torch.Tensor, cond: torch.Tensor, keep: list | None = None):
        """Logits (N, 256, 1, S) for ``codes`` (N, S) under the conditioning ``cond``
        (N, G, 1, S)."""
        parts = cond[:, :, 0].split(2 * self.channels, 1)
        conds = (p.transpose(1, 2) + gate.bias for p, gate in zip(parts, self.gate, strict=True))
        return self.stack(codes, conds, cond.dtype, keep)

    def stack(self, codes: torch.Tensor, layer_conds, dtype: torch.dtype,
              keep: list | None = None) -> torch.Tensor:
        """Logits (N, 256, 1, S) for ``codes`` (N, S), each layer adding the next of
        ``layer_conds`` (N, S, 2C; its gates' bias included) to its gates; ``dtype``: the
        residual stream's. Channels last, over (N * S) rows: every conv is a matrix product
        that adds its result to what it updates, and the logits come out as the loss reads
        them."""
        n, samples = codes.shape
        previous = F.pad(codes, (1, -1), value=SILENCE)  # sample t sees samples < t
        x = self.embed(previous).to(dtype)  # (N, S, C)
        c = self.channels
        skips = sum(out.bias[c:] for out in self.out)  # the skips' biases, summed
        for d, gate, out, cond in zip(self.dilations, self.gate, self.out, layer_conds,
                                      strict=True):
            # kernel tap 0 reads x[t - d] (zeros before the start), tap 1 reads x[t]
            past = F.pad(x[:, :max(0, samples - d)], (0, 0, min(d, samples), 0))
            pair = torch.cat([past, x], 2).view(n * samples, 2 * c)
            weight = gate.weight[:, :, 0].transpose(1, 2).reshape(2 * c, 2 * c)
            a, b = torch.addmm(cond.reshape(n * samples, 2 * c), pair, weight.t()).chunk(2, 1)
            g = torch.tanh(a) * torch.sigmoid(b)
            if keep is not None:
                keep.append(g.view(n, samples, c).transpose(1, 2).detach())
            w = out.weight[:, :, 0, 0]
            skips = torch.addmm(skips, g, w[c:].t())
            if out is not self.out[-1]:  # nothing reads the last residual
                x = x + F.linear(g, w[:c], out.bias[:c]).view(n, samples, c)
        hidden = F.relu(F.linear(F.relu(skips), self.head1.weight[:, :, 0, 0], self.head1.bias))
        logits = F.linear(hidden, self.head2.weight[:, :, 0, 0], self.head2.bias)
        return logits.view(n, samples, -1).transpose(1, 2).unsqueeze(2)


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
