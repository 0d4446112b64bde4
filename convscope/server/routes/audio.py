"""``/api/audio`` and a spoken-digit model's view of a recording: its clip, its spectrogram
image and what the network makes of it."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ...audio import read_wav
from ..audio import analyse, read_upload
from ..catalog import Entry
from ..errors import ApiError
from ..inputs import fit_to_volume, read_file_field
from ..samples import Recording
from .models import activations_payload
from .state import Explorer


class AudioRef(BaseModel):
    """A listed test recording, by its index in ``GET /api/audio/recordings``."""

    model_config = ConfigDict(extra="forbid")
    recording: int = Field(ge=0)


def audio_router(explorer: Explorer) -> APIRouter:
    """The test recordings on offer and a spoken-digit model's view of one, or of an upload."""
    router = APIRouter()
    catalog, samples = explorer.catalog, explorer.samples

    def audio_entry(model_id: str) -> Entry:
        entry = catalog.get(model_id)
        if entry.task == "wavenet":
            raise ApiError(400, f"model {model_id!r} is a WaveNet: it generates spoken digits "
                                "rather than classifying them; open it on the WaveNet page")
        if entry.task != "audio" and not (entry.task == "classify"
                                          and entry.dataset.startswith("fsdd")):
            raise ApiError(400, f"model {model_id!r} is a {entry.task} model for "
                                f"{entry.dataset}, not a spoken-digit model; pick one trained "
                                "with task audio (e.g. `convscope train --model fsdd-convnet`)")
        return entry

    def audio_payload(entry: Entry, sound: np.ndarray, rate: int,
                      recording: Recording | None) -> dict:
        image, clip = analyse(sound, rate)
        volume = entry.input_volume
        return {**activations_payload(explorer, entry, fit_to_volume(image, volume)),
                "clip": clip, "recording": None if recording is None else recording.json()}

    @router.get("/api/audio/recordings")
    def audio_recordings() -> dict:
        listed, note = samples.recordings()
        return {"total": len(listed), "recordings": [r.json() for r in listed], "note": note}

    @router.get("/api/audio/recordings/{index:int}.wav", response_class=Response)
    def audio_recording_wav(index: int) -> Response:
        return FileResponse(samples.recording(index).path, media_type="audio/wav",
                            headers={"Cache-Control": "public, max-age=3600"})

    @router.post("/api/models/{model_id}/audio")
    def model_audio(model_id: str, body: AudioRef) -> dict:
        entry = audio_entry(model_id)
        recording = samples.recording(body.recording)
        sound, rate = read_wav(recording.path, name=recording.path.name)
        return audio_payload(entry, sound, rate, recording)

    @router.post("/api/models/{model_id}/audio/upload")
    async def model_audio_upload(model_id: str, request: Request) -> dict:
        entry = audio_entry(model_id)
        content = await read_file_field(request, "audio", "the WAV recording")

        def compute() -> dict:
            sound, rate = read_upload(content)
            return audio_payload(entry, sound, rate, None)

        return await run_in_threadpool(compute)

    return router
