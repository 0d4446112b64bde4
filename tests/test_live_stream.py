"""convscope stream and the live view's WebSockets: OSC messages received by a python-osc
server on 127.0.0.1 (address, argument count = layer size, values = the activations computed
directly, frame count), a generated video (cv2.VideoWriter) and an image folder as sources, no
camera, a closed port, garbage frames, and the sketches' JSON stream."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.augment import to_input
from convscope.cli import main
from convscope.extras import available
from convscope.live import FeatureExtractor, OscError, OscSender, OscTarget
from convscope.predict import fit_any, preparation
from convscope.probes import activations
from convscope.runs import open_run

# convscope stream and OSC need the [osc] extra (OpenCV, python-osc); the sockets need [serve]
needs_osc = pytest.mark.skipif(not available("osc"), reason='needs pip install "convscope[osc]"')
needs_serve = pytest.mark.skipif(not available("serve"),
                                 reason='needs pip install "convscope[serve]"')

MODEL = "cifar10-convnetjs"  # bundled: 32x32x3 input, layers 0..11


class OscListener:
    """A python-osc UDP server on 127.0.0.1 that records every message."""

    def __init__(self) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        self.messages: list[tuple[str, tuple]] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.messages.append((address,
                                                                                    args)))
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.server.max_packet_size = 65535  # (socketserver reads 8192 bytes by default)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OscListener:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, seconds: float = 10.0) -> list[tuple[str, tuple]]:
        deadline = time.monotonic() + seconds
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # (and nothing more arrives)
        return self.messages


def write_video(path: Path, frames: int = 5) -> list[np.ndarray]:
    """A small MJPG video of a moving square; returns its frames as OpenCV decodes them (RGB)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((64, 96, 3), 30, np.uint8)
        frame[10:40, 8 + 12 * i:38 + 12 * i] = (40, 160, 250)
        writer.write(frame)
    writer.release()
    capture, decoded = cv2.VideoCapture(str(path)), []
    ok, frame = capture.read()
    while ok:
        decoded.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        ok, frame = capture.read()
    capture.release()
    assert len(decoded) == frames
    return decoded


def direct(frames: list[np.ndarray], layer: int) -> list[np.ndarray]:
    """Layer ``layer``'s output of the bundled model for each frame, computed directly."""
    run = open_run(MODEL)
    volume = run.model.layers[0].out_volume
    prep = preparation(run)
    outputs = []
    for frame in frames:
        x = to_input(fit_any(frame, volume, prep))
        outputs.append(activations(run.model, x)[layer].flatten().numpy())
    return outputs


def stream(capsys, *args: str) -> tuple[int, str]:
    code = main(["stream", "--model", MODEL, *args])
    return code, capsys.readouterr().err


@needs_osc
def test_stream_video_sends_a_layers_activations(tmp_path: Path, capsys) -> None:
    frames = write_video(tmp_path / "clip.avi", 5)
    with OscListener() as osc:
        code, err = stream(capsys, "--source", str(tmp_path / "clip.avi"), "--layer", "9",
                           "--osc", f"127.0.0.1:{osc.port}", "--address", "/test/features",
                           "--frames", "4")
        got = osc.wait_for(4)
    assert code == 0, err
    assert "sent 4 messages" in err
    assert len(got) == 4  # --frames 4 of the video's 5
    expected = direct(frames[:4], 9)
    for (address, args), values in zip(got, expected, strict=True):
        assert address == "/test/features"
        assert len(args) == 320 == values.size  # pool 4x4x20
        assert all(isinstance(a, float) for a in args)
        np.testing.assert_allclose(np.array(args, np.float32), values, rtol=1e-5, atol=1e-6)


