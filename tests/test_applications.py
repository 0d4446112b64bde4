"""The segmentation loss (weighted cross-entropy plus soft mean IoU) and the applications
benchmark's report and quick run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import write_mnist

from convscope.config import TrainConfig
from convscope.metrics import mean_iou, segmentation_confusion
from convscope.tasks import get_task
from convscope.tasks.segment import soft_mean_iou

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import applications as bench  # noqa: E402


def _masks() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    masks = torch.full((2, 16, 16), 10)
    masks[:, 4:9, 3:7] = torch.randint(0, 10, (2, 1, 1), generator=generator)
    masks[1, 10:14, 10:15] = 3
    return masks


def test_soft_mean_iou_of_confident_scores_is_the_mean_iou():
    masks = _masks()
    pred = masks.clone()
    pred[0, 4, 3:7] = 10  # a missed row
    pred[1, 9, 10:15] = 3  # and some false positives
    logits = 100 * F.one_hot(pred, 11).permute(0, 3, 1, 2).float()
    expected = mean_iou(segmentation_confusion(pred, masks, 11))
    assert soft_mean_iou(logits, masks).item() == pytest.approx(expected, abs=1e-6)
    assert soft_mean_iou(100 * F.one_hot(masks, 11).permute(0, 3, 1, 2).float(),
                         masks).item() == pytest.approx(1.0)


def test_segment_loss_weighs_background_and_rewards_right_pixels():
    task, config, masks = get_task("segment"), TrainConfig(task="segment"), _masks()
    right = 5 * F.one_hot(masks, 11).permute(0, 3, 1, 2).float()
    wrong = 5 * F.one_hot((masks + 1) % 11, 11).permute(0, 3, 1, 2).float()
    assert task.loss(right, {"masks": masks}, config, (16, 16))[0] < \
        task.loss(wrong, {"masks": masks}, config, (16, 16))[0]
    logits = torch.zeros(2, 11, 16, 16, requires_grad=True)
    task.loss(logits, {"masks": masks}, config, (16, 16))[0].backward()
    digit, background = masks[0] < 10, masks[0] == 10
    per_digit = logits.grad[0].abs().sum(0)[digit].mean()
    per_background = logits.grad[0].abs().sum(0)[background].mean()
    assert per_background < per_digit  # a background pixel counts less than a digit pixel


def _record(task: str, data: str, seed: int, **numbers: float) -> dict:
    config = TrainConfig(task=task, data=data, epochs=2).to_dict()
    return {"task": task, "model": bench.MODELS[task], "data": data, "seed": seed,
            "train_s": 10.0 + seed, "examples_per_s": 100.0, "threads": 2, "others_cpu": 0.5,
            "load_avg": 1.5, "wall_s": 20.0, "config": config, **numbers}


def test_report_gives_medians_and_the_speaker_independent_mean():
    records = [_record("segment", "mnist", s, miou=m, iou_min=m - 0.1)
               for s, m in enumerate([0.8, 0.9, 0.85])]
    records += [_record("audio", "fsdd", 0, accuracy=0.97)]
    records += [_record("audio", f"fsdd-holdout-{name}", 0, accuracy=a)
                for name, a in (("ann", 0.6), ("bob", 0.8))]
    text = bench.report(records, quick=False)
    assert "| segmentation | mnist-unet | 5,000 test scenes |" in text
    assert "| mean IoU (11 classes) | 3 | 0.8500 | 0.8000 - 0.9000 | 11 | 100 |" in text
    assert "| lowest class IoU | 3 | 0.7500 | 0.7000 - 0.8000 |" in text
    assert "| official test takes 0-4 |" in text and "| 97.00 |" in text
    assert "each of 2 speakers held out, mean" in text and "| 70.00 |" in text
    assert "(median over seeds): ann 60.0%, bob 80.0%." in text
    assert "Quick smoke run" not in text and "Detection speed" not in text


def test_the_table_keeps_the_latest_run_per_seed_with_the_latest_settings():
    old = _record("segment", "mnist", 0, miou=0.5, iou_min=0.4)
    old["config"]["epochs"] = 1
    rerun = [_record("segment", "mnist", 0, miou=m, iou_min=0.7) for m in (0.81, 0.83)]
    kept = bench.latest_runs([old, *rerun, _record("segment", "mnist", 1, miou=0.9, iou_min=0.8),
                              _record("audio", "fsdd", 0, accuracy=0.97)])
    assert sorted((r["task"], r["seed"], r.get("miou")) for r in kept) == \
        [("audio", 0, None), ("segment", 0, 0.83), ("segment", 1, 0.9)]
    assert "| 2 | 0.8650 |" in bench.report([old, *rerun, kept[1]], quick=False)


def test_a_quick_detection_run_trains_records_and_times_frames(tmp_path, data_cache,
                                                               monkeypatch):
    digits = write_mnist(tmp_path / "data", train=100, test=40)
    monkeypatch.setattr(bench, "QUICK", {"scenes": 40, "test_scenes": 10, "epochs": 1})
    monkeypatch.setattr(bench, "FPS_PASSES", {1: 2, 32: 1})
    args = bench.argparse.Namespace(quick=True, out=str(tmp_path / "runs"),
                                    data_dir=str(digits))
    record = bench.train_one("detect", "mnist", 0, args)
    assert (tmp_path / "runs" / "detect-mnist-seed0" / "results.json").exists()
    assert record["examples_per_s"] > 0 and record["train_s"] > 0
    assert record["config"]["scenes"] == 40 and record["config"]["test_scenes"] == 10
    assert 0 <= record["map50"] <= 1 and 0 <= record["ap50_min"] <= record["map50"]
    assert record["fps_batch1"] > 0 and record["fps_batch32"] > 0
    text = bench.report([record], quick=True)
    assert "Quick smoke run" in text and "| detection | mnist-yolo | 10 test scenes |" in text
    assert "frames/s at batch 1" in text
