"""A tiny trained WaveNet run for the explorer's tests: a synthetic FSDD folder (tones named as
FSDD's recordings are) and one short epoch of a small ``wavenet`` spec (a few seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import write_clip

from convscope.cli import main
from convscope.wavenet.data import WINDOW_FRAMES, WINDOW_SAMPLES

SPEAKERS = ["george", "theo"]  # two of FSDD's speakers (the bundled recordings have them)
DILATIONS = [1, 2, 4, 8, 16, 32, 64]  # receptive field 128: the stack figure can zoom


def fsdd_folder(root: Path) -> Path:
    """A data dir whose fsdd/recordings hold tones of digits 0-2 by SPEAKERS, takes 0-1 (test)
    and 5-6 (training)."""
    folder = root / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    t = np.arange(2400) / 8000
    for digit in range(3):
        for s, speaker in enumerate(SPEAKERS):
            for take in (0, 1, 5, 6):
                tone = 0.3 * np.sin(2 * np.pi * (300 + 500 * digit + 40 * s + take) * t)
                write_clip(folder / f"{digit}_{speaker}_{take}.wav", tone * np.hanning(2400))
    return root


def tiny_wavenet_run(tmp: Path) -> Path:
    """Train the tiny WaveNet on :func:`fsdd_folder` data for one epoch; its run directory."""
    data = fsdd_folder(tmp / "data")
    layer = {"type": "wavenet", "samples": WINDOW_SAMPLES, "mels": 32, "frames": WINDOW_FRAMES,
             "channels": 4, "skip": 4, "head": 8, "cond": 2, "dilations": DILATIONS,
             "speakers": SPEAKERS, "preemphasis": 0.85}  # the explorer de-emphasises
    spec = tmp / "tiny-wavenet.json"
    spec.write_text(json.dumps([{"type": "input", "sx": 4 + WINDOW_SAMPLES + 32 * WINDOW_FRAMES,
                                 "sy": 1, "depth": 1}, layer]))
    run = tmp / "tiny-wavenet"
    code = main(["train", "--task", "wavenet", "--model", str(spec), "--data", "fsdd",
                 "--data-dir", str(data), "--epochs", "1", "--batch-size", "4", "--lr", "0.01",
                 "--out", str(run), "--no-figures"])
    assert code == 0
    return run
