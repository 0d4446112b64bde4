"""Train your own, from Python (a notebook) as from the live page: :class:`Teacher` records
frames' features under output values, trains a head in seconds and predicts new frames.

    teacher = Teacher(classes=["open hand", "fist"])        # the default feature network
    teacher.record(frames_of_hands, "open hand")
    teacher.record(frames_of_fists, "fist")
    head = teacher.train()                                  # Head(class (knn): validation ...)
    teacher.predict(frame)                                  # [{'output': 'class', 'name': ...}]
    teacher.save("my-gestures")                             # then: convscope stream --head ...

The features: where the last conv stage begins
(:func:`convscope.live.features.default_features`, chosen on MNIST training digits) of the
feature network (:func:`convscope.live.default_model`, a 32x32 view of each frame).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .examples import ExampleSet, ExampleSetError, Head, Output
from .features import FeatureExtractor, open_features, recorded_features, source_of
from .learners import one_thread
from .osc import CLASSIFICATION, OUTPUTS, OscSender


def thumbnail_of(frame) -> np.ndarray:
    """A frame as the uint8 RGB picture an example keeps (see :data:`examples.THUMB`)."""
    array = np.asarray(frame)
    return array if array.dtype == np.uint8 else np.clip(array, 0, 255).astype(np.uint8)


class Teacher:
    """Record, train and predict on top of a feature network. ``classes`` (names, or a count:
    labels 1..n as ml4a's keys 1-9) and ``sliders`` (names) make the outputs, unless an
    ``examples`` set is given; ``model`` and ``layer`` choose the features."""

    def __init__(self, classes=None, sliders=(), *, model: str | None = None,
                 layer: str | int | None = None, examples: ExampleSet | None = None,
                 trust_code: bool = False, extractor: FeatureExtractor | None = None) -> None:
        if extractor is None:
            source = (examples.source if examples is not None else {}) or {}
            same = model is None or model == source.get("model")
            pooling = None
            if layer is None and same:
                layer, pooling = recorded_features(source)
            extractor, found = open_features(model or source.get("model"), layer, trust_code,
                                             pooling)
        else:
            found = source_of(extractor, model)
        self.extractor = extractor
        if examples is None:
            outputs = [] if classes is None else [Output("class", "classes", _names(classes))]
            outputs += [Output(name, "slider") for name in sliders]
            examples = ExampleSet(outputs or None, found)
        elif examples.source.get("size") not in (None, extractor.size):
            raise ExampleSetError(f"these examples have {examples.source['size']} features, "
                                  f"{found['layer']} of {found['model']} gives "
                                  f"{extractor.size}; use the features they were recorded with")
        self.examples, self.head = examples, None

    def __repr__(self) -> str:
        return (f"Teacher({self.examples!r}, features: {self.examples.source.get('layer')} of "
                f"{self.examples.source.get('model')}, {'trained' if self.head else 'untrained'})")

    def features(self, frames) -> np.ndarray:
        """The features of frames (uint8 H x W x 3 arrays of any size, or a list of them)."""
        with one_thread():
            return self.extractor(frames)

    def record(self, frames, values) -> list[int]:
        """Add every frame of ``frames`` as an example with the output ``values`` (one value,
        a list per output or a dict by name). Returns the new examples' indices."""
        batch = [frames] if isinstance(frames, np.ndarray) and frames.ndim in (2, 3) \
            and not (frames.ndim == 3 and frames.shape[-1] not in (1, 3)) else list(frames)
        vectors = self.features(batch)
        return [self.examples.add(v, values, thumbnail_of(f)) for f, v in zip(batch, vectors,
                                                                              strict=True)]

    def train(self, seed: int = 0) -> Head:
        """Fit every output's learner (:meth:`ExampleSet.fit`); the head is kept for predict."""
        self.head = self.examples.fit(seed)
        return self.head

    def predict(self, frame) -> list[dict]:
        """One prediction per output for one frame (see :meth:`Head.predict`)."""
        if self.head is None:
            raise ExampleSetError("train first (there is no trained head yet)")
        return self.head.predict(self.features(frame)[0])

    def save(self, directory) -> Path:
        """The examples and the trained head, as :meth:`ExampleSet.save` writes them."""
        return self.examples.save(directory, self.head)

    @classmethod
    def load(cls, directory, trust_code: bool = False) -> Teacher:
        """A teacher on a saved set, with its head when one was saved."""
        examples = ExampleSet.load(directory)
        teacher = cls(examples=examples, trust_code=trust_code)
        if (Path(directory) / "head.json").exists():
            teacher.head = Head.load(directory)
        return teacher


def _names(classes) -> list[str]:
    return [str(i + 1) for i in range(classes)] if isinstance(classes, int) else list(classes)


def osc_messages(predictions: list[dict]) -> dict[str, list]:
    """What ml4a sends for a prediction: ``classification`` (to ``/classification``) the first
    classes output's class number (1-based, as its keys 1-9) and ``outputs`` (to
    ``/wek/outputs``) one float per output (a slider's value, a class output's number)."""
    numbers = [float(p["class"] + 1) if "class" in p else float(p["value"]) for p in predictions]
    classes = [int(p["class"]) + 1 for p in predictions if "class" in p]
    return {"classification": classes[:1], "outputs": numbers}


def head_stream(directory, model: str | None = None, osc: str | None = None,
                address: str | None = None, trust_code: bool = False):
    """What ``convscope stream --head DIR`` needs: the feature extractor the saved head was
    trained on (its model, or ``model``), the OSC target (a head with sliders: ml4a's
    ``/wek/outputs`` on 127.0.0.1:12000, one float per output; classes only:
    ``/classification`` on 127.0.0.1:8000, one int; ``osc``/``address`` change them) and
    ``sending(sender)``, the function that sends one frame's prediction through an OscSender."""
    head = Head.load(directory)
    layer, pooling = recorded_features(head.source)
    extractor, source = open_features(model or head.source.get("model"), layer, trust_code,
                                      pooling)
    if source["size"] != head.size:
        raise ExampleSetError(f"{directory} was trained on {head.size} features of "
                              f"{head.source.get('model')}; {source['layer']} of "
                              f"{source['model']} gives {source['size']}: give its --model")
    floats = any(o.kind == "slider" for o in head.outputs)
    target = (OUTPUTS if floats else CLASSIFICATION).with_(osc, address)

    def sending(sender: OscSender):
        def send(features: np.ndarray) -> None:
            messages = osc_messages(head.predict(features))
            if floats:
                sender.send_floats(messages["outputs"])
            else:
                sender.send_ints(messages["classification"])
        return send

    return extractor, target, sending
