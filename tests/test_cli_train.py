"""The CLI's train options, generated from TrainConfig's fields, and `models --recipe`."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import write_mnist

from convscope.cli import build_parser, main
from convscope.config import TrainConfig, allowed_values
from convscope.errors import ConvscopeError
from convscope.registry import get_model_entry


def _train_options() -> dict:
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    return {action.dest: action for action in train._actions}


def test_every_setting_is_a_train_option_with_help_and_its_allowed_values():
    options = _train_options()
    table = allowed_values()
    for field in dataclasses.fields(TrainConfig):
        option = options[field.name]
        assert option.help and len(option.help) > 10, field.name
        assert option.default is None  # unset: the model's recipe decides
        if field.name in table and field.name != "task":
            assert tuple(option.choices) == table[field.name], field.name
    assert "--nesterov" in options["nesterov"].option_strings
    assert "--no-nesterov" in options["nesterov"].option_strings


def test_nesterov_and_friends_reach_the_run(tmp_path: Path, data_cache: Path):
    data = write_mnist(tmp_path / "data", train=200, test=50)
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps([{"type": "input", "sx": 28, "sy": 28, "depth": 1},
                                {"type": "softmax", "num_classes": 10}]))
    out = tmp_path / "run"
    assert main(["train", "--model", str(spec), "--data", "mnist", "--data-dir", str(data),
                 "--out", str(out), "--optimizer", "sgd", "--no-nesterov", "--lr", "0.05",
                 "--batch-size", "32", "--checkpoint-every", "2"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert (saved["nesterov"], saved["lr"], saved["optimizer"]) == (False, 0.05, "sgd")
    assert (saved["batch_size"], saved["checkpoint_every"]) == (32, 2)


def test_models_shows_a_named_models_recipe(capsys: pytest.CaptureFixture):
    assert main(["models", "--recipe", "mnist-fast"]) == 0
    text = capsys.readouterr().out
    recipe = get_model_entry("mnist-fast").recipe
    for key, value in recipe.items():
        assert f"* --{key.replace('_', '-'):<18} {value}" in text
    assert "  --val-fraction       0.1" in text  # a default, unmarked


def test_recipe_stays_an_alias_of_model():
    args = build_parser().parse_args(["train", "--recipe", "mnist-fast", "--nesterov"])
    assert (args.model, args.nesterov, args.lr) == ("mnist-fast", True, None)


def test_validation_reads_the_same_table():
    for name, allowed in allowed_values().items():
        if name != "augment":
            expected = f"{name} 'nope' is not one of: {', '.join(allowed)}"
            with pytest.raises(ConvscopeError, match=re.escape(expected)):
                TrainConfig(**{name: "nope"})
