"""convscope.device: device choice and the run's precision as autocast."""

from __future__ import annotations

import pytest
import torch

from convscope.device import autocast_for, model_device, native_bf16, pick_device
from convscope.errors import ConvscopeError


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConvscopeError, match="unknown device 'tpu'"):
        pick_device("tpu")


def test_autocast_follows_the_precision_and_switches_off_an_enclosing_one():
    net = torch.nn.Linear(4, 2)
    assert model_device(net) == torch.device("cpu")
    x = torch.ones(1, 4)
    with autocast_for("bf16", net):
        assert net(x).dtype == torch.bfloat16
        with autocast_for("fp32", torch.device("cpu")):
            assert net(x).dtype == torch.float32
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")


def test_native_bf16_is_a_yes_or_no():
    assert isinstance(native_bf16(torch.device("cpu")), bool)
