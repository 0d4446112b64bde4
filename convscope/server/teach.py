"""Train your own on the live page (ml4a's ConvnetClassifier / Regressor / Predictor): each
model's example set, trained head and settings live here, across reconnects of the page, and
are driven through the live WebSocket (``{"teach": {...}}`` control messages; the frames are
the live view's own). A recorded frame's features are where the last conv stage begins
(:func:`convscope.live.features.default_features`: node and pooling); its thumbnail is the
network's view of it.

Saved sets are run-like directories under ``<runs>/teach/NAME/`` (what ``convscope stream
--head`` takes). OSC out: ``/classification`` (int) and ``/wek/outputs`` (floats) as ml4a sends
them; a closed port is counted, never an error.
"""

from __future__ import annotations

import base64
import io
import re
import threading
from pathlib import Path

import numpy as np
import torch

from ..errors import ConvscopeError
from ..live.examples import ExampleSet, Head, Output
from ..live.features import default_features, pooled, pooled_size
from ..live.learners import CLASS_LEARNERS, DEFAULT_K, ease
from ..live.osc import CLASSIFICATION, OUTPUTS, OscSender
from ..live.teacher import osc_messages
from .catalog import Entry
from .errors import ApiError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_OUTPUTS, MAX_CLASSES = 16, 64
MAX_EXAMPLES = 5000


def _thumb(image: torch.Tensor) -> str:
    """A fitted uint8 (C, H, W) frame as a small JPEG data URL."""
    from PIL import Image

    array = image.permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    picture.convert("RGB").resize((48, 48)).save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _label(examples: ExampleSet, row: np.ndarray) -> str:
    return ", ".join(o.classes[int(v)] if o.kind == "classes" else f"{o.name} {v:.2f}"
                     for o, v in zip(examples.outputs, row, strict=True))


