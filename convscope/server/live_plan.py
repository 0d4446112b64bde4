"""What a live job trains, from a ``POST /api/train`` body: the network (a registry model, a
layer list, or the network of the model it starts from), the dataset, and the settings, checked
by the training settings table (:class:`convscope.config.TrainConfig`) and by
:mod:`convscope.finetune` with the CLI's one-line errors, before anything is built.

``init_from`` names a model the explorer serves (an id of ``GET /api/models``: a bundled model
or a finished run), never a path: its run directory is found in the catalog."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig, resolve_config
from ..data.catalog import image_set_for_depth
from ..finetune import Source, describe_source, open_source, sized_for_data
from ..registry import get_model_entry
from ..spec import resolve
from ..tasks import get_task
from ..user_module import ModelDescription
from .catalog import Catalog
from .errors import ApiError
from .live_runs import spec_label

FORM_SETTINGS = ("epochs", "batch_size", "lr", "optimizer")  # the form's numbers and choices
FINETUNE_SETTINGS = ("num_classes", "freeze")
MAX_LABEL = 40  # characters of a source's name in a run's name


@dataclass
class Plan:
    """A checked live job: ``spec`` (sized to the data) is what trains, ``model`` what
    :func:`convscope.train` is given (a registry name, a layer list, or None for the source's
    network), ``settings`` its keyword settings and ``shown`` the settings the Train form
    shows while the job runs."""

    name: str
    spec: list[dict]
    dataset: str
    recipe: dict
    model: str | list | None
    settings: dict
    shown: dict
    config: TrainConfig
    source: Source | None = None


def plan(request, catalog: Catalog, live: dict[str, int], trainable) -> Plan:
    """The job ``request`` (a ``TrainRequest``) asks for; ``live``: the datasets trained live
    (by input depth), ``trainable(task, dataset)``: whether the explorer trains that."""
    source, source_label = _source(request.init_from, catalog)
    if request.model is not None:
        registered = get_model_entry(request.model)
        task = registered.recipe.get("task", "classify")
        if not trainable(task, registered.dataset):
            raise ApiError(400, f"{request.model} is a {task} model for {registered.dataset}; "
                                f"the explorer trains image classifiers on {' or '.join(live)} "
                                f"only: train it with `convscope train --model {request.model}`")
        spec, name, dataset, recipe = (registered.spec, request.model, registered.dataset,
                                       registered.recipe)
    elif request.spec is not None:
        spec, name, dataset, recipe = request.spec, spec_label(request.spec), None, {}
    else:
        described = describe_source(source)
        spec, name, recipe = described.spec, f"{source_label} fine-tuned", {}
        dataset = described.dataset if described.dataset in live else None
    dataset = (request.dataset or dataset
               or image_set_for_depth(resolve(spec)[0].out_volume.depth) or next(iter(live)))
    given = {k: getattr(request, k) for k in (*FORM_SETTINGS, *FINETUNE_SETTINGS)
             if getattr(request, k) is not None}
    if source is not None:
        given["init_from"] = source.name
    config = resolve_config(recipe, {"model": name, "data": dataset, **given})
    if source is not None or request.num_classes is not None:  # as convscope train sizes it
        spec = sized_for_data(ModelDescription("spec", name, spec, recipe, dataset), config,
                              None).spec
    model = request.model if request.model is not None else request.spec
    shown = {"model": request.model, "spec": request.spec, "init_from": request.init_from,
             "dataset": dataset, "num_classes": request.num_classes,
             "snapshot_every": request.snapshot_every,
             **{k: getattr(config, k) for k in (*FORM_SETTINGS, "freeze")}}
    return Plan(name, spec, dataset, recipe, model, given, shown, config, source)


def _source(init_from: str | None, catalog: Catalog) -> tuple[Source | None, str]:
    """The run ``init_from`` (a catalog id) names, opened as ``convscope train --init-from``
    opens one, and a short name for it; (None, "") without one."""
    if init_from is None:
        return None, ""
    entry = next((e for e in catalog.entries() if e.id == init_from), None)
    if entry is None:
        raise ApiError(400, f"init_from: {init_from!r} is not a model this explorer serves; "
                            "start from one that GET /api/models lists (a bundled model or a "
                            "finished run)")
    if entry.path is None or entry.untrained:
        why = "is still training" if entry.kind == "live" else "has no trained weights"
        raise ApiError(400, f"init_from: {entry.title} {why}; start from a bundled model or "
                            "a finished run")
    if entry.module_input is not None or not get_task(entry.task).classifies:
        what = "Python model" if entry.module_input is not None else f"{entry.task} model"
        raise ApiError(400, f"init_from: {entry.title} is a {what}; the explorer fine-tunes "
                            "layer-list image classifiers: fine-tune it with `convscope train "
                            f"--init-from {Path(entry.path)}`")
    label = entry.registry or entry.title
    return open_source(str(entry.path)), label[:MAX_LABEL]
