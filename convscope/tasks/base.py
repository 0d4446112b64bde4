"""The contract between a task and the trainer, ``convscope eval`` and the explorer."""

from __future__ import annotations

import torch

from convscope.augment import fit_batch, prepare_images, to_input
from convscope.config import TrainConfig
from convscope.data import Dataset
from convscope.device import model_device
from convscope.evaluate import input_size

BOX_NAMES = ["box x", "box y", "box w", "box h"]  # the box channels' names (x, y, w, h)
Split = tuple[Dataset, Dataset, Dataset | None]
GENERAL_VIEWS = ("network", "convolution", "maps", "weights", "train", "runs")
"""The explorer views (``static/app.js``) that suit a model of any task."""


class Task:
    """A learning task. Subclasses set the class attributes and implement the methods.

    ``metric`` names the headline number of :meth:`evaluate`'s result (e.g. ``"accuracy"``,
    ``"map50"``, ``"miou"``); the trainer logs it per epoch as ``val_<metric>`` (classification
    keeps ConvNetJS-era ``val_acc``) and prints it at the end.

    Tasks run the network under the caller's precision (:func:`convscope.device.autocast_for`
    of the run's ``precision``), never choosing one themselves.
    """

    name: str
    display_name: str  # what a model of it is: "mnist-yolo is a detection model (...)"
    default_model: str
    default_data: str
    metric: str
    metric_label: str
    classifies: bool = False  # one class per input: confusion matrix, class templates
    scenes: bool = False  # learns on generated MNIST scenes of kind ``name`` (convscope.scenes)
    views: tuple[str, ...] = GENERAL_VIEWS  # the explorer views that suit its models
    home_view: str = "network"  # the one that suits them best (where the others point)
    eval_batch_size: int = 500  # examples per forward pass when scoring

    def load_data(self, config: TrainConfig) -> Split:
        """(train, validation, test or None) for ``config`` (and the keyword arguments of
        :meth:`data_options`, where a task has any)."""
        raise NotImplementedError

    def data_options(self, model: torch.nn.Module) -> dict:
        """What :meth:`load_data` and :meth:`load_split` must know of the network the data is
        for, passed to them as keyword arguments (a WaveNet's pre-emphasis); none by default."""
        return {}

    def fit_to_data(self, module: torch.nn.Module, train_set: Dataset) -> None:
        """Set what ``module`` takes from its training data, not by gradients, before
        training (a resumed run then loads its saved state over it); nothing by default."""

    def load_split(self, config: TrainConfig, split: str, data_info: dict | None = None,
                   **options) -> Dataset | None:
        """One split ("train", "val" or "test"; None: the data has no such split) as
        :meth:`load_data` gives it, for scoring (``convscope eval``). ``data_info``: the run's
        record of its data (``Run.data_info``). This reads everything :meth:`load_data` reads,
        except for a scene task's test scenes (made from the test digits alone); a task that
        can read less overrides it. ``options``: :meth:`data_options`."""
        if self.scenes and split == "test":
            from convscope.tasks._scenes import load_test_scenes

            return load_test_scenes(self.name, config)
        train_set, val_set, test_set = self.load_data(config, **options)
        return {"train": train_set, "val": val_set, "test": test_set}[split]

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

    def class_probabilities(self, net: torch.nn.Module, output: torch.Tensor,
                            classes: list[str]) -> torch.Tensor | None:
        """The class probabilities in the last layer's ``output`` for one input (None where
        the output holds many predictions, as for detection and segmentation)."""
        return None

    def channel_names(self, classes: list[str]) -> list[str]:
        """A name for each channel of the network's last layer: the classes, unless the task
        lays its output out otherwise (a box after the classes, objectness first...)."""
        return list(classes)

    def output_names(self, classes: list[str], depth: int) -> list[str]:
        """The names of the ``depth`` output channels (``output_names`` of the model's
        description): :meth:`channel_names`, or numbers where the output has another layout."""
        names = self.channel_names(classes)
        return names if len(names) == depth else [str(i) for i in range(depth)]

    def prediction(self, model: torch.nn.Module, image: torch.Tensor, classes: list[str]) -> dict:
        """The prediction for one uint8 ``image`` (D, H, W) fitted to the network's input, from
        this task's own decoding (``POST /api/models/{id}/predict``): JSON-ready but for
        tensors, which the server sends in its wire form."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What the explorer needs to know about this task (JSON-ready)."""
        return {"name": self.name, "display_name": self.display_name,
                "classifies": self.classifies, "scenes": self.scenes, "views": list(self.views),
                "home_view": self.home_view, "metric": self.metric,
                "metric_label": self.metric_label}

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
    device = model_device(model)
    try:
        for start in range(0, images.shape[0], batch_size):
            batch = fit_batch(images[start:start + batch_size], height, width).to(device)
            yield start, model(to_input(batch)).float().cpu()
    finally:
        model.train(was_training)
