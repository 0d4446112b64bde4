import os

import pytest
import torch
from safetensors.torch import save_file

from convscope.checkpoint import (
    load_checkpoint,
    load_model_weights,
    save_checkpoint,
    save_model,
)
from convscope.errors import RunError


def _net():
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def test_model_round_trip(tmp_path):
    a, b = _net(), _net()
    save_model(tmp_path / "m.safetensors", a, {"note": "x"})
    assert load_model_weights(tmp_path / "m.safetensors", b) == {"note": "x"}
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_checkpoint_restores_optimizer_state(tmp_path, optimizer):
    torch.manual_seed(0)
    net = _net()
    make = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
            "adam": lambda p: torch.optim.Adam(p, lr=0.01)}[optimizer]
    opt = make(net.parameters())
    x = torch.randn(8, 4)
    for _ in range(3):
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
    save_checkpoint(tmp_path / "c.safetensors", net, opt, {"epoch": 1, "step": 7})
    net2 = _net()
    opt2 = make(net2.parameters())
    assert load_checkpoint(tmp_path / "c.safetensors", net2, opt2) == {"epoch": 1, "step": 7}
    for model, o in ((net, opt), (net2, opt2)):  # one more identical step on both
        o.zero_grad()
        model(x).square().mean().backward()
        o.step()
    for pa, pb in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_foreign_files_are_refused(tmp_path):
    not_safetensors = tmp_path / "weights.pt"
    not_safetensors.write_bytes(b"\x80\x04\x95pickle bytes")
    with pytest.raises(RunError, match="not a safetensors file"):
        load_model_weights(not_safetensors, _net())
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(RunError, match="not a convscope model file"):
        load_model_weights(other, _net())
    save_model(tmp_path / "small.safetensors", torch.nn.Linear(2, 2))
    with pytest.raises(RunError, match="weights do not fit this model"):
        load_model_weights(tmp_path / "small.safetensors", _net())


def test_written_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        save_model(tmp_path / "m.safetensors", _net())
    finally:
        os.umask(old)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o644
