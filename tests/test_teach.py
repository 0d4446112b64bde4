"""Train your own (convscope.live: learners, example sets, Teacher): the learners on separable
features, a slider learning a known mapping from generated pictures, the awkward example sets
(empty, one class, a class with one example), saving and loading, unreadable saved files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from convscope.live import learners
from convscope.live.examples import ExampleSet, ExampleSetError, Head, Output
from convscope.live.features import default_features
from convscope.live.learners import KNN, LearnerError, LogisticRegression, ease, validation_split
from convscope.live.teacher import Teacher, osc_messages


def clusters(per_class: int, classes: int = 3, size: int = 32, seed: int = 0):
    """Features around ``classes`` random centres (well apart), with their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, size)) * 3
    labels = np.repeat(np.arange(classes), per_class)
    return (centres[labels] + rng.normal(size=(len(labels), size))).astype(np.float32), labels


@pytest.mark.parametrize("learner", [KNN(), LogisticRegression()])
def test_classifiers_learn_separable_features(learner):
    x, y = clusters(20)
    test_x, test_y = clusters(10, seed=0)[0] + np.random.default_rng(9).normal(
        size=(30, 32)).astype(np.float32) * 0.3, clusters(10)[1]
    p = learner.fit(x, y, 4).proba(test_x)  # a 4th class without examples
    assert p.shape == (30, 4) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert (p.argmax(1) == test_y).all() and (p[:, 3] < 0.01).all()


def test_knn_likelihoods_are_shares_of_the_k_votes():
    x = np.array([[1, 0], [1, 0.1], [1, -0.1], [0, 1], [0.1, 1]], np.float32)
    knn = KNN(k=3, scale=False).fit(x, [0, 0, 0, 1, 1], 2)
    assert knn.used_k == 2  # lowered to the smallest class: class 1 has two examples
    assert knn.proba([[1, 0.05]]).round(2).tolist() == [[1.0, 0.0]]
    assert knn.proba([[0.7, 0.7]]).argmax() in (0, 1)  # a tie goes to the nearest
    with pytest.raises(LearnerError, match="k must be at least 1"):
        KNN(k=0)


def test_validation_split_holds_out_15_percent_per_class():
    labels = np.array([0] * 20 + [1] * 7 + [2])
    train, val = validation_split(len(labels), labels)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(28))
    assert np.bincount(labels[val], minlength=3).tolist() == [3, 1, 0]  # one example: kept
    assert len(validation_split(6)[1]) == 0 and len(validation_split(100)[1]) == 15


def test_a_slider_learns_a_known_mapping_from_generated_pictures():
    """Pictures whose brightness is the target: the MLP on the default features predicts the
    brightness of new pictures within a mean absolute error of 0.1."""
    rng = np.random.default_rng(0)

    def picture(level: float) -> np.ndarray:
        noise = rng.integers(0, 30, (40, 40, 3))
        return np.clip(level * 200 + noise, 0, 255).astype(np.uint8)

    teacher = Teacher(sliders=["brightness"], model="cifar10-convnetjs")
    levels = rng.uniform(0, 1, 80)
    for level in levels:
        teacher.record(picture(level), level)
    head = teacher.train()
    assert head.scores[0]["metric"] == "mean absolute error" and head.scores[0]["validation"] == 12
    new = rng.uniform(0.05, 0.95, 20)
    found = np.array([teacher.predict(picture(v))[0]["value"] for v in new])
    assert np.abs(found - new).mean() < 0.1, np.abs(found - new).mean()


def tinted(rng: np.random.Generator, channel: int, height: int, width: int) -> np.ndarray:
    """A height x width RGB frame of ``rng``'s noise, mostly colour ``channel``."""
    frame = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    frame[..., channel] += 180
    return frame


