"""What a network learns: classification (images or spoken digits), localization, detection,
segmentation. One trainer serves them all; a :class:`Task` supplies the data, the loss and the
evaluation. ``get_task(name)`` returns the task for a ``TrainConfig.task`` name."""

import importlib

from convscope.config import TASKS
from convscope.tasks.base import Task

_MODULES = {"classify": ("classify", "CLASSIFY"), "audio": ("classify", "AUDIO"),
            "localize": ("localize", "LOCALIZE"), "detect": ("detect", "DETECT"),
            "segment": ("segment", "SEGMENT")}
assert set(_MODULES) == set(TASKS)


def get_task(name: str) -> Task:
    """The task called ``name`` (one of :data:`convscope.config.TASKS`), imported on demand."""
    module, attribute = _MODULES[name]
    return getattr(importlib.import_module(f"convscope.tasks.{module}"), attribute)


__all__ = ["TASKS", "Task", "get_task"]
