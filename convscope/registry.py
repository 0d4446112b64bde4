"""Named models (timm-style): a spec, its dataset and a recommended training recipe.

The built-in models live in :mod:`convscope.zoo`, imported on first use of the registry.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from convscope.config import TrainConfig
from convscope.data import DATASETS
from convscope.errors import ConvscopeError, SpecError
from convscope.spec import resolve


@dataclass(frozen=True)
class ModelEntry:
    """A registered model. ``recipe`` holds recommended training settings (TrainConfig fields).

    ``untrained``: a famous architecture registered for its volumes, parameters and
    multiply-adds; convscope has no trained weights for it (the explorer shows it with seeded
    random weights; ``convscope import-weights`` maps a user's pretrained weights onto it).
    ``dataset`` None: the data it was made for is not one convscope has (ImageNet); train it
    with ``--data`` on an image folder.
    """

    name: str
    description: str
    dataset: str | None
    spec: list[dict]
    recipe: dict
    untrained: bool = False


_REGISTRY: dict[str, ModelEntry] = {}


def check_recipe(recipe: object, where: str) -> None:
    """Raise SpecError (prefixed by ``where``) unless ``recipe`` holds valid training settings."""
    if not isinstance(recipe, dict):
        raise SpecError(f"{where}: the recipe must be a mapping, got {type(recipe).__name__}")
    try:
        TrainConfig.from_dict(recipe)
    except ConvscopeError as e:
        raise SpecError(f"{where}: recipe: {e}") from None


def check_dataset(dataset: object, where: str) -> None:
    """Raise SpecError unless ``dataset`` is a catalogued image or recording set (a scene
    model names the digits its scenes are made of: mnist)."""
    allowed = [d.name for d in DATASETS.of_kind("images", "recordings")]
    if dataset not in allowed:
        raise SpecError(f"{where}: dataset must be one of {', '.join(allowed)}, got {dataset!r}")


def register_model(entry: ModelEntry) -> ModelEntry:
    """Validate ``entry`` (its spec must resolve) and add it to the registry."""
    _load_zoo()
    where = f"model {entry.name!r}"
    if not isinstance(entry.name, str) or not entry.name or entry.name.split() != [entry.name]:
        raise SpecError(f"{where}: the name must be a non-empty string without spaces")
    if entry.name in _REGISTRY:
        raise SpecError(f"{where} is already registered")
    if entry.dataset is not None or not entry.untrained:
        check_dataset(entry.dataset, where)
    check_recipe(entry.recipe, where)
    try:
        resolve(entry.spec)
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from e
    _REGISTRY[entry.name] = _copy(entry)
    return entry


def get_model_entry(name: str) -> ModelEntry:
    """The registered model ``name`` (a copy); unknown names raise SpecError."""
    _load_zoo()
    if name not in _REGISTRY:
        raise SpecError(f"unknown model {name!r}{_did_you_mean(name, _REGISTRY)}; "
                        f"known models: {', '.join(_REGISTRY)}")
    return _copy(_REGISTRY[name])


def list_models() -> list[ModelEntry]:
    """All registered models (copies), in registration order."""
    _load_zoo()
    return [_copy(entry) for entry in _REGISTRY.values()]


def _load_zoo() -> None:
    importlib.import_module("convscope.zoo")


def _copy(entry: ModelEntry) -> ModelEntry:
    return dataclasses.replace(entry, spec=copy.deepcopy(entry.spec),
                               recipe=copy.deepcopy(entry.recipe))


def _did_you_mean(word: object, options: Any) -> str:
    matches = difflib.get_close_matches(word, list(options), n=1) if isinstance(word, str) else []
    return f" (did you mean {matches[0]!r}?)" if matches else ""
