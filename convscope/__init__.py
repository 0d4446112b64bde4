"""convscope: train convolutional networks on real data and look inside them.

Data flows one way: layer spec -> model -> trainer -> probes -> API -> views; each concept
has one owner (docs/architecture.md), extended by ``register_layer_kind``, ``register_dataset``,
``register_task``, ``register_model`` and training ``Callback``s.

The public names below are imported on first use (PEP 562), so ``import convscope`` and the
command line's ``--help`` do not import PyTorch.
"""

import importlib
import sys
import types

__version__ = "0.1.0"

# public name -> the module (under convscope) that owns it
_PUBLIC = {
    "Callback": "callbacks", "Dataset": "data", "DatasetEntry": "data",
    "load_dataset": "data", "register_dataset": "data", "Evaluation": "evaluate",
    "evaluate": "evaluate", "format_report": "evaluate", "LayerKind": "layer_kinds",
    "register_layer_kind": "layer_kinds", "SpecNet": "model", "build_model": "model",
    "ModelEntry": "registry", "get_model_entry": "registry", "list_models": "registry",
    "register_model": "registry", "Run": "runs", "load_run": "runs", "Layer": "spec",
    "Volume": "spec", "load_spec": "spec", "resolve": "spec", "register_task": "tasks",
    "resume": "trainer", "train": "trainer",
}


def _public(name: str):
    return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = globals()[name] = _public(name)  # looked up once
        return value
    if not name.startswith("_"):  # a submodule (convscope.tasks, ...), as eager imports gave
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """``convscope.evaluate`` is the function, as it was when it was imported eagerly, even
    after its module ``convscope.evaluate`` is imported (which sets the package attribute)."""

    evaluate = property(lambda self: _public("evaluate"), lambda self, module: None)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


__all__ = sorted(_PUBLIC, key=str.lower)
