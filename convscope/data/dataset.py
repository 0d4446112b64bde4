"""The in-memory dataset type shared by every loader, and the train/validation split."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Dataset:
    """Labelled images: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,) in [0, K).

    ``targets`` holds what tasks other than classification learn, one tensor per name, each
    with N rows (e.g. ``boxes`` for localization, ``masks`` for segmentation).
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    targets: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"dataset {self.name!r}: images must be uint8 (N, C, H, W), "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"dataset {self.name!r}: labels must be int64 of shape ({len(self.images)},), "
                f"got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if len(self.labels) and (
            int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)
        ):
            raise ValueError(
                f"dataset {self.name!r}: labels must lie in [0, {len(self.classes)}), "
                f"got [{int(self.labels.min())}, {int(self.labels.max())}]"
            )
        for key, value in self.targets.items():
            if value.shape[:1] != self.labels.shape:
                raise ValueError(f"dataset {self.name!r}: target {key!r} must have "
                                 f"{len(self.labels)} rows, got {tuple(value.shape)}")
        self.images = self.images.contiguous()

    def __repr__(self) -> str:
        from convscope.notebook import dataset_repr

        return dataset_repr(self)

    def _repr_html_(self) -> str:
        from convscope.notebook import dataset_html

        return dataset_html(self)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> Dataset:
        """The examples at ``indices`` (int64 indices or a boolean mask), same classes."""
        indices = torch.as_tensor(indices)
        return Dataset(self.name, self.images[indices], self.labels[indices], list(self.classes),
                       {key: value[indices] for key, value in self.targets.items()})

    @property
    def volume(self) -> tuple[int, int, int]:
        """Input volume as (width, height, channels)."""
        _, c, h, w = self.images.shape
        return (w, h, c)


def train_val_split(
    ds: Dataset, val_fraction: float = 0.1, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Split off ``round(len(ds) * val_fraction)`` examples chosen by a seed-fixed permutation.

    Both parts keep the original order of their examples. ``val_fraction == 0`` returns
    ``(ds, <empty dataset>)``.
    """
    train_idx, val_idx = split_indices(len(ds), val_fraction, seed)
    if len(val_idx) == 0:
        return ds, ds.subset(val_idx)
    return ds.subset(train_idx), ds.subset(val_idx)


def split_indices(count: int, val_fraction: float = 0.1,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The ascending (training, validation) indices of :func:`train_val_split`."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = round(count * val_fraction)
    if n_val == 0:
        return torch.arange(count), torch.zeros(0, dtype=torch.int64)
    perm = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort()[0], perm[:n_val].sort()[0]
