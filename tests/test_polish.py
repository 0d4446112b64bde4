"""Defects fixed after issue 23 (API and CLI side): one owner of the picture suffixes
(``convscope.images``), and ``POST /api/train``'s fine-tuning settings and the settings a
running job reports."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from convscope.bundle import bundled_sample
from convscope.cli import main
from convscope.data.folder import load_folder
from convscope.errors import DataError
from convscope.images import DECODED_SUFFIXES, IMAGE_SUFFIXES, REFUSED_SUFFIXES, is_picture
from convscope.predict import image_files

MODEL = "mnist-convnetjs"


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    sample = bundled_sample("mnist")
    if sample is None:
        pytest.skip("no bundled MNIST sample")
    return sample.images[0, 0].numpy()


def save(path, pixels: np.ndarray, fmt: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return str(path)


# --- one owner of the picture suffixes ------------------------------------------------------


def test_the_suffix_table_says_what_decodes_and_what_is_refused() -> None:
    assert {".png", ".jpg", ".jpeg", ".jpe"} == DECODED_SUFFIXES
    assert {".gif", ".bmp", ".tif", ".tiff", ".webp"} == REFUSED_SUFFIXES.keys()
    assert IMAGE_SUFFIXES == DECODED_SUFFIXES | REFUSED_SUFFIXES.keys()
    assert is_picture("a/B.JPE") and is_picture("x.GIF") and not is_picture("notes.txt")


def test_predict_reads_every_suffix_training_reads(tmp_path, capsys, digit) -> None:
    folder = tmp_path / "mine"
    save(folder / "a.jpe", digit, "JPEG")  # a JPEG suffix the folder reader always took
    save(folder / "b.png", digit, "PNG")
    files, skipped = image_files([folder])
    assert [f.name for f in files] == ["a.jpe", "b.png"] and skipped == 0
    code = main(["predict", MODEL, str(folder)])
    out, err = capsys.readouterr()
    assert code == 0 and out.count("%)") == 6, err  # both pictures, top 3 each
    trained = tmp_path / "set"
    for cls in ("zero", "one"):
        save(trained / "train" / cls / "a.jpe", digit, "JPEG")
    assert len(load_folder(trained)) == 2  # the same files, read by training


def test_a_gif_is_refused_by_name_by_predict_explain_and_training(tmp_path, capsys, digit):
    folder = tmp_path / "mine"
    save(folder / "good.png", digit, "PNG")
    gif = save(folder / "old.gif", digit, "GIF")
    (folder / "notes.txt").write_text("my digits")
    code = main(["predict", MODEL, str(folder)])
    out, err = capsys.readouterr()
    assert code == 1 and out.startswith(f"{folder / 'good.png'}: ")
    lines = err.splitlines()
    assert len(lines) == 2 and "skipped 1 file(s) that are not pictures" in lines[0]
    assert lines[1] == (f"error: {gif}: {gif} is a GIF picture; convscope reads PNG and JPEG "
                        "only: convert it to PNG")
    code = main(["explain", MODEL, gif, "--out", str(tmp_path / "maps")])
    _, err = capsys.readouterr()
    assert code == 1 and "is a GIF picture" in err and "Traceback" not in err
    trained = tmp_path / "set"
    save(trained / "train" / "zero" / "a.png", digit, "PNG")
    save(trained / "train" / "one" / "b.bmp", digit, "BMP")
    with pytest.raises(DataError, match=r"b\.bmp is a BMP image; only PNG and JPEG"):
        load_folder(trained)


def test_the_stream_refuses_a_gif_frame_by_name(tmp_path, digit) -> None:
    from convscope.live.stream import SourceError, read_picture

    png, gif = save(tmp_path / "a.png", digit, "PNG"), save(tmp_path / "b.gif", digit, "GIF")
    assert read_picture(png).shape == (*digit.shape, 3)
    with pytest.raises(SourceError, match=r"b\.gif is a GIF picture; .*remove it"):
        read_picture(gif)


def test_uploads_decode_the_same_formats() -> None:
    from convscope.errors import ImageError
    from convscope.images import fit_image_bytes
    from convscope.spec import Volume

    def encoded(fmt: str) -> bytes:
        out = io.BytesIO()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(out, format=fmt)
        return out.getvalue()

    assert fit_image_bytes(encoded("PNG"), Volume(4, 4, 1)).shape == (1, 4, 4)
    for fmt in ("GIF", "BMP", "TIFF", "WEBP"):
        with pytest.raises(ImageError, match="not a PNG or JPEG image"):
            fit_image_bytes(encoded(fmt), Volume(4, 4, 1))


# --- POST /api/train: the settings a running job shows, and fine-tuning ---------------------

CONV = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
        {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
        {"type": "fc", "num_neurons": 12}, {"type": "softmax", "num_classes": 10}]


@pytest.fixture
def client(tmp_path, data_cache):
    """The explorer with the bundled models and 200 MNIST training digits."""
    pytest.importorskip("fastapi")
    from conftest import write_mnist
    from fastapi.testclient import TestClient

    from convscope.bundle import BUNDLED
    from convscope.server import create_app

    data = write_mnist(tmp_path / "data", train=200, test=60)
    app = create_app(runs_dir=tmp_path / "runs", data_dir=str(data), bundled_dir=BUNDLED)
    with TestClient(app) as test_client:
        yield test_client


def wait_until(client, job: str, states: tuple[str, ...]) -> dict:
    import time

    deadline = time.monotonic() + 60
    while (status := client.get(f"/api/train/{job}").json())["state"] not in states:
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def test_a_running_job_says_what_it_trains(client) -> None:
    started = client.post("/api/train", json={"spec": CONV, "epochs": 100, "batch_size": 1,
                                              "lr": 0.01, "optimizer": "sgd"})
    assert started.status_code == 200, started.text
    job = started.json()["job"]
    wait_until(client, job, ("running",))
    listed = client.get("/api/train").json()["jobs"]
    assert listed[0]["settings"] == {
        "model": None, "spec": CONV, "init_from": None, "dataset": "mnist", "epochs": 100,
        "batch_size": 1, "lr": 0.01, "optimizer": "sgd", "freeze": "none", "num_classes": None,
        "snapshot_every": None}
    assert client.get(f"/api/train/{job}").json()["settings"] == listed[0]["settings"]
    client.post(f"/api/train/{job}/stop")
    wait_until(client, job, ("stopped", "done"))
    # a registry model left to its recipe shows the recipe's values, as they train
    started = client.post("/api/train", json={"model": "mnist-ordinary", "epochs": 100})
    job = started.json()["job"]
    settings = client.get(f"/api/train/{job}").json()["settings"]
    client.post(f"/api/train/{job}/stop")
    from convscope.registry import get_model_entry

    recipe = get_model_entry("mnist-ordinary").recipe
    assert settings["model"] == "mnist-ordinary" and settings["spec"] is None
    assert settings["lr"] == recipe.get("lr", 1e-3)
    assert settings["batch_size"] == recipe.get("batch_size", 64)
    wait_until(client, job, ("stopped", "done"))


def test_init_from_fine_tunes_a_bundled_model_with_its_features_frozen(client, tmp_path):
    import torch

    from convscope.finetune import output_layer
    from convscope.runs import load_run, open_run

    started = client.post("/api/train", json={"init_from": MODEL, "dataset": "mnist",
                                              "freeze": "features", "epochs": 1,
                                              "batch_size": 32, "lr": 0.05})
    assert started.status_code == 200, started.text
    job = started.json()["job"]
    status = wait_until(client, job, ("done", "error"))
    assert status["state"] == "done", status["error"]
    assert status["title"].startswith(f"{MODEL} fine-tuned on mnist · ")
    assert status["settings"]["init_from"] == MODEL
    assert status["settings"]["freeze"] == "features"
    entry = next(m for m in client.get("/api/train").json()["runs"]
                 if m["id"] == started.json()["model_id"])
    assert entry["test_accuracy"] > 0.5  # the bundled features, a retrained output layer
    source = open_run(MODEL)
    run = load_run(next((tmp_path / "runs" / "live").glob(f"*-{job}")))
    assert run.config.init_from.endswith(MODEL) and run.config.freeze == "features"
    before, after = source.model.state_dict(), run.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    output = output_layer(run.model) + "."  # only the output layer learned
    assert changed and all(k.startswith(output) for k in changed), changed


def test_fine_tuning_mistakes_are_the_settings_tables_one_line_errors(client) -> None:
    from convscope.config import TrainConfig
    from convscope.errors import ConvscopeError

    def refused(body: dict) -> str:
        answer = client.post("/api/train", json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert "\n" not in error and "Traceback" not in error
        return error

    for setting, value in (("freeze", "all"), ("num_classes", 0)):
        with pytest.raises(ConvscopeError) as table:
            TrainConfig(**{setting: value})
        assert refused({"init_from": MODEL, setting: value}) == str(table.value)
    assert refused({"init_from": MODEL, "num_classes": 5}) == (
        "num_classes is 5 but mnist has 10 classes; leave num_classes out to size the output "
        "layer to the data")
    assert "is not a model this explorer serves" in refused({"init_from": "../../etc"})
    assert "has no trained weights" in refused({"init_from": "alexnet"})
    assert "is a localize model" in refused({"init_from": "mnist-localizer"})
    assert "does not match" in refused({"init_from": MODEL, "spec": CONV})
    assert "not both" in refused({"model": "mnist-ordinary", "spec": CONV})
    assert "init_from" in refused({"epochs": 1})
    assert client.get("/api/train").json()["jobs"] == []  # nothing started
