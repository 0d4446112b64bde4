"""The chapter's original results for the confusion view: the stored ConvNetJS summaries in
convscope's confusion form, and the images their sample indices point to (official order,
training images first), served from the data directory's files."""

from __future__ import annotations

from ..convnetjs import chapter_summaries
from ..convnetjs.summaries import TRAIN_SIZE
from .errors import ApiError
from .samples import Samples, SampleSet


def summaries_json(samples: Samples, per_cell: int) -> list[dict]:
    """Every summary of ``<data dir>/ml4a/`` with ``images``: whether this server can show
    every image its cells list."""
    summaries = chapter_summaries(samples.data_dir, per_cell)
    for summary in summaries:
        entries = [e for row in summary["cells"] for cell in row for e in cell]
        summary["images"] = all(_offered(samples, summary["dataset"], e["split"], e["split_index"])
                                for e in entries)
    return summaries


def _offered(samples: Samples, dataset: str, split: str, index: int) -> bool:
    data = samples.split(dataset, split)
    return data is not None and index < len(data)


def image_png(samples: Samples, dataset: str, index: int, scale: int) -> bytes:
    """Image ``index`` of ``dataset`` in the official order (training images first) as a PNG;
    404 when the data directory lacks it."""
    if dataset not in TRAIN_SIZE:
        raise ApiError(404, f"unknown dataset {dataset!r}; chapter images are of "
                            f"{', '.join(TRAIN_SIZE)}")
    train = TRAIN_SIZE[dataset]
    split, position = ("train", index) if index < train else ("test", index - train)
    data = samples.split(dataset, split)
    if data is None:
        raise ApiError(404, f"{dataset} image {index:,} is {split} image {position:,}, and the "
                            f"data directory holds no {dataset} {split} split; start the "
                            "explorer with --data-dir pointing at the official files")
    if position >= len(data):
        raise ApiError(404, f"{dataset} image {index:,} would be {split} image {position:,}, "
                            f"but the data directory's {split} split has {len(data):,} images")
    return SampleSet(data, "data-dir").png(position, scale)
