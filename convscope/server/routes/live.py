"""The live view's WebSockets: ``/api/models/{id}/live`` takes frames and answers the outputs of
the layers shown (:mod:`convscope.server.frames`), and, when the page turns streaming on,
sends the chosen layer's activations or the class probabilities of every frame over OSC and
to every sketch listening on ``/api/live/features`` (JSON). The Host/Origin policy applies to
both (:mod:`convscope.server.origin`)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import torch
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ...augment import to_input
from ...errors import ConvscopeError
from ...live.features import PROBS, resolve_node
from ...live.osc import WEKINATOR_INPUTS, OscSender, OscTarget, check_value_count
from ...probes import node_outputs
from ...tasks import get_task
from ..catalog import Entry
from ..compute import run_model
from ..encode import dumps
from ..errors import ApiError
from ..frames import decode_frame, encode_result
from ..inputs import fit_prepared, upload_preparation
from ..teach import TeachState, TeachStore
from .state import Explorer

MAX_CONTROL_BYTES = 64 * 1024
MAX_SHOWN_LAYERS = 64
SKETCH_QUEUE = 4  # frames a slow sketch may fall behind before the oldest are dropped


class FeatureHub:
    """The sketches listening on ``/api/live/features``: each gets every streamed frame's
    JSON, the oldest dropped when it falls behind."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue] = set()

    def publish(self, text: str) -> None:
        for queue in list(self.queues):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(text)


@dataclass
class StreamSettings:
    """What a live page streams: ``layer`` (a node index, or None for the probabilities) over
    OSC (when ``osc``) and to the sketches."""

    layer: int | None = None
    name: str = PROBS
    size: int = 0
    osc: bool = True
    target: OscTarget = WEKINATOR_INPUTS
    sender: OscSender | None = None


@dataclass
class LiveSession:
    """One live page's settings: the layers it shows and what it streams (None: nothing)."""

    entry: Entry
    model: torch.nn.Module
    layers: list[int] = field(default_factory=list)
    invert: str = "auto"
    stream: StreamSettings | None = None
    frames: int = 0
    teach: TeachState | None = None  # train your own (server/teach.py)

    def control(self, settings: dict) -> dict:
        """Apply a control message; the settings now in force."""
        nodes = self.entry.graph.nodes
        if "layers" in settings:
            layers = settings["layers"]
            if not isinstance(layers, list) or len(layers) > MAX_SHOWN_LAYERS or not all(
                    isinstance(i, int) and 0 <= i < len(nodes) for i in layers):
                raise ApiError(400, f"layers must be a list of at most {MAX_SHOWN_LAYERS} layer "
                                    f"indices 0..{len(nodes) - 1}")
            self.layers = sorted(set(layers))
        if "invert" in settings:
            upload_preparation(self.entry.dataset, str(settings["invert"]))  # checked
            self.invert = str(settings["invert"])
        if "stream" in settings:
            self.set_stream(settings["stream"])
        if "teach" in settings and self.teach is not None:
            return self.teach.control(settings["teach"], id(self))
        return {"type": "settings", "layers": self.layers, "stream": self.stream_state()}

    def set_stream(self, wanted) -> None:
        if not wanted or not isinstance(wanted, dict) or not wanted.get("on"):
            self.close()
            return
        layer = wanted.get("layer", PROBS)
        node = None if str(layer) == PROBS else resolve_node(self.entry.graph.nodes, layer)
        if node is None and not get_task(self.entry.task).classifies:
            raise ApiError(400, f"a {self.entry.task} model has no class probabilities: "
                                "stream a layer instead")
        size = (self.entry.graph.nodes[-1] if node is None else node).out_volume.numel
        check_value_count(size, f"layer {PROBS if node is None else node.name}")
        target = OscTarget.parse(str(wanted.get("target", "127.0.0.1:6448")),
                                 str(wanted.get("address", WEKINATOR_INPUTS.address)))
        self.close()
        osc = bool(wanted.get("osc", True))
        self.stream = StreamSettings(None if node is None else node.index,
                                     PROBS if node is None else node.name, size, osc, target,
                                     OscSender(target) if osc else None)

    def stream_state(self) -> dict | None:
        s = self.stream
        if s is None:
            return None
        return {"layer": s.name, "size": s.size, "osc": s.osc, "target": str(s.target),
                "sent": s.sender.sent if s.sender else 0,
                "failures": s.sender.failures if s.sender else 0,
                "error": s.sender.last_error if s.sender else None}

    @torch.inference_mode()
    def frame(self, image: torch.Tensor) -> tuple[bytes, list[float] | None]:
        """One frame (uint8 (C, H, W)): the result message and the streamed values (if any)."""
        start = time.perf_counter()
        prep = upload_preparation(self.entry.dataset, self.invert)
        fitted = fit_prepared(image, self.entry.input_volume, prep)
        stream = self.stream
        wanted = set(self.layers)
        if stream is not None and stream.layer is not None:
            wanted.add(stream.layer)
        teach = self.teach if self.teach and self.teach.active(id(self)) else None
        if teach is not None:
            wanted.add(teach.node.index)
        found, returned = node_outputs(self.model, to_input(fitted)[None], sorted(wanted))
        task = get_task(self.entry.task)
        probs = task.class_probabilities(self.model, returned[0], self.entry.classes)
        values = None
        if stream is not None:
            chosen = probs if stream.layer is None else found[stream.layer][0]
            values = [] if chosen is None else chosen.flatten().tolist()
            if stream.sender is not None:
                stream.sender.send_floats(values)
        self.frames += 1
        header = {"seq": self.frames, "ms": round(1000 * (time.perf_counter() - start), 2),
                  "probabilities": [] if probs is None else probs.tolist(),
                  "prediction": None if probs is None else int(probs.argmax()),
                  "stream": self.stream_state()}
        if teach is not None:
            header["teach"] = teach.frame(found[teach.node.index][0], fitted, id(self))
        shown = {i: found[i][0] for i in self.layers}
        return encode_result(header, shown), values

    def close(self) -> None:
        if self.stream is not None and self.stream.sender is not None:
            self.stream.sender.close()
        self.stream = None


