"""Datasets for convscope: the catalogue (MNIST, CIFAR-10, FSDD, MNIST scenes, yours) and image
folders, as uint8 tensors."""

from convscope.data.catalog import (
    DATASETS,
    DatasetEntry,
    get_dataset,
    register_dataset,
    unregister_dataset,
)
from convscope.data.dataset import Dataset, train_val_split
from convscope.data.load import load_dataset
from convscope.data.paths import resolve_data_dir
from convscope.data.registry import DatasetSpec, FileSpec

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetEntry",
    "DatasetSpec",
    "FileSpec",
    "get_dataset",
    "load_dataset",
    "register_dataset",
    "resolve_data_dir",
    "train_val_split",
    "unregister_dataset",
]
