"""convscope.optimizers: FlatAdadelta against torch.optim.Adadelta, its checkpoints, and
parameters without gradients."""

from __future__ import annotations

import pytest
import torch

from convscope.config import TrainConfig
from convscope.model import build_model
from convscope.optimizers import FlatAdadelta, make_optimizer

SPEC = [{"type": "input", "sx": 8, "sy": 8, "depth": 3},
        {"type": "conv", "sx": 3, "filters": 4, "activation": "relu"},
        {"type": "pool", "sx": 2},
        {"type": "fc", "num_neurons": 5, "activation": "relu"},
        {"type": "softmax", "num_classes": 3}]


def _net(channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_model(SPEC)
    return net.to(memory_format=torch.channels_last) if channels_last else net


def _train(net: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: range) -> None:
    for step in steps:
        generator = torch.Generator().manual_seed(step)
        x = torch.randn(6, 3, 8, 8, generator=generator)
        y = torch.randint(0, 3, (6,), generator=generator)
        loss = torch.nn.functional.cross_entropy(net(x).flatten(1), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_flat_adadelta_takes_torchs_steps(channels_last, weight_decay):
    ours, torchs = _net(channels_last), _net(channels_last)
    _train(ours, FlatAdadelta(ours.parameters(), lr=1.0, weight_decay=weight_decay), range(20))
    _train(torchs, torch.optim.Adadelta(torchs.parameters(), lr=1.0,
                                         weight_decay=weight_decay), range(20))
    for a, b, start in zip(ours.parameters(), torchs.parameters(),
                           _net(channels_last).parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        assert not torch.equal(a, start)  # it did train


def test_flat_adadelta_resumes_from_its_state_dict():
    whole, first = _net(False), _net(False)
    _train(whole, FlatAdadelta(whole.parameters(), weight_decay=1e-3), range(10))
    optimizer = FlatAdadelta(first.parameters(), weight_decay=1e-3)
    _train(first, optimizer, range(5))
    saved = {"state": {i: {k: v.clone() for k, v in s.items()}
                       for i, s in optimizer.state_dict()["state"].items()},
             "param_groups": optimizer.state_dict()["param_groups"]}
    assert set(saved["state"][0]) == {"square_avg", "acc_delta"}  # the names torch's uses
    resumed = FlatAdadelta(first.parameters(), weight_decay=1e-3)
    resumed.load_state_dict(saved)
    _train(first, resumed, range(5, 10))
    for a, b in zip(whole.parameters(), first.parameters(), strict=True):
        assert torch.equal(a, b)


def test_parameters_without_gradients_keep_their_weights_and_state():
    ours, torchs = _net(False), _net(False)
    for net in (ours, torchs):
        next(net.parameters()).requires_grad_(False)
    _train(ours, FlatAdadelta(ours.parameters()), range(5))
    _train(torchs, torch.optim.Adadelta(torchs.parameters()), range(5))
    frozen = next(ours.parameters())
    assert torch.equal(frozen, next(_net(False).parameters()))
    for a, b in zip(ours.parameters(), torchs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_the_config_picks_the_optimizer():
    params = list(_net(False).parameters())
    kinds = {name: type(make_optimizer(TrainConfig(optimizer=name, lr=0.1), params)).__name__
             for name in ("sgd", "adam", "adamw", "adadelta")}
    assert kinds == {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adadelta": "FlatAdadelta"}