def test_teacher_classes_predict_and_osc_messages(tmp_path: Path):
    rng = np.random.default_rng(1)

    def frame(channel: int) -> np.ndarray:
        return tinted(rng, channel, 48, 64)

    teacher = Teacher(classes=3, model="cifar10-convnetjs")  # labels "1", "2", "3" (ml4a keys)
    layer = default_features(teacher.extractor.nodes)[0].name
    assert teacher.examples.source["layer"] == layer == "blocks.6"  # the 8x8 pool, flat
    teacher.record([frame(0) for _ in range(6)], "1")
    teacher.record(np.stack([frame(2) for _ in range(6)]), "3")
    assert teacher.examples.counts() == [6, 0, 6] and teacher.examples.thumbnails.any()
    teacher.train()
    predicted = teacher.predict(frame(2))
    assert predicted[0]["name"] == "3" and predicted[0]["likelihoods"][2] > 0.5
    assert osc_messages(predicted) == {"classification": [3], "outputs": [3.0]}
    teacher.save(tmp_path / "set")
    again = Teacher.load(tmp_path / "set")
    assert again.predict(frame(0))[0]["name"] == "1"
    with pytest.raises(ExampleSetError, match="these examples have 1280 features"):
        Teacher(examples=again.examples, model="mnist-convnetjs")


def test_an_empty_set_one_class_and_a_class_with_one_example():
    examples = ExampleSet.with_classes(["a", "b"])
    with pytest.raises(ExampleSetError, match="empty; record some examples first"):
        examples.fit()
    x, y = clusters(8, classes=2)
    for vector in x[y == 0]:
        examples.add(vector, "a")
    with pytest.raises(ExampleSetError, match="at least two classes .only 'a' has any"):
        examples.fit()
    examples.add(x[y == 1][0], "b")  # one example of b
    head = examples.fit()
    assert head.learners[0].used_k == 1 and head.scores[0]["validation"] == 1
    assert head.predict(x[y == 1][1])[0]["name"] == "b"
    assert head.predict(x[y == 0][0])[0]["name"] == "a"


def test_bad_values_are_refused_with_one_line():
    examples = ExampleSet([Output("class", "classes", ["a"]), Output("y", "slider")])
    with pytest.raises(ExampleSetError, match=r"slider 'y' takes a value in \[0, 1\]"):
        examples.add([1.0, 2.0], {"class": "a", "y": 1.5})
    with pytest.raises(ExampleSetError, match="has no class 'c'; its classes: a"):
        examples.add([1.0, 2.0], ["c", 0.5])
    with pytest.raises(ExampleSetError, match="give 2 values"):
        examples.add([1.0, 2.0], "a")
    examples.add([1.0, 2.0], {"class": "a", "y": 0.5})
    with pytest.raises(ExampleSetError, match="3 features, the set's others 2"):
        examples.add([1.0, 2.0, 3.0], ["a", 0.5])
    with pytest.raises(ExampleSetError, match="finite"):
        examples.add([np.nan, 2.0], ["a", 0.5])
    with pytest.raises(ExampleSetError, match="add outputs before recording"):
        examples.add_output(Output("z", "slider"))
    with pytest.raises(LearnerError, match="unknown learner 'svm'"):
        learners.class_learner("svm")
    assert len(examples) == 1
    examples.remove(0)
    assert len(examples) == 0


def test_save_and_load_round_trip(tmp_path: Path):
    x, y = clusters(10)
    examples = ExampleSet([Output("class", "classes", ["a", "b", "c"], "logreg"),
                           Output("y", "slider", options={"hidden": 5, "epochs": 20})],
                          {"model": "m", "layer": "l"})
    for vector, label in zip(x, y, strict=True):
        examples.add(vector, [int(label), label / 2], np.full((20, 30, 3), label * 100, np.uint8))
    head = examples.fit()
    examples.save(tmp_path / "set", head)
    loaded, loaded_head = ExampleSet.load(tmp_path / "set"), Head.load(tmp_path / "set")
    assert np.array_equal(loaded.features, examples.features)
    assert np.array_equal(loaded.targets, examples.targets)
    assert np.array_equal(loaded.thumbnails, examples.thumbnails)
    assert [o.describe() for o in loaded.outputs] == [o.describe() for o in examples.outputs]
    assert loaded.source == {"model": "m", "layer": "l"}
    for vector in clusters(3, seed=5)[0]:
        assert loaded_head.predict(vector) == head.predict(vector)
    assert repr(loaded_head) == repr(head)
    assert "validation accuracy" in repr(head) and "mean absolute error" in repr(head)


