"""convscope: train convolutional networks on real data and look inside them.

Data flows one way: layer spec -> model -> trainer -> probes -> API -> views; each concept
has one owner (docs/architecture.md), extended by ``register_layer_kind``, ``register_dataset``,
``register_task``, ``register_model`` and training ``Callback``s.
"""

__version__ = "0.1.0"

from .callbacks import Callback  # noqa: E402
from .data import Dataset, DatasetEntry, load_dataset, register_dataset  # noqa: E402
from .evaluate import Evaluation, evaluate, format_report  # noqa: E402
from .layer_kinds import LayerKind, register_layer_kind  # noqa: E402
from .model import SpecNet, build_model  # noqa: E402
from .registry import ModelEntry, get_model_entry, list_models, register_model  # noqa: E402
from .runs import Run, load_run  # noqa: E402
from .spec import Layer, Volume, load_spec, resolve  # noqa: E402
from .tasks import register_task  # noqa: E402
from .trainer import resume, train  # noqa: E402

__all__ = [
    "Callback", "Dataset", "DatasetEntry", "Evaluation", "Layer", "LayerKind", "ModelEntry",
    "Run", "SpecNet", "Volume", "build_model", "evaluate", "format_report", "get_model_entry",
    "list_models", "load_dataset", "load_run", "load_spec", "register_dataset",
    "register_layer_kind", "register_model", "register_task", "resolve", "resume", "train",
]
