"""Example sets of "train your own": outputs (named classes or sliders in [0, 1]), examples
(a feature vector, one value per output and a small thumbnail), and the trained head.

An :class:`ExampleSet` saves as a run-like directory: ``examples.json`` (the outputs, the
feature source, the count and a digest of the arrays) and ``examples.safetensors`` (features,
targets, thumbnails); once trained, ``head.json`` + ``head.safetensors`` too (:class:`Head`, what
``convscope stream --head DIR`` loads). Every write is atomic; nothing is ever pickled; a file
that cannot be read gets one :class:`ExampleSetError` line and changes nothing in memory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convscope._io import atomic_write, write_json_atomic
from convscope.errors import ConvscopeError

from .learners import LearnerError, SliderMLP, class_learner, learner_from, validation_split

THUMB = 48  # thumbnails are THUMB x THUMB RGB
FORMAT_VERSION = 1
EXAMPLES, HEAD = "examples", "head"
KINDS = ("classes", "slider")


class ExampleSetError(ConvscopeError):
    """An example set or head that cannot be used (a bad value, an unreadable file)."""


@dataclass
class Output:
    """One output: ``kind`` "classes" (``classes``: their names; ``learner`` "knn" or
    "logreg") or "slider" (a value in [0, 1]; ``learner`` "mlp"); ``options``: the learner's
    settings (``k``; ``hidden``, ``epochs``)."""

    name: str
    kind: str = "classes"
    classes: list[str] = field(default_factory=list)
    learner: str = ""
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ExampleSetError(f"output {self.name!r}: kind must be one of {KINDS}, "
                                  f"not {self.kind!r}")
        self.learner = self.learner or ("knn" if self.kind == "classes" else "mlp")
        self.classes = [str(c) for c in self.classes]
        if self.kind == "classes" and len(set(self.classes)) != len(self.classes):
            raise ExampleSetError(f"output {self.name!r}: class names must differ")

    def value(self, given) -> float:
        """The stored value of ``given``: a class's index (by name or index) or a slider's
        value in [0, 1]."""
        if self.kind == "slider":
            try:
                value = float(given)
            except (TypeError, ValueError):
                value = float("nan")
            if not 0.0 <= value <= 1.0:
                raise ExampleSetError(f"slider {self.name!r} takes a value in [0, 1], "
                                      f"not {given!r}")
            return value
        if isinstance(given, str) and given in self.classes:
            return float(self.classes.index(given))
        if isinstance(given, (int, np.integer)) and 0 <= given < len(self.classes):
            return float(given)
        raise ExampleSetError(f"output {self.name!r} has no class {given!r}; its classes: "
                              f"{', '.join(self.classes) or 'none yet (add one first)'}")

    def learner_object(self):
        if self.kind == "slider":
            return SliderMLP(**self.options)
        return class_learner(self.learner, **self.options)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "classes": list(self.classes),
                "learner": self.learner, "options": dict(self.options)}


def _output(data) -> Output:
    try:
        return Output(str(data["name"]), str(data["kind"]), list(data.get("classes", [])),
                      str(data.get("learner", "")), dict(data.get("options", {})))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ExampleSetError(f"an output is not described properly ({exc!r})") from None


class ExampleSet:
    """Examples recorded for ``outputs``; ``source`` says which features they are (model,
    layer, size), so that a head is used only with the features it was trained on."""

    def __init__(self, outputs: list[Output] | None = None, source: dict | None = None) -> None:
        self.outputs = list(outputs) if outputs is not None else [Output("class")]
        names = [o.name for o in self.outputs]
        if not names or len(set(names)) != len(names):
            raise ExampleSetError("an example set needs at least one output, with distinct names")
        self.source = dict(source or {})
        self.features = np.zeros((0, 0), np.float32)
        self.targets = np.zeros((0, len(self.outputs)), np.float32)
        self.thumbnails = np.zeros((0, THUMB, THUMB, 3), np.uint8)

    @classmethod
    def with_classes(cls, classes=9, source: dict | None = None) -> ExampleSet:
        """One output of classes: their names, or a count (ml4a's labels 1-9)."""
        names = [str(i + 1) for i in range(classes)] if isinstance(classes, int) else classes
        return cls([Output("class", "classes", list(names))], source)

    def __len__(self) -> int:
        return len(self.features)

    def __repr__(self) -> str:
        parts = [f"{o.name}: {len(o.classes)} classes" if o.kind == "classes"
                 else f"{o.name}: slider" for o in self.outputs]
        return f"ExampleSet({len(self)} examples; {'; '.join(parts)})"

    def output(self, name: str) -> Output:
        for o in self.outputs:
            if o.name == name:
                return o
        raise ExampleSetError(f"no output named {name!r}; outputs: "
                              f"{', '.join(o.name for o in self.outputs)}")

    def add_output(self, output: Output) -> None:
        """Add an output; only before recording (as ml4a's "Add Slider")."""
        if len(self):
            raise ExampleSetError("add outputs before recording examples (or clear them first)")
        if output.name in [o.name for o in self.outputs]:
            raise ExampleSetError(f"there is already an output named {output.name!r}")
        self.outputs.append(output)
        self.targets = np.zeros((0, len(self.outputs)), np.float32)

    def add_class(self, name: str, output: str | None = None) -> int:
        """Add a class to the classes output ``output`` (the first one by default)."""
        target = self.output(output) if output else self._first("classes")
        if str(name) in target.classes:
            raise ExampleSetError(f"output {target.name!r} already has a class {name!r}")
        target.classes.append(str(name))
        return len(target.classes) - 1

    def _first(self, kind: str) -> Output:
        for o in self.outputs:
            if o.kind == kind:
                return o
        raise ExampleSetError(f"this example set has no {kind} output")

    def add(self, features, values, thumbnail=None) -> int:
        """Record one example: its feature vector, a value per output (a dict by output name,
        a list in order, or one value when there is one output), an optional RGB thumbnail.
        Returns its index."""
        vector = np.asarray(features, dtype=np.float32).reshape(-1)
        if len(self) and vector.size != self.features.shape[1]:
            raise ExampleSetError(f"this example has {vector.size} features, the set's others "
                                  f"{self.features.shape[1]}; record with the same features")
        if not vector.size or not np.isfinite(vector).all():
            raise ExampleSetError("an example's features must be finite numbers")
        row = np.array([o.value(v) for o, v in zip(self.outputs, self._values(values),
                                                   strict=True)], np.float32)
        self.features = np.concatenate([self.features.reshape(len(self), vector.size),
                                        vector[None]])
        self.targets = np.concatenate([self.targets, row[None]])
        self.thumbnails = np.concatenate([self.thumbnails, _thumbnail(thumbnail)[None]])
        return len(self) - 1

    def _values(self, values) -> list:
        if isinstance(values, dict):
            missing = [o.name for o in self.outputs if o.name not in values]
            if missing:
                raise ExampleSetError(f"no value given for {', '.join(missing)}")
            return [values[o.name] for o in self.outputs]
        if isinstance(values, (list, tuple)):
            if len(values) != len(self.outputs):
                raise ExampleSetError(f"give {len(self.outputs)} values, one per output")
            return list(values)
        if len(self.outputs) != 1:
            raise ExampleSetError(f"give {len(self.outputs)} values, one per output")
        return [values]

    def remove(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise ExampleSetError(f"no example {index} (there are {len(self)})")
        keep = np.arange(len(self)) != index
        self.features, self.targets = self.features[keep], self.targets[keep]
        self.thumbnails = self.thumbnails[keep]

    def clear(self) -> None:
        self.features = np.zeros((0, 0), np.float32)
        self.targets = self.targets[:0]
        self.thumbnails = self.thumbnails[:0]

    def counts(self, output: str | None = None) -> list[int]:
        """Examples per class of the classes output ``output`` (the first by default)."""
        o = self.output(output) if output else self._first("classes")
        column = self.targets[:, self.outputs.index(o)].astype(np.int64)
        return np.bincount(column, minlength=len(o.classes)).tolist()

    def fit(self, seed: int = 0) -> Head:
        """Train a learner per output on every example, after scoring one trained the same
        way on 85% of them against the other 15% (``Head.scores``)."""
        if not len(self):
            raise ExampleSetError("the example set is empty; record some examples first")
        learners, scores = [], []
        for i, o in enumerate(self.outputs):
            learner, score = _fit_output(o, self.features, self.targets[:, i], seed)
            learners.append(learner)
            scores.append(score)
        return Head([Output(**o.describe()) for o in self.outputs], learners, scores,
                    dict(self.source, size=int(self.features.shape[1])))

    def save(self, directory, head: Head | None = None) -> Path:
        """Write the set (and ``head``, if trained) into ``directory``; atomic per file."""
        from safetensors.numpy import save_file

        directory = Path(directory)
        arrays = {"features": self.features.reshape(len(self), -1), "targets": self.targets,
                  "thumbnails": self.thumbnails}
        atomic_write(directory / f"{EXAMPLES}.safetensors",
                     lambda tmp: save_file(arrays, str(tmp)))
        write_json_atomic(directory / f"{EXAMPLES}.json", {
            "convscope": EXAMPLES, "format_version": FORMAT_VERSION, "count": len(self),
            "digest": _digest(directory / f"{EXAMPLES}.safetensors"), "source": self.source,
            "outputs": [o.describe() for o in self.outputs]})
        if head is not None:
            head.save(directory)
        return directory

    @classmethod
    def load(cls, directory) -> ExampleSet:
        """The set saved in ``directory`` (an ExampleSetError line if it cannot be read)."""
        meta, arrays = _read_saved(Path(directory), EXAMPLES, "restore both files from one save")
        try:
            examples = cls([_output(o) for o in meta["outputs"]], dict(meta.get("source", {})))
            _fill(examples, arrays, int(meta["count"]))
        except (KeyError, TypeError, ValueError, ExampleSetError) as exc:
            raise ExampleSetError(f"{directory}: the saved example set is damaged "
                                  f"({exc}); restore it from a copy") from None
        return examples


def _fill(examples: ExampleSet, arrays: dict[str, np.ndarray], count: int) -> None:
    x, y, thumbs = arrays["features"], arrays["targets"], arrays["thumbnails"]
    if not (len(x) == len(y) == len(thumbs) == count and y.shape[1:] == (len(examples.outputs),)
            and thumbs.shape[1:] == (THUMB, THUMB, 3) and x.ndim == 2):
        raise ExampleSetError("its arrays have the wrong shapes")
    if not np.isfinite(x).all():
        raise ExampleSetError("its features are not all finite")
    for i, o in enumerate(examples.outputs):
        for value in set(y[:, i].tolist()):
            o.value(int(value) if o.kind == "classes" and float(value).is_integer() else value)
    examples.features = x.astype(np.float32)
    examples.targets = y.astype(np.float32)
    examples.thumbnails = thumbs.astype(np.uint8)


def _fit_output(output: Output, x: np.ndarray, column: np.ndarray, seed: int):
    """(learner fitted on every example, validation score dict) for one output."""
    if output.kind == "classes":
        labels = column.astype(np.int64)
        present = np.unique(labels)
        if len(present) < 2:
            raise ExampleSetError(f"output {output.name!r}: record examples of at least two "
                                  f"classes (only {output.classes[present[0]]!r} has any)")
        train, val = validation_split(len(labels), labels, seed=seed)
        score = None
        if len(val) and len(np.unique(labels[train])) == len(present):
            held = output.learner_object().fit(x[train], labels[train], len(output.classes))
            score = float((held.proba(x[val]).argmax(1) == labels[val]).mean())
        learner = output.learner_object().fit(x, labels, len(output.classes))
        return learner, {"metric": "accuracy", "value": score, "validation": int(len(val))}
    train, val = validation_split(len(column), seed=seed)
    score = None
    if len(val):
        held = output.learner_object().fit(x[train], column[train])
        score = float(np.abs(held.predict(x[val]) - column[val]).mean())
    return output.learner_object().fit(x, column), {
        "metric": "mean absolute error", "value": score, "validation": int(len(val))}


class Head:
    """The trained learners of an example set's outputs: features -> a prediction per output
    (class likelihoods, or a slider value)."""

    def __init__(self, outputs: list[Output], learners: list, scores: list[dict],
                 source: dict) -> None:
        self.outputs, self.learners, self.scores, self.source = outputs, learners, scores, source

    def __repr__(self) -> str:
        parts = [f"{o.name} ({o.learner}): " + _score_text(s)
                 for o, s in zip(self.outputs, self.scores, strict=True)]
        return f"Head({'; '.join(parts)})"

    @property
    def size(self) -> int:
        return int(self.source.get("size", 0))

    def predict(self, features) -> list[dict]:
        """One dict per output for the feature vector ``features``: classes give ``class``
        (index), ``name`` and ``likelihoods``; sliders give ``value``."""
        x = np.asarray(features, dtype=np.float32).reshape(1, -1)
        if self.size and x.shape[1] != self.size:
            raise ExampleSetError(f"the head was trained on {self.size} features, "
                                  f"not {x.shape[1]}; use the features it names")
        results = []
        for o, learner in zip(self.outputs, self.learners, strict=True):
            if o.kind == "classes":
                p = learner.proba(x)[0]
                best = int(p.argmax())
                results.append({"output": o.name, "class": best, "name": o.classes[best],
                                "likelihoods": [round(float(v), 4) for v in p]})
            else:
                results.append({"output": o.name, "value": float(learner.predict(x)[0])})
        return results

    def save(self, directory) -> Path:
        """``head.json`` and ``head.safetensors`` in ``directory`` (all ``stream --head``
        needs)."""
        from safetensors.numpy import save_file

        directory = Path(directory)
        arrays = {f"{i}.{k}": np.ascontiguousarray(v) for i, learner in enumerate(self.learners)
                  for k, v in learner.arrays().items()}
        atomic_write(directory / f"{HEAD}.safetensors", lambda tmp: save_file(arrays, str(tmp)))
        write_json_atomic(directory / f"{HEAD}.json", {
            "convscope": HEAD, "format_version": FORMAT_VERSION, "source": self.source,
            "digest": _digest(directory / f"{HEAD}.safetensors"),
            "outputs": [dict(o.describe(), trained=learner.settings(), score=score)
                        for o, learner, score in zip(self.outputs, self.learners, self.scores,
                                                     strict=True)]})
        return directory

    @classmethod
    def load(cls, directory) -> Head:
        meta, arrays = _read_saved(Path(directory), HEAD, "train and save again")
        try:
            outputs = [_output(o) for o in meta["outputs"]]
            learners = [learner_from(o["trained"], {k.split(".", 1)[1]: v for k, v in
                                                    arrays.items() if k.startswith(f"{i}.")})
                        for i, o in enumerate(meta["outputs"])]
            return cls(outputs, learners, [o.get("score") for o in meta["outputs"]],
                       dict(meta["source"]))
        except (KeyError, TypeError, ValueError, LearnerError, ExampleSetError) as exc:
            raise ExampleSetError(f"{directory}: the saved head is damaged ({exc}); "
                                  "train and save it again") from None


def _score_text(score: dict | None) -> str:
    if not score or score.get("value") is None:
        return "not validated (too few examples)"
    return f"validation {score['metric']} {score['value']:.3f} on {score['validation']}"


def _thumbnail(image) -> np.ndarray:
    if image is None:
        return np.zeros((THUMB, THUMB, 3), np.uint8)
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ExampleSetError("a thumbnail must be a uint8 picture (H x W or H x W x 3)")
    picture = Image.fromarray(array).convert("RGB").resize((THUMB, THUMB))
    return np.asarray(picture, dtype=np.uint8)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


def _read_saved(directory: Path, name: str, fix: str) -> tuple[dict, dict]:
    """``name``.json and the arrays of ``name``.safetensors, checked to be one save."""
    meta = _read_json(directory / f"{name}.json", name)
    path = directory / f"{name}.safetensors"
    arrays = _read_arrays(path)
    if meta.get("digest") != _digest(path):
        raise ExampleSetError(f"{path} is not the file {name}.json describes (a save was "
                              f"interrupted?); {fix}")
    return meta, arrays


def _read_json(path: Path, kind: str) -> dict:
    fix = "choose the directory a save wrote" if kind == EXAMPLES else "train and save again"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExampleSetError(f"{path}: no such file; {fix}") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ExampleSetError(f"{path}: not readable JSON ({exc.__class__.__name__}); "
                              f"{fix}") from None
    if not isinstance(meta, dict) or meta.get("convscope") != kind:
        raise ExampleSetError(f"{path}: not a convscope {kind} file; {fix}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ExampleSetError(f"{path}: format version {meta.get('format_version')!r} is not "
                              f"{FORMAT_VERSION}; save it again with this convscope")
    return meta


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise ExampleSetError(f"{path}: no such file; save the example set again") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ExampleSetError(f"{path}: not a safetensors file ({exc}); restore it from a "
                              "copy or save again") from None
