"""The explorer's API for localization, detection, segmentation and spoken-digit models
(docs/api.md), on untrained zoo networks saved as runs, generated MNIST files and synthetic
FSDD recordings."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch
from _task_runs import RESULTS_OF, ZOO, tone, wav_bytes, write_fsdd, write_task_run
from conftest import write_mnist
from fastapi.testclient import TestClient

import convscope
from convscope import yolo
from convscope.audio import CLIP_SAMPLES, fix_length, read_wav, resample, spectrogram_image
from convscope.augment import to_input
from convscope.data import DATASETS
from convscope.runs import load_run
from convscope.scenes import make_scenes
from convscope.server import create_app
from convscope.server.audio import heard_window
from convscope.tasks import get_task
from convscope.tasks.detect import MIN_SCORE
from convscope.tasks.localize import decode_boxes

SCENE = {"localize": "mnist-localize-scenes", "detect": "mnist-detect-scenes",
         "segment": "mnist-segment-scenes"}


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    torch.testing.assert_close(actual, expected.float(), atol=atol, rtol=0)


def decode(tensor: dict) -> torch.Tensor:
    dtype = {"float32": "<f4", "uint8": "u1"}[tensor["dtype"]]
    data = np.frombuffer(base64.b64decode(tensor["data"]), dtype=dtype)
    return torch.from_numpy(data.reshape(tensor["shape"]).copy())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """MNIST files, 12 test recordings (of 18), a run per task and a client for the app."""
    root = tmp_path_factory.mktemp("tasks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONVSCOPE_CACHE", str(root / "cache"))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        data = write_mnist(root / "data", train=20, test=40)
        write_fsdd(data)
        for task in RESULTS_OF:
            write_task_run(root / "runs" / task, task)
        app = create_app(runs_dir=root / "runs", data_dir=str(data), bundled_dir=root / "none")
        with TestClient(app) as client:
            yield {"client": client, "data": data, "runs": root / "runs", "root": root}
        torch.set_num_threads(threads)


@pytest.fixture
def client(world) -> TestClient:
    return world["client"]


def net(world, task: str) -> torch.nn.Module:
    return load_run(world["runs"] / task).model


def scenes(world, kind: str, count: int = 3):
    digits = convscope.load_dataset("mnist", "test", world["data"], download=False)
    return make_scenes(kind, digits, count, seed=0)


# ---- catalog -------------------------------------------------------------------------------


def test_models_say_their_task_and_headline_metric(client: TestClient):
    models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
    assert set(models) == {f"run-{t}" for t in RESULTS_OF}
    detect = models["run-detect"]
    assert detect["task"] == "detect" and detect["test_accuracy"] is None
    assert detect["metric"] == {"name": "map50", "label": "mAP@0.5", "value": 0.25}
    assert detect["dataset"] == "mnist-detect-scenes" and detect["registry"] == "mnist-yolo"
    assert "(50 scenes)" in detect["accuracy_source"]
    localize = models["run-localize"]
    assert localize["metric"]["value"] == 0.4 and localize["test_accuracy"] == 0.5
    assert models["run-segment"]["metric"]["name"] == "miou"
    audio = models["run-audio"]
    assert audio["metric"] == {"name": "accuracy", "label": "accuracy", "value": 0.75}
    assert audio["dataset"] == "fsdd" and "(12 recordings)" in audio["accuracy_source"]
    body = client.get("/api/models/run-segment").json()
    assert body["task"] == "segment" and body["metric"] == models["run-segment"]["metric"]
    types = [layer["type"] for layer in body["layers"]]
    assert "upsample" in types and "concat" in types
    assert body["layers"][-1]["out_volume"] == {"sx": 96, "sy": 96, "depth": 11}


def test_datasets_offer_scenes_and_recordings(client: TestClient):
    listed = {d["name"]: d for d in client.get("/api/datasets").json()["datasets"]}
    assert listed["fsdd"] == {**DATASETS["fsdd"].json(), "classes": [str(d) for d in range(10)],
                              "source": "data-dir", "count": 12}
    for name in SCENE.values():
        assert listed[name]["count"] == 1000 and listed[name]["source"] == "data-dir"
    page = client.get("/api/datasets/mnist-detect-scenes/samples?offset=0&limit=5").json()
    assert page["total"] == 1000 and len(page["samples"]) == 5


def test_scene_truth_is_the_generated_scene(client: TestClient, world):
    made = scenes(world, "segment")
    truth = client.get("/api/datasets/mnist-segment-scenes/samples/2/truth").json()
    keep = made.classes[2] >= 0
    assert [o["class"] for o in truth["objects"]] == made.classes[2][keep].tolist()
    assert [o["box"] for o in truth["objects"]] == made.boxes[2][keep].tolist()
    assert truth["label"] == int(made.labels()[2])
    mask = decode(truth["mask"])
    assert truth["mask"]["dtype"] == "uint8" and torch.equal(mask, torch.from_numpy(made.masks[2]))
    png = client.get("/api/datasets/mnist-segment-scenes/samples/2.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    plain = client.get("/api/datasets/mnist/samples/0/truth").json()
    assert plain["objects"] is None and plain["mask"] is None
    assert client.get("/api/datasets/mnist-detect-scenes/samples/1000/truth").status_code == 404


# ---- predictions ---------------------------------------------------------------------------


def last_output(client: TestClient, model: str, ref: dict) -> torch.Tensor:
    """The network's output volume for ``ref`` (the activations' last layer)."""
    body = client.post(f"/api/models/{model}/activations", json=ref).json()
    return decode(body["layers"][-1]["output"])


def test_detection_decodes_the_output_as_evaluation_does(client: TestClient, world):
    image = torch.from_numpy(scenes(world, "detect").images[1])
    ref = {"sample": {"dataset": SCENE["detect"], "index": 1}}
    body = client.post("/api/models/run-detect/predict", json=ref).json()
    assert body["task"] == "detect" and body["min_score"] == MIN_SCORE
    assert torch.equal(decode(body["input"]), to_input(image))
    output = last_output(client, "run-detect", ref)
    boxes, scores, classes = yolo.decode(output[None], 96, conf_threshold=MIN_SCORE)[0]
    found = body["detections"]
    assert found and [d["class"] for d in found] == classes.tolist()
    assert [d["score"] for d in found] == pytest.approx(scores.tolist(), abs=1e-6)
    close(torch.tensor([d["box"] for d in found]), boxes, atol=1e-4)
    grid = body["grid"]
    assert grid["size"] == 12 and grid["cell"] == 8
    close(torch.tensor(grid["objectness"]), output[0].sigmoid(), atol=1e-6)
    volume = client.post("/api/models/run-detect/activations", json=ref).json()
    assert volume["probabilities"] == [] and volume["prediction"] is None


def test_segmentation_and_localization_decode_as_their_tasks(client: TestClient, world):
    image = torch.from_numpy(scenes(world, "segment").images[0])
    ref = {"sample": {"dataset": SCENE["segment"], "index": 0}}
    body = client.post("/api/models/run-segment/predict", json=ref).json()
    mask = decode(body["mask"])
    assert torch.equal(mask, last_output(client, "run-segment", ref).argmax(0).to(torch.uint8))
    task_mask = get_task("segment").predict(net(world, "segment"), image[None])[0]
    assert (mask == task_mask).float().mean() > 0.99
    assert body["classes"][-1] == "background" and body["background"] == 10
    assert body["pixels"] == torch.bincount(mask.flatten().long(), minlength=11).tolist()

    ref = {"sample": {"dataset": SCENE["localize"], "index": 0}}
    body = client.post("/api/models/run-localize/predict", json=ref).json()
    output = last_output(client, "run-localize", ref).flatten()
    probabilities = output[:10].softmax(0)
    assert body["probabilities"] == pytest.approx(probabilities.tolist(), abs=1e-6)
    assert body["class"] == int(probabilities.argmax())
    assert body["confidence"] == pytest.approx(float(probabilities.max()), abs=1e-6)
    assert body["box"] == pytest.approx(decode_boxes(output[None, 10:], 64, 64)[0].tolist(),
                                        abs=1e-4)
    image = torch.from_numpy(scenes(world, "localize").images[0])
    task = get_task("localize").predict(net(world, "localize"), image[None])
    assert body["box"] == pytest.approx(task["boxes"][0].tolist(), abs=1e-2)
    volume = client.post("/api/models/run-localize/activations", json=ref).json()
    assert volume["probabilities"] == pytest.approx(body["probabilities"], abs=1e-6)


def test_drawn_scenes_and_every_layer_of_a_unet(client: TestClient, world):
    pixels = np.zeros((96, 96), np.uint8)
    pixels[20:60, 30:34] = 255  # a "1"
    ref = {"pixels": {"width": 96, "height": 96, "depth": 1, "data": pixels.ravel().tolist()}}
    body = client.post("/api/models/run-segment/predict", json=ref).json()
    assert sum(body["pixels"]) == 96 * 96
    described = client.get("/api/models/run-segment").json()["layers"]
    layers = client.post("/api/models/run-segment/activations", json=ref).json()["layers"]
    for layer, out in zip(described, layers, strict=True):
        v = layer["out_volume"]
        assert out["output"]["shape"] == [v["depth"], v["sy"], v["sx"]], layer["label"]
    concat = next(la for la in described if la["type"] == "concat")
    after = concat["index"] + 1  # the conv reading the stacked maps
    step = client.post("/api/models/run-segment/conv-step",
                       json={**ref, "layer": after, "filter": 1, "x": 5, "y": 7}).json()
    assert step["patch"]["shape"][0] == concat["out_volume"]["depth"]
    assert step["output"] == pytest.approx(decode(layers[after]["output"])[1, 7, 5].item(),
                                           abs=1e-5)


def test_classification_views_refuse_other_tasks(client: TestClient):
    response = client.get("/api/models/run-detect/confusion")
    assert response.status_code == 400 and "detect model" in response.json()["error"]
    audio = client.get("/api/models/run-audio/confusion").json()
    assert audio["total"] == 12 and audio["dataset"] == "fsdd"
    response = client.post("/api/train", json={"model": "mnist-yolo"})
    assert response.status_code == 400
    assert "convscope train --model mnist-yolo" in response.json()["error"]


# ---- spoken digits -------------------------------------------------------------------------


def test_recordings_are_listed_and_served(client: TestClient, world):
    listing = client.get("/api/audio/recordings").json()
    assert listing["total"] == 12 and listing["note"] is None
    first = listing["recordings"][0]
    assert first == {"index": 0, "name": "0_ann_0", "digit": 0, "speaker": "ann", "take": 0}
    assert {r["take"] for r in listing["recordings"]} == {0, 1}  # take 7 is training data
    labels = convscope.load_dataset("fsdd", "test", world["data"]).labels.tolist()
    assert [r["digit"] for r in listing["recordings"]] == labels
    wav = client.get("/api/audio/recordings/3.wav")
    assert wav.headers["content-type"] == "audio/wav"
    name = listing["recordings"][3]["name"]
    assert wav.content == (world["data"] / "fsdd" / "recordings" / f"{name}.wav").read_bytes()
    assert client.get("/api/audio/recordings/12.wav").status_code == 404
    assert client.get("/api/audio/recordings/..%2Fx.wav").status_code == 404


def test_a_recording_is_heard_as_its_dataset_sample(client: TestClient, world):
    body = client.post("/api/models/run-audio/audio", json={"recording": 5}).json()
    assert body["recording"]["index"] == 5
    sample = convscope.load_dataset("fsdd", "test", world["data"]).images[5]
    assert torch.equal(decode(body["input"]), to_input(sample))
    clip = body["clip"]
    assert clip["rate"] == 8000 and clip["seconds"] == 0.5
    assert clip["window"] == {"start": 0.0, "end": 0.5}  # shorter than the net's window
    assert clip["heard"] == CLIP_SAMPLES / 8000
    assert len(clip["waveform"]["min"]) == 400
    assert max(clip["waveform"]["max"]) == pytest.approx(0.6, abs=0.01)
    assert sum(body["probabilities"]) == pytest.approx(1, abs=1e-5)
    spec = convscope.get_model_entry(ZOO["audio"]).spec
    assert len(body["layers"]) == len(convscope.resolve(spec))
    assert client.post("/api/models/run-audio/audio", json={"recording": 99}).status_code == 404


def test_uploaded_wavs_are_resampled_and_windowed(client: TestClient):
    sound = np.concatenate([np.zeros(8000, np.float32), tone(7, 1.2, 16000),
                            np.zeros(16000, np.float32)])
    wav = wav_bytes(sound, rate=16000, channels=2)
    body = client.post("/api/models/run-audio/audio/upload",
                       files={"audio": ("seven.wav", wav, "audio/wav")}).json()
    assert body["recording"] is None and body["clip"]["rate"] == 16000
    assert body["clip"]["seconds"] == pytest.approx(2.7)
    start, end = body["clip"]["window"]["start"], body["clip"]["window"]["end"]
    assert end - start == pytest.approx(CLIP_SAMPLES / 8000)
    assert 0.4 < start < 0.6  # the loudest second starts with the tone at 0.5 s
    samples, rate = read_wav(wav)
    assert torch.equal(decode(body["input"]), to_input(spectrogram_image(samples, rate)))


def test_heard_window_is_the_one_fix_length_keeps():
    rng = np.random.default_rng(0)
    sound = (rng.normal(0, 0.01, 30000) * np.linspace(0, 3, 30000) ** 4).astype(np.float32)
    start, end = heard_window(sound, 16000)
    x = resample(sound, 16000)
    first = round(start * 8000)
    assert np.array_equal(fix_length(x), x[first:first + CLIP_SAMPLES])
    assert end - start == pytest.approx(CLIP_SAMPLES / 8000)


@pytest.mark.parametrize(("content", "status", "message"), [
    (b"not a wav at all", 400, "not a WAV file"),
    (wav_bytes(np.zeros(4000, np.float32)), 400, "silent"),
    (wav_bytes(tone(3, 11.0)), 400, "longer than"),
    (b"RIFF" + bytes(4) + b"WAVEfmt " + (16).to_bytes(4, "little")
     + (3).to_bytes(2, "little") + bytes(14) + b"data" + bytes(4), 400, "float WAV"),
    (b"RIFF" + bytes(6 * 1024 * 1024), 413, "5 MB"),
])
def test_bad_audio_uploads_get_clear_messages(client: TestClient, content: bytes, status: int,
                                              message: str):
    response = client.post("/api/models/run-audio/audio/upload",
                           files={"audio": ("clip.wav", content, "audio/wav")})
    assert response.status_code == status and message in response.json()["error"]


def test_audio_requests_that_cannot_work(client: TestClient):
    response = client.post("/api/models/run-audio/audio/upload",
                           files={"image": ("clip.wav", wav_bytes(tone(1)), "audio/wav")})
    assert response.status_code == 400 and "'audio'" in response.json()["error"]
    response = client.post("/api/models/run-detect/audio", json={"recording": 0})
    assert response.status_code == 400 and "not a spoken-digit model" in response.json()["error"]
    assert client.post("/api/models/run-audio/audio", json={"recording": -1}).status_code == 400


def test_without_a_data_dir(world, tmp_path):
    """No recordings (a note says why) and no MNIST: no scenes, but drawn scenes still work."""
    app = create_app(runs_dir=world["runs"], data_dir=str(tmp_path / "empty"),
                     bundled_dir=tmp_path / "none")
    with TestClient(app) as client:
        listing = client.get("/api/audio/recordings").json()
        assert listing["total"] == 0 and "no FSDD recordings" in listing["note"]
        assert client.get("/api/datasets").json()["datasets"] == []
        response = client.post("/api/models/run-audio/audio", json={"recording": 0})
        assert response.status_code == 404 and "no FSDD recordings" in response.json()["error"]
        pixels = {"width": 64, "height": 64, "depth": 1, "data": [0] * 64 * 64}
        body = client.post("/api/models/run-localize/predict", json={"pixels": pixels}).json()
        assert len(body["box"]) == 4