@needs_osc
def test_stream_image_folder_sends_probabilities_in_order(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (50 + 10 * i, 70, 3), dtype=np.uint8) for i in range(3)]
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not a picture")
    with OscListener() as osc:
        code, err = stream(capsys, "--source", str(folder), "--osc", f"127.0.0.1:{osc.port}")
        got = osc.wait_for(3)
    assert code == 0, err
    assert [address for address, _ in got] == ["/wek/inputs"] * 3
    expected = direct(pictures, 11)  # the softmax layer: the class probabilities
    for (_, args), values in zip(got, expected, strict=True):
        assert len(args) == 10
        np.testing.assert_allclose(args, values, rtol=1e-5, atol=1e-6)
        assert abs(sum(args) - 1) < 1e-4


def test_feature_extractor_matches_direct_activations() -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    extractor = FeatureExtractor.open(MODEL, "blocks.4")
    features = extractor(np.stack(frames))
    assert features.shape == (3, 16 * 16 * 20) and features.dtype == np.float32
    np.testing.assert_allclose(features, np.stack(direct(frames, 4)), rtol=1e-5, atol=1e-6)
    assert FeatureExtractor.open(MODEL).size == 10


@needs_osc
def test_no_camera_is_one_line(capsys) -> None:
    code, err = stream(capsys, "--source", "97")
    assert code == 2
    assert err.startswith("error: no camera 97 could be opened")
    assert len(err.strip().splitlines()) == 1


@needs_osc
@pytest.mark.parametrize(("args", "expected"), [
    (["--osc", "localhost"], "is not host:port"),
    (["--osc", "127.0.0.1:99999"], "out of range"),
    (["--address", "wek inputs"], "is not one: give a path"),
    (["--layer", "blocks.99"], "is not one of this network's"),
    (["--layer", "1"], "one OSC message holds at most"),
    (["--frames", "0"], "--frames must be at least 1"),
    (["--model", "net.py:make"], "--trust-code"),
])
def test_bad_options_are_one_line(tmp_path: Path, capsys, args: list[str], expected: str) -> None:
    write_video(tmp_path / "clip.avi", 2)
    code, err = stream(capsys, "--source", str(tmp_path / "clip.avi"), *args)
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1, err


@needs_osc
def test_bad_sources_are_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "clip.avi").write_bytes(b"not a video at all")
    for source, expected in [(tmp_path / "missing.mp4", "no such file or folder"),
                             (tmp_path / "empty", "no PNG or JPEG pictures"),
                             (tmp_path / "clip.avi", "not a video OpenCV can read")]:
        code, err = stream(capsys, "--source", str(source))
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err


def _closed_udp_port() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@needs_osc
def test_a_closed_port_does_not_stop_the_stream(tmp_path: Path, capsys) -> None:
    write_video(tmp_path / "clip.avi", 3)
    code, err = stream(capsys, "--source", str(tmp_path / "clip.avi"),
                       "--osc", f"127.0.0.1:{_closed_udp_port()}")
    assert code == 0, err
    assert "from 3 frames" in err


@needs_osc
def test_a_send_that_fails_is_counted_not_raised() -> None:
    with OscSender(OscTarget("127.0.0.1", _closed_udp_port(), "/big")) as sender:
        assert not sender.send_floats(np.zeros(20_000))  # over one UDP datagram
        assert sender.send_floats([0.5, 1.5])
        assert sender.send_ints([3])
    assert (sender.sent, sender.failures) == (2, 1)
    assert sender.last_error
    with pytest.raises(OscError, match="not host:port"):
        OscTarget.parse("[::1]", "/a")


# ---- the live view's WebSockets ------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    from convscope.server.app import create_app

    with TestClient(create_app(), base_url="http://127.0.0.1") as test_client:
        yield test_client


LIVE = f"ws://127.0.0.1/api/models/{MODEL}/live"


