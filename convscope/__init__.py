"""convscope: train convolutional networks on real data and look inside them.

Data flows one way: layer spec -> model -> trainer -> evaluation (and, later, probes -> views).
"""

__version__ = "0.1.0"

from .data import Dataset, load_dataset  # noqa: E402
from .evaluate import Evaluation, evaluate, format_report  # noqa: E402
from .model import SpecNet, build_model  # noqa: E402
from .registry import get_model_entry, list_models  # noqa: E402
from .runs import Run, load_run  # noqa: E402
from .spec import Layer, Volume, load_spec, resolve  # noqa: E402
from .trainer import resume, train  # noqa: E402

__all__ = [
    "Dataset", "Evaluation", "Layer", "Run", "SpecNet", "Volume", "build_model", "evaluate",
    "format_report", "get_model_entry", "list_models", "load_dataset", "load_run", "load_spec",
    "resolve", "resume", "train",
]
