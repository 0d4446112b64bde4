"""Hostile metadata and numbers (issue 17, point 6): damaged or hostile checkpoint and model
metadata, specs nested too deep or too long, out-of-range settings and ports, and training
that diverges. Each gets a one-line error naming the problem and the fix, never a traceback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from conftest import write_mnist
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from convscope.checkpoint import load_checkpoint, load_model_weights, save_checkpoint, save_model
from convscope.cli import main
from convscope.config import TrainConfig
from convscope.errors import ConvscopeError, RunError, SpecError
from convscope.optimizers import build_optimizer
from convscope.spec import MAX_NESTING, load_spec, resolve

TINY = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
        {"type": "softmax", "num_classes": 10}]
FIX = "start a new run or resume from an intact checkpoint"
POSITION = {"epoch": 1, "step": 2, "tally": {"loss": 4.5, "correct": 10, "seen": 32,
                                              "seconds": 1.5}}


def _one_line_error(capsys: pytest.CaptureFixture, code: int, *parts: str) -> str:
    """The CLI's answer was ``code`` 2 with one ``error: ...`` line holding ``parts`` (after
    training's progress bar, where there is one) and no traceback."""
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "error: " in err, err
    line = "error: " + err.rsplit("error: ", 1)[1].splitlines()[0]
    for part in parts:
        assert part in line, line
    return line


# ---- checkpoints and model files -----------------------------------------------------------

def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def _trained(optimizer: str = "adam") -> tuple[torch.nn.Module, object]:
    """A net and its run-style optimizer (flat buffers) after two steps: state to save."""
    torch.manual_seed(0)
    net = _net()
    opt = build_optimizer(TrainConfig(optimizer=optimizer, lr=0.01), net)
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(8, 4)).square().mean().backward()
        opt.step()
    return net, opt


def _fresh(optimizer: str = "adam") -> tuple[torch.nn.Module, object]:
    net = _net()
    return net, build_optimizer(TrainConfig(optimizer=optimizer, lr=0.01), net)


def _rewrite(path: Path, tensors=None, meta=None, raw_meta: str | None = None) -> None:
    """Rewrite the checkpoint at ``path``: ``tensors(dict)`` and ``meta(dict)`` edit in place."""
    saved = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    data = json.loads(metadata["meta"])
    if tensors:
        tensors(saved)
    if meta:
        meta(data)
    metadata["meta"] = raw_meta if raw_meta is not None else json.dumps(data)
    save_file(saved, str(path), metadata=metadata)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    net, opt = _trained()
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, net, opt, POSITION)
    return path


def _load(path: Path, optimizer: str = "adam", bounds=(3, 5)) -> dict:
    net, opt = _fresh(optimizer)
    return load_checkpoint(path, net, opt, bounds=bounds)


def test_an_intact_checkpoint_loads(checkpoint: Path):
    assert _load(checkpoint) == POSITION


@pytest.mark.parametrize("raw, message", [
    ("{not json", "its metadata ('meta') is not a JSON object"),
    ("[1, 2]", "its metadata ('meta') is not a JSON object"),
    ("[" * 100_000 + "]" * 100_000, "its metadata ('meta') is not a JSON object"),
    ('{"param_groups": [], "optim_scalars": {}}', "'position' is missing"),
    ('{"position": {}, "param_groups": {}, "optim_scalars": {}}', "'param_groups' is a dict"),
    ('{"position": {}, "param_groups": [], "optim_scalars": []}', "'optim_scalars' is a list"),
])
def test_checkpoint_metadata_that_is_not_json_or_lacks_keys(checkpoint: Path, raw: str,
                                                            message: str):
    _rewrite(checkpoint, raw_meta=raw)
    with pytest.raises(RunError, match=f"{checkpoint.name}: .*{FIX}") as caught:
        _load(checkpoint)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _set_position(**changes):
    def edit(meta: dict) -> None:
        meta["position"].update(changes)
    return edit


