"""``/api/train``: live training jobs, started, stopped and followed over a WebSocket."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..encode import dumps
from ..errors import ApiError
from ..live import Job, TrainRequest, trainable_registry
from .state import Explorer

POLL_SECONDS = 0.1
PACED_POLL_SECONDS = 0.02  # a paced job (the L1 demo) waits for each snapshot to go


def training_router(explorer: Explorer) -> APIRouter:
    """Start, stop and follow live training jobs."""
    router = APIRouter()
    jobs = explorer.jobs

    @router.post("/api/train")
    def start_training(body: TrainRequest) -> dict:
        job = jobs.start(body)
        return {"job": job.id, "model_id": job.model_id}

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
        set): ``name``, ``dataset``, ``description``, ``params``."""
        return {"models": trainable_registry()}

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
