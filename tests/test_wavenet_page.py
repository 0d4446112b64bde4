"""The WaveNet page's API (the stack, a recording layer by layer, the streamed generation), its
bad input (API and CLI, one line each), and a WaveNet bundled with scripts/make_bundle.py
--add-run --fp16 offered by the explorer with no data directory."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _wavenet_run import DILATIONS, SPEAKERS, tiny_wavenet_run
from conftest import write_clip

from convscope.audio import SILENCE_PEAK, log_mel
from convscope.cli import main
from convscope.runs import open_run
from convscope.wavenet import PEAK
from convscope.wavenet.generation import generate_with, wavenet_of

pytest.importorskip("fastapi")
MODEL = "run-tiny-wavenet"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny run, its data dir (synthetic FSDD) and a temp folder."""
    tmp = tmp_path_factory.mktemp("wavenet-page")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(tmp / "cache"))
        run = tiny_wavenet_run(tmp)
        yield {"run": run, "data": tmp / "data", "tmp": tmp}


@pytest.fixture(scope="module")
def client(tiny: dict):
    from starlette.testclient import TestClient

    from convscope.server.app import create_app

    app = create_app(runs=[tiny["run"]], data_dir=str(tiny["data"]))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def generate_messages(client, request: dict, model: str = MODEL, stop_after: int | None = None):
    """The messages of one generation over the socket (optionally a stop after N chunks)."""
    messages = []
    with client.websocket_connect(f"ws://127.0.0.1/api/models/{model}/wavenet/generate") as ws:
        ws.send_text(json.dumps(request))
        while True:
            message = json.loads(ws.receive_text())
            messages.append(message)
            if message["type"] != "chunk":
                return messages
            if stop_after is not None and len(messages) == stop_after:
                ws.send_text(json.dumps({"stop": True}))


def test_the_stack_is_the_models(client, tiny):
    stack = client.get(f"/api/models/{MODEL}/wavenet").json()
    net = wavenet_of(open_run(tiny["run"]))
    assert stack["dilations"] == DILATIONS == net.dilations
    assert stack["receptive_field"] == 1 + sum(DILATIONS) == net.receptive_field
    assert stack["speakers"] == SPEAKERS and stack["digits"] == 10
    assert stack["peak"] == PEAK and stack["silence_peak"] == SILENCE_PEAK
    info = client.get(f"/api/models/{MODEL}").json()["task_info"]
    assert info["home_view"] == "wavenet" and "wavenet" in info["views"]
    assert not {"convolution", "maps", "weights"} & set(info["views"])  # image views: not offered


def _decode(tensor: dict) -> np.ndarray:
    import base64

    return np.frombuffer(base64.b64decode(tensor["data"]), "<f4").reshape(tensor["shape"])


