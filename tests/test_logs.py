"""Training logs: steps.jsonl every --log-every steps, val_loss per epoch, results.csv and the
TensorBoard writer (convscope.logs)."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import write_mnist

import convscope
from convscope.augment import fit_batch, prepare_images, to_input
from convscope.cli import build_parser, main
from convscope.config import TrainConfig
from convscope.data.load import train_and_val
from convscope.logs import results_csv
from convscope.optimizers import learning_rate

NET = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
       {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
       {"type": "pool", "sx": 2},
       {"type": "softmax", "num_classes": 10}]


@pytest.fixture
def squares(tmp_path: Path, data_cache: Path) -> Path:
    return write_mnist(tmp_path / "data", train=200, test=50)  # 180 train: 11 steps of 16


def _settings(data: Path, **extra) -> dict:
    return {"data_dir": str(data), "epochs": 2, "batch_size": 16, "lr": 0.01, "augment": "none",
            "progress": False, **extra}


def _val_loss_of(model: torch.nn.Module, data: Path) -> float:
    """Cross-entropy of ``model`` on the run's validation split, computed here."""
    _, val_set = train_and_val("mnist", 0.1, str(data))
    images = fit_batch(prepare_images(val_set.images, 28, 28, 1), 28, 28)
    was = model.training
    model.eval()
    with torch.no_grad():
        loss = F.cross_entropy(model(to_input(images)).float(), val_set.labels)
    model.train(was)
    return float(loss)


def test_steps_val_loss_and_results_csv(squares: Path, tmp_path: Path):
    checked = []

    def on_event(event: dict) -> None:
        if event["kind"] == "epoch":  # the model as it was validated
            checked.append((event["val_loss"], _val_loss_of(event["model"], squares)))

    run = convscope.train(NET, "mnist", out=tmp_path / "run", log_every=5, log="csv",
                          schedule="cosine", on_event=on_event, **_settings(squares))
    steps = [json.loads(x) for x in (run.path / "steps.jsonl").read_text().splitlines()]
    assert [s["global_step"] for s in steps] == [5, 10, 15, 20]  # 22 steps in all
    assert [(s["epoch"], s["step"]) for s in steps] == [(1, 5), (1, 10), (2, 4), (2, 9)]
    assert {s["steps_per_epoch"] for s in steps} == {11}
    assert all(s["kind"] == "step" and math.isfinite(s["loss"]) and s["loss"] > 0
               for s in steps)
    config = run.config
    assert [s["lr"] for s in steps] == pytest.approx(
        [learning_rate(config, s["global_step"] - 1, 22) for s in steps])
    assert steps[0]["lr"] > steps[-1]["lr"]  # cosine
    assert run.steps == steps == convscope.load_run(run.path).steps

    assert len(checked) == 2
    for logged, computed in checked:
        assert logged == pytest.approx(computed, rel=1e-5)
    assert [m["val_loss"] for m in run.metrics] == [v for v, _ in checked]

    rows = list(csv.DictReader((run.path / "results.csv").open()))
    assert list(rows[0]) == ["epoch", "time", "train/loss", "train/accuracy",
                             "metrics/accuracy_top1", "val/loss", "lr/pg0"]
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row, line in zip(rows, run.metrics, strict=True):
        assert float(row["val/loss"]) == pytest.approx(line["val_loss"], rel=1e-5)
        assert float(row["metrics/accuracy_top1"]) == pytest.approx(line["val_acc"], rel=1e-5)
        assert float(row["train/loss"]) == pytest.approx(line["train_loss"], rel=1e-5)
    assert float(rows[1]["time"]) == pytest.approx(sum(m["seconds"] for m in run.metrics),
                                                   rel=1e-5)


def test_a_resumed_run_logs_the_steps_an_uninterrupted_one_does(squares: Path, tmp_path: Path):
    whole = convscope.train(NET, "mnist", out=tmp_path / "whole", log_every=5, log="csv",
                            **_settings(squares))
    stopped = convscope.train(  # stops after global step 15 (epoch 2, step 4)
        NET, "mnist", out=tmp_path / "part", log_every=5, log="csv", **_settings(squares),
        on_event=lambda e: not (e["kind"] == "step" and e["epoch"] == 1 and e["step"] == 4))
    assert [s["global_step"] for s in stopped.steps] == [5, 10, 15]
    # a line logged after the last checkpoint by a run that was then killed
    with (stopped.path / "steps.jsonl").open("a") as f:
        f.write(json.dumps({"kind": "step", "epoch": 2, "step": 9, "global_step": 20,
                            "loss": 99.0, "lr": 0.01}) + "\n")
    resumed = convscope.resume(stopped.path, progress=False)
    assert [s["global_step"] for s in resumed.steps] == [5, 10, 15, 20]
    for one, two in zip(whole.steps, resumed.steps, strict=True):
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert (resumed.path / "results.csv").read_text().count("\n") == 3  # header + 2 epochs


