"""Training settings: defaults, overridden by a model's recipe, overridden by the user."""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .augment_kinds import AUGMENTATIONS, check_augmentation
from .device import DEVICES, PRECISIONS
from .errors import ConvscopeError
from .tasks import get_task, task_names

# This module is torch-free (the CLI builds its parser from it): the dataset catalogue and the
# image-folder reader are imported where a setting is checked.
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "muon")  # muon: Muon filters, SGD the rest
SCHEDULES = ("constant", "onecycle", "cosine", "linear")  # linear: decays to 0
TTA_MODES = ("none", "flip", "flip+shift", "shift")
FREEZE_MODES = ("none", "features")  # features: train only the output layer (convscope.finetune)
LOGS = ("none", "csv", "tensorboard", "csv+tensorboard")  # convscope.logs writes them


def allowed_values() -> dict[str, tuple[str, ...]]:
    """The one table of allowed values per setting: validation and the CLI's choices read it."""
    return {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISIONS,
            "tuned_precision": tuple(p for p in PRECISIONS if p != "auto"),
            "task": task_names(), "tta": TTA_MODES, "device": DEVICES,
            "augment": tuple(AUGMENTATIONS), "freeze": FREEZE_MODES, "log": LOGS}


@dataclass(frozen=True)
class Range:
    """The numbers a numeric setting allows: ``low`` to ``high`` (None: no bound), each end
    included unless ``low_open`` / ``high_open``. A float must also be finite."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def text(self, finite: bool) -> str:
        """"at least 1", "positive and finite", "in [0, 1)"."""
        if self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low}, {self.high}"
                    f"{')' if self.high_open else ']'}")
        text = ("positive" if self.low == 0 else f"above {self.low}") if self.low_open \
            else f"at least {self.low}"
        return text + (" and finite" if finite else "")


INT64 = Range(-(2**63), 2**63 - 1)  # what torch's generators and tensors take


def setting(default, help: str, metavar: str | None = None,  # noqa: A002 (argparse's name)
            shown: str | None = None, limits: Range | None = None):
    """A :class:`TrainConfig` field with its help text, its option's metavar, how its
    default reads (``shown``; else the value) and, for a number, its allowed ``limits``:
    the CLI's ``train`` options are made of them."""
    return field(default=default, metadata={"help": help, "metavar": metavar,
                                            "default": shown or _shown(default),
                                            "limits": limits})


def allowed_ranges() -> dict[str, Range]:
    """The allowed numbers of every numeric setting (validation reads this table)."""
    return {name: f.metadata["limits"] for name, f in _FIELDS.items()
            if f.metadata["limits"] is not None}


def _shown(default) -> str:
    return {True: "on", False: "off"}.get(default, str(default)) if isinstance(default, bool) \
        else str(default)


