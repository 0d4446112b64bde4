"""airbench's training tricks as convscope settings: whitening and identity-initialised convs,
fixed batchnorm scales, scaled class scores, faster batchnorm shifts, lookahead, alternating
flips and test-time augmentation; each checked against plain PyTorch, and a run using all of
them resumes to the same weights."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import train_stopped_and_resumed

import convscope
from convscope.augment import alternating_flips, fit_batch
from convscope.cli import main
from convscope.config import TrainConfig
from convscope.errors import ConvscopeError, SpecError
from convscope.layers import WhiteningConv, fit_whitening
from convscope.lookahead import Lookahead
from convscope.model import build_model
from convscope.optimizers import make_optimizer, param_groups
from convscope.summary import layer_label
from convscope.tta import AveragedViews

TRICKS = [{"type": "input", "sx": 28, "sy": 28, "depth": 1, "offset": 0.5},
          {"type": "conv", "sx": 2, "filters": 8, "init": "whiten"},
          {"type": "gelu"},
          {"type": "conv", "sx": 3, "filters": 12, "pad": 1, "stride": 1, "bias": False,
           "init": "dirac"},
          {"type": "pool", "sx": 3, "stride": 3},
          {"type": "batchnorm", "scale": False, "momentum": 0.4},
          {"type": "gelu"},
          {"type": "softmax", "num_classes": 10, "bias": False, "scale": 1 / 9}]
SETTINGS = dict(epochs=2, batch_size=16, optimizer="sgd", lr=0.5, momentum=0.85,
                weight_decay=1e-3, bias_lr_scale=16.0, lookahead=True, augment="shift+altflip",
                tta="flip+shift", label_smoothing=0.2, schedule="onecycle", seed=4)


def test_spec_fields_build_what_they_say():
    net = build_model(TRICKS)
    whiten, dirac, norm, fc = net.blocks[1], net.blocks[3], net.blocks[5], net.blocks[7]
    assert isinstance(whiten, WhiteningConv) and not whiten.weight.requires_grad
    assert whiten.bias.requires_grad
    assert not norm.weight.requires_grad and norm.bias.requires_grad and norm.momentum == 0.4
    assert fc.bias is None and fc.scale == pytest.approx(1 / 9)
    x = torch.randn(2, 8, 9, 9)  # identity on the first 8 of 12 filters, the rest as usual
    out = F.conv2d(x, dirac.weight, padding=1)
    assert torch.equal(out[:, :8], x) and out[:, 8:].abs().sum() > 0
    features = torch.randn(3, 1, 28, 28)
    logits = net(features)
    trunk = net.forward_all(features)[6].flatten(1)
    assert torch.allclose(logits, trunk @ fc.weight.T / 9, atol=1e-6)
    labels = [layer_label(layer) for layer in net.layers]
    assert labels[1] == "conv 2x2 x8 s1 p0 whiten" and labels[3].endswith("nobias dirac")
    assert labels[5] == "batchnorm shift only" and labels[7] == "fc 10 nobias x0.111"


def test_whitening_needs_two_filters_per_patch_value_and_momentum_a_share():
    bad = [dict(layer) for layer in TRICKS]
    bad[1]["filters"] = 6
    with pytest.raises(SpecError, match=r"layer 1 \(conv\): init 'whiten' needs 2 x 2 x 2 x 1 = 8"):
        build_model(bad)
    bad = [dict(layer) for layer in TRICKS]
    bad[5]["momentum"] = 0
    with pytest.raises(SpecError, match=r"layer 5 \(batchnorm\): momentum must be a number in"):
        build_model(bad)


def test_whitening_conv_whitens_its_input_patches():
    torch.manual_seed(0)
    mix = torch.randn(3, 3)  # correlated colour channels with a smooth image
    x = torch.einsum("ij,njhw->nihw", mix, torch.randn(64, 3, 17, 17))
    x = F.avg_pool2d(x, 3, 1, padding=1) + 0.1
    conv = WhiteningConv(3, 24, 2)
    net = torch.nn.Sequential(torch.nn.Identity(), conv, torch.nn.ReLU())
    fit_whitening(net, x)
    out = F.conv2d(x, conv.weight[:12])  # the second 12 filters are the first negated
    assert torch.equal(conv.weight[12:], -conv.weight[:12]) and conv.bias.abs().sum() == 0
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12).double()
    covariance = flat.T @ flat / flat.shape[0]
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    values = torch.linalg.eigvalsh((patches.T @ patches / patches.shape[0]).double())
    expected = torch.diag((values / (values + 5e-4)).flip(0))
    assert torch.allclose(covariance, expected, atol=1e-3)


def test_batchnorm_shifts_get_the_faster_rate_and_the_same_decay():
    net = build_model(TRICKS)
    config = TrainConfig(optimizer="sgd", lr=0.1, weight_decay=1e-3, bias_lr_scale=64.0)
    groups = param_groups(config, net)
    assert [p for p in groups[0]["params"]] == [net.blocks[5].bias]
    assert groups[0]["lr_scale"] == 64.0 and groups[0]["weight_decay"] == pytest.approx(1e-3 / 64)
    optimizer = make_optimizer(config, groups)
    assert optimizer.param_groups[1]["weight_decay"] == 1e-3
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable
    assert len(param_groups(TrainConfig(), net)) == 1


def test_lookahead_follows_its_formula():
    net = torch.nn.Linear(2, 1)
    lookahead = Lookahead(net, every=5)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    lookahead.step(4, 10)  # not a 5th step: nothing happens
    assert torch.equal(net.weight, start + 1)
    lookahead.step(5, 10)
    decay = 0.95 ** 5 * 0.5 ** 3
    expected = start + (1 - decay) * 1.0
    assert torch.allclose(net.weight, expected) and torch.allclose(lookahead.average["weight"],
                                                                  expected)
    with torch.no_grad():
        net.weight.add_(2.0)
    lookahead.step(10, 10)  # the last step: the weights become the average
    assert torch.allclose(net.weight, expected)


def test_alternating_flips_mirror_every_image_every_other_epoch():
    first = torch.tensor([True, False, False, True])
    assert torch.equal(alternating_flips(first, 0), first)
    assert torch.equal(alternating_flips(first, 1), ~first)
    images = torch.randint(0, 256, (4, 1, 5, 5), dtype=torch.uint8)
    out = fit_batch(images, 5, 5, "shift+altflip", torch.Generator().manual_seed(0),
                    alternating_flips(first, 1))
    for image, result, flipped in zip(images, out, ~first, strict=True):
        padded = F.pad(image.flip(-1) if flipped else image, (2, 2, 2, 2))
        windows = padded.unfold(1, 5, 1).unfold(2, 5, 1)
        assert any(torch.equal(result, windows[:, i, j]) for i in range(5) for j in range(5))


def test_tta_averages_the_views_airbench_uses():
    torch.manual_seed(0)
    net = build_model(TRICKS).eval()
    x = torch.randn(3, 1, 28, 28)
    pair = lambda z: (net(z) + net(z.flip(-1))) / 2  # noqa: E731
    assert torch.allclose(AveragedViews(net, "flip")(x), pair(x), atol=1e-6)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    expected = pair(x) / 2 + (pair(padded[..., :28, :28]) + pair(padded[..., 2:, 2:])) / 4
    assert torch.allclose(AveragedViews(net, "flip+shift")(x), expected, atol=1e-6)
    shifted = net(x) / 2 + (net(padded[..., :28, :28]) + net(padded[..., 2:, 2:])) / 4
    assert torch.allclose(AveragedViews(net, "shift")(x), shifted, atol=1e-6)  # no mirrors


def test_tta_is_refused_for_scene_tasks():
    with pytest.raises(ConvscopeError, match="tta 'flip' mirrors and shifts images"):
        TrainConfig(task="detect", tta="flip")


def test_a_run_with_every_trick_learns_and_resumes_to_the_same_weights(digits, tmp_path):
    whole, resumed = train_stopped_and_resumed(TRICKS, digits, tmp_path, SETTINGS, (1, 7))
    assert whole.results["test"]["accuracy"] > 0.9  # a trivial task: the loop must learn it
    assert whole.results["tta"]["mode"] == "flip+shift"
    test = convscope.load_dataset("mnist", "test", str(digits))  # the plain model, apart
    assert whole.results["tta"]["test_accuracy_without"] == pytest.approx(
        convscope.evaluate(whole.model, test).accuracy, abs=1e-9)
    assert whole.results["test"]["accuracy"] == pytest.approx(
        convscope.evaluate(AveragedViews(whole.model, "flip+shift"), test).accuracy, abs=1e-9)
    assert resumed.results["test"]["accuracy"] == whole.results["test"]["accuracy"]

    with contextlib.redirect_stdout(io.StringIO()) as text:  # eval scores with the run's views
        assert main(["eval", str(whole.path), "--json"]) == 0
    assert json.loads(text.getvalue())["confusion"] == whole.results["test"]["confusion"]
    with contextlib.redirect_stdout(io.StringIO()) as text:
        assert main(["eval", str(whole.path)]) == 0
    assert "test-time augmentation flip+shift" in text.getvalue()