class TeachState:
    """One model's train-your-own state: examples, head, recording, prediction, OSC."""

    def __init__(self, entry: Entry, root: Path) -> None:
        self.entry, self.root = entry, root
        self.node, self.pooling = default_features(entry.graph.nodes)
        model = entry.id if entry.kind == "bundled" or entry.path is None else str(entry.path)
        self.source = {"model": model, "layer": self.node.name,  # what stream --head opens
                       "pooling": self.pooling,
                       "size": pooled_size(self.node.out_volume, self.pooling)}
        self.examples = ExampleSet.with_classes(["1", "2"], self.source)
        self.head: Head | None = None
        self.recording: dict[int, list] = {}  # each page (its socket) records its own frames
        self.predicting, self.lerp = False, 0.2
        self.shown: np.ndarray | None = None
        self.osc = False
        self.targets = {"classification": CLASSIFICATION, "outputs": OUTPUTS}
        self.senders: dict[str, OscSender] = {}
        self.lock = threading.Lock()
        self.thumbs: list[str] = []

    # --- control messages ---
    def control(self, message, owner: int = 0) -> dict:
        """Apply one ``teach`` control message (a dict of commands) of the page ``owner``; the
        state afterwards, with ``error`` (one line) when a command could not be done."""
        if not isinstance(message, dict):
            return {"type": "teach", **self.state(owner), "error": "teach settings must be a JSON "
                    "object of commands (docs/live.md, Train your own)"}
        with self.lock:
            try:
                done = self._apply(message, owner)
            except ApiError as exc:
                done = {"error": exc.message}
            except ConvscopeError as exc:
                done = {"error": str(exc)}
            return {"type": "teach", **self.state(owner), **done}

    def active(self, owner: int = 0) -> bool:
        """Whether the frames of page ``owner`` need this state (recording or predicting)."""
        return owner in self.recording or self.predicting

    def release(self, owner: int) -> None:
        """Page ``owner`` is gone: its recording stops."""
        with self.lock:
            self.recording.pop(owner, None)

    def _apply(self, m: dict, owner: int) -> dict:
        done: dict = {}
        if "outputs" in m:
            self._outputs(m["outputs"])
        if "add_class" in m:
            self._add_class(m["add_class"])
        if "record" in m:
            if m["record"] is None:
                self.recording.pop(owner, None)
            else:
                self.recording[owner] = self._values(m["record"])
        if "delete" in m:
            self._delete(m["delete"])
        if m.get("clear"):
            self.examples.clear()
            self.thumbs, self.head, self.predicting = [], None, False
        if "train" in m:
            self._train(m["train"])
        if "predict" in m:
            self.predicting = bool(m["predict"]) and self.head is not None
        if "lerp" in m:
            self.lerp = _number(m["lerp"], "lerp", 0.01, 1.0)
        if "osc" in m:
            self._osc(m["osc"])
        if "save" in m:
            done["saved_to"] = str(self._save(m["save"]))
        if "load" in m:
            self._load(m["load"])
        if m.get("examples") or "load" in m or "delete" in m or m.get("clear"):
            done["examples"] = self._listing()
        return done

    def _outputs(self, wanted) -> None:
        if len(self.examples):
            raise ApiError(400, "outputs can change only before recording (clear first)")
        if not isinstance(wanted, dict):
            raise ApiError(400, 'outputs: give {"classes": [names], "sliders": [names]}')
        classes, sliders = wanted.get("classes") or [], wanted.get("sliders") or []
        if not isinstance(classes, list) or not isinstance(sliders, list) or \
                len(classes) > MAX_CLASSES or len(sliders) > MAX_OUTPUTS:
            raise ApiError(400, f"outputs: at most {MAX_CLASSES} classes and {MAX_OUTPUTS} "
                                "sliders, as lists of names")
        outputs = [Output("class", "classes", [_name(c) for c in classes])] if classes else []
        outputs += [Output(_name(s), "slider") for s in sliders]
        self.examples = ExampleSet(outputs or None, self.source)
        self.head, self.predicting, self.shown = None, False, None

    def _add_class(self, name) -> None:
        first = next((o for o in self.examples.outputs if o.kind == "classes"), None)
        if first is not None and len(first.classes) >= MAX_CLASSES:
            raise ApiError(400, f"at most {MAX_CLASSES} classes")
        self.examples.add_class(_name(name))

    def _values(self, given) -> list:
        if not isinstance(given, dict):
            raise ApiError(400, 'record: give {"OUTPUT": value, ...} or null to stop')
        values = []
        for o in self.examples.outputs:
            value = given.get(o.name, 0.5 if o.kind == "slider" else None)
            o.value(value)  # checked now, one line if wrong
            values.append(value)
        return values

    def _delete(self, index) -> None:
        if not isinstance(index, int) or isinstance(index, bool):
            raise ApiError(400, "delete: give an example's index")
        self.examples.remove(index)
        del self.thumbs[index]

    def _train(self, options) -> None:
        options = options if isinstance(options, dict) else {}
        for o in self.examples.outputs:
            if o.kind == "classes":
                learner = str(options.get("learner", o.learner))
                if learner not in CLASS_LEARNERS:
                    raise ApiError(400, f"learner must be one of {', '.join(CLASS_LEARNERS)}")
                o.learner = learner
                o.options = {"k": int(_number(options.get("k", DEFAULT_K), "k", 1, 50))} \
                    if learner == "knn" else {}
            else:
                o.options = {"hidden": int(_number(options.get("hidden", 10), "hidden", 1, 200)),
                             "epochs": int(_number(options.get("epochs", 100), "epochs", 1,
                                                   2000))}
        self.head = self.examples.fit()
        self.predicting, self.shown = True, None

    def _osc(self, wanted) -> None:
        if not isinstance(wanted, dict):
            raise ApiError(400, 'osc: give {"on": true, "classification": "host:port", ...}')
        targets = dict(self.targets)
        for key in targets:
            if wanted.get(key) or wanted.get(f"{key}_address"):
                targets[key] = targets[key].with_(wanted.get(key) or None,
                                                  wanted.get(f"{key}_address") or None)
        self.close()
        self.targets, self.osc = targets, bool(wanted.get("on", self.osc))

    def _save(self, name) -> Path:
        directory = self.root / _name(name)
        return self.examples.save(directory, self.head)

    def _load(self, name) -> None:
        directory = self.root / _name(name)
        examples = ExampleSet.load(directory)  # nothing here changes if it cannot be read
        head = Head.load(directory) if (directory / "head.json").exists() else None
        if examples.source.get("size") != self.source["size"]:
            raise ApiError(400, f"{name} was recorded with {examples.source.get('size')} "
                                f"features of {examples.source.get('model')}; this model's "
                                f"{self.node.name} gives {self.source['size']}: open that model")
        self.examples, self.head = examples, head
        self.thumbs = [_thumb(torch.from_numpy(t).permute(2, 0, 1)) for t in examples.thumbnails]
        self.predicting, self.shown, self.recording = head is not None, None, {}

    def _listing(self) -> list[dict]:
        return [self._described(i) for i in range(len(self.examples))]

    def _described(self, index: int) -> dict:
        """Example ``index`` as the page shows it: label, class (of the classes output), thumb."""
        row = self.examples.targets[index]
        column = next((i for i, o in enumerate(self.examples.outputs) if o.kind == "classes"),
                      None)
        return {"index": index, "label": _label(self.examples, row), "thumb": self.thumbs[index],
                "class": None if column is None else int(row[column])}

    def saved(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "examples.json").is_file())

    def state(self, owner: int = 0) -> dict:
        first = next((o for o in self.examples.outputs if o.kind == "classes"), None)
        return {"features": self.source, "outputs": [o.describe() for o in self.examples.outputs],
                "count": len(self.examples), "counts": self.examples.counts() if first else [],
                "recording": owner in self.recording, "predicting": self.predicting,
                "trained": self.head is not None,
                "scores": self.head.scores if self.head else None, "lerp": self.lerp,
                "osc": self.osc_state(), "saved": self.saved(), "folder": str(self.root)}

    def osc_state(self) -> dict:
        return {"on": self.osc, **{k: str(t) for k, t in self.targets.items()},
                "sent": sum(s.sent for s in self.senders.values()),
                "failures": sum(s.failures for s in self.senders.values())}

    # --- frames ---
    def frame(self, features: torch.Tensor, fitted: torch.Tensor, owner: int = 0) -> dict:
        """One frame of page ``owner``: its features (the layer's output, pooled here) and
        fitted picture; record it and/or predict; what the page shows of it."""
        with self.lock:
            vector = pooled(features[None], self.pooling)[0].numpy()
            out: dict = {"count": len(self.examples)}
            if owner in self.recording:
                if len(self.examples) >= MAX_EXAMPLES:
                    self.recording.pop(owner)
                    out["error"] = f"at most {MAX_EXAMPLES} examples; recording stopped"
                else:
                    index = self.examples.add(vector, self.recording[owner],
                                              fitted.permute(1, 2, 0).numpy())
                    self.thumbs.append(_thumb(fitted))
                    out["recorded"] = self._described(index)
                    out["count"] = len(self.examples)
                first = next((o for o in self.examples.outputs if o.kind == "classes"), None)
                out["counts"] = self.examples.counts() if first else []
            if self.predicting and self.head is not None:
                out["prediction"] = self._predict(vector)
            return out

    def _predict(self, vector: np.ndarray) -> list[dict]:
        predictions = self.head.predict(vector)
        targets = np.array([p.get("value", 0.0) for p in predictions], np.float32)
        self.shown = targets if self.shown is None else ease(self.shown, targets, self.lerp)
        for p, value in zip(predictions, self.shown, strict=True):
            if "value" in p:
                p["target"], p["value"] = p["value"], float(value)
        if self.osc:
            self._send(osc_messages(predictions))
        return predictions

    def _send(self, messages: dict[str, list]) -> None:
        kinds = {o.kind for o in self.examples.outputs}
        for key, wanted in (("classification", "classes"), ("outputs", "slider")):
            if wanted in kinds and messages[key]:
                sender = self.senders.get(key)
                if sender is None:
                    sender = self.senders[key] = OscSender(self.targets[key])
                (sender.send_ints if key == "classification" else sender.send_floats)(
                    messages[key])

    def close(self) -> None:
        for sender in self.senders.values():
            sender.close()
        self.senders = {}


def _name(value) -> str:
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    if not NAME.fullmatch(text):
        raise ApiError(400, f"{str(value)[:40]!r} is not a name: give 1-64 letters, digits, "
                            "'.', '_' or '-'")
    return text


def _number(value, what: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not low <= number <= high:
        raise ApiError(400, f"{what} must be a number in [{low:g}, {high:g}], not {value!r}")
    return number


class TeachStore:
    """Every model's :class:`TeachState` of one explorer (kept while it runs), saving under
    ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.states: dict[str, TeachState] = {}
        self.lock = threading.Lock()

    def state(self, entry: Entry) -> TeachState:
        with self.lock:
            if entry.id not in self.states:
                self.states[entry.id] = TeachState(entry, self.root)
            return self.states[entry.id]

