"""``/api/datasets`` and ``/api/chapter``: the dataset catalogue, the samples on offer with
their labels, pictures and ground truth, and the chapter's own results."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ...data import DATASETS
from ..chapter import image_png, summaries_json
from .models import MAX_CELL_SAMPLES
from .state import Explorer

MAX_LISTED = 10_000
CACHED = {"Cache-Control": "public, max-age=3600"}


def datasets_router(explorer: Explorer) -> APIRouter:
    """The catalogue and the offered samples, one by one."""
    router = APIRouter()
    samples = explorer.samples

    @router.get("/api/datasets")
    def datasets() -> dict:
        return {"datasets": [offer.json() for offer in samples.offers()],
                "catalogue": [entry.json() for entry in DATASETS.values()]}

    @router.get("/api/datasets/{name}/samples")
    def dataset_samples(name: str, offset: int = Query(0, ge=0),
                        limit: int = Query(100, ge=0, le=MAX_LISTED)) -> dict:
        sample_set = samples.get(name)
        data = sample_set.dataset
        labels = data.labels[offset:offset + limit].tolist()
        return {"name": name, "source": sample_set.source, "total": len(data),
                "classes": data.classes,
                "samples": [{"index": offset + i, "label": label}
                            for i, label in enumerate(labels)]}

    @router.get("/api/datasets/{name}/samples/{index:int}/truth")
    def sample_truth(name: str, index: int) -> dict:
        return samples.get(name).truth(index)

    @router.get("/api/datasets/{name}/samples/{index:int}.png", response_class=Response)
    def sample_png(name: str, index: int, scale: int = 1) -> Response:
        return Response(samples.get(name).png(index, scale), media_type="image/png",
                        headers=CACHED)

    return router


def chapter_router(explorer: Explorer) -> APIRouter:
    """The chapter's original confusion summaries and the images they point at."""
    router = APIRouter()

    @router.get("/api/chapter/summaries")
    def chapter_results(per_cell: int = Query(64, alias="samples", ge=0,
                                              le=MAX_CELL_SAMPLES)) -> dict:
        return {"summaries": summaries_json(explorer.samples, per_cell)}

    @router.get("/api/chapter/images/{dataset}/{index:int}.png", response_class=Response)
    def chapter_image(dataset: str, index: int, scale: int = 1) -> Response:
        return Response(image_png(explorer.samples, dataset, index, scale),
                        media_type="image/png", headers=CACHED)

    return router