@needs_serve
def test_live_socket_answers_the_layers_shown(client) -> None:
    from convscope.server.frames import decode_result, encode_frame

    frame = np.random.default_rng(2).integers(0, 256, (96, 128, 4), dtype=np.uint8)
    with client.websocket_connect(LIVE) as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_text(json.dumps({"layers": [4, 10]}))
        assert ws.receive_json()["layers"] == [4, 10]
        ws.send_bytes(encode_frame(frame))
        header, layers = decode_result(ws.receive_bytes())
    assert sorted(layers) == [4, 10] and header["seq"] == 1
    expected = direct([frame[:, :, :3]], 4)[0]
    step = (header["layers"][0]["max"] - header["layers"][0]["min"]) / 255
    np.testing.assert_allclose(layers[4].flatten(), expected, atol=step / 2 + 1e-5)
    np.testing.assert_allclose(layers[10].flatten(), direct([frame[:, :, :3]], 10)[0], rtol=1e-5)
    np.testing.assert_allclose(header["probabilities"], direct([frame[:, :, :3]], 11)[0],
                               rtol=1e-5, atol=1e-7)


@needs_serve
def test_garbage_frames_get_a_message_and_the_socket_stays(client) -> None:
    from convscope.server.frames import FRAME_HEADER, MAX_FRAME_BYTES, decode_result, encode_frame

    good = encode_frame(np.zeros((40, 40, 3), np.uint8))
    with client.websocket_connect(LIVE) as ws:
        ws.receive_json()
        for garbage, expected in [(b"garbage", "shorter than its"),
                                  (b"XXXX" + good[4:], "not a frame"),
                                  (good[:-5], "needs 4,812 bytes"),
                                  (FRAME_HEADER.pack(b"CSF1", 5000, 2, 3), "px a side"),
                                  (FRAME_HEADER.pack(b"CSF1", 2, 2, 2) + bytes(8), "channels"),
                                  (bytes(MAX_FRAME_BYTES + 1), "at most 4,194,316 are")]:
            ws.send_bytes(garbage)
            answer = ws.receive_json()
            assert answer["type"] == "error" and expected in answer["error"], answer
        for text, expected in [("{", "must be JSON"), ('{"layers": [99]}', "layer indices"),
                               ('{"stream": {"on": true, "target": "x"}}', "host:port"),
                               ('{"layers": [' + "1," * 40_000 + "1]}", "at most 65,536")]:
            ws.send_text(text)
            assert expected in ws.receive_json()["error"]
        ws.send_bytes(good)
        header, _ = decode_result(ws.receive_bytes())
        assert header["seq"] == 1  # nothing was lost: the next frame is answered


@needs_serve
def test_live_socket_refuses_another_origin(client) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as refused, \
            client.websocket_connect(LIVE, headers={"origin": "http://evil.example"}):
        pass
    assert refused.value.code == 1008


@needs_osc
@needs_serve
def test_streams_reach_osc_and_sketches(client) -> None:
    from convscope.server.frames import encode_frame

    frame = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with OscListener() as osc, client.websocket_connect(LIVE) as page, \
            client.websocket_connect("ws://127.0.0.1/api/live/features") as sketch:
        page.receive_json()
        page.send_text(json.dumps({"stream": {"on": True, "layer": 9, "address": "/live/f",
                                              "target": f"127.0.0.1:{osc.port}"}}))
        settings = page.receive_json()
        assert settings["stream"]["size"] == 320 and settings["stream"]["layer"] == "blocks.9"
        page.send_bytes(encode_frame(frame))
        page.receive_bytes()
        sent = sketch.receive_json()
        got = osc.wait_for(1)
    expected = direct([frame], 9)[0]
    assert sent["type"] == "features" and sent["layer"] == "blocks.9" and sent["frame"] == 1
    np.testing.assert_allclose(sent["values"], expected, rtol=1e-5, atol=1e-6)
    assert got[0][0] == "/live/f"
    np.testing.assert_allclose(got[0][1], expected, rtol=1e-5, atol=1e-6)