@pytest.mark.parametrize("changes", [
    {"epoch": -1}, {"epoch": 10**30}, {"epoch": "1"}, {"epoch": 1.0}, {"epoch": True},
    {"epoch": None}, {"step": -3}, {"step": 6}, {"step": 10**9}, {"step": [2]},
    {"epoch": 3, "step": 1},  # the last epoch is done: only step 0 follows it
])
def test_hostile_positions_are_refused(checkpoint: Path, changes: dict):
    _rewrite(checkpoint, meta=_set_position(**changes))
    with pytest.raises(RunError, match=f"its position .* is outside this run \\(3 epochs of 5 "
                                       f"steps, counted from 0\\); {FIX}"):
        _load(checkpoint)


@pytest.mark.parametrize("tally", [
    None, "x", {"loss": 1.0}, {**POSITION["tally"], "seen": -1},
    {**POSITION["tally"], "loss": float("nan")}, {**POSITION["tally"], "seen": 1},
    {**POSITION["tally"], "correct": 99}, {**POSITION["tally"], "seen": 32.5},
])
def test_damaged_running_sums_are_refused(checkpoint: Path, tally):
    _rewrite(checkpoint, meta=_set_position(tally=tally))
    with pytest.raises(RunError, match=f"its running sums of the epoch .*; {FIX}"):
        _load(checkpoint)


def test_the_last_epoch_done_at_step_0_is_a_position(checkpoint: Path):
    _rewrite(checkpoint, meta=_set_position(epoch=3, step=0, tally={
        "loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}))
    assert _load(checkpoint)["epoch"] == 3


def _rename(old: str, new: str):
    def edit(tensors: dict) -> None:
        tensors[new] = tensors.pop(old)
    return edit


@pytest.mark.parametrize("edit, message", [
    (_rename("optim.0.exp_avg", "optim.99.exp_avg"), "names parameter '99'"),
    (_rename("optim.0.exp_avg", "optim.x.exp_avg"), "names parameter 'x'"),
    (_rename("optim.0.exp_avg", "optim.-1.exp_avg"), "names parameter '-1'"),
    (_rename("optim.0.exp_avg", "optim.exp_avg"), "names parameter 'exp_avg'"),
])
def test_bad_optimizer_indices_are_refused(checkpoint: Path, edit, message: str):
    _rewrite(checkpoint, tensors=edit)
    with pytest.raises(RunError, match=f"{message}, but this run's optimizer has parameters 0 "
                                       f"to 3; {FIX}"):
        _load(checkpoint)


def test_bad_optimizer_scalar_indices_are_refused(tmp_path: Path):
    net, _ = _fresh()
    sgd = torch.optim.SGD(net.parameters(), lr=0.1)  # momentum 0: the state may hold None
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, net, sgd, POSITION)
    _rewrite(path, meta=lambda meta: meta["optim_scalars"].update({"7": {"step": 1}}))
    with pytest.raises(RunError, match="names parameter '7'"):
        load_checkpoint(path, _net(), torch.optim.SGD(_net().parameters(), lr=0.1))


@pytest.mark.parametrize("optimizer, name", [("adam", "exp_avg"), ("sgd", "momentum_buffer"),
                                             ("adadelta", "square_avg")])
@pytest.mark.parametrize("bad", [torch.zeros(1), torch.zeros(5, 5), torch.zeros(3, 4).long()])
def test_optimizer_state_of_the_wrong_shape_is_refused(tmp_path: Path, optimizer: str,
                                                       name: str, bad: torch.Tensor):
    """It was accepted: a flat optimizer took a misshapen buffer as state shared by all."""
    net, opt = _trained(optimizer)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, net, opt, POSITION)
    _rewrite(path, tensors=lambda tensors: tensors.update({f"optim.0.{name}": bad}))
    with pytest.raises(RunError, match=f"its optimizer state '{name}' is a .* tensor for a 3x4 "
                                       f"float32 parameter; {FIX}"):
        _load(path, optimizer)


def test_optimizer_state_of_the_wrong_shape_is_refused_by_torch_optimizers_too(tmp_path):
    net, _ = _trained()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net(torch.randn(8, 4)).square().mean().backward()
    opt.step()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, net, opt, POSITION)
    _rewrite(path, tensors=lambda tensors: tensors.update({"optim.1.exp_avg_sq": torch.ones(7)}))
    fresh = _net()
    with pytest.raises(RunError, match="'exp_avg_sq' is a 7 float32 tensor for a 3 float32"):
        load_checkpoint(path, fresh, torch.optim.Adam(fresh.parameters(), lr=0.01))


