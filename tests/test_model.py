import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convscope.model
from convscope.errors import SpecError
from convscope.model import SpecNet, build_model

SMALL = [
    {"type": "input", "sx": 8, "sy": 6, "depth": 3},
    {"type": "conv", "sx": 3, "sy": 2, "filters": 4, "stride": 2, "pad": 1, "activation": "relu"},
    {"type": "pool", "sx": 2, "kind": "avg", "pad": 1},
    {"type": "fc", "num_neurons": 6, "activation": "gelu", "drop_prob": 0.3},
    {"type": "batchnorm"},
    {"type": "softmax", "num_classes": 5},
]


def test_conv_matches_functional_conv2d():
    torch.manual_seed(0)
    net = build_model(SMALL).eval()
    conv = net.blocks[1]
    x = torch.randn(2, 3, 6, 8)
    expected = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)
    assert torch.allclose(net.forward_all(x)[1], expected)
    # one output element by hand: window origin (-pad + ax*stride, -pad + ay*stride)
    padded = F.pad(x, (1, 1, 1, 1))
    ax, ay, f = 2, 1, 3
    window = padded[0, :, ay * 2: ay * 2 + 2, ax * 2: ax * 2 + 3]
    by_hand = (window * conv.weight[f]).sum() + conv.bias[f]
    assert torch.allclose(expected[0, f, ay, ax], by_hand, atol=1e-6)


def test_fc_flattens_in_nchw_order():
    net = build_model([{"type": "input", "sx": 3, "sy": 2, "depth": 2},
                       {"type": "fc", "num_neurons": 4}])
    x = torch.randn(5, 2, 2, 3)
    fc = net.blocks[1]
    assert torch.allclose(net(x), x.reshape(5, -1) @ fc.weight.T + fc.bias)
    assert net(x).shape == (5, 4) and net.num_classes is None


def test_forward_returns_logits_and_forward_all_probabilities():
    torch.manual_seed(0)
    net = build_model(SMALL).eval()
    x = torch.randn(3, 3, 6, 8)
    outputs = net.forward_all(x)
    assert len(outputs) == len(net.layers) == 10
    assert outputs[0] is x
    assert torch.allclose(net(x), outputs[-2].flatten(1))
    assert torch.allclose(outputs[-1].flatten(1), torch.softmax(net(x), dim=1))
    for layer, out in zip(net.layers, outputs, strict=True):
        assert out.shape == (3, *layer.out_volume.shape)


def test_attributes_and_rebuild():
    net = build_model(SMALL)
    assert net.num_classes == 5 and str(net.input_volume) == "8x6x3"
    assert len(net.blocks) == len(net.layers)
    assert isinstance(net.blocks[0], nn.Identity)
    assert isinstance(net.blocks[7], nn.BatchNorm2d)  # on the 1x1x6 volume of the fc
    assert net.spec == SMALL and net.spec is not SMALL
    again = SpecNet(json.loads(json.dumps(net.spec)))
    assert again.layers == net.layers


def test_params_match_module():
    net = build_model(SMALL)
    assert sum(la.num_params for la in net.layers) == sum(p.numel() for p in net.parameters())


def test_deterministic_under_manual_seed():
    torch.manual_seed(3)
    a = build_model(SMALL).state_dict()
    torch.manual_seed(3)
    b = build_model(SMALL).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_residual_adds_its_input():
    spec = [{"type": "input", "sx": 4, "sy": 4, "depth": 2},
            {"type": "residual", "layers": [{"type": "conv", "sx": 3, "filters": 2, "pad": 1}]},
            {"type": "global_pool", "kind": "avg"}]
    net = build_model(spec)
    x = torch.randn(2, 2, 4, 4)
    inner = net.blocks[1].body(x)
    assert torch.allclose(net.forward_all(x)[1], x + inner)
    assert torch.allclose(net(x), (x + inner).mean(dim=(2, 3)))


def test_concat_stacks_an_earlier_output_after_upsampling():
    spec = [{"type": "input", "sx": 4, "sy": 4, "depth": 1},
            {"type": "conv", "sx": 3, "filters": 2, "pad": 1}, {"type": "pool", "sx": 2},
            {"type": "upsample"}, {"type": "concat", "from": 1},
            {"type": "conv", "sx": 1, "filters": 3}]
    net = build_model(spec)
    x = torch.randn(2, 1, 4, 4)
    outs = net.forward_all(x)
    up = outs[2].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.equal(outs[3], up)
    assert torch.equal(outs[4], torch.cat([up, outs[1]], dim=1))
    assert torch.equal(net(x), outs[5]) and net(x).shape == (2, 3, 4, 4)


def test_branch_reads_an_earlier_output_and_concat_joins_two_heads():
    spec = [{"type": "input", "sx": 4, "sy": 4, "depth": 1},
            {"type": "conv", "sx": 3, "filters": 2, "pad": 1}, {"type": "fc", "num_neurons": 3},
            {"type": "branch", "from": 1}, {"type": "global_pool", "kind": "avg"},
            {"type": "concat", "from": 2}]
    net = build_model(spec)
    x = torch.randn(2, 1, 4, 4)
    outs = net.forward_all(x)
    assert torch.equal(outs[3], outs[1])
    heads = torch.cat([outs[1].mean(dim=(2, 3)), outs[2].flatten(1)], dim=1)
    assert torch.allclose(net(x), heads) and net(x).shape == (2, 5)


def test_channels_last():
    torch.manual_seed(0)
    net = build_model(SMALL).eval()
    x = torch.randn(2, 3, 6, 8)
    expected = net(x)
    net = net.to(memory_format=torch.channels_last)
    assert torch.allclose(net(x.to(memory_format=torch.channels_last)), expected, atol=1e-6)


def test_wrong_input_shape():
    net = build_model(SMALL)
    with pytest.raises(ValueError, match=r"\(N, 3, 6, 8\).*got \(2, 3, 8, 6\)"):
        net(torch.zeros(2, 3, 8, 6))


def test_build_from_yaml_file(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("- {type: input, sx: 28, sy: 28, depth: 1}\n"
                    "- {type: conv, sx: 5, filters: 8, activation: relu}\n"
                    "- {type: pool, sx: 2}\n- {type: softmax, num_classes: 10}\n")
    net = build_model(path)
    assert [str(la.out_volume) for la in net.layers[:4]] == [
        "28x28x1", "24x24x8", "24x24x8", "12x12x8"]
    assert net(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_bad_spec_builds_nothing(monkeypatch):
    built = []
    monkeypatch.setattr(convscope.model, "make_module", lambda layer: built.append(layer))
    bad = [*SMALL[:2], {"type": "conv", "sx": 9, "filters": 2}, *SMALL[2:]]
    with pytest.raises(SpecError, match=r"layer 2 \(conv\): a 9x9 filter"):
        build_model(bad)
    assert built == []
