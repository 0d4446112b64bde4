"""The explorer's arithmetic against PyTorch: activations, weights, conv steps, confusion cells."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convscope
from convscope.augment import to_input
from convscope.data import Dataset
from convscope.probes import (
    LayerNotFound,
    ProbeError,
    activations,
    confusion_with_samples,
    conv_step,
    layer_weights,
    network_graph,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is fastest, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# VGG-16 (15.5 G multiply-adds an image) is checked from its spec in test_architectures.py,
# and AlexNet's (1.1 G) convolutions are too big to step through here
MACS = {e.name: sum(la.macs for la in convscope.resolve(e.spec)) for e in convscope.list_models()}
BUILT = [name for name, macs in MACS.items() if macs < 10**10]
CONVNETS = [e for e in convscope.list_models()
            if any(la["type"] == "conv" for la in e.spec) and MACS[e.name] < 10**9]


def fresh(name: str) -> convscope.SpecNet:
    torch.manual_seed(0)
    return convscope.build_model(convscope.get_model_entry(name).spec)


def example(model: convscope.SpecNet, seed: int = 0) -> torch.Tensor:
    shape = model.input_volume.shape
    return to_input(torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed),
                                  dtype=torch.uint8))


def positions(out_sx: int, out_sy: int) -> list[tuple[int, int]]:
    """Every corner and edge midpoint, plus a few inside."""
    xs = sorted({0, 1, out_sx // 2, out_sx - 2, out_sx - 1} & set(range(out_sx)))
    ys = sorted({0, out_sy // 3, out_sy - 1} & set(range(out_sy)))
    return [(x, y) for x in xs for y in ys]


@pytest.mark.parametrize("name", [e.name for e in CONVNETS])
def test_conv_step_equals_conv2d(name: str):
    model = fresh(name)
    x = example(model)
    outs = activations(model, x)
    convs = [n for n in network_graph(model).nodes if n.type == "conv"]  # residuals' too
    assert convs
    for layer in convs:
        source = outs[layer.index - 1][None]
        block = model.get_submodule(layer.name)
        own = (layer.params["stride"], layer.params["pad"])
        for stride, pad in {own, (1, 0), (2, 1), (3, layer.params["sx"] - 1)}:
            expected = F.conv2d(source, block.weight, block.bias, stride, pad)[0]
            padded = F.pad(source[0], (pad, pad, pad, pad))
            out_sy, out_sx = expected.shape[1:]
            for ox, oy in positions(out_sx, out_sy):
                f = (ox + oy) % layer.params["filters"]
                step = conv_step(model, x, layer.index, f, ox, oy, stride, pad)
                assert (step.out_sx, step.out_sy, step.stride, step.pad) == (out_sx, out_sy,
                                                                              stride, pad)
                assert step.output == pytest.approx(expected[f, oy, ox].item(), abs=1e-4)
                assert (step.x0, step.y0) == (ox * stride - pad, oy * stride - pad)
                sy, sx = step.weights.shape[1:]
                window = padded[:, oy * stride:oy * stride + sy, ox * stride:ox * stride + sx]
                assert torch.equal(step.patch, window)
                assert torch.equal(step.products, step.patch * step.weights)
                assert step.sum == pytest.approx(step.products.sum().item(), abs=1e-4)
                assert step.output == pytest.approx(step.sum + step.bias)
        if own == (layer.params["stride"], layer.params["pad"]):
            step = conv_step(model, x, layer.index, 0, 0, 0)
            assert step.output == pytest.approx(outs[layer.index][0, 0, 0].item(), abs=1e-4)


def test_conv_step_refuses_what_it_cannot_show():
    model = fresh("mnist-convnetjs")  # 0 input, 1 conv 5x5 p2 x8, 2 relu, 3 pool, 4 conv ...
    x = example(model)
    with pytest.raises(ProbeError, match="not a conv layer"):
        conv_step(model, x, 2, 0, 0, 0)
    with pytest.raises(LayerNotFound):
        conv_step(model, x, 99, 0, 0, 0)
    with pytest.raises(ProbeError, match="filter 8 does not exist"):
        conv_step(model, x, 1, 8, 0, 0)
    with pytest.raises(ProbeError, match="outside the 24x24 output"):
        conv_step(model, x, 1, 0, 24, 0)
    with pytest.raises(ProbeError, match="outside the 20x20 output"):
        conv_step(model, x, 1, 0, 20, 0, pad=0)
    with pytest.raises(ProbeError, match="stride must be at least 1"):
        conv_step(model, x, 1, 0, 0, 0, stride=0)


@pytest.mark.parametrize("name", BUILT)
def test_activations_match_layer_volumes(name: str):
    model = fresh(name)
    model.train()
    outs = activations(model, example(model))
    assert model.training  # the mode is restored
    nodes = network_graph(model).nodes  # residual blocks' inner layers too
    assert [tuple(o.shape) for o in outs] == [la.out_volume.shape for la in nodes]
    assert torch.equal(outs[0], example(model))
    batch = activations(model, torch.stack([example(model, 0), example(model, 1)]))
    assert torch.allclose(batch[-1][0], outs[-1], atol=1e-5)
    if model.layers[-1].type == "softmax":
        assert outs[-1].sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", BUILT)
def test_layer_weights_shapes(name: str):
    model = fresh(name)
    nodes = network_graph(model).nodes  # residual blocks' inner layers too
    for layer in nodes:
        if layer.type not in ("conv", "fc"):
            with pytest.raises(LayerNotFound, match="has no weights"):
                layer_weights(model, layer.index)
            continue
        weights, bias = layer_weights(model, layer.index)
        block = model.get_submodule(layer.name)
        if layer.type == "conv":
            assert tuple(weights.shape) == tuple(block.weight.shape)
        else:
            assert tuple(weights.shape) == (layer.params["num_neurons"], *layer.in_volume.shape)
            assert torch.equal(weights.flatten(1), block.weight)  # the rows, reshaped
        assert (bias is None) == (block.bias is None)
    with pytest.raises(LayerNotFound, match="does not exist"):
        layer_weights(model, len(nodes))


def test_first_layer_fc_rows_are_images():
    model = fresh("mnist-ordinary")
    weights, bias = layer_weights(model, 1)
    assert tuple(weights.shape) == (10, 1, 28, 28) and tuple(bias.shape) == (10,)
    image = example(model)
    neuron = (weights[3] * image).sum() + bias[3]
    assert neuron.item() == pytest.approx(activations(model, image)[1][3, 0, 0].item(), abs=1e-4)


def test_confusion_cells_most_confident_first():
    torch.manual_seed(0)
    model = convscope.build_model([{"type": "input", "sx": 4, "sy": 4, "depth": 1},
                                   {"type": "softmax", "num_classes": 3}])
    images = torch.randint(0, 256, (60, 1, 4, 4), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    labels = torch.arange(60) % 3
    data = Dataset("toy", images, labels, ["a", "b", "c"])
    full = confusion_with_samples(model, data, per_cell=None)
    ev = full.evaluation
    assert ev.total == 60
    for actual in range(3):
        for predicted in range(3):
            cell = full.cells[actual][predicted]
            assert len(cell) == ev.confusion[actual][predicted]
            confidences = [c for _, c in cell]
            assert confidences == sorted(confidences, reverse=True)
            for index, confidence in cell:
                assert labels[index] == actual and ev.predictions[index] == predicted
                assert confidence == ev.confidences[index]
    capped = confusion_with_samples(model, data, per_cell=2)
    assert capped.evaluation.confusion == ev.confusion
    assert all(capped.cells[a][p] == full.cells[a][p][:2] for a in range(3) for p in range(3))
