"""Datasets for convscope: MNIST, CIFAR-10 and image folders as uint8 tensors."""

from convscope.data.dataset import Dataset, train_val_split
from convscope.data.load import load_dataset
from convscope.data.paths import resolve_data_dir
from convscope.data.registry import DATASETS, DatasetSpec, FileSpec

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetSpec",
    "FileSpec",
    "load_dataset",
    "resolve_data_dir",
    "train_val_split",
]
