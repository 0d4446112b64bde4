"""The WaveNet page's API: a model's dilated stack, a recording (listed or uploaded) as each
layer hears it, and ``/api/models/{id}/wavenet/generate``, a WebSocket streaming a generated
digit in chunks (docs/api.md)."""

from __future__ import annotations

import asyncio
import json
import threading

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect

from ...audio import read_wav
from ...errors import ConvscopeError
from ..audio import read_upload
from ..compute import run_model
from ..encode import dumps
from ..errors import ApiError
from ..inputs import read_file_field
from ..wavenet import (
    StreamedGeneration,
    analyse_recording,
    generation_request,
    stack_json,
    wavenet_net,
)
from .audio import AudioRef
from .state import Explorer

MAX_REQUEST_CHARS = 4096


def wavenet_router(explorer: Explorer) -> APIRouter:
    """The stack, the recordings' layers over time and the streamed generation."""
    router = APIRouter()
    catalog, samples = explorer.catalog, explorer.samples

    @router.get("/api/models/{model_id}/wavenet")
    def wavenet_stack(model_id: str) -> dict:
        return stack_json(wavenet_net(catalog, model_id))

    @router.post("/api/models/{model_id}/wavenet/recording")
    async def wavenet_recording(model_id: str, body: AudioRef) -> dict:
        def compute() -> dict:
            net = wavenet_net(catalog, model_id)
            recording = samples.recording(body.recording)
            sound, rate = read_wav(recording.path, name=recording.path.name)
            return {**analyse_recording(net, sound, rate, recording.digit, recording.speaker,
                                        recording.path.name), "recording": recording.json()}

        return await run_model(compute)

    @router.post("/api/models/{model_id}/wavenet/upload")
    async def wavenet_upload(model_id: str, request: Request,
                             digit: int = Query(ge=0, le=255)) -> dict:
        content = await read_file_field(request, "audio", "the WAV recording")

        def compute() -> dict:
            net = wavenet_net(catalog, model_id)
            sound, rate = read_upload(content)
            return {**analyse_recording(net, sound, rate, digit, None, "the uploaded audio"),
                    "recording": None}

        return await run_model(compute)

    @router.websocket("/api/models/{model_id}/wavenet/generate")
    async def wavenet_generate(socket: WebSocket, model_id: str) -> None:
        await socket.accept()
        try:
            net = await run_model(wavenet_net, catalog, model_id)
            message = await socket.receive_text()
            if len(message) > MAX_REQUEST_CHARS:
                raise ApiError(413, f"a request of {len(message):,} characters; at most "
                                    f"{MAX_REQUEST_CHARS:,}")
            try:
                request = generation_request(json.loads(message))
            except ValueError:
                raise ApiError(400, "the request must be JSON (docs/api.md)") from None
            wav = None if request.recording is None else \
                samples.recording(request.recording).path
            await _stream(socket, StreamedGeneration, net, request, wav)
        except (ApiError, ConvscopeError) as exc:
            text = exc.message if isinstance(exc, ApiError) else str(exc)
            await _send_quietly(socket, {"type": "error", "error": text})
        except (WebSocketDisconnect, RuntimeError):
            return
        await _close_quietly(socket)

    return router


async def _stream(socket: WebSocket, generation, net, request, wav) -> None:
    """Run the generation on a model thread, forwarding its messages as they come; a message
    from the page (``{"stop": true}``) or its going away stops it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()
    job = generation(net, request, wav, lambda m: loop.call_soon_threadsafe(queue.put_nowait, m),
                     stop)
    running = asyncio.ensure_future(run_model(job.run))
    listening = asyncio.ensure_future(socket.receive())
    try:
        while True:
            getting = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({running, listening, getting},
                                         return_when=asyncio.FIRST_COMPLETED)
            if getting in done:
                await socket.send_text(dumps(getting.result()))
            else:
                getting.cancel()
            if listening in done:
                stop.set()  # a stop, or the page went away
                gone = listening.result()["type"] == "websocket.disconnect"
                listening = loop.create_future() if gone else \
                    asyncio.ensure_future(socket.receive())
            if running in done and queue.empty():
                break
        final = running.result()  # raises the generator's ConvscopeError
        await socket.send_text(dumps(final))
    finally:
        stop.set()
        listening.cancel()
        if not running.done():
            await asyncio.wait({running})


async def _send_quietly(socket: WebSocket, message: dict) -> None:
    try:
        await socket.send_text(dumps(message))
    except (WebSocketDisconnect, RuntimeError):
        pass


async def _close_quietly(socket: WebSocket) -> None:
    try:
        await socket.close()
    except (WebSocketDisconnect, RuntimeError):
        pass