@pytest.mark.parametrize("edit, message", [
    (lambda meta: meta["param_groups"].append({}), "it saved 2 optimizer parameter groups, "
                                                   "this run's optimizer has 1"),
    (lambda meta: meta["param_groups"][0].update(params=[0, 1]), "holds other parameters"),
    (lambda meta: meta["param_groups"][0].update(betas="fast"), "'betas' is 'fast', not a "
                                                                "list of 2 numbers"),
    (lambda meta: meta["param_groups"][0].update(lr_scale=None), "'lr_scale' is None, not a "
                                                                 "number"),
    (lambda meta: meta["param_groups"].__setitem__(0, 5), "parameter groups"),
    (lambda meta: meta["optim_scalars"].update({"0": 5}), "not a mapping"),
    (lambda meta: meta["optim_scalars"].update({"0": {"exp_avg": 5}}), "'exp_avg' holds 5"),
])
def test_hostile_optimizer_settings_are_refused(checkpoint: Path, edit, message: str):
    _rewrite(checkpoint, meta=edit)
    with pytest.raises(RunError, match=FIX) as caught:
        _load(checkpoint)
    assert message in str(caught.value)


def test_a_misshapen_lookahead_average_is_refused(tmp_path: Path):
    net, opt = _trained()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, net, opt, POSITION, extra={"average": torch.zeros(15)})
    fresh, fresh_opt = _fresh()
    with pytest.raises(RunError, match="the saved 'average' is a 15 float32 tensor, this run "
                                       "needs 3x4 float32"):
        load_checkpoint(path, fresh, fresh_opt, extra={"average": torch.zeros(3, 4)})


def test_model_metadata_that_is_not_json_is_refused(tmp_path: Path):
    path = tmp_path / "model.safetensors"
    save_model(path, _net(), {"note": "x"})
    _rewrite(path, raw_meta="{oops")
    with pytest.raises(RunError, match="model.safetensors: its metadata \\('meta'\\) is not a "
                                       "JSON object; restore an intact copy"):
        load_model_weights(path, _net())


@pytest.fixture
def squares(tmp_path: Path, data_cache: Path) -> Path:
    return write_mnist(tmp_path / "data", train=120, test=20)


def _train_args(squares: Path, tmp_path: Path, *extra: str) -> list[str]:
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(TINY))
    return ["train", "--model", str(spec), "--data", "mnist", "--data-dir", str(squares),
            "--out", str(tmp_path / "run"), "--batch-size", "16", *extra]


def test_resuming_from_a_hostile_position_is_one_line(squares: Path, tmp_path: Path, capsys):
    assert main(_train_args(squares, tmp_path, "--epochs", "2")) == 0
    run = tmp_path / "run"
    (run / "model.safetensors").unlink()  # as if killed before the end
    _rewrite(run / "checkpoint.safetensors", meta=_set_position(step=10**9))
    capsys.readouterr()
    code = main(["train", "--resume", str(run)])
    _one_line_error(capsys, code, "checkpoint.safetensors: its position (epoch 2, step "
                                  "1000000000) is outside this run (2 epochs of 6 steps", FIX)


# ---- specs ---------------------------------------------------------------------------------

def _nested(blocks: int) -> list[dict]:
    inner = [{"type": "relu"}]
    for _ in range(blocks):
        inner = [{"type": "residual", "layers": inner}]
    return [{"type": "input", "sx": 4, "sy": 4, "depth": 1}, *inner]


