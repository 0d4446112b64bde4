"""The chapter reproduced: the imported CIFAR-10 convnet, run as ConvNetJS runs it on training
images 1-10,000, gives the stored summary exactly; the stored summaries in convscope's form;
ConvNetJS's handling of inputs larger than the declared volume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import real_dir
from test_convnetjs_import import convnetjs_forward, ml4a_dir, vol

from convscope.convnetjs import (
    chapter_summaries,
    import_convnetjs,
    load_exact,
    predict_float64,
    read_snapshot,
    read_summary,
    reproduce,
    summary_dataset,
)
from convscope.data import load_dataset
from convscope.errors import ConvscopeError, DataError

NAMES = ["cifar10_summary_2layers", "cifar10_summary_convnet", "mnist_summary_2layers",
         "mnist_summary_convnet"]


@pytest.mark.realdata
@pytest.mark.slow
def test_the_cifar_convnet_reproduces_the_chapter_exactly(tmp_path: Path):
    folder, data_dir = ml4a_dir(), real_dir("cifar10")
    run = import_convnetjs(folder / "cifar10_snapshot_convnet.json", tmp_path / "run")
    summary = read_summary(folder / "cifar10_summary_convnet.json")
    samples = summary_dataset(summary, data_dir)
    assert summary.samples == range(1, 10_001) and len(samples) == 10_000
    result = reproduce(load_exact(run), summary, samples)
    assert result.confusion == summary.confusion
    assert result.correct == 7885
    assert (result.tops_checked, result.tops_mismatched) == (9868, 0)
    assert result.max_prob_diff <= 1e-6
    assert result.exact


def _percent(values: list[float]) -> list[int]:
    return [math.floor(100 * v + 0.5) for v in values]  # the demo rounds half up


@pytest.mark.realdata
def test_stored_summaries_in_convscope_confusion_form():
    summaries = {s["name"]: s for s in chapter_summaries(ml4a_dir().parent, samples=None)}
    assert sorted(summaries) == NAMES
    cifar = summaries["cifar10_summary_convnet"]
    assert (cifar["title"], cifar["network"]) == ("CIFAR convnet", "cifar10_snapshot_convnet.json")
    assert (cifar["correct"], cifar["total"], cifar["accuracy"]) == (7885, 10_000, 0.7885)
    assert _percent(cifar["recall"]) == [85, 91, 67, 56, 77, 73, 84, 85, 84, 87]
    assert _percent(cifar["precision"]) == [78, 88, 76, 68, 74, 67, 78, 80, 90, 89]
    assert cifar["samples"] == {"first": 1, "last": 10_000}
    assert cifar["source"].startswith("the chapter's original results")
    cell = cifar["cells"][3][5]  # cat -> dog
    assert cifar["confusion"][3][5] == 175 and 64 < len(cell) <= 175
    assert [e["confidence"] for e in cell] == sorted((e["confidence"] for e in cell), reverse=True)
    accuracies = {name: s["accuracy"] for name, s in summaries.items()}
    assert accuracies == {"cifar10_summary_2layers": 0.37, "cifar10_summary_convnet": 0.7885,
                          "mnist_summary_2layers": 0.9128, "mnist_summary_convnet": 0.9781}
    assert "9,782" in summaries["mnist_summary_convnet"]["note"]
    ordinary = summaries["cifar10_summary_2layers"]
    entries = [e for row in ordinary["cells"] for cell in row for e in cell]
    assert {"index": 50_000, "split": "test", "split_index": 0} in [
        {k: e[k] for k in ("index", "split", "split_index")} for e in entries]
    capped = chapter_summaries(ml4a_dir().parent)[0]
    assert max(len(cell) for row in capped["cells"] for cell in row) == 64


@pytest.mark.realdata
def test_summary_samples_cross_into_the_test_split():
    data_dir = real_dir("cifar10")
    summary = read_summary(ml4a_dir() / "cifar10_summary_2layers.json")
    samples = summary_dataset(summary, data_dir)
    assert summary.samples == range(40_001, 50_001) and len(samples) == 10_000
    test = load_dataset("cifar10", "test", data_dir=data_dir)
    assert torch.equal(samples.images[-1], test.images[0])
    assert int(samples.labels[-1]) == int(test.labels[0])


def _declared_4x4() -> dict:
    """4x4x1 -> conv 3x3 p1 (4x4x2) -> relu -> pool 2 (2x2x2) -> fc 3 -> softmax."""
    rng = np.random.default_rng(5)
    return {"layers": [
        {"out_sx": 4, "out_sy": 4, "out_depth": 1, "layer_type": "input"},
        {"out_sx": 4, "out_sy": 4, "out_depth": 2, "layer_type": "conv", "sx": 3, "sy": 3,
         "stride": 1, "pad": 1, "in_depth": 1,
         "filters": [vol(rng, 3, 3, 1, False) for _ in range(2)],
         "biases": vol(rng, 1, 1, 2, True)},
        {"out_sx": 4, "out_sy": 4, "out_depth": 2, "layer_type": "relu"},
        {"out_sx": 2, "out_sy": 2, "out_depth": 2, "layer_type": "pool", "sx": 2, "sy": 2,
         "stride": 2, "pad": 0, "in_depth": 2},
        {"out_sx": 1, "out_sy": 1, "out_depth": 3, "layer_type": "fc", "num_inputs": 8,
         "filters": [vol(rng, 1, 1, 8, True) for _ in range(3)],
         "biases": vol(rng, 1, 1, 3, True)},
        {"out_sx": 1, "out_sy": 1, "out_depth": 3, "layer_type": "softmax", "num_inputs": 3},
    ]}


def test_larger_inputs_centre_cropped_or_read_as_convnetjs_does():
    net = _declared_4x4()
    model = read_snapshot(net).model()
    images = torch.from_numpy(np.random.default_rng(6).integers(0, 256, (5, 1, 6, 6), np.uint8))
    x = images.double() / 255 - 0.5
    for fit, inputs in (("convnetjs", x), ("crop", x[:, :, 1:5, 1:5])):
        preds, probs = predict_float64(model, images, fit=fit)
        for i, image in enumerate(inputs):
            side = image.shape[-1]
            expected = convnetjs_forward(net, side, side, 1, image[0].flatten().numpy())[-1][3]
            assert int(preds[i]) == int(np.argmax(expected)), fit
            assert abs(float(probs[i]) - expected.max()) < 1e-12, fit
    with pytest.raises(ConvscopeError, match="fit the images to the declared input"):
        predict_float64(_fc_first(), images, fit="convnetjs")
    with pytest.raises(ConvscopeError, match="smaller than the network's declared 4x4x1 input"):
        predict_float64(model, images[..., :3, :], fit="crop")


def _fc_first():
    rng = np.random.default_rng(7)
    return read_snapshot({"layers": [
        {"out_sx": 4, "out_sy": 4, "out_depth": 1, "layer_type": "input"},
        {"out_sx": 1, "out_sy": 1, "out_depth": 3, "layer_type": "fc", "num_inputs": 16,
         "filters": [vol(rng, 1, 1, 16, False) for _ in range(3)],
         "biases": vol(rng, 1, 1, 3, False)},
        {"out_sx": 1, "out_sy": 1, "out_depth": 3, "layer_type": "softmax", "num_inputs": 3},
    ]}).model()


def test_summaries_without_the_chapter_files(tmp_path: Path):
    folder = tmp_path / "ml4a"
    folder.mkdir()
    assert chapter_summaries(tmp_path) == []
    confusion = [[0] * 10 for _ in range(10)]
    confusion[3][3], confusion[3][5], confusion[7][7] = 2, 1, 1
    tops = [[[] for _ in range(10)] for _ in range(10)]
    tops[3][3] = [{"idx": 59_998, "prob": 0.9}, {"idx": 59_999, "prob": 0.8}]
    tops[3][5] = [{"idx": 60_000, "prob": 0.6}]
    tops[7][7] = [{"idx": 60_001, "prob": 0.99}]
    (folder / "mnist_summary_tiny.json").write_text(json.dumps(
        {"confusion": confusion, "tops": tops, "correct": 3, "total": 4,
         "actuals": [], "predictions": []}))
    [summary] = chapter_summaries(tmp_path, samples=1)
    assert (summary["accuracy"], summary["samples"]) == (0.75, {"first": 59_998, "last": 60_001})
    assert summary["recall"][3] == pytest.approx(2 / 3) and summary["precision"][5] == 0.0
    assert summary["recall"][0] is None and summary["network"] is None
    assert summary["cells"][3][3] == [{"index": 59_998, "split": "train", "split_index": 59_998,
                                       "confidence": 0.9}]
    assert summary["cells"][3][5][0]["split"] == "test"
    assert summary["cells"][3][5][0]["split_index"] == 0
    bad = folder / "cifar10_summary_bad.json"
    bad.write_text('{"confusion": [[1]]')
    with pytest.raises(DataError, match="cifar10_summary_bad.json: not a ConvNetJS summary"):
        read_summary(bad)
    bad.write_text(json.dumps({"confusion": [[1]], "tops": [[[]]], "correct": 1, "total": 1}))
    with pytest.raises(DataError, match="expected a 10x10 confusion matrix"):
        read_summary(bad)
    with pytest.raises(DataError, match="starts with mnist_ or cifar10_"):
        read_summary(folder / "svhn_summary_x.json")