def _saved(tmp_path: Path) -> tuple[Path, ExampleSet]:
    x, y = clusters(4, classes=2)
    examples = ExampleSet.with_classes(2)
    for vector, label in zip(x, y, strict=True):
        examples.add(vector, int(label))
    return examples.save(tmp_path / "set", examples.fit()), examples


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "examples.json").write_text("{not json"), "not readable JSON"),
    (lambda d: (d / "examples.json").unlink(), "no such file"),
    (lambda d: (d / "examples.json").write_text('{"convscope": "model"}'),
     "not a convscope examples file"),
    (lambda d: (d / "examples.safetensors").write_bytes(b"\x00" * 40), "not a safetensors file"),
    (lambda d: save_file({"features": np.zeros((2, 2), np.float32)},
                         str(d / "examples.safetensors")), "not the file examples.json describes"),
])
def test_unreadable_saved_sets_get_one_line_and_lose_nothing(tmp_path: Path, damage, message):
    directory, examples = _saved(tmp_path)
    teacher_examples = ExampleSet.load(directory)
    damage(directory)
    with pytest.raises(ExampleSetError, match=message) as info:
        ExampleSet.load(directory)
    assert "\n" not in str(info.value) and str(directory) in str(info.value)
    assert np.array_equal(teacher_examples.features, examples.features)  # nothing lost


def test_saved_files_that_lie_about_their_contents(tmp_path: Path):
    directory, _ = _saved(tmp_path)
    meta = json.loads((directory / "examples.json").read_text())
    meta["outputs"][0]["classes"] = ["only"]  # the stored labels name a class 1 too
    (directory / "examples.json").write_text(json.dumps(meta))
    with pytest.raises(ExampleSetError, match="saved example set is damaged .*has no class 1"):
        ExampleSet.load(directory)
    head = json.loads((directory / "head.json").read_text())
    head["outputs"][0]["trained"]["used_k"] = 0
    (directory / "head.json").write_text(json.dumps(head))
    with pytest.raises(ExampleSetError, match="saved head is damaged"):
        Head.load(directory)
    head["outputs"][0]["trained"]["used_k"] = 1
    (directory / "head.json").write_text(json.dumps(head))
    assert Head.load(directory).learners[0].scaling is not None  # k-NN's scaling comes back
    (directory / "head.safetensors").write_bytes(b"junk")
    with pytest.raises(ExampleSetError, match="head.safetensors: not a safetensors file"):
        Head.load(directory)


def test_ease_moves_a_share_of_the_way():
    assert ease([0.0, 1.0], [1.0, 0.0], 0.2).tolist() == pytest.approx([0.2, 0.8])
    assert ease(0.3, 0.9, 1.0) == pytest.approx(0.9)


# ---- the live page's side: the live WebSocket's teach commands ------------------------------

def coloured(channel: int, seed: int) -> np.ndarray:
    """A 64x64 RGBA frame, mostly one colour channel, with noise."""
    frame = np.random.default_rng(seed).integers(0, 60, (64, 64, 4), dtype=np.uint8)
    frame[..., channel] += 180
    frame[..., 3] = 255
    return frame


