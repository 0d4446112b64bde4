"""Classification: one label per image (MNIST, CIFAR-10, image folders, spoken digits)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from convscope.config import TrainConfig
from convscope.data import DATASETS, Dataset, load_dataset
from convscope.data.folder import parse_image_size
from convscope.data.load import train_and_val
from convscope.data.location import decoded_folder, is_folder_name
from convscope.errors import ConvscopeError
from convscope.evaluate import Evaluation, evaluate, format_report
from convscope.tasks.base import GENERAL_VIEWS, Split, Task, model_outputs


class Classify(Task):
    """Cross-entropy on class scores; accuracy, recall, precision and the confusion matrix."""

    metric = "accuracy"
    metric_label = "accuracy"
    classifies = True

    def __init__(self, name: str, default_model: str, default_data: str, display_name: str,
                 views: tuple[str, ...] = (*GENERAL_VIEWS, "confusion"),
                 home_view: str = "network") -> None:
        self.name, self.default_model, self.default_data = name, default_model, default_data
        self.display_name, self.views, self.home_view = display_name, views, home_view

    def load_data(self, config: TrainConfig) -> Split:
        size = parse_image_size(config.image_size) if config.image_size else None
        train_set, val_set = train_and_val(config.data, config.val_fraction, config.data_dir, size)
        try:
            test_set = load_dataset(config.data, "test", data_dir=config.data_dir, size=size)
        except ConvscopeError as exc:
            if config.data in DATASETS:  # catalogued datasets have a test split
                raise
            print(f"note: {exc}; reporting validation accuracy only")
            test_set = None
        return train_set, val_set, test_set

    def load_split(self, config: TrainConfig, split: str,
                   data_info: dict | None = None) -> Dataset | None:
        """Only what ``split`` needs: the test split alone (an image folder decoded as the run
        recorded, without its training folder), a ``val/`` folder alone, else the training
        split (for "train" and a held-out "val")."""
        folder = is_folder_name(config.data)
        decoded = decoded_folder(data_info or {}) if folder else None
        size = None if decoded or not config.image_size else parse_image_size(config.image_size)
        has = split != "train" and ((Path(config.data).expanduser() / split).is_dir() if folder
                                    else split == "test")
        if split == "test" and not has:
            return None
        if has:  # a test split, or an image folder's val/ folder
            return load_dataset(config.data, split, data_dir=config.data_dir, size=size,
                                decoded=decoded)
        train_set, val_set = train_and_val(config.data, config.val_fraction, config.data_dir,
                                           size, decoded)
        return train_set if split == "train" else val_set

    def check_output(self, output: torch.Tensor, dataset: Dataset) -> None:
        k = len(dataset.classes)
        if output.ndim != 2 or output.shape[1] != k:
            raise ConvscopeError(
                f"the model outputs shape {tuple(output.shape)} but the data has {k} classes; "
                f"its last layer must give one score per class (softmax {k})")

    def loss(self, output: torch.Tensor, targets: dict[str, torch.Tensor], config: TrainConfig,
             size: tuple[int, int]) -> tuple[torch.Tensor, int]:
        labels = targets["labels"]
        loss = F.cross_entropy(output.float(), labels, label_smoothing=config.label_smoothing)
        return loss, int((output.argmax(1) == labels).sum())

    def predict(self, model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) for uint8 images."""
        return torch.cat([out.softmax(1) for _, out in model_outputs(model, images)])

    def class_probabilities(self, net: torch.nn.Module, output: torch.Tensor,
                            classes: list[str]) -> torch.Tensor:
        """A trailing softmax layer's output as it is, else the softmax of the output."""
        flat = output.flatten()
        layers = getattr(net, "layers", None)  # a SpecNet's; any other module: its last one
        last = layers[-1].type == "softmax" if layers else \
            isinstance(list(net.modules())[-1], torch.nn.Softmax)
        return flat if last else torch.softmax(flat, 0)

    def prediction(self, model: torch.nn.Module, image: torch.Tensor, classes: list[str]) -> dict:
        probabilities = self.predict(model, image[None])[0]
        best = int(probabilities.argmax())
        return {"probabilities": probabilities.tolist(), "class": best,
                "confidence": float(probabilities[best])}

    def evaluate(self, model: torch.nn.Module, dataset: Dataset) -> dict:
        return evaluate(model, dataset).to_dict()

    def report(self, result: dict) -> str:
        return format_report(Evaluation(result["classes"], result["confusion"], [], []))


CLASSIFY = Classify("classify", "mnist-convnetjs", "mnist", "an image classifier",
                    views=(*GENERAL_VIEWS, "confusion", "predict", "live"))
AUDIO = Classify("audio", "fsdd-convnet", "fsdd", "a spoken-digit classifier",
                 views=(*GENERAL_VIEWS, "confusion", "audio"), home_view="audio")
