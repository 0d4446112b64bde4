"""A Python module offered as it is (``convscope serve --module file.py:factory --trust-code``):
a pretrained ``nn.Module`` of the user's (a torchvision ResNet...) without a run directory, for
the views that need no training data (Network, Maps, Weights, Live). Its classes are numbered."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import RunError
from ..layer_kinds import Volume
from ..probes import network_graph
from .catalog import Entry, slug

MODULE_DATASET = "module"  # not a catalogued dataset: pictures are fitted only


def module_entry(ref: str, volume: Volume, entry_id: str | None = None) -> Entry:
    """The catalog entry of ``factory()`` from ``file.py`` (imported: the caller has the
    user's ``--trust-code``), traced on a zero input of ``volume``."""
    from ..user_module import load_user_module

    module = load_user_module(ref)
    if not isinstance(module, nn.Module):
        raise RunError(f"{ref} returned {type(module).__name__}, not an nn.Module")
    module.eval()
    outputs = network_graph(module, volume).nodes[-1].out_volume.numel
    path, _, factory = ref.rpartition(":")
    title = f"{Path(path).name}:{factory}"
    entry = Entry(entry_id or "module-" + slug(title.replace(":", "-")), title, "run",
                  MODULE_DATASET, [str(i) for i in range(outputs)], [], None,
                  accuracy_source="not evaluated (a Python module served as it is)",
                  model=module, module_input=volume)
    entry.summary(), entry.describe()  # everything the views read, checked now
    return entry
