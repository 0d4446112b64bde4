"""The Runs page's API (server/routes/runs.py): every run the explorer knows with its settings
and scores, one run's curves from metrics.jsonl and steps.jsonl, and damaged runs listed with
their reason instead of breaking the list."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

import convscope
from convscope.bundle import BUNDLED
from convscope.server import create_app
from convscope.server.routes.runs import MAX_POINTS, thinned

TINY = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
        {"type": "softmax", "num_classes": 10}]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """A tiny run given with --runs, a copy of it in the runs directory whose steps log is
    long, one with a damaged metrics line, one still training (no weights) in live/."""
    from conftest import write_mnist

    root = tmp_path_factory.mktemp("runs-page")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVSCOPE_CACHE", str(root / "cache"))
        data = write_mnist(root / "data", train=200, test=50)
        torch.manual_seed(0)
        given = convscope.train(TINY, "mnist", out=root / "given", data_dir=str(data), epochs=2,
                                batch_size=16, lr=0.01, log_every=2, progress=False).path
        runs = root / "runs"
        long_steps = runs / "long-steps"
        shutil.copytree(given, long_steps)
        (long_steps / "steps.jsonl").write_text("".join(
            json.dumps({"epoch": 1 + i // 3000, "step": i % 3000, "steps_per_epoch": 3000,
                        "global_step": i, "loss": 1.0 / (1 + i), "lr": 0.01}) + "\n"
            for i in range(5000)))
        damaged = runs / "damaged"
        shutil.copytree(given, damaged)
        (damaged / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 0.5}\nnot json\n')
        training = runs / "live" / "spec-1234"
        training.mkdir(parents=True)
        shutil.copy(given / "config.yaml", training / "config.yaml")
        (training / "metrics.jsonl").write_text(
            '{"epoch": 1, "train_loss": 2.0, "val_acc": 0.25, "odd": "text", "inf": Infinity}\n')
        app = create_app([given], runs_dir=runs, data_dir=str(data), bundled_dir=BUNDLED)
        with TestClient(app) as client:
            yield {"client": client, "given": given, "runs": runs}


def rows_by_name(client: TestClient) -> dict[str, dict]:
    body = client.get("/api/runs").json()
    return {row["name"]: row for row in body["runs"]}


def test_lists_given_scanned_live_and_bundled_runs(world):
    rows = rows_by_name(world["client"])
    assert {"given", "long-steps", "damaged", "spec-1234", "mnist-convnetjs"} <= rows.keys()
    given = rows["given"]
    assert given["kind"] == "run" and given["model_id"] == given["id"]
    assert given["model"] == "spec, 2 layers"
    assert given["settings"]["lr"] == 0.01 and given["settings"]["batch_size"] == 16
    assert given["settings"]["epochs"] == 2 and given["epochs_done"] == 2
    results = json.loads((world["given"] / "results.json").read_text())
    assert given["metric"] == {"name": "accuracy", "label": "accuracy",
                               "value": results["test"]["accuracy"]}
    assert given["finished"] is True
    bundled = rows["mnist-convnetjs"]
    assert bundled["model"] == "mnist-convnetjs"
    assert bundled["kind"] == "bundled" and bundled["metric"]["value"] == pytest.approx(0.9878)
    training = rows["spec-1234"]
    assert training["kind"] == "live" and training["model_id"] is None
    assert training["finished"] is False and training["epochs_done"] == 1
    assert training["last"] == {"epoch": 1, "train_loss": 2.0, "val_acc": 0.25}  # numbers only


def test_a_damaged_run_is_listed_with_its_reason(world):
    damaged = rows_by_name(world["client"])["damaged"]
    assert "line 2 is not a metrics record" in damaged["error"]
    assert "settings" not in damaged
    response = world["client"].get(f"/api/runs/{damaged['id']}/curves")
    assert response.status_code == 409 and "line 2" in response.json()["error"]


def test_curves_of_a_run(world):
    client = world["client"]
    given = rows_by_name(client)["given"]
    curves = client.get(f"/api/runs/{given['id']}/curves").json()
    lines = (world["given"] / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines]
    assert [e["epoch"] for e in curves["epochs"]] == [1, 2]
    assert curves["epochs"][-1]["train_loss"] == pytest.approx(metrics[-1]["train_loss"])
    assert curves["epochs"][-1]["val_acc"] == pytest.approx(metrics[-1]["val_acc"])
    logged = (world["given"] / "steps.jsonl").read_text().splitlines()
    assert curves["steps_total"] == len(logged) > 2
    assert curves["steps"][0]["loss"] == pytest.approx(json.loads(logged[0])["loss"])


def test_long_step_logs_are_thinned_to_the_limit(world):
    client = world["client"]
    row = rows_by_name(client)["long-steps"]
    curves = client.get(f"/api/runs/{row['id']}/curves").json()
    assert curves["steps_total"] == 5000 and len(curves["steps"]) == MAX_POINTS
    assert curves["steps"][0]["global_step"] == 0 and curves["steps"][-1]["global_step"] == 4999
    steps = [s["global_step"] for s in curves["steps"]]
    assert steps == sorted(set(steps))  # evenly spaced, none twice


def test_thinned_keeps_short_logs_whole():
    lines = [{"epoch": i} for i in range(10)]
    assert thinned(lines, 10) == lines
    assert thinned(lines, 4) == [lines[0], lines[3], lines[6], lines[9]]


def test_ids_are_stable_and_unknown_ones_404(world):
    client = world["client"]
    first = [row["id"] for row in client.get("/api/runs").json()["runs"]]
    assert first == [row["id"] for row in client.get("/api/runs").json()["runs"]]
    assert len(set(first)) == len(first)
    response = client.get("/api/runs/no-such-run/curves")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown run 'no-such-run'; the Runs page lists the "
                                        "runs on offer"}


def test_no_runs_directory_lists_the_bundled_models(tmp_path: Path):
    with TestClient(create_app(runs_dir=tmp_path / "none", bundled_dir=BUNDLED)) as client:
        rows = client.get("/api/runs").json()["runs"]
    assert {row["kind"] for row in rows} == {"bundled"}
    assert all(row["epochs_done"] >= 1 and row["metric"]["value"] for row in rows)
