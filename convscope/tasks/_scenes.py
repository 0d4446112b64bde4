"""Data for the scene tasks: generated MNIST scenes (training digits for training scenes, test
digits only for the fixed test scenes)."""

from __future__ import annotations

from convscope.config import TrainConfig
from convscope.data import Dataset, train_val_split
from convscope.errors import ConvscopeError
from convscope.tasks.base import Split


def load_scenes(kind: str, config: TrainConfig) -> Split:
    """``config.scenes`` training scenes (a ``val_fraction`` of them held out) and
    ``config.test_scenes`` test scenes of ``kind``, made from ``config.data``'s training and
    test digits respectively."""
    from convscope.scenes import scene_dataset

    _check_mnist(kind, config)
    full = scene_dataset(kind, "train", config.scenes, data_dir=config.data_dir)
    train_set, val_set = train_val_split(full, config.val_fraction, seed=0)
    return train_set, val_set, load_test_scenes(kind, config)


def load_test_scenes(kind: str, config: TrainConfig) -> Dataset:
    """The ``config.test_scenes`` test scenes of ``kind`` (MNIST's test digits only)."""
    from convscope.scenes import scene_dataset

    _check_mnist(kind, config)
    return scene_dataset(kind, "test", config.test_scenes, data_dir=config.data_dir)


def _check_mnist(kind: str, config: TrainConfig) -> None:
    if config.data != "mnist":
        raise ConvscopeError(f"the {kind} task trains on scenes made of MNIST digits "
                             f"(--data mnist), not {config.data!r}")
