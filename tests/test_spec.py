import json

import pytest

from convscope.errors import SpecError
from convscope.spec import Volume, load_spec, load_spec_document, resolve

INPUT_28 = {"type": "input", "sx": 28, "sy": 28, "depth": 1}


def volumes(spec):
    return [str(layer.out_volume) for layer in resolve(spec)]


def test_chapter_example_mnist():
    spec = [INPUT_28, {"type": "conv", "sx": 5, "filters": 8}, {"type": "pool", "sx": 2}]
    assert volumes(spec) == ["28x28x1", "24x24x8", "12x12x8"]


def test_chapter_example_cifar():
    spec = [{"type": "input", "sx": 32, "sy": 32, "depth": 3},
            {"type": "conv", "sx": 7, "filters": 20}, {"type": "conv", "sx": 5, "filters": 30}]
    assert volumes(spec) == ["32x32x3", "26x26x20", "22x22x30"]


def test_volume():
    v = Volume(24, 20, 8)
    assert (str(v), v.numel, v.shape) == ("24x20x8", 24 * 20 * 8, (8, 20, 24))


@pytest.mark.parametrize(("size", "f", "stride", "pad", "out"), [
    (28, 5, 1, 0, 24), (28, 5, 1, 2, 28), (12, 3, 3, 0, 4), (12, 3, 2, 0, 5), (7, 2, 2, 0, 3),
    (32, 3, 2, 1, 16),
])
def test_output_size_rule(size, f, stride, pad, out):
    spec = [{"type": "input", "sx": size, "sy": size, "depth": 1},
            {"type": "conv", "sx": f, "filters": 1, "stride": stride, "pad": pad}]
    assert resolve(spec)[1].out_volume == Volume(out, out, 1)


def test_defaults_and_sugar():
    spec = [
        {"type": "input", "out_sx": 8, "out_sy": 6, "out_depth": 3},
        {"type": "conv", "sx": 3, "filters": 4, "pad": 1, "activation": "relu", "drop_prob": 0.1},
        {"type": "pool", "sx": 2},
        {"type": "fc", "num_neurons": 5, "activation": "tanh"},
        {"type": "softmax", "num_classes": 2},
    ]
    layers = resolve(spec)
    assert [la.type for la in layers] == [
        "input", "conv", "relu", "dropout", "pool", "fc", "tanh", "fc", "softmax"]
    assert [la.index for la in layers] == list(range(9))
    assert layers[0].params == {"sx": 8, "sy": 6, "depth": 3}
    assert layers[1].params == {"sx": 3, "sy": 3, "filters": 4, "stride": 1, "pad": 1,
                                "bias": True}
    assert layers[3].params == {"drop_prob": 0.1}
    assert layers[4].params == {"sx": 2, "sy": 2, "stride": 2, "pad": 0, "kind": "max"}
    assert layers[7].params == {"num_neurons": 2, "bias": True}
    assert str(layers[4].out_volume) == "4x3x4"
    assert layers[5].in_volume == Volume(4, 3, 4) and str(layers[5].out_volume) == "1x1x5"
    json.dumps([la.params for la in layers])


def test_params_and_macs():
    spec = [INPUT_28, {"type": "conv", "sx": 5, "filters": 8, "bias": False},
            {"type": "batchnorm"}, {"type": "fc", "num_neurons": 10}]
    conv, bn, fc = resolve(spec)[1:]
    assert (conv.num_params, conv.macs) == (8 * 25, 24 * 24 * 8 * 25)
    assert (bn.num_params, bn.macs) == (16, 0)
    assert (fc.num_params, fc.macs) == (24 * 24 * 8 * 10 + 10, 24 * 24 * 8 * 10)


def test_residual_and_global_pool():
    spec = [INPUT_28, {"type": "conv", "sx": 3, "filters": 4, "pad": 1},
            {"type": "residual", "layers": [{"type": "conv", "sx": 3, "filters": 4, "pad": 1,
                                             "activation": "relu"}]},
            {"type": "global_pool", "kind": "avg"}]
    block = resolve(spec)[2]
    assert block.type == "residual" and block.params == {}
    assert [c.type for c in block.children] == ["conv", "relu"]
    assert block.out_volume == block.in_volume == Volume(28, 28, 4)
    assert block.num_params == block.children[0].num_params == 4 * (36 + 1)
    assert str(resolve(spec)[3].out_volume) == "1x1x4"


