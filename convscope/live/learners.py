"""The learners of "train your own" (ml4a's ConvnetClassifier / Regressor / Predictor): small
models fitted in seconds on a few hundred feature vectors, torch and numpy only.

- :class:`KNN` (the default for classes, as ml4a's GRT KNN): likelihoods are the share of the
  k nearest examples (cosine distance on features centred on the examples' mean) voting for
  each class; k (1 by default) is lowered to the smallest class's count so that a class with
  one example can still win. The defaults were chosen on MNIST *training* digits
  (``benchmarks/few_shot.py``).
- :class:`LogisticRegression` (the option for classes): softmax regression on standardised
  features, L-BFGS with a little weight decay.
- :class:`SliderMLP` (one per continuous output in [0, 1], as ml4a's MLP per output): one
  hidden tanh layer on standardised features, Adam, ``hidden`` units and ``epochs``.

:func:`validation_split` holds out 15% of the examples (stratified by class) to report a score;
the model used afterwards is fitted on every example. :func:`ease` is the Regressor's
"prediction lerp". Every learner turns into arrays + JSON settings (:meth:`arrays`,
:meth:`settings`) and back (:func:`learner_from`), so that a head is saved as safetensors and
JSON, never pickled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from convscope.errors import ConvscopeError

VALIDATION = 0.15  # ml4a's validation share
CLASS_LEARNERS = ("knn", "logreg")
DEFAULT_K = 1  # the k-NN's k (chosen on MNIST training digits: benchmarks/few_shot.py)
SCALES = ("centre", "standardise", "none")  # what the k-NN does to features before cosine


class LearnerError(ConvscopeError):
    """Examples that cannot train a learner (too few, one class only); names the fix."""


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch with one intra-op thread in this block (then as before): these models and one
    frame through a small network are far too little work to split, and on a busy machine
    splitting made them 10x slower (as the explorer's model threads found,
    ``convscope.server.compute``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _matrix(features) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise LearnerError(f"features must be one vector per example (got shape {x.shape})")
    return x


def validation_split(count: int, labels=None, share: float = VALIDATION,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) indices: ``share`` of the examples held out, per class when
    ``labels`` are given (a class keeps at least one training example; a class with one example
    is never held out). Empty validation when there are too few examples (fewer than 7
    without labels)."""
    rng = np.random.default_rng(seed)
    if labels is None:
        groups = [np.arange(count)]
        held = [int(round(share * count)) if count >= 7 else 0]
    else:
        labels = np.asarray(labels)
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        held = [min(len(g) - 1, max(1, int(round(share * len(g))))) for g in groups]
    train, val = [], []
    for group, n in zip(groups, held, strict=True):
        order = rng.permutation(group)
        val.append(order[:n])
        train.append(order[n:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class _Standardise:
    """Per-feature mean and scale of the training examples (GRT's input scaling), the scale
    floored at the features' mean spread, so that nearly constant features (a ReLU unit that
    rarely fires) are not blown up into noise."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray) -> None:
        self.mean, self.scale = mean.astype(np.float32), scale.astype(np.float32)

    @classmethod
    def of(cls, x: np.ndarray) -> _Standardise:
        scale = x.std(axis=0)
        return cls(x.mean(axis=0), np.maximum(scale, max(float(scale.mean()), 1e-6)))

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((x - self.mean) / self.scale)


class KNN:
    """k nearest neighbours by cosine distance; ``scale``: "centre" (features minus the
    examples' mean), "standardise" (also divided by their spread, :class:`_Standardise`; True
    says so too) or "none" (False); ``proba`` gives each class's share of the k votes."""

    kind = "knn"

    def __init__(self, k: int = DEFAULT_K, scale: str | bool = "centre") -> None:
        if k < 1:
            raise LearnerError(f"k must be at least 1 (got {k})")
        if isinstance(scale, bool):
            scale = "standardise" if scale else "none"
        if scale not in SCALES:
            raise LearnerError(f"scale must be one of {', '.join(SCALES)} (got {scale!r})")
        self.k, self.scale = k, scale
        self.used_k = k
        self.scaling: _Standardise | None = None
        self.examples = np.zeros((0, 0), np.float32)
        self.labels = np.zeros(0, np.int64)
        self.classes = 0

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        return _unit(self.scaling(x).numpy() if self.scaling is not None else x)

    def fit(self, features, labels, classes: int) -> KNN:
        x, y = _matrix(features), np.asarray(labels, dtype=np.int64)
        counts = np.bincount(y, minlength=classes)
        self.used_k = int(min(self.k, counts[counts > 0].min()))
        self.scaling = None
        if self.scale == "standardise":
            self.scaling = _Standardise.of(x)
        elif self.scale == "centre":
            self.scaling = _Standardise(x.mean(axis=0), np.ones(x.shape[1]))
        self.examples, self.labels, self.classes = self._inputs(x), y, classes
        return self

    def proba(self, features) -> np.ndarray:
        x = self._inputs(_matrix(features))
        similarity = x @ self.examples.T
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :self.used_k]
        votes = np.zeros((len(x), self.classes), np.float32)
        for rank in range(nearest.shape[1]):  # the nearest counts a little more: breaks ties
            np.add.at(votes, (np.arange(len(x)), self.labels[nearest[:, rank]]),
                      1.0 + (1e-3 if rank == 0 else 0.0))
        return votes / votes.sum(axis=1, keepdims=True)

    def settings(self) -> dict:
        return {"learner": self.kind, "k": self.k, "scale": self.scale, "used_k": self.used_k,
                "classes": self.classes}

    def arrays(self) -> dict[str, np.ndarray]:
        scaling = {"mean": self.scaling.mean, "spread": self.scaling.scale} if self.scaling \
            else {}
        return {"examples": self.examples, "labels": self.labels, **scaling}

    def restore(self, settings: dict, arrays: dict[str, np.ndarray]) -> KNN:
        self.used_k, self.classes = int(settings["used_k"]), int(settings["classes"])
        self.examples = arrays["examples"].astype(np.float32)
        self.labels = arrays["labels"].astype(np.int64)
        self.scaling = None if self.scale == "none" else \
            _Standardise(arrays["mean"], arrays["spread"])
        _check_restored(len(self.examples) == len(self.labels) and len(self.labels) > 0
                        and 0 <= self.labels.min() and self.labels.max() < self.classes
                        and self.used_k >= 1 and (self.scaling is None or (
                            self.scaling.mean.shape == self.scaling.scale.shape
                            == self.examples.shape[1:])))
        return self


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


class LogisticRegression:
    """Softmax regression on standardised features (L-BFGS, weight decay ``decay``)."""

    kind = "logreg"

    def __init__(self, decay: float = 1e-3, steps: int = 100) -> None:
        self.decay, self.steps = decay, steps
        self.scaling: _Standardise | None = None
        self.weight = np.zeros((0, 0), np.float32)
        self.bias = np.zeros(0, np.float32)

    def fit(self, features, labels, classes: int) -> LogisticRegression:
        x, y = _matrix(features), torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.scaling = _Standardise.of(x)
        inputs = self.scaling(x)
        torch.manual_seed(0)
        layer = torch.nn.Linear(x.shape[1], classes)
        torch.nn.init.zeros_(layer.weight)
        optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=self.steps,
                                      line_search_fn="strong_wolfe")

        def loss() -> torch.Tensor:
            optimizer.zero_grad()
            value = torch.nn.functional.cross_entropy(layer(inputs), y) \
                + self.decay * layer.weight.square().sum()
            value.backward()
            return value

        with one_thread():
            optimizer.step(loss)
        self.weight = layer.weight.detach().numpy().copy()
        self.bias = layer.bias.detach().numpy().copy()
        return self

    def proba(self, features) -> np.ndarray:
        logits = self.scaling(_matrix(features)).numpy() @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def settings(self) -> dict:
        return {"learner": self.kind, "decay": self.decay, "steps": self.steps,
                "classes": len(self.bias)}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.scaling.mean, "scale": self.scaling.scale, "weight": self.weight,
                "bias": self.bias}

    def restore(self, settings: dict, arrays: dict[str, np.ndarray]) -> LogisticRegression:
        self.scaling = _Standardise(arrays["mean"], arrays["scale"])
        self.weight = arrays["weight"].astype(np.float32)
        self.bias = arrays["bias"].astype(np.float32)
        _check_restored(self.weight.shape == (len(self.bias), len(self.scaling.mean))
                        and self.scaling.scale.shape == self.scaling.mean.shape)
        return self


