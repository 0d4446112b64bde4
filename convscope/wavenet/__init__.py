"""WaveNet on spoken digits: the model (:mod:`.model`, the ``wavenet`` layer kind), mu-law
and the packed clip (:mod:`.codec`), FSDD as packed clips (:mod:`.data`), fast generation
with per-layer queues (:mod:`.fast`) and the user-level :func:`generate` (:mod:`.generation`).
The training task is :mod:`convscope.tasks.wavenet`."""

from __future__ import annotations

# sampling temperatures: 1 draws from the softmax as trained, lower draws surer samples, 0 always
# the likeliest (torch-free here: the CLI's help reads them)
TEMPERATURES = (0.0, 2.0)
DEFAULT_TEMPERATURE = 1.0
PEAK = 0.8  # training clips are scaled to this peak |sample| before coding; clips are written at it


def __getattr__(name: str):
    if name in ("generate", "GeneratedClip", "write_wav"):
        from convscope.wavenet import generation as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