def _nested_yaml(blocks: int) -> str:
    lines = ["- {type: input, sx: 4, sy: 4, depth: 1}"]
    for level in range(blocks):
        lines += [f"{'  ' * level}- type: residual", f"{'  ' * level}  layers:"]
    return "\n".join([*lines, f"{'  ' * blocks}- type: relu"]) + "\n"


@pytest.mark.parametrize("source", [_nested(300), json.dumps(_nested(300)), _nested_yaml(300),
                                    _nested(MAX_NESTING + 1), "[" * 100_000 + "]" * 100_000])
def test_a_spec_nested_300_blocks_deep_is_a_spec_error(source):
    """It was a RecursionError."""
    with pytest.raises(SpecError, match=f"nested too deeply: at most {MAX_NESTING} residual "
                                        "blocks inside each other"):
        load_spec(source)


def test_resolve_checks_the_depth_too():
    with pytest.raises(SpecError, match="nested too deeply"):
        resolve(_nested(300))
    assert len(resolve(load_spec(_nested(MAX_NESTING)))) == 2


def test_a_deep_spec_file_is_one_line_from_the_cli(tmp_path: Path, capsys):
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(_nested(300)))
    _one_line_error(capsys, main(["summary", str(path)]), "nested too deeply")


def test_a_spec_of_100k_layers_is_refused_cheaply():
    flat = [{"type": "input", "sx": 4, "sy": 4, "depth": 1}, *[{"type": "relu"}] * 100_000]
    started = time.perf_counter()
    for source in (flat, json.dumps(flat)):
        with pytest.raises(SpecError, match="more than 2,000 layers"):
            load_spec(source)
        with pytest.raises(SpecError, match="more than 2,000 layers"):
            resolve(flat)
    assert time.perf_counter() - started < 1.0


def test_a_yaml_billion_laughs_spec_is_refused_cheaply():
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
        for i in range(8))
    started = time.perf_counter()
    with pytest.raises(SpecError, match="more than 100,000 values"):
        load_spec(laughs)
    assert time.perf_counter() - started < 1.0


