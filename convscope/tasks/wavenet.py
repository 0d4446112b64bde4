"""WaveNet: predict raw audio one mu-law sample at a time (FSDD's official training takes).

The network is one ``wavenet`` layer (:mod:`convscope.wavenet.model`) reading packed clips
(:mod:`convscope.wavenet.codec`); the loss is the cross-entropy of every sample's 256-way
mu-law distribution, the headline metric the negative log-likelihood in nats per sample (the
uniform baseline is ln 256 = 5.55), also over the recording's own span (without the silence
it is centred in).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from convscope.config import TrainConfig
from convscope.data import Dataset
from convscope.errors import ConvscopeError
from convscope.tasks.base import Split, Task, model_outputs

UNIFORM_NLL = math.log(256)


def sample_nll(output: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """(N, S) float32 cross-entropy of every sample's code under ``output`` (N, 256, 1, S),
    the 256 scores of each sample made contiguous first (a softmax over a strided dimension
    is several times slower)."""
    n, classes, _, samples = output.shape
    scores = output.squeeze(2).transpose(1, 2).reshape(-1, classes).float()
    return F.cross_entropy(scores, codes.reshape(-1).long(), reduction="none").view(n, samples)


class WaveNetTask(Task):
    name = "wavenet"
    display_name = "a WaveNet (it generates spoken digits one sample at a time)"
    default_model = "fsdd-wavenet"
    default_data = "fsdd"
    metric = "nll"
    metric_label = "NLL (nats per sample)"
    # its input is a packed 1-D clip, not an image: the image views (Convolution, Maps,
    # Weights: one layer without a weight matrix to draw) have nothing to show of it
    views = ("wavenet", "network", "train", "runs")
    home_view = "wavenet"
    eval_batch_size = 8  # a clip's logits are 256 x 8064 floats

    def load_data(self, config: TrainConfig, preemphasis: float = 0.0) -> Split:
        from convscope.data.dataset import train_val_split
        from convscope.wavenet.data import load_clips

        self._check_config(config)
        train_set, val_set = train_val_split(load_clips("train", config.data_dir, preemphasis),
                                             config.val_fraction, seed=0)
        return train_set, val_set, load_clips("test", config.data_dir, preemphasis)

    def data_options(self, model: torch.nn.Module) -> dict:
        """The pre-emphasis of the WaveNet's codes (none for a model without one: its output
        check then names the fix)."""
        from convscope.wavenet.generation import find_wavenet

        net = find_wavenet(model)
        return {} if net is None else {"preemphasis": net.preemphasis}

    def fit_to_data(self, module: torch.nn.Module, train_set: Dataset) -> None:
        """The WaveNet's prototypes: each digit's mean log-mel image in ``train_set``."""
        from convscope.wavenet.generation import find_wavenet
        from convscope.wavenet.model import prototypes

        net = find_wavenet(module)
        if net is not None and "image" in train_set.targets:
            net.prototypes.copy_(prototypes(
                train_set.targets["image"], train_set.labels, train_set.targets["speaker"],
                (net.digits, len(net.speakers))))

    def load_split(self, config: TrainConfig, split: str, data_info: dict | None = None,
                   preemphasis: float = 0.0) -> Dataset | None:
        from convscope.wavenet.data import load_clips

        if split == "test":
            self._check_config(config)
            return load_clips("test", config.data_dir, preemphasis)
        return super().load_split(config, split, data_info, preemphasis=preemphasis)

    @staticmethod
    def _check_config(config: TrainConfig) -> None:
        if config.data != "fsdd":
            raise ConvscopeError(f"the wavenet task learns FSDD's official training takes; "
                                 f"use --data fsdd, not {config.data!r}")
        if config.augment != "none":
            raise ConvscopeError(f"augment {config.augment!r} would move the packed clips' "
                                 "bytes; the wavenet task trains with --augment none")

    def check_output(self, output: torch.Tensor, dataset: Dataset) -> None:
        codes = dataset.targets.get("codes")
        wanted = None if codes is None else codes.shape[1]
        if output.ndim != 4 or output.shape[1:3] != (256, 1) \
                or wanted is not None and output.shape[3] != wanted:
            raise ConvscopeError(f"the wavenet task needs a wavenet model (256 mu-law scores "
                                 f"per sample, e.g. fsdd-wavenet); this one outputs shape "
                                 f"{tuple(output.shape)}")

    def loss(self, output: torch.Tensor, targets: dict[str, torch.Tensor], config: TrainConfig,
             size: tuple[int, int]) -> tuple[torch.Tensor, None]:
        return sample_nll(output, targets["codes"]).mean(), None

    def evaluate(self, model: torch.nn.Module, dataset: Dataset) -> dict:
        """Mean NLL per sample over whole clips and over the recordings' spans."""
        total = speech = 0.0
        speech_count = 0
        for start, output in model_outputs(model, dataset.images, self.eval_batch_size):
            end = start + len(output)
            codes = dataset.targets["codes"][start:end].long()
            nll = sample_nll(output, codes)
            total += float(nll.sum())
            positions = torch.arange(nll.shape[1])
            span = dataset.targets["span"][start:end]
            inside = (positions >= span[:, :1]) & (positions < span[:, 1:])
            speech += float(nll[inside].sum())
            speech_count += int(inside.sum())
        count = max(1, len(dataset) * dataset.targets["codes"].shape[1])
        return {"nll": total / count, "speech_nll": speech / max(1, speech_count),
                "uniform_nll": UNIFORM_NLL, "clips": len(dataset)}

    def report(self, result: dict) -> str:
        return (f"negative log-likelihood on {result['clips']} clips: {result['nll']:.4f} nats "
                f"per sample ({result['speech_nll']:.4f} within the recordings; uniform "
                f"{UNIFORM_NLL:.4f})")

    def headline(self, result: dict) -> str:
        return f"{self.metric_label} {result['nll']:.4f} (uniform {UNIFORM_NLL:.2f})"


WAVENET = WaveNetTask()
