"""Training settings: defaults, overridden by a model's recipe, overridden by the user."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields

from .augment import check_augmentation
from .data.catalog import DATASETS
from .errors import ConvscopeError

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
SCHEDULES = ("constant", "onecycle", "cosine")
PRECISIONS = ("fp32", "bf16")
TTA_MODES = ("none", "flip", "flip+shift")
TASKS = ("classify", "localize", "detect", "segment", "audio")
SCENE_TASKS = ("localize", "detect", "segment")
DEFAULT_AUGMENTATION = DATASETS.view(lambda d: d.augment)  # owned by the dataset catalogue


@dataclass
class TrainConfig:
    """Everything that determines a training run (written to the run's config.yaml)."""

    model: str = "mnist-convnetjs"
    data: str = "mnist"
    task: str = "classify"
    scenes: int = 20000  # generated training scenes (localize, detect, segment)
    test_scenes: int = 5000  # generated test scenes, from the test digits only
    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    bias_lr_scale: float = 1.0  # batchnorm shifts learn this many times faster (same decay)
    lookahead: bool = False  # airbench's lookahead (see convscope.lookahead)
    label_smoothing: float = 0.0
    schedule: str = "constant"
    augment: str | None = None  # None: the dataset's default (see DEFAULT_AUGMENTATION)
    precision: str = "fp32"  # bf16: bfloat16 autocast in the training steps and the scoring
    tta: str = "none"  # test-time augmentation when scoring: "flip", "flip+shift" (classify)
    seed: int = 0
    device: str = "auto"
    val_fraction: float = 0.1
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0: every ~60 s
    data_dir: str | None = None

    def __post_init__(self) -> None:
        self._check_types()
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("precision", PRECISIONS), ("task", TASKS), ("tta", TTA_MODES)):
            if getattr(self, name) not in allowed:
                raise ConvscopeError(
                    f"{name} '{getattr(self, name)}' is not one of: {', '.join(allowed)}"
                )
        scenes = self.task in SCENE_TASKS
        if self.augment is None:
            self.augment = "none" if scenes else DEFAULT_AUGMENTATION.get(self.data, "none")
        check_augmentation(self.augment)
        if scenes and self.augment != "none":
            raise ConvscopeError(f"augment '{self.augment}' would move the {self.task} scenes' "
                                 "pixels but not their boxes and masks; use augment none (the "
                                 "scenes are already randomly placed and scaled)")
        for name in ("epochs", "batch_size", "scenes", "test_scenes"):
            if getattr(self, name) < 1:
                raise ConvscopeError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConvscopeError(f"lr must be positive, got {self.lr}")
        if self.bias_lr_scale <= 0:
            raise ConvscopeError(f"bias_lr_scale must be positive, got {self.bias_lr_scale}")
        if self.tta != "none" and self.task != "classify":
            raise ConvscopeError(f"tta '{self.tta}' mirrors and shifts images; it is for the "
                                 f"classify task, not {self.task}")
        if not 0 <= self.val_fraction < 1:
            raise ConvscopeError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    def _check_types(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and "None" in str(f.type):
                continue
            expected = {"int": int, "float": (int, float), "bool": bool}.get(
                str(f.type).split(" |")[0], str)
            if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
                hint = " (YAML reads 1e-3 as text: write 1.0e-3)" if isinstance(value, str) else ""
                raise ConvscopeError(f"{f.name} must be {str(f.type).split(' |')[0]}, "
                                     f"got {value!r}{hint}")

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


def resolve_config(recipe: dict, overrides: dict) -> TrainConfig:
    """Defaults < the model's recipe < explicit ``overrides`` (None values are ignored)."""
    merged = dict(recipe)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(merged)