def live_router(explorer: Explorer) -> APIRouter:
    """The live view's frames socket and the sketches' features socket."""
    router = APIRouter()
    hub = FeatureHub()
    teach = TeachStore(explorer.jobs.live_dir.parent / "teach")

    @router.websocket("/api/models/{model_id}/live")
    async def live_frames(socket: WebSocket, model_id: str) -> None:
        await socket.accept()
        try:
            entry = explorer.catalog.get(model_id)
            model = await run_model(explorer.catalog.model, model_id)
        except ApiError as exc:
            await socket.send_text(dumps({"type": "error", "error": exc.message}))
            await socket.close(code=1008)
            return
        session = LiveSession(entry, model, teach=teach.state(entry))
        await socket.send_text(dumps({"type": "ready", "model": model_id,
                                      "input": entry.describe()["input"]}))
        try:
            while True:
                await _answer(socket, session, await socket.receive(), hub, model_id)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            session.close()
            session.teach.release(id(session))  # (its examples stay)

    @router.websocket("/api/live/features")
    async def live_features(socket: WebSocket) -> None:
        await socket.accept()
        queue: asyncio.Queue = asyncio.Queue(SKETCH_QUEUE)
        hub.queues.add(queue)
        try:
            await _forward(socket, queue)
        finally:
            hub.queues.discard(queue)

    return router


async def _answer(socket: WebSocket, session: LiveSession, message: dict, hub: FeatureHub,
                  model_id: str) -> None:
    """Answer one message of a live page: a frame, or a control (JSON text)."""
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    try:
        if message.get("bytes") is not None:
            image = decode_frame(message["bytes"])
            result, values = await run_model(session.frame, image)
            await socket.send_bytes(result)
            if values is not None and hub.queues:
                hub.publish(dumps({"type": "features", "model": model_id,
                                   "layer": session.stream.name if session.stream else PROBS,
                                   "frame": session.frames, "values": values}))
            return
        text = message.get("text") or ""
        if len(text) > MAX_CONTROL_BYTES:
            raise ApiError(413, f"a control message of {len(text):,} characters; at most "
                                f"{MAX_CONTROL_BYTES:,}")
        try:
            settings = json.loads(text)
        except ValueError:
            raise ApiError(400, "a text message must be JSON settings (docs/api.md, the live "
                                "view); frames are binary") from None
        if not isinstance(settings, dict):
            raise ApiError(400, "settings must be a JSON object")
        await socket.send_text(dumps(await run_model(session.control, settings)))
    except ApiError as exc:
        await socket.send_text(dumps({"type": "error", "error": exc.message}))
    except ConvscopeError as exc:  # a garbage frame, a bad layer or OSC target: one line
        await socket.send_text(dumps({"type": "error", "error": str(exc)}))


async def _forward(socket: WebSocket, queue: asyncio.Queue) -> None:
    """Send ``queue``'s messages to ``socket`` until it closes (what a sketch sends is read
    and ignored)."""
    closed = asyncio.ensure_future(socket.receive())
    try:
        while True:
            item = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({closed, item}, return_when=asyncio.FIRST_COMPLETED)
            if item in done:
                await socket.send_text(item.result())
            else:
                item.cancel()
            if closed in done:
                if closed.result()["type"] == "websocket.disconnect":
                    return
                closed = asyncio.ensure_future(socket.receive())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        closed.cancel()
