"""Models from outside the registry: user Python files and model references.

A model reference is a registry name (``lenet5``), a spec file (``net.yaml``, ``.json``,
``.yml``) or a factory in a Python file (``path/to/file.py:make_model``).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from convscope.errors import SpecError
from convscope.model import build_model
from convscope.registry import check_dataset, check_recipe, get_model_entry, list_models
from convscope.spec import SPEC_SUFFIXES, load_spec_document


def _module_file(ref: str) -> tuple[Path, str]:
    """The file and factory name of ``"path/to/file.py:factory"``, checked to exist."""
    path_text, sep, factory_name = ref.rpartition(":")
    if not sep or not path_text.endswith(".py") or not factory_name:
        raise SpecError(f"model reference {ref!r} must look like 'path/to/file.py:factory'")
    path = Path(path_text)
    if not path.is_file():
        raise SpecError(f"model file '{path}' does not exist")
    return path, factory_name


def load_user_module(ref: str) -> nn.Module:
    """Import ``path/to/file.py`` by path and return what ``factory()`` returns for the
    reference ``"path/to/file.py:factory"``; every failure is one SpecError."""
    path, factory_name = _module_file(ref)
    module_name = "convscope_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot import '{path}' as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise SpecError(f"importing '{path}' failed: {type(e).__name__}: {e}") from e
    if not hasattr(module, factory_name):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise SpecError(f"'{path}' has no attribute {factory_name!r}; its callables: "
                        f"{', '.join(public) or 'none'}")
    factory = getattr(module, factory_name)
    if not callable(factory):
        raise SpecError(f"'{path}:{factory_name}' is a {type(factory).__name__}, not a callable "
                        "that returns a torch.nn.Module")
    try:
        model = factory()
    except Exception as e:
        raise SpecError(f"calling {factory_name}() from '{path}' raised "
                        f"{type(e).__name__}: {e}") from e
    if not isinstance(model, nn.Module):
        raise SpecError(f"{factory_name}() from '{path}' returned a {type(model).__name__}, "
                        "expected a torch.nn.Module")
    return model


@dataclass(frozen=True)
class ModelDescription:
    """What a model reference names, without building it: ``kind`` ("registry", "spec" or
    "module"), ``ref``, ``spec`` (the layer list, None for modules), ``recipe`` (possibly
    empty) and ``dataset`` (None when unknown)."""

    kind: str
    ref: str
    spec: list | None
    recipe: dict = field(default_factory=dict)
    dataset: str | None = None

    @property
    def run_info(self) -> dict:
        """The ``model`` section of a run's config.yaml."""
        return {"kind": self.kind, "ref": self.ref, "spec": self.spec}

    def build(self) -> nn.Module:
        """A fresh (untrained) module: the spec built, or the factory called (once per call)."""
        return build_model(self.spec) if self.spec is not None else load_user_module(self.ref)


def resolve_model_ref(ref: str) -> ModelDescription:
    """Describe the model a reference names (nothing is built or imported)."""
    names = [entry.name for entry in list_models()]
    if ref in names:
        entry = get_model_entry(ref)
        return ModelDescription("registry", ref, entry.spec, entry.recipe, entry.dataset)
    if Path(ref).suffix.lower() in SPEC_SUFFIXES:
        document = load_spec_document(Path(ref))
        recipe, dataset = document.get("recipe", {}), document.get("dataset")
        check_recipe(recipe, f"spec file '{ref}'")
        if dataset is not None:
            check_dataset(dataset, f"spec file '{ref}'")
        return ModelDescription("spec", ref, document["layers"], recipe, dataset)
    if ".py:" in ref:
        _module_file(ref)
        return ModelDescription("module", ref, None)
    if ref.endswith(".py"):
        raise SpecError(f"{ref!r} is a Python file: name the factory that builds the model, "
                        f"as '{ref}:make_model'")
    close = difflib.get_close_matches(ref, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise SpecError(f"cannot resolve model {ref!r}: it is not a registered model{hint} "
                    f"(known: {', '.join(names)}), not a spec file ({', '.join(SPEC_SUFFIXES)}) "
                    "and not a 'file.py:factory' reference")
