"""Importing ConvNetJS snapshots: ConvNetJS's own forward pass (ported loop for loop from its
source) agrees layer by layer with the imported SpecNet; bad snapshots name the layer and
write nothing; the run directory works with eval, summary and load_run."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import convscope
from convscope.augment import to_input
from convscope.cli import main
from convscope.convnetjs import (
    SnapshotError,
    import_convnetjs,
    load_exact,
    read_snapshot,
    to_convnetjs,
)
from convscope.errors import SpecError
from convscope.layers import ConvNetJSDropout, InputOffset
from convscope.probes import activations, confusion_with_samples, conv_step, layer_weights

SHIPPED = {  # file -> (parameters, input volume)
    "cifar10_snapshot_2layers.json": (30840, "32x32x3"),
    "cifar10_snapshot_convnet.json": (22466, "32x32x3"),
    "mnist_snapshot2_convnet.json": (5994, "28x28x1"),
    "mnist_snapshot2_convnet2.json": (5994, "28x28x1"),
    "mnist_snapshot_2layers.json": (7960, "28x28x1"),
    "mnist_snapshot_convnet.json": (5994, "24x24x1"),
    "mnist_snapshot_convnet2.json": (5994, "24x24x1"),
    "mnist_snapshot_convnet3.json": (5994, "24x24x1"),
}


def ml4a_dir() -> Path:
    """``$CONVSCOPE_DATA/ml4a`` with the chapter's snapshots, or skip."""
    root = os.environ.get("CONVSCOPE_DATA")
    if not root:
        pytest.skip("CONVSCOPE_DATA is not set: the chapter's ConvNetJS files are not here")
    folder = Path(root) / "ml4a"
    if not (folder / "cifar10_snapshot_convnet.json").is_file():
        pytest.skip(f"{folder} lacks the chapter's ConvNetJS snapshots")
    return folder


# ---- ConvNetJS's forward pass, ported from its source (Vol storage order) -------------------

def values(vol: dict) -> np.ndarray:
    w, n = vol["w"], vol["sx"] * vol["sy"] * vol["depth"]
    return np.array([w[str(i)] for i in range(n)] if isinstance(w, dict) else w, np.float64)


def convnetjs_forward(net: dict, sx: int, sy: int, depth: int, w: np.ndarray) -> list[tuple]:
    """Every layer's output Vol (sx, sy, depth, w) for the input Vol, as ConvNetJS computes."""
    vols = [(sx, sy, depth, w)]
    for layer in net["layers"][1:]:
        kind, (vsx, vsy, vd, vw) = layer["layer_type"], vols[-1]
        osx, osy, od = layer["out_sx"], layer["out_sy"], layer["out_depth"]
        out = np.zeros(osx * osy * od)
        if kind in ("conv", "pool"):
            for d in range(od):
                f = layer["filters"][d] if kind == "conv" else None
                fw = values(f) if f else None
                for ax in range(osx):
                    for ay in range(osy):
                        x0, y0 = -layer["pad"] + ax * layer["stride"], -layer["pad"] + ay * \
                            layer["stride"]
                        a = 0.0 if f else -99999.0
                        for fx in range(layer["sx"]):
                            for fy in range(layer["sy"]):
                                ox, oy = x0 + fx, y0 + fy
                                if not (0 <= oy < vsy and 0 <= ox < vsx):
                                    continue
                                if f:
                                    for fd in range(f["depth"]):
                                        a += fw[(f["sx"] * fy + fx) * f["depth"] + fd] * \
                                            vw[(vsx * oy + ox) * vd + fd]
                                else:
                                    a = max(a, vw[(vsx * oy + ox) * vd + d])
                        if f:
                            a += values(layer["biases"])[d]
                        out[(osx * ay + ax) * od + d] = a
        elif kind == "fc":
            b = values(layer["biases"])
            out = np.array([vw[: layer["num_inputs"]] @ values(f) + b[i]
                            for i, f in enumerate(layer["filters"])])
        elif kind == "relu":
            out = np.maximum(vw, 0)
        elif kind == "sigmoid":
            out = 1 / (1 + np.exp(-vw))
        elif kind == "tanh":
            out = np.tanh(vw)
        elif kind == "dropout":
            out = vw * layer["drop_prob"]
        elif kind == "softmax":
            e = np.exp(vw - vw.max())
            out = e / e.sum()
        vols.append((osx, osy, od, out))
    return vols


