"""Models from outside the registry: user Python files and model references.

A model reference is a registry name (``lenet5``), a spec file (``net.yaml``, ``.json``,
``.yml``) or a factory in a Python file (``path/to/file.py:make_model``).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from convscope.errors import SpecError
from convscope.model import build_model
from convscope.registry import check_dataset, check_recipe, get_model_entry, list_models
from convscope.spec import SPEC_SUFFIXES, load_spec_document


def load_user_module(ref: str) -> nn.Module:
    """Import ``path/to/file.py`` by path and return what ``factory()`` returns for the
    reference ``"path/to/file.py:factory"``; every failure is one SpecError."""
    path_text, sep, factory_name = ref.rpartition(":")
    if not sep or not path_text.endswith(".py") or not factory_name:
        raise SpecError(f"model reference {ref!r} must look like 'path/to/file.py:factory'")
    path = Path(path_text)
    if not path.is_file():
        raise SpecError(f"model file '{path}' does not exist")
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


def resolve_model_ref(ref: str) -> tuple[nn.Module, dict]:
    """Build the model a reference names; return ``(module, info)`` with info keys ``kind``
    ("registry", "spec" or "module"), ``ref``, ``spec`` (the layer list, None for modules),
    ``recipe`` (possibly empty) and ``dataset`` (None when unknown)."""
    names = [entry.name for entry in list_models()]
    if ref in names:
        entry = get_model_entry(ref)
        return build_model(entry.spec), _info("registry", ref, entry.spec, entry.recipe,
                                              entry.dataset)
    if Path(ref).suffix.lower() in SPEC_SUFFIXES:
        document = load_spec_document(Path(ref))
        recipe, dataset = document.get("recipe", {}), document.get("dataset")
        check_recipe(recipe, f"spec file '{ref}'")
        if dataset is not None:
            check_dataset(dataset, f"spec file '{ref}'")
        return build_model(document["layers"]), _info("spec", ref, document["layers"], recipe,
                                                      dataset)
    if ".py:" in ref:
        return load_user_module(ref), _info("module", ref, None, {}, None)
    if ref.endswith(".py"):
        raise SpecError(f"{ref!r} is a Python file: name the factory that builds the model, "
                        f"as '{ref}:make_model'")
    close = difflib.get_close_matches(ref, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise SpecError(f"cannot resolve model {ref!r}: it is not a registered model{hint} "
                    f"(known: {', '.join(names)}), not a spec file ({', '.join(SPEC_SUFFIXES)}) "
                    "and not a 'file.py:factory' reference")


def _info(kind: str, ref: str, spec: list | None, recipe: dict, dataset: str | None) -> dict:
    return {"kind": kind, "ref": ref, "spec": spec, "recipe": recipe, "dataset": dataset}