class SliderMLP:
    """One continuous output in [0, 1]: features -> ``hidden`` tanh units -> one value
    (clamped to [0, 1]), trained with AdamW (learning rate ``lr``, weight decay ``decay``) for
    ``epochs`` epochs of mini-batches of 32, as ml4a's MLP per slider (hidden 10, 100 epochs by
    default)."""

    kind = "mlp"

    def __init__(self, hidden: int = 10, epochs: int = 100, lr: float = 0.01,
                 decay: float = 0.1, seed: int = 0) -> None:
        if hidden < 1 or epochs < 1:
            raise LearnerError(f"hidden and epochs must be at least 1 (got {hidden}, {epochs})")
        self.hidden, self.epochs, self.lr, self.decay = hidden, epochs, lr, decay
        self.seed = seed
        self.scaling: _Standardise | None = None
        self.net = self._net(1)

    def _net(self, inputs: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(torch.nn.Linear(inputs, self.hidden), torch.nn.Tanh(),
                                   torch.nn.Linear(self.hidden, 1))

    def fit(self, features, targets) -> SliderMLP:
        x = _matrix(features)
        y = torch.as_tensor(np.asarray(targets, dtype=np.float32).reshape(-1, 1))
        self.scaling = _Standardise.of(x)
        inputs = self.scaling(x)
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.net = self._net(x.shape[1])
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=self.lr,
                                      weight_decay=self.decay)
        with one_thread():
            for _ in range(self.epochs):
                for batch in torch.randperm(len(x), generator=generator).split(32):
                    optimizer.zero_grad()
                    torch.nn.functional.mse_loss(self.net(inputs[batch]), y[batch]).backward()
                    optimizer.step()
        return self

    def predict(self, features) -> np.ndarray:
        with torch.no_grad(), one_thread():
            out = self.net(self.scaling(_matrix(features)))[:, 0].numpy()
        return np.clip(out, 0.0, 1.0)

    def settings(self) -> dict:
        return {"learner": self.kind, "hidden": self.hidden, "epochs": self.epochs,
                "lr": self.lr, "decay": self.decay, "seed": self.seed}

    def arrays(self) -> dict[str, np.ndarray]:
        state = {k: v.numpy() for k, v in self.net.state_dict().items()}
        return {"mean": self.scaling.mean, "scale": self.scaling.scale, **state}

    def restore(self, settings: dict, arrays: dict[str, np.ndarray]) -> SliderMLP:
        self.scaling = _Standardise(arrays["mean"], arrays["scale"])
        self.net = self._net(len(self.scaling.mean))
        state = {k: torch.from_numpy(arrays[k].astype(np.float32))
                 for k in self.net.state_dict() if k in arrays}
        _check_restored(len(state) == 4 and all(
            state[k].shape == v.shape for k, v in self.net.state_dict().items()))
        self.net.load_state_dict(state)
        return self