def test_the_live_socket_records_trains_predicts_sends_and_saves(tmp_path: Path):
    pytest.importorskip("pythonosc")
    from fastapi.testclient import TestClient
    from test_live_stream import OscListener

    from convscope.server.app import create_app
    from convscope.server.frames import decode_result, encode_frame

    live = "ws://127.0.0.1/api/models/cifar10-convnetjs/live"

    def teach(ws, **commands) -> dict:
        ws.send_text(json.dumps({"teach": commands}))
        answer = ws.receive_json()
        assert answer["type"] == "teach"
        return answer

    def frame(ws, picture) -> dict:
        ws.send_bytes(encode_frame(picture))
        return decode_result(ws.receive_bytes())[0]

    with TestClient(create_app(runs_dir=tmp_path)) as client, OscListener() as osc, \
            client.websocket_connect(live) as ws:
        ws.receive_json()
        assert teach(ws, outputs={"classes": ["red", "blue"]})["counts"] == [0, 0]
        assert "teach" not in frame(ws, coloured(0, 0))  # neither recording nor predicting
        assert "not a name" in teach(ws, add_class="../x")["error"]
        assert teach(ws, train={})["error"] == "the example set is empty; record some " \
            "examples first"
        for channel, name in ((0, "red"), (2, "blue")):
            teach(ws, record={"class": name})
            for seed in range(6):
                recorded = frame(ws, coloured(channel, seed))["teach"]["recorded"]
                assert recorded["label"] == name and recorded["thumb"].startswith("data:image/")
                with client.websocket_connect(live) as other:  # another page: not recording
                    other.receive_json()
                    assert "teach" not in frame(other, coloured(1, seed))
            teach(ws, record=None)
        state = teach(ws, train={"learner": "knn", "k": 3},
                      osc={"on": True, "classification": f"127.0.0.1:{osc.port}"})
        assert state["counts"] == [6, 6] and state["predicting"]
        assert state["scores"][0]["value"] == 1.0
        found = [frame(ws, coloured(c, 50 + c))["teach"]["prediction"][0]["name"]
                 for c in (0, 2, 2)]
        assert found == ["red", "blue", "blue"]
        assert osc.wait_for(3) == [("/classification", (1,)), ("/classification", (2,)),
                                   ("/classification", (2,))]
        saved = teach(ws, save="colours")
        assert saved["saved_to"] == str(tmp_path / "teach" / "colours")
        assert saved["saved"] == ["colours"]
        assert teach(ws, clear=True)["count"] == 0
        loaded = teach(ws, load="colours")
        assert loaded["count"] == 12 and len(loaded["examples"]) == 12 and loaded["predicting"]
        assert frame(ws, coloured(2, 99))["teach"]["prediction"][0]["name"] == "blue"
        (tmp_path / "teach" / "colours" / "examples.safetensors").write_bytes(b"junk")
        broken = teach(ws, load="colours")
        assert "not a safetensors file" in broken["error"] and broken["count"] == 12  # kept
    assert Head.load(tmp_path / "teach" / "colours").outputs[0].classes == ["red", "blue"]


def test_stream_head_sends_a_saved_heads_predictions(tmp_path: Path, capsys):
    pytest.importorskip("pythonosc")
    pytest.importorskip("cv2")
    from PIL import Image
    from test_live_stream import OscListener

    from convscope.cli import main

    teacher = Teacher(classes=["red", "blue"], sliders=["blueness"], model="cifar10-convnetjs")
    for seed in range(6):
        teacher.record(coloured(0, seed)[..., :3], {"class": "red", "blueness": 0.0})
        teacher.record(coloured(2, seed)[..., :3], {"class": "blue", "blueness": 1.0})
    teacher.train()
    teacher.save(tmp_path / "both")
    classes_only = Teacher(classes=["red", "blue"], model="cifar10-convnetjs")
    classes_only.examples.features = teacher.examples.features
    classes_only.examples.targets = teacher.examples.targets[:, :1]
    classes_only.examples.thumbnails = teacher.examples.thumbnails
    classes_only.train()
    classes_only.save(tmp_path / "classes")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, channel in enumerate((2, 0, 2)):
        Image.fromarray(coloured(channel, 70 + i)[..., :3]).save(folder / f"{i}.png")
    with OscListener() as osc:
        assert main(["stream", "--source", str(folder), "--head", str(tmp_path / "classes"),
                     "--osc", f"127.0.0.1:{osc.port}"]) == 0
        assert osc.wait_for(3) == [("/classification", (2,)), ("/classification", (1,)),
                                   ("/classification", (2,))]
    assert "the predictions of" in capsys.readouterr().err
    with OscListener() as osc:
        assert main(["stream", "--source", str(folder), "--head", str(tmp_path / "both"),
                     "--osc", f"127.0.0.1:{osc.port}", "--frames", "2"]) == 0
        got = osc.wait_for(2)
    assert [(address, round(args[0]), len(args)) for address, args in got] == [
        ("/wek/outputs", 2, 2), ("/wek/outputs", 1, 2)]
    assert got[0][1][1] > 0.7 and got[1][1][1] < 0.3  # the slider's blueness
    (tmp_path / "classes" / "head.json").write_text("[")
    assert main(["stream", "--source", str(folder), "--head", str(tmp_path / "classes")]) == 2
    assert "head.json: not readable JSON" in capsys.readouterr().err