def as_tensor(vol: tuple) -> torch.Tensor:
    sx, sy, depth, w = vol
    return torch.from_numpy(w.reshape(sy, sx, depth).transpose(2, 0, 1).copy())


# ---- a small snapshot with every supported layer, non-square everywhere ---------------------

def vol(rng: np.random.Generator, sx: int, sy: int, depth: int, keyed: bool) -> dict:
    w = rng.normal(size=sx * sy * depth).tolist()
    return {"sx": sx, "sy": sy, "depth": depth,
            "w": {str(i): v for i, v in enumerate(w)} if keyed else w}


def small_snapshot(keyed: bool = True, seed: int = 0) -> dict:
    """7x6x2 -> conv 3x2 s2 p1 (4x4x3) -> relu -> pool 3 s2 p1 (2x2x3) -> conv 1x1 (2x2x4)
    -> tanh -> fc 5 -> sigmoid -> dropout -> fc 4 -> softmax."""
    rng = np.random.default_rng(seed)

    def sizes(out: tuple[int, int, int], kind: str, **more) -> dict:
        return {"out_sx": out[0], "out_sy": out[1], "out_depth": out[2], "layer_type": kind,
                **more}

    def weighted(count: int, shape: tuple[int, int, int]) -> dict:
        return {"l1_decay_mul": 0, "l2_decay_mul": 1,
                "filters": [vol(rng, *shape, keyed) for _ in range(count)],
                "biases": vol(rng, 1, 1, count, keyed)}

    return {"layers": [
        sizes((7, 6, 2), "input"),
        sizes((4, 4, 3), "conv", sx=3, sy=2, stride=2, in_depth=2, pad=1, **weighted(3, (3, 2, 2))),
        sizes((4, 4, 3), "relu"),
        sizes((2, 2, 3), "pool", sx=3, sy=3, stride=2, in_depth=3, pad=1),
        sizes((2, 2, 4), "conv", sx=1, sy=1, stride=1, in_depth=3, pad=0, **weighted(4, (1, 1, 3))),
        sizes((2, 2, 4), "tanh"),
        sizes((1, 1, 5), "fc", num_inputs=16, **weighted(5, (1, 1, 16))),
        sizes((1, 1, 5), "sigmoid"),
        sizes((1, 1, 5), "dropout", drop_prob=0.25),
        sizes((1, 1, 4), "fc", num_inputs=5, **weighted(4, (1, 1, 5))),
        sizes((1, 1, 4), "softmax", num_inputs=4),
    ]}


@pytest.mark.parametrize("keyed", [True, False], ids=["w-object", "w-array"])
def test_imported_network_computes_what_convnetjs_computes_at_every_layer(keyed: bool):
    snapshot = small_snapshot(keyed)
    model = read_snapshot(snapshot).model()
    assert [str(la.out_volume) for la in model.layers] == [
        f"{la['out_sx']}x{la['out_sy']}x{la['out_depth']}" for la in snapshot["layers"]]
    rng = np.random.default_rng(1)
    for _ in range(3):
        w = rng.uniform(-0.5, 0.5, 7 * 6 * 2)
        expected = convnetjs_forward(snapshot, 7, 6, 2, w)
        with torch.no_grad():
            outputs = model.forward_all(as_tensor(expected[0])[None])
        for layer, out, vol_ in zip(model.layers, outputs, expected, strict=True):
            torch.testing.assert_close(out[0], as_tensor(vol_), rtol=0, atol=1e-12,
                                       msg=f"layer {layer.index} ({layer.type})")


def test_input_offset_and_convnetjs_dropout_modules():
    snapshot = small_snapshot()
    snapshot["layers"][0]["input_offset"] = 0.5
    model = read_snapshot(snapshot).model()
    assert isinstance(model.blocks[0], InputOffset) and model.layers[0].params["offset"] == 0.5
    assert read_snapshot(snapshot, input_offset=0).model().layers[0].params.get("offset") is None
    dropout = model.blocks[8]
    assert isinstance(dropout, ConvNetJSDropout)
    x = torch.ones(2000, 5, dtype=torch.float64)
    assert torch.equal(dropout.eval()(x), x * 0.25)  # prediction: times drop_prob
    kept = dropout.train()(x)
    assert set(kept.unique().tolist()) <= {0.0, 1.0}  # training: no rescaling
    assert abs(kept.mean().item() - 0.75) < 0.05


