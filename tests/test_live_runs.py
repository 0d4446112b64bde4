"""Live runs in the explorer's API: listed for a page that reloads (with the progress so far),
named by model and time, renamed (the name kept for the next start) and deleted, scored when
stopped, and the training data they still need said before Start in one line."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import write_mnist

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from convscope.server import create_app  # noqa: E402
from convscope.server.live_runs import (  # noqa: E402
    checked_title,
    missing_data,
    run_title,
    spec_label,
    stopped_score,
)

SOFTMAX = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
           {"type": "softmax", "num_classes": 10}]
CONV = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
        {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
        {"type": "fc", "num_neurons": 12}, {"type": "softmax", "num_classes": 10}]


@pytest.fixture
def world(tmp_path: Path, data_cache: Path) -> dict[str, Path]:
    return {"data": write_mnist(tmp_path / "data", train=200, test=60), "runs": tmp_path / "runs"}


def explorer(world: dict[str, Path]) -> TestClient:
    return TestClient(create_app(runs_dir=world["runs"], data_dir=str(world["data"]),
                                 bundled_dir=world["runs"] / "no-bundle"))


def wait_until(client: TestClient, job: str, states: tuple[str, ...]) -> dict:
    deadline = time.monotonic() + 60
    while (status := client.get(f"/api/train/{job}").json())["state"] not in states:
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def test_names_say_what_trains_on_what_and_when():
    assert spec_label(CONV) == "conv4-fc12 net"
    assert spec_label(SOFTMAX) == "softmax net"
    title = run_title("mnist-ordinary", "mnist", datetime(2026, 12, 6, 19, 5, 7))
    assert title == "mnist-ordinary on mnist · Dec 06 19:05:07"
    assert checked_title("  my run  ") == "my run"
    for bad in ("", "   ", "a" * 81, "two\nlines"):
        with pytest.raises(Exception, match="1 to 80 characters"):
            checked_title(bad)


def test_a_reloaded_page_finds_the_running_job_and_its_progress(world):
    with explorer(world) as client:
        started = client.post("/api/train", json={"spec": CONV, "epochs": 100, "batch_size": 1})
        job = started.json()["job"]
        status = wait_until(client, job, ("running",))
        deadline = time.monotonic() + 30
        while not client.get(f"/api/train/{job}").json()["history"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        listing = client.get("/api/train").json()
        assert [j["job"] for j in listing["jobs"] if j["state"] == "running"] == [job]
        running = listing["jobs"][0]
        assert running["title"].startswith("conv4-fc12 net on mnist · ")
        assert running["model_id"] == started.json()["model_id"]
        status = client.get(f"/api/train/{job}").json()
        assert status["history"][-1]["type"] == "progress"
        again = client.post("/api/train", json={"spec": SOFTMAX})
        assert again.status_code == 409
        message = again.json()["error"]
        assert running["title"] in message and "/api/" not in message
        client.post(f"/api/train/{job}/stop")
        stopped = wait_until(client, job, ("stopped",))
        # stopped runs are scored too, on the test set, and say so
        assert 0 <= stopped["test_accuracy"] <= 1
        assert stopped["score_source"] == "mnist test set (60 images), evaluated when stopped"
        model = {m["id"]: m for m in client.get("/api/models").json()["models"]}[
            stopped["model_id"]]
        assert model["test_accuracy"] == stopped["test_accuracy"]
        assert model["title"] == running["title"]


def test_history_is_thinned_not_unbounded(world, monkeypatch):
    from convscope.server import live

    monkeypatch.setattr(live, "MAX_HISTORY", 8)
    job = live.Job("j", "live-j", world["runs"])
    for step in range(100):
        job.publish({"type": "progress", "step": step})
    history = job.status()["history"]
    assert len(history) <= 8 and history[0]["step"] == 0 and history[-1]["step"] >= 90


def test_runs_are_renamed_kept_and_deleted(world):
    with explorer(world) as client:
        job = client.post("/api/train", json={"spec": SOFTMAX, "epochs": 1,
                                              "batch_size": 32}).json()
        done = wait_until(client, job["job"], ("done",))
        assert done["score_source"] == "mnist test set (60 images)"
        listed = client.get("/api/train").json()["runs"]
        assert [r["id"] for r in listed] == [job["model_id"]]
        renamed = client.patch(f"/api/models/{job['model_id']}", json={"title": "first try"})
        assert renamed.status_code == 200 and renamed.json()["title"] == "first try"
        assert client.patch(f"/api/models/{job['model_id']}",
                            json={"title": "x\ny"}).status_code == 400
        run_dir = next((world["runs"] / "live").iterdir())
        assert (run_dir / "title.txt").read_text().strip() == "first try"
    with explorer(world) as client:  # the explorer restarted: the run keeps its name and score
        runs = client.get("/api/train").json()["runs"]
        assert [(r["title"], r["kind"]) for r in runs] == [("first try", "run")]
        assert runs[0]["test_accuracy"] == done["test_accuracy"]
        deleted = client.delete(f"/api/models/{runs[0]['id']}")
        assert deleted.json() == {"deleted": runs[0]["id"]}
        assert not run_dir.exists()
        assert client.get(f"/api/models/{runs[0]['id']}").status_code == 404
        assert client.get("/api/train").json()["runs"] == []


def test_only_runs_trained_here_are_renamed_or_deleted(world, tmp_path):
    import convscope

    other = convscope.train(SOFTMAX, "mnist", out=world["runs"] / "mine", epochs=1,
                            data_dir=str(world["data"]), progress=False).path
    with explorer(world) as client:
        ids = [m["id"] for m in client.get("/api/models").json()["models"]]
        assert ids == ["run-mine"]
        for response in (client.patch("/api/models/run-mine", json={"title": "x"}),
                         client.delete("/api/models/run-mine")):
            assert response.status_code == 400
            assert "not a run trained in the explorer" in response.json()["error"]
        assert other.is_dir()
        running = client.post("/api/train", json={"spec": CONV, "epochs": 100,
                                                  "batch_size": 1}).json()
        refused = client.delete(f"/api/models/{running['model_id']}")
        assert refused.status_code == 409 and "stop it before" in refused.json()["error"]
        client.post(f"/api/train/{running['job']}/stop")
        wait_until(client, running["job"], ("stopped",))


def test_missing_training_data_is_said_before_start(tmp_path, data_cache, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_DOWNLOAD_URL", "http://127.0.0.1:9/")  # refused at once
    empty = tmp_path / "empty"
    line = missing_data("mnist", str(empty))
    assert line is not None and "\n" not in line
    assert str(empty / "mnist") in line and "Start downloads them" in line
    with TestClient(create_app(runs_dir=tmp_path / "runs", data_dir=str(empty),
                               bundled_dir=tmp_path)) as client:
        assert client.get("/api/train/data/mnist").json() == {"dataset": "mnist",
                                                              "missing": line}
        assert client.get("/api/train/data/svhn").status_code == 404
        job = client.post("/api/train", json={"spec": SOFTMAX}).json()
        failed = wait_until(client, job["job"], ("error",))
        assert "\n" not in failed["error"] and "could not be downloaded" in failed["error"]
        assert "train-images-idx3-ubyte.gz" in failed["error"]
    data = write_mnist(tmp_path / "data", train=10, test=10)
    assert missing_data("mnist", str(data)) is None


def test_a_stopped_run_without_test_data_shows_its_last_validation_score():
    class NoTestSet:
        path = Path("nowhere")

        def evaluate(self, split):
            raise OSError("no test files")

    epochs = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.75}]
    score, source = stopped_score(NoTestSet(), "mnist", epochs)
    assert score == 0.75 and "last validation score (epoch 2)" in source
    assert stopped_score(NoTestSet(), "mnist", []) == (None, None)


def test_a_kept_title_is_read_safely(tmp_path):
    import os

    from convscope.server.catalog import saved_title

    assert saved_title(tmp_path) is None
    (tmp_path / "title.txt").write_bytes(b"  my\trun\x1b[31m \xff" + b"x" * 10_000)
    title = saved_title(tmp_path)
    assert title.startswith("my run") and "\x1b" not in title and len(title) == 80
    (tmp_path / "title.txt").unlink()
    os.mkfifo(tmp_path / "title.txt")  # would block a reader: not read
    assert saved_title(tmp_path) is None


def test_a_stored_test_matrix_is_checked_and_rescored():
    from convscope.server.catalog import stored_matrix

    matrix = stored_matrix([[3, 1], [0, 4]], 2)
    assert matrix["total"] == 8 and matrix["correct"] == 7 and matrix["accuracy"] == 7 / 8
    assert matrix["recall"] == [0.75, 1.0] and matrix["precision"] == [1.0, 0.8]
    assert stored_matrix([[0, 0], [0, 0]], 2)["recall"] == [None, None]
    for bad in (None, [[1, 2]], [[1, -1], [0, 1]], [[1, 2.5], [0, 1]], [[1, True], [0, 1]],
                "[[1]]", [[1, 2], [3]]):
        assert stored_matrix(bad, 2) is None