@dataclass
class TrainConfig:
    """Everything that determines a training run (written to the run's config.yaml)."""

    model: str = setting("mnist-convnetjs", "registry name, spec .json/.yaml or file.py:factory")
    data: str = setting("mnist", "mnist, cifar10, fsdd, fsdd-holdout-<speaker> or an image "
                        "folder")
    image_size: str | None = setting(None, "fit image-folder images to WxH (scaled to cover, "
                                     "then centre-cropped)", "WxH",
                                     shown="the median image size, at most 256 on the long side")
    task: str = setting("classify", "what to learn")
    init_from: str | None = setting(None, "fine-tune: start from the weights of this run "
                                    "directory or bundled model (its network, unless --model "
                                    "gives one with the same layers; docs/finetuning.md)",
                                    "RUN_OR_NAME", shown="none")
    num_classes: int | None = setting(None, "outputs of a spec network's output layer (a fresh "
                                      "layer when it differs)", "N", shown="the data's classes",
                                      limits=Range(1))
    freeze: str = setting("none", "features: train only the output layer")
    scenes: int = setting(20000, "generated training scenes for localize, detect and segment",
                          limits=Range(1, 1_000_000))
    test_scenes: int = setting(5000, "generated test scenes, from the test digits only",
                               limits=Range(1, 1_000_000))
    epochs: int = setting(1, "passes over the training set", limits=Range(1))
    batch_size: int = setting(64, "examples per step", limits=Range(1))
    micro_batch: int = setting(0, "examples per forward and backward pass (0: the whole "
                               "batch); the step averages the parts' gradients, and batchnorm "
                               "normalises each part by its own statistics", "N",
                               limits=Range(0))
    lr: float = setting(1e-3, "peak learning rate (the schedule scales it each step)",
                        limits=Range(0, low_open=True))
    optimizer: str = setting("adam", "the optimizer")
    momentum: float = setting(0.9, "SGD momentum", limits=Range(0, 1, high_open=True))
    nesterov: bool = setting(True, "Nesterov momentum for SGD (when momentum > 0)")
    weight_decay: float = setting(0.0, "L2 weight decay", limits=Range(0))
    muon_lr: float = setting(0.24, "peak learning rate of the conv filters under the muon "
                             "optimizer (convscope.muon; for convs that each feed a "
                             "batchnorm)", limits=Range(0, low_open=True))
    muon_momentum: float = setting(0.6, "Nesterov momentum of the conv filters under muon",
                                   limits=Range(0, 1, high_open=True))
    bias_lr_scale: float = setting(1.0, "batchnorm shifts learn X times faster (same decay "
                                   "per step)", "X", limits=Range(0, low_open=True))
    lookahead: bool = setting(False, "airbench's lookahead: pull the weights onto their "
                              "running average (see convscope.lookahead)")
    label_smoothing: float = setting(0.0, "label smoothing of the classification loss",
                                     limits=Range(0, 1))
    schedule: str = setting("constant", "learning-rate schedule over the run")
    augment: str | None = setting(None, "training augmentation", shown="the dataset's")
    precision: str = setting("auto", "bf16: bfloat16 autocast in the training steps and the "
                             "scoring; auto: bf16 where the device runs it natively, else fp32")
    tuned_precision: str | None = setting(None, "the precision the model's recipe was tuned "
                                          "in (the start line says when a run uses another)",
                                          shown="none")
    tta: str = setting("none", "test-time augmentation when scoring a classifier: average "
                       "over mirrored (flip), shifted (shift) or both (flip+shift) views")
    seed: int = setting(0, "seed of every random choice (runs repeat exactly)", limits=INT64)
    device: str = setting("auto", "where to train (auto: a GPU if there is one)")
    val_fraction: float = setting(0.1, "share of the training set held out for validation",
                                  limits=Range(0, 1, high_open=True))
    checkpoint_every: int = setting(0, "mid-epoch checkpoint interval in steps (0: about "
                                    "every 60 s)", "STEPS", limits=Range(0))
    log_every: int = setting(50, "write the training loss and learning rate to steps.jsonl "
                             "every N steps (0: never)", "N", limits=Range(0))
    log: str = setting("none", "also log to results.csv (Ultralytics' columns) or to "
                       "TensorBoard (<run>/tensorboard; needs the tensorboard package)")
    figures: bool = setting(True, "draw curves.png and confusion.png into the finished run "
                            "(with matplotlib installed; about a second)")
    data_dir: str | None = setting(None, "where datasets live",
                                   shown="$CONVSCOPE_DATA, else a per-user cache")
    schedule_restart: int = setting(0, "epoch from which the learning-rate schedule runs "
                                    "again, over the epochs left (0: one schedule over the "
                                    "run); `--resume RUN --epochs N` sets it when it extends "
                                    "a run", "EPOCH", limits=Range(0))

    def __post_init__(self) -> None:
        self._check_types()
        for name, allowed in allowed_values().items():
            value = getattr(self, name)  # None: unset (augment: checked once resolved below)
            if value is not None and name != "augment" and value not in allowed:
                raise ConvscopeError(f"{name} '{value}' is not one of: {', '.join(allowed)}")
        scenes = get_task(self.task).scenes
        if self.augment is None:
            self.augment = "none" if scenes else _default_augmentation(self.data)
        check_augmentation(self.augment)
        if scenes and self.augment != "none":
            raise ConvscopeError(f"augment '{self.augment}' would move the {self.task} scenes' "
                                 "pixels but not their boxes and masks; use augment none (the "
                                 "scenes are already randomly placed and scaled)")
        self._check_ranges()
        if self.schedule_restart and self.schedule_restart >= self.epochs:
            raise ConvscopeError(f"schedule_restart ({self.schedule_restart}) must be below "
                                 f"epochs ({self.epochs}): it is the epoch where the schedule "
                                 "starts again")
        self._check_image_size()
        if self.tta != "none" and self.task != "classify":
            raise ConvscopeError(f"tta '{self.tta}' mirrors and shifts images; it is for the "
                                 f"classify task, not {self.task}")

    def _check_ranges(self) -> None:
        """Every number within its setting's :class:`Range` (floats finite: ``--lr nan`` or
        ``inf`` would train a broken model)."""
        for name, limits in allowed_ranges().items():
            value = getattr(self, name)
            if value is None:  # an optional number left unset
                continue
            floating = _kind(_FIELDS[name]) == "float"
            if value not in limits or floating and not _fits_float(value):
                raise ConvscopeError(f"{name} must be {limits.text(floating)}, "
                                     f"got {_short(value)}")

    def _check_image_size(self) -> None:
        """``image_size`` reads as WxH and is given for an image folder only."""
        if self.image_size is None:
            return
        from .data.catalog import DATASETS
        from .data.folder import parse_image_size

        try:
            parse_image_size(self.image_size)
        except ConvscopeError as exc:
            raise ConvscopeError(f"image_size: {exc}") from exc
        if self.data in DATASETS or get_task(self.task).scenes:
            raise ConvscopeError(f"image_size applies to image folders only; {self.data} has a "
                                 "fixed size: leave image_size out")

    def _check_types(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and "None" in str(f.type):
                continue
            expected = {"int": int, "float": (int, float), "bool": bool}.get(_kind(f), str)
            if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
                hint = " (YAML reads 1e-3 as text: write 1.0e-3)" if isinstance(value, str) else ""
                raise ConvscopeError(f"{f.name} must be {_kind(f)}, got {value!r}{hint}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConvscopeError(f"unknown training setting {key!r}{hint}")
        return cls(**data)


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _default_augmentation(data: str) -> str:
    """The dataset's default augmentation (owned by the dataset catalogue); for an image
    folder flips for RGB folders, else "none"."""
    from .data.catalog import DATASETS
    from .data.folder import default_augmentation

    if data in DATASETS and DATASETS[data].augment:
        return DATASETS[data].augment
    path = Path(data).expanduser()
    return default_augmentation(path) if path.is_dir() else "none"


def _kind(f) -> str:
    """A field's type without ``| None``: "int", "float", "bool" or "str"."""
    return str(f.type).split(" |")[0]


def _short(value: float) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} digits)"


def _fits_float(value: float) -> bool:
    """Whether ``value`` (an int in a float setting, say) converts to a finite float."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def resolve_config(recipe: dict, overrides: dict) -> TrainConfig:
    """Defaults < the model's recipe < explicit ``overrides`` (None values are ignored)."""
    merged = dict(recipe)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(merged)
