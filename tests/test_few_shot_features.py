"""The features "train your own" learns from (convscope.live.features.default_features: where
the last conv stage begins, grid-pooled) and the k-NN's defaults (k = 1 on centred features):
the rule's layer for the bundled models, cifar10-94's architecture and Python modules; the
pooled shapes and values; the choice reaching the Teacher, saved heads and the Live page's
teach state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_teach import tinted
from torch import nn

from convscope.augment import to_input
from convscope.layer_kinds import Volume
from convscope.live.examples import ExampleSet
from convscope.live.features import (
    MAX_FEATURES,
    FeatureError,
    FeatureExtractor,
    default_features,
    open_features,
    pooled,
    pooled_size,
)
from convscope.live.learners import KNN, LearnerError, learner_from
from convscope.live.teacher import Teacher, head_stream
from convscope.probes import network_graph, node_outputs
from convscope.registry import get_model_entry
from convscope.server.catalog import untrained_entry

MODULE = '''
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
'''


def chosen(model: nn.Module, volume: Volume) -> tuple[str, str, int]:
    node, pooling = default_features(network_graph(model, volume).nodes)
    return node.name, pooling, pooled_size(node.out_volume, pooling)


@pytest.mark.parametrize("model, layer, size", [
    ("cifar10-convnetjs", "blocks.6", 1280),  # the 8x8x20 pool before the last conv (8x8)
    ("mnist-convnetjs", "blocks.3", 1152),  # the 12x12x8 pool before the last conv
    ("cifar10-ordinary", "blocks.4", 10),  # no conv layer: the layer before the classifier
])
def test_the_rule_for_the_bundled_models(model: str, layer: str, size: int):
    extractor, source = open_features(model)
    assert source == {"model": model, "layer": layer, "size": size,
                      "pooling": "grid" if size != 10 else "flat"}
    assert extractor.size == size and extractor(np.zeros((40, 50, 3), np.uint8)).shape == (1, size)


def test_the_rule_for_cifar10_94s_architecture():
    entry = untrained_entry(get_model_entry("cifar10-94"), "c94")
    node, pooling = default_features(entry.graph.nodes)
    # blocks 1-3 work at 15x15, 7x7 and 3x3: the pool starting the last (3x3) block, flat
    assert (node.name, node.type, str(node.out_volume), pooling) == \
        ("blocks.18", "pool", "3x3x256", "grid")
    assert pooled_size(node.out_volume, pooling) == 2304


def test_the_rule_for_modules():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    assert chosen(net, Volume(32, 32, 3)) == ("5", "grid", 8 * 8 * 16)  # the 8x8 pool
    strided = nn.Sequential(nn.Conv2d(3, 64, 3, stride=2, padding=1), nn.ReLU(),
                            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),
                            nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
                            nn.Flatten(), nn.Linear(128 * 16 * 16, 3))
    # the last conv works on 16x16 maps: the first output at 16x16 (16x16x128: more than
    # MAX_FEATURES values, pooled to a 5x5 grid)
    assert chosen(strided, Volume(64, 64, 3)) == ("2", "grid", 5 * 5 * 128)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 4))
    assert chosen(mlp, Volume(8, 8, 3)) == ("2", "flat", 32)  # before the classifier


def test_pooled_shapes_and_values():
    maps = torch.randn(2, 128, 16, 16)
    assert pooled(maps, "flat").shape == (2, 128 * 256)
    assert torch.equal(pooled(maps, "avg"), maps.mean(dim=(2, 3)))
    assert torch.equal(pooled(maps, "max"), maps.amax(dim=(2, 3)))
    grid = pooled(maps, "grid")
    assert grid.shape == (2, 5 * 5 * 128) and grid.shape[1] <= MAX_FEATURES
    cells = grid.reshape(2, 128, 5, 5)  # adaptive cells: rows 0-3 and columns 0-3 first
    assert torch.allclose(cells[:, :, 0, 0], maps[:, :, 0:4, 0:4].mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(cells[:, :, 4, 4], maps[:, :, 12:16, 12:16].mean(dim=(2, 3)),
                          atol=1e-6)
    small = torch.randn(3, 20, 8, 8)
    assert torch.equal(pooled(small, "grid"), small.reshape(3, -1))  # few enough: flat
    for volume in (Volume(16, 16, 128), Volume(8, 8, 20), Volume(31, 31, 24)):
        for pooling in ("flat", "grid", "avg", "max"):
            x = torch.randn(1, volume.depth, volume.sy, volume.sx)
            assert pooled(x, pooling).shape[1] == pooled_size(volume, pooling)
    with pytest.raises(FeatureError, match="pooling must be one of flat, grid, avg, max"):
        FeatureExtractor(nn.Sequential(nn.Conv2d(3, 4, 3)), 1, volume=Volume(8, 8, 3),
                         pooling="mean")


def test_extractor_features_are_the_layer_pooled(tmp_path: Path):
    (tmp_path / "net.py").write_text(MODULE)
    torch.manual_seed(0)
    ref = f"{tmp_path / 'net.py'}:make"
    extractor, source = open_features(ref, trust_code=True)
    assert (source["layer"], source["pooling"], source["size"]) == ("5", "grid", 3872)
    # reopened from what a saved set records: "5" is the node named so (index 6), not index 5
    assert open_features(ref, "5", True, "grid")[1] == source
    frames = np.random.default_rng(0).integers(0, 255, (3, 300, 300, 3), dtype=np.uint8)
    values = extractor(frames)
    fitted = extractor.fit(frames)
    assert tuple(fitted.shape) == (3, 3, 224, 224)
    found, _ = node_outputs(extractor.model, to_input(fitted), [extractor.node.index])
    # 56x56x32 maps (100,352 values) pooled to the finest grid of at most 4,096: 11x11
    assert found[extractor.node.index].shape[2:] == (56, 56)
    assert values.shape == (3, 11 * 11 * 32) and extractor.size == 3872
    flat = FeatureExtractor(extractor.model, extractor.node.index,
                            volume=extractor.volume)(frames)
    expected = pooled(torch.from_numpy(flat).reshape(3, 32, 56, 56), "grid").numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-5)


def test_the_knn_defaults_and_old_saved_heads():
    knn = KNN()
    assert (knn.k, knn.scale) == (1, "centre")
    x = np.array([[10, 0], [10, 1], [12, 5], [12, 6]], np.float32)
    knn.fit(x, [0, 0, 1, 1], 2)
    np.testing.assert_allclose(knn.scaling.mean, x.mean(axis=0))
    np.testing.assert_allclose(knn.scaling.scale, 1.0)
    # centred, [11, 0.5] and [11, 5.5] point opposite ways; uncentred, both are near [1, 0]
    assert knn.proba([[11, 0.5], [11, 5.5]]).argmax(1).tolist() == [0, 1]
    assert KNN(scale=False).scale == "none" and KNN(scale=True).scale == "standardise"
    old = KNN(5, True).fit(x, [0, 0, 1, 1], 2)  # a head saved before: "scale": true
    settings = {**old.settings(), "scale": True}
    again = learner_from(settings, old.arrays())
    assert again.scale == "standardise"
    np.testing.assert_array_equal(again.proba(x), old.proba(x))
    with pytest.raises(LearnerError, match="scale must be one of centre, standardise, none"):
        KNN(scale="whiten")
    with pytest.raises(LearnerError, match="incomplete or damaged"):
        learner_from({**settings, "scale": "whiten"}, old.arrays())


def test_the_choice_reaches_saved_heads_and_the_stream(tmp_path: Path):
    rng = np.random.default_rng(3)

    def frame(channel: int) -> np.ndarray:
        return tinted(rng, channel, 32, 32)

    teacher = Teacher(classes=["red", "blue"], model="cifar10-convnetjs")
    assert teacher.examples.source == {"model": "cifar10-convnetjs", "layer": "blocks.6",
                                       "pooling": "grid", "size": 1280}
    teacher.record([frame(0) for _ in range(4)], "red")
    teacher.record([frame(2) for _ in range(4)], "blue")
    teacher.train()
    teacher.save(tmp_path / "set")
    extractor, _, _ = head_stream(tmp_path / "set")
    assert (extractor.layer_name, extractor.pooling, extractor.size) == ("blocks.6", "grid", 1280)
    assert Teacher.load(tmp_path / "set").predict(frame(2))[0]["name"] == "blue"
    # a set saved before the pooling was recorded: its layer, flat
    old = ExampleSet.with_classes(2, {"model": "cifar10-convnetjs", "layer": "blocks.9",
                                      "size": 320})
    assert Teacher(examples=old).extractor.size == 320
    assert (Teacher(layer="blocks.9").extractor.pooling, Teacher().extractor.pooling) == \
        ("flat", "grid")


def test_the_live_pages_teach_state_pools_as_the_rule_says(tmp_path: Path):
    from convscope.server.module_entry import module_entry
    from convscope.server.teach import TeachState

    (tmp_path / "net.py").write_text(MODULE)
    torch.manual_seed(0)
    entry = module_entry(f"{tmp_path / 'net.py'}:make", Volume(64, 64, 3))
    state = TeachState(entry, tmp_path / "teach")
    assert state.source["layer"] == "5" and state.source["pooling"] == "grid"
    assert state.source["size"] == 11 * 11 * 32  # 16x16x32 maps: 8,192 values, pooled
    state.control({"record": {"class": "1"}})
    maps = torch.randn(32, 16, 16)
    state.frame(maps, torch.zeros(3, 64, 64, dtype=torch.uint8))
    assert state.examples.features.shape == (1, 3872)
    np.testing.assert_allclose(state.examples.features[0], pooled(maps[None], "grid")[0],
                               rtol=1e-6)
