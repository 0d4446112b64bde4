"""Fit the prototypes of a WaveNet run trained before they existed (see
:mod:`convscope.wavenet.model`): each digit's mean log-mel image over the run's own training
split (the held-out validation recordings left out, as training leaves them out), by speaker and
over all speakers. Rewrites RUN/model.safetensors with them; the weights stay as they are.
Runs trained since then fit them before their first step.

    .venv/bin/python scripts/wavenet_prototypes.py RUN --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from convscope.checkpoint import load_model_weights, save_model
from convscope.runs import MODEL, open_run
from convscope.tasks import get_task
from convscope.wavenet.generation import wavenet_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished WaveNet run directory")
    parser.add_argument("--data-dir", help="the folder holding fsdd/ (default: the run's)")
    args = parser.parse_args()
    run = open_run(args.run)
    net = wavenet_of(run)  # a one-line error for a run that is not a WaveNet
    config = dataclasses.replace(run.config, data_dir=args.data_dir or run.config.data_dir)
    task = get_task("wavenet")
    train_set, _, _ = task.load_data(config, **task.data_options(run.model))
    meta = load_model_weights(run.path / MODEL, run.model)
    task.fit_to_data(run.model, train_set)
    save_model(run.path / MODEL, run.model, meta)
    print(f"{run.path / MODEL}: prototypes of {net.digits} digits x "
          f"{len(net.speakers) + 1} speakers (the last: anyone) from {len(train_set):,} "
          f"training recordings")


if __name__ == "__main__":
    main()
