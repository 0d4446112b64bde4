"""``/api/models/{id}/explain``: why a classifier answers as it does, as a map over its input
(Grad-CAM, HiResCAM, SmoothGrad saliency, occlusion: :mod:`convscope.explain`), and
``/api/models/{id}/layers/{layer}/top-images``: the test images that excite a conv channel
most (:mod:`convscope.top_images`)."""

from __future__ import annotations

import threading
from typing import Literal

import torch
from fastapi import APIRouter, Query, Response
from pydantic import Field

from ...augment import to_input
from ...explain import (
    EXPLAINED_TASKS,
    MAX_SMOOTH_SAMPLES,
    METHODS,
    SMOOTH_SAMPLES,
    explain,
    forward_passes,
    map_layers,
)
from ...explain_methods import BY_NAME
from ...module_graph import volume_of
from ...probes import network_graph
from ...top_images import TopImages, channel_tops, fitted, top_images
from ..catalog import Entry
from ..compute import run_model
from ..encode import StrictJSONResponse, tensor_json, uint8_json
from ..errors import ApiError
from ..inputs import InputRef, resolve_input
from .state import Explorer

MAX_EXPLAIN_MACS = 20e9  # multiply-adds one request may cost (an occlusion map of AlexNet: no)
SERVER_SMOOTH_SAMPLES = 32
MAX_TOP_IMAGES_MACS = 5e11  # one pass over the test images (AlexNet on 300 images: 2e11)


class ExplainRequest(InputRef):
    """An input, the method, the class (index; default the predicted one), Grad-CAM's and
    HiResCAM's layer (node index; default the last conv layer) and SmoothGrad's noisy copies."""

    method: Literal[METHODS] = METHODS[0]  # (the tuple's names, from explain_methods)
    target: int | None = Field(None, alias="class", ge=0)
    layer: int | None = Field(None, ge=0)
    samples: int = Field(SMOOTH_SAMPLES, ge=1, le=min(SERVER_SMOOTH_SAMPLES, MAX_SMOOTH_SAMPLES))


def explain_json(explorer: Explorer, entry: Entry, body: ExplainRequest) -> dict:
    """The map response: the map (H, W) at the input's resolution, what it explains, and the
    layers Grad-CAM can read."""
    if entry.task not in EXPLAINED_TASKS:
        raise ApiError(400, f"model {entry.id!r} is a {entry.task} model; maps explain one "
                            "class score per class: choose a classifier or a localizer")
    net = explorer.catalog.model(entry.id)
    image = resolve_input(body, explorer.samples, entry.input_volume, entry.dataset)
    x = to_input(image)
    volume = volume_of((1, *x.shape))
    cost = forward_macs(net, volume) * forward_passes(body.method, body.samples, volume.sy,
                                                      volume.sx)
    if cost > MAX_EXPLAIN_MACS:
        raise ApiError(400, f"a {body.method} map of this model costs {cost / 1e9:,.0f} billion "
                            f"multiply-adds, more than the explorer's {MAX_EXPLAIN_MACS / 1e9:.0f}"
                            "; use Grad-CAM here, or `convscope explain` on the command line")
    found = explain(net, x, body.method, body.target, body.layer, entry.classes, body.samples)
    return {"method": found.method, "map": tensor_json(found.map), "class": found.target,
            "layer": found.layer, "score": found.score, "classes": entry.classes,
            "layers": [{"index": n.index, "label": n.label,
                        "size": [n.out_volume.sx, n.out_volume.sy]}
                       for n in map_layers(net, volume)]}


def forward_macs(net: torch.nn.Module, volume) -> float:
    """The multiply-adds of one forward pass of ``net`` on an input of ``volume``."""
    return sum(n.macs for n in network_graph(net, volume).nodes)


def methods_json(explorer: Explorer, entry: Entry) -> dict:
    """What each method's map of this model costs, and whether the explorer computes it (the
    page offers only those, so it never asks for a map it would be refused)."""
    if entry.task not in EXPLAINED_TASKS:
        return {"limit": MAX_EXPLAIN_MACS, "methods": []}
    net = explorer.catalog.model(entry.id)
    volume = entry.input_volume
    forward = forward_macs(net, volume)  # one graph walk serves every method
    costs = {m: forward * forward_passes(m, SMOOTH_SAMPLES, volume.sy, volume.sx)
             for m in METHODS}
    return {"limit": MAX_EXPLAIN_MACS,
            "methods": [{**BY_NAME[m].to_dict(), "macs": c, "allowed": c <= MAX_EXPLAIN_MACS}
                        for m, c in costs.items()]}


def explain_router(explorer: Explorer) -> APIRouter:
    """Maps of why a model answers, and a channel's top images."""
    router = APIRouter()
    catalog = explorer.catalog

    @router.get("/api/models/{model_id}/explain")
    async def model_explain_methods(model_id: str) -> Response:
        entry = catalog.get(model_id)
        return await run_model(lambda: StrictJSONResponse(methods_json(explorer, entry)))

    @router.post("/api/models/{model_id}/explain")
    async def model_explain(model_id: str, body: ExplainRequest) -> Response:
        entry = catalog.get(model_id)
        return await run_model(lambda: StrictJSONResponse(explain_json(explorer, entry, body)))

    router.include_router(top_images_router(explorer))
    return router


def top_images_router(explorer: Explorer) -> APIRouter:
    """A conv channel's most exciting test images, computed once per model's weights (kept
    in memory and on disk: :func:`convscope.top_images.top_images`)."""
    router = APIRouter()
    computed: dict[str, tuple[torch.nn.Module, TopImages]] = {}
    lock = threading.Lock()

    def found_for(entry: Entry, images: torch.Tensor) -> TopImages:
        net = explorer.catalog.model(entry.id)
        with lock:  # one computation at a time
            kept = computed.get(entry.id)
            if kept is None or kept[0] is not net:
                macs = forward_macs(net, entry.input_volume)
                if macs * len(images) > MAX_TOP_IMAGES_MACS:
                    raise ApiError(400, f"top images of this model would cost "
                                        f"{macs * len(images) / 1e9:,.0f} billion multiply-adds "
                                        f"over {len(images):,} test images, more than the "
                                        f"explorer's {MAX_TOP_IMAGES_MACS / 1e9:,.0f}; compute "
                                        "them in Python with convscope.top_images")
                kept = computed[entry.id] = (net, top_images(net, images, entry.input_volume))
        return kept[1]

    def payload(entry: Entry, layer: int, channel: int) -> dict:
        sample_set = explorer.samples.get(entry.dataset)
        images = sample_set.dataset.images
        found = found_for(entry, images)
        tops = channel_tops(explorer.catalog.model(entry.id), found, entry.input_volume, layer,
                            channel)
        for top in tops:
            top["image"] = uint8_json(fitted(images[top["index"]:top["index"] + 1],
                                             entry.input_volume)[0])
        return {"layer": layer, "channel": channel, "channels": len(found.values[layer]),
                "dataset": entry.dataset, "source": sample_set.description,
                "layers": sorted(found.values), "images": tops}

    @router.get("/api/models/{model_id}/layers/{layer}/top-images")
    async def model_top_images(model_id: str, layer: int,
                               channel: int = Query(0, ge=0)) -> Response:
        entry = explorer.catalog.get(model_id)
        return await run_model(lambda: StrictJSONResponse(payload(entry, layer, channel)))

    return router
