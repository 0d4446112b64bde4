"""Files shipped inside the package for offline use (made by ``scripts/make_bundle.py``).

    bundled/models/<name>/     run directories of trained default models (``load_run`` them)
    bundled/samples/<data>.npz class-balanced samples of the official test sets: ``images``
                               uint8 (N, C, H, W), ``labels`` int64, ``classes``, ``indices``
                               (each image's index in the official test set)
    bundled/samples/fsdd/      FSDD test recordings, unchanged WAV files (take 0 of every
                               speaker and digit)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import Dataset
from .runs import CONFIG

BUNDLED = Path(__file__).parent / "bundled"
MODELS_DIR = BUNDLED / "models"
SAMPLES_DIR = BUNDLED / "samples"


def bundled_model_dirs(models_dir: Path = MODELS_DIR) -> dict[str, Path]:
    """The bundled models' run directories by name, sorted (empty when none are bundled)."""
    if not models_dir.is_dir():
        return {}
    return {p.name: p for p in sorted(models_dir.iterdir()) if (p / CONFIG).is_file()}


def _arrays(name: str, samples_dir: Path) -> dict[str, np.ndarray] | None:
    path = samples_dir / f"{name}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def bundled_sample(name: str, samples_dir: Path = SAMPLES_DIR) -> Dataset | None:
    """The bundled test-image sample of dataset ``name`` ("mnist", "cifar10"), or None."""
    arrays = _arrays(name, samples_dir)
    if arrays is None:
        return None
    return Dataset(name, torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"]),
                   [str(c) for c in arrays["classes"]])


def bundled_sample_indices(name: str, samples_dir: Path = SAMPLES_DIR) -> list[int] | None:
    """Official test-set index of each image of :func:`bundled_sample`, in order, or None."""
    arrays = _arrays(name, samples_dir)
    return None if arrays is None else arrays["indices"].tolist()
