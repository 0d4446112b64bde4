"""A new layer kind, a new dataset and a new task, each added in a few lines right here: the CLI
trains with all three at once, and the explorer's API describes the run with no other edit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from test_layer_kinds import Scale

from convscope.cli import build_parser, main
from convscope.data import Dataset, DatasetEntry, register_dataset, unregister_dataset
from convscope.layer_kinds import LayerKind, number, register_layer_kind, unregister_layer_kind
from convscope.layers import register_module, unregister_module
from convscope.server import create_app
from convscope.tasks import register_task, unregister_task
from convscope.tasks.classify import Classify


def stripes(split: str, data_dir: Path) -> Dataset:
    """Two classes of 8x8 grey images: a bright row (class 0) or a bright column (class 1)."""
    n = 48 if split == "train" else 16
    images = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    labels = torch.arange(n) % 2
    for i in range(n):
        where = (i // 2) % 8
        if labels[i] == 0:
            images[i, 0, where, :] = 255
        else:
            images[i, 0, :, where] = 255
    return Dataset("stripes", images, labels, ["row", "column"])


@pytest.fixture
def extended():
    """The three additions, each a few lines, removed again after the test."""
    register_layer_kind(LayerKind("scale", {"by": number(1.0)}, ordinary=True,
                                  label=lambda p: f"scale x{p['by']:g}"))
    register_module("scale", lambda layer: Scale(layer.params["by"]))
    register_dataset(DatasetEntry("stripes", "Stripes", "images", (8, 8, 1), ("row", "column"),
                                  "none", {"train": 48, "test": 16}, loader=stripes))
    register_task(Classify("stripe-spotting", "mnist-convnetjs", "stripes", "a stripe spotter"))
    yield
    unregister_task("stripe-spotting")
    unregister_dataset("stripes")
    unregister_module("scale")
    unregister_layer_kind("scale")


def test_a_new_layer_kind_dataset_and_task_reach_the_cli_and_the_api(
        extended, tmp_path: Path, data_cache: Path, capsys: pytest.CaptureFixture) -> None:
    parsed = build_parser().parse_args(["train", "--task", "stripe-spotting"])
    assert parsed.task == "stripe-spotting"
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps([{"type": "input", "sx": 8, "sy": 8, "depth": 1},
                                {"type": "fc", "num_neurons": 4, "activation": "relu"},
                                {"type": "scale", "by": 0.5},
                                {"type": "softmax", "num_classes": 2}]))
    out = tmp_path / "runs" / "stripes"
    assert main(["summary", str(spec)]) == 0
    assert "scale x0.5  1x1x4" in capsys.readouterr().out
    assert main(["train", "--model", str(spec), "--data", "stripes", "--task", "stripe-spotting",
                 "--out", str(out), "--epochs", "2", "--batch-size", "8", "--lr", "0.01",
                 "--device", "cpu"]) == 0
    with TestClient(create_app(runs=[out], data_dir=str(tmp_path))) as client:
        models = {m["id"]: m for m in client.get("/api/models").json()["models"]}
        described = client.get(f"/api/models/{models['run-stripes']['id']}").json()
        names = {d["name"] for d in client.get("/api/datasets").json()["catalogue"]}
    assert described["task_info"]["display_name"] == "a stripe spotter"
    assert described["dataset"] == "stripes" and described["classes"] == ["row", "column"]
    assert [la["label"] for la in described["layers"]][3] == "scale x0.5"
    assert described["output_names"] == ["row", "column"]
    assert "stripes" in names
