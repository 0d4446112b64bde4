"""What a model gives: a name for each channel of its last layer (``output_names`` of its
description), so that the views label outputs without knowing the tasks."""

from __future__ import annotations

BOX = ["box x", "box y", "box w", "box h"]


def output_names(task: str, classes: list[str], depth: int) -> list[str]:
    """The names of the ``depth`` output channels of a ``task`` model: the classes (classify,
    audio); the classes then the box (localize); objectness, the box then the classes per grid
    cell (detect, see :mod:`convscope.yolo`); the classes then background per pixel (segment).
    Numbers where the output does not have the task's layout."""
    names = {"localize": [*classes, *BOX], "detect": ["objectness", *BOX, *classes],
             "segment": [*classes, "background"]}.get(task, classes)
    return names if len(names) == depth else [str(i) for i in range(depth)]
