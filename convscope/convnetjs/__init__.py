"""ConvNetJS interoperability: import snapshots, export networks, and the chapter's results.

- :func:`read_snapshot` / :func:`import_convnetjs`: a ConvNetJS ``Net.toJSON()`` file as a
  SpecNet, or as a run directory;
- :func:`to_convnetjs` / :func:`export_convnetjs`: a SpecNet as ConvNetJS JSON;
- :func:`chapter_summaries`: the chapter's stored confusion summaries in convscope's form;
- :func:`reproduce`: a network run as ConvNetJS runs it, compared with a stored summary.
"""

from .chapter import Reproduction, predict_float64, reproduce
from .export import ExportError, export_convnetjs, to_convnetjs
from .importer import import_convnetjs, load_exact
from .snapshot import Snapshot, SnapshotError, read_snapshot
from .summaries import ChapterSummary, chapter_summaries, read_summary, summary_dataset

__all__ = [
    "ChapterSummary", "ExportError", "Reproduction", "Snapshot", "SnapshotError",
    "chapter_summaries", "export_convnetjs", "import_convnetjs", "load_exact",
    "predict_float64", "read_snapshot", "read_summary", "reproduce", "summary_dataset",
    "to_convnetjs",
]