def _truncate(text: str) -> str:
    return text[: len(text) * 2 // 3]


def _mutate(path: list, value: object):
    def change(net: dict) -> dict:
        target = net
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return net
    return change


BAD = [
    ("truncated", None, "not valid JSON after layer 6 (fc) began"),
    ("unknown type", _mutate(["layers", 5, "layer_type"], "swish"),
     "layer 5 (swish): unknown layer type 'swish'; convscope imports input, conv"),
    ("maxout", _mutate(["layers", 2, "layer_type"], "maxout"),
     "layer 2 (maxout): ConvNetJS's maxout layer has no convscope equivalent"),
    ("lrn without k", _mutate(["layers", 2, "layer_type"], "lrn"), "layer 2 (lrn): missing 'k'"),
    ("short filter", _mutate(["layers", 1, "filters", 2, "w"], [0.1] * 11),
     "layer 1 (conv): filter 2 holds 11 weights, but a 3x2x2 Vol has 12"),
    ("filter shape", _mutate(["layers", 4, "filters", 0, "depth"], 2),
     "layer 4 (conv): filter 0 is a 1x1x2 Vol, but the layer needs 1x1x3"),
    ("missing filter", _mutate(["layers", 4, "filters"], []),
     "layer 4 (conv): has 0 filters, but out_depth says 4"),
    ("stored size", _mutate(["layers", 3, "out_sx"], 3),
     "layer 3 (pool): stored output size 3x2x3 does not fit: on its input it makes 2x2x3"),
    ("num_inputs", _mutate(["layers", 6, "num_inputs"], 15),
     "layer 6 (fc): num_inputs is 15, but its input 2x2x4 has 16 values"),
    ("no biases", _mutate(["layers", 9, "biases"], KeyError),
     "layer 9 (fc): biases must be a Vol object"),
    ("NaN weight", _mutate(["layers", 9, "filters", 1, "w", "3"], None),
     "layer 9 (fc): filter 1: weight 3 is None, not a finite number"),
    ("in_depth", _mutate(["layers", 1, "in_depth"], 3),
     "layer 1 (conv): in_depth is 3, but its input is 7x6x2"),
    ("softmax after relu", lambda net: {"layers": net["layers"][:3] + [
        {"out_sx": 4, "out_sy": 4, "out_depth": 3, "layer_type": "softmax"}]},
     "layer 3 (softmax): softmax must be the last layer and follow an fc layer"),
]


@pytest.mark.parametrize("change,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_snapshots_name_the_layer_and_write_nothing(tmp_path: Path, change, message: str):
    net = small_snapshot()
    text = json.dumps(net)
    text = _truncate(text) if change is None else json.dumps(change(copy.deepcopy(net)))
    source = tmp_path / "bad_snapshot.json"
    source.write_text(text)
    with pytest.raises(SnapshotError) as err:
        import_convnetjs(source, tmp_path / "run", data="mnist")
    assert str(err.value).startswith("bad_snapshot.json: ")
    assert message in str(err.value)
    assert not (tmp_path / "run").exists()
    assert main(["import-convnetjs", str(source), "--out", str(tmp_path / "run2")]) == 2
    assert not (tmp_path / "run2").exists()


def mnist_snapshot() -> dict:
    """28x28x1 -> conv 5x5 x3 s2 p2 (14x14x3) -> relu -> pool 2 (7x7x3) -> fc 10 -> softmax."""
    rng = np.random.default_rng(3)
    return {"layers": [
        {"out_sx": 28, "out_sy": 28, "out_depth": 1, "layer_type": "input"},
        {"out_sx": 14, "out_sy": 14, "out_depth": 3, "layer_type": "conv", "sx": 5, "sy": 5,
         "stride": 2, "pad": 2, "in_depth": 1,
         "filters": [vol(rng, 5, 5, 1, True) for _ in range(3)], "biases": vol(rng, 1, 1, 3, True)},
        {"out_sx": 14, "out_sy": 14, "out_depth": 3, "layer_type": "relu"},
        {"out_sx": 7, "out_sy": 7, "out_depth": 3, "layer_type": "pool", "sx": 2, "sy": 2,
         "stride": 2, "pad": 0, "in_depth": 3},
        {"out_sx": 1, "out_sy": 1, "out_depth": 10, "layer_type": "fc", "num_inputs": 147,
         "filters": [vol(rng, 1, 1, 147, True) for _ in range(10)],
         "biases": vol(rng, 1, 1, 10, True)},
        {"out_sx": 1, "out_sy": 1, "out_depth": 10, "layer_type": "softmax", "num_inputs": 10},
    ]}


def test_cli_import_writes_a_run_that_eval_and_load_run_use(tmp_path: Path, fake_data,
                                                            capsys: pytest.CaptureFixture):
    root, _ = fake_data
    source = tmp_path / "net.json"
    source.write_text(json.dumps(mnist_snapshot()))
    run_dir = tmp_path / "imported"
    assert main(["import-convnetjs", str(source), "--out", str(run_dir), "--eval",
                 "--data-dir", str(root)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["kind"] == "spec"
    assert config["model"]["source"]["file"] == "net.json"
    assert len(config["model"]["source"]["sha256"]) == 64
    run = convscope.load_run(run_dir)
    assert run.results["test"]["total"] == 10
    assert run.model.layers[-1].type == "softmax"
    exact = load_exact(run)
    assert exact.blocks[4].weight.dtype == torch.float64
    assert torch.equal(exact.blocks[4].weight, read_snapshot(source).model().blocks[4].weight)
    assert main(["eval", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 10
    assert main(["summary", str(run_dir)]) == 0
    assert "conv 5x5 x3 s2 p2" in capsys.readouterr().out
    assert main(["import-convnetjs", str(source), "--out", str(run_dir)]) == 2  # not empty
    assert "not empty" in capsys.readouterr().err


@pytest.mark.realdata
def test_shipped_snapshots_import_with_their_volumes():
    folder = ml4a_dir()
    for name, (params, volume) in SHIPPED.items():
        snapshot = read_snapshot(folder / name)
        model = snapshot.model()
        assert sum(p.numel() for p in model.parameters()) == params, name
        assert str(model.input_volume) == volume, name
        again = read_snapshot(to_convnetjs(model))  # lossless round trip
        assert again.spec == snapshot.spec
        assert all(torch.equal(again.state[k], v) for k, v in snapshot.state.items()), name


def test_explorer_probes_work_on_an_imported_network(tmp_path: Path, fake_data):
    root, _ = fake_data
    snapshot = mnist_snapshot()
    source = tmp_path / "net.json"
    source.write_text(json.dumps(snapshot))
    model = import_convnetjs(source, tmp_path / "run", input_offset=0.5).model
    test = convscope.load_dataset("mnist", "test", data_dir=root)
    x = to_input(test.images[0])
    outputs = activations(model, x)
    assert [tuple(o.shape) for o in outputs] == [la.out_volume.shape for la in model.layers]
    torch.testing.assert_close(outputs[0], x + 0.5)
    step = conv_step(model, x, layer=1, filter=2, ox=3, oy=4)
    assert step.output == pytest.approx(float(outputs[1][2, 4, 3]), abs=1e-5)
    weights, bias = layer_weights(model, 4)
    assert tuple(weights.shape) == (10, 3, 7, 7) and tuple(bias.shape) == (10,)
    row = values(snapshot["layers"][4]["filters"][6])  # ConvNetJS index ((7*y)+x)*3+d
    assert weights[6, 2, 5, 1] == pytest.approx(row[(7 * 5 + 1) * 3 + 2])
    assert confusion_with_samples(model, test).evaluation.total == 10


def test_spec_fields_for_convnetjs_semantics_are_checked():
    base = {"type": "input", "sx": 4, "sy": 4, "depth": 1}
    with pytest.raises(SpecError, match=r"layer 0 \(input\): offset must be a finite number"):
        convscope.resolve([{**base, "offset": float("nan")}])
    with pytest.raises(SpecError, match="scaling must be one of 'inverted', 'convnetjs'"):
        convscope.resolve([base, {"type": "dropout", "scaling": "keras"}])
    layers = convscope.resolve([{**base, "offset": 0.5},
                                {"type": "dropout", "drop_prob": 0.1, "scaling": "inverted"}])
    assert layers[0].params["offset"] == 0.5 and layers[1].params["scaling"] == "inverted"
    assert isinstance(convscope.build_model([base]).blocks[0], torch.nn.Identity)
