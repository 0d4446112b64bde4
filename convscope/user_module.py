"""Models from outside the registry: user Python files and model references.

A model reference is a registry name (``lenet5``), a spec file (``net.yaml``, ``.json``,
``.yml``) or a factory in a Python file (``path/to/file.py:make_model``).

A Python file is code, imported only when the user names it (``train --model``) or allows it
(``--trust-code``): a run trained from one keeps a copy (``<run>/model_code/``, its sha256 in
config.yaml) and loads only that copy (:func:`load_kept_code`), never the file its config names.
"""

from __future__ import annotations

import difflib
import hashlib
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


def load_user_module(ref: str) -> nn.Module:
    """Import ``path/to/file.py`` by path and return what ``factory()`` returns for the
    reference ``"path/to/file.py:factory"``; every failure is one SpecError."""
    path, factory_name = _module_file(ref)
    return _build_from_source(_read(path), path, factory_name)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read model file '{path}' ({exc.strerror})") from None


def _build_from_source(source: bytes, path: Path, factory_name: str) -> nn.Module:
    """Run ``source`` (the bytes of ``path``, read once) as a module and call its factory."""
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
    try:
        model = factory()
    except Exception as e:
        raise SpecError(f"calling {factory_name}() from '{path}' raised "
                        f"{type(e).__name__}: {e}") from e
    if not isinstance(model, nn.Module):
        raise SpecError(f"{factory_name}() from '{path}' returned a {type(model).__name__}, "
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
    source = _read(path)
    if hashlib.sha256(source).hexdigest() != digest:
        raise RunError(f"{path}: the model code is not the copy recorded when the run was made "
                       "(sha256 differs); restore the original file or retrain")
    return _build_from_source(source, path, factory)


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

    @property
    def run_info(self) -> dict:
        """The ``model`` section of a run's config.yaml."""
        kept = {"code": self.code.record} if self.code is not None else {}
        return {"kind": self.kind, "ref": self.ref, "spec": self.spec, **kept}

    def build(self) -> nn.Module:
        """A fresh (untrained) module: the spec built, or the factory called (once per call)."""
        if self.spec is not None:
            return build_model(self.spec)
        if self.code is None:
            return load_user_module(self.ref)
        return _build_from_source(self.code.source, _module_file(self.ref)[0], self.code.factory)


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
        return ModelDescription("module", ref, None, code=KeptCode.of(ref))
    if ref.endswith(".py"):
        raise SpecError(f"{ref!r} is a Python file: name the factory that builds the model, "
                        f"as '{ref}:make_model'")
    close = difflib.get_close_matches(ref, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise SpecError(f"cannot resolve model {ref!r}: it is not a registered model{hint} "
                    f"(known: {', '.join(names)}), not a spec file ({', '.join(SPEC_SUFFIXES)}) "
                    "and not a 'file.py:factory' reference")
