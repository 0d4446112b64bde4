"""Why this prediction (issue 20, point 13): Grad-CAM, SmoothGrad saliency and occlusion maps
checked against computations written out by hand here, and ``convscope explain``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from convscope.augment import to_input
from convscope.bundle import bundled_sample
from convscope.cli import main
from convscope.explain import (
    ExplainError,
    explain,
    gradcam,
    map_layers,
    occlusion,
    resolve_layer,
    saliency,
)
from convscope.model import build_model
from convscope.module_graph import volume_of
from convscope.predict import fit_any, input_volume, preparation
from convscope.runs import open_run

MODEL = "mnist-convnetjs"


def tiny_net(activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), activation(), nn.Conv2d(3, 4, 3),
                         activation(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))


def node_of(model: nn.Module, x: torch.Tensor, index: int):
    return resolve_layer(model, volume_of((1, *x.shape)), index)


def cam_by_hand(head: nn.Module, tail: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """Grad-CAM written out: maps A = head(x); g = d score / d A; weights = mean of g over
    positions; ReLU(sum_k weight_k A_k)."""
    maps = head(x[None]).detach().requires_grad_(True)
    (grads,) = torch.autograd.grad(tail(maps)[0, target], maps)
    cam = torch.zeros(maps.shape[-2:])
    for k in range(maps.shape[1]):
        cam += grads[0, k].mean() * maps[0, k].detach()
    return cam.clamp(min=0)


@pytest.mark.parametrize("target", [0, 3])
def test_gradcam_at_the_input_resolution_is_the_hand_computation(target):
    net = tiny_net()
    x = torch.randn(2, 8, 8)
    expected = cam_by_hand(net[:1], net[1:], x, target)  # conv 0 keeps 8x8: no resizing
    found = gradcam(net, x, target, node_of(net, x, 1))  # node 1: module "0"
    assert found.shape == (8, 8)
    assert expected.abs().max() > 0
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-6)


def test_gradcam_on_a_smaller_layer_is_resized_to_the_input():
    net = tiny_net()
    x = torch.randn(2, 8, 8)
    small = cam_by_hand(net[:3], net[3:], x, 2)  # conv 2: 6x6
    expected = F.interpolate(small[None, None], size=(8, 8), mode="bilinear",
                             align_corners=False)[0, 0]
    found = explain(net, x, "gradcam", target=2, layer=3)  # node 3: module "2"
    assert found.layer == 3 and found.target == 2
    assert node_of(net, x, 3).name == "2" and node_of(net, x, "2").index == 2
    torch.testing.assert_close(found.map, expected, rtol=1e-4, atol=1e-6)


def test_gradcam_on_a_specnet_defaults_to_its_final_feature_maps():
    net = build_model([{"type": "input", "sx": 10, "sy": 10, "depth": 1},
                       {"type": "conv", "sx": 3, "filters": 4, "pad": 1},
                       {"type": "relu"}, {"type": "pool", "sx": 2},
                       {"type": "conv", "sx": 3, "filters": 5, "pad": 1}, {"type": "relu"},
                       {"type": "fc", "num_neurons": 3}, {"type": "softmax", "num_classes": 3}])
    x = torch.randn(1, 10, 10)
    found = explain(net, x, "gradcam", classes=["a", "b", "c"])
    assert found.layer == 5  # the last conv's ReLU
    assert found.target == int(net(x[None])[0].argmax())  # the predicted class by default
    tail = nn.Sequential(*net.blocks[6:8])  # fc, the softmax's fc (not the softmax)
    small = cam_by_hand(lambda v: net.forward_all(v)[5], lambda a: tail(a).flatten(1), x,
                        found.target)
    expected = F.interpolate(small[None, None], size=(10, 10), mode="bilinear",
                             align_corners=False)[0, 0]
    torch.testing.assert_close(found.map, expected, rtol=1e-4, atol=1e-6)
    assert explain(net, x, "gradcam", target="c", classes=["a", "b", "c"]).target == 2


def test_plain_gradient_matches_finite_differences():
    net = tiny_net(nn.Tanh).double()
    x = torch.randn(2, 6, 6, dtype=torch.float64)
    found = saliency(net, x, 1, samples=1, noise=0.0)
    eps = 1e-6
    grads = torch.zeros_like(x)
    with torch.no_grad():
        for index in np.ndindex(*x.shape):
            up, down = x.clone(), x.clone()
            up[index] += eps
            down[index] -= eps
            grads[index] = (net(up[None])[0, 1] - net(down[None])[0, 1]) / (2 * eps)
    torch.testing.assert_close(found.double(), grads.abs().amax(0), rtol=1e-4, atol=1e-6)


def test_smoothgrad_averages_the_gradients_of_noisy_copies():
    net = tiny_net()
    x = torch.randn(2, 6, 6)
    samples, noise, seed = 5, 0.2, 7
    found = saliency(net, x, 4, samples=samples, noise=noise, seed=seed)
    sigma = noise * float(x.max() - x.min())
    draws = torch.randn(samples, *x.shape, generator=torch.Generator().manual_seed(seed))
    total = torch.zeros(6, 6)
    for k in range(samples):  # one noisy copy at a time
        copy = (x + sigma * draws[k]).requires_grad_(True)
        (grad,) = torch.autograd.grad(net(copy[None])[0, 4], copy)
        total += grad.abs().amax(0)
    torch.testing.assert_close(found, total / samples, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(found, saliency(net, x, 4, samples=1, noise=0.0))


@pytest.mark.parametrize(("window", "stride"), [(3, 2), (2, 1), (4, 3)])
def test_occlusion_is_the_mean_score_drop_of_the_windows_covering_each_pixel(window, stride):
    net = tiny_net()
    x = torch.randn(2, 7, 7)
    found = occlusion(net, x, 3, window=window, stride=stride)
    with torch.no_grad():
        base = net(x[None])[0, 3].item()
        fill = [x[c].mean().item() for c in range(2)]
        drops = [[[] for _ in range(7)] for _ in range(7)]
        tops = sorted({*range(0, 7 - window + 1, stride), 7 - window})
        for top in tops:
            for left in tops:
                covered = x.clone()
                for c in range(2):
                    for i in range(top, top + window):
                        for j in range(left, left + window):
                            covered[c, i, j] = fill[c]
                drop = base - net(covered[None])[0, 3].item()
                for i in range(top, top + window):
                    for j in range(left, left + window):
                        drops[i][j].append(drop)
    expected = torch.tensor([[sum(d) / len(d) for d in row] for row in drops])
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-5)


def test_the_localizer_explains_its_class_head_not_its_box():
    run = open_run("mnist-localizer")
    x = torch.zeros(1, 64, 64) - 0.5
    x[:, 20:40, 30:34] = 0.5  # a bar: some class
    classes = [str(k) for k in range(10)]
    found = explain(run.model, x, "occlusion", classes=classes)
    assert found.target < 10
    with pytest.raises(ExplainError, match="does not exist"):
        explain(run.model, x, "saliency", target=11, classes=classes)  # a box output


def test_bad_choices_are_one_line_errors():
    net = tiny_net()
    x = torch.randn(2, 8, 8)
    assert [n.index for n in map_layers(net, volume_of((1, 2, 8, 8)))] == [1, 2, 3, 4]
    for call, match in [(lambda: explain(net, x, "lime"), "unknown method"),
                        (lambda: explain(net, x, "gradcam", layer="6"), "choose one of"),
                        (lambda: explain(net, x, "gradcam", layer="nope"), "choose one of"),
                        (lambda: explain(net, x, "occlusion", target=9), "index 0..4"),
                        (lambda: explain(net, x[0], "saliency"), "depth, height, width")]:
        with pytest.raises(ExplainError, match=match) as caught:
            call()
        assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory):
    sample = bundled_sample("mnist")
    if sample is None:
        pytest.skip("no bundled MNIST sample")
    folder = tmp_path_factory.mktemp("digits")
    Image.fromarray(sample.images[0, 0].numpy()).save(folder / "seven.png")
    return folder / "seven.png"


@pytest.mark.parametrize("method", ["gradcam", "saliency", "occlusion"])
def test_cli_writes_an_overlay_and_the_raw_map(method, digit_png, tmp_path, capsys):
    out = tmp_path / "maps"
    args = ["explain", MODEL, str(digit_png), "--method", method, "--out", str(out), "--class", "3"]
    assert main([*args, "--samples", "4"] if method == "saliency" else args) == 0
    line = capsys.readouterr().out.strip()
    assert f"{method}" in line and "class 3" in line and "\n" not in line
    run = open_run(MODEL)
    volume = input_volume(run)  # 24x24: ConvNetJS's crop of MNIST
    raw = np.load(out / f"seven.{method}.npy", allow_pickle=False)
    assert raw.shape == (volume.sy, volume.sx) and raw.dtype == np.float32
    image = fit_any(digit_png, volume, preparation(run))
    options = {"samples": 4} if method == "saliency" else {}
    expected = explain(run.model, to_input(image), method, "3", None,
                       [str(k) for k in range(10)], **options)
    np.testing.assert_allclose(raw, expected.map.numpy(), rtol=1e-5, atol=1e-6)
    scale = -(-224 // volume.sx)  # enlarged to 224 px or more
    with Image.open(out / f"seven.{method}.png") as png:
        assert png.mode == "RGB" and png.size == (volume.sx * scale, volume.sy * scale)
        pixels = np.asarray(png)
    grey = np.asarray(image[0].repeat_interleave(scale, 0).repeat_interleave(scale, 1))
    tinted = np.abs(pixels.astype(int) - grey[..., None]).max(2) > 8
    strongest = np.unravel_index(raw.argmax(), raw.shape)
    assert tinted[strongest[0] * scale, strongest[1] * scale]  # the map shows where it is strongest


@pytest.mark.parametrize(("extra", "match"), [
    (["--layer", "99"], "layer 99 has no maps"),
    (["--class", "cat"], "class 'cat' does not exist"),
    (["--samples", "0"], "1..256 samples"),
])
def test_cli_bad_choices_are_one_line(extra, match, digit_png, tmp_path, capsys):
    assert main(["explain", MODEL, str(digit_png), "--method",
                 "saliency" if "--samples" in extra else "gradcam", "--out", str(tmp_path),
                 *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and match in err and "\n" not in err
    assert not list(tmp_path.iterdir())


def test_cli_bad_files_and_models(digit_png, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    out = tmp_path / "out"
    assert main(["explain", MODEL, str(broken), str(digit_png), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "broken.png" in captured.err
    assert (out / "seven.gradcam.npy").exists() and not (out / "broken.gradcam.npy").exists()
    for model, match in [("no-such-model", "no-such-model"), ("mnist-unet", "segmentation")]:
        assert main(["explain", model, str(digit_png), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and match in err and "\n" not in err
