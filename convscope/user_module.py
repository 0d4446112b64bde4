"""Models from outside the registry: user Python files and model references.

A model reference is a registry name (``lenet5``), a spec file (``net.yaml``, ``.json``,
``.yml``) or a factory in a Python file (``path/to/file.py:make_model``), which may take keyword
arguments (``("file.py:make", {"num_classes": 5})``, JSON values, recorded in the run and given
again on load). A run trained from an ``nn.Module`` object records its class and ``repr`` only:
it has no code to rebuild it from (:func:`describe_object`).

A Python file is code, imported only when the user names it (``train --model``) or allows it
(``--trust-code``): a run trained from one keeps a copy (``<run>/model_code/``, its sha256 in
config.yaml) and loads only that copy (:func:`load_kept_code`), never the file its config names.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from convscope._io import atomic_write
from convscope.errors import RunError, SpecError
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


def load_user_module(ref: str, kwargs: dict | None = None) -> nn.Module:
    """Import ``path/to/file.py`` by path and return what ``factory(**kwargs)`` returns for the
    reference ``"path/to/file.py:factory"``; every failure is one SpecError."""
    path, factory_name = _module_file(ref)
    return _build_from_source(_read(path), path, factory_name, kwargs)


def check_kwargs(kwargs: object, where: str = "the factory's keyword arguments") -> dict:
    """``kwargs`` checked to be a dict of JSON values with string keys (what config.yaml can
    record and give back unchanged); a copy, or one SpecError naming the problem."""
    if not isinstance(kwargs, dict):
        raise SpecError(f"{where} must be a dict (as in ('file.py:make', {{'num_classes': 5}})), "
                        f"got a {type(kwargs).__name__}")
    try:
        copy = json.loads(json.dumps(kwargs, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise SpecError(f"{where} must be JSON values (numbers, strings, booleans, None, lists, "
                        f"dicts) so the run can record them: {exc}") from None
    if copy != kwargs or not all(isinstance(k, str) and k.isidentifier() for k in kwargs):
        raise SpecError(f"{where} must have identifier keys and JSON values (lists, not "
                        f"tuples) so the run records them unchanged; got {kwargs!r}")
    return copy


def parse_model_args(text: str) -> dict:
    """The ``--model-args`` option: a JSON object of keyword arguments for the factory."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"--model-args is not JSON ({exc}); give an object such as "
                        """'{"num_classes": 5}'""") from None
    return check_kwargs(value, "--model-args")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read model file '{path}' ({exc.strerror})") from None