def test_the_live_socket_sliders_and_bad_teach_commands(tmp_path: Path):
    pytest.importorskip("pythonosc")
    from fastapi.testclient import TestClient
    from test_live_stream import OscListener

    from convscope.server.app import create_app
    from convscope.server.frames import decode_result, encode_frame

    live = "ws://127.0.0.1/api/models/cifar10-convnetjs/live"
    with TestClient(create_app(runs_dir=tmp_path)) as client, OscListener() as osc, \
            client.websocket_connect(live) as ws:
        ws.receive_json()

        def teach(command) -> dict:
            ws.send_text(json.dumps({"teach": command}))
            return ws.receive_json()

        for command, expected in [
                ("x", "must be a JSON object"), ({"record": 3}, "record: give"),
                ({"record": {"class": "9"}}, "has no class '9'"), ({"lerp": 5}, "lerp must be"),
                ({"delete": 0}, "no example 0"), ({"load": "nothing"}, "no such file"),
                ({"save": "../../etc"}, "is not a name"), ({"outputs": [1]}, "outputs: give"),
                ({"osc": {"classification": "nowhere"}}, "is not host:port"),
                ({"train": {"learner": "svm"}}, "learner must be one of")]:
            answer = teach(command)
            assert answer["type"] == "teach" and expected in answer["error"], (command, answer)
        assert teach({"outputs": {"sliders": ["y"]}})["outputs"][0]["kind"] == "slider"
        for level in np.linspace(0, 1, 12):
            teach({"record": {"y": float(level)}})
            picture = np.full((32, 32, 3), int(40 + 200 * level), np.uint8)
            ws.send_bytes(encode_frame(picture))
            assert decode_result(ws.receive_bytes())[0]["teach"]["recorded"]["label"] == \
                f"y {level:.2f}"
        teach({"record": None})
        state = teach({"train": {"hidden": 8, "epochs": 200}, "lerp": 0.5,
                       "osc": {"on": True, "outputs": f"127.0.0.1:{osc.port}"}})
        assert state["scores"][0]["metric"] == "mean absolute error", state
        values = []
        for level in (40, 230, 230):  # dark, then bright: the shown value eases toward it
            ws.send_bytes(encode_frame(np.full((32, 32, 3), level, np.uint8)))
            values.append(decode_result(ws.receive_bytes())[0]["teach"]["prediction"][0])
        got = osc.wait_for(3)
    dark, bright = values[0]["target"], values[1]["target"]
    assert dark < 0.3 and bright > 0.7
    assert values[0]["value"] == pytest.approx(dark)  # the first prediction is shown as is
    assert values[1]["value"] == pytest.approx(dark + 0.5 * (bright - dark), abs=1e-5)
    assert values[2]["value"] == pytest.approx(values[1]["value"] + 0.5 * (
        bright - values[1]["value"]), abs=1e-5)
    assert [address for address, _ in got] == ["/wek/outputs"] * 3
    assert [len(args) for _, args in got] == [1, 1, 1]
    assert [args[0] for _, args in got] == pytest.approx([v["value"] for v in values], abs=1e-6)
