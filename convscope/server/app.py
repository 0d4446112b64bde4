"""The FastAPI app: the page, the JSON API of docs/api.md and the training WebSocket.

Model-running endpoints are plain functions, so FastAPI runs them in its thread pool and the
event loop stays free for the WebSocket.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from ..audio import read_wav
from ..augment import to_input
from ..bundle import BUNDLED
from ..data import DATASETS
from ..device import autocast_for
from ..probes import Confusion, confusion_with_samples, conv_step, layer_weights
from ..tasks import get_task
from ..tta import with_tta
from .audio import analyse, read_upload
from .catalog import Catalog, Entry
from .chapter import image_png, summaries_json
from .encode import StrictJSONResponse, activations_json, dumps, tensor_json
from .errors import ApiError, error_response, install_error_handlers
from .inputs import MAX_UPLOAD_BYTES, InputRef, decode_upload, fit_to_volume, resolve_input
from .live import Jobs, TrainRequest
from .predictions import prediction_json
from .samples import Recording, Samples

PACKAGE = Path(__file__).resolve().parent.parent
STATIC = PACKAGE / "static"
MAX_LISTED = 10_000
MAX_CELL_SAMPLES = 10_000
MAX_BODY_BYTES = 16 * 1024 * 1024  # a 512x512 RGB drawing is about 3 MB of JSON
POLL_SECONDS = 0.1
MAX_LAYERS = 1000


class AudioRef(BaseModel):
    """A listed test recording, by its index in ``GET /api/audio/recordings``."""

    model_config = ConfigDict(extra="forbid")
    recording: int = Field(ge=0)


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


def create_app(runs: Sequence[Path] = (), runs_dir: Path | None = None, data_dir: str | None = None,
               *, bundled_dir: Path = BUNDLED, static_dir: Path = STATIC) -> FastAPI:
    """The explorer for the bundled models plus the runs given and those in ``runs_dir``.

    Live training writes under ``<runs_dir>/live/`` (``runs/live/`` without one); datasets are
    read from ``data_dir`` (default as for training) or the bundled samples.
    """
    catalog = Catalog(bundled_dir / "models", list(runs), runs_dir)
    samples = Samples(data_dir, bundled_dir / "samples")
    jobs = Jobs(catalog, samples, (runs_dir or Path("runs")) / "live", data_dir)
    confusions: dict[str, tuple[torch.nn.Module, Confusion]] = {}
    confusion_lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(jobs.shutdown)

    app = FastAPI(title="convscope explorer", lifespan=lifespan, docs_url=None, redoc_url=None,
                  default_response_class=StrictJSONResponse)
    install_error_handlers(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next) -> Response:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return error_response(413, f"the request body has {int(length):,} bytes; at most "
                                       f"{MAX_BODY_BYTES:,} are accepted")
        return await call_next(request)

    # ---- the page --------------------------------------------------------------------------

    @app.get("/", include_in_schema=False, response_model=None)
    def page() -> Response:
        index = static_dir / "index.html"
        if index.is_file():
            return FileResponse(index)
        return PlainTextResponse(f"convscope explorer: the page is not installed ({index} is "
                                 "missing); the API answers under /api (try /api/models).")

    if static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")

    # ---- models ----------------------------------------------------------------------------

    @app.get("/api/models")
    def models() -> dict:
        return {"models": [entry.summary() for entry in catalog.entries()]}

    @app.get("/api/models/{model_id}")
    def model(model_id: str) -> dict:
        return catalog.get(model_id).describe()

    @app.get("/api/models/{model_id}/layers/{index}/weights")
    def weights(model_id: str, index: int) -> dict:
        w, b = layer_weights(catalog.model(model_id), index)
        return {"weights": tensor_json(w), "bias": None if b is None else tensor_json(b)}

    def activations_payload(entry: Entry, image: torch.Tensor,
                            layers: list[int] | None = None) -> dict:
        return activations_json(catalog.model(entry.id), image, entry.classes, entry.task,
                                layers)

    @app.post("/api/models/{model_id}/activations")
    def model_activations(model_id: str, body: ActivationsRequest) -> dict:
        entry = catalog.get(model_id)
        image = resolve_input(body, samples, entry.layers[0].out_volume)
        return activations_payload(entry, image, body.layers)

    @app.post("/api/models/{model_id}/activations/upload")
    async def model_activations_upload(model_id: str, request: Request,
                                       layers: Annotated[list[int] | None, Query()] = None) -> dict:
        entry = catalog.get(model_id)
        content = await read_file_field(request, "image", "the image")

        def compute() -> dict:
            image = fit_to_volume(decode_upload(content), entry.layers[0].out_volume)
            return activations_payload(entry, image, layers)

        return await run_in_threadpool(compute)

    @app.post("/api/models/{model_id}/predict")
    def model_predict(model_id: str, body: InputRef) -> dict:
        entry = catalog.get(model_id)
        image = resolve_input(body, samples, entry.layers[0].out_volume)
        return prediction_json(catalog.model(model_id), image, entry.task, entry.classes)

    # ---- spoken digits ---------------------------------------------------------------------

    def audio_entry(model_id: str) -> Entry:
        entry = catalog.get(model_id)
        if entry.task != "audio" and not entry.dataset.startswith("fsdd"):
            raise ApiError(400, f"model {model_id!r} is a {entry.task} model for "
                                f"{entry.dataset}, not a spoken-digit model; pick one trained "
                                "with task audio (e.g. `convscope train --model fsdd-convnet`)")
        return entry

    def audio_payload(entry: Entry, sound: np.ndarray, rate: int,
                      recording: Recording | None) -> dict:
        image, clip = analyse(sound, rate)
        volume = entry.layers[0].out_volume
        return {**activations_payload(entry, fit_to_volume(image, volume)), "clip": clip,
                "recording": None if recording is None else recording.json()}

    @app.get("/api/audio/recordings")
    def audio_recordings() -> dict:
        listed, note = samples.recordings()
        return {"total": len(listed), "recordings": [r.json() for r in listed], "note": note}

    @app.get("/api/audio/recordings/{index:int}.wav", response_class=Response)
    def audio_recording_wav(index: int) -> Response:
        return FileResponse(samples.recording(index).path, media_type="audio/wav",
                            headers={"Cache-Control": "public, max-age=3600"})

    @app.post("/api/models/{model_id}/audio")
    def model_audio(model_id: str, body: AudioRef) -> dict:
        entry = audio_entry(model_id)
        recording = samples.recording(body.recording)
        sound, rate = read_wav(recording.path, name=recording.path.name)
        return audio_payload(entry, sound, rate, recording)

    @app.post("/api/models/{model_id}/audio/upload")
    async def model_audio_upload(model_id: str, request: Request) -> dict:
        entry = audio_entry(model_id)
        content = await read_file_field(request, "audio", "the WAV recording")

        def compute() -> dict:
            sound, rate = read_upload(content)
            return audio_payload(entry, sound, rate, None)

        return await run_in_threadpool(compute)

    @app.post("/api/models/{model_id}/conv-step")
    def model_conv_step(model_id: str, body: ConvStepRequest) -> dict:
        entry = catalog.get(model_id)
        image = resolve_input(body, samples, entry.layers[0].out_volume)
        step = conv_step(catalog.model(model_id), to_input(image), body.layer, body.filter,
                         body.x, body.y, body.stride, body.pad)
        return {"patch": tensor_json(step.patch), "weights": tensor_json(step.weights),
                "products": tensor_json(step.products), "sum": step.sum, "bias": step.bias,
                "output": step.output, "window": {"x0": step.x0, "y0": step.y0},
                "out_size": {"sx": step.out_sx, "sy": step.out_sy}, "stride": step.stride,
                "pad": step.pad}

    @app.get("/api/models/{model_id}/confusion")
    def confusion(model_id: str, per_cell: int = Query(64, alias="samples", ge=0,
                                                       le=MAX_CELL_SAMPLES)) -> dict:
        entry = catalog.get(model_id)
        if not get_task(entry.task).classifies:
            raise ApiError(400, f"model {model_id!r} is a {entry.task} model: a confusion "
                                "matrix needs one predicted class per image; see its "
                                "predictions with POST /api/models/{id}/predict")
        sample_set = samples.get(entry.dataset)
        net = catalog.model(model_id)
        with confusion_lock:  # one evaluation at a time; cached until the weights change
            cached = confusions.get(model_id)
            if cached is None or cached[0] is not net:
                with autocast_for(entry.precision, net):  # as its run
                    cached = confusions[model_id] = (net, confusion_with_samples(
                        with_tta(net, entry.tta), sample_set.dataset, per_cell=None))
        result = cached[1]
        ev = result.evaluation
        return {"source": sample_set.description, "dataset": entry.dataset, "tta": entry.tta,
                "classes": ev.classes, "confusion": ev.confusion, "accuracy": ev.accuracy,
                "correct": ev.correct, "total": ev.total, "recall": ev.recall,
                "precision": ev.precision,
                "cells": [[[{"index": i, "confidence": c} for i, c in cell[:per_cell]]
                           for cell in row] for row in result.cells]}

    # ---- datasets --------------------------------------------------------------------------

    @app.get("/api/datasets")
    def datasets() -> dict:
        return {"datasets": [offer.json() for offer in samples.offers()],
                "catalogue": [entry.json() for entry in DATASETS.values()]}

    @app.get("/api/datasets/{name}/samples")
    def dataset_samples(name: str, offset: int = Query(0, ge=0),
                        limit: int = Query(100, ge=0, le=MAX_LISTED)) -> dict:
        sample_set = samples.get(name)
        data = sample_set.dataset
        labels = data.labels[offset:offset + limit].tolist()
        return {"name": name, "source": sample_set.source, "total": len(data),
                "classes": data.classes,
                "samples": [{"index": offset + i, "label": label}
                            for i, label in enumerate(labels)]}

    @app.get("/api/datasets/{name}/samples/{index:int}/truth")
    def sample_truth(name: str, index: int) -> dict:
        return samples.get(name).truth(index)

    @app.get("/api/datasets/{name}/samples/{index:int}.png", response_class=Response)
    def sample_png(name: str, index: int, scale: int = 1) -> Response:
        png = samples.get(name).png(index, scale)
        return Response(png, media_type="image/png",
                        headers={"Cache-Control": "public, max-age=3600"})

    # ---- the chapter's original results ----------------------------------------------------

    @app.get("/api/chapter/summaries")
    def chapter_results(per_cell: int = Query(64, alias="samples", ge=0,
                                              le=MAX_CELL_SAMPLES)) -> dict:
        return {"summaries": summaries_json(samples, per_cell)}

    @app.get("/api/chapter/images/{dataset}/{index:int}.png", response_class=Response)
    def chapter_image(dataset: str, index: int, scale: int = 1) -> Response:
        return Response(image_png(samples, dataset, index, scale), media_type="image/png",
                        headers={"Cache-Control": "public, max-age=3600"})

    # ---- live training ---------------------------------------------------------------------

    @app.post("/api/train")
    def start_training(body: TrainRequest) -> dict:
        job = jobs.start(body)
        return {"job": job.id, "model_id": job.model_id}

    @app.post("/api/train/{job_id}/stop")
    def stop_training(job_id: str) -> dict:
        jobs.stop(job_id)
        return {"stopped": True}

    @app.get("/api/train/{job_id}")
    def training_status(job_id: str) -> dict:
        return jobs.get(job_id).status()

    @app.websocket("/api/train/{job_id}/ws")
    async def training_stream(socket: WebSocket, job_id: str) -> None:
        await socket.accept()
        try:
            job = jobs.get(job_id)
        except ApiError as exc:
            await socket.send_json({"type": "error", "error": exc.message})
            await socket.close(code=1008)
            return
        cursor = 0
        try:
            while True:
                ended = job.finished
                messages, cursor = job.since(cursor)
                for message in messages:
                    await socket.send_text(dumps(message))
                if ended:
                    break
                await asyncio.sleep(POLL_SECONDS)
            await socket.close()
        except WebSocketDisconnect:
            pass  # the page went away; the job carries on

    return app


async def read_file_field(request: Request, field: str, what: str) -> bytes:
    """The bytes of the one file field ``field`` of a multipart form (one byte past the upload
    cap at most, so that the decoder can say it is too large)."""
    async with request.form(max_files=1, max_fields=0) as form:
        upload = form.get(field)
        if upload is None or isinstance(upload, str):
            raise ApiError(400, f"send {what} as multipart/form-data with one file field "
                                f"named {field!r}")
        return await upload.read(MAX_UPLOAD_BYTES + 1)