def test_upsample_and_concat_volumes():
    spec = [INPUT_28, {"type": "conv", "sx": 3, "filters": 4, "pad": 1}, {"type": "pool", "sx": 2},
            {"type": "upsample"}, {"type": "concat", "from": 1},
            {"type": "upsample", "factor": 3}]
    layers = resolve(spec)
    assert [str(la.out_volume) for la in layers] == [
        "28x28x1", "28x28x4", "14x14x4", "28x28x4", "28x28x8", "84x84x8"]
    assert [(la.num_params, la.macs) for la in layers[3:]] == [(0, 0)] * 3


def test_branch_takes_its_source_volume():
    spec = [INPUT_28, {"type": "conv", "sx": 3, "filters": 4, "pad": 1},
            {"type": "fc", "num_neurons": 2}, {"type": "branch", "from": 1},
            {"type": "global_pool"}, {"type": "concat", "from": 2}]
    assert [str(la.out_volume) for la in resolve(spec)] == [
        "28x28x1", "28x28x4", "1x1x2", "28x28x4", "1x1x4", "1x1x6"]


CONV = {"type": "conv", "sx": 3, "filters": 4}
BAD_SPECS = [
    ([INPUT_28, CONV, {"type": "concat", "from": 2}],
     "layer 2 (concat): 'from' must name an earlier layer (0-1 in the resolved list"),
    ([INPUT_28, CONV, {"type": "concat", "from": 0}],
     "layer 2 (concat): layer 0 outputs 28x28x1 but this layer's input is 26x26x4; concat needs"),
    ([INPUT_28, {"type": "residual", "layers": [{"type": "concat", "from": 0}]}],
     "inner layer 0 (concat): concat cannot be used inside a residual block"),
    ([INPUT_28, {"type": "concat"}], "layer 1 (concat): missing field 'from'"),
    ([INPUT_28, CONV, {"type": "branch", "from": 2}],
     "layer 2 (branch): 'from' must name an earlier layer (0-1 in the resolved list"),
    ([INPUT_28, {"type": "residual", "layers": [{"type": "branch", "from": 0}]}],
     "inner layer 0 (branch): branch cannot be used inside a residual block"),
    ([INPUT_28, {"type": "upsample", "factor": 0}],
     "layer 1 (upsample): factor must be a positive integer, got 0"),
    ([{"type": "input", "sx": 4, "sy": 4, "depth": 3}, {"type": "conv", "sx": 7, "filters": 2}],
     "layer 1 (conv): a 7x7 filter with pad 0 does not fit the 4x4x3 input volume"),
    ([{"type": "fc", "num_neurons": 10}, INPUT_28],
     "layer 0 (fc): the first layer must be 'input'"),
    ([INPUT_28, CONV, {"type": "convolution", "sx": 3}],
     "layer 2 (convolution): unknown layer type 'convolution'; known types: input, conv,"),
    ([INPUT_28, {**CONV, "stride": 0}],
     "layer 1 (conv): stride must be a positive integer, got 0"),
    ([INPUT_28, {**CONV, "stride": -2}],
     "layer 1 (conv): stride must be a positive integer, got -2"),
    ([INPUT_28, {**CONV, "stride": True}],
     "layer 1 (conv): stride must be a positive integer, got True"),
    ([INPUT_28, {"type": "conv", "sx": 5}], "layer 1 (conv): missing field 'filters'"),
    ([INPUT_28, {"type": "conv", "sx": 5, "filter": 8}],
     "layer 1 (conv): unknown field 'filter' (did you mean 'filters'?); conv accepts: sx,"),
    ([INPUT_28, {"type": "relu", "sx": 2}], "layer 1 (relu): unknown field 'sx'; relu takes none"),
    ([INPUT_28, {**CONV, "sx": "5"}], "layer 1 (conv): sx must be a positive integer, got '5'"),
    ([INPUT_28, {**CONV, "activation": "maxout"}],
     "layer 1 (conv): activation must be one of 'relu', 'sigmoid', 'tanh', 'gelu', got 'maxout'"),
    ([INPUT_28, {"type": "dropout", "drop_prob": 1.0}],
     "layer 1 (dropout): drop_prob must be a number in [0, 1), got 1.0"),
    ([INPUT_28, {"type": "pool", "sx": 2, "pad": 2}],
     "layer 1 (pool): pad 2 is more than half the 2x2 window"),
    ([INPUT_28, {"type": "softmax", "num_classes": 10}, CONV],
     "layer 1 (softmax): softmax must be the last layer"),
    ([INPUT_28, INPUT_28], "layer 1 (input): only the first layer may be 'input'"),
    ([INPUT_28, {"type": "residual", "layers": [CONV]}],
     "layer 1 (residual): the inner layers turn the 28x28x1 input volume into 26x26x4"),
    ([INPUT_28, {"type": "residual", "layers": [{"type": "conv", "sx": 3}]}],
     "layer 1 (residual), inner layer 0 (conv): missing field 'filters'"),
    ([INPUT_28, {"type": "residual", "layers": []}],
     "layer 1 (residual): layers must be a non-empty list of layer definitions"),
    ([INPUT_28, {"type": "residual", "layers": [{"type": "softmax", "num_classes": 2}]}],
     "layer 1 (residual), inner layer 0 (softmax): softmax must be the last layer"),
    # the index is the user's: layer 1's relu sugar does not shift it
    ([INPUT_28, {**CONV, "activation": "relu"}, {"type": "conv", "sx": 30, "filters": 1}],
     "layer 2 (conv): a 30x30 filter with pad 0 does not fit the 26x26x4 input volume"),
    ([INPUT_28, "conv"], "layer 1 (?): a layer definition must be a mapping"),
    ([INPUT_28, {"layer_type": "conv"}],
     "layer 1 (?): missing field 'type' (it has 'layer_type': this looks like a ConvNetJS"),
    ([{"type": "input", "sx": 28, "out_sx": 28, "sy": 28, "depth": 1}],
     "layer 0 (input): 'sx' is given twice"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_bad_spec(spec, message):
    with pytest.raises(SpecError) as info:
        resolve(spec)
    assert message in str(info.value)


@pytest.mark.parametrize("spec", [[], {"layers": []}, None])
def test_not_a_spec(spec):
    with pytest.raises(SpecError, match="non-empty list"):
        resolve(spec)


YAML_TEXT = """\
layers:
  - {type: input, sx: 28, sy: 28, depth: 1}
  - {type: conv, sx: 5, filters: 8, activation: relu}
"""
EXPECTED = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
            {"type": "conv", "sx": 5, "filters": 8, "activation": "relu"}]


def test_load_spec_sources(tmp_path):
    (tmp_path / "net.yaml").write_text(YAML_TEXT)
    (tmp_path / "net.yml").write_text(YAML_TEXT)
    (tmp_path / "net.json").write_text(json.dumps(EXPECTED))
    for source in [tmp_path / "net.yaml", str(tmp_path / "net.yml"), tmp_path / "net.json",
                   YAML_TEXT, json.dumps({"layers": EXPECTED}), EXPECTED, {"layers": EXPECTED}]:
        assert load_spec(source) == EXPECTED
    assert volumes(load_spec(tmp_path / "net.yaml")) == ["28x28x1", "24x24x8", "24x24x8"]


def test_load_spec_copies():
    spec = [dict(EXPECTED[0])]
    load_spec(spec)[0]["sx"] = 1
    assert spec[0]["sx"] == 28


def test_load_spec_document_extras(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(YAML_TEXT + "dataset: mnist\nrecipe: {epochs: 2}\n")
    doc = load_spec_document(path)
    assert (doc["dataset"], doc["recipe"], doc["layers"]) == ("mnist", {"epochs": 2}, EXPECTED)


@pytest.mark.parametrize(("text", "message"), [
    ("layers: [\n", "neither valid JSON nor YAML"),
    ("lenet5", "got str 'lenet5'"),
    ('{"layer": []}', "unknown top-level key 'layer' in the spec (did you mean 'layers'?)"),
    ('{"name": "x"}', "needs 'layers'"),
    ("missing.yaml", "spec file 'missing.yaml' does not exist"),
])
def test_load_spec_errors(text, message):
    with pytest.raises(SpecError) as info:
        load_spec(text)
    assert message in str(info.value)


def test_load_spec_bad_files(tmp_path):
    (tmp_path / "bad.json").write_text("[1,")
    (tmp_path / "net.txt").write_text("[]")
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path / "bad.json")
    with pytest.raises(SpecError, match="must end in .json, .yaml, .yml"):
        load_spec(tmp_path / "net.txt")
