"""Test helpers for the explorer's task views: untrained runs of the zoo's scene networks and a
spoken-digit net saved as run directories, and synthetic FSDD recordings."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import torch

from convscope.checkpoint import save_model
from convscope.config import TrainConfig
from convscope.model import build_model
from convscope.registry import get_model_entry
from convscope.runs import MODEL, RESULTS, Run

DIGITS = [str(d) for d in range(10)]
# Headline test numbers as results.json would hold them (made up: the nets are untrained).
RESULTS_OF = {
    "localize": {"accuracy": 0.5, "mean_iou": 0.4, "total": 50},
    "detect": {"map50": 0.25, "ap50": [0.25] * 10, "total": 50},
    "segment": {"miou": 0.125, "iou": [0.125] * 11, "total": 50},
    "audio": {"accuracy": 0.75, "total": 12},
}
ZOO = {"localize": "mnist-localizer", "detect": "mnist-yolo", "segment": "mnist-unet",
       "audio": "fsdd-convnet"}


def write_task_run(path: Path, task: str, seed: int = 0) -> Path:
    """An untrained run of ``task``'s zoo network at ``path``, with the made-up test results of
    :data:`RESULTS_OF`."""
    ref = ZOO[task]
    spec = get_model_entry(ref).spec
    data = "fsdd" if task == "audio" else "mnist"
    config = TrainConfig(model=ref, data=data, task=task, epochs=1)
    run = Run(path, config, {"kind": "spec", "ref": ref, "spec": spec},
              {"name": data, "task": task, "classes": DIGITS})
    path.mkdir(parents=True)
    run.write_config()
    torch.manual_seed(seed)
    save_model(path / MODEL, build_model(spec).eval(), {"config": config.to_dict()})
    (path / RESULTS).write_text(json.dumps({"test": RESULTS_OF[task]}))
    return path


def wav_bytes(samples: np.ndarray, rate: int = 8000, width: int = 2, channels: int = 1) -> bytes:
    """A PCM WAV of float ``samples`` in [-1, 1] (repeated on every channel)."""
    import io

    ints = np.round(np.clip(samples, -1, 1) * (2 ** (8 * width - 1) - 1)).astype(f"<i{width}")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.repeat(ints, channels).tobytes())
    return out.getvalue()


def tone(digit: int, seconds: float = 0.5, rate: int = 8000, take: int = 0) -> np.ndarray:
    """A "spoken" digit: a fading tone whose pitch tells the digit."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 300 + 250 * digit + 10 * take
    return (0.6 * np.sin(2 * np.pi * pitch * t) * np.exp(-3 * t)).astype(np.float32)


def write_fsdd(root: Path, digits: tuple[int, ...] = (0, 1, 2),
               speakers: tuple[str, ...] = ("ann", "bob"), takes: tuple[int, ...] = (0, 1, 7)
               ) -> Path:
    """FSDD-named recordings in ``root/fsdd/recordings`` (takes < 5 are the test split)."""
    folder = root / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    for digit in digits:
        for speaker in speakers:
            for take in takes:
                (folder / f"{digit}_{speaker}_{take}.wav").write_bytes(
                    wav_bytes(tone(digit, take=take)))
    return folder