def test_an_fp16_bundle_gives_the_runs_features(tmp_path: Path) -> None:
    """scripts/make_bundle.py --add-run --fp16's copy: float16 weights, loaded into the float32
    network, whose features stay within float16's precision of the trained run's."""
    import importlib.util

    from safetensors.torch import load_file

    script = Path(__file__).resolve().parent.parent / "scripts" / "make_bundle.py"
    spec = importlib.util.spec_from_file_location("make_bundle", script)
    make_bundle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_bundle)
    trained = open_run(MODEL).path
    make_bundle.bundle_run(trained, tmp_path / "half", half=True)
    weights = load_file(str(tmp_path / "half" / "model.safetensors"))
    assert {tensor.dtype for tensor in weights.values()} == {torch.float16}
    frames = np.random.default_rng(4).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    full = FeatureExtractor.open(trained, "blocks.9")(frames)
    half = FeatureExtractor.open(tmp_path / "half", "blocks.9")
    assert next(half.model.parameters()).dtype == torch.float32
    np.testing.assert_allclose(half(frames), full, rtol=2e-2, atol=2e-2)
    assert not np.array_equal(half(frames), full)  # (the weights were rounded)


MODULE_CODE = """
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 20 * 20, 5))
"""


def _module_file(tmp_path: Path) -> str:
    (tmp_path / "net.py").write_text(MODULE_CODE)
    return f"{tmp_path / 'net.py'}:make"


def _module_direct(ref: str, frames: list[np.ndarray], layer: int) -> list[np.ndarray]:
    from convscope.layer_kinds import Volume
    from convscope.user_module import load_user_module

    module = load_user_module(ref).eval()
    return [activations(module, to_input(fit_any(frame, Volume(40, 40, 3))))[layer]
            .flatten().numpy() for frame in frames]


@needs_osc
def test_stream_a_python_module_with_trust_code(tmp_path: Path, capsys) -> None:
    """A user's own nn.Module (file.py:factory, e.g. a pretrained net) streams its layers."""
    ref = _module_file(tmp_path)
    frames = write_video(tmp_path / "clip.avi", 3)
    with OscListener() as osc:
        code = main(["stream", "--source", str(tmp_path / "clip.avi"), "--model", ref,
                     "--trust-code", "--input", "40x40x3", "--layer", "2",
                     "--osc", f"127.0.0.1:{osc.port}"])
        err = capsys.readouterr().err
        got = osc.wait_for(3)
    assert code == 0, err
    assert len(got) == 3
    for (_, args), values in zip(got, _module_direct(ref, frames, 2), strict=True):
        assert len(args) == 4 * 40 * 40  # the ReLU's output
        np.testing.assert_allclose(args, values, rtol=1e-5, atol=1e-6)


@needs_serve
def test_serve_a_python_module_in_the_live_view(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from convscope.errors import ConvscopeError
    from convscope.layer_kinds import Volume
    from convscope.server.app import create_app
    from convscope.server.frames import decode_result, encode_frame

    ref = _module_file(tmp_path)
    with pytest.raises(ConvscopeError, match="--trust-code"):
        create_app(modules=[ref])
    app = create_app(modules=[ref], trust_code=True, module_input=Volume(40, 40, 3))
    frame = np.random.default_rng(5).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        found = [m for m in test_client.get("/api/models").json()["models"]
                 if m["id"].startswith("module-")]
        assert [m["title"] for m in found] == ["net.py:make"]
        assert "live" in found[0]["task_info"]["views"]
        with test_client.websocket_connect(f"ws://127.0.0.1/api/models/{found[0]['id']}/live") \
                as ws:
            assert ws.receive_json()["input"]["sx"] == 40
            ws.send_text(json.dumps({"layers": [1, 5]}))
            ws.receive_json()
            ws.send_bytes(encode_frame(frame))
            header, layers = decode_result(ws.receive_bytes())
    np.testing.assert_allclose(layers[5].flatten(), _module_direct(ref, [frame], 5)[0],
                               rtol=1e-5, atol=1e-6)
    assert len(header["probabilities"]) == 5 and abs(sum(header["probabilities"]) - 1) < 1e-5