def test_log_every_zero_writes_no_steps_and_no_csv_by_default(squares: Path, tmp_path: Path):
    run = convscope.train(NET, "mnist", out=tmp_path / "run", log_every=0,
                          **_settings(squares, epochs=1))
    assert not (run.path / "steps.jsonl").exists() and run.steps == []
    assert not (run.path / "results.csv").exists()
    assert "val_loss" in run.metrics[0]


def test_no_validation_split_means_no_val_loss(squares: Path, tmp_path: Path):
    run = convscope.train(NET, "mnist", out=tmp_path / "run", val_fraction=0.0, log="csv",
                          **_settings(squares, epochs=1))
    assert "val_loss" not in run.metrics[0]
    header = (run.path / "results.csv").read_text().splitlines()[0]
    assert "val/loss" not in header and header.startswith("epoch,time,train/loss")


def test_results_csv_names_a_tasks_metric_and_leaves_missing_numbers_empty():
    text = results_csv([{"epoch": 1, "train_loss": 0.5, "lr": 0.1, "seconds": 2.0},
                        {"epoch": 2, "train_loss": 0.25, "val_loss": 0.3, "val_map50": 0.75,
                         "lr": 0.05, "seconds": 4.0}], "map50")
    assert text.splitlines() == ["epoch,time,train/loss,val/loss,lr/pg0,metrics/map50",
                                 "1,2,0.5,,0.1,", "2,6,0.25,0.3,0.05,0.75"]  # time: so far


def test_log_tensorboard_without_the_package_is_one_line(squares: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as on a machine without it
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "run"
    code = main(["train", "--model", "mnist-convnetjs", "--data-dir", str(squares),
                 "--log", "tensorboard", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "pip install tensorboard" in err and "Traceback" not in err
    assert not (out / "config.yaml").exists()


def test_log_tensorboard_writes_scalars(squares: Path, tmp_path: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = convscope.train(NET, "mnist", out=tmp_path / "run", log_every=5,
                          log="csv+tensorboard", **_settings(squares))
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    loss = events.Scalars("train/loss_step")
    assert [e.step for e in loss] == [5, 10, 15, 20]
    assert [e.value for e in loss] == pytest.approx([s["loss"] for s in run.steps], rel=1e-5)
    assert [e.value for e in events.Scalars("val/loss")] == pytest.approx(
        [m["val_loss"] for m in run.metrics], rel=1e-5)


def test_the_log_options_are_train_settings_with_help():
    text = build_parser().parse_args(["train", "--log", "csv", "--log-every", "7"])
    assert (text.log, text.log_every) == ("csv", 7)
    assert TrainConfig().log == "none" and TrainConfig().log_every == 50
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--log", "wandb"])
    with pytest.raises(convscope.errors.ConvscopeError, match="log_every must be at least 0"):
        TrainConfig(log_every=-1)


def test_a_damaged_steps_log_stops_a_resume_with_one_line(squares: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture):
    stopped = convscope.train(NET, "mnist", out=tmp_path / "run", log_every=5,
                              on_event=lambda e: e["kind"] != "epoch", **_settings(squares))
    (stopped.path / "steps.jsonl").write_text('{"kind": "step", "epoch": 1}\nnot json\n')
    assert main(["train", "--resume", str(stopped.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "steps.jsonl: line 2 is not" in err
    assert "restore the file or delete that line" in err


def test_a_scene_task_logs_its_val_loss_and_metric(tmp_path: Path, data_cache: Path):
    from test_tasks import LOCALIZER, SMALL

    data = write_mnist(tmp_path / "data", train=300, test=100)
    run = convscope.train(LOCALIZER, task="localize", out=tmp_path / "run", data_dir=str(data),
                          log="csv", log_every=2, **SMALL)
    line = run.metrics[-1]
    assert math.isfinite(line["val_loss"]) and line["val_loss"] > 0
    rows = list(csv.DictReader((run.path / "results.csv").open()))
    assert float(rows[0]["metrics/mean_iou"]) == pytest.approx(line["val_mean_iou"], rel=1e-5)
    assert float(rows[0]["val/loss"]) == pytest.approx(line["val_loss"], rel=1e-5)
    assert [s["global_step"] for s in run.steps] == [2, 4]  # 96 scenes, 20 a step
