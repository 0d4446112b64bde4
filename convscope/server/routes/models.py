"""``/api/models``: the models on offer, their descriptions and weights, and what they make of
an input (activations, predictions, one convolution step, the confusion matrix)."""

from __future__ import annotations

import threading
from typing import Annotated

import torch
from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from ...augment import to_input
from ...device import autocast_for
from ...probes import Confusion, confusion_with_samples, conv_step, layer_weights
from ...tasks import get_task
from ...tta import with_tta
from ..catalog import Entry
from ..compute import run_decode, run_model
from ..encode import StrictJSONResponse, activations_json, tensor_json
from ..errors import ApiError
from ..inputs import (
    InputRef,
    decode_upload,
    pending_upload,
    read_file_field,
    resolve_input,
    upload_preparation,
)
from ..predictions import prediction_json
from .state import Explorer

MAX_CELL_SAMPLES = 10_000
MAX_LAYERS = 1000
# AlexNet's fc 4096 layers (37.7 and 16.8 million weights) and VGG-16's first fc (103 million)
# are refused; every conv layer of both (at most 2.4 million) is sent
MAX_WEIGHT_VALUES = 8_000_000


class ActivationsRequest(InputRef):
    """An input and, optionally, the layers whose outputs to send (default: every layer)."""

    layers: list[int] | None = Field(None, max_length=MAX_LAYERS)


class ConvStepRequest(InputRef):
    layer: int
    filter: int
    x: int
    y: int
    stride: int | None = None
    pad: int | None = None


def activations_payload(explorer: Explorer, entry: Entry, image: torch.Tensor,
                        layers: list[int] | None = None) -> dict:
    """The activations response of ``entry``'s network for the fitted uint8 ``image``."""
    return activations_json(explorer.catalog.model(entry.id), image, entry.classes, entry.task,
                            layers)


def conv_step_json(explorer: Explorer, entry: Entry, body: ConvStepRequest) -> dict:
    """The conv-step response: one output of a conv filter and the arithmetic behind it."""
    image = resolve_input(body, explorer.samples, entry.input_volume, entry.dataset)
    step = conv_step(explorer.catalog.model(entry.id), to_input(image), body.layer, body.filter,
                     body.x, body.y, body.stride, body.pad)
    return {"patch": tensor_json(step.patch), "weights": tensor_json(step.weights),
            "products": tensor_json(step.products), "sum": step.sum, "bias": step.bias,
            "output": step.output, "window": {"x0": step.x0, "y0": step.y0},
            "out_size": {"sx": step.out_sx, "sy": step.out_sy}, "stride": step.stride,
            "pad": step.pad}


def models_router(explorer: Explorer) -> APIRouter:
    """Descriptions, weights, activations, predictions and convolution steps."""
    router = APIRouter()
    catalog, samples = explorer.catalog, explorer.samples

    @router.get("/api/models")
    def models() -> dict:
        return {"models": [entry.summary() for entry in catalog.entries()],
                "skipped": catalog.skipped()}

    @router.get("/api/models/{model_id}")
    def model(model_id: str) -> dict:
        return catalog.get(model_id).describe()

    @router.get("/api/models/{model_id}/layers/{index}/weights")
    def weights(model_id: str, index: int) -> dict:
        w, b = layer_weights(catalog.model(model_id), index)
        if w.numel() > MAX_WEIGHT_VALUES:
            raise ApiError(400, f"layer {index} has {w.numel():,} weights, more than the "
                                f"{MAX_WEIGHT_VALUES:,} the explorer sends (about "
                                f"{w.numel() * 16 // 3 // 2**20:,} MiB of JSON); read them in "
                                "Python with convscope.probes.layer_weights")
        return {"weights": tensor_json(w), "bias": None if b is None else tensor_json(b)}

    @router.post("/api/models/{model_id}/activations")
    async def model_activations(model_id: str, body: ActivationsRequest) -> Response:
        entry = catalog.get(model_id)

        def compute() -> Response:
            image = resolve_input(body, samples, entry.input_volume, entry.dataset)
            return StrictJSONResponse(activations_payload(explorer, entry, image, body.layers))

        return await run_model(compute)

    @router.post("/api/models/{model_id}/activations/upload")
    async def model_activations_upload(model_id: str, request: Request,
                                       layers: Annotated[list[int] | None, Query()] = None,
                                       invert: str = "auto") -> Response:
        entry = catalog.get(model_id)
        prep = upload_preparation(entry.dataset, invert)
        with pending_upload():
            content = await read_file_field(request, "image", "the image")
            image = await run_decode(decode_upload, content, entry.input_volume, prep)
        return await run_model(lambda: StrictJSONResponse(
            activations_payload(explorer, entry, image, layers)))

    @router.post("/api/models/{model_id}/predict")
    async def model_predict(model_id: str, body: InputRef) -> Response:
        entry = catalog.get(model_id)

        def compute() -> Response:
            image = resolve_input(body, samples, entry.input_volume, entry.dataset)
            return StrictJSONResponse(prediction_json(catalog.model(model_id), image, entry.task,
                                                      entry.classes))

        return await run_model(compute)

    @router.post("/api/models/{model_id}/conv-step")
    async def model_conv_step(model_id: str, body: ConvStepRequest) -> Response:
        entry = catalog.get(model_id)
        return await run_model(lambda: StrictJSONResponse(conv_step_json(explorer, entry, body)))

    router.include_router(confusion_router(explorer))
    return router


def confusion_router(explorer: Explorer) -> APIRouter:
    """A classifier's confusion matrix on its test samples, cached until its weights change."""
    router = APIRouter()
    confusions: dict[str, tuple[torch.nn.Module, Confusion]] = {}
    lock = threading.Lock()

    def evaluated(entry: Entry) -> Confusion:
        net = explorer.catalog.model(entry.id)
        with lock:  # one evaluation at a time
            cached = confusions.get(entry.id)
            if cached is None or cached[0] is not net:
                with autocast_for(entry.precision, net):  # as its run
                    cached = confusions[entry.id] = (net, confusion_with_samples(
                        with_tta(net, entry.tta), explorer.samples.get(entry.dataset).dataset,
                        per_cell=None))
        return cached[1]

    @router.get("/api/models/{model_id}/confusion")
    def confusion(model_id: str, per_cell: int = Query(64, alias="samples", ge=0,
                                                       le=MAX_CELL_SAMPLES)) -> dict:
        entry = explorer.catalog.get(model_id)
        if not get_task(entry.task).classifies:
            raise ApiError(400, f"model {model_id!r} is a {entry.task} model: a confusion "
                                "matrix needs one predicted class per image; see its "
                                "predictions in its other views")
        sample_set = explorer.samples.get(entry.dataset)
        result = evaluated(entry)
        ev = result.evaluation
        return {"source": sample_set.description, "dataset": entry.dataset, "tta": entry.tta,
                "classes": ev.classes, "confusion": ev.confusion, "accuracy": ev.accuracy,
                "correct": ev.correct, "total": ev.total, "recall": ev.recall,
                "precision": ev.precision,
                "cells": [[[{"index": i, "confidence": c} for i, c in cell[:per_cell]]
                           for cell in row] for row in result.cells],
                # the run's own test matrix, when only a sample of the test set is served here
                "stored": {**entry.stored_test, "source": entry.accuracy_source}
                if entry.stored_test is not None and sample_set.source == "bundled" else None}

    return router
