"""``/api/train``: live training jobs, started, stopped and followed over a WebSocket."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict

from ...config import OPTIMIZERS
from ..encode import dumps
from ..errors import ApiError
from ..live import DEPTH, Job, TrainRequest, trainable_registry
from ..live_runs import delete, missing_data, own_run, rename
from .state import Explorer

POLL_SECONDS = 0.1
PACED_POLL_SECONDS = 0.02  # a paced job (the L1 demo) waits for each snapshot to go


class Rename(BaseModel):
    """``PATCH /api/models/{id}``: a live run's new name."""

    model_config = ConfigDict(extra="forbid")
    title: str


def training_router(explorer: Explorer) -> APIRouter:
    """Start, stop and follow live training jobs."""
    router = APIRouter()
    jobs = explorer.jobs

    @router.post("/api/train")
    def start_training(body: TrainRequest) -> dict:
        job = jobs.start(body)
        return {"job": job.id, "model_id": job.model_id, "settings": job.settings}

    @router.get("/api/train")
    def training_jobs() -> dict:
        """Every job since the explorer started (a reloaded page finds the running one) and the
        runs trained in the explorer, now and before (``runs``: their model summaries)."""
        runs = [entry.summary() for entry in explorer.catalog.entries()
                if own_run(entry, jobs.live_dir)]
        return {"jobs": [job.summary() for job in jobs.list()], "runs": runs}

    @router.get("/api/train/data/{dataset}")
    def training_data(dataset: str) -> dict:
        """Whether ``dataset``'s training files are here, said before Start (``missing``: one
        line naming them and how to get them, or null)."""
        if dataset not in DEPTH:
            raise ApiError(404, f"live training takes one of {', '.join(DEPTH)}, not "
                                f"{dataset!r}")
        return {"dataset": dataset, "missing": missing_data(dataset, jobs.data_dir)}

    @router.patch("/api/models/{model_id}")
    def rename_run(model_id: str, body: Rename) -> dict:
        entry = rename(explorer.catalog, explorer.catalog.get(model_id), body.title,
                       jobs.live_dir)
        for job in jobs.list():  # a job's messages name it by its model's new name too
            if job.model_id == model_id:
                job.title = entry.title
        return entry.summary()

    @router.delete("/api/models/{model_id}")
    def delete_run(model_id: str) -> dict:
        delete(explorer.catalog, explorer.catalog.get(model_id), jobs.live_dir,
               jobs.running_model(model_id))
        return {"deleted": model_id}

    @router.post("/api/train/{job_id}/stop")
    def stop_training(job_id: str) -> dict:
        jobs.stop(job_id)
        return {"stopped": True}

    @router.get("/api/train/{job_id}")
    def training_status(job_id: str) -> dict:
        return jobs.get(job_id).status()

    @router.websocket("/api/train/{job_id}/ws")
    async def training_stream(socket: WebSocket, job_id: str) -> None:
        await socket.accept()
        try:
            job = jobs.get(job_id)
        except ApiError as exc:
            await socket.send_json({"type": "error", "error": exc.message})
            await socket.close(code=1008)
            return
        await stream(socket, job)

    @router.get("/api/registry")
    def trainable_models() -> dict:
        """The registry models the explorer trains live (image classifiers on an offered image
        set): ``name``, ``dataset``, ``description``, ``params``; and the ``optimizers`` a
        job may name."""
        return {"models": trainable_registry(), "optimizers": list(OPTIMIZERS)}

    return router


async def stream(socket: WebSocket, job: Job) -> None:
    """Send ``job``'s messages as they come until it ends (the job carries on if the page goes)."""
    cursor = 0
    try:
        while True:
            ended = job.finished
            messages, cursor = job.since(cursor)
            for message in messages:
                await socket.send_text(dumps(message))
            if ended:
                break
            await asyncio.sleep(PACED_POLL_SECONDS if job.paced else POLL_SECONDS)
        await socket.close()
    except WebSocketDisconnect:
        pass
