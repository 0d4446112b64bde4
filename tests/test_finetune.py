"""Fine-tuning (``--init-from``, ``--num-classes``, ``--freeze``) on real images: cats and ships
of the CIFAR-10 test images bundled with convscope, as a 2-class PNG folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from torch import nn

import convscope
from convscope.bundle import bundled_model_dirs, bundled_sample
from convscope.callbacks import Callback
from convscope.checkpoint import read_model_tensors
from convscope.cli import main
from convscope.errors import ConvscopeError
from convscope.runs import CHECKPOINT, CONFIG, MODEL, RESULTS, load_run

SOURCE = "cifar10-convnetjs"
OUTPUT = "blocks.10"  # its output layer: the fc its softmax puts before itself
QUICK = {"epochs": 1, "batch_size": 8, "progress": False}


@pytest.fixture
def folder(tmp_path: Path, data_cache: Path) -> Path:
    """30 cats and 30 ships as PNG files; the ships enlarged to 48x48 (fitted back to 32x32)."""
    sample = bundled_sample("cifar10")
    root = tmp_path / "pets"
    for label, name, side in ((3, "cat", 32), (8, "ship", 48)):
        (root / name).mkdir(parents=True)
        for i in (sample.labels == label).nonzero().flatten().tolist():
            image = Image.fromarray(sample.images[i].permute(1, 2, 0).numpy())
            image.resize((side, side), Image.BILINEAR).save(root / name / f"{i}.png")
    return root


def source_tensors() -> dict[str, torch.Tensor]:
    return read_model_tensors(bundled_model_dirs()[SOURCE] / MODEL)


class AtStart(Callback):
    """Keeps a copy of the weights training starts from."""

    def on_start(self, session) -> None:
        self.weights = {k: v.detach().clone() for k, v in session.module.state_dict().items()}


class StopAfter(Callback):
    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step(self, session, event: dict) -> bool:
        return event["step"] < self.steps


def test_init_from_a_bundled_name_keeps_all_but_a_fresh_output_layer(
        folder: Path, tmp_path: Path) -> None:
    start = AtStart()
    run = convscope.train(init_from=SOURCE, data=str(folder), out=tmp_path / "run",
                          callbacks=[start], **QUICK)
    source = source_tensors()
    assert start.weights.keys() == source.keys()
    for key, value in start.weights.items():
        if key.startswith(OUTPUT):
            assert value.shape[0] == 2 and value.shape != source[key].shape
        else:
            assert torch.equal(value, source[key]), key
    assert run.model(torch.zeros(1, 3, 32, 32)).shape == (1, 2)
    recorded = yaml.safe_load((run.path / CONFIG).read_text())
    digest = hashlib.sha256((bundled_model_dirs()[SOURCE] / MODEL).read_bytes()).hexdigest()
    assert recorded["train"]["init_from"] == SOURCE
    assert recorded["train"]["image_size"] == "32x32"  # the ships were fitted to the input
    assert recorded["model"]["init"] == {"from": SOURCE, "weights_sha256": digest}
    assert recorded["data"]["classes"] == ["cat", "ship"]
    reloaded = load_run(run.path).model  # from the run alone: 2 outputs
    assert reloaded(torch.zeros(1, 3, 32, 32)).shape == (1, 2)


def test_freeze_features_trains_only_the_output_layer(folder: Path, tmp_path: Path) -> None:
    run = convscope.train(init_from=SOURCE, data=str(folder), freeze="features", lr=0.01,
                          out=tmp_path / "run", **QUICK)
    final, source = read_model_tensors(run.path / MODEL), source_tensors()
    for key, value in final.items():
        if not key.startswith(OUTPUT):
            assert torch.equal(value, source[key]), key
    assert final[f"{OUTPUT}.weight"].shape == (2, 320)
    free = convscope.train(init_from=SOURCE, data=str(folder), lr=0.01, out=tmp_path / "free",
                           **QUICK)
    changed = read_model_tensors(free.path / MODEL)["blocks.1.weight"]
    assert not torch.equal(changed, source["blocks.1.weight"])  # unfrozen, they learn


def test_a_model_that_does_not_match_the_source_is_one_line(
        folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "wider.yaml"
    layers = load_run(bundled_model_dirs()[SOURCE]).model_info["spec"]
    layers[1]["filters"] = 12
    spec.write_text(yaml.safe_dump({"layers": layers}))
    for model in (str(spec), "mnist-convnetjs"):
        code = main(["train", "--init-from", SOURCE, "--model", model, "--data", str(folder),
                     "--epochs", "1", "--out", str(tmp_path / "never")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"error: --model {model} does not match --init-from {SOURCE}")
        assert "blocks.1." in err
    assert not (tmp_path / "never" / MODEL).exists()
    same = main(["train", "--init-from", SOURCE, "--model", SOURCE, "--data", str(folder),
                 "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "same")])
    assert same == 0 and (tmp_path / "same" / RESULTS).exists()


def test_source_errors_are_one_line(folder: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    for source, expected in ((str(tmp_path / "missing"), "no such run directory"),
                             ("mnist-convnetjs", "1-channel input but the data has 3")):
        code = main(["train", "--init-from", source, "--data", str(folder), "--out",
                     str(tmp_path / "never")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and expected in err, err


def test_resume_of_a_fine_tuned_run_replays_it_exactly(folder: Path, tmp_path: Path) -> None:
    settings = {"init_from": SOURCE, "data": str(folder), "freeze": "features", **QUICK}
    whole = convscope.train(out=tmp_path / "whole", **settings)
    stopped = convscope.train(out=tmp_path / "stopped", callbacks=[StopAfter(2)], **settings)
    assert (stopped.path / CHECKPOINT).exists() and stopped.results is None
    resumed = convscope.resume(stopped.path, progress=False)
    assert resumed.results["val"]["accuracy"] == whole.results["val"]["accuracy"]
    expected = read_model_tensors(whole.path / MODEL)
    for key, value in read_model_tensors(resumed.path / MODEL).items():
        assert torch.equal(value, expected[key]), key
    # killed before its first checkpoint: the resume starts from the source's weights again
    crashed = convscope.train(out=tmp_path / "crashed", callbacks=[StopAfter(1)], **settings)
    (crashed.path / CHECKPOINT).unlink()
    (crashed.path / MODEL).unlink()
    again = convscope.resume(crashed.path, progress=False)
    for key, value in read_model_tensors(again.path / MODEL).items():
        assert torch.equal(value, expected[key]), key


def test_resume_refuses_a_source_whose_weights_changed(folder: Path, tmp_path: Path) -> None:
    first = convscope.train(init_from=SOURCE, data=str(folder), out=tmp_path / "first", **QUICK)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (CONFIG, MODEL):
        (copy / name).write_bytes((first.path / name).read_bytes())
    run = convscope.train(init_from=str(copy), data=str(folder), out=tmp_path / "second",
                          callbacks=[StopAfter(1)], **QUICK)
    assert yaml.safe_load((run.path / CONFIG).read_text())["train"]["init_from"] == str(copy)
    (run.path / CHECKPOINT).unlink()
    (run.path / MODEL).unlink()
    convscope.train(init_from=SOURCE, data=str(folder), out=tmp_path / "other", seed=1,
                    **QUICK)  # other weights
    (copy / MODEL).write_bytes((tmp_path / "other" / MODEL).read_bytes())
    with pytest.raises(ConvscopeError, match="sha256 differs"):
        convscope.resume(run.path, progress=False)


def test_num_classes_sizes_a_registered_model_to_the_data(
        folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--model", SOURCE, "--data", str(folder), "--num-classes", "2",
                 "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "two")])
    assert code == 0
    run = load_run(tmp_path / "two")
    assert run.model_info["spec"][-1] == {"type": "softmax", "num_classes": 2}
    assert run.model(torch.zeros(1, 3, 32, 32)).shape == (1, 2)
    inferred = convscope.train(SOURCE, str(folder), out=tmp_path / "inferred", **QUICK)
    assert inferred.model_info["spec"][-1]["num_classes"] == 2
    capsys.readouterr()
    code = main(["train", "--model", SOURCE, "--data", str(folder), "--num-classes", "3",
                 "--out", str(tmp_path / "never")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "num_classes is 3 but" in err and len(err.splitlines()) == 1
    with pytest.raises(ConvscopeError, match="resizes a spec network"):
        convscope.train(nn.Sequential(nn.Flatten(), nn.Linear(3072, 2)), str(folder),
                        num_classes=2, out=tmp_path / "module", **QUICK)


def test_a_module_is_fine_tuned_from_a_module_run(folder: Path, tmp_path: Path) -> None:
    def net() -> nn.Module:
        torch.manual_seed(1)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                             nn.Flatten(), nn.Linear(16, 2))

    first = convscope.train(net(), str(folder), out=tmp_path / "first", **QUICK)
    with pytest.raises(ConvscopeError, match="its model is Python code"):
        convscope.train(init_from=str(first.path), data=str(folder), out=tmp_path / "x", **QUICK)
    start = AtStart()
    convscope.train(net(), str(folder), init_from=str(first.path), out=tmp_path / "second",
                    callbacks=[start], **QUICK)
    for key, value in read_model_tensors(first.path / MODEL).items():
        assert torch.equal(start.weights[key], value), key


def test_a_damaged_source_is_one_line(folder: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / "damaged"
    source.mkdir()
    (source / CONFIG).write_bytes((bundled_model_dirs()[SOURCE] / CONFIG).read_bytes())
    for weights, expected in ((None, "has no model.safetensors yet"),
                              (b"not weights", "not a safetensors file")):
        if weights is not None:
            (source / MODEL).write_bytes(weights)
        code = main(["train", "--init-from", str(source), "--data", str(folder), "--out",
                     str(tmp_path / "never")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
