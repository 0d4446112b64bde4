"""The contract between the trainer and a task."""

from __future__ import annotations

import torch

from convscope.augment import fit_batch, prepare_images, to_input
from convscope.config import TrainConfig
from convscope.data import Dataset
from convscope.evaluate import input_size

Split = tuple[Dataset, Dataset, Dataset | None]


class Task:
    """A learning task. Subclasses set the class attributes and implement the methods.

    ``metric`` names the headline number of :meth:`evaluate`'s result (e.g. ``"accuracy"``,
    ``"map50"``, ``"miou"``); the trainer logs it per epoch as ``val_<metric>`` (classification
    keeps ConvNetJS-era ``val_acc``) and prints it at the end.
    """

    name: str
    default_model: str
    default_data: str
    metric: str
    metric_label: str

    def load_data(self, config: TrainConfig) -> Split:
        """(train, validation, test or None) for ``config``."""
        raise NotImplementedError

    def check_output(self, output: torch.Tensor, dataset: Dataset) -> None:
        """Raise ConvscopeError, naming the fix, unless ``output`` suits this task."""
        raise NotImplementedError

    def loss(self, output: torch.Tensor, targets: dict[str, torch.Tensor], config: TrainConfig,
             size: tuple[int, int]) -> tuple[torch.Tensor, int | None]:
        """The batch's loss and, where it means something, how many examples were right.
        ``targets`` holds ``labels`` and the dataset's other targets for the batch; ``size``
        is the input's (height, width)."""
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module, dataset: Dataset) -> dict:
        """JSON-ready results on ``dataset`` (no augmentation); includes ``metric``."""
        raise NotImplementedError

    def report(self, result: dict) -> str:
        """A text report of :meth:`evaluate`'s result."""
        raise NotImplementedError

    def headline(self, result: dict) -> str:
        value = result[self.metric]
        shown = f"{100 * value:.2f}%" if self.metric == "accuracy" else f"{value:.4f}"
        return f"{self.metric_label} {shown}"


@torch.no_grad()
def model_outputs(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 500):
    """Yield ``(start, float outputs)`` of ``model`` in eval mode over uint8 ``images``."""
    depth, height, width = input_size(model, images)
    images = prepare_images(images, height, width, depth)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for start in range(0, images.shape[0], batch_size):
            batch = fit_batch(images[start:start + batch_size], height, width).to(device)
            yield start, model(to_input(batch)).float().cpu()
    finally:
        model.train(was_training)
