"""``/api/models/{id}/explain``: why a classifier answers as it does, as a map over its input
(Grad-CAM, SmoothGrad saliency, occlusion: :mod:`convscope.explain`), and
``/api/models/{id}/layers/{layer}/top-images``: the test images that excite a conv channel
most (:mod:`convscope.top_images`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import Field

from ...augment import to_input
from ...explain import MAX_SMOOTH_SAMPLES, SMOOTH_SAMPLES, explain, forward_passes, map_layers
from ...module_graph import volume_of
from ...probes import network_graph
from ..catalog import Entry
from ..compute import run_model
from ..encode import StrictJSONResponse, tensor_json
from ..errors import ApiError
from ..inputs import InputRef, resolve_input
from .state import Explorer

EXPLAINED_TASKS = ("classify", "localize")
MAX_EXPLAIN_MACS = 20e9  # multiply-adds one request may cost (an occlusion map of AlexNet: no)
SERVER_SMOOTH_SAMPLES = 32


class ExplainRequest(InputRef):
    """An input, the method, the class (index; default the predicted one), Grad-CAM's layer
    (node index; default the last conv layer) and SmoothGrad's noisy copies."""

    method: Literal["gradcam", "saliency", "occlusion"] = "gradcam"
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
    cost = sum(n.macs for n in network_graph(net, volume).nodes) * forward_passes(
        body.method, body.samples, volume.sy, volume.sx)
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


def explain_router(explorer: Explorer) -> APIRouter:
    """Maps of why a model answers, and a channel's top images."""
    router = APIRouter()
    catalog = explorer.catalog

    @router.post("/api/models/{model_id}/explain")
    async def model_explain(model_id: str, body: ExplainRequest) -> Response:
        entry = catalog.get(model_id)
        return await run_model(lambda: StrictJSONResponse(explain_json(explorer, entry, body)))

    return router
