"""``convscope import-convnetjs``: a ConvNetJS snapshot as a convscope run directory.

The run holds ``config.yaml`` (the spec, ``model.kind: spec``, the snapshot's file name and
sha256 under ``model.source``), ``model.safetensors`` (the weights in float64, exactly as the
snapshot stores them; :attr:`convscope.Run.model` loads them as float32) and ``results.json``
(``{}``, or the official test-set evaluation when asked), so ``convscope eval``, ``summary``
and the explorer work on it. Nothing is written unless the whole snapshot checks out.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from convscope._io import write_json_atomic
from convscope.checkpoint import load_model_weights, save_model
from convscope.config import TrainConfig
from convscope.data import DATASETS, load_dataset
from convscope.data.catalog import image_set_for_depth
from convscope.errors import RunError
from convscope.evaluate import evaluate
from convscope.model import SpecNet
from convscope.runs import MODEL, RESULTS, Run, build_from_info, load_run

from .snapshot import SnapshotError, read_snapshot


def import_convnetjs(source: str | os.PathLike, out: str | os.PathLike | None = None, *,
                     data: str | None = None, input_offset: float | None = None,
                     run_eval: bool = False, data_dir: str | None = None) -> Run:
    """Import the snapshot at ``source`` into the run directory ``out`` (default
    ``runs/<file stem>``) and return the run.

    ``data`` is the image set it classifies (default: the first catalogued one with the
    input's depth: mnist for 1-channel, cifar10 for 3-channel inputs); ``input_offset`` see
    :func:`~convscope.convnetjs.snapshot.read_snapshot`; ``run_eval`` evaluates it on the
    official test set into results.json.
    """
    snapshot = read_snapshot(source, input_offset)
    model = snapshot.model()
    images = DATASETS.of_kind("images")
    data = data or image_set_for_depth(model.input_volume.depth)
    if data not in [entry.name for entry in images]:
        raise SnapshotError(f"{snapshot.name}: say which dataset a {model.input_volume} input "
                            f"is for (--data {' | '.join(entry.name for entry in images)})")
    classes = list(DATASETS[data].classes)
    if model.num_classes is not None and model.num_classes != len(classes):
        raise SnapshotError(f"{snapshot.name}: the network has {model.num_classes} classes, "
                            f"{data} has {len(classes)}")
    run_dir = Path(out) if out else Path("runs") / Path(snapshot.name).stem
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunError(f"{run_dir} exists and is not empty; choose another --out")
    results = {}
    if run_eval:
        test = load_dataset(data, "test", data_dir=data_dir)
        results["test"] = evaluate(snapshot.model(torch.float32), test).to_dict()
    source_info = {"format": "convnetjs", "file": snapshot.name, "sha256": snapshot.sha256}
    model_info = {"kind": "spec", "ref": f"convnetjs:{snapshot.name}", "spec": snapshot.spec,
                  "source": source_info}
    volume = model.input_volume
    run = Run(run_dir, TrainConfig(model=model_info["ref"], data=data, data_dir=data_dir),
              model_info, {"name": data, "classes": classes,
                           "input": [volume.sx, volume.sy, volume.depth]})
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(run_dir / MODEL, model, {"source": source_info})
    write_json_atomic(run_dir / RESULTS, results)
    run.write_config()
    return load_run(run_dir)


def load_exact(run: Run | str | os.PathLike) -> SpecNet:
    """A spec run's network in float64, in eval mode: exactly the snapshot's weights for an
    imported run (:attr:`convscope.Run.model` is float32)."""
    run = run if isinstance(run, Run) else load_run(run)
    model = build_from_info(run.model_info, run.path, run.trust_code).to(torch.float64)
    load_model_weights(run.path / MODEL, model)
    return model.eval()

