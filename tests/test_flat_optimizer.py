"""FlatOptimizer steps a group's parameters as one tensor: checked against the torch optimizer
on the same parameters, step for step and state for state (exactly: the same element-wise ops
on the same numbers), and through a checkpoint."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from convscope.checkpoint import load_checkpoint, save_checkpoint
from convscope.config import TrainConfig
from convscope.flat_optimizer import FlatOptimizer, can_flatten
from convscope.model import build_model
from convscope.optimizers import build_optimizer, make_optimizer, param_groups

SPEC = [{"type": "input", "sx": 8, "sy": 8, "depth": 3},
        {"type": "conv", "sx": 3, "filters": 6, "pad": 1, "stride": 1},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "pool", "sx": 2, "stride": 2},
        {"type": "softmax", "num_classes": 5}]
CONFIGS = {
    "sgd": TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": TrainConfig(optimizer="adam", lr=1e-2, weight_decay=1e-4),
    "adamw": TrainConfig(optimizer="adamw", lr=1e-2, weight_decay=1e-2),
    "adadelta": TrainConfig(optimizer="adadelta", lr=1.0, weight_decay=5e-5),
    "sgd, faster shifts": TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9,
                                      weight_decay=1e-3, bias_lr_scale=8.0),
}


def _pair(config: TrainConfig):
    """The same channels_last net twice: one under the torch optimizer, one under FlatOptimizer."""
    torch.manual_seed(0)
    plain_net = build_model(SPEC).to(memory_format=torch.channels_last)
    flat_net = copy.deepcopy(plain_net)
    plain = make_optimizer(config, param_groups(config, plain_net))
    flat = FlatOptimizer(param_groups(config, flat_net), lambda g: make_optimizer(config, g))
    return (plain_net, plain), (flat_net, flat)


def _train(net, optimizer, steps: int, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(4, 3, 8, 8, generator=generator)
        y = torch.randint(0, 5, (4,), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x.contiguous(memory_format=torch.channels_last)), y).backward()
        optimizer.step()


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize("name", list(CONFIGS))
def test_steps_and_state_match_the_torch_optimizer(name: str):
    (plain_net, plain), (flat_net, flat) = _pair(CONFIGS[name])
    _train(plain_net, plain, 6)
    _train(flat_net, flat, 6)
    _assert_same(plain_net, flat_net)
    ours, theirs = flat.state_dict(), plain.state_dict()
    assert ours["param_groups"] == theirs["param_groups"]
    assert ours["state"].keys() == theirs["state"].keys()
    for index, state in theirs["state"].items():
        assert ours["state"][index].keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(ours["state"][index][key], value), (index, key)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_torch_optimizer_state_loads_and_training_goes_on_alike(name: str):
    (plain_net, plain), (flat_net, flat) = _pair(CONFIGS[name])
    _train(plain_net, plain, 3)
    flat_net.load_state_dict(plain_net.state_dict())
    flat.load_state_dict(plain.state_dict())
    _train(plain_net, plain, 3, seed=2)
    _train(flat_net, flat, 3, seed=2)
    _assert_same(plain_net, flat_net)


def test_parameters_become_views_of_one_buffer_and_keep_their_layout():
    config = CONFIGS["sgd"]
    (_, _), (net, flat) = _pair(config)
    buffer = flat.param_groups[0]["params"][0]
    assert buffer.numel() == sum(p.numel() for p in net.parameters())
    conv = net.blocks[1].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert all(p.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr()
               for p in net.parameters())
    _train(net, flat, 1)
    assert all(p.grad.abs().sum() > 0 for p in net.parameters())
    flat.zero_grad()
    assert all(p.grad is not None and p.grad.abs().sum() == 0 for p in net.parameters())


def test_a_checkpoint_of_a_flat_run_resumes_identically(tmp_path):
    config = CONFIGS["adam"]
    (_, _), (net, flat) = _pair(config)
    _train(net, flat, 3)
    save_checkpoint(tmp_path / "c.safetensors", net, flat, {"epoch": 0, "step": 3})
    resumed = build_model(SPEC).to(memory_format=torch.channels_last)
    again = FlatOptimizer(param_groups(config, resumed), lambda g: make_optimizer(config, g))
    load_checkpoint(tmp_path / "c.safetensors", resumed, again)
    _train(net, flat, 2, seed=3)
    _train(resumed, again, 2, seed=3)
    _assert_same(net, resumed)


def test_mixed_dtypes_keep_the_torch_optimizer():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1).double())
    assert not can_flatten(param_groups(TrainConfig(), net))
    assert isinstance(build_optimizer(TrainConfig(), net), torch.optim.Adam)
    assert isinstance(build_optimizer(TrainConfig(), build_model(SPEC)), FlatOptimizer)