def _check_restored(ok: bool) -> None:
    if not ok:
        raise LearnerError("the saved head's arrays do not fit its settings")


def class_learner(name: str = "knn", **options) -> KNN | LogisticRegression:
    """A classifier by name: ``"knn"`` (options ``k``, ``scale``) or ``"logreg"`` (``decay``,
    ``steps``)."""
    if name == "knn":
        return KNN(**options)
    if name == "logreg":
        return LogisticRegression(**options)
    raise LearnerError(f"unknown learner {name!r}; choose one of: {', '.join(CLASS_LEARNERS)}")


def learner_from(settings: dict, arrays: dict[str, np.ndarray]):
    """The learner that :meth:`settings` and :meth:`arrays` describe (read back from a saved
    head); a LearnerError if they do not fit together."""
    try:
        name = settings["learner"]
        if name == "knn":
            return KNN(int(settings["k"]), settings["scale"]).restore(settings, arrays)
        if name == "logreg":
            return LogisticRegression(float(settings["decay"]), int(settings["steps"])) \
                .restore(settings, arrays)
        if name == "mlp":
            return SliderMLP(int(settings["hidden"]), int(settings["epochs"]),
                             float(settings["lr"]), float(settings["decay"]),
                             int(settings["seed"])).restore(settings, arrays)
    except (KeyError, TypeError, ValueError, AttributeError, LearnerError) as exc:
        raise LearnerError(f"the saved head is incomplete or damaged ({exc!r})") from None
    raise LearnerError(f"the saved head names an unknown learner {name!r}")


def ease(shown, target, lerp: float):
    """ml4a's "prediction lerp": move the shown slider values ``lerp`` of the way toward the
    target (1 = no easing, 0.2 by default in ml4a)."""
    shown = np.asarray(shown, dtype=np.float32)
    return shown + float(lerp) * (np.asarray(target, dtype=np.float32) - shown)