# ---- numbers -------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, message", [
    ("--lr", "nan", "lr must be positive and finite, got nan"),
    ("--lr", "inf", "lr must be positive and finite, got inf"),
    ("--lr", "-inf", "lr must be positive and finite, got -inf"),
    ("--weight-decay", "-0.1", "weight_decay must be at least 0 and finite, got -0.1"),
    ("--weight-decay", "nan", "weight_decay must be at least 0 and finite, got nan"),
    ("--label-smoothing", "5", "label_smoothing must be in [0, 1], got 5.0"),
    ("--seed", "12345678901234567890", "seed must be in [-9223372036854775808, "
                                       "9223372036854775807], got 12345678901234567890"),
    ("--momentum", "nan", "momentum must be in [0, 1), got nan"),
    ("--momentum", "1.5", "momentum must be in [0, 1), got 1.5"),
    ("--bias-lr-scale", "inf", "bias_lr_scale must be positive and finite, got inf"),
    ("--val-fraction", "nan", "val_fraction must be in [0, 1), got nan"),
    ("--checkpoint-every", "-5", "checkpoint_every must be at least 0, got -5"),
    ("--scenes", "99999999999999999999", "scenes must be in [1, 1000000]"),
    ("--test-scenes", "0", "test_scenes must be in [1, 1000000], got 0"),
    ("--batch-size", "0", "batch_size must be at least 1, got 0"),
    ("--epochs", "-1", "epochs must be at least 1, got -1"),
])
def test_out_of_range_numbers_are_one_line_errors(tmp_path: Path, capsys, option: str,
                                                  value: str, message: str):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(TINY))
    code = main(["train", "--model", str(spec), "--out", str(tmp_path / "run"),
                 f"{option}={value}"])
    _one_line_error(capsys, code, message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("settings", [{"lr": float("nan")}, {"lr": 10**400},
                                      {"weight_decay": float("-inf")}, {"seed": -(2**63) - 1},
                                      {"label_smoothing": -0.5}])
def test_config_files_and_the_python_api_get_the_same_checks(settings: dict):
    with pytest.raises(ConvscopeError, match=f"{next(iter(settings))} must be"):
        TrainConfig.from_dict(settings)


def test_a_run_whose_config_holds_nan_is_refused(tmp_path: Path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("train:\n  lr: .nan\nmodel: {kind: spec, ref: x}\n"
                                     "data: {}\n")
    _one_line_error(capsys, main(["eval", str(run)]), "unreadable run configuration",
                    "lr must be positive and finite, got nan")


def test_the_explorer_refuses_nan_and_inf_learning_rates():
    from pydantic import ValidationError

    from convscope.server.live import TrainRequest

    for value in ("nan", "inf"):
        with pytest.raises(ValidationError):
            TrainRequest(model="mnist-convnetjs", lr=float(value))


@pytest.mark.parametrize("port", ["99999", "-1", "65536", "http", "1e3"])
def test_serve_refuses_ports_out_of_range(port: str, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--port", port])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --port: '{port}' is not a port number: use 1 to 65535, or 0" in err
    assert "Traceback" not in err


def test_training_that_diverges_stops_with_an_error(squares: Path, tmp_path: Path, capsys):
    """It exited 0 with a broken model."""
    code = main(_train_args(squares, tmp_path, "--optimizer", "sgd", "--lr", "1e38"))
    _one_line_error(capsys, code, "training diverged: the loss became nan in epoch 1",
                    "train again with a lower --lr (this run's is 1e+38)")
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_the_explorer_answers_400_to_deep_and_long_specs(tmp_path: Path):
    from fastapi.testclient import TestClient

    from convscope.server import create_app

    flat = [{"type": "input", "sx": 4, "sy": 4, "depth": 1}, *[{"type": "relu"}] * 100_000]
    with TestClient(create_app([], runs_dir=tmp_path / "runs")) as client:
        for spec, message in ((_nested(300), "nested too deeply"),
                              (flat, "more than 2,000 layers")):
            response = client.post("/api/train", json={"spec": spec})
            assert response.status_code == 400 and message in response.json()["error"]


def test_a_convnetjs_snapshot_nested_too_deeply_is_one_line(tmp_path: Path, capsys):
    """It was a RecursionError."""
    path = tmp_path / "net.json"
    path.write_text('{"layers": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code = main(["import-convnetjs", str(path), "--out", str(tmp_path / "run")])
    _one_line_error(capsys, code, "net.json: nested too deeply to be a ConvNetJS snapshot")


def test_a_batch_larger_than_the_training_set_trains(squares: Path, tmp_path: Path):
    """The one step of an epoch then has fewer examples than --batch-size; with augmentation
    its crops and flips were drawn for a whole batch (an IndexError)."""
    code = main(_train_args(squares, tmp_path, "--batch-size", "500", "--augment", "shift+flip"))
    assert code == 0 and (tmp_path / "run" / "model.safetensors").exists()


def test_a_metrics_line_that_is_not_a_record_is_one_line(squares: Path, tmp_path: Path, capsys):
    assert main(_train_args(squares, tmp_path, "--epochs", "2")) == 0
    run = tmp_path / "run"
    (run / "model.safetensors").unlink()  # as if killed before the end
    (run / "metrics.jsonl").write_text("[1, 2]\n")
    _one_line_error(capsys, main(["train", "--resume", str(run)]), "metrics.jsonl: line 1 is not "
                    "a metrics record")


def test_a_run_config_nested_too_deeply_is_one_line(squares: Path, tmp_path: Path, capsys):
    assert main(_train_args(squares, tmp_path)) == 0
    config = tmp_path / "run" / "config.yaml"
    config.write_text(config.read_text() + "deep: " + "[" * 5000 + "]" * 5000 + "\n")
    _one_line_error(capsys, main(["eval", str(tmp_path / "run")]), "config.yaml: unreadable")
