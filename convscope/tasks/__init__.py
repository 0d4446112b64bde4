"""What a network learns: classification (images or spoken digits), localization, detection,
segmentation. One trainer serves them all; a :class:`Task` supplies the data, the loss, the
evaluation and what the explorer shows.

This registry is the one list of tasks: ``TrainConfig.task``, the CLI's ``--task``, the explorer
and its model descriptions all read it. ``get_task(name)`` returns a task; ``register_task``
adds one. The built-in tasks are imported on first use, so :mod:`convscope.config` can import
this module without importing any task.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from convscope.errors import ConvscopeError
from convscope.registries import Registry

if TYPE_CHECKING:
    from convscope.tasks.base import Task

# name -> the Task, or "module:ATTRIBUTE" under convscope.tasks until first used
_TASKS: Registry[Task | str] = Registry("task", ConvscopeError)
for _name, _where in (("classify", "classify:CLASSIFY"), ("localize", "localize:LOCALIZE"),
                      ("detect", "detect:DETECT"), ("segment", "segment:SEGMENT"),
                      ("audio", "classify:AUDIO"), ("wavenet", "wavenet:WAVENET")):
    _TASKS.add(_name, _where)


def task_names() -> tuple[str, ...]:
    """The registered tasks' names, in the order registered."""
    return tuple(_TASKS)


def get_task(name: str) -> Task:
    """The task called ``name`` (one of :func:`task_names`)."""
    found = _TASKS.get(name)
    if found is None:
        raise ConvscopeError(f"unknown task {name!r}; choose one of: {', '.join(_TASKS)}")
    if isinstance(found, str):
        module, attribute = found.split(":")
        found = _TASKS[name] = getattr(importlib.import_module(f"convscope.tasks.{module}"),
                                       attribute)
    return found


def register_task(task: Task) -> Task:
    """Offer ``task`` under ``task.name`` everywhere tasks are listed; returns it."""
    return _TASKS.add(task.name, task)


def unregister_task(name: str) -> None:
    """Withdraw the task called ``name`` (for tests that register their own)."""
    _TASKS.remove(name)


def __getattr__(name: str):
    if name == "Task":  # the base class, imported on first use like the tasks themselves
        from convscope.tasks.base import Task

        return Task
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Task", "get_task", "register_task", "task_names", "unregister_task"]
