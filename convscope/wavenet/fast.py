"""Sample by sample generation: the "fast WaveNet" queues, and the naive full pass it must equal.

:class:`FastWaveNet` holds a :class:`~convscope.wavenet.model.WaveNet`'s weights as numpy
arrays, folded so that one step costs three small matrix-vector products per layer: each
layer keeps a queue of its last ``dilation`` inputs (the past half of its kernel-2 dilated
conv), the constant biases of the residual and skip convs are folded into the conditioning
and the starting skip sum, and sigmoid(b) = (1 + tanh(b / 2)) / 2 lets one tanh serve the gate.
:func:`naive_codes` runs the full network over everything generated so far for every sample.
Both draw sample ``t`` as the argmax of the logits plus the same Gumbel noise ``noise[t]``
(:func:`gumbel_noise`), so with the same seed they give the same codes.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from convscope.wavenet.codec import SILENCE
from convscope.wavenet.model import WaveNet


def gumbel_noise(seed: int, steps: int, classes: int = 256) -> np.ndarray:
    """(steps, classes) Gumbel noise: ``argmax(logits + noise[t])`` draws sample t from the
    softmax of the logits (the Gumbel-max trick)."""
    u = np.random.default_rng(seed).random((steps, classes))
    return -np.log(-np.log(np.clip(u, 1e-300, None)))


@torch.no_grad()
def conditioning(net: WaveNet, digit: int, speaker: int, mel: np.ndarray | None,
                 samples: int) -> torch.Tensor:
    """(layers * 2C, samples) float64: what every layer adds to its gates at each sample.
    ``mel``: a uint8 (mels, frames) image whose frame f is centred on sample f * samples /
    (frames - 1); None: generate from the digit and speaker alone. ``net`` itself is left as
    it is (a float64 copy computes it: the explorer's model stays float32)."""
    net = copy.deepcopy(net).double().eval()
    frames = 2 if mel is None else mel.shape[1]
    image = torch.zeros(1, net.mels, 1, frames, dtype=torch.float64) if mel is None else \
        torch.from_numpy(np.asarray(mel, np.float64) / 255.0 - 0.5)[None, :, None, :]
    cond = net.conditioning(torch.tensor([digit]), torch.tensor([speaker]),
                            torch.tensor([mel is not None]), image, samples)
    return cond[0, :, 0]


class FastWaveNet:
    """Incremental generation with per-layer queues (see the module docstring)."""

    def __init__(self, net: WaveNet, dtype=np.float32) -> None:
        c = net.channels
        half = np.ones(2 * c)
        half[c:] = 0.5  # the sigmoid half of each gate runs through tanh(b / 2)

        def array(t: torch.Tensor) -> np.ndarray:
            return t.detach().double().cpu().numpy()

        self.c, self.dilations, self.dtype = c, list(net.dilations), dtype
        self.embed = array(net.embed.weight).astype(dtype)
        self.past, self.now, self.out, self.shift, self.padding = [], [], [], [], []
        residual_bias = np.zeros(c)
        skip_bias = 0.0
        for gate, out in zip(net.gate, net.out, strict=True):
            w = array(gate.weight)[:, :, 0, :] * half[:, None, None]  # (2C, C, 2)
            self.past.append(w[:, :, 0].astype(dtype))
            self.now.append(w[:, :, 1].astype(dtype))
            # the gate's bias, and what the residual biases of the layers below add to x
            self.shift.append(half * (array(gate.bias) + (w[:, :, 0] + w[:, :, 1]) / half[:, None]
                                      @ residual_bias))
            wo, bo = array(out.weight)[:, :, 0, 0] * 0.5, array(out.bias)  # g = th_a * (1 + th_b)
            self.out.append(wo.astype(dtype))
            self.padding.append((-residual_bias).astype(dtype))  # the zeros before the start
            residual_bias = residual_bias + bo[:c]
            skip_bias = skip_bias + bo[c:]
        self.half = half
        self.skip0 = np.asarray(skip_bias, dtype)
        self.head1 = (array(net.head1.weight)[:, :, 0, 0].astype(dtype), array(net.head1.bias))
        self.head2 = (array(net.head2.weight)[:, :, 0, 0].astype(dtype), array(net.head2.bias))

    def generate(self, cond: torch.Tensor, noise: np.ndarray, on_sample=None) -> np.ndarray:
        """uint8 codes of ``len(noise)`` samples under ``cond`` (G, samples) from
        :func:`conditioning`, drawn with ``noise`` (:func:`gumbel_noise`); ``on_sample(t,
        code)`` is told each one."""
        c, dtype = self.c, self.dtype
        steps = len(noise)
        rows = [(cond.numpy()[2 * c * i:2 * c * (i + 1)] * self.half[:, None]
                 + self.shift[i][:, None]).T.astype(dtype) for i in range(len(self.dilations))]
        queues = [[pad] * d for pad, d in zip(self.padding, self.dilations, strict=True)]
        layers = list(zip(self.past, self.now, self.out, rows, queues, self.dilations,
                          strict=True))
        (w1, b1), (w2, b2) = self.head1, self.head2
        b1, noise = b1.astype(dtype), (noise + b2).astype(dtype)  # the output bias folded in
        codes = np.empty(steps, np.uint8)
        previous = SILENCE
        for t in range(steps):
            state = np.concatenate([self.embed[previous], self.skip0])
            for past, now, out, row, queue, d in layers:
                x = state[:c]
                slot = t % d
                before, queue[slot] = queue[slot], x
                th = np.tanh(past @ before + now @ x + row[t])
                state = state + out @ (th[:c] * (th[c:] + 1.0))
            hidden = w1 @ np.maximum(state[c:], 0.0) + b1
            previous = codes[t] = (w2 @ np.maximum(hidden, 0.0) + noise[t]).argmax()
            if on_sample is not None:
                on_sample(t, previous)
        return codes


@torch.no_grad()
def naive_codes(net: WaveNet, cond: torch.Tensor, noise: np.ndarray) -> np.ndarray:
    """The same draws as :meth:`FastWaveNet.generate`, each from a full forward pass over
    everything generated so far (float64): the reference the queues must equal."""
    net = net.double().eval()
    codes = torch.full((1, len(noise)), SILENCE, dtype=torch.long)
    for t in range(len(noise)):
        logits = net.run(codes[:, :t + 1], cond[None, :, None, :t + 1])[0, :, 0, t]
        codes[0, t] = int(np.argmax(logits.numpy() + noise[t]))
    return codes[0].numpy().astype(np.uint8)
