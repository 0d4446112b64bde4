"""The muon optimizer: its orthogonalisation against PyTorch's SVD, its step against the
formula, its parameter groups, the linear schedule, and a run that learns and resumes."""

from __future__ import annotations

import pytest
import torch
from conftest import train_stopped_and_resumed
from safetensors.torch import load_file

import convscope
from convscope.config import TrainConfig
from convscope.model import build_model
from convscope.muon import Muon, orthogonalise
from convscope.optimizers import learning_rate, make_optimizer, param_groups

NET = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
       {"type": "conv", "sx": 2, "filters": 8, "init": "whiten"},
       {"type": "conv", "sx": 3, "filters": 6, "pad": 1, "bias": False, "init": "dirac"},
       {"type": "batchnorm", "scale": False, "momentum": 0.4},
       {"type": "gelu"}, {"type": "pool", "sx": 3, "stride": 3},
       {"type": "softmax", "num_classes": 10, "bias": False, "scale": 1 / 9}]
MUON = dict(optimizer="muon", lr=0.5, momentum=0.85, weight_decay=1e-3, bias_lr_scale=16.0,
            muon_lr=0.2, muon_momentum=0.6, schedule="linear")


@pytest.mark.parametrize("shape", [(16, 72), (72, 16), (32, 32)])
def test_orthogonalise_is_about_u_v_transposed(shape):
    torch.manual_seed(0)
    rank = min(shape)
    u = torch.linalg.qr(torch.randn(shape[0], rank)).Q
    v = torch.linalg.qr(torch.randn(shape[1], rank)).Q
    g = u @ torch.diag(torch.logspace(-1, 0, rank)) @ v.T  # singular values 0.1 to 1
    out = orthogonalise(g)
    values = torch.linalg.svdvals(out)
    assert values.min() > 0.5 and values.max() < 1.3  # every direction moves about as much
    polar = u @ v.T  # what it approximates
    assert (out * polar).sum() / (out.norm() * polar.norm()) > 0.97
    scales = (u.T @ out @ v).diagonal()  # U S' V^T: the same singular vectors
    assert torch.allclose(out @ v, u * scales, atol=1e-4) and scales.min() > 0.5


def test_muon_steps_filters_by_the_formula_and_the_rest_as_torch_sgd():
    torch.manual_seed(0)
    w, b = torch.randn(6, 4, 3, 3), torch.randn(6)
    mine = [w.clone().requires_grad_(), b.clone().requires_grad_()]
    theirs = [w.clone(), b.clone().requires_grad_()]
    muon = Muon([{"params": [mine[0]], "momentum": 0.6, "weight_decay": 0.0,
                  "orthogonal": True, "lr": 0.2},
                 {"params": [mine[1]]}], lr=0.5, momentum=0.85, nesterov=True,
                weight_decay=1e-3)
    sgd = torch.optim.SGD([theirs[1]], lr=0.5, momentum=0.85, nesterov=True, weight_decay=1e-3)
    buf = torch.zeros_like(w)
    for _ in range(3):
        gw, gb = torch.randn_like(w), torch.randn_like(b)
        mine[0].grad, mine[1].grad, theirs[1].grad = gw, gb.clone(), gb.clone()
        muon.step()
        sgd.step()
        buf = 0.6 * buf + gw
        nesterov = gw + 0.6 * buf
        theirs[0] = theirs[0] * 6 ** 0.5 / theirs[0].norm()
        theirs[0] = theirs[0] - 0.2 * orthogonalise(nesterov.reshape(6, -1)).view(w.shape)
        assert torch.allclose(mine[0], theirs[0], atol=1e-6)
        assert torch.equal(mine[1], theirs[1])


def test_muon_groups_the_trainable_filters_apart():
    net = build_model(NET)
    groups = param_groups(TrainConfig(**MUON), net)
    filters, shifts, rest = groups
    assert filters["params"] == [net.blocks[2].weight]  # not the fixed whitening filters
    assert filters["orthogonal"] and filters["lr_scale"] == pytest.approx(0.2 / 0.5)
    assert filters["momentum"] == 0.6 and filters["weight_decay"] == 0
    assert shifts["params"] == [net.blocks[3].bias] and shifts["lr_scale"] == 16.0
    assert rest["params"] == [net.blocks[1].bias, net.blocks[6].weight]
    optimizer = make_optimizer(TrainConfig(**MUON), groups)
    assert isinstance(optimizer, Muon) and optimizer.param_groups[2]["momentum"] == 0.85


def test_the_linear_schedule_decays_from_the_peak_to_zero():
    config = TrainConfig(lr=2.0, schedule="linear")
    assert [learning_rate(config, s, 4) for s in range(5)] == [2.0, 1.5, 1.0, 0.5, 0.0]


def test_a_muon_run_learns_and_resumes_to_the_same_weights(digits, tmp_path):
    settings = dict(epochs=2, batch_size=16, seed=3, **MUON)
    whole, _ = train_stopped_and_resumed(NET, digits, tmp_path, settings, (1, 5))
    assert whole.results["test"]["accuracy"] > 0.9  # a trivial task: the loop must learn it


def test_micro_batches_average_to_the_whole_batchs_step(digits, tmp_path, capsys):
    plain = [NET[0], {"type": "conv", "sx": 3, "filters": 4, "pad": 1}, {"type": "relu"},
             {"type": "pool", "sx": 3, "stride": 3}, {"type": "softmax", "num_classes": 10}]
    settings = dict(epochs=1, batch_size=16, optimizer="sgd", lr=0.1, seed=2)
    runs = [convscope.train(plain, "mnist", out=tmp_path / str(micro), data_dir=str(digits),
                            micro_batch=micro, **settings) for micro in (0, 5)]
    assert "of 16 (in parts of 5)" in capsys.readouterr().out
    a, b = (load_file(str(run.path / "model.safetensors")) for run in runs)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # no batchnorm: the same
    assert runs[1].metrics[0]["train_loss"] == pytest.approx(runs[0].metrics[0]["train_loss"],
                                                             rel=1e-5)