def _build_from_source(source: bytes, path: Path, factory_name: str,
                       kwargs: dict | None = None) -> nn.Module:
    """Run ``source`` (the bytes of ``path``, read once) as a module and call its factory
    with ``kwargs``."""
    module_name = "convscope_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    sys.modules[module_name] = module
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 (the user's code)
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
    call = f"{factory_name}(**{kwargs!r})" if kwargs else f"{factory_name}()"
    try:
        model = factory(**(kwargs or {}))
    except Exception as e:
        raise SpecError(f"calling {call} from '{path}' raised {type(e).__name__}: {e}") from e
    if not isinstance(model, nn.Module):
        raise SpecError(f"{call} from '{path}' returned a {type(model).__name__}, "
                        "expected a torch.nn.Module")
    return model


CODE_DIR = "model_code"
_KEPT_FILE = re.compile(CODE_DIR + r"/[A-Za-z0-9_]+\.py")


@dataclass(frozen=True)
class KeptCode:
    """The exact bytes of a user's model file, as a run keeps them: ``<run>/model_code/<name>``
    with its sha256 in the run's config (``record``)."""

    source: bytes = field(repr=False)
    name: str  # the file name inside model_code/
    factory: str

    @classmethod
    def of(cls, ref: str) -> KeptCode:
        path, factory = _module_file(ref)
        stem = re.sub(r"[^A-Za-z0-9_]", "_", path.stem) or "model"
        return cls(_read(path), stem + ".py", factory)

    @property
    def record(self) -> dict:
        return {"file": f"{CODE_DIR}/{self.name}", "factory": self.factory,
                "sha256": hashlib.sha256(self.source).hexdigest()}

    def write(self, run_dir: Path) -> None:
        atomic_write(run_dir / CODE_DIR / self.name, lambda tmp: tmp.write_bytes(self.source))


def load_kept_code(run_dir: Path | None, info: dict, trust_code: bool) -> nn.Module:
    """Build a run's Python model from the copy the run kept, never from ``info["ref"]``.

    Refused unless ``trust_code`` (loading it runs that code) and the copy's sha256 is the one
    recorded in config.yaml. The hash only catches a copy swapped or edited on its own: whoever
    can edit the run can edit the recorded hash too, so ``trust_code`` is what protects; give
    it only for runs you trust as you would trust their code.
    """
    ref, code = info.get("ref"), info.get("code")
    where = run_dir if run_dir is not None else "this run"
    if info.get("kind") == OBJECT:
        raise RunError(f"{where}: this run was trained from a Python object "
                       f"({info.get('class', 'an nn.Module')}); rebuild it yourself and load the "
                       "weights with `run.load_weights_into(module)`")
    if run_dir is None or not isinstance(code, dict):
        raise RunError(f"{where}: its model is Python code ({ref!r}) and the run keeps no copy of "
                       "it; convscope never imports code a run's config names: retrain it with "
                       "`convscope train --model FILE.py:FACTORY` to keep the code in the run")
    file, factory, digest = code.get("file"), code.get("factory"), code.get("sha256")
    if not (isinstance(file, str) and _KEPT_FILE.fullmatch(file) and isinstance(factory, str)
            and factory.isidentifier() and isinstance(digest, str)):
        raise RunError(f"{run_dir}/config.yaml: its model.code record is malformed ({code!r}); "
                       "it is not a run convscope wrote")
    path = run_dir / file
    if not trust_code:
        raise RunError(f"{run_dir}: its model is Python code ({file}) and loading it runs that "
                       "code; add --trust-code (trust_code=True) if you trust this run")
    kwargs = info.get("kwargs") or {}
    try:
        kwargs = check_kwargs(kwargs)
    except SpecError as exc:
        raise RunError(f"{run_dir}/config.yaml: model.kwargs: {exc}") from None
    source = _read(path)
    if hashlib.sha256(source).hexdigest() != digest:
        raise RunError(f"{path}: the model code is not the copy recorded when the run was made "
                       "(sha256 differs); restore the original file or retrain")
    return _build_from_source(source, path, factory, kwargs)


OBJECT = "object"  # the model.kind of a run trained from an nn.Module object
REPR_LIMIT = 20_000  # characters of a module's repr a run records


def describe_object(module: nn.Module) -> ModelDescription:
    """An ``nn.Module`` object given to :func:`convscope.train`: the run records its class and
    ``repr`` (for people; nothing can rebuild it) and trains the object itself."""
    cls = type(module)
    text = repr(module)
    if len(text) > REPR_LIMIT:
        text = text[:REPR_LIMIT] + f"\n... ({len(text) - REPR_LIMIT:,} more characters)"
    return ModelDescription(OBJECT, "<python>", None,
                            about={"class": f"{cls.__module__}.{cls.__qualname__}", "repr": text})


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
    code: KeptCode | None = None  # a module's file, read once: what is run and what runs keep
    kwargs: dict = field(default_factory=dict)  # the factory's keyword arguments
    about: dict = field(default_factory=dict)  # an object's class and repr

    @property
    def run_info(self) -> dict:
        """The ``model`` section of a run's config.yaml."""
        kept = {"code": self.code.record} if self.code is not None else {}
        args = {"kwargs": self.kwargs} if self.kwargs else {}
        return {"kind": self.kind, "ref": self.ref, "spec": self.spec, **kept, **args,
                **self.about}

    def build(self) -> nn.Module:
        """A fresh (untrained) module: the spec built, or the factory called (once per call)."""
        if self.spec is not None:
            return build_model(self.spec)
        if self.kind == OBJECT:
            raise SpecError("a model given as an nn.Module object cannot be built again")
        if self.code is None:
            return load_user_module(self.ref, self.kwargs)
        return _build_from_source(self.code.source, _module_file(self.ref)[0], self.code.factory,
                                  self.kwargs)


def resolve_model_ref(ref: str, kwargs: object = None) -> ModelDescription:
    """Describe the model a reference names (nothing is built or imported); ``kwargs``: the
    keyword arguments of a ``file.py:factory`` reference's factory."""
    if kwargs is not None:
        kwargs = check_kwargs(kwargs)
        if ".py:" not in ref:
            raise SpecError(f"keyword arguments are for a 'file.py:factory' model; {ref!r} is "
                            "not one")
        return ModelDescription("module", ref, None, code=KeptCode.of(ref), kwargs=kwargs)
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
        return ModelDescription("module", ref, None, code=KeptCode.of(ref))
    if ref.endswith(".py"):
        raise SpecError(f"{ref!r} is a Python file: name the factory that builds the model, "
                        f"as '{ref}:make_model'")
    close = difflib.get_close_matches(ref, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise SpecError(f"cannot resolve model {ref!r}: it is not a registered model{hint} "
                    f"(known: {', '.join(names)}), not a spec file ({', '.join(SPEC_SUFFIXES)}) "
                    "and not a 'file.py:factory' reference")