def test_a_recording_layer_by_layer(client, tiny):
    listed = client.get("/api/audio/recordings").json()["recordings"]
    index = next(r["index"] for r in listed if r["name"] == "2_theo_1")
    result = client.post(f"/api/models/{MODEL}/wavenet/recording", json={"recording": index}).json()
    assert result["recording"]["name"] == "2_theo_1" and result["speaker"] == "theo"
    samples, activity = _decode(result["samples"]), _decode(result["activity"])
    assert samples.shape == (8064,) and activity.shape == (len(DILATIONS), 4, 8064 // 32)
    start, end = result["span"]
    assert 0 < start < end < 8064 and end - start == 2400  # the 0.3 s tone, centred
    assert np.abs(samples[:start - 8]).max() < 0.01 < np.abs(samples[start:end]).max()
    assert 0 < result["nll"]["speech"] < 6 and result["nll"]["uniform"] == pytest.approx(
        math.log(256))

    # the same activations from forward hooks on the real network (each out conv's input)
    from convscope.audio import read_wav, spectrogram_image
    from convscope.wavenet.data import clip_codes
    from convscope.wavenet.fast import conditioning

    net = wavenet_of(open_run(tiny["run"]))
    sound, rate = read_wav(tiny["data"] / "fsdd" / "recordings" / "2_theo_1.wav")
    codes, _ = clip_codes(sound, rate, net.preemphasis)
    cond = conditioning(net, 2, 1, spectrogram_image(sound, rate).numpy()[0], 8064)
    seen = []
    hooks = [out.register_forward_hook(lambda _m, args, _o: seen.append(args[0][0, :, 0]))
             for out in net.out]
    with torch.no_grad():
        net.run(torch.from_numpy(codes.astype(np.int64))[None], cond[None, :, None].float())
    for hook in hooks:
        hook.remove()
    for layer, gated in enumerate(seen):
        rms = gated.reshape(4, -1, 32).square().mean(2).sqrt().numpy()
        np.testing.assert_allclose(activity[layer], rms, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(samples, _decode(result["samples"]))


def test_generation_streams_what_the_generator_makes(client, tiny):
    messages = generate_messages(client, {"digit": 1, "speaker": "theo", "seconds": 0.2,
                                          "seed": 3, "temperature": 0.7})
    chunks, done = messages[:-1], messages[-1]
    assert len(chunks) == 4 and all(m["type"] == "chunk" for m in chunks)  # 1,600 in 512s
    assert [m["start"] for m in chunks] == [0, 512, 1024, 1536]
    assert done["type"] == "done" and done["samples"] == 1600 and not done["stopped"]
    streamed = np.concatenate([m["samples"] for m in chunks])
    net = wavenet_of(open_run(tiny["run"]))
    clip = generate_with(net, 1, "theo", seconds=0.2, seed=3, temperature=0.7)
    np.testing.assert_allclose(streamed, clip.samples, atol=1e-5)  # same seed, same clip
    other = generate_with(net, 1, "theo", seconds=0.2, seed=3)  # temperature 1
    assert np.abs(other.samples - clip.samples).max() > 1e-3
    columns = np.concatenate([np.array(m["mel"]).reshape(-1, 32) for m in chunks])
    assert [m["first_frame"] for m in chunks] == [0, 4, 8, 12]  # frame f ends at 128 f + 128
    assert len(columns) == 1 + 1600 // 128
    np.testing.assert_allclose(columns, log_mel(clip.samples).numpy().T, rtol=1e-4, atol=1e-3)


def test_stop_ends_a_generation(client):
    messages = generate_messages(client, {"digit": 0, "seconds": 10}, stop_after=1)
    done = messages[-1]
    assert done["type"] == "done" and done["stopped"] and 512 <= done["samples"] < 80_000
    assert sum(len(m["samples"]) for m in messages[:-1]) == done["samples"]


def test_resynthesising_a_listed_recording(client):
    messages = generate_messages(client, {"digit": 2, "recording": 0, "seconds": 0.1})
    assert messages[-1]["type"] == "done" and messages[-1]["samples"] == 800


# ---- bad input: one line each, naming the problem and the fix ---------------------------------


@pytest.mark.parametrize(("request_", "expected"), [
    ({"digit": 1, "speaker": "carol"}, "unknown speaker 'carol'; this model knows: george, theo"),
    ({"digit": 12}, "digit 12 is not one this model says; use 0-9"),
    ({"digit": -1}, "digit -1 is not one this model says; use 0-9"),
    ({"digit": "7"}, "digit must be a whole number, got '7'"),
    ({"digit": 1, "seconds": 60}, "--seconds must be above 0 and at most 10"),
    ({"digit": 1, "seconds": 0}, "--seconds must be above 0 and at most 10"),
    ({"digit": 1, "seed": -4}, "seed must be a whole number"),
    ({"digit": 1, "temperature": "hot"}, "temperature must be a number, got 'hot'"),
    ({"digit": 1, "temperature": 2.5}, "--temperature must be a number from 0 to 2"),
    ({"digit": 1, "recording": 999}, "there is no recording 999"),
    ({"digit": 1, "voice": "x"}, "send {\"digit\": D"),
])
def test_bad_generation_requests(client, request_, expected):
    (message,) = generate_messages(client, request_)
    assert message["type"] == "error" and expected in message["error"], message
    assert "\n" not in message["error"]


def test_a_request_that_is_not_json(client):
    with client.websocket_connect(f"ws://127.0.0.1/api/models/{MODEL}/wavenet/generate") as ws:
        ws.send_text("digit=3")
        assert json.loads(ws.receive_text()) == {"type": "error", "error": "the request must "
                                                 "be JSON (docs/api.md)"}


def _wav(samples: np.ndarray, tmp: Path) -> bytes:
    write_clip(tmp, samples)
    return tmp.read_bytes()


@pytest.mark.parametrize(("seconds", "expected"), [(0.05, "0.05 s is not the length of a spoken "
                                                            "digit (0.1-3 s); trim it"),
                                                   (5.0, "5.00 s is not the length of a spoken")])
def test_a_wav_that_is_not_speech_length_is_refused(client, tmp_path, seconds, expected):
    sound = 0.3 * np.sin(np.arange(int(seconds * 8000)) / 3.0)
    files = {"audio": ("x.wav", io.BytesIO(_wav(sound, tmp_path / "x.wav")), "audio/wav")}
    answer = client.post(f"/api/models/{MODEL}/wavenet/upload?digit=1", files=files)
    assert answer.status_code == 400 and expected in answer.json()["error"]
    assert "\n" not in answer.json()["error"]


def test_an_uploaded_recording_of_speech_length_is_analysed(client, tmp_path):
    sound = 0.3 * np.sin(np.arange(4000) / 3.0) * np.hanning(4000)
    files = {"audio": ("x.wav", io.BytesIO(_wav(sound, tmp_path / "x.wav")), "audio/wav")}
    answer = client.post(f"/api/models/{MODEL}/wavenet/upload?digit=4", files=files)
    assert answer.status_code == 200 and answer.json()["digit"] == 4
    assert answer.json()["span"][1] - answer.json()["span"][0] == 4000


def test_a_model_that_is_not_a_wavenet(client):
    expected = ("model 'mnist-convnetjs' is a classify model for mnist, not a WaveNet; pick one "
                "trained with `convscope train --task wavenet`")
    for answer in (client.get("/api/models/mnist-convnetjs/wavenet"),
                   client.post("/api/models/mnist-convnetjs/wavenet/recording",
                               json={"recording": 0})):
        assert answer.status_code == 400 and expected in answer.json()["error"]
    (message,) = generate_messages(client, {"digit": 1}, model="mnist-convnetjs")
    assert message["type"] == "error" and expected in message["error"]
    assert client.get("/api/models/nothing/wavenet").status_code == 404


def test_the_audio_classifier_routes_refuse_a_wavenet(client):
    answer = client.post(f"/api/models/{MODEL}/audio", json={"recording": 0})
    assert answer.status_code == 400
    assert "is a WaveNet: it generates spoken digits" in answer.json()["error"]


@pytest.mark.parametrize(("argv", "expected"), [
    (["--digit", "1", "--speaker", "nicolas"], "unknown speaker 'nicolas'; this model knows: "
                                               "george, theo (or leave --speaker out)"),
    (["--digit", "10"], "digit 10 is not one this model says; use 0-9"),
    (["--digit", "1", "--from-wav", "LONG"], "5.00 s is not the length of a spoken digit"),
])
def test_generate_cli_bad_input(tiny, tmp_path, capsys, argv, expected):
    long = tmp_path / "long.wav"
    write_clip(long, 0.2 * np.sin(np.arange(40000) / 5.0))
    argv = [str(long) if a == "LONG" else a for a in argv]
    assert main(["generate", str(tiny["run"]), *argv, "--out", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.wav").exists()


def test_generate_cli_refuses_a_model_that_is_not_a_wavenet(tmp_path, capsys):
    from convscope.bundle import bundled_model_dirs

    if "mnist-convnetjs" not in bundled_model_dirs():
        pytest.skip("mnist-convnetjs is not bundled (run scripts/make_bundle.py)")
    assert main(["generate", "mnist-convnetjs", "--digit", "1", "--out",
                 str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert "is not a WaveNet run (its model is mnist-convnetjs, task classify); train one " \
           "with `convscope train --task wavenet`" in err and err.count("\n") == 1, err


# ---- bundled: make_bundle --add-run --fp16, then the explorer with no data directory -------


def _make_bundle():
    spec = importlib.util.spec_from_file_location("make_bundle", ROOT / "scripts" /
                                                  "make_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_bundled_wavenet_works_without_the_data_directory(tiny, tmp_path):
    from safetensors.torch import load_file
    from starlette.testclient import TestClient

    from convscope.server.app import create_app

    bundle = tmp_path / "bundled"
    row = _make_bundle().add_run(tiny["run"], "fsdd-wavenet", True, str(tiny["data"]),
                                 models_dir=bundle / "models")
    trained = json.loads((tiny["run"] / "results.json").read_text())["test"]["nll"]
    assert row["trained"].startswith("NLL (nats per sample)")
    bundled = float(row["bundled"].split()[4])  # re-scored: the float16 copy's test NLL
    assert abs(bundled - trained) < 0.01 and row["half"]
    weights = load_file(str(bundle / "models" / "fsdd-wavenet" / "model.safetensors"))
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float16}
    recordings = bundle / "samples" / "fsdd"
    recordings.mkdir(parents=True)
    for wav in (tiny["data"] / "fsdd" / "recordings").glob("*_[01].wav"):
        shutil.copyfile(wav, recordings / wav.name)
    empty = tmp_path / "no-data"
    empty.mkdir()

    app = create_app(data_dir=str(empty), bundled_dir=bundle)
    with TestClient(app, base_url="http://127.0.0.1") as offline:
        listed = {m["id"]: m for m in offline.get("/api/models").json()["models"]}
        assert listed["fsdd-wavenet"]["kind"] == "bundled"
        assert listed["fsdd-wavenet"]["task"] == "wavenet"
        assert offline.get("/api/audio/recordings").json()["total"] == 12
        stack = offline.get("/api/models/fsdd-wavenet/wavenet").json()
        assert stack["dilations"] == DILATIONS
        result = offline.post("/api/models/fsdd-wavenet/wavenet/recording",
                              json={"recording": 0}).json()
        assert result["nll"]["clip"] < 6
        messages = generate_messages(offline, {"digit": 0, "seconds": 0.05},
                                     model="fsdd-wavenet")
        assert messages[-1]["type"] == "done" and messages[-1]["samples"] == 400


def test_the_bundled_fsdd_wavenet_offline(tmp_path):
    """Once the bundle holds fsdd-wavenet: the explorer without a data directory offers it, its
    stack is the registry's and it beats the uniform NLL on a bundled recording."""
    from starlette.testclient import TestClient

    from convscope.bundle import bundled_model_dirs
    from convscope.server.app import create_app

    if "fsdd-wavenet" not in bundled_model_dirs():
        pytest.skip("fsdd-wavenet is not bundled (scripts/make_bundle.py --add-run ... --fp16)")
    with TestClient(create_app(data_dir=str(tmp_path)), base_url="http://127.0.0.1") as offline:
        models = {m["id"]: m for m in offline.get("/api/models").json()["models"]}
        assert models["fsdd-wavenet"]["kind"] == "bundled"
        stack = offline.get("/api/models/fsdd-wavenet/wavenet").json()
        assert stack["dilations"] == [2**i for i in range(10)]
        assert stack["receptive_field"] == 1024
        result = offline.post("/api/models/fsdd-wavenet/wavenet/recording",
                              json={"recording": 0}).json()
        assert result["nll"]["speech"] < math.log(256)
        messages = generate_messages(offline, {"digit": 3, "seconds": 0.1},
                                     model="fsdd-wavenet")
        assert messages[-1]["type"] == "done" and messages[-1]["samples"] == 800


def test_the_generation_socket_refuses_another_origin(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect), client.websocket_connect(
            f"ws://127.0.0.1/api/models/{MODEL}/wavenet/generate",
            headers={"origin": "http://evil.example"}) as ws:
        ws.receive_text()
